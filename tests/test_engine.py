"""Corpus inference: bad input, resumability, output equality, clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import TOY
from rustance import load
from rustance.cli import app
from rustance.inference.engine import CorpusRunner, OutputConflict, RunOptions, Summary, iter_rows
from rustance.inference.readers import ReaderOptions, Reject, read_documents

runner = CliRunner()
DOCS = [" ".join(t for t, _, _ in TOY[i : i + 3]) for i in range(0, len(TOY), 3)]


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _predict(model, inputs, out, *extra):
    return runner.invoke(app, ["predict", "--model", str(model), *map(str, inputs), "--output", str(out), *extra])


def test_output_matches_predict_document(tiny_model_dir, tmp_path):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)])
    result = _predict(tiny_model_dir, [data], tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = list(iter_rows(tmp_path / "out"))
    classifier = load(tiny_model_dir)
    expected = [(f"d{i}", p) for i, t in enumerate(DOCS) for p in classifier.predict_document(t)]
    assert len(rows) == len(expected)
    for row, (doc_id, p) in zip(rows, expected):
        assert (row["doc_id"], row["start"], row["end"], row["sentence"]) == (doc_id, p.start, p.end, p.text)
        assert DOCS[int(doc_id[1:])][row["start"] : row["end"]] == row["sentence"]
        assert row["sentiment"] == p.sentiment
        assert [t["topic"] for t in row["topics"]] == [t.topic for t in p.topics]
        assert row["truncated"] is False
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["complete"] is True


def test_output_folder_reads_as_one_parquet_table(tiny_model_dir, tmp_path):
    """Only row parts lack a leading '_', so pandas/pyarrow read the folder (several parts, rejects) directly."""
    import pandas as pd

    data = tmp_path / "in.jsonl"
    _jsonl(data, [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)])
    data.write_text(data.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    result = _predict(tiny_model_dir, [data], tmp_path / "out", "--part-sentences", "2")
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "out" / "_manifest.json").read_text())["parts"]) > 2
    table = pd.read_parquet(tmp_path / "out")
    rows = list(iter_rows(tmp_path / "out"))
    assert list(zip(table["doc_id"], table["sentence_index"])) == [(r["doc_id"], r["sentence_index"]) for r in rows]


def test_every_kind_of_bad_input_is_rejected_and_counted(tiny_model_dir, tmp_path):
    good = {"id": "ok1", "text": DOCS[0]}
    lines = [
        json.dumps(good, ensure_ascii=False).encode(),
        b'{"id": "broken", "text": ',  # malformed JSON
        b'{"id": "notext"}',  # missing text
        b'{"id": "num", "text": 42}',  # non-string text
        b'{"id": "empty", "text": "   "}',  # empty document
        '{"id": "bad-utf8", "text": "'.encode() + b"\xff\xfe" + b'"}',  # invalid UTF-8
        json.dumps({"id": "huge", "text": "Очень длинная строка. " * 250_000}, ensure_ascii=False).encode(),  # ~5 MB
        json.dumps({"id": "ok2", "text": DOCS[1]}, ensure_ascii=False).encode(),
    ]
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    assert len(lines[6]) > 5_000_000
    csv = tmp_path / "in.csv"
    csv.write_text(f'id,text\nc1,"{DOCS[2]}"\nc2,"too",many,fields\nc3,"{DOCS[3]}"\n', encoding="utf-8")
    result = _predict(tiny_model_dir, [data, csv], tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "processed 4 documents" in result.output and "rejected 7" in result.output
    rejects = [json.loads(line) for line in (tmp_path / "out" / "_rejects.jsonl").read_text().splitlines()]
    by_line = {(Path(r["source"]).name, r["line"]): r["reason"] for r in rejects}
    assert "malformed JSON" in by_line[("in.jsonl", 2)]
    assert "missing text field" in by_line[("in.jsonl", 3)]
    assert "not a string" in by_line[("in.jsonl", 4)]
    assert "empty document" in by_line[("in.jsonl", 5)]
    assert "invalid UTF-8" in by_line[("in.jsonl", 6)]
    assert "exceeds --max-chars" in by_line[("in.jsonl", 7)]
    assert "ragged row" in by_line[("in.csv", 3)]
    assert {r["doc_id"] for r in iter_rows(tmp_path / "out")} == {"ok1", "ok2", "c1", "c3"}


def test_long_sentence_is_truncated_and_flagged(tiny_model_dir, tmp_path):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "long", "text": "санкции " * 300 + "."}, {"id": "s", "text": DOCS[0]}])
    result = _predict(tiny_model_dir, [data], tmp_path / "out", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = list(iter_rows(tmp_path / "out"))
    assert rows[0]["doc_id"] == "long" and rows[0]["truncated"] is True
    assert not any(r["truncated"] for r in rows[1:])
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["totals"]["truncated"] == 1


def test_clear_errors_before_any_work(tiny_model_dir, tiny_encoder_dir, tmp_path):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": DOCS[0]}])
    result = _predict(tmp_path / "no-model", [data], tmp_path / "out")
    assert result.exit_code == 2 and "not a rustance model folder" in result.output
    result = _predict(tiny_model_dir, [tmp_path / "missing.jsonl"], tmp_path / "out")
    assert result.exit_code == 2 and "no such file" in result.output
    assert _predict(tiny_model_dir, [data], tmp_path / "out").exit_code == 0
    # same folder, other configuration: refused
    result = _predict(tiny_model_dir, [data], tmp_path / "out", "--text-column", "body")
    assert result.exit_code == 2 and "different model or configuration" in result.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    result = _predict(tiny_model_dir, [data], tmp_path / "other")
    assert result.exit_code == 2 and "not empty" in result.output


def _read_all(out: Path) -> list[dict]:
    return list(iter_rows(out))


def test_resume_after_crash_gives_identical_output(tiny_model_dir, tmp_path, monkeypatch):
    docs = [{"id": f"d{i}", "text": DOCS[i % len(DOCS)]} for i in range(40)]
    items = lambda: read_documents([str(_jsonl(tmp_path / "in.jsonl", docs))], ReaderOptions())  # noqa: E731
    classifier = load(tiny_model_dir)
    options = RunOptions(part_sentences=10)
    CorpusRunner(classifier, tmp_path / "full", options, {"k": 1}).run(items())

    calls = {"n": 0}
    original = CorpusRunner._write_part

    def crash_on_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of a run
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CorpusRunner, "_write_part", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        CorpusRunner(classifier, tmp_path / "resumed", options, {"k": 1}).run(items())
    monkeypatch.setattr(CorpusRunner, "_write_part", original)
    summary = CorpusRunner(classifier, tmp_path / "resumed", options, {"k": 1}).run(items())
    assert summary.skipped_items > 0
    assert _read_all(tmp_path / "resumed") == _read_all(tmp_path / "full")


def test_parallel_workers_give_the_same_rows_in_the_same_order(tiny_model_dir, tmp_path):
    docs = [{"id": f"d{i}", "text": DOCS[i % len(DOCS)]} for i in range(60)]
    path = _jsonl(tmp_path / "in.jsonl", docs)
    classifier = load(tiny_model_dir)

    def rows(workers: int) -> tuple[list, Summary]:
        summary = Summary()
        options = RunOptions(window=7, part_sentences=25, workers=workers)  # many windows and chunks
        out = list(CorpusRunner(classifier, None, options).stream(read_documents([str(path)], ReaderOptions()), summary))
        return out, summary

    one, one_summary = rows(1)
    two, two_summary = rows(3)
    assert len(one) == one_summary.sentences == 60 * 3
    assert [(r["doc_id"], r["sentence_index"]) for r in two] == [(r["doc_id"], r["sentence_index"]) for r in one]
    for a, b in zip(one, two):
        assert a["topics"] == b["topics"] and a["sentiment"] == b["sentiment"]
        assert abs(a["sentiment_neutral"] - b["sentiment_neutral"]) < 1e-3  # batches differ, so do roundings
    assert two_summary == one_summary


def test_workers_option_runs_and_bad_values_are_refused(tiny_model_dir, tmp_path):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)])
    result = _predict(tiny_model_dir, [data], tmp_path / "out", "--workers", "2", "--threads", "2")
    assert result.exit_code == 0, result.output
    assert len(list(iter_rows(tmp_path / "out"))) == sum(len(load(tiny_model_dir).predict_document(t)) for t in DOCS)
    result = _predict(tiny_model_dir, [data], tmp_path / "bad", "--workers", "0", "--threads", "2")
    assert result.exit_code != 0 and "at least 1" in result.output


def test_kill_9_and_resume_equals_uninterrupted_run(tiny_model_dir, tmp_path):
    """A real `rustance predict` subprocess killed with SIGKILL mid-run, then run again."""
    docs = [{"id": f"d{i}", "text": DOCS[i % len(DOCS)]} for i in range(3000)]
    data = _jsonl(tmp_path / "in.jsonl", docs)
    command = [sys.executable, "-m", "rustance.cli", "predict", "--model", str(tiny_model_dir), str(data),
               "--part-sentences", "300", "--batch-size", "16"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(command + ["--output", str(tmp_path / "full")], check=True, env=env, capture_output=True)

    out = tmp_path / "killed"
    process = subprocess.Popen(command + ["--output", str(out)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    manifest = out / "_manifest.json"

    def parts_written() -> int:
        try:
            return len(json.loads(manifest.read_text())["parts"])
        except (OSError, ValueError):  # not there yet (the manifest itself is replaced atomically)
            return 0

    # wait on what the run has written, not on a clock: until 2 parts are listed or the process has ended
    polls = 0
    while parts_written() < 2 and process.poll() is None and polls < 100_000:  # bound: hours, never reached
        time.sleep(0.05)
        polls += 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    parts_before = len(json.loads((out / "_manifest.json").read_text())["parts"])
    assert not json.loads((out / "_manifest.json").read_text())["complete"], "run finished before it was killed"
    result = subprocess.run(command + ["--output", str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr
    assert parts_before >= 2
    assert _read_all(out) == _read_all(tmp_path / "full")


def test_stream_to_stdout(tiny_model_dir):
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "-"], input=DOCS[0] + "\n\n" + DOCS[1] + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 6 and rows[0]["doc_id"] == "<stdin>:1"


def test_line_progress_when_not_a_terminal():
    import io

    from rustance.progress import LineProgress

    stream = io.StringIO()
    bar = LineProgress(10, "documents", "doc", interval=0.0, stream=stream)
    bar.update(5)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "5/10 (50%) doc" in lines[0] and "ETA" in lines[0] and "\r" not in stream.getvalue()


def test_bf16_precision_labels_every_sentence_and_bad_precision_is_refused(tiny_model_dir, tmp_path):
    from rustance.inference.predictor import Classifier, agreement_with

    texts = [t for t, _, _ in TOY]
    fp32, bf16 = load(tiny_model_dir), load(tiny_model_dir, precision="bf16")
    predictions = bf16.predict(texts)
    assert len(predictions) == len(texts)
    assert all(abs(sum(p.sentiment_probabilities.values()) - 1) < 1e-2 for p in predictions)
    assert 0.0 <= agreement_with(fp32, bf16, texts) <= 1.0
    with pytest.raises(ValueError, match="precision"):
        Classifier.load(tiny_model_dir, precision="fp8")
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "d0", "text": DOCS[0]}])
    result = _predict(tiny_model_dir, [data], tmp_path / "out", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert len(list(iter_rows(tmp_path / "out"))) > 0
    assert _predict(tiny_model_dir, [data], tmp_path / "out2", "--precision", "half").exit_code == 2
