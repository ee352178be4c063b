"""ONNX export: agreement check, refusal, and the engine on the ONNX backend."""

import json

import pytest
from typer.testing import CliRunner

from conftest import TOY, toy_records, write_jsonl
from rustance.cli import app
from rustance.inference.engine import iter_rows

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install rustance[onnx])")
runner = CliRunner()


def test_export_agrees_and_engine_runs_on_onnx(tiny_model_dir, tmp_path):
    check = write_jsonl(tmp_path / "check.jsonl", toy_records())
    result = runner.invoke(app, ["export-onnx", "--model", str(tiny_model_dir), "--out", str(tmp_path / "onnx"),
                                 "--check", str(check)])
    assert result.exit_code == 0, result.output
    assert "agree with the PyTorch model on 100.00 %" in result.output
    docs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, (t, _, _) in enumerate(TOY)])
    for backend, model, out in (("torch", tiny_model_dir, "a"), ("onnx", tmp_path / "onnx", "b")):
        result = runner.invoke(app, ["predict", "--model", str(model), str(docs), "--output", str(tmp_path / out),
                                     "--backend", backend])
        assert result.exit_code == 0, result.output
    torch_rows, onnx_rows = list(iter_rows(tmp_path / "a")), list(iter_rows(tmp_path / "b"))
    assert [(r["doc_id"], r["sentiment"], [t["topic"] for t in r["topics"]]) for r in torch_rows] == \
           [(r["doc_id"], r["sentiment"], [t["topic"] for t in r["topics"]]) for r in onnx_rows]
    for a, b in zip(torch_rows, onnx_rows):
        assert a["sentiment_negative"] == pytest.approx(b["sentiment_negative"], abs=1e-3)


def test_export_refuses_below_the_agreement_bar(tiny_model_dir, tmp_path):
    check = write_jsonl(tmp_path / "check.jsonl", toy_records())
    result = runner.invoke(app, ["export-onnx", "--model", str(tiny_model_dir), "--out", str(tmp_path / "onnx"),
                                 "--check", str(check), "--min-agreement", "1.01"])
    assert result.exit_code == 2 and "below the required" in result.output
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "onnx.partial").exists()


def test_explain_on_the_onnx_backend(eager_model_dir, tmp_path):
    """predict --explain (occlusion) needs only stance probabilities: the ONNX backend gives the torch words."""
    check = write_jsonl(tmp_path / "check.jsonl", toy_records())
    result = runner.invoke(app, ["export-onnx", "--model", str(eager_model_dir), "--out", str(tmp_path / "onnx"),
                                 "--check", str(check)])
    assert result.exit_code == 0, result.output
    docs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, (t, _, _) in enumerate(TOY[:6])])
    for backend, model, out in (("torch", eager_model_dir, "a"), ("onnx", tmp_path / "onnx", "b")):
        result = runner.invoke(app, ["predict", "--model", str(model), str(docs), "--output", str(tmp_path / out),
                                     "--backend", backend, "--explain"])
        assert result.exit_code == 0, result.output
    torch_rows, onnx_rows = list(iter_rows(tmp_path / "a")), list(iter_rows(tmp_path / "b"))
    listed = 0
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert [t["topic"] for t in a["topics"]] == [t["topic"] for t in b["topics"]]
        for x, y in zip(a["topics"], b["topics"]):
            theirs = {w["word"]: w["weight"] for w in x["words"]}
            for w in y["words"]:  # near-ties may order differently: compare the weights of common words
                if w["word"] in theirs:
                    assert w["weight"] == pytest.approx(theirs[w["word"]], abs=1e-3)
            listed += len(y["words"])
    assert listed > 0
