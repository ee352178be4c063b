import json
import shutil

import pytest
import torch

from rustance.labels import load_topics
from rustance.inputs import InputBuilder
from rustance.model import ModelLoadError, build_model, load_model

TOPICS = load_topics()


def test_build_save_load_roundtrip(tiny_encoder_dir, tmp_path):
    model, tokenizer = build_model(str(tiny_encoder_dir), TOPICS, "mean", True, 64)
    model.eval()
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "rustance" and config["encoder_config"]["model_type"] == "bert"
    assert config["id2label"]["0"] == "negative" and [t["id"] for t in config["topics"]] == [t.id for t in TOPICS]
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded, loaded_tokenizer = load_model(tmp_path / "m")
    batch, _ = InputBuilder(loaded_tokenizer, loaded.config.settings)(["санкции", "рейсы"], ["", "москва"])
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    assert a["stance_logits"].shape == (2, len(TOPICS), 4)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_pretrained_weights_are_really_loaded(tiny_encoder_dir):
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(str(tiny_encoder_dir))
    model, _ = build_model(str(tiny_encoder_dir), TOPICS, "mean", False, 64)
    torch.testing.assert_close(model.encoder.embeddings.word_embeddings.weight,
                               reference.embeddings.word_embeddings.weight)


def test_no_silent_random_encoder(tmp_path, tiny_encoder_dir):
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_model(str(tmp_path / "missing"), TOPICS, "mean", False, 64)
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text((tiny_encoder_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="cannot load a pretrained encoder"):
        build_model(str(weightless), TOPICS, "mean", False, 64)


def test_plain_encoder_is_not_a_rustance_model(tiny_encoder_dir):
    with pytest.raises(ModelLoadError, match="not a trained rustance model"):
        load_model(tiny_encoder_dir)


def test_num_layers_keeps_the_lowest_pretrained_layers(tiny_encoder_dir, tmp_path):
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(tiny_encoder_dir)
    model, tokenizer = build_model(str(tiny_encoder_dir), TOPICS, "mean", True, 64, num_layers=1)
    assert len(model.encoder.encoder.layer) == 1 and model.config.encoder_config.num_hidden_layers == 1
    torch.testing.assert_close(model.encoder.encoder.layer[0].output.dense.weight,
                               pretrained.encoder.layer[0].output.dense.weight)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert len(load_model(tmp_path)[0].encoder.encoder.layer) == 1  # reloads with the cut shape
    with pytest.raises(ModelLoadError, match="num_layers=3"):
        build_model(str(tiny_encoder_dir), TOPICS, "mean", True, 64, num_layers=3)


def _outputs(model, tokenizer):
    batch, _ = InputBuilder(tokenizer, model.config.settings)(["санкции", "рейсы"], ["", "москва"])
    with torch.no_grad():
        return model.eval()(**batch)


def test_auto_classes_round_trip(tiny_pooled_model_dir, tmp_path):
    """A checkpoint is a Hugging Face model: AutoConfig/AutoModel read it, save_pretrained writes it back."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from rustance.model import RustanceConfig, StanceModel

    config = AutoConfig.from_pretrained(tiny_pooled_model_dir)
    assert isinstance(config, RustanceConfig) and config.context_mode == "pooled" and config.hidden_size == 32
    model = AutoModel.from_pretrained(tiny_pooled_model_dir)
    assert type(model) is StanceModel
    model.config.thresholds = {"sanctions": 0.35}
    model.save_pretrained(tmp_path / "again")
    again = AutoModel.from_pretrained(tmp_path / "again")
    assert again.config.thresholds == {"sanctions": 0.35} and again.config.topics == config.topics
    tokenizer = AutoTokenizer.from_pretrained(tiny_pooled_model_dir)
    a, b = _outputs(model, tokenizer), _outputs(again, tokenizer)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def _legacy_copy(model_dir, folder):
    """The same model in the 0.2 layout: the encoder's config with a ``rustance`` block."""
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    legacy = dict(config.pop("encoder_config"))
    legacy["rustance"] = {k: config[k] for k in ("task", "topics", "stances", "pooling", "use_context",
                                                 "context_mode", "max_length", "text_prefix", "base_model")}
    legacy["id2label"] = config["id2label"]
    (folder / "config.json").write_text(json.dumps(legacy))
    return folder


def test_legacy_checkpoint_loads_and_converts(tiny_pooled_model_dir, tmp_path, caplog):
    from transformers import AutoModel, AutoTokenizer

    from rustance.model import convert_checkpoint

    legacy = _legacy_copy(tiny_pooled_model_dir, tmp_path / "old")
    with caplog.at_level("WARNING", logger="rustance"):
        model, tokenizer = load_model(legacy)
    assert "rustance convert" in caplog.text
    reference, _ = load_model(tiny_pooled_model_dir)
    a, b = _outputs(model, tokenizer), _outputs(reference, tokenizer)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    convert_checkpoint(legacy, tmp_path / "new")
    converted = AutoModel.from_pretrained(tmp_path / "new")
    assert "# new\n" in (tmp_path / "new" / "README.md").read_text()
    c = _outputs(converted, AutoTokenizer.from_pretrained(tmp_path / "new"))
    for key in a:
        torch.testing.assert_close(a[key], c[key])
    with pytest.raises(ModelLoadError, match="exists"):
        convert_checkpoint(legacy, tmp_path / "new")


def test_broken_or_foreign_weights_are_a_clear_error(tiny_model_dir, tiny_encoder_dir, tmp_path):
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_model_dir, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cannot load the weights"):
        load_model(truncated)
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_model_dir, foreign)
    shutil.copy(tiny_encoder_dir / "model.safetensors", foreign / "model.safetensors")  # a plain BERT's weights
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_model(foreign)


def test_registry_dispatch(tiny_encoder_dir, tmp_path):
    """The task in the config picks model class, predictor, training task and evaluator from one registry."""
    from transformers import AutoModel

    from rustance import load
    from rustance.inference.predictor import Classifier
    from rustance.inference.targeted import TargetClassifier
    from rustance.target_model import TargetSentimentModel, build_target_model
    from rustance.tasks import TASKS, UnknownTask, task_spec

    assert set(TASKS) == {"stance", "targeted_sentiment"}
    assert task_spec("targeted_sentiment").model_class() is TargetSentimentModel
    assert task_spec("stance").predictor() is Classifier
    for spec in TASKS.values():  # every entry resolves
        assert callable(spec.training_task()) and callable(spec.evaluator()) and callable(spec.report())
    with pytest.raises(UnknownTask, match="known: stance, targeted_sentiment"):
        task_spec("sarcasm")
    model, tokenizer = build_target_model(str(tiny_encoder_dir), "typed", "target", 32)
    model.save_pretrained(tmp_path / "t")
    tokenizer.save_pretrained(tmp_path / "t")
    assert type(AutoModel.from_pretrained(tmp_path / "t")) is TargetSentimentModel
    assert isinstance(load(tmp_path / "t", device="cpu"), TargetClassifier)


def test_device_choice(tiny_model_dir):
    from rustance import load
    from rustance.model import resolve_device

    assert resolve_device("auto") in ("cuda", "mps", "cpu") and resolve_device("cpu") == "cpu"
    assert str(next(load(tiny_model_dir, device="auto").model.parameters()).device).startswith(resolve_device("auto"))
    with pytest.raises(ModelLoadError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            load(tiny_model_dir, device="cuda")
