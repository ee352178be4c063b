"""The rustance network as a Hugging Face model: :class:`RustanceConfig` + :class:`RustanceModel`.

A checkpoint is an ordinary Hugging Face folder (``config.json`` with ``model_type: rustance``,
``model.safetensors``, the tokenizer, ``README.md``). Importing this module registers the classes with
``AutoConfig``/``AutoModel``, so ``AutoModel.from_pretrained(folder_or_hub_id)`` returns the task's model
(``StanceModel`` or ``TargetSentimentModel``, chosen by the task registry from ``config.task``).

The stance model: one shared encoder pass, three small heads.

* topic head      — one sigmoid per topic: is the sentence about it?
* stance head     — four logits per topic (a head shared by all topics plus a per-topic part)
* sentiment head  — three logits for the sentence.

Checkpoints of rustance 0.2 (the encoder's own ``config.json`` with a ``rustance`` block) hold the same
weights; :func:`load_model` converts their config on load (with a log line) and ``rustance convert OLD NEW``
writes the converted folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec

from rustance.errors import RustanceError
from rustance.heads import TopicAttentionPooling
from rustance.labels import SENTIMENTS, STANCES, Topic
from rustance.lexical import LexicalModelError
from rustance.tasks import task_spec

logger = logging.getLogger("rustance")

#: files of a model folder besides the weights, config and tokenizer that conversion and saving carry over
SIDE_FILES = ("training_config.yaml", "dev_metrics.json", "history.json", "training_curve.png", "evaluations.json")


class ModelLoadError(RustanceError, RuntimeError):
    """An encoder or checkpoint that cannot be loaded as asked."""


class RustanceConfig(PretrainedConfig):
    """Configuration of a rustance model: the task, its labels and input settings, and the encoder's config.

    ``encoder_config`` is the pretrained encoder's own config (any ``AutoConfig`` model type, BERT by default),
    nested as a sub-config. ``thresholds`` (per-topic decision thresholds) and ``temperatures`` (per-head
    calibration: probabilities are ``softmax(logits / T)``) are set after training, on dev, and so is ``fusion``
    (per-head weights of the network's probabilities against the TF-IDF model in ``tfidf.skops``;
    :mod:`rustance.lexical`).
    """

    model_type = "rustance"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: dict | PretrainedConfig | None = None
    task: str = "stance"
    topics: list | None = None  # [{"id", "description"}] (stance task)
    stances: list | None = None
    pooling: str = "mean"  # mean | cls | topic_attention (stance); mean | target (targeted sentiment)
    use_context: bool = False  # read the previous sentence (stance task)
    context_mode: str = "pair"  # pair: a second segment | pooled: encoded alone, vectors joined at the heads
    max_length: int = 128
    text_prefix: str = ""
    target_marker: str | None = None  # targeted sentiment: typed | plain | segment
    thresholds: dict | None = None  # topic id -> decision threshold (default 0.5)
    temperatures: dict | None = None  # head (stance, sentiment) -> softmax temperature (default 1)
    fusion: dict | None = None  # head (topic, stance, sentiment) -> weight of the network against tfidf.skops
    fusion_temperatures: dict | None = None  # head (stance, sentiment) -> temperature of the blend (default 1)
    base_model: str | None = None  # the pretrained encoder the model was fine-tuned from

    #: the task settings, in the order of the 0.2 ``rustance`` block
    SETTINGS = ("task", "topics", "stances", "pooling", "use_context", "context_mode", "max_length", "text_prefix",
                "target_marker", "thresholds", "temperatures", "fusion", "fusion_temperatures",
                "base_model")

    @property
    def settings(self) -> dict:
        """The task settings as a plain dict (what the input builders and predictors read)."""
        return {key: getattr(self, key) for key in self.SETTINGS}

    @property
    def rustance(self) -> dict:
        """The 0.2 name of :attr:`settings` (read-only)."""
        return self.settings

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    @property
    def num_attention_heads(self) -> int:
        return self.encoder_config.num_attention_heads

    @classmethod
    def from_legacy(cls, config_dict: dict) -> "RustanceConfig":
        """A config from a 0.2 ``config.json`` (the encoder's config with a ``rustance`` block)."""
        encoder = {k: v for k, v in config_dict.items()
                   if k not in ("rustance", "id2label", "label2id", "architectures", "transformers_version")}
        settings = dict(config_dict["rustance"])
        settings.setdefault("context_mode", "pair")  # 0.2 models without the field read their context as pair
        known = {k: settings.pop(k) for k in list(settings) if k in cls.SETTINGS}
        if settings:
            logger.info("ignored 0.2 settings: %s", ", ".join(settings))
        return cls(encoder_config=encoder, **known, **sentiment_labels())


def sentiment_labels() -> dict:
    return {"id2label": dict(enumerate(SENTIMENTS)), "label2id": {label: i for i, label in enumerate(SENTIMENTS)}}


class RustanceModel(PreTrainedModel):
    """A pretrained encoder plus small heads; the task's subclass adds the heads and ``forward``.

    ``RustanceModel.from_pretrained`` / ``AutoModel.from_pretrained`` return the subclass that the task
    registry names for ``config.task``.
    """

    config_class = RustanceConfig
    base_model_prefix = "rustance"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    lexical = None  # a fused model's TF-IDF part (rustance.lexical); saved as tfidf.skops beside the weights

    def __init__(self, config: RustanceConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else _encoder_from_config(config.encoder_config)
        self.pooling = config.pooling
        self.dropout = nn.Dropout(getattr(config.encoder_config, "hidden_dropout_prob", 0.1) or 0.1)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        if cls is RustanceModel:  # the factory: the task decides the class
            config = kwargs.pop("config", None)
            if not isinstance(config, RustanceConfig):
                config = RustanceConfig.from_pretrained(pretrained_model_name_or_path)
            model_class = task_spec(config.task).model_class()
            return model_class.from_pretrained(pretrained_model_name_or_path, *args, config=config, **kwargs)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if getattr(model.config, "fusion", None):  # the TF-IDF part, from the same folder or Hub repository
            from rustance.lexical import find_lexical

            hub = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only", "subfolder",
                                          "force_download", "proxies") if k in kwargs}
            model.lexical = find_lexical(pretrained_model_name_or_path, **hub)
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``, plus the TF-IDF part (``tfidf.skops``) of a fused model (whose
        upload needs ``model.push_to_hub(repo)`` or ``rustance push``, which save first, then upload the folder)."""
        fused = bool(getattr(self.config, "fusion", None))
        if fused and self.lexical is None:
            raise LexicalModelError("config.fusion is set but the model has no TF-IDF part (model.lexical); "
                                    "saving it would give a model that cannot be loaded")
        if fused and kwargs.get("push_to_hub"):
            raise LexicalModelError("save_pretrained(push_to_hub=True) would upload before tfidf.skops is written; "
                                    "use model.push_to_hub(repo) or `rustance push`")
        super().save_pretrained(save_directory, *args, **kwargs)
        if fused:
            from rustance.lexical import save_lexical

            save_lexical(self.lexical, save_directory)

    @classmethod
    def _from_config(cls, config, **kwargs):
        if cls is RustanceModel:
            return task_spec(config.task).model_class()._from_config(config, **kwargs)
        return super()._from_config(config, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:  # the encoder's weights are pretrained
        if isinstance(module, nn.Linear) and not any(module is m for m in self.encoder.modules()):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def hidden_states(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.encoder(**inputs).last_hidden_state

    @staticmethod
    def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def pooled_context(settings: dict) -> bool:
    """Whether a model reads its context as a separately encoded sentence (``context_mode: pooled``)."""
    return bool(settings.get("use_context")) and settings.get("context_mode", "pair") == "pooled"


class StanceModel(RustanceModel):
    """Shared encoder with topic, per-topic stance and sentiment heads.

    With ``context_mode: pair`` (or no context) the heads read the pooled vector of one encoder input.
    With ``context_mode: pooled`` the sentence and its previous sentence are encoded separately and the heads
    read both vectors side by side, so a corpus run encodes every sentence once and reuses it as context.
    """

    def __init__(self, config: RustanceConfig, encoder: nn.Module | None = None):
        super().__init__(config, encoder)
        self.pooled_context = pooled_context(config.settings)
        n_topics, hidden = len(config.topics), config.hidden_size
        parts = 2 if self.pooled_context else 1  # the sentence's vector, then its context's
        self.n_topics, self.parts = n_topics, parts
        if self.pooling == "topic_attention":
            # every topic reads its own vector (topic attention over the tokens) beside the sentence's mean vector
            self.topic_pool = TopicAttentionPooling(n_topics, hidden)
            features = 2 * parts * hidden
            self.topic_weight = nn.Parameter(torch.randn(n_topics, features) * 0.02)
            self.topic_bias = nn.Parameter(torch.zeros(n_topics))
            self.stance_per_topic = nn.Parameter(torch.randn(n_topics, features, len(STANCES)) * 0.02)
            self.sentiment_head = nn.Linear(parts * hidden, len(SENTIMENTS))
        else:
            features = parts * hidden
            self.topic_head = nn.Linear(features, n_topics)
            self.stance_per_topic = nn.Linear(features, n_topics * len(STANCES))
            self.sentiment_head = nn.Linear(features, len(SENTIMENTS))
        self.stance_shared = nn.Linear(features, len(STANCES))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, TopicAttentionPooling):  # keys start as the identity (queries: topic descriptions)
            with torch.no_grad():
                nn.init.eye_(module.key.weight)
                nn.init.zeros_(module.key.bias)
            return
        if getattr(self, "topic_pool", None) is not None and module is self.topic_pool.key:
            return
        super()._init_weights(module)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One flat vector per input: the [CLS] or mean vector; with ``topic_attention`` pooling, the topics'
        attention vectors and the mean vector, flattened (``(topics + 1) * hidden`` values), so callers that
        cache, join and feed vectors to :meth:`heads` need not know the pooling."""
        if self.pooling == "cls":
            return hidden[:, 0]
        mean = self.mean_pool(hidden, mask)
        if self.pooling != "topic_attention":
            return mean
        return torch.cat([self.topic_pool(hidden, mask), mean.unsqueeze(1)], dim=1).flatten(1)

    def vectors(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """The pooled encoder vector of each input."""
        return self.pool(self.hidden_states(input_ids, attention_mask, token_type_ids), attention_mask)

    def heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits from pooled features (the sentence's vector, then its context's with ``pooled`` context)."""
        if self.pooling == "topic_attention":
            return self._topic_attention_heads(features)
        features = self.dropout(features)
        batch = features.shape[0]
        stance = self.stance_shared(features).unsqueeze(1) + self.stance_per_topic(features).view(
            batch, -1, len(STANCES))
        return {
            "topic_logits": self.topic_head(features),
            "stance_logits": stance,
            "sentiment_logits": self.sentiment_head(features),
        }

    def _topic_attention_heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, k = features.shape[0], self.n_topics
        parts = features.view(batch, self.parts, k + 1, -1)  # (batch, sentence/context, topics + mean, hidden)
        topic_vectors = parts[:, :, :k].transpose(1, 2).flatten(2)  # (batch, topics, parts * hidden)
        means = parts[:, :, k].flatten(1)  # (batch, parts * hidden)
        per_topic = self.dropout(torch.cat([topic_vectors, means.unsqueeze(1).expand(-1, k, -1)], dim=-1))
        weight = self.topic_weight.to(per_topic.dtype)
        return {
            "topic_logits": torch.einsum("bkf,kf->bk", per_topic, weight) + self.topic_bias,
            "stance_logits": self.stance_shared(per_topic)
            + torch.einsum("bkf,kfs->bks", per_topic, self.stance_per_topic.to(per_topic.dtype)),
            "sentiment_logits": self.sentiment_head(self.dropout(means)),
        }

    @torch.no_grad()
    def init_topic_queries(self, tokenizer, text_prefix: str = "") -> None:
        """Start the topic-attention queries from the encoder's mean vector of each topic's description."""
        if self.pooling != "topic_attention":
            return
        was_training = self.training
        self.eval()
        texts = [text_prefix + t["description"] for t in self.config.topics]
        batch = tokenizer(texts, padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = self.hidden_states(**batch)
        self.topic_pool.init_queries(self.mean_pool(hidden, batch["attention_mask"]))
        self.train(was_training)

    def forward(self, input_ids, attention_mask, token_type_ids=None, context_input_ids=None,
                context_attention_mask=None, context_token_type_ids=None, **_) -> dict[str, torch.Tensor]:
        features = self.vectors(input_ids, attention_mask, token_type_ids)
        if self.pooled_context:
            if context_input_ids is None:
                raise ValueError("this model reads the previous sentence separately: pass context_input_ids")
            context = self.vectors(context_input_ids, context_attention_mask, context_token_type_ids)
            features = torch.cat([features, context], dim=-1)
        return self.heads(features)


AutoConfig.register("rustance", RustanceConfig, exist_ok=True)
AutoModel.register(RustanceConfig, RustanceModel, exist_ok=True)


def _encoder_from_config(config: PretrainedConfig) -> nn.Module:
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def _load_encoder(name: str) -> nn.Module:
    """Load pretrained encoder weights; never fall back to random weights."""
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise ModelLoadError(f"model folder {name!r} does not exist")
    try:
        try:
            encoder, info = AutoModel.from_pretrained(name, add_pooling_layer=False, output_loading_info=True)
        except TypeError:
            encoder, info = AutoModel.from_pretrained(name, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load a pretrained encoder from {name!r}: {exc}\n"
            "Give a local folder with config.json and weights, or a Hugging Face Hub id reachable from here."
        ) from exc
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
    if missing:
        raise ModelLoadError(
            f"{name!r} lacks {len(missing)} encoder weights (e.g. {sorted(missing)[:3]}); "
            "refusing to train from random weights"
        )
    return encoder


def load_pretrained(name: str) -> tuple[nn.Module, object]:
    """The pretrained encoder ``name`` and its tokenizer (hub id or local folder)."""
    encoder = _load_encoder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {name!r}: {exc}") from exc
    return encoder, tokenizer


def new_config(encoder: nn.Module, task: str, **settings) -> RustanceConfig:
    """A :class:`RustanceConfig` for a fresh model on ``encoder`` (its config is nested, copied)."""
    return RustanceConfig(encoder_config=encoder.config.to_dict(), task=task, **settings, **sentiment_labels())


def build_model(
    name: str, topics: tuple[Topic, ...], pooling: str, use_context: bool, max_length: int, text_prefix: str = "",
    context_mode: str = "pair", num_layers: int | None = None,
) -> tuple[StanceModel, object]:
    """A fresh stance model on top of the pretrained encoder ``name`` (only its lowest ``num_layers``
    transformer layers, if given), and its tokenizer."""
    encoder, tokenizer = load_pretrained(name)
    if num_layers is not None:
        keep_lowest_layers(encoder, num_layers)
    config = new_config(
        encoder, "stance", topics=[{"id": t.id, "description": t.description} for t in topics],
        stances=list(STANCES), pooling=pooling, use_context=use_context, context_mode=context_mode,
        max_length=max_length, text_prefix=text_prefix, base_model=name)
    model = StanceModel(config, encoder=encoder)
    model.init_topic_queries(tokenizer, text_prefix)
    return model, tokenizer


def build_from_config(config) -> tuple[StanceModel, object]:
    """The task registry's builder: a fresh stance model from a training :class:`rustance.config.Config`."""
    from rustance.labels import load_topics

    m = config.model
    return build_model(m.name, load_topics(config.data.topics), m.pooling, m.use_context, m.max_length,
                       m.text_prefix, m.context_mode, m.num_layers)


def transformer_layers(encoder: nn.Module, n: int, option: str) -> nn.ModuleList:
    """The BERT-style transformer layers of ``encoder``, checked to number at least ``n`` (``option`` names the
    setting that asked for them, in the error)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None or not 1 <= n <= len(layers):
        raise ModelLoadError(f"{option}={n}: the encoder has "
                             f"{len(layers) if layers is not None else 'no BERT-style'} layers")
    return layers


def keep_lowest_layers(encoder: nn.Module, n: int) -> None:
    """Cut a BERT-style encoder to its lowest ``n`` transformer layers (a shallower, faster model)."""
    encoder.encoder.layer = transformer_layers(encoder, n, "model.num_layers")[:n]
    encoder.config.num_hidden_layers = n


def resolve_device(device: str | None = "auto") -> str:
    """``auto``: CUDA, else Apple MPS, else CPU (the order the HF Trainer uses); an explicit device is checked."""
    device = device or "auto"
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"device must be auto, cpu, cuda or mps, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device cuda asked for, but torch sees no CUDA GPU here (this torch build: "
                             f"{torch.__version__}); use --device cpu or auto")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ModelLoadError("device mps asked for, but torch sees no Apple GPU here; use --device cpu or auto")
    return device


def _read_config_dict(path: Path) -> dict:
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}/config.json cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}/config.json is not a JSON object")
    return data


def is_legacy_checkpoint(path: str | Path) -> bool:
    """A 0.2 checkpoint: the encoder's own config.json with a ``rustance`` block."""
    path = Path(path)
    if not (path / "config.json").is_file():
        return False
    data = _read_config_dict(path)
    return data.get("model_type") != "rustance" and isinstance(data.get("rustance"), dict)


def load_config(path: str | Path) -> RustanceConfig:
    """The :class:`RustanceConfig` of a model folder or Hub id (0.2 folders converted in memory)."""
    local = Path(path)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"{local} is not a rustance model folder (no config.json)")
        data = _read_config_dict(local)
        if data.get("model_type") != "rustance":
            if isinstance(data.get("rustance"), dict):
                return RustanceConfig.from_legacy(data)
            raise ModelLoadError(f"{local} holds a plain encoder, not a trained rustance model "
                                 f"(model_type {data.get('model_type')!r})")
    elif str(path).startswith(("/", ".", "~")) or local.exists() or str(path).count("/") != 1:
        raise ModelLoadError(f"{path} is not a rustance model folder (no such folder; a Hub id looks like org/name)")
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a rustance model from {str(path)!r}: {exc}") from exc
    if not isinstance(config, RustanceConfig):
        raise ModelLoadError(f"{path} holds a plain encoder, not a trained rustance model")
    return config


def load_model(path: str | Path, device: str | None = None) -> tuple[RustanceModel, object]:
    """Load a trained rustance model (a folder or a Hub id) and its tokenizer, in eval mode.

    A 0.2 folder is converted in memory, with a log line naming ``rustance convert``. Truncated weights,
    weights of another architecture or missing files are a :class:`ModelLoadError`, never random weights."""
    config = load_config(path)
    local = Path(path)
    if local.is_dir():
        if not (local / "model.safetensors").is_file():
            raise ModelLoadError(f"{local} has no model.safetensors")
        if is_legacy_checkpoint(local):
            logger.warning("%s is a rustance 0.2 checkpoint: converted on load; save it converted with "
                           "`rustance convert %s NEW_FOLDER`", local, local)
    model_class = task_spec(config.task).model_class()
    try:
        model, info = model_class.from_pretrained(str(path), config=config, output_loading_info=True)
    except LexicalModelError as exc:  # the weights loaded; the TF-IDF part did not
        raise ModelLoadError(str(exc)) from exc
    except Exception as exc:  # safetensors, torch and hub errors have no common base class
        raise ModelLoadError(f"cannot load the weights of {path}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''} (a truncated or foreign "
                             "model.safetensors?)") from exc
    problems = {name: info.get(name) for name in ("missing_keys", "unexpected_keys", "mismatched_keys")
                if info.get(name)}
    if problems:
        detail = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {sorted(map(str, v))[0]})"
                           for k, v in problems.items())
        raise ModelLoadError(f"{path}/model.safetensors does not fit a rustance {config.task} model: {detail}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {path}: {exc}") from exc
    model.eval()
    if device is not None:
        model.to(resolve_device(device))
    return model, tokenizer


def load_checkpoint(path: str | Path) -> tuple[RustanceModel, object]:
    """The 0.2 name of :func:`load_model` (CPU)."""
    return load_model(path)


def convert_checkpoint(old: str | Path, new: str | Path) -> Path:
    """Write a 0.2 checkpoint folder ``old`` as a 0.3 folder ``new`` (which must not exist): the same weights
    with a :class:`RustanceConfig`, the tokenizer, the side files and a model card."""
    old, new = Path(old), Path(new)
    if new.exists():
        raise ModelLoadError(f"{new} exists; choose a new folder for the converted model")
    if not is_legacy_checkpoint(old):
        raise ModelLoadError(f"{old} is not a rustance 0.2 checkpoint (no 'rustance' block in its config.json)")
    model, tokenizer = load_model(old)
    tmp = new.with_name(f".{new.name}.converting")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for name in SIDE_FILES:
        if (old / name).is_file():
            shutil.copy2(old / name, tmp / name)
    from rustance.card import write_model_card

    write_model_card(tmp, name=new.name)
    tmp.rename(new)
    return new
