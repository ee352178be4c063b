"""Deletion test of word-occlusion explanations on labelled sentences, and their cost per sentence.

    python benchmarks/explain_faithfulness.py --model runs/MODEL --data data/stance/dev.jsonl \
        --report reports/explain-faithfulness.md

For every sentence (with its previous sentence as context) and every topic the model finds in it, the chosen
stance's probability is computed on the sentence, on the sentence without its 3 top-attributed words (by
occlusion), and on the sentence without 3 words drawn at random (RANDOM_DRAWS draws, averaged). A faithful
explanation makes the first drop larger than the second. Sentences with fewer than 4 words are left out (3
random words would be nearly all of them). Cost: wall time of the model's plain labelling of the sentences vs
the occlusion of the explained ones, on this machine's CPU threads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rustance import load
from rustance.explain import classifier_stance, occlusion, without, words_of
from rustance.labels import STANCES
from rustance.records import load_records

RANDOM_DRAWS = 5
TOP = 3


def bootstrap(values: np.ndarray, rng: np.random.Generator, rounds: int = 2000) -> tuple[float, float]:
    means = rng.choice(values, size=(rounds, len(values))).mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/stance/dev.jsonl"))
    parser.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    parser.add_argument("--limit", type=int, help="first N sentences only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    classifier = load(args.model)
    records = load_records(args.data, classifier.topics, args.corpora if args.corpora.is_dir() else None)
    records = records[: args.limit] if args.limit else records
    texts, contexts = [r.text for r in records], [r.context for r in records]

    classifier.probabilities(texts[:8], contexts[:8])  # warm-up, not timed
    started = time.perf_counter()
    topic, stance, _ = classifier.probabilities(texts, contexts)
    plain = time.perf_counter() - started
    stance = stance.double().numpy()
    chosen = classifier.chosen_topics(topic)
    words = [words_of(t) for t in texts]
    keep = [i for i in range(len(texts)) if len(words[i]) >= TOP + 1 and chosen[i]]
    targets = [[(j, int(stance[i, j].argmax())) for j in chosen[i]] if i in set(keep) else [] for i in range(len(texts))]

    started = time.perf_counter()
    found = occlusion(texts, targets, classifier_stance(classifier), contexts, top_k=TOP, full=stance,
                      positive_only=False)
    explaining = time.perf_counter() - started

    deleted, owners = [], []  # sentences with words removed: top-3, then RANDOM_DRAWS random draws, per target
    for i in keep:
        for (j, k), top in zip(targets[i], found[i]):
            spans = [(w.start, w.end) for w in top]
            deleted.append(without(texts[i], spans))
            for _ in range(RANDOM_DRAWS):
                pick = rng.choice(len(words[i]), size=TOP, replace=False)
                deleted.append(without(texts[i], [words[i][p][:2] for p in pick]))
            owners.append((i, j, k))
    probabilities = classifier.probabilities(deleted, [contexts[i] for i, _, _ in owners
                                                      for _ in range(1 + RANDOM_DRAWS)])[1].double().numpy()
    top_drop, random_drop = [], []
    for n, (i, j, k) in enumerate(owners):
        rows = probabilities[n * (1 + RANDOM_DRAWS) : (n + 1) * (1 + RANDOM_DRAWS), j, k]
        top_drop.append(stance[i, j, k] - rows[0])
        random_drop.append(stance[i, j, k] - rows[1:].mean())
    top_drop, random_drop = np.array(top_drop), np.array(random_drop)
    difference = top_drop - random_drop
    low, high = bootstrap(difference, rng)
    n_words = np.mean([len(words[i]) for i in keep])
    stances = np.bincount([k for _, _, k in owners], minlength=len(STANCES))
    lines = [
        "# Explanation faithfulness: deletion test (word occlusion)",
        "",
        f"Command: `python benchmarks/explain_faithfulness.py --model {args.model} --data {args.data}"
        + (f" --limit {args.limit}" if args.limit else "") + (f" --report {args.report}`" if args.report else "`"),
        "",
        f"Model: `{args.model}` ({classifier.settings.get('base_model', '?')}). Data: {len(records)} sentences of "
        f"`{args.data}`; {len(keep)} have a predicted topic and at least {TOP + 1} words, giving {len(owners)} "
        f"(sentence, topic) pairs (predicted stances: "
        + ", ".join(f"{s} {c}" for s, c in zip(STANCES, stances)) + ").",
        "",
        f"Drop in the probability of the predicted stance when {TOP} words are deleted (mean over pairs; random: "
        f"mean of {RANDOM_DRAWS} draws per pair):",
        "",
        "| words deleted | mean drop | median drop |",
        "| --- | --- | --- |",
        f"| top {TOP} by occlusion | {top_drop.mean():.4f} | {np.median(top_drop):.4f} |",
        f"| {TOP} at random | {random_drop.mean():.4f} | {np.median(random_drop):.4f} |",
        "",
        f"Top-{TOP} minus random: {difference.mean():.4f} (95 % bootstrap interval {low:.4f} .. {high:.4f}); the "
        f"top-{TOP} deletion lowers the stance probability more than the random one in "
        f"{100 * np.mean(difference > 0):.1f} % of the pairs.",
        "",
        f"Cost on this machine ({len(keep)} explained sentences, {n_words:.1f} words on average): plain labelling "
        f"of all {len(texts)} sentences took {plain:.2f} s ({1000 * plain / len(texts):.1f} ms per sentence); "
        f"occlusion of the {len(keep)} explained ones took {explaining:.2f} s "
        f"({1000 * explaining / max(len(keep), 1):.1f} ms per explained sentence, "
        f"{explaining / max(len(keep), 1) / (plain / len(texts)):.0f}× a plain labelling), since every word "
        "is one more model input. Integrated Gradients (Captum) was not measured.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
