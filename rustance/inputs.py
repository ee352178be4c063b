"""Model inputs for sentences and their previous sentence: tokenise once, truncate, batch by length, pad.

A rustance input is ``[CLS] sentence [SEP] context [SEP]`` (the tokenizer's own pair template): the
sentence keeps up to ``max_length`` tokens and the previous sentence (the context) gets only the room the
sentence leaves, keeping its end (the part nearest the sentence). An empty context keeps the same layout,
so training and prediction agree. Without ``use_context``, and with ``context_mode: pooled`` (the previous
sentence is encoded as an input of its own), the input is the tokenizer's single template.

Whole windows of sentences are tokenised in one call of the Rust tokenizer; batches are then cut from the
windows sorted by token length, so padding is small.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rustance.model import pooled_context


@dataclass
class EncodedSentence:
    """Token ids of one model input (special tokens included)."""

    ids: list[int]
    type_ids: list[int]
    truncated: bool  # the sentence itself was cut to fit max_length


class InputBuilder:
    """Turns (sentence, previous sentence) pairs into padded model inputs for one model's settings."""

    def __init__(self, tokenizer, settings: dict):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"rustance needs a fast (Rust) tokenizer; {type(tokenizer).__name__} is not one")
        from tokenizers import Tokenizer

        # a private copy: the transformers wrapper switches padding/truncation on its backend per call
        self.backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.backend.no_padding()
        self.backend.no_truncation()
        self.prefix = settings.get("text_prefix", "")
        self.max_length = int(settings["max_length"])
        self.pooled_context = pooled_context(settings)  # the context is a separate input (batch keys context_*)
        self.use_context = bool(settings.get("use_context")) and not self.pooled_context  # pair inputs
        self.room = self.max_length - self.backend.num_special_tokens_to_add(is_pair=self.use_context)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.with_types = "token_type_ids" in tokenizer.model_input_names
        self._empty = self.backend.encode("", add_special_tokens=False)

    def encode(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[EncodedSentence]:
        """Token ids for every sentence (and its context), truncated to ``max_length``."""
        sentences = self.backend.encode_batch([self.prefix + t for t in texts], add_special_tokens=False)
        if self.use_context:
            contexts = [c or "" for c in contexts] if contexts is not None else [""] * len(texts)
            previous = self.backend.encode_batch(contexts, add_special_tokens=False)
        encoded = []
        for i, sentence in enumerate(sentences):
            truncated = len(sentence) > self.room
            if truncated:
                sentence.truncate(self.room)
            pair = None
            if self.use_context:
                free = self.room - len(sentence)
                pair = previous[i] if free > 0 else self._empty
                if len(pair) > free:
                    pair.truncate(free, direction="left")
            merged = self.backend.post_process(sentence, pair, add_special_tokens=True)
            encoded.append(EncodedSentence(merged.ids, merged.type_ids, truncated))
        return encoded

    def pad(self, items: Sequence[EncodedSentence]) -> dict[str, torch.Tensor]:
        """One batch: ids padded to the longest item, attention mask and (if the model takes them) token types."""
        width = max(len(item.ids) for item in items)
        ids = np.full((len(items), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : len(item.ids)] = item.ids
            types[row, : len(item.ids)] = item.type_ids
            mask[row, : len(item.ids)] = 1
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.with_types:
            batch["token_type_ids"] = torch.from_numpy(types)
        return batch

    def __call__(self, texts: Sequence[str], contexts: Sequence[str] | None = None
                 ) -> tuple[dict[str, torch.Tensor], list[bool]]:
        """Padded inputs for ``texts`` in the given order, and whether each sentence was truncated.

        For a ``pooled`` context model the batch also holds the contexts' inputs, under ``context_*`` keys."""
        items = self.encode(texts, contexts)
        batch = self.pad(items)
        if self.pooled_context:
            context_items = self.encode([c or "" for c in contexts] if contexts is not None else [""] * len(texts))
            batch.update({f"context_{key}": value for key, value in self.pad(context_items).items()})
        return batch, [item.truncated for item in items]


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of ``batch_size`` items of similar length, so padding is small.

    Longest first: the first batch reserves the largest buffers and the shorter ones after it reuse them
    (shortest first made the heap grow with every batch).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    for begin in range(0, len(order), batch_size):
        yield order[begin : begin + batch_size]
