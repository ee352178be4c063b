"""``load(DIR).predict([...])``: typed predictions from a trained rustance model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rustance.calibration import UNCERTAIN, check_min_confidence, detection_confidence, head_probabilities
from rustance.labels import SENTIMENTS, STANCES, Topic
from rustance.lexical import blend, check_weights
from rustance.metrics import Labels
from rustance.inputs import EncodedSentence, InputBuilder, length_batches
from rustance.model import ModelLoadError, load_model, resolve_device
from rustance.text import split_sentences


@dataclass
class TopicStance:
    """The stance a sentence takes toward one topic."""

    topic: str
    probability: float  # that the sentence is about the topic
    stance: str
    stance_probabilities: dict[str, float]
    words: list | None = field(default=None, repr=False)  # predict(explain=True): rustance.explain.WordWeight list


@dataclass
class SentencePrediction:
    """Everything rustance says about one sentence."""

    text: str
    topics: list[TopicStance]  # topics the sentence is about, most probable first
    sentiment: str
    sentiment_probabilities: dict[str, float]
    start: int | None = None  # offsets in the document (predict_document only)
    end: int | None = None
    all_topics: list[TopicStance] = field(default_factory=list, repr=False)  # every topic, any probability
    truncated: bool = False  # the sentence was longer than the model's max length and was cut
    # with min_confidence: topics whose presence is uncertain (decision confidence below it), most probable
    # first; they are not in ``topics``. None when no min_confidence was given.
    uncertain_topics: list[TopicStance] | None = None

    def to_row(self) -> dict:
        """The prediction as one flat row, the shape of the corpus engines' output (Parquet/JSONL) and of
        ``predict --format jsonl``: ``sentence``, ``start``, ``end``, ``topics`` (a list of ``{topic, stance,
        probability, <stance>: probability...}``, most probable first), with ``min_confidence`` also
        ``uncertain_topics`` (same shape), ``sentiment``, ``sentiment_<label>`` probabilities and ``truncated``.
        Probabilities are rounded to 4 decimals."""
        def entries(topics: list[TopicStance]) -> list[dict]:
            return [{"topic": t.topic, "stance": t.stance, "probability": round(t.probability, 4),
                     **{s: round(t.stance_probabilities[s], 4) for s in STANCES},
                     **({"words": [w.to_dict() for w in t.words]} if t.words is not None else {})} for t in topics]

        return {
            "start": self.start, "end": self.end, "sentence": self.text,
            "topics": entries(self.topics),
            **({"uncertain_topics": entries(self.uncertain_topics)} if self.uncertain_topics is not None else {}),
            "sentiment": self.sentiment,
            **{f"sentiment_{s}": round(self.sentiment_probabilities[s], 4) for s in SENTIMENTS},
            "truncated": self.truncated,
        }

    def to_labels(self) -> Labels:
        """The prediction in the shape used by :mod:`rustance.metrics`."""
        return Labels(
            topics={t.topic: t.stance for t in self.topics},
            sentiment=self.sentiment,
            stance_for={t.topic: t.stance for t in self.all_topics},
        )


class Classifier:
    """A trained rustance model ready for prediction (CPU by default, no gradients)."""

    def __init__(self, model, tokenizer, batch_size: int = 32, device: str = "cpu", precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.precision = precision  # bf16: autocast matmuls to bfloat16 (about 2x on CPUs with AVX512-BF16/AMX)
        self.settings = model.config.settings
        device = resolve_device(device)
        if not self.settings.get("topics"):
            raise ModelLoadError("this is a targeted-sentiment model; load it with rustance.load(), which "
                                 "returns a TargetClassifier (predict(sentence, target=...))")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.inputs = InputBuilder(tokenizer, self.settings)
        self.batch_size = batch_size
        self.device = device
        self.topics = tuple(Topic(t["id"], t.get("description", "")) for t in self.settings["topics"])
        self.thresholds = self.settings.get("thresholds") or {}
        self.temperatures = self.settings.get("temperatures") or {}  # calibration fitted on dev (1 = none)
        # TF-IDF fusion (rustance.lexical): per-head weights of the network, and the TF-IDF model
        self.fusion = check_weights(self.settings.get("fusion"))
        self.lexical = getattr(model, "lexical", None) if self.fusion else None
        self.fusion_temperatures = self.settings.get("fusion_temperatures") or {}  # calibration of the blend
        if self.fusion and self.lexical is None:
            raise ModelLoadError("the model has config.fusion but no TF-IDF part (tfidf.skops) was loaded with it")

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 32, device: str = "cpu", precision: str = "fp32") -> "Classifier":
        model, tokenizer = load_model(path)
        return cls(model, tokenizer, batch_size=batch_size, device=device, precision=precision)

    @torch.inference_mode()
    def probabilities(self, texts: list[str], contexts: list[str] | None = None, with_truncation: bool = False):
        """Topic, stance and sentiment probabilities (stance and sentiment calibrated with the model's softmax
        temperatures), in batches of similar token length; see :meth:`logits`. With ``with_truncation`` also
        returns, per sentence, whether it was cut to the model's max length."""
        logits, truncated = self.logits(texts, contexts)
        probabilities = self.scale(logits, lexical=self.lexical_probabilities(texts, contexts))
        return (*probabilities, truncated) if with_truncation else probabilities

    def lexical_probabilities(self, texts: list[str], contexts: list[str] | None = None) -> tuple | None:
        """The TF-IDF part's ``(topic, stance, sentiment)`` probabilities of ``texts`` (NumPy), or None for a model
        without fusion. A TF-IDF part fitted with ``train.tfidf_context`` reads each sentence's previous sentence
        (``contexts``) for its topic decisions; others read the sentence alone."""
        if self.lexical is None or not texts:
            return None
        return self.lexical.probabilities(list(texts), None if contexts is None else list(contexts))

    def scale(self, logits: dict[str, torch.Tensor], temperatures: dict[str, float] | None = None,
              lexical: tuple | None = None):
        """``(topic, stance, sentiment)`` probabilities from :meth:`logits`: sigmoid for topics, softmax of the
        logits divided by the head's temperature (``temperatures``, default the model's; ``{}`` for none); with
        ``lexical`` (:meth:`lexical_probabilities` of the same texts) blended with the TF-IDF part by the
        model's fusion weights and calibrated by its fusion temperatures (:func:`rustance.lexical.blend`;
        ``temperatures={}`` leaves out both calibrations)."""
        uncalibrated = temperatures is not None and not temperatures
        temperatures = self.temperatures if temperatures is None else temperatures
        network = head_probabilities(logits, temperatures)
        if lexical is None or self.fusion is None:
            return network
        return blend(network, lexical, self.fusion, {} if uncalibrated else self.fusion_temperatures)

    @torch.inference_mode()
    def logits(self, texts: list[str], contexts: list[str] | None = None) -> tuple[dict[str, torch.Tensor], list[bool]]:
        """The heads' logits (``topic_logits``, ``stance_logits``, ``sentiment_logits``; fp32, CPU) and, per
        sentence, whether it was cut to the model's max length.

        Repeated inputs are computed once: the same sentence (with the same previous sentence, for models
        that read it as a second segment). A ``pooled`` context model encodes every distinct sentence and
        context once, so in a document each sentence's vector also serves as the next one's context.
        """
        if not texts:
            return ({"topic_logits": torch.empty(0, len(self.topics)),
                     "stance_logits": torch.empty(0, len(self.topics), len(STANCES)),
                     "sentiment_logits": torch.empty(0, len(SENTIMENTS))}, [])
        if self.inputs.pooled_context:
            contexts = contexts if contexts is not None else [""] * len(texts)
            slots: dict[str, int] = {}
            sentence_slot = [slots.setdefault(text, len(slots)) for text in texts]
            context_slot = [slots.setdefault(context or "", len(slots)) for context in contexts]
            items = self.inputs.encode(list(slots))
            vectors = self._run(items, lambda batch: {"vector": self.model.vectors(**batch)})["vector"]
            features = torch.cat([vectors[sentence_slot], vectors[context_slot]], dim=-1).to(self.device)
            with self._autocast():
                logits = {k: v.float().cpu() for k, v in self.model.heads(features).items()}
            truncated = [items[i].truncated for i in sentence_slot]
        else:
            use_context = self.inputs.use_context and contexts is not None
            pairs: dict[tuple[str, str], int] = {}
            keys = zip(texts, contexts) if use_context else ((text, "") for text in texts)
            inverse = [pairs.setdefault((text, context or ""), len(pairs)) for text, context in keys]
            items = self.inputs.encode([text for text, _ in pairs], [context for _, context in pairs])
            logits = {k: v[inverse] for k, v in self._run(items, lambda batch: self.model(**batch)).items()}
            truncated = [items[i].truncated for i in inverse]
        return logits, truncated

    def _autocast(self):
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _run(self, items: list[EncodedSentence], step) -> dict[str, torch.Tensor]:
        """``step(batch)`` over ``items`` in length batches; every output back in the items' order (fp32, CPU)."""
        outputs: dict[str, torch.Tensor] = {}
        for idx in length_batches([len(item.ids) for item in items], self.batch_size):
            batch = self.inputs.pad([items[i] for i in idx])
            with self._autocast():
                out = step({k: v.to(self.device) for k, v in batch.items()})
            for key, value in out.items():
                if key not in outputs:
                    outputs[key] = torch.empty((len(items), *value.shape[1:]))
                outputs[key][idx] = value.float().cpu()
        return outputs

    def predict(self, texts: str | list[str], contexts: list[str] | None = None,
                explain: bool = False, min_confidence: float | None = None) -> list[SentencePrediction]:
        """Label sentences; ``contexts`` (the previous sentence of each) is optional. With ``explain`` every
        topic also gets ``words``: the words that most raised its stance (word occlusion, :mod:`rustance.explain`;
        about one extra model input per word). With ``min_confidence`` (between 0 and 1) predictions below it
        are reported as ``uncertain`` instead of a guess (see :meth:`decode`)."""
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("predict() takes a string or a list of strings")
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(contexts)} contexts")
        check_min_confidence(min_confidence)
        if not texts:
            return []
        predictions = self.decode(texts, *self.probabilities(list(texts), contexts, with_truncation=True),
                                  min_confidence=min_confidence)
        if explain:
            from rustance.explain import explain_predictions

            explain_predictions(self, predictions, contexts)
        return predictions

    def decode(self, texts: list[str], topic: torch.Tensor, stance: torch.Tensor, sentiment: torch.Tensor,
               truncated: list[bool] | None = None, every_topic: bool = True,
               min_confidence: float | None = None) -> list[SentencePrediction]:
        """Turn probability tensors (from :meth:`probabilities`) into predictions (``every_topic=False``: leave
        ``all_topics`` empty, which the corpus engines do not need).

        With ``min_confidence`` (abstain; :mod:`rustance.calibration`): a stance whose probability is below it
        is reported as ``"uncertain"`` (its probabilities kept), and a topic whose decision confidence (``p`` if
        at or over its threshold, else ``1 - p``) is below it goes to ``uncertain_topics`` instead of ``topics``
        (whichever side of the threshold it is on)."""
        min_confidence = check_min_confidence(min_confidence)
        thresholds = self.threshold_array()
        chosen = self.chosen_topics(topic)
        stance = stance.float().numpy()
        sentiment = sentiment.float().numpy()
        topic_np = topic.double().numpy()
        topic_p, sentiment_p = topic.float().numpy().tolist(), sentiment.tolist()
        stance_best, sentiment_best = stance.argmax(-1).tolist(), sentiment.argmax(-1).tolist()
        stance_top = stance.max(-1).tolist()
        ids = [t.id for t in self.topics]
        if min_confidence is not None:
            unsure = (detection_confidence(topic_np, thresholds) < min_confidence).tolist()
            order = np.argsort(-topic_np, axis=1, kind="stable").tolist()
        results = []
        for i, text in enumerate(texts):
            def entry(j: int) -> TopicStance:
                guess = STANCES[stance_best[i][j]]
                if min_confidence is not None and stance_top[i][j] < min_confidence:
                    guess = UNCERTAIN
                return TopicStance(ids[j], topic_p[i][j], guess, dict(zip(STANCES, stance[i, j].tolist())))

            every = [entry(j) for j in range(len(ids))] if every_topic else []
            pick = (lambda j: every[j]) if every_topic else entry
            listed = chosen[i] if min_confidence is None else [j for j in chosen[i] if not unsure[i][j]]
            results.append(SentencePrediction(
                text=text,
                topics=[pick(j) for j in listed],
                sentiment=SENTIMENTS[sentiment_best[i]],
                sentiment_probabilities=dict(zip(SENTIMENTS, sentiment_p[i])),
                all_topics=every,
                truncated=bool(truncated[i]) if truncated is not None else False,
                uncertain_topics=None if min_confidence is None else [pick(j) for j in order[i] if unsure[i][j]],
            ))
        return results

    def threshold_array(self) -> np.ndarray:
        """Each topic's decision threshold (0.5 where the model has none), in the order of ``topics``."""
        return np.array([self.thresholds.get(t.id, 0.5) for t in self.topics])

    def chosen_topics(self, topic: torch.Tensor) -> list[list[int]]:
        """Per sentence, the indices of the topics it is about (probability at or over the topic's threshold,
        0.5 by default), most probable first."""
        thresholds = self.threshold_array()
        probabilities = topic.double().numpy()
        above = (probabilities >= thresholds).tolist()
        order = np.argsort(-probabilities, axis=1, kind="stable").tolist()
        return [[j for j in row if keep[j]] for row, keep in zip(order, above)]

    def predict_document(self, text: str, min_confidence: float | None = None) -> list[SentencePrediction]:
        """Split Russian text into sentences (razdel) and label each, with offsets and context (``min_confidence``
        as in :meth:`predict`)."""
        if not isinstance(text, str):
            raise TypeError("predict_document() takes a string")
        sentences = split_sentences(text)
        contexts = [""] + [s.text for s in sentences[:-1]]
        predictions = self.predict([s.text for s in sentences], contexts, min_confidence=min_confidence)
        for sentence, prediction in zip(sentences, predictions):
            prediction.start, prediction.end = sentence.start, sentence.end
        return predictions


def load(path: str | Path, batch_size: int = 32, device: str = "auto", precision: str = "fp32"):
    """Load a trained rustance model (a folder, or a Hugging Face Hub id such as ``"org/name"``) on ``device``
    (auto: CUDA, then Apple MPS, then CPU; or cpu, cuda, mps). Returns the task's predictor (from the task
    registry): a :class:`Classifier` (topics, stance, sentiment) or, for a model trained with
    ``task: targeted_sentiment``, a ``TargetClassifier`` whose ``predict`` takes a target."""
    from rustance.tasks import task_spec

    model, tokenizer = load_model(path)
    predictor = task_spec(model.config.task).predictor()
    return predictor(model, tokenizer, batch_size=batch_size, device=device, precision=precision)


def agreement_with(reference: Classifier, candidate: Classifier, texts: list[str],
                   contexts: list[str] | None = None) -> float:
    """Share of sentences where topics, their stances and the sentiment are all the same."""
    a = reference.predict(texts, contexts)
    b = candidate.predict(texts, contexts)
    same = [x.to_labels().topics == y.to_labels().topics and x.sentiment == y.sentiment for x, y in zip(a, b)]
    return sum(same) / len(same) if same else 1.0
