"""Merge read-and-labelled candidates into data/stance/{train,dev,test}.jsonl (stand-off).

Splits are assigned per source document (a stable hash of corpus + doc id), so sentences
of one article never straddle splits. Project-written records go to train/dev only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path


QUOTED = re.compile(r"[А-Яа-яЁё][А-Яа-яЁё\-]*(?:[ ,]+[А-Яа-яЁё][А-Яа-яЁё\-]*)+")


def split_of(key: str, dev: float, test: float) -> str:
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test else "dev" if bucket < test + dev else "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--round", dest="rounds", nargs="*",
                        default=["work/candidates:work/labels", "work/candidates2:work/labels2", "work/candidates3:work/labels3", "work/candidates4:work/labels4"],
                        help="CANDIDATES_DIR:LABELS_DIR pairs, one per annotation round")
    parser.add_argument("--written", type=Path, nargs="*", default=[Path("work/written/written.jsonl")])
    parser.add_argument("--adjudicated", type=Path, nargs="*", default=[Path("work/agree/adjudicated.jsonl")],
                        help="final labels for items the two passes disagreed on (override the first pass)")
    parser.add_argument("--out", type=Path, default=Path("data/stance"))
    args = parser.parse_args()
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    seen_texts: set[str] = set()  # the same sentence re-published in another document is kept once
    overrides = {}
    for path in args.adjudicated:
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            overrides[item["cid"]] = item
    label_files = []
    for pair in args.rounds:
        candidate_dir, label_dir = map(Path, pair.split(":"))
        label_files += [(candidate_dir, f) for f in sorted(label_dir.glob("batch*.jsonl"))]
    for candidate_dir, label_file in label_files:
        candidates = {}
        for line in (candidate_dir / label_file.name).read_text(encoding="utf-8").splitlines():
            c = json.loads(line)
            candidates[c["cid"]] = c
        for line in label_file.read_text(encoding="utf-8").splitlines():
            lab = json.loads(line)
            lab = {**lab, **overrides.get(lab["cid"], {})}
            cand = candidates[lab["cid"]]
            key = " ".join(cand["text"].lower().split())
            if key in seen_texts:
                continue
            seen_texts.add(key)
            src = cand["source"]
            record = {
                "id": f"{src['corpus']}:{src['doc']}:{src['start']}",
                "source": src,
                "topics": lab["topics"],
                "sentiment": lab["sentiment"],
                "origin": "corpus",
                "pick": cand["pick"],
            }
            if lab.get("note"):
                # annotators sometimes quoted a few words of the sentence: keep no corpus text in the repo
                record["note"] = QUOTED.sub("«…»", lab["note"])
            if lab.get("adjudicated"):
                record["adjudicated"] = lab["adjudicated"]
            splits[split_of(f"{src['corpus']}:{src['doc']}", 0.15, 0.15)].append(record)
    for path in args.written:
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            rec["origin"] = "written"
            splits["dev" if split_of(rec["id"], 0.2, 0.0) == "dev" else "train"].append(rec)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        records.sort(key=lambda r: r["id"])
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for rec in records:
                handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"{name}: {len(records)}")


if __name__ == "__main__":
    main()
