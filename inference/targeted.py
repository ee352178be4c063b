"""Sentiment toward a target in a sentence: ``load(DIR).predict(sentence, target="Госдеп")``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rustance.inputs import length_batches
from rustance.labels import SENTIMENTS
from rustance.model import ModelLoadError, load_model, resolve_device
from rustance.target_model import encode_targets
from rustance.targets import TargetExample

Target = str | tuple[int, int]


@dataclass
class TargetPrediction:
    """The sentiment of ``text`` toward the span ``start:end`` (``target``)."""

    text: str
    target: str
    start: int
    end: int
    sentiment: str
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {"text": self.text, "target": self.target, "start": self.start, "end": self.end,
                "sentiment": self.sentiment, "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


def to_example(text: str, target: Target, tag: str = "") -> TargetExample:
    """A target given as an entity string (its first occurrence is used) or a ``(start, end)`` span."""
    if isinstance(target, str):
        start = text.find(target) if target else -1
        if start < 0:
            raise ValueError(f"target {target!r} does not occur in the sentence {text[:80]!r}; "
                             "give it as it is written there, or as a (start, end) span")
        return TargetExample(text, start, start + len(target), tag)
    if (isinstance(target, tuple) and len(target) == 2 and all(isinstance(x, int) for x in target)
            and 0 <= target[0] < target[1] <= len(text)):
        return TargetExample(text, target[0], target[1], tag)
    raise ValueError(f"target must be a string in the sentence or a (start, end) span inside it, got {target!r}")


class TargetClassifier:
    """A trained targeted-sentiment model (CPU by default, no gradients)."""

    def __init__(self, model, tokenizer, batch_size: int = 32, device: str = "cpu", precision: str = "fp32"):
        self.settings = model.config.settings
        if self.settings.get("target_marker") is None:
            raise ModelLoadError("this is not a targeted-sentiment model; load it with rustance.load()")
        if precision != "fp32":
            raise ValueError("targeted-sentiment models run in fp32 only")
        device = resolve_device(device)
        self.model = model.to(device).eval()
        self.temperature = (self.settings.get("temperatures") or {}).get("sentiment", 1.0)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = device

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 32, device: str = "cpu") -> "TargetClassifier":
        model, tokenizer = load_model(path)
        return cls(model, tokenizer, batch_size=batch_size, device=device)

    @torch.inference_mode()
    def probabilities(self, examples: list[TargetExample]) -> torch.Tensor:
        """(n, 3) probabilities over negative / neutral / positive, batched by similar length."""
        result = torch.empty(len(examples), len(SENTIMENTS))
        for idx in length_batches([len(example.sentence) for example in examples], self.batch_size):
            batch = encode_targets(self.tokenizer, [examples[i] for i in idx], self.settings)
            out = self.model(**{k: v.to(self.device) for k, v in batch.items()})
            result[idx] = torch.softmax(out["sentiment_logits"].float() / self.temperature, -1).cpu()
        return result

    @staticmethod
    def decode(examples: list[TargetExample], probabilities: torch.Tensor) -> list[TargetPrediction]:
        results = []
        for example, row in zip(examples, probabilities):
            probs = {s: float(row[k]) for k, s in enumerate(SENTIMENTS)}
            results.append(TargetPrediction(example.sentence, example.target, example.start, example.end,
                                            max(probs, key=probs.get), probs))
        return results

    def predict(self, texts: str | list[str], target: Target | list[Target],
                tag: str | list[str] = "") -> list[TargetPrediction]:
        """Sentiment of each sentence toward its target.

        ``target`` is an entity string as written in the sentence (first occurrence) or a ``(start, end)``
        span; one for all sentences or a list with one per sentence. ``tag`` optionally gives the entity
        type (PERSON, ORGANIZATION, PROFESSION, COUNTRY, NATIONALITY) that typed markers show the model.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("predict() takes a string or a list of strings")
        targets = target if isinstance(target, list) else [target] * len(texts)
        tags = tag if isinstance(tag, list) else [tag] * len(texts)
        if len(targets) != len(texts) or len(tags) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(targets)} targets and {len(tags)} tags")
        examples = [to_example(t, tg, tt) for t, tg, tt in zip(texts, targets, tags)]
        return self.decode(examples, self.probabilities(examples)) if examples else []
