"""``context_mode: pooled``: the previous sentence encoded on its own, its vector beside the sentence's."""

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import TOY, toy_records, write_jsonl
from rustance import load
from rustance.cli import app
from rustance.config import ConfigError, load_config
from rustance.inference.engine import iter_rows

runner = CliRunner()
TEXTS = [t for t, _, _ in TOY[:5]]
CONTEXTS = ["", *TEXTS[:4]]  # a document: each sentence's context is the one before it


def test_inference_path_equals_the_training_forward(tiny_pooled_model_dir):
    classifier = load(tiny_pooled_model_dir)
    batch, _ = classifier.inputs(TEXTS, CONTEXTS)  # what training feeds the model
    assert "context_input_ids" in batch
    with torch.inference_mode():
        out = classifier.model(**batch)
    topic, stance, sentiment = classifier.probabilities(TEXTS, CONTEXTS)
    torch.testing.assert_close(topic, torch.sigmoid(out["topic_logits"]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(stance, torch.softmax(out["stance_logits"], -1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sentiment, torch.softmax(out["sentiment_logits"], -1), atol=1e-5, rtol=1e-4)


def test_each_sentence_is_encoded_once_and_reused_as_context(tiny_pooled_model_dir):
    classifier = load(tiny_pooled_model_dir)
    rows = []
    original = classifier.model.vectors
    classifier.model.vectors = lambda **batch: rows.append(len(batch["input_ids"])) or original(**batch)
    classifier.probabilities(TEXTS, CONTEXTS)
    assert sum(rows) == len(TEXTS) + 1  # five sentences and the empty context of the first


def test_the_context_changes_the_prediction(tiny_pooled_model_dir):
    classifier = load(tiny_pooled_model_dir)
    with_first, _, _ = classifier.probabilities([TEXTS[1]], [TEXTS[0]])
    with_other, _, _ = classifier.probabilities([TEXTS[1]], [TOY[-1][0]])
    without, _, _ = classifier.probabilities([TEXTS[1]])
    assert not torch.allclose(with_first, with_other) and not torch.allclose(with_first, without)
    torch.testing.assert_close(without, classifier.probabilities([TEXTS[1]], [""])[0])


def test_engine_rows_equal_predict_document(tiny_pooled_model_dir, tmp_path):
    docs = [" ".join(TEXTS[:3]), " ".join(TEXTS[3:])]
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)])
    result = runner.invoke(app, ["predict", "--model", str(tiny_pooled_model_dir), str(data),
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = list(iter_rows(tmp_path / "out"))
    classifier = load(tiny_pooled_model_dir)
    expected = [p for t in docs for p in classifier.predict_document(t)]
    assert [r["sentence"] for r in rows] == [p.text for p in expected]
    for row, p in zip(rows, expected):
        assert row["sentiment"] == p.sentiment
        assert row["sentiment_negative"] == pytest.approx(p.sentiment_probabilities["negative"], abs=1e-4)


def test_training_learns_the_toy_task_and_saves_the_mode(tiny_encoder_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", toy_records("tr"))
    dev = write_jsonl(tmp_path / "dev.jsonl", toy_records("dv"))
    result = runner.invoke(app, ["train", "--set", f"model.name={tiny_encoder_dir}", "--set", f"data.train={train}",
                                 "--set", f"data.dev={dev}", "--set", f"train.output_dir={tmp_path / 'model'}",
                                 "--set", "model.context_mode=pooled", "--set", "model.max_length=32",
                                 "--set", "train.batch_size=6", "--set", "train.learning_rate=0.001",
                                 "--set", "train.head_learning_rate=0.01", "--set", "train.epochs=40",
                                 "--set", "train.patience=40", "--set", "train.warmup_ratio=0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "model" / "dev_metrics.json").read_text())["overall_macro_f1"] > 0.8
    assert load(tmp_path / "model").inputs.pooled_context


def test_context_mode_default_and_bad_value():
    assert load_config(None).model.context_mode == "pooled"
    assert load_config(None, ["model.context_mode=pair"]).model.context_mode == "pair"
    with pytest.raises(ConfigError, match="model.context_mode"):
        load_config(None, ["model.context_mode=concat"])


@pytest.mark.parametrize("pooling", ["mean", "topic_attention"])
def test_onnx_export_agrees_and_runs(tiny_pooled_model_dir, tiny_encoder_dir, tmp_path, pooling):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install rustance[onnx])")
    from rustance.inference.onnx_backend import load_onnx

    if pooling != "mean":  # the vectors of a topic-attention model are (topics + 1) times wider
        from rustance.labels import load_topics
        from rustance.model import build_model

        torch.manual_seed(0)
        model, tokenizer = build_model(str(tiny_encoder_dir), load_topics(), pooling, True, 32, context_mode="pooled")
        tiny_pooled_model_dir = tmp_path / "model"
        model.save_pretrained(tiny_pooled_model_dir)
        tokenizer.save_pretrained(tiny_pooled_model_dir)

    check = write_jsonl(tmp_path / "check.jsonl", toy_records())
    result = runner.invoke(app, ["export-onnx", "--model", str(tiny_pooled_model_dir), "--out",
                                 str(tmp_path / "onnx"), "--check", str(check)])
    assert result.exit_code == 0, result.output
    assert "agree with the PyTorch model on 100.00 %" in result.output
    reference, exported = load(tiny_pooled_model_dir), load_onnx(tmp_path / "onnx")
    for a, b in zip(reference.probabilities(TEXTS, CONTEXTS), exported.probabilities(TEXTS, CONTEXTS)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
