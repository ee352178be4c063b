"""The stance model study (issue 15): variants × seeds, trained with one budget, chosen on dev, reported on test.

Each run is ``rustance train`` with the study's common overrides, the variant's overrides and a seed, then
``rustance evaluate`` on dev and on test (both baselines in the same run). Runs that finished before are
reused, so the study is resumable: rerun the same command after an interruption. The report gives mean ± sd
over seeds of topic, stance-given-topic, joint and sentiment macro-F1 (dev and test), the context-slice topic
recall (pairs marked ``context_needed``: share whose topic the model detects; dev and test), training seconds,
and the exact commands. Evaluations found in a run's folder are reused too.

    python benchmarks/stance_study.py --config configs/e5-small-offline.yaml --seeds 1 2 3 \
        --budget train.epochs=3 --budget model.num_layers=6 --out reports/stance-study.md

Variants are named in VARIANTS below (each a list of ``--set`` overrides); ``--variants`` picks some.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "baseline (mean pooling, linear heads)": ["model.pooling=mean", "train.tfidf_fusion=false"],
    "topic-attention pooling": ["model.pooling=topic_attention", "train.tfidf_fusion=false"],
}
# variants made from another variant's trained runs (same seed) by a command instead of training: here the
# TF-IDF fusion that `train.tfidf_fusion` fits after training, added by `rustance fuse` to the same weights
DERIVED: dict[str, tuple[str, list[str]]] = {
    "topic-attention pooling + TF-IDF fusion": ("topic-attention pooling", ["fuse", "--no-tfidf-context"]),
    # the same with a TF-IDF part whose topic models also read the previous sentence (train.tfidf_context)
    "topic-attention pooling + TF-IDF context fusion": ("topic-attention pooling",
                                                        ["fuse", "--train", "data/stance/train.jsonl", "--tfidf-context"]),
}
VARIANTS.update({name: [] for name in DERIVED})
METRICS = ("topic_macro_f1", "stance_macro_f1", "joint_macro_f1", "sentiment_macro_f1")
SYSTEMS = ("model", "TF-IDF + logistic regression")


def slug(name: str) -> str:
    text = "".join(c if c.isalnum() else "-" for c in name.split(" (")[0]).strip("-")
    while "--" in text:
        text = text.replace("--", "-")
    return text


def run(cmd: list[str], log: Path) -> float:
    started = time.time()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): {shlex.join(cmd)}; see {log}")
    return time.time() - started


def context_recall(data: Path, predictions: Path, corpora: str) -> tuple[float, int]:
    """Share of the ``context_needed`` (sentence, topic) pairs of ``data`` whose topic the model detected."""
    from rustance.labels import load_topics
    from rustance.records import load_records

    records = {r.id: r for r in load_records(data, load_topics(), corpora) if r.context_needed}
    hit = total = 0
    for line in predictions.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] in records:
            found = {t["topic"] for t in row["topics"]}
            for topic in records[row["id"]].topics:
                total += 1
                hit += topic in found
    return (hit / total if total else float("nan")), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/e5-small-offline.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--budget", action="append", default=[], help="override for every run (section.field=value)")
    parser.add_argument("--variants", nargs="*", default=None, help="variant names (default: all)")
    parser.add_argument("--dev", default="data/stance/dev.jsonl")
    parser.add_argument("--test", default="data/stance/test.jsonl")
    parser.add_argument("--corpora", default="../shared/corpora")
    parser.add_argument("--runs", type=Path, default=Path("runs/study"))
    parser.add_argument("--out", type=Path, default=Path("reports/stance-study.md"))
    args = parser.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if args.variants is None or k in args.variants or slug(k) in args.variants}
    args.runs.mkdir(parents=True, exist_ok=True)
    log = args.runs / "study.log"
    results: dict[str, list[dict]] = {}
    commands = []
    for seed in args.seeds:  # seed-major: an interrupted study still compares every variant on the first seeds
        for name, overrides in variants.items():
            run_dir = args.runs / f"{slug(name)}-s{seed}"
            sets = [*args.budget, *overrides, f"train.seed={seed}", f"train.output_dir={run_dir}"]
            train_cmd = ["rustance", "train", "--config", args.config] + [x for s in sets for x in ("--set", s)]
            if name in DERIVED:
                base, command = DERIVED[name]
                base_dir = args.runs / f"{slug(base)}-s{seed}"
                train_cmd = ["rustance", *command, "--model", str(base_dir), "--out", str(run_dir)]
            evaluations = {split: ["rustance", "evaluate", "--model", str(run_dir), "--data", data, "--out",
                                   str(run_dir / f"eval-{split}")] for split, data in (("dev", args.dev), ("test", args.test))}
            commands += [shlex.join(train_cmd), *(shlex.join(cmd) for cmd in evaluations.values())]
            done = run_dir / "study.json"
            if done.is_file():  # finished before: reused
                results.setdefault(name, []).append(json.loads(done.read_text()))
                continue
            if name in DERIVED:
                if not (base_dir / "study.json").is_file():
                    sys.exit(f"{name} (seed {seed}) is made from {base!r}, which has not run for this seed: "
                             f"run that variant first (no {base_dir / 'study.json'})")
                seconds = json.loads((base_dir / "study.json").read_text())["train_seconds"]
                if not (run_dir / "config.json").is_file():  # an interrupted command left at most a partial folder
                    shutil.rmtree(run_dir, ignore_errors=True)
                    seconds += run(train_cmd, log)
                else:  # made by the same command outside the study: its time is not known here
                    seconds = float("nan")
            else:
                seconds = run(train_cmd, log)
            row = {"seed": seed, "train_seconds": round(seconds, 1)}
            for split, cmd in evaluations.items():
                if not (run_dir / f"eval-{split}" / "metrics.json").is_file():  # else evaluated before: reused
                    run(cmd, log)
                metrics = json.loads((run_dir / f"eval-{split}" / "metrics.json").read_text())
                row[split] = {system: metrics["headline"][system] for system in SYSTEMS}
            recall, pairs = context_recall(Path(args.test), run_dir / "eval-test" / "predictions.jsonl", args.corpora)
            row["context_recall"], row["context_pairs"] = recall, pairs
            done.write_text(json.dumps(row, indent=1))
            results.setdefault(name, []).append(row)
    for name, rows in results.items():  # the dev slice too (computed from each run's dev predictions)
        for row in rows:
            if "dev_context_recall" not in row:
                run_dir = args.runs / f"{slug(name)}-s{row['seed']}"
                row["dev_context_recall"], row["dev_context_pairs"] = context_recall(
                    Path(args.dev), run_dir / "eval-dev" / "predictions.jsonl", args.corpora)
    args.out.write_text(render(results, args, commands), encoding="utf-8")
    print(f"wrote {args.out}")


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def render(results: dict[str, list[dict]], args, commands: list[str]) -> str:
    lines = ["# Stance model study", "",
             f"Command: `python {' '.join(map(shlex.quote, sys.argv))}`", "",
             f"Config `{args.config}`, budget {', '.join(args.budget) or 'as configured'}, seeds {args.seeds}; "
             "mean ± sd over seeds. Chosen on dev; test reported once.", ""]
    for split in ("dev", "test"):
        lines += [f"## {split}", "", "| variant | topic | stance given topic | joint | sentiment |"
                  " context-slice topic recall | train s |", "|---|---|---|---|---|---|---|"]
        key = "context" if split == "test" else "dev_context"
        for name, rows in results.items():
            cells = [mean_sd([r[split]["model"][m] for r in rows]) for m in METRICS]
            cells.append(mean_sd([r[key + "_recall"] for r in rows]) + f" (n={rows[0][key + '_pairs']})")
            known = [r["train_seconds"] for r in rows if r["train_seconds"] == r["train_seconds"]]  # NaN: not measured
            cells.append(f"{statistics.mean(known):.0f}" + (f" ({len(known)} of {len(rows)} seeds)" if len(known) < len(rows) else "")
                         if known else "—")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        any_rows = next(iter(results.values()))
        tfidf = [mean_sd([r[split]["TF-IDF + logistic regression"][m] for r in any_rows]) for m in METRICS]
        lines.append("| TF-IDF + logistic regression (same data) | " + " | ".join(tfidf) + " | — | — |")
        lines.append("")
    lines += ["## Commands", "", "```", *commands, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
