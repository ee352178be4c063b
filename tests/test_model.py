import pytest
import torch

from rustance.labels import load_topics
from rustance.inputs import InputBuilder
from rustance.model import ModelLoadError, build_model, load_checkpoint

TOPICS = load_topics()


def test_build_save_load_roundtrip(tiny_encoder_dir, tmp_path):
    model, tokenizer = build_model(str(tiny_encoder_dir), TOPICS, "mean", True, 64)
    model.eval()
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    config_text = (tmp_path / "m" / "config.json").read_text()
    assert '"id2label"' in config_text and '"rustance"' in config_text
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded, loaded_tokenizer = load_checkpoint(tmp_path / "m")
    batch, _ = InputBuilder(loaded_tokenizer, loaded.config.rustance)(["санкции", "рейсы"], ["", "москва"])
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
        load_checkpoint(tiny_encoder_dir)


def test_num_layers_keeps_the_lowest_pretrained_layers(tiny_encoder_dir, tmp_path):
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(tiny_encoder_dir)
    model, tokenizer = build_model(str(tiny_encoder_dir), TOPICS, "mean", True, 64, num_layers=1)
    assert len(model.encoder.encoder.layer) == 1 and model.config.num_hidden_layers == 1
    torch.testing.assert_close(model.encoder.encoder.layer[0].output.dense.weight,
                               pretrained.encoder.layer[0].output.dense.weight)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert len(load_checkpoint(tmp_path)[0].encoder.encoder.layer) == 1  # reloads with the cut shape
    with pytest.raises(ModelLoadError, match="num_layers=3"):
        build_model(str(tiny_encoder_dir), TOPICS, "mean", True, 64, num_layers=3)
