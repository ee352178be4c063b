"""Agreement between two independent annotation passes (Cohen's kappa and confusion).

Pass files are JSONL lines {"cid", "topics", "sentiment"}; items are matched by cid.
Topic presence: one binary item per (sentence, topic). Stance: the (sentence, topic) pairs both passes
marked present. Sentiment: one item per sentence.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score, confusion_matrix

from rustance.labels import SENTIMENTS, STANCES, load_topics


def read(paths: list[Path]) -> dict[str, dict]:
    items = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            items[obj["cid"]] = obj
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", type=Path, nargs="+", required=True)
    parser.add_argument("--second", type=Path, nargs="+", required=True)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    first, second = read(args.first), read(args.second)
    cids = sorted(set(second) & set(first))
    topics = [t.id for t in load_topics()]
    presence_a, presence_b, stance_a, stance_b, sent_a, sent_b = [], [], [], [], [], []
    for cid in cids:
        a, b = first[cid], second[cid]
        for t in topics:
            presence_a.append(t in a["topics"])
            presence_b.append(t in b["topics"])
            if t in a["topics"] and t in b["topics"]:
                stance_a.append(a["topics"][t])
                stance_b.append(b["topics"][t])
        sent_a.append(a["sentiment"])
        sent_b.append(b["sentiment"])
    result = {
        "sentences": len(cids),
        "topic_presence_kappa": cohen_kappa_score(presence_a, presence_b),
        "topic_presence_pairs": len(presence_a),
        "topic_presence_confusion": confusion_matrix(presence_a, presence_b, labels=[False, True]).tolist(),
        "stance_kappa": cohen_kappa_score(stance_a, stance_b, labels=list(STANCES)),
        "stance_pairs": len(stance_a),
        "stance_agreement": sum(x == y for x, y in zip(stance_a, stance_b)) / max(len(stance_a), 1),
        "stance_confusion": confusion_matrix(stance_a, stance_b, labels=list(STANCES)).tolist(),
        "sentiment_kappa": cohen_kappa_score(sent_a, sent_b, labels=list(SENTIMENTS)),
        "sentiment_confusion": confusion_matrix(sent_a, sent_b, labels=list(SENTIMENTS)).tolist(),
        "exact_topics_agreement": sum(set(first[c]["topics"]) == set(second[c]["topics"]) for c in cids) / len(cids),
    }
    print(f"{len(cids)} sentences double-annotated")
    print(f"topic presence: kappa {result['topic_presence_kappa']:.3f} over {len(presence_a)} (sentence, topic) pairs;"
          f" confusion [absent, present] x [absent, present] = {result['topic_presence_confusion']}")
    print(f"same topic set: {result['exact_topics_agreement']:.3f}")
    print(f"stance: kappa {result['stance_kappa']:.3f}, agreement {result['stance_agreement']:.3f} "
          f"over {len(stance_a)} pairs both marked present")
    print("stance confusion (rows first pass, columns second pass; order " + ", ".join(STANCES) + "):")
    for label, row in zip(STANCES, result["stance_confusion"]):
        print(f"  {label:>12}: {row}")
    print(f"sentiment: kappa {result['sentiment_kappa']:.3f}; confusion {result['sentiment_confusion']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
