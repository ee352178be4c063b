"""Metrics for topics, stance and sentiment (scikit-learn; no network needed).

Definitions:
* topic     — multi-label: per-topic precision/recall/F1; macro-F1 over topics. Its confusion
              matrix counts, per sentence, every (gold topic or none, predicted topic or none) pair.
* stance    — over gold (sentence, topic) pairs: the stance predicted for that topic vs the
              gold stance (stance given the topic); macro-F1 over the four stances.
* joint     — over every (sentence, topic) pair, label ``none`` or a stance: macro-F1 over the
              four stances (``none`` is a class but not averaged), i.e. topic and stance right.
* sentiment — three classes, macro-F1.
* overall   — mean of the topic, stance and sentiment macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from rustance.labels import SENTIMENTS, STANCES


@dataclass
class Labels:
    """What a system says about one sentence, in the shape the metrics need."""

    topics: dict[str, str]  # topics judged present -> stance
    sentiment: str
    stance_for: dict[str, str] = field(default_factory=dict)  # stance for any topic, present or not


def _report(gold: list, pred: list, labels: list[str], average_over: list[str] | None = None) -> dict:
    average_over = average_over or labels
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    per_class = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }
    present = [lab for lab in average_over if per_class[lab]["support"] > 0] or average_over
    return {
        "per_class": per_class,
        "macro_f1": float(np.mean([per_class[lab]["f1"] for lab in present])),
        "accuracy": float(accuracy_score(gold, pred)) if gold else 0.0,
        "confusion": confusion_matrix(gold, pred, labels=labels).tolist() if gold else [],
        "labels": labels,
        "n": len(gold),
    }


def macro_f1(gold: list[str], pred: list[str], labels: list[str], average_over: list[str] | None = None) -> float | None:
    """Macro-F1 over ``average_over`` (default ``labels``) as :func:`score` computes it (classes without gold
    support are left out of the mean); None when there are no items."""
    return _report(gold, pred, labels, average_over)["macro_f1"] if gold else None


def score(gold: list[Labels], pred: list[Labels], topic_ids: list[str]) -> dict:
    """All metrics for parallel lists of gold and predicted labels."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold vs {len(pred)} predicted items")
    gold_matrix = np.array([[t in g.topics for t in topic_ids] for g in gold], dtype=int).reshape(-1, len(topic_ids))
    pred_matrix = np.array([[t in p.topics for t in topic_ids] for p in pred], dtype=int).reshape(-1, len(topic_ids))
    p, r, f, s = precision_recall_fscore_support(gold_matrix, pred_matrix, zero_division=0)
    topic_rows = {
        t: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
            "predicted": int(pred_matrix[:, i].sum())}
        for i, t in enumerate(topic_ids)
    }
    present = [t for t in topic_ids if topic_rows[t]["support"] > 0] or topic_ids
    labels = [*topic_ids, "none"]
    co_occurrence = np.zeros((len(labels), len(labels)), dtype=int)  # gold topic (row) x predicted topic (column)
    for g, pr in zip(gold, pred):
        for gt in [t for t in topic_ids if t in g.topics] or ["none"]:
            for pt in [t for t in topic_ids if t in pr.topics] or ["none"]:
                co_occurrence[labels.index(gt), labels.index(pt)] += 1
    topic = {
        "per_class": topic_rows,
        "confusion": co_occurrence.tolist(),
        "macro_f1": float(np.mean([topic_rows[t]["f1"] for t in present])),
        "exact_match": float(np.mean((gold_matrix == pred_matrix).all(1))) if len(gold) else 0.0,
        "no_topic_accuracy": float(np.mean((gold_matrix.sum(1) == 0) == (pred_matrix.sum(1) == 0))) if len(gold) else 0.0,
        "labels": labels,
    }
    stance_gold, stance_pred, joint_gold, joint_pred = [], [], [], []
    for g, pr in zip(gold, pred):
        for t in topic_ids:
            if t in g.topics:
                stance_gold.append(g.topics[t])
                stance_pred.append(pr.stance_for.get(t) or pr.topics.get(t) or "neutral")
            joint_gold.append(g.topics.get(t, "none"))
            joint_pred.append(pr.topics.get(t, "none"))
    stance = _report(stance_gold, stance_pred, list(STANCES))
    joint = _report(joint_gold, joint_pred, ["none", *STANCES], average_over=list(STANCES))
    sentiment = _report([g.sentiment for g in gold], [p.sentiment for p in pred], list(SENTIMENTS))
    return {
        "topic": topic,
        "stance": stance,
        "joint": joint,
        "sentiment": sentiment,
        "overall_macro_f1": float(np.mean([topic["macro_f1"], stance["macro_f1"], sentiment["macro_f1"]])),
        "n_sentences": len(gold),
    }


def headline(metrics: dict) -> dict[str, float]:
    """The few numbers used for model selection and summaries."""
    return {
        "overall_macro_f1": metrics["overall_macro_f1"],
        "topic_macro_f1": metrics["topic"]["macro_f1"],
        "stance_macro_f1": metrics["stance"]["macro_f1"],
        "joint_macro_f1": metrics["joint"]["macro_f1"],
        "sentiment_macro_f1": metrics["sentiment"]["macro_f1"],
    }


def score_targeted(gold: list[str], pred: list[str]) -> dict:
    """Entity-targeted sentiment as in RuSentNE-2023: F1_PN (macro F1 over negative and positive; neutral is
    a class but not averaged, the official metric) and F1_PN0 (macro F1 over all three)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold vs {len(pred)} predicted items")
    report = _report(gold, pred, list(SENTIMENTS), average_over=["negative", "positive"])
    report["f1_pn"] = report.pop("macro_f1")
    report["f1_pn0"] = float(np.mean([report["per_class"][c]["f1"] for c in SENTIMENTS]))
    return report


def headline_targeted(metrics: dict) -> dict[str, float]:
    return {"f1_pn": metrics["f1_pn"], "f1_pn0": metrics["f1_pn0"], "accuracy": metrics["accuracy"]}


def decode_labels(topic: np.ndarray, stance: np.ndarray, sentiment: np.ndarray, topic_ids: list[str],
                  thresholds: dict[str, float] | None = None) -> list[Labels]:
    """Labels from probability (or logit-ordered) arrays: topics at or over their threshold (0.5 by default)
    with their most probable stance, the most probable sentiment. The same rule as the predictor's."""
    cut = np.array([(thresholds or {}).get(t, 0.5) for t in topic_ids])
    present = np.asarray(topic) >= cut
    stance_best = np.asarray(stance).argmax(-1)
    sentiment_best = np.asarray(sentiment).argmax(-1)
    labels = []
    for i in range(len(present)):
        every = {t: STANCES[stance_best[i, j]] for j, t in enumerate(topic_ids)}
        labels.append(Labels(topics={t: every[t] for j, t in enumerate(topic_ids) if present[i, j]},
                             sentiment=SENTIMENTS[sentiment_best[i]], stance_for=every))
    return labels


def gold_labels(presence: np.ndarray, stance: np.ndarray, sentiment: np.ndarray, topic_ids: list[str]) -> list[Labels]:
    """Gold labels from the training targets (presence 0/1, stance index or -100, sentiment index)."""
    return [Labels(topics={t: STANCES[int(stance[i, j])] for j, t in enumerate(topic_ids) if presence[i, j] > 0.5},
                   sentiment=SENTIMENTS[int(sentiment[i])]) for i in range(len(presence))]
