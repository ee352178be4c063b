"""Annotation helper: show candidate batches to a reader and validate the labels they write.

    python scripts/annotate.py show work/candidates5/batch00.jsonl --start 0 --count 25
    python scripts/annotate.py check work/candidates5/batch00.jsonl work/labels5/batch00.jsonl

``show`` prints each candidate's id, its previous sentence (context) and the sentence; nothing else
(no keyword hits, no model scores: the guidelines decide). ``check`` validates a labels file: one JSON
object per line with ``cid``, ``topics`` ({topic: stance}), ``sentiment``, optional ``context_needed``
(bool) and ``note``; it lists missing, unknown and invalid items.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rustance.labels import SENTIMENTS, STANCES, load_topics


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def show(args) -> None:
    items = read(args.batch)[args.start:args.start + args.count]
    for c in items:
        ctx = " ".join(c.get("context", "").split()) or "—"
        print(f"[{c['cid']}]\n  context: {ctx}\n  SENTENCE: {' '.join(c['text'].split())}")
        if "current" in c:  # relabelling passes review an earlier label
            print(f"  CURRENT LABEL: {json.dumps(c['current'], ensure_ascii=False)}")
        print()


def check(args) -> int:
    topic_ids = {t.id for t in load_topics()}
    cands = {c["cid"] for c in read(args.batch)}
    problems, seen = [], set()
    for n, line in enumerate(args.labels.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            lab = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: bad JSON ({exc.msg})")
            continue
        cid = lab.get("cid")
        if cid not in cands:
            problems.append(f"line {n}: unknown cid {cid!r}")
        if cid in seen:
            problems.append(f"line {n}: duplicate cid {cid!r}")
        seen.add(cid)
        topics = lab.get("topics")
        if not isinstance(topics, dict):
            problems.append(f"line {n}: 'topics' must be an object")
        else:
            for t, s in topics.items():
                if t not in topic_ids:
                    problems.append(f"line {n}: unknown topic {t!r}")
                if s not in STANCES:
                    problems.append(f"line {n}: unknown stance {s!r}")
        if lab.get("sentiment") not in SENTIMENTS:
            problems.append(f"line {n}: bad sentiment {lab.get('sentiment')!r}")
        if "context_needed" in lab and not isinstance(lab["context_needed"], bool):
            problems.append(f"line {n}: context_needed must be true/false")
        if lab.get("context_needed") and not topics:
            problems.append(f"line {n}: context_needed without a topic")
    missing = sorted(cands - seen)
    if missing:
        problems.append(f"{len(missing)} candidates not labelled yet, first: {missing[:5]}")
    print("\n".join(problems) if problems else f"ok: {len(seen)} labels, all candidates covered")
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show")
    s.add_argument("batch", type=Path)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--count", type=int, default=25)
    c = sub.add_parser("check")
    c.add_argument("batch", type=Path)
    c.add_argument("labels", type=Path)
    args = parser.parse_args()
    if args.cmd == "show":
        show(args)
    else:
        sys.exit(check(args))


if __name__ == "__main__":
    main()
