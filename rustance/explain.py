"""Why this label: the words that most raised the chosen stance toward a topic, by word occlusion.

Occlusion is model-agnostic: it needs only a function from sentences (and their previous sentences) to stance
probabilities. Each word of a sentence is deleted in turn; a word's weight is how much the chosen stance's
probability falls without it (positive: the word raised that stance). All variants of a batch of sentences go
through the model together, so explaining a sentence of W words costs about W extra sentence passes
(``reports/explain-faithfulness.md`` measures the cost and the faithfulness).

:func:`integrated_gradients` (Captum, ``pip install 'rustance[explain]'``) gives the same output from the
gradients of a torch :class:`rustance.Classifier`; the deletion test in ``reports/explain-faithfulness.md``
compares the two.

Output rows (``rustance predict --explain``) carry the words per topic as ``words``: a list of
``{"word", "weight"}``, highest weight first (see :func:`explained_schema` and :func:`add_explanations`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

TOP_K = 5  # words kept per (sentence, topic)
CHUNK = 2048  # occluded variants per call of the probability function
_WORD = re.compile(r"\w")

# (texts, contexts) -> stance probabilities, shape (len(texts), topics, stances)
StanceFunction = Callable[[list[str], list[str]], np.ndarray]


class ExplainMethod(str, Enum):
    """How ``rustance predict --explain`` finds the words (``--explain-method``)."""

    OCCLUSION = "occlusion"  # any backend; the more faithful in reports/explain-faithfulness.md
    INTEGRATED_GRADIENTS = "integrated_gradients"  # torch backend, needs Captum (pip install 'rustance[explain]')


@dataclass
class WordWeight:
    """A word of the sentence and how much it raised the chosen stance's probability."""

    word: str
    weight: float
    start: int  # character offsets in the sentence
    end: int

    def to_dict(self) -> dict:
        return {"word": self.word, "weight": float(f"{self.weight:.4g}")}  # 4 significant digits: never 0 for > 0


def words_of(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) for each token of ``text`` with a letter or digit (razdel tokens; punctuation is
    never occluded)."""
    from razdel import tokenize

    return [(t.start, t.stop, t.text) for t in tokenize(text) if _WORD.search(t.text)]


def without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the character spans removed and the spaces around them closed up."""
    pieces, last = [], 0
    for start, end in sorted(spans):
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return re.sub(r"\s{2,}", " ", "".join(pieces)).strip()


def _probabilities(function: StanceFunction, texts: list[str], contexts: list[str]) -> np.ndarray:
    if not texts:
        return np.empty((0, 0, 0))
    return np.concatenate([np.asarray(function(texts[i : i + CHUNK], contexts[i : i + CHUNK]), dtype=np.float64)
                           for i in range(0, len(texts), CHUNK)])


def occlusion(texts: Sequence[str], targets: Sequence[Sequence[tuple[int, int]]], stance: StanceFunction,
              contexts: Sequence[str] | None = None, top_k: int = TOP_K,
              full: np.ndarray | None = None, positive_only: bool = True) -> list[list[list[WordWeight]]]:
    """Per sentence and per ``(topic index, stance index)`` target of that sentence, the ``top_k`` words whose
    deletion lowers that stance's probability most (only words that raised it: weight > 0), highest first.

    ``full`` may pass the sentences' stance probabilities when the caller has them already; with
    ``positive_only=False`` the ``top_k`` highest weights are returned whatever their sign.
    """
    texts = list(texts)
    contexts = list(contexts) if contexts is not None else [""] * len(texts)
    if len(targets) != len(texts) or len(contexts) != len(texts):
        raise ValueError(f"{len(texts)} texts, {len(targets)} target lists and {len(contexts)} contexts")
    words = [words_of(t) if target else [] for t, target in zip(texts, targets)]
    variants, variant_contexts = [], []
    for i, (text, found) in enumerate(zip(texts, words)):
        for start, end, _ in found:
            variants.append(without(text, [(start, end)]))
            variant_contexts.append(contexts[i])
    need = [i for i, target in enumerate(targets) if target]
    if full is None:
        computed = _probabilities(stance, [texts[i] for i in need], [contexts[i] for i in need])
        full = dict(zip(need, computed))
    occluded = _probabilities(stance, variants, variant_contexts)
    results: list[list[list[WordWeight]]] = []
    first = 0
    for i, found in enumerate(words):
        rows = occluded[first : first + len(found)]
        first += len(found)
        explained = []
        for topic, chosen in targets[i]:
            weights = full[i][topic, chosen] - rows[:, topic, chosen] if len(found) else np.empty(0)
            order = np.argsort(-weights, kind="stable")[:top_k]
            explained.append([WordWeight(found[w][2], float(weights[w]), found[w][0], found[w][1])
                              for w in order if weights[w] > 0 or not positive_only])
        results.append(explained)
    return results


def classifier_stance(classifier) -> StanceFunction:
    """The stance-probability function of a :class:`rustance.Classifier` (or the ONNX one)."""
    def stance(texts: list[str], contexts: list[str]) -> np.ndarray:
        return np.asarray(classifier.probabilities(texts, contexts)[1].double())

    return stance


def add_explanations(classifier, rows: list[dict], contexts: Sequence[str], top_k: int = TOP_K,
                     method: ExplainMethod | str = ExplainMethod.OCCLUSION) -> list[dict]:
    """Add ``words`` (list of ``{"word", "weight"}``) to every topic of output rows as
    :func:`rustance.inference.engine.label_rows` makes them; ``contexts`` are the rows' previous sentences.
    ``method``: :func:`occlusion` (any backend) or :func:`integrated_gradients` (a torch classifier).

    This is what ``rustance predict --explain`` calls per window of rows; write them with
    :func:`explained_schema`.
    """
    from rustance.labels import STANCES

    topic_index = {t.id: j for j, t in enumerate(classifier.topics)}
    # an uncertain stance (min_confidence) is explained as its best guess
    targets = [[(topic_index[t["topic"]], STANCES.index(t["stance"] if t["stance"] in STANCES else
                                                        max(STANCES, key=t.get))) for t in row["topics"]]
               for row in rows]
    texts = [row["sentence"] for row in rows]
    if ExplainMethod(method) is ExplainMethod.INTEGRATED_GRADIENTS:
        found = integrated_gradients(classifier, texts, targets, contexts, top_k)
    else:
        found = occlusion(texts, targets, classifier_stance(classifier), contexts, top_k)
    for row, per_topic in zip(rows, found):
        for entry, words in zip(row["topics"], per_topic):
            entry["words"] = [w.to_dict() for w in words]
    return rows


def explained_schema(schema):
    """An output schema (:func:`rustance.inference.engine.output_schema`) whose topics carry ``words``."""
    import pyarrow as pa

    index = schema.get_field_index("topics")
    entry = schema.field(index).type.value_type
    words = pa.list_(pa.struct([("word", pa.string()), ("weight", pa.float32())]))
    entry = pa.struct([*entry, pa.field("words", words)])
    return schema.set(index, pa.field("topics", pa.list_(entry)))


def explain_predictions(classifier, predictions: list, contexts: Sequence[str] | None = None,
                        top_k: int = TOP_K) -> list:
    """Set ``words`` (a list of :class:`WordWeight`) on every topic of ``Classifier.predict`` results."""
    from rustance.labels import STANCES

    topic_index = {t.id: j for j, t in enumerate(classifier.topics)}
    targets = [[(topic_index[t.topic], STANCES.index(t.stance if t.stance in STANCES else
                                                     max(STANCES, key=t.stance_probabilities.get)))
                 for t in p.topics] for p in predictions]  # an uncertain stance (min_confidence): its best guess
    found = occlusion([p.text for p in predictions], targets, classifier_stance(classifier), contexts, top_k)
    for prediction, per_topic in zip(predictions, found):
        for topic, words in zip(prediction.topics, per_topic):
            topic.words = words
    return predictions


def _encode_with_offsets(inputs, text: str, context: str):
    """One model input for ``text`` as :class:`rustance.inputs.InputBuilder` builds it, with per token its
    character span in ``text`` (None for special tokens, the prefix and the context segment)."""
    sentence = inputs.backend.encode(inputs.prefix + text, add_special_tokens=False)
    if len(sentence) > inputs.room:
        sentence.truncate(inputs.room)
    pair = None
    if inputs.use_context:
        free = inputs.room - len(sentence)
        pair = inputs.backend.encode(context or "", add_special_tokens=False) if free > 0 else inputs._empty
        if len(pair) > free:
            pair.truncate(free, direction="left")
    merged = inputs.backend.post_process(sentence, pair, add_special_tokens=True)
    shift = len(inputs.prefix)
    # The sentence is the first segment: its tokens are the first len(sentence) that are not special ones
    # (counted rather than read from sequence_ids, which some tokenizers leave unset for a pair's first segment).
    spans, seen = [], 0
    for (start, end), special in zip(merged.offsets, merged.special_tokens_mask):
        ours = not special and seen < len(sentence)
        seen += not special
        spans.append((start - shift, end - shift) if ours and end > shift else None)
    return merged, spans


def integrated_gradients(classifier, texts: Sequence[str], targets: Sequence[Sequence[tuple[int, int]]],
                         contexts: Sequence[str] | None = None, top_k: int = TOP_K, steps: int = 20,
                         positive_only: bool = True) -> list[list[list[WordWeight]]]:
    """Like :func:`occlusion`, with Integrated Gradients (Captum) on the word embeddings of a
    :class:`rustance.Classifier`'s torch model: a word's weight is the sum of its tokens' attributions to the
    chosen stance's probability, from a baseline where the sentence's tokens are padding (special tokens and
    the previous sentence kept). Needs ``pip install captum``. For a model fused with TF-IDF
    (:mod:`rustance.lexical`) it explains the network's part only (occlusion explains the blend).
    """
    import torch
    from captum.attr import LayerIntegratedGradients

    model, inputs = classifier.model, classifier.inputs
    contexts = list(contexts) if contexts is not None else [""] * len(texts)

    def stance_probability(input_ids, attention_mask, token_type_ids, context_vector, topic, chosen):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if inputs.with_types:
            batch["token_type_ids"] = token_type_ids
        if inputs.pooled_context:
            logits = model.heads(torch.cat([model.vectors(**batch), context_vector], dim=-1))
        else:
            logits = model(**batch)
        return torch.softmax(logits["stance_logits"][:, topic], dim=-1)[:, chosen]

    ig = LayerIntegratedGradients(stance_probability, model.encoder.get_input_embeddings())
    results = []
    for text, context, wanted in zip(texts, contexts, targets):
        if not wanted:
            results.append([])
            continue
        merged, spans = _encode_with_offsets(inputs, text, context)
        ids = torch.tensor([merged.ids], device=classifier.device)
        baseline = ids.clone()
        baseline[0, [i for i, span in enumerate(spans) if span is not None]] = inputs.pad_id
        mask, types = torch.ones_like(ids), torch.tensor([merged.type_ids], device=classifier.device)
        context_vector = torch.zeros(1, 0, device=classifier.device)
        if inputs.pooled_context:
            with torch.no_grad():
                context_vector = model.vectors(**inputs.pad(inputs.encode([context or ""])))
        words = words_of(text)
        explained = []
        for topic, chosen in wanted:
            attributions = ig.attribute(ids, baselines=baseline, n_steps=steps, internal_batch_size=steps,
                                        additional_forward_args=(mask, types, context_vector, topic, chosen))
            per_token = attributions.sum(-1)[0].detach().cpu().numpy()
            weights = np.array([sum(float(per_token[t]) for t, span in enumerate(spans)
                                    if span is not None and span[0] < end and span[1] > start)
                                for start, end, _ in words])
            order = np.argsort(-weights, kind="stable")[:top_k]
            explained.append([WordWeight(words[w][2], float(weights[w]), words[w][0], words[w][1])
                              for w in order if weights[w] > 0 or not positive_only])
        results.append(explained)
    return results
