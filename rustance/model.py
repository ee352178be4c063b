"""The rustance network: one shared encoder pass, three small heads.

* topic head      — one sigmoid per topic: is the sentence about it?
* stance head     — four logits per topic (a head shared by all topics plus a per-topic part)
* sentiment head  — three logits for the sentence.

Saved with ``save_pretrained``: the encoder's own config (so ``AutoConfig`` reads it) with
``id2label``/``label2id`` for sentiment and a ``rustance`` block for topics and settings,
the tokenizer, and ``model.safetensors``.
"""

from __future__ import annotations

from rustance.errors import RustanceError
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel

from rustance.labels import SENTIMENTS, STANCES, Topic


class ModelLoadError(RustanceError, RuntimeError):
    """An encoder or checkpoint that cannot be loaded as asked."""


class EncoderModel(PreTrainedModel):
    """A pretrained encoder plus small heads; subclasses add the heads and ``forward``."""

    config_class = PretrainedConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, config: PretrainedConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else _encoder_from_config(config)
        self.pooling = config.rustance.get("pooling", "mean")
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.1) or 0.1)

    def _init_weights(self, module: nn.Module) -> None:  # weights come from the encoder or the heads' init
        pass

    @staticmethod
    def _init_heads(*heads: nn.Linear) -> None:
        for head in heads:
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)

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


class StanceModel(EncoderModel):
    """Shared encoder with topic, per-topic stance and sentiment heads.

    With ``context_mode: pair`` (or no context) the heads read the pooled vector of one encoder input.
    With ``context_mode: pooled`` the sentence and its previous sentence are encoded separately and the heads
    read both vectors side by side, so a corpus run encodes every sentence once and reuses it as context.
    """

    def __init__(self, config: PretrainedConfig, encoder: nn.Module | None = None):
        super().__init__(config, encoder)
        self.pooled_context = pooled_context(config.rustance)
        n_topics, hidden = len(config.rustance["topics"]), config.hidden_size
        features = 2 * hidden if self.pooled_context else hidden
        self.topic_head = nn.Linear(features, n_topics)
        self.stance_shared = nn.Linear(features, len(STANCES))
        self.stance_per_topic = nn.Linear(features, n_topics * len(STANCES))
        self.sentiment_head = nn.Linear(features, len(SENTIMENTS))
        self._init_heads(self.topic_head, self.stance_shared, self.stance_per_topic, self.sentiment_head)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0] if self.pooling == "cls" else self.mean_pool(hidden, mask)

    def vectors(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """The pooled encoder vector of each input."""
        return self.pool(self.hidden_states(input_ids, attention_mask, token_type_ids), attention_mask)

    def heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits from pooled features (the sentence's vector, then its context's with ``pooled`` context)."""
        features = self.dropout(features)
        batch = features.shape[0]
        stance = self.stance_shared(features).unsqueeze(1) + self.stance_per_topic(features).view(
            batch, -1, len(STANCES))
        return {
            "topic_logits": self.topic_head(features),
            "stance_logits": stance,
            "sentiment_logits": self.sentiment_head(features),
        }

    def forward(self, input_ids, attention_mask, token_type_ids=None, context_input_ids=None,
                context_attention_mask=None, context_token_type_ids=None, **_) -> dict[str, torch.Tensor]:
        features = self.vectors(input_ids, attention_mask, token_type_ids)
        if self.pooled_context:
            if context_input_ids is None:
                raise ValueError("this model reads the previous sentence separately: pass context_input_ids")
            context = self.vectors(context_input_ids, context_attention_mask, context_token_type_ids)
            features = torch.cat([features, context], dim=-1)
        return self.heads(features)


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
            f"{name!r} lacks {len(missing)} encoder weights (e.g. {missing[:3]}); refusing to train from random weights"
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


def build_model(
    name: str, topics: tuple[Topic, ...], pooling: str, use_context: bool, max_length: int, text_prefix: str = "",
    context_mode: str = "pair", num_layers: int | None = None,
) -> tuple[StanceModel, object]:
    """A fresh rustance model on top of the pretrained encoder ``name`` (only its lowest ``num_layers``
    transformer layers, if given), and its tokenizer."""
    encoder, tokenizer = load_pretrained(name)
    if num_layers is not None:
        keep_lowest_layers(encoder, num_layers)
    with_settings(encoder.config, {
        "task": "stance",
        "topics": [{"id": t.id, "description": t.description} for t in topics],
        "stances": list(STANCES),
        "pooling": pooling,
        "use_context": use_context,
        "context_mode": context_mode,
        "max_length": max_length,
        "text_prefix": text_prefix,
        "base_model": name,
    })
    return StanceModel(encoder.config, encoder=encoder), tokenizer


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


def with_settings(config: PretrainedConfig, settings: dict) -> PretrainedConfig:
    """Store the ``rustance`` settings block and the sentiment labels in an encoder config (saved with it)."""
    config.rustance = settings
    config.id2label = dict(enumerate(SENTIMENTS))
    config.label2id = {label: i for i, label in enumerate(SENTIMENTS)}
    return config


def load_checkpoint(path: str | Path) -> tuple[EncoderModel, object]:
    """Load a model saved by ``rustance train`` (a folder), in eval mode."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is not a rustance model folder (no config.json)")
    config = AutoConfig.from_pretrained(path)
    if not hasattr(config, "rustance"):
        raise ModelLoadError(f"{path} holds a plain encoder, not a trained rustance model (no 'rustance' block)")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"{path} has no model.safetensors")
    from safetensors.torch import load_file

    if config.rustance.get("task", "stance") == "targeted_sentiment":
        from rustance.target_model import TargetSentimentModel as model_class
    else:
        model_class = StanceModel
    model = model_class(config)
    model.load_state_dict(load_file(str(weights)), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model.eval(), tokenizer

