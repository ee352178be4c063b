"""Pooling heads that give every topic a vector of its own from one encoder pass.

``TopicAttentionPooling``: one learned query per topic attends over the sentence's token states
(scaled dot-product attention over the unmasked tokens), so a topic's presence and stance are read from
the tokens that matter for that topic rather than from one mean-pooled vector of the whole sentence.
The queries start from the encoder's own mean-pooled vector of each topic's description, so at step 0
each topic already looks for words close to its description.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TopicAttentionPooling(nn.Module):
    """``(batch, tokens, hidden)`` token states → ``(batch, topics, hidden)`` topic-specific vectors."""

    def __init__(self, n_topics: int, hidden: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_topics, hidden) * 0.02)
        self.key = nn.Linear(hidden, hidden)
        nn.init.eye_(self.key.weight)
        nn.init.zeros_(self.key.bias)
        self.scale = 1.0 / math.sqrt(hidden)

    @torch.no_grad()
    def init_queries(self, vectors: torch.Tensor) -> None:
        """Start the queries from given vectors (one per topic, e.g. encoded topic descriptions)."""
        if vectors.shape != self.queries.shape:
            raise ValueError(f"expected {tuple(self.queries.shape)} query vectors, got {tuple(vectors.shape)}")
        self.queries.copy_(vectors.to(self.queries.dtype))

    def weights(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(batch, topics, tokens)``; masked tokens get weight 0."""
        scores = torch.einsum("bth,kh->bkt", self.key(hidden), self.queries.to(hidden.dtype)) * self.scale
        scores = scores.masked_fill(~mask.bool().unsqueeze(1), torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bkt,bth->bkh", self.weights(hidden, mask), hidden)
