"""Self-training screen (issue 15): a trained model pseudo-labels unlabelled corpus sentences, the confident ones
join the training data, and the network is trained again with the study budget, then fused and evaluated.

1. ``--pool``: candidate sentences as ``scripts/make_candidates.py`` writes them (stand-off ``source``, ``text``,
   ``context``); sentences of documents in dev or test, and sentences already labelled, are left out; ``--sample``
   of the rest are drawn (seeded).
2. The teacher labels them; a sentence is kept when every decision is at least ``--min-confidence`` confident:
   each topic's presence (p or 1 - p), each reported topic's stance, the sentiment. Kept sentences become
   stand-off records (``pick: pseudo-label``; no corpus text is written) in ``RUNS/pseudo.jsonl``, appended to
   the training file in ``RUNS/train+pseudo.jsonl``.
3. ``rustance train`` on that file with the study budget (``--set`` overrides as the study's), fusion off;
   ``rustance fuse`` with the TF-IDF part fitted on the gold training file only (as in the study's fused
   variant); ``rustance evaluate`` on dev and test. Steps already done are skipped (rerun to resume).

    python benchmarks/self_training.py --teacher runs/study/topic-attention-pooling-TF-IDF-fusion-s1 \\
        --pool pool.jsonl --sample 6000 --seed 1 --runs runs/self-training --budget train.epochs=1 ...
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
from pathlib import Path


def run(cmd: list[str], log: Path) -> None:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        if subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT).returncode:
            sys.exit(f"failed: {shlex.join(cmd)}; see {log}")


def documents(path: str) -> tuple[set, set]:
    """(corpus, doc) pairs and (corpus, doc, start) sentences of a labelled file's stand-off records."""
    docs, sentences = set(), set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        source = json.loads(line).get("source")
        if source:
            docs.add((source["corpus"], source["doc"]))
            sentences.add((source["corpus"], source["doc"], source["start"]))
    return docs, sentences


def pseudo_label(args) -> Path:
    import numpy as np

    from rustance import load
    from rustance.calibration import detection_confidence

    out = args.runs / "pseudo.jsonl"
    if out.is_file():
        return out
    held_out = set()
    for path in (args.dev, args.test):
        held_out |= documents(path)[0]
    _, labelled = documents(args.train)
    pool = []
    for line in Path(args.pool).read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        s = item["source"]
        if (s["corpus"], s["doc"]) not in held_out and (s["corpus"], s["doc"], s["start"]) not in labelled:
            pool.append(item)
    random.Random(args.seed).shuffle(pool)
    pool = pool[: args.sample]
    teacher = load(args.teacher, device="cpu")
    ids = [t.id for t in teacher.topics]
    topic, stance, sentiment = (p.double().numpy() for p in teacher.probabilities(
        [p["text"] for p in pool], [p.get("context") or "" for p in pool]))
    thresholds = teacher.threshold_array()
    c = args.min_confidence
    rows = []
    for i, item in enumerate(pool):
        reported = topic[i] >= thresholds
        if detection_confidence(topic[i], thresholds).min() < c or sentiment[i].max() < c:
            continue
        if any(stance[i, j].max() < c for j in np.flatnonzero(reported)):
            continue
        s = item["source"]
        rows.append({"id": f"pseudo:{s['corpus']}:{s['doc']}:{s['start']}", "source": s,
                     "topics": {ids[j]: ("conciliatory", "critical", "conditional", "neutral")[int(stance[i, j].argmax())]
                                for j in np.flatnonzero(reported)},
                     "sentiment": ("negative", "neutral", "positive")[int(sentiment[i].argmax())],
                     "origin": "corpus", "pick": "pseudo-label", "note": f"self-training, teacher {args.teacher}"})
    with_topic = sum(bool(r["topics"]) for r in rows)
    print(f"kept {len(rows)} of {len(pool)} sentences ({with_topic} with a topic)", flush=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--sample", type=int, default=6000)
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--config", default="configs/e5-small-offline.yaml")
    parser.add_argument("--budget", action="append", default=[])
    parser.add_argument("--train", default="data/stance/train.jsonl")
    parser.add_argument("--dev", default="data/stance/dev.jsonl")
    parser.add_argument("--test", default="data/stance/test.jsonl")
    parser.add_argument("--runs", type=Path, default=Path("runs/self-training"))
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    log = args.runs / "self-training.log"
    pseudo = pseudo_label(args)
    merged = args.runs / "train+pseudo.jsonl"
    if not merged.is_file():
        merged.write_text(Path(args.train).read_text(encoding="utf-8") + pseudo.read_text(encoding="utf-8"),
                          encoding="utf-8")
    network, fused = args.runs / f"network-s{args.seed}", args.runs / f"fused-s{args.seed}"
    if not (network / "config.json").is_file():
        sets = [*args.budget, f"data.train={merged}", "train.tfidf_fusion=false", f"train.seed={args.seed}",
                f"train.output_dir={network}"]
        run(["rustance", "train", "--config", args.config, *[x for s in sets for x in ("--set", s)]], log)
    if not (fused / "config.json").is_file():
        run(["rustance", "fuse", "--model", str(network), "--out", str(fused), "--train", args.train], log)
    for model, splits in ((network, ("test",)), (fused, ("dev", "test"))):
        for split in splits:
            out = model / f"eval-{split}"
            if not (out / "metrics.json").is_file():
                data = args.dev if split == "dev" else args.test
                run(["rustance", "evaluate", "--model", str(model), "--data", data, "--out", str(out),
                     "--train", args.train], log)
            headline = json.loads((out / "metrics.json").read_text())["headline"]["model"]
            print(model.name, split, {k: round(v, 3) for k, v in headline.items()}, flush=True)


if __name__ == "__main__":
    main()
