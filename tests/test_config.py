import pytest

from rustance.config import ConfigError, load_config


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: some/model\ntrain:\n  epochs: 3\n")
    config = load_config(path, ["train.learning_rate=3e-5", "model.use_context=false", "train.max_steps=7"])
    assert config.model.name == "some/model"
    assert config.train.epochs == 3
    assert config.train.learning_rate == pytest.approx(3e-5)
    assert config.model.use_context is False
    assert config.train.max_steps == 7


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.lr=1", "train.lr"),
        ("train.epochs=abc", "train.epochs"),
        ("train.epochs=0", "train.epochs"),
        ("model.pooling=max", "model.pooling"),
        ("train.learning_rate=fast", "train.learning_rate"),
        ("train.metric_for_best=loss", "train.metric_for_best"),
        ("nosection.x=1", "nosection"),
    ],
)
def test_bad_fields_are_named(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


def test_top_level_override_sets_the_task():
    config = load_config(None, ["task=targeted_sentiment", "data.dev=null"])
    assert config.task == "targeted_sentiment" and config.train.metric_for_best == "f1_pn"
    assert load_config(None, []).train.metric_for_best == "overall_macro_f1"
    with pytest.raises(ConfigError, match="must be one of stance, targeted_sentiment"):
        load_config(None, ["task=sarcasm"])
    with pytest.raises(ConfigError, match="names a section"):
        load_config(None, ["train=3"])


def test_training_settings_are_checked():
    config = load_config(None, ["train.bf16=true", "train.gradient_accumulation_steps=4", "train.device=cpu",
                                "train.resume_from_checkpoint=last", "train.report_to=tensorboard"])
    assert config.train.bf16 and config.train.gradient_accumulation_steps == 4
    assert config.data.corpora_dir is None  # $RUSTANCE_CORPORA or ../shared/corpora, resolved when reading
    with pytest.raises(ConfigError, match="train.device"):
        load_config(None, ["train.device=tpu"])
    with pytest.raises(ConfigError, match="train.bf16"):
        load_config(None, ["train.bf16=true", "train.fp16=true"])
