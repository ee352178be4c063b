"""Confidence a user can act on: expected calibration error, reliability bins, the abstain rule and the
coverage curve (macro-F1 of the answers given as the confidence cut rises).

Confidence of a stance or sentiment is its top-label probability (the chosen class's). Confidence of a topic
decision is the probability that the decision is right: ``p`` when the topic is reported (``p`` at or over
its threshold), ``1 - p`` when it is not. With ``min_confidence=c`` a prediction whose confidence is below
``c`` is reported as ``uncertain`` (:data:`UNCERTAIN`) instead of the guess; :func:`coverage_curve` scores
exactly that rule.
"""

from __future__ import annotations

import numpy as np

from rustance.labels import STANCES

UNCERTAIN = "uncertain"
BINS = 15  # equal-width confidence bins of the expected calibration error
CUTS = tuple(round(float(c), 2) for c in np.arange(0.0, 0.96, 0.05))  # coverage curve: min_confidence values


def head_probabilities(logits: dict, temperatures: dict[str, float]) -> tuple:
    """``(topic, stance, sentiment)`` probabilities of the heads' logits (``topic_logits``, ``stance_logits``,
    ``sentiment_logits``; tensors or arrays): sigmoid for topics, softmax of the logits divided by the head's
    temperature (1 where ``temperatures`` has none) for stance and sentiment; float32 tensors."""
    import torch  # the CLI imports this module: torch only when needed

    def tensor(name):
        return torch.as_tensor(logits[name]).float()

    return (torch.sigmoid(tensor("topic_logits")),
            torch.softmax(tensor("stance_logits") / temperatures.get("stance", 1.0), -1),
            torch.softmax(tensor("sentiment_logits") / temperatures.get("sentiment", 1.0), -1))


def check_min_confidence(value: float | None, name: str = "min_confidence") -> float | None:
    """``value`` if it is None or a number strictly between 0 and 1; else ValueError naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def detection_confidence(probability: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Confidence of each topic decision: ``p`` where ``p >= threshold`` (reported), else ``1 - p``."""
    probability = np.asarray(probability, dtype=float)
    return np.where(probability >= thresholds, probability, 1.0 - probability)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> dict:
    """Expected calibration error of top-label ``confidence`` against ``correct`` (0/1), with its bins.

    Bins are ``bins`` equal-width intervals of [0, 1], closed on the right (``(lower, upper]``, the first
    also holds 0), as scikit-learn's ``calibration_curve(strategy="uniform")`` cuts them.
    ``ece = sum_b n_b / N * |accuracy_b - confidence_b|``.
    """
    confidence = np.asarray(confidence, dtype=float).reshape(-1)
    correct = np.asarray(correct, dtype=float).reshape(-1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(index, minlength=bins)
    rows, ece = [], 0.0
    for b in range(bins):
        members = index == b
        row = {"lower": round(float(edges[b]), 4), "upper": round(float(edges[b + 1]), 4), "count": int(counts[b]),
               "confidence": None, "accuracy": None}
        if counts[b]:
            row["confidence"] = float(confidence[members].mean())
            row["accuracy"] = float(correct[members].mean())
            ece += counts[b] / len(confidence) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"ece": float(ece), "n": int(len(confidence)),
            "accuracy": float(correct.mean()) if len(correct) else 0.0,
            "mean_confidence": float(confidence.mean()) if len(confidence) else 0.0, "bins": rows}


def top_label(probabilities: np.ndarray, gold: np.ndarray, bins: int = BINS) -> dict:
    """:func:`reliability` of the most probable class of each row of ``probabilities`` against ``gold`` indices."""
    probabilities = np.asarray(probabilities, dtype=float)
    return reliability(probabilities.max(-1), probabilities.argmax(-1) == np.asarray(gold), bins)


def coverage_curve(topic: np.ndarray, stance: np.ndarray, presence: np.ndarray, gold_stance: np.ndarray,
                   thresholds: np.ndarray, cuts=CUTS) -> dict:
    """Macro-F1 of the answered pairs against coverage (their share) for each confidence cut in ``cuts``.

    ``topic`` (sentences × topics) and ``stance`` (sentences × topics × stances) are the model's (calibrated)
    probabilities, ``presence`` (0/1) and ``gold_stance`` (stance index, ignored where absent) the gold labels.

    * stance (given the gold topic): over gold (sentence, topic) pairs, a pair is answered when its top stance
      probability is at least the cut;
    * joint (topic and stance): over every (sentence, topic) pair, label ``none`` or a stance, a pair is answered
      when its topic decision's confidence is at least the cut and, if the topic is reported, so is its stance's.
    At cut 0 every pair is answered and the figures equal :func:`rustance.metrics.score`'s.
    """
    from rustance.metrics import macro_f1  # scikit-learn: imported when needed (the CLI imports this module)

    topic, stance = np.asarray(topic, dtype=float), np.asarray(stance, dtype=float)
    present = np.asarray(presence) > 0.5
    gold_stance = np.asarray(gold_stance)
    reported = topic >= thresholds
    stance_best, stance_conf = stance.argmax(-1), stance.max(-1)
    joint_conf = np.where(reported, np.minimum(detection_confidence(topic, thresholds), stance_conf),
                          detection_confidence(topic, thresholds)).reshape(-1)
    labels = np.array(["none", *STANCES])
    joint_gold = np.where(present, labels[1:][np.where(present, gold_stance, 0)], "none").reshape(-1)
    joint_pred = np.where(reported, labels[1:][stance_best], "none").reshape(-1)
    pair_conf = stance_conf[present]
    pair_gold = np.array(STANCES)[gold_stance[present].astype(int)] if present.any() else np.array([], dtype=str)
    pair_pred = np.array(STANCES)[stance_best[present]]
    curves = {"stance": [], "joint": []}
    for cut in cuts:
        keep = pair_conf >= cut
        curves["stance"].append({"cut": cut, "answered": int(keep.sum()), "coverage": _share(keep),
                                 "macro_f1": macro_f1(list(pair_gold[keep]), list(pair_pred[keep]), list(STANCES))})
        keep = joint_conf >= cut
        curves["joint"].append({"cut": cut, "answered": int(keep.sum()), "coverage": _share(keep),
                                "macro_f1": macro_f1(list(joint_gold[keep]), list(joint_pred[keep]),
                                                     ["none", *STANCES], average_over=list(STANCES))})
    return curves


def _share(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else 0.0
