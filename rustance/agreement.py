"""Agreement between two independent annotation passes: Cohen's kappa and confusion matrices.

Items are ``(first, second)`` label pairs, each ``{"topics": {topic: stance}, "sentiment": ...}``.
Topic presence: one binary item per (sentence, topic). Stance: the (sentence, topic) pairs both passes
marked present. Sentiment: one item per sentence.
"""

from __future__ import annotations

from sklearn.metrics import cohen_kappa_score, confusion_matrix

from rustance.labels import SENTIMENTS, STANCES


def agreement(pairs: list[tuple[dict, dict]], topic_ids: list[str]) -> dict:
    presence_a, presence_b, stance_a, stance_b = [], [], [], []
    for a, b in pairs:
        for t in topic_ids:
            presence_a.append(t in a["topics"])
            presence_b.append(t in b["topics"])
            if t in a["topics"] and t in b["topics"]:
                stance_a.append(a["topics"][t])
                stance_b.append(b["topics"][t])
    sent_a = [a["sentiment"] for a, _ in pairs]
    sent_b = [b["sentiment"] for _, b in pairs]
    share = lambda x, y: sum(p == q for p, q in zip(x, y)) / max(len(x), 1)  # noqa: E731
    return {
        "sentences": len(pairs),
        "topic_presence_kappa": float(cohen_kappa_score(presence_a, presence_b)),
        "topic_presence_agreement": share(presence_a, presence_b),
        "topic_presence_pairs": len(presence_a),
        "topic_presence_confusion": confusion_matrix(presence_a, presence_b, labels=[False, True]).tolist(),
        "same_topic_set": sum(set(a["topics"]) == set(b["topics"]) for a, b in pairs) / max(len(pairs), 1),
        "stance_kappa": float(cohen_kappa_score(stance_a, stance_b, labels=list(STANCES))),
        "stance_agreement": share(stance_a, stance_b),
        "stance_pairs": len(stance_a),
        "stance_confusion": confusion_matrix(stance_a, stance_b, labels=list(STANCES)).tolist(),
        "sentiment_kappa": float(cohen_kappa_score(sent_a, sent_b, labels=list(SENTIMENTS))),
        "sentiment_agreement": share(sent_a, sent_b),
        "sentiment_confusion": confusion_matrix(sent_a, sent_b, labels=list(SENTIMENTS)).tolist(),
        **_context_agreement(pairs),
    }


def _context_agreement(pairs: list[tuple[dict, dict]]) -> dict:
    """Agreement on ``context_needed`` over the sentences both passes gave a topic (rounds 5+ only)."""
    both = [(bool(a.get("context_needed")), bool(b.get("context_needed"))) for a, b in pairs
            if "context_needed" in a and "context_needed" in b and a["topics"] and b["topics"]]
    if not both:
        return {}
    a, b = zip(*both)
    kappa = cohen_kappa_score(a, b, labels=[False, True]) if len(set(a) | set(b)) > 1 else 1.0
    return {"context_needed_kappa": float(kappa), "context_needed_agreement": sum(x == y for x, y in both) / len(both),
            "context_needed_items": len(both)}


def agreement_markdown(result: dict) -> str:
    lines = [
        "| | Cohen's κ | raw agreement | items |", "| --- | --- | --- | --- |",
        f"| topic presence (per sentence × topic) | {result['topic_presence_kappa']:.3f} | "
        f"{100 * result['topic_presence_agreement']:.1f} % | {result['topic_presence_pairs']} |",
        f"| same topic set per sentence | — | {100 * result['same_topic_set']:.1f} % | {result['sentences']} |",
        f"| stance (pairs both passes marked present) | {result['stance_kappa']:.3f} | "
        f"{100 * result['stance_agreement']:.1f} % | {result['stance_pairs']} |",
        f"| sentiment | {result['sentiment_kappa']:.3f} | {100 * result['sentiment_agreement']:.1f} % | "
        f"{result['sentences']} |",
    ]
    if "context_needed_kappa" in result:
        lines.append(f"| context needed (sentences both passes gave a topic) | {result['context_needed_kappa']:.3f} | "
                     f"{100 * result['context_needed_agreement']:.1f} % | {result['context_needed_items']} |")
    lines += [
        "", "Stance confusion (rows first pass, columns second pass):", "",
        "| | " + " | ".join(STANCES) + " |", "| --- |" + " --- |" * len(STANCES),
    ]
    lines += [f"| {s} | " + " | ".join(map(str, row)) + " |" for s, row in zip(STANCES, result["stance_confusion"])]
    return "\n".join(lines)
