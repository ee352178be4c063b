"""Issue 16: bad input and accidents never crash a run, lose items silently or mix inputs up (local engine).

docs/reliability.md lists each guarantee with the test here that proves it.
"""

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import TOY
from rustance.cli import app
from rustance.inference import corpus, engine
from rustance.inference.engine import MANIFEST, REJECTS, OutputFolder, iter_rows
from rustance.inference.readers import Document, ReaderOptions, Reject, count_items, parse_date, read_documents

runner = CliRunner()
DOCS = [" ".join(t for t, _, _ in TOY[i : i + 3]) for i in range(0, len(TOY), 3)]


def _predict(model, inputs, out, *extra, stdin=None):
    command = ["predict", "--model", str(model), *map(str, inputs)] + (["--output", str(out)] if out else [])
    return runner.invoke(app, command + list(extra), input=stdin)


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / REJECTS).read_text(encoding="utf-8").splitlines()]


def _items(path: Path, **options) -> list:
    return list(read_documents([str(path)], ReaderOptions(**options)))


def test_lone_surrogates_in_text_or_id_are_rejected_not_fatal(tiny_model_dir, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "s1", "text": "Москва \\ud800 заявила."}\n'
                    '{"id": "bad\\udfff", "text": "Рейсы возобновят."}\n'
                    + json.dumps({"id": "ok", "text": DOCS[0]}, ensure_ascii=False) + "\n", encoding="utf-8")
    for _ in range(2):  # and the rerun too
        result = _predict(tiny_model_dir, [data], tmp_path / "out")
        assert result.exit_code == 0, result.output
    assert {r["doc_id"] for r in iter_rows(tmp_path / "out")} == {"ok"}
    reasons = {r["line"]: r["reason"] for r in _rejects(tmp_path / "out")}
    assert "unpaired surrogate" in reasons[1] and "in the text" in reasons[1]
    assert "unpaired surrogate" in reasons[2] and "in the id" in reasons[2]


def test_stray_quote_costs_one_row_not_the_rest_of_the_file(tmp_path):
    tsv = tmp_path / "in.tsv"
    tsv.write_text('id\ttext\nt1\t"Цитата без конца.\nt2\tВторая строка.\nt3\tТретья строка.\n', encoding="utf-8")
    found = _items(tsv)
    assert [(type(x).__name__, x.line) for x in found] == [("Reject", 2), ("Document", 3), ("Document", 4)]
    assert "never closed" in found[0].reason
    csv_file = tmp_path / "in.csv"
    csv_file.write_text('id,text\nc1,"Начало цитаты\nc2,Обычная строка.\nc3,"Ещё ""цитата"" внутри."\nc4,"a"b\n'
                        'c5,Последняя.\n', encoding="utf-8")
    found = _items(csv_file)
    documents = [x for x in found if isinstance(x, Document)]
    assert [d.doc_id for d in documents] == ["c2", "c3", "c5"]
    assert documents[1].text == 'Ещё "цитата" внутри.'
    assert sorted(x.line for x in found if isinstance(x, Reject)) == [2, 5]


def test_huge_quoted_field_is_one_reject_and_parsing_stays_in_step(tmp_path):
    huge = ("Очень длинная цитата, " * 200_000).strip()  # over 4 MB, with a line break inside the quotes
    path = tmp_path / "in.csv"
    path.write_text(f'id,text\nbig,"{huge}\n{huge}"\nafter,Следующая строка.\n', encoding="utf-8")
    assert path.stat().st_size > 4_000_000
    found = _items(path)
    assert len(found) == 2 and isinstance(found[0], Reject) and "exceeds --max-chars" in found[0].reason
    assert isinstance(found[1], Document) and (found[1].doc_id, found[1].line) == ("after", 4)


def test_byte_order_mark_in_a_csv_header(tmp_path):
    for header in ("text,id", "id,text"):
        path = tmp_path / "bom.csv"
        row = "Рейсы возобновят.,x1" if header == "text,id" else "x1,Рейсы возобновят."
        path.write_bytes(b"\xef\xbb\xbf" + f"{header}\n{row}\n".encode())
        found = _items(path)
        assert [(type(x).__name__, getattr(x, "doc_id", None)) for x in found] == [("Document", "x1")], header


def test_wrong_id_column_is_an_error_not_generated_ids(tiny_model_dir, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,text\na,Рейсы возобновят.\n", encoding="utf-8")
    result = _predict(tiny_model_dir, [path], tmp_path / "out", "--id-column", "post_id")
    assert result.exit_code == 1
    assert "error: no document could be labelled" in result.output and "no id column 'post_id'" in result.output
    jsonl = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": DOCS[0]}])
    assert "missing id field 'post_id'" in _items(jsonl, id_column="post_id")[0].reason
    assert _items(jsonl, id_column="")[0].doc_id == "in.jsonl:1"  # '' asks for generated ids


def test_csv_and_parquet_on_stdin(tiny_model_dir, tmp_path):
    csv_text = f'id,text\nc1,"{DOCS[0]}"\nc2,"{DOCS[1]}"\n'
    result = _predict(tiny_model_dir, ["-"], None, "--input-format", "csv", stdin=csv_text)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {r["doc_id"] for r in rows} == {"c1", "c2"} and {r["source"] for r in rows} == {"<stdin>"}
    table = pa.table({"id": ["p1"], "text": [DOCS[2]]})
    pq.write_table(table, tmp_path / "in.parquet")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "-", "--input-format", "parquet"],
                           input=(tmp_path / "in.parquet").read_bytes())
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["doc_id"] for line in result.stdout.splitlines() if line.startswith("{")} == {"p1"}


def test_resume_notices_changed_input(tiny_model_dir, tmp_path, monkeypatch):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)])
    out = tmp_path / "out"
    assert _predict(tiny_model_dir, [data], out).exit_code == 0
    # unchanged files (size, modification time): done at once, without loading the model
    with monkeypatch.context() as patch:
        patch.setattr(corpus, "_load_classifier", lambda *a, **k: pytest.fail("model loaded for a finished run"))
        result = _predict(tiny_model_dir, [data], out)
        assert result.exit_code == 0 and "skipped 6 items" in result.output
    # appended items are labelled by the rerun
    with open(data, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "new", "text": DOCS[0]}, ensure_ascii=False) + "\n")
    result = _predict(tiny_model_dir, [data], out)
    assert result.exit_code == 0, result.output
    assert "skipped 6 items" in result.output and "processed 1 documents" in result.output
    fresh = tmp_path / "fresh"
    assert _predict(tiny_model_dir, [data], fresh).exit_code == 0
    assert [(r["doc_id"], r["sentence"]) for r in iter_rows(out)] == [(r["doc_id"], r["sentence"])
                                                                       for r in iter_rows(fresh)]
    # a replaced file is refused, not mixed with the earlier version
    _jsonl(data, [{"id": f"x{i}", "text": t} for i, t in enumerate(DOCS)])
    result = _predict(tiny_model_dir, [data], out)
    assert result.exit_code == 2 and "input differs from what an earlier run" in result.output
    # stdin: the same text again is done, other text is refused
    stdin_out = tmp_path / "stdin-out"
    assert _predict(tiny_model_dir, ["-"], stdin_out, stdin=DOCS[0] + "\n").exit_code == 0
    again = _predict(tiny_model_dir, ["-"], stdin_out, stdin=DOCS[0] + "\n")
    assert again.exit_code == 0 and "processed 0 documents" in again.output
    other = _predict(tiny_model_dir, ["-"], stdin_out, stdin=DOCS[1] + "\n")
    assert other.exit_code == 2 and "input differs" in other.output


def test_rejects_file_written_when_the_run_died_before_it(tiny_model_dir, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "text": DOCS[0]}, ensure_ascii=False) + "\n{broken\n", encoding="utf-8")
    out = tmp_path / "out"
    assert _predict(tiny_model_dir, [data], out).exit_code == 0
    expected = (out / REJECTS).read_text()
    for complete in (False, True):  # killed before the rejects file (complete is only set after it), or lost later
        (out / REJECTS).unlink()
        manifest = json.loads((out / MANIFEST).read_text())
        manifest["complete"] = complete
        (out / MANIFEST).write_text(json.dumps(manifest))
        assert _predict(tiny_model_dir, [data], out).exit_code == 0
        assert (out / REJECTS).read_text() == expected


def test_rows_carry_their_source_and_repeated_ids_are_reported(tiny_model_dir, tmp_path):
    folder = tmp_path / "channels"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [{"message_id": 1, "text": DOCS[0]}, {"message_id": 2, "text": DOCS[1]}])
    _jsonl(folder / "b.jsonl", [{"message_id": 1, "text": DOCS[2]}])
    result = _predict(tiny_model_dir, [folder], tmp_path / "out", "--id-column", "message_id")
    assert result.exit_code == 0, result.output
    assert "1 documents have an id an earlier document of this run already had" in result.output
    rows = list(iter_rows(tmp_path / "out"))
    assert {(r["doc_id"], Path(r["source"]).name, r["line"]) for r in rows} == {("1", "a.jsonl", 1), ("2", "a.jsonl", 2),
                                                                               ("1", "b.jsonl", 1)}
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["totals"]["duplicate_ids"] == 1


def test_a_run_with_every_item_rejected_fails(tiny_model_dir, tmp_path):
    cp1251 = tmp_path / "in.txt"
    cp1251.write_bytes("Москва заявила.".encode("cp1251"))
    result = _predict(tiny_model_dir, [cp1251], tmp_path / "out")
    assert result.exit_code == 1 and "error: no document could be labelled" in result.output
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "body": DOCS[0]}])
    result = _predict(tiny_model_dir, [data], tmp_path / "out2")
    assert result.exit_code == 1 and "missing text field" in result.output


def test_bad_files_in_a_folder_are_skipped_and_the_run_resumes_without_them(tiny_model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [{"id": "a", "text": DOCS[0]}])
    (folder / "b-empty.parquet").write_bytes(b"")
    pq.write_table(pa.table({"body": [DOCS[1]]}), folder / "c-notext.parquet")
    pq.write_table(pa.table({"id": [f"t{i}" for i in range(2000)], "text": [DOCS[2]] * 2000}), tmp_path / "whole.parquet")
    (folder / "d-truncated.parquet").write_bytes((tmp_path / "whole.parquet").read_bytes()[:-100])
    _jsonl(folder / "e.jsonl", [{"id": "e", "text": DOCS[3]}])
    # counting for the progress bar does not stop at unreadable files (they count 0; the estimate still counts
    # the rows of the Parquet file that lacks the text column)
    assert count_items([str(p) for p in sorted(folder.iterdir())], ReaderOptions()) == 3
    out = tmp_path / "out"
    result = _predict(tiny_model_dir, [folder], out)
    assert result.exit_code == 0, result.output
    assert {r["doc_id"] for r in iter_rows(out)} == {"a", "e"}
    skipped = {Path(r["source"]).name: r["reason"] for r in _rejects(out) if r["file_level"]}
    assert set(skipped) == {"b-empty.parquet", "c-notext.parquet", "d-truncated.parquet"}
    assert "no text column 'text'" in skipped["c-notext.parquet"]
    for name in skipped:
        (folder / name).unlink()
    result = _predict(tiny_model_dir, [folder], out)
    assert result.exit_code == 0, result.output


def test_output_inside_the_input_folder(tiny_model_dir, tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [{"id": "a", "text": DOCS[0]}])
    for _ in range(2):
        result = _predict(tiny_model_dir, [folder], folder / "labelled", "--format", "jsonl")
        assert result.exit_code == 0, result.output
    assert [r["doc_id"] for r in iter_rows(folder / "labelled")] == ["a"] * len(list(iter_rows(folder / "labelled")))


def test_a_second_run_into_a_locked_folder_is_refused(tiny_model_dir, tmp_path):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": DOCS[0]}])
    holder = OutputFolder(tmp_path / "out")
    try:
        result = _predict(tiny_model_dir, [data], tmp_path / "out")
        assert result.exit_code == 2 and "in use by another rustance run" in result.output
        assert f"process {os.getpid()}" in result.output
    finally:
        holder.release()
    assert _predict(tiny_model_dir, [data], tmp_path / "out").exit_code == 0


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--batch-size", "-1"), ("--max-chars", "-5"),
                                           ("--part-sentences", "0"), ("--threads", "0"), ("--workers", "-2"),
                                           ("--num-actors", "0")])
def test_every_numeric_option_is_checked(tiny_model_dir, tmp_path, option, value):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": DOCS[0]}])
    result = _predict(tiny_model_dir, [data], tmp_path / "out", option, value)
    assert result.exit_code == 2 and f"error: {option} must be a whole number of at least 1" in result.output \
        or (option == "--max-chars" and "error: --max-chars must be at least 1" in result.output), result.output
    assert "Traceback" not in result.output


def test_unusable_output_folders_are_refused_before_the_model_loads(tiny_model_dir, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(corpus, "_load_classifier", no_model)
    data = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": DOCS[0]}])
    (tmp_path / "file").write_text("x")
    result = _predict(tiny_model_dir, [data], tmp_path / "file")
    assert result.exit_code == 2 and "is an existing file" in result.output
    if os.geteuid() == 0:  # root writes anywhere: use a file system nobody can write to
        unwritable = Path("/sys/rustance-test-out")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        unwritable = tmp_path / "ro" / "out"
    result = _predict(tiny_model_dir, [data], unwritable)
    assert result.exit_code == 2 and f"error: cannot write to {unwritable}" in result.output
    monkeypatch.setattr(engine.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    result = _predict(tiny_model_dir, [data], tmp_path / "full")
    assert result.exit_code == 2 and "only 1.0 MB free" in result.output


def test_disk_full_during_a_run_is_one_clear_error(tiny_model_dir, tmp_path, monkeypatch):
    data = _jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)])
    original = engine.atomic_write

    def full(path, data):
        if path.name.startswith("_part-00001"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(path, data)

    monkeypatch.setattr(engine, "atomic_write", full)
    result = _predict(tiny_model_dir, [data], tmp_path / "out", "--part-sentences", "2", "--format", "jsonl")
    assert result.exit_code == 2 and "no space left on the disk" in result.output and "resume" in result.output
    monkeypatch.setattr(engine, "atomic_write", original)
    assert _predict(tiny_model_dir, [data], tmp_path / "out", "--part-sentences", "2", "--format", "jsonl").exit_code == 0
    assert len({r["doc_id"] for r in iter_rows(tmp_path / "out")}) == len(DOCS)


def test_ray_reading_tasks_use_the_local_readers(tmp_path):
    """What each Ray reading task yields (no cluster needed): JSON arrays under --json-items, kept columns,
    rejects with file and line, file-level rejects."""
    from rustance.inference.ray_engine import read_items
    from rustance.inference.readers import KeptColumn

    export = {"messages": [{"id": 1, "text": DOCS[0], "date": "2024-03-01"}, {"id": 2, "text": 5}]}
    (tmp_path / "result.json").write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    reading = ReaderOptions(json_items="messages", keep_columns=(KeptColumn.parse("date"),))
    paths = [str(tmp_path / "result.json"), str(tmp_path / "bad.parquet")]
    rows = [r for table in read_items({"path": paths, "source": ["result.json", "bad.parquet"]}, reading)
            for r in table.to_pylist()]
    assert [(r["document"], r["source"], r["line"], r["file_level"]) for r in rows] == [
        (True, "result.json", 1, False), (False, "result.json", 2, False), (False, "bad.parquet", 0, True)]
    assert rows[0]["doc_id"] == "1" and rows[0]["date"].isoformat() == "2024-03-01T00:00:00"
    assert "not a string" in rows[1]["reason"] and "not a readable Parquet file" in rows[2]["reason"]


def test_a_run_is_refused_while_another_process_holds_the_folder(tiny_model_dir, tmp_path):
    """The lock across processes: a separate process takes the folder as predict does and waits on its stdin;
    a `rustance predict` process is refused, naming it; once it exits, the run goes ahead."""
    import subprocess

    data = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": DOCS[0]}])
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom rustance.inference.engine import OutputFolder\n"
                               "folder = OutputFolder(sys.argv[1])\nprint('held', flush=True)\nsys.stdin.read()",
                               str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    command = [sys.executable, "-m", "rustance.cli", "predict", "--model", str(tiny_model_dir), str(data),
               "--output", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        assert holder.stdout.readline().strip() == "held"  # the other process holds the lock now
        second = subprocess.run(command, env=env, capture_output=True, text=True)
        assert second.returncode == 2
        assert f"error: {out} is in use by another rustance run (process {holder.pid}" in second.stderr
    finally:
        holder.stdin.close()
        holder.wait()
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
