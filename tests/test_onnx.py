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
