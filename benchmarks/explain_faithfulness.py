"""Deletion test of word-occlusion explanations on labelled sentences, and their cost per sentence.

    python benchmarks/explain_faithfulness.py --model runs/MODEL --data data/stance/dev.jsonl \
        --report reports/explain-faithfulness.md

For every sentence (with its previous sentence as context) and every topic the model finds in it, the chosen
stance's probability is computed on the sentence, on the sentence without its 3 top-attributed words (by
occlusion, and by Integrated Gradients with --methods ig), and on the sentence without 3 words drawn at random (RANDOM_DRAWS draws, averaged). A faithful
explanation makes the first drop larger than the second. Sentences with fewer than 4 words are left out (3
random words would be nearly all of them). Cost: wall time of each method over the explained sentences vs
the model's plain labelling of all sentences, on this machine's CPU threads.
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
    parser.add_argument("--methods", nargs="+", choices=["occlusion", "ig"], default=["occlusion", "ig"])
    parser.add_argument("--ig-steps", type=int, default=20)
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

    pairs = [(i, j, k) for i in keep for j, k in targets[i]]
    draws = []  # RANDOM_DRAWS random word sets per pair, shared by the methods
    for i, _, _ in pairs:
        draws.append([without(texts[i], [words[i][p][:2] for p in rng.choice(len(words[i]), size=TOP, replace=False)])
                      for _ in range(RANDOM_DRAWS)])
    random_p = classifier.probabilities([d for ds in draws for d in ds],
                                        [contexts[i] for i, _, _ in pairs for _ in range(RANDOM_DRAWS)])[1]
    random_p = random_p.double().numpy().reshape(len(pairs), RANDOM_DRAWS, *random_p.shape[1:])
    random_drop = np.array([stance[i, j, k] - random_p[n, :, j, k].mean() for n, (i, j, k) in enumerate(pairs)])
    methods = {"occlusion": lambda: occlusion(texts, targets, classifier_stance(classifier), contexts, top_k=TOP,
                                              full=stance, positive_only=False)}
    if "ig" in args.methods:
        from rustance.explain import integrated_gradients

        methods["integrated gradients"] = lambda: integrated_gradients(
            classifier, texts, targets, contexts, top_k=TOP, steps=args.ig_steps, positive_only=False)
    measured = {}
    for name, explain in methods.items():
        started = time.perf_counter()
        found = explain()
        seconds = time.perf_counter() - started
        deleted = [without(texts[i], [(w.start, w.end) for w in top]) for i in keep for top in found[i]]
        p = classifier.probabilities(deleted, [contexts[i] for i, _, _ in pairs])[1].double().numpy()
        top_drop = np.array([stance[i, j, k] - p[n, j, k] for n, (i, j, k) in enumerate(pairs)])
        difference = top_drop - random_drop
        measured[name] = (top_drop, difference, bootstrap(difference, rng), seconds)
    n_words = np.mean([len(words[i]) for i in keep])
    about = ""
    metrics_file = args.model / "dev_metrics.json"
    if metrics_file.is_file():
        import json

        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        score = metrics.get("overall_macro_f1", metrics.get("eval_overall_macro_f1"))
        about = f"; its own dev overall macro-F1 (dev_metrics.json, from training) is {score:.3f}" if score else ""
    stances = np.bincount([k for _, _, k in pairs], minlength=len(STANCES))
    per_sentence = 1000 * plain / len(texts)
    lines = [
        "# Explanation faithfulness: deletion test",
        "",
        f"Command: `python benchmarks/explain_faithfulness.py --model {args.model} --data {args.data}"
        + (f" --limit {args.limit}" if args.limit else "") + f" --methods {' '.join(args.methods)}"
        + (f" --report {args.report}`" if args.report else "`"),
        "",
        f"Model: `{args.model}` ({classifier.settings.get('base_model', '?')}{about}). Data: {len(records)} sentences of "
        f"`{args.data}`; {len(keep)} have a predicted topic and at least {TOP + 1} words, giving {len(pairs)} "
        f"(sentence, topic) pairs (predicted stances: " + ", ".join(f"{s} {c}" for s, c in zip(STANCES, stances)) + ").",
        "",
        f"Drop in the probability of the predicted stance when the {TOP} top-attributed words are deleted, against "
        f"{TOP} random words ({RANDOM_DRAWS} draws per pair, averaged; the same draws for every method). Cost: wall "
        f"time of the explanations on this machine's CPU, per explained sentence ({n_words:.1f} words on average), "
        f"and as a multiple of plain labelling ({per_sentence:.1f} ms per sentence for all {len(texts)} sentences):",
        "",
        "| words deleted | mean drop | median drop | top minus random (95 % bootstrap) | top drop larger | "
        "cost per explained sentence |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {TOP} at random | {random_drop.mean():.4f} | {np.median(random_drop):.4f} | | | |",
    ]
    for name, (top_drop, difference, (low, high), seconds) in measured.items():
        cost = 1000 * seconds / max(len(keep), 1)
        lines.append(f"| top {TOP} by {name} | {top_drop.mean():.4f} | {np.median(top_drop):.4f} | "
                     f"{difference.mean():.4f} ({low:.4f} .. {high:.4f}) | {100 * np.mean(difference > 0):.1f} % | "
                     f"{cost:.0f} ms ({cost / per_sentence:.0f}×) |")
    if "ig" not in args.methods:
        lines += ["", "Integrated Gradients (Captum) was not measured in this run."]
    else:
        lines += ["", f"Integrated Gradients: {args.ig_steps} steps, baseline = the sentence's tokens replaced by "
                  "padding (special tokens and context kept), attributions on the word embeddings summed per word."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
