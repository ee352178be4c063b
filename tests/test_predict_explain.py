"""rustance predict --explain: the words that drove each label in the corpus output, its fingerprint, errors."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import TOY, write_jsonl
from rustance import load
from rustance.cli import app
from rustance.explain import without, words_of
from rustance.inference.engine import MANIFEST, iter_rows, output_schema
from rustance.labels import STANCES

runner = CliRunner()
DOCS = [" ".join(t for t, _, _ in TOY[i : i + 3]) for i in range(0, len(TOY), 3)]


@pytest.fixture()
def corpus(tmp_path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)])


def _predict(model, corpus, out, *extra):
    return runner.invoke(app, ["predict", "--model", str(model), str(corpus), "--output", str(out), *extra])


def _check_words(rows: list[dict]) -> int:
    """Every topic of every row has ``words``: words of its sentence with positive weights, highest first.
    Returns how many words were listed in all."""
    listed = 0
    for row in rows:
        assert row["topics"]
        sentence_words = {w for _, _, w in words_of(row["sentence"])}
        for entry in row["topics"]:
            weights = [w["weight"] for w in entry["words"]]
            assert {w["word"] for w in entry["words"]} <= sentence_words
            assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights) and len(weights) <= 5
            listed += len(weights)
    return listed


def test_explain_adds_the_words_and_changes_nothing_else(eager_model_dir, corpus, tmp_path):
    plain = _predict(eager_model_dir, corpus, tmp_path / "plain")
    explained = _predict(eager_model_dir, corpus, tmp_path / "explained", "--explain")
    assert plain.exit_code == 0 and explained.exit_code == 0, plain.output + explained.output

    # without --explain: the plain schema and fingerprint, no words
    plain_part = tmp_path / "plain" / "part-00000.parquet"
    assert pq.read_schema(plain_part).remove_metadata() == output_schema()
    plain_manifest = json.loads((tmp_path / "plain" / MANIFEST).read_text())
    assert not any("explain" in key for key in plain_manifest["fingerprint"])
    assert "words" not in plain_manifest["schema"]["topics"]
    plain_rows = list(iter_rows(tmp_path / "plain"))
    assert all("words" not in entry for row in plain_rows for entry in row["topics"])

    # with it: the same labels, and the words
    manifest = json.loads((tmp_path / "explained" / MANIFEST).read_text())
    assert manifest["fingerprint"]["writing.explain"] == "occlusion" and "words" in manifest["schema"]["topics"]
    rows = list(iter_rows(tmp_path / "explained"))
    assert [(r["doc_id"], r["sentence"], [(t["topic"], t["stance"]) for t in r["topics"]]) for r in rows] == \
        [(r["doc_id"], r["sentence"], [(t["topic"], t["stance"]) for t in r["topics"]]) for r in plain_rows]
    assert _check_words(rows) > 0

    # a listed weight is the fall of the chosen stance's probability when that word is deleted
    classifier = load(eager_model_dir)
    topic_ids = [t.id for t in classifier.topics]
    row, entry = next((r, t) for r in rows for t in r["topics"] if t["words"] and r["sentence_index"] > 0)
    context = next(r["sentence"] for r in rows if r["doc_id"] == row["doc_id"]
                   and r["sentence_index"] == row["sentence_index"] - 1)
    j, k = topic_ids.index(entry["topic"]), STANCES.index(entry["stance"])
    spans = {w: (s, e) for s, e, w in words_of(row["sentence"])}
    top = entry["words"][0]
    full = classifier.probabilities([row["sentence"]], [context])[1][0, j, k].item()
    dropped = classifier.probabilities([without(row["sentence"], [spans[top["word"]]])], [context])[1][0, j, k].item()
    assert top["weight"] == pytest.approx(full - dropped, abs=1e-3)


def test_explain_in_jsonl_parts_and_on_stdout(eager_model_dir, corpus, tmp_path):
    result = _predict(eager_model_dir, corpus, tmp_path / "out", "--explain", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert _check_words(list(iter_rows(tmp_path / "out"))) > 0
    result = runner.invoke(app, ["predict", "--model", str(eager_model_dir), str(corpus), "--explain"])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == len(list(iter_rows(tmp_path / "out"))) and _check_words(printed) > 0


def test_resume_with_a_changed_explain_setting_is_refused(eager_model_dir, corpus, tmp_path):
    assert _predict(eager_model_dir, corpus, tmp_path / "plain").exit_code == 0
    result = _predict(eager_model_dir, corpus, tmp_path / "plain", "--explain")
    assert result.exit_code == 2 and "error:" in result.output and "writing.explain" in result.output
    assert _predict(eager_model_dir, corpus, tmp_path / "explained", "--explain").exit_code == 0
    for extra in ([], ["--explain", "--explain-method", "integrated_gradients"]):
        result = _predict(eager_model_dir, corpus, tmp_path / "explained", *extra)
        assert result.exit_code == 2 and "writing.explain" in result.output, extra
        assert "Traceback" not in result.output
    again = _predict(eager_model_dir, corpus, tmp_path / "explained", "--explain", "--explain-method", "occlusion")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("extra, message", [
    (["--explain-method", "occlusion"], "--explain-method needs --explain"),
    (["--explain", "--explain-method", "integrated_gradients", "--backend", "onnx"], "--backend torch"),
])
def test_explain_options_that_cannot_run_are_refused(tiny_model_dir, corpus, tmp_path, extra, message):
    result = _predict(tiny_model_dir, corpus, tmp_path / "out", *extra)
    assert result.exit_code == 2 and message in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")]
    assert not (tmp_path / "out").exists()


def test_integrated_gradients_in_a_corpus_run(eager_model_dir, corpus, tmp_path):
    """Two labelling threads share the model while Captum hooks its embeddings: the labels stay those of a
    plain run (the windows take the model in turn)."""
    pytest.importorskip("captum", reason="captum is not installed: pip install 'rustance[explain]'")
    plain = _predict(eager_model_dir, corpus, tmp_path / "plain", "--part-sentences", "3", "--workers", "2")
    result = _predict(eager_model_dir, corpus, tmp_path / "ig", "--explain", "--explain-method",
                      "integrated_gradients", "--part-sentences", "3", "--workers", "2")
    assert plain.exit_code == 0 and result.exit_code == 0, plain.output + result.output
    assert json.loads((tmp_path / "ig" / MANIFEST).read_text())["fingerprint"]["writing.explain"] == \
        "integrated_gradients"
    rows, plain_rows = list(iter_rows(tmp_path / "ig")), list(iter_rows(tmp_path / "plain"))
    assert _check_words(rows) > 0
    for a, b in zip(rows, plain_rows, strict=True):
        assert [t["stance"] for t in a["topics"]] == [t["stance"] for t in b["topics"]]
        assert a["sentiment_negative"] == pytest.approx(b["sentiment_negative"], abs=1e-4)


def test_explain_with_min_confidence(eager_model_dir, corpus, tmp_path):
    """An abstaining run (--min-confidence) is explained too: an uncertain stance by its best guess."""
    result = _predict(eager_model_dir, corpus, tmp_path / "out", "--explain", "--min-confidence", "0.4")
    assert result.exit_code == 0, result.output
    schema = pq.read_schema(tmp_path / "out" / "part-00000.parquet")
    assert "uncertain_topics" in schema.names and "words" in str(schema.field("topics").type)
    rows = list(iter_rows(tmp_path / "out"))
    uncertain = [t for r in rows for t in r["topics"] if t["stance"] == "uncertain"]
    assert uncertain and _check_words(rows) > 0
