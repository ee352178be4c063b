"""Would fusing the model with TF-IDF help? Late fusion of a trained model and the TF-IDF + logistic-regression
baseline, measured on dev and test (issue 15's "TF-IDF features fused into the topic head" question, answered
first at the probability level, before building it into the network).

For each head (topic presence, stance per topic, sentiment) the fused probability is ``w * model + (1 - w) *
TF-IDF``; one weight per head is chosen on dev (grid 0, 0.1, ..., 1) by the head's dev macro-F1, topic thresholds
are re-tuned on dev for the fused topic probabilities (the trainer's ``choose_thresholds``), and test is scored
once with the dev choices. The TF-IDF model is the baseline of ``rustance evaluate`` fitted on the model's
training file.

    python benchmarks/fusion_analysis.py --model runs/e5-small --out reports/fusion-analysis.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dev", default="data/stance/dev.jsonl")
    parser.add_argument("--test", default="data/stance/test.jsonl")
    parser.add_argument("--corpora", default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/fusion-analysis.md"))
    args = parser.parse_args()

    import yaml

    from rustance import load
    from rustance.labels import load_topics
    from rustance.metrics import decode_labels, headline, score
    from rustance.records import load_records
    from rustance.train.baselines import TfidfBaseline
    from rustance.train.trainer import choose_thresholds, record_labels

    clf = load(args.model)
    training = yaml.safe_load((Path(args.model) / "training_config.yaml").read_text(encoding="utf-8"))
    topics = load_topics(training["data"].get("topics"))
    ids = [t.id for t in topics]
    corpora = args.corpora or training["data"].get("corpora_dir")
    train = load_records(training["data"]["train"], topics, corpora)
    baseline = TfidfBaseline(topics).fit(train)
    probs = {}
    for split, path in (("dev", args.dev), ("test", args.test)):
        records = load_records(path, topics, corpora)
        model = [p.numpy() for p in clf.probabilities([r.text for r in records], [r.context for r in records])]
        probs[split] = (records, model, baseline.probabilities([r.text for r in records]))
    grid = np.round(np.arange(0, 1.01, 0.1), 1)

    def fused(split, w):
        _, model, tfidf = probs[split]
        return [w[h] * model[h] + (1 - w[h]) * tfidf[h] for h in range(3)]

    def evaluate(split, w, thresholds):
        records = probs[split][0]
        topic, stance, sentiment = fused(split, w)
        return headline(score(record_labels(records), decode_labels(topic, stance, sentiment, ids, thresholds), ids))

    heads = ("topic", "stance", "sentiment")
    metric = {"topic": "topic_macro_f1", "stance": "stance_macro_f1", "sentiment": "sentiment_macro_f1"}
    rows = {}
    for name, fixed in (("model alone", 1.0), ("TF-IDF alone (probabilities, dev thresholds)", 0.0), ("fused", None)):
        w = {h: fixed for h in range(3)} if fixed is not None else {0: 1.0, 1: 1.0, 2: 1.0}
        if fixed is None:  # choose each head's weight on dev, one head at a time (the heads' scores are separate)
            for h, head in enumerate(heads):
                best = None
                for value in grid:
                    trial = {**w, h: float(value)}
                    thresholds = choose_thresholds(fused("dev", trial)[0], probs["dev"][0], ids)
                    dev = evaluate("dev", trial, thresholds)[metric[head]]
                    if best is None or dev > best[0]:
                        best = (dev, float(value))
                w[h] = best[1]
        thresholds = choose_thresholds(fused("dev", w)[0], probs["dev"][0], ids)
        rows[name] = ({split: evaluate(split, w, thresholds) for split in ("dev", "test")}, dict(w))
    lines = ["# Late fusion of the model with TF-IDF + logistic regression", "",
             f"Command: `python {' '.join(sys.argv)}`", "",
             f"Model `{args.model}`; TF-IDF fitted on `{training['data']['train']}`; weights of the model per head "
             "(topic, stance, sentiment) chosen on dev, topic thresholds re-tuned on dev; test scored once.", "",
             "| system | weights (topic, stance, sentiment) | split | topic | stance given topic | joint | sentiment |",
             "|---|---|---|---|---|---|---|"]
    for name, (scores, w) in rows.items():
        for split in ("dev", "test"):
            m = scores[split]
            lines.append(f"| {name} | {w[0]:.1f}, {w[1]:.1f}, {w[2]:.1f} | {split} | {m['topic_macro_f1']:.3f} | "
                         f"{m['stance_macro_f1']:.3f} | {m['joint_macro_f1']:.3f} | {m['sentiment_macro_f1']:.3f} |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
