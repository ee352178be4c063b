"""Training configuration: YAML file + ``--set section.field=value`` overrides, validated."""

from __future__ import annotations

from rustance.errors import RustanceError
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(RustanceError, ValueError):
    """A configuration problem; the message names the offending field."""


@dataclass
class ModelConfig:
    name: str = "cointegrated/rubert-tiny2"  # hub id or local folder of a BERT-family encoder
    max_length: int = 128  # tokens for sentence + context
    pooling: str = "mean"  # mean | cls | topic_attention (stance: a query per topic over the tokens);
    #                      mean | target (targeted sentiment: mean + target marker)
    use_context: bool = True  # read the previous sentence too (see context_mode)
    context_mode: str = "pooled"  # pooled: the previous sentence encoded alone, its vector joins the sentence's at
    #                               the heads (a corpus run encodes each sentence once) | pair: a second segment
    text_prefix: str = ""  # e.g. "query: " for e5 encoders
    num_layers: int | None = None  # keep only the encoder's lowest N transformer layers (faster); None = all
    target_marker: str = "typed"  # targeted sentiment input: typed | plain | segment (see rustance.targets)


@dataclass
class DataConfig:
    train: str = "data/stance/train.jsonl"
    dev: str | None = "data/stance/dev.jsonl"  # None: split dev off the training file (targeted sentiment)
    dev_fraction: float = 0.15  # share of sentences held out as dev when dev is None
    split_seed: int = 2023  # seed of that split (by sentence: one sentence never straddles train and dev)
    topics: str | None = None  # topic file; None = the default seven
    corpora_dir: str | None = None  # where stand-off records resolve; None = $RUSTANCE_CORPORA or ../shared/corpora


@dataclass
class TrainConfig:
    output_dir: str = "runs/model"
    seed: int = 42
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps (smoke runs)
    batch_size: int = 16
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int = 3  # evaluations without dev improvement before stopping
    class_weights: bool = True
    tune_thresholds: bool = True  # choose per-topic decision thresholds on dev (saved with the model)
    metric_for_best: str | None = None  # None: the task's first (stance: overall_macro_f1; targeted: f1_pn)
    num_threads: int | None = None  # torch threads; None = torch's default
    freeze_embeddings: bool = False  # keep the word-embedding matrix fixed (faster steps with large vocabularies)
    freeze_layers: int = 0  # keep the lowest N transformer layers fixed (faster steps, fewer weights to fit)
    group_by_length: bool = False  # batch sentences of similar length together (less padding)
    calibrate: bool = True  # fit softmax temperatures of the stance/sentiment heads on dev (saved with the model)
    tfidf_fusion: bool = True  # blend a TF-IDF model fitted on train with the heads, weights chosen on dev (stance)
    tfidf_context: bool = True  # the TF-IDF part's topic models also read the previous sentence (with tfidf_fusion)
    device: str = "auto"  # auto (CUDA, then Apple MPS, then CPU) | cpu | cuda | mps
    bf16: bool = False  # bfloat16 mixed precision (autocast): GPUs with bf16, CPUs with AVX512-BF16/AMX
    fp16: bool = False  # float16 mixed precision (CUDA GPUs)
    gradient_accumulation_steps: int = 1  # optimizer step every N batches (effective batch = N * batch_size)
    resume_from_checkpoint: str | None = None  # "last" (the newest in output_dir/checkpoints) or a checkpoint folder
    report_to: str = "none"  # none | tensorboard (logs in output_dir/checkpoints/runs) | any HF Trainer integration
    eval_batch_size: int = 64


@dataclass
class Config:
    task: str = "stance"  # stance (topics + stance + sentiment) | targeted_sentiment (RuSentNE-style)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CONTEXT_MODES = ("pair", "pooled")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _coerce(value: object, kind: object, name: str) -> object:
    """Check ``value`` against a simple annotation (str, int, float, bool, Optional)."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, type(int | None)) else (kind,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"field '{name}' must not be empty")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is float and isinstance(value, str):  # YAML reads "3e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if option is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"field '{name}' must be {wanted}, got {value!r}")


def _build(cls: type, raw: object, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section '{prefix}' must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown field '{(prefix + '.' + key).lstrip('.')}' (known: {', '.join(sorted(known))})")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            if dataclasses.is_dataclass(hints[f.name]):
                values[f.name] = _build(hints[f.name], raw[f.name], f.name)
            else:
                values[f.name] = _coerce(raw[f.name], hints[f.name], f"{prefix}.{f.name}".lstrip("."))
    return cls(**values)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply ``section.field=value`` or a top-level ``field=value`` (e.g. ``task=targeted_sentiment``; the
    value parsed as YAML) to a raw config dict."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like section.field=value (or task=NAME)")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) not in (1, 2) or not all(parts):
        raise ConfigError(f"override key {key!r} must be section.field (e.g. model.name) or a top-level field "
                          "(e.g. task)")
    parsed = yaml.safe_load(value) if value.strip() else None
    if len(parts) == 1:
        if parts[0] in ("model", "data", "train"):
            raise ConfigError(f"override key {key!r} names a section; give section.field, e.g. {parts[0]}.<field>")
        raw[parts[0]] = parsed
        return
    section = raw.setdefault(parts[0], {})
    if not isinstance(section, dict):
        raise ConfigError(f"section '{parts[0]}' must be a mapping")
    section[parts[1]] = parsed


def validate(config: Config) -> Config:
    """Check value ranges and choices; raise :class:`ConfigError` naming the field."""
    from rustance.tasks import TASKS, task_spec

    if config.task not in TASKS:
        raise ConfigError(f"field 'task' must be one of {', '.join(TASKS)}, got {config.task!r}")
    spec = task_spec(config.task)
    metrics, poolings = spec.metrics, spec.poolings
    if config.train.metric_for_best is None:
        config.train.metric_for_best = metrics[0]
    checks = [
        (config.model.max_length >= 8, "model.max_length", "must be at least 8"),
        (config.model.num_layers is None or config.model.num_layers >= 1, "model.num_layers", "must be at least 1"),
        (config.model.pooling in poolings, "model.pooling", f"must be one of {', '.join(poolings)} for this task"),
        (config.model.context_mode in CONTEXT_MODES, "model.context_mode", f"must be one of {', '.join(CONTEXT_MODES)}"),
        (config.model.target_marker in ("typed", "plain", "segment"), "model.target_marker",
         "must be typed, plain or segment"),
        (not (config.model.pooling == "target" and config.model.target_marker == "segment"), "model.pooling",
         "'target' needs an in-sentence marker (target_marker typed or plain)"),
        (not spec.needs_dev_file or config.data.dev is not None, "data.dev",
         f"must name a dev file for the {config.task} task"),
        (0 < config.data.dev_fraction < 1, "data.dev_fraction", "must be between 0 and 1"),
        (config.train.epochs >= 1, "train.epochs", "must be at least 1"),
        (config.train.max_steps is None or config.train.max_steps >= 1, "train.max_steps", "must be at least 1"),
        (config.train.batch_size >= 1, "train.batch_size", "must be at least 1"),
        (config.train.learning_rate > 0, "train.learning_rate", "must be positive"),
        (config.train.head_learning_rate > 0, "train.head_learning_rate", "must be positive"),
        (0 <= config.train.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)"),
        (config.train.patience >= 1, "train.patience", "must be at least 1"),
        (config.train.metric_for_best in metrics, "train.metric_for_best",
         f"must be one of {', '.join(metrics)} for task {config.task}"),
        (config.train.freeze_layers >= 0, "train.freeze_layers", "must be 0 or more"),
        (config.train.num_threads is None or config.train.num_threads >= 1, "train.num_threads", "must be at least 1"),
        (config.train.device in DEVICES, "train.device", f"must be one of {', '.join(DEVICES)}"),
        (not (config.train.bf16 and config.train.fp16), "train.bf16", "and train.fp16 cannot both be true"),
        (config.train.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps", "must be at least 1"),
        (config.train.eval_batch_size >= 1, "train.eval_batch_size", "must be at least 1"),
    ]
    for ok, name, message in checks:
        if not ok:
            raise ConfigError(f"field '{name}' {message}")
    return config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults), apply overrides, validate."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping with model/data/train")
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return validate(_build(Config, raw, ""))
