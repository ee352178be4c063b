"""What TF-IDF fusion costs at inference: sentences/s of ``Classifier.probabilities`` for a fused model, with
its TF-IDF part and without it (the same network, fusion switched off in memory), in interleaved rounds on
the same sentences; reports the medians and their ratio.

    python benchmarks/fusion_cost.py --model runs/e5-small --data data/stance/test.jsonl --sentences 2000 \
        --out reports/fusion-cost.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a fused model folder (config.fusion set)")
    parser.add_argument("--data", default="data/stance/test.jsonl")
    parser.add_argument("--corpora", default=None)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from rustance import load
    from rustance.records import load_records

    classifier = load(args.model, device="cpu")
    if classifier.fusion is None:
        sys.exit(f"{args.model} is not a fused model (no config.fusion)")
    records = load_records(args.data, classifier.topics, args.corpora)[: args.sentences]
    texts, contexts = [r.text for r in records], [r.context for r in records]
    fusion, lexical = classifier.fusion, classifier.lexical
    rates = {"network + TF-IDF (fused)": [], "network alone": []}
    lexical_seconds = []
    classifier.probabilities(texts[:64], contexts[:64])  # warm-up
    for _ in range(args.rounds):
        for name in rates:
            classifier.fusion, classifier.lexical = (fusion, lexical) if "fused" in name else (None, None)
            started = time.perf_counter()
            classifier.probabilities(texts, contexts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
        started = time.perf_counter()
        lexical.probabilities(texts, contexts)  # a context-reading part (train.tfidf_context) reads them too
        lexical_seconds.append(time.perf_counter() - started)
    classifier.fusion, classifier.lexical = fusion, lexical
    medians = {name: statistics.median(values) for name, values in rates.items()}
    lines = ["# Inference cost of TF-IDF fusion", "",
             f"Command: `python {' '.join(sys.argv)}`", "",
             f"{len(texts)} sentences of `{args.data}`, model `{args.model}` on the CPU (fp32, batch "
             f"{classifier.batch_size}), median of {args.rounds} interleaved rounds.", "",
             "| inference | sentences/s | ratio to the network alone |", "|---|---|---|"]
    for name, rate in medians.items():
        lines.append(f"| {name} | {rate:.1f} | {rate / medians['network alone']:.3f} |")
    lines += ["", f"The TF-IDF part alone: {len(texts) / statistics.median(lexical_seconds):.0f} sentences/s.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
