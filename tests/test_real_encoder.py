"""On the real encoders in ../shared/models (skipped with a message when the folder is absent)."""

import json

import pytest
from typer.testing import CliRunner

from conftest import E5_DIR, TINY2_SHAPE_DIR, toy_records, write_jsonl
from rustance import load
from rustance.cli import app

needs_e5 = pytest.mark.skipif(not (E5_DIR / "model.safetensors").is_file(),
                              reason=f"real encoder not found at {E5_DIR} (../shared/models is absent)")
needs_tiny2 = pytest.mark.skipif(not (TINY2_SHAPE_DIR / "config.json").is_file(),
                                 reason=f"rubert-tiny2 shape not found at {TINY2_SHAPE_DIR}")


@needs_e5
def test_e5_train_save_load_predict_evaluate(tmp_path):
    """Train a few steps on the real multilingual-e5-small encoder, then use the checkpoint."""
    train = write_jsonl(tmp_path / "train.jsonl", toy_records("tr"))
    dev = write_jsonl(tmp_path / "dev.jsonl", toy_records("dv")[:8])
    out = tmp_path / "model"
    result = CliRunner().invoke(app, [
        "train", "--config", "configs/e5-small-offline.yaml", "--set", f"model.name={E5_DIR}",
        "--set", f"data.train={train}", "--set", f"data.dev={dev}", "--set", f"train.output_dir={out}",
        "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "model.max_length=48",
    ])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["base_model"] == str(E5_DIR) and config["encoder_config"]["model_type"] == "bert"
    assert config["pooling"] == "topic_attention" and config["encoder_config"]["num_hidden_layers"] == 6  # the recipe
    assert (out / "tokenizer.json").is_file()

    classifier = load(out)
    doc = "Лавров заявил о готовности к диалогу. Однако в Госдепе США пока увязывают рассмотрение этих тем с политикой."
    results = classifier.predict_document(doc)
    assert len(results) == 2
    assert results[1].text.startswith("Однако")
    assert results[1].sentiment in ("negative", "neutral", "positive")

    result = CliRunner().invoke(app, ["evaluate", "--model", str(out), "--data", str(dev), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert summary["n_sentences"] == 8


@needs_tiny2
def test_default_model_shape_with_real_wordpiece_tokenizer(tmp_path):
    """The default model's real config and tokenizer (random weights): checkpoint format and prediction."""
    from transformers import AutoConfig, AutoTokenizer

    from rustance.labels import load_topics
    from rustance.model import RustanceConfig, StanceModel, sentiment_labels

    config = RustanceConfig(encoder_config=AutoConfig.from_pretrained(TINY2_SHAPE_DIR).to_dict(),
                            topics=[{"id": t.id, "description": t.description} for t in load_topics()],
                            pooling="mean", use_context=True, max_length=64, text_prefix="", **sentiment_labels())
    model = StanceModel(config)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(TINY2_SHAPE_DIR).save_pretrained(tmp_path)
    classifier = load(tmp_path)
    long_sentence = "Санкции " * 400  # far beyond max_length: truncated, not an error
    results = classifier.predict(["Москва готова к диалогу.", long_sentence])
    assert len(results) == 2 and all(len(r.all_topics) == 7 for r in results)
