"""Add read-and-labelled candidates to data/stance/{train,dev,test}.jsonl (stand-off), and record agreement.

Rounds 1-4 are already in the split files (their work folders are not kept); this script keeps every record
there and adds later rounds. Splits are assigned per source document (a stable hash of corpus + doc id, the
same function as for rounds 1-4), so sentences of one article never straddle splits; project-written records
went to train/dev only.

    python scripts/build_dataset.py --round work/candidates5:work/labels5 \
        --second work/second5 --adjudicated work/adjudicated5.jsonl --relabel work/relabel1.jsonl

* ``--round CANDIDATES:LABELS``: label files ``batchNN.jsonl`` matched to their candidates by ``cid``.
* ``--second DIR``: an independent second pass over some candidates (``*.jsonl``, by ``cid``); the pairs go to
  ``agreement.jsonl`` (ids only, with ``"round"``) so ``rustance data check`` reports kappa per field.
* ``--adjudicated FILE``: final labels for items the passes disagreed on (override the first pass).
* ``--relabel FILE|DIR``: new labels for existing records by record ``id`` (round-1 records read again under the
  later rules 13-21); each changed record gets ``"relabelled": "rules 13-21"``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

QUOTED = re.compile(r"[А-Яа-яЁё][А-Яа-яЁё\-]*(?:[ ,]+[А-Яа-яЁё][А-Яа-яЁё\-]*)+")
LABEL_KEYS = ("topics", "sentiment", "context_needed")


def split_of(key: str, dev: float, test: float) -> str:
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test else "dev" if bucket < test + dev else "train"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def clean_note(note: str) -> str:
    # annotators sometimes quoted a few words of the sentence: keep no corpus text in the repo
    return QUOTED.sub("«…»", note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round", dest="rounds", nargs="*", default=[], help="CANDIDATES_DIR:LABELS_DIR pairs")
    parser.add_argument("--second", type=Path, nargs="*", default=[], help="folders of second-pass label files")
    parser.add_argument("--adjudicated", type=Path, nargs="*", default=[])
    parser.add_argument("--relabel", type=Path, nargs="*", default=[])
    parser.add_argument("--review", type=Path, nargs="*", default=[],
                        help="folders of reviewed first-pass labels (by cid; re-read under rules settled during the "
                             "round), replacing the first pass")
    parser.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    parser.add_argument("--out", type=Path, default=Path("data/stance"))
    args = parser.parse_args()
    from rustance.corpora import resolve_span

    rounds = {int(re.sub(r"\D", "", Path(pair.split(":")[0]).name) or -1) for pair in args.rounds}
    # records of the rounds given are rebuilt from their work folders (rerunning the script is idempotent)
    splits = {name: [r for r in read_jsonl(args.out / f"{name}.jsonl") if r.get("round") not in rounds]
              for name in ("train", "dev", "test")}
    relabel = {item.get("id", item.get("cid")): item for path in args.relabel
               for path in (sorted(path.glob("*.jsonl")) if path.is_dir() else [path]) for item in read_jsonl(path)}
    seen_texts = set()
    for records in splits.values():
        for rec in records:
            if rec["id"] in relabel:
                new = relabel[rec["id"]]
                if (new["topics"], new["sentiment"]) != (rec["topics"], rec["sentiment"]):
                    rec["relabelled"] = "rules 13-21"
                rec["topics"], rec["sentiment"] = new["topics"], new["sentiment"]
                if new.get("context_needed"):
                    rec["context_needed"] = True
                if new.get("note"):
                    rec["note"] = clean_note(new["note"])
            text = rec.get("text") or resolve_span(rec["source"], args.corpora)
            seen_texts.add(" ".join(text.lower().split()))
    overrides = {item["cid"]: item for path in args.adjudicated for item in read_jsonl(path)}
    review = {item["cid"]: item for folder in args.review for path in sorted(folder.glob("*.jsonl"))
              for item in read_jsonl(path)}
    second = {item["cid"]: item for folder in args.second for path in sorted(folder.glob("*.jsonl"))
              for item in read_jsonl(path)}
    agreement_new, added = [], 0
    for pair in args.rounds:
        candidate_dir, label_dir = map(Path, pair.split(":"))
        round_name = re.sub(r"\D", "", candidate_dir.name) or candidate_dir.name
        for label_file in sorted(label_dir.glob("batch*.jsonl")):
            candidates = {c["cid"]: c for c in read_jsonl(candidate_dir / label_file.name)}
            for first in read_jsonl(label_file):
                if first["cid"] in review:
                    first = {**first, **{k: v for k, v in review[first["cid"]].items() if k != "note" or v}}
                cand = candidates[first["cid"]]
                final = {**first, **{k: v for k, v in overrides.get(first["cid"], {}).items() if k != "cid"}}
                key = " ".join(cand["text"].lower().split())
                if key in seen_texts:
                    continue
                seen_texts.add(key)
                src = cand["source"]
                record = {
                    "id": f"{src['corpus']}:{src['doc']}:{src['start']}",
                    "source": src,
                    "topics": final["topics"],
                    "sentiment": final["sentiment"],
                    "origin": "corpus",
                    "pick": cand["pick"],
                    "round": int(round_name) if round_name.isdigit() else round_name,
                }
                if final.get("context_needed") and final["topics"]:
                    record["context_needed"] = True
                if final.get("note"):
                    record["note"] = clean_note(final["note"])
                if first["cid"] in overrides:
                    record["adjudicated"] = overrides[first["cid"]].get("adjudicated", "second pass disagreed")
                splits[split_of(f"{src['corpus']}:{src['doc']}", 0.15, 0.15)].append(record)
                added += 1
                if first["cid"] in second:
                    other = second[first["cid"]]
                    agreement_new.append({"id": record["id"], "round": "rounds 5+",
                                          "first": {k: first[k] for k in LABEL_KEYS if k in first},
                                          "second": {k: other[k] for k in LABEL_KEYS if k in other}})
    for name, records in splits.items():
        records.sort(key=lambda r: r["id"])
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for rec in records:
                handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"{name}: {len(records)}")
    if agreement_new:
        path = args.out / "agreement.jsonl"
        old = [item for item in read_jsonl(path) if item.get("round") != "rounds 5+"] if path.exists() else []
        with open(path, "w", encoding="utf-8") as handle:
            for item in old + agreement_new:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"added {added} records; {len(agreement_new)} double-annotated pairs; {len(relabel)} relabelled inputs")


if __name__ == "__main__":
    main()
