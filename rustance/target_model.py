"""Entity-targeted sentiment: an encoder that reads a sentence with its target marked, one 3-way head.

Pooling ``target`` concatenates the mean of all tokens with the hidden state of the opening target
marker (the "entity start" representation); ``mean`` uses the mean only (needed for the ``segment``
input, which has no marker in the sentence).
"""

from __future__ import annotations

import torch
from torch import nn
from rustance.labels import SENTIMENTS
from rustance.model import RustanceConfig, RustanceModel, load_pretrained, new_config
from rustance.targets import TargetExample, mark_target


class TargetSentimentModel(RustanceModel):
    """Sentiment (negative / neutral / positive) toward the marked target of a sentence."""

    def __init__(self, config: RustanceConfig, encoder: nn.Module | None = None):
        super().__init__(config, encoder)
        width = config.hidden_size * (2 if self.pooling == "target" else 1)
        self.sentiment_head = nn.Linear(width, len(SENTIMENTS))
        self.post_init()

    def forward(self, input_ids, attention_mask, token_type_ids=None, marker_index=None, **_):
        hidden = self.hidden_states(input_ids, attention_mask, token_type_ids)
        pooled = self.mean_pool(hidden, attention_mask)
        if self.pooling == "target":
            index = marker_index if marker_index is not None else torch.zeros(len(hidden), dtype=torch.long)
            pooled = torch.cat([pooled, hidden[torch.arange(len(hidden)), index]], dim=-1)
        return {"sentiment_logits": self.sentiment_head(self.dropout(pooled))}


def build_target_model(name: str, marker: str, pooling: str, max_length: int, text_prefix: str = ""
                       ) -> tuple[TargetSentimentModel, object]:
    """A fresh targeted-sentiment model on the pretrained encoder ``name``, and its tokenizer."""
    if pooling == "target" and marker == "segment":
        raise ValueError("model.pooling 'target' needs an in-sentence marker; use target_marker typed or plain")
    encoder, tokenizer = load_pretrained(name)
    config = new_config(encoder, "targeted_sentiment", target_marker=marker, pooling=pooling, max_length=max_length,
                        text_prefix=text_prefix, base_model=name)
    return TargetSentimentModel(config, encoder=encoder), tokenizer


def build_from_config(config) -> tuple[TargetSentimentModel, object]:
    """The task registry's builder: a fresh model from a training :class:`rustance.config.Config`."""
    m = config.model
    return build_target_model(m.name, m.target_marker, m.pooling, m.max_length, m.text_prefix)


def encode_targets(tokenizer, examples: list[TargetExample], settings: dict, tensors: bool = True) -> dict:
    """Tokenise examples with their targets marked; ``marker_index`` points at the opening marker
    (0, the first token, when it was cut off or there is none). ``tensors=False``: unpadded lists (for
    ``datasets.Dataset.map``)."""
    prefix = settings.get("text_prefix") or ""
    marked = [mark_target(e, settings["target_marker"]) for e in examples]
    texts = [prefix + text for text, _, _ in marked]
    kwargs = dict(truncation=True, max_length=settings["max_length"])
    if tensors:
        kwargs.update(padding=True, return_tensors="pt")
    if settings["target_marker"] == "segment":
        batch = tokenizer(texts, [segment for _, segment, _ in marked], **kwargs)
    else:
        batch = tokenizer(texts, **kwargs)
    index = []
    for row, (_, _, char) in enumerate(marked):
        token = batch.char_to_token(row, len(prefix) + char) if char is not None else None
        index.append(token or 0)
    inputs = dict(batch)
    inputs["marker_index"] = torch.tensor(index, dtype=torch.long) if tensors else index
    return inputs
