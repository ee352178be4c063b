"""Validate the project's labelled splits and count what they hold."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rustance.labels import SENTIMENTS, STANCES, Topic
from rustance.records import DataError, Record, load_records

SPLITS = ("train", "dev", "test")


@dataclass
class DataReport:
    records: dict[str, list[Record]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def check_splits(data_dir: str | Path, topics: tuple[Topic, ...], corpora_dir: str | Path | None = None) -> DataReport:
    """Load every split (schema, labels, spans) and look for leaks between splits."""
    report = DataReport()
    for split in SPLITS:
        path = Path(data_dir) / f"{split}.jsonl"
        try:
            report.records[split] = load_records(path, topics, corpora_dir)
        except DataError as exc:
            report.problems.append(str(exc))
            report.records[split] = []
    seen_ids: dict[str, str] = {}
    seen_texts: dict[str, str] = {}
    seen_docs: dict[tuple, str] = {}
    for split, records in report.records.items():
        for r in records:
            for key, table, what in ((r.id, seen_ids, "id"), (_norm(r.text), seen_texts, "text")):
                if key in table and table[key] != split:
                    report.problems.append(f"{split}: {what} of {r.id!r} also in {table[key]}")
                table.setdefault(key, split)
            if r.source:
                doc = (r.source["corpus"], str(r.source["doc"]))
                if doc in seen_docs and seen_docs[doc] != split:
                    report.problems.append(f"{split}: document {doc} of {r.id!r} also in {seen_docs[doc]}")
                seen_docs.setdefault(doc, split)
            if split == "test" and r.origin == "written":
                report.problems.append(f"test: {r.id!r} is project-written; test holds real sentences only")
    return report


def count_table(report: DataReport, topics: tuple[Topic, ...]) -> list[list[str]]:
    """Rows: counts per split of records, origin, no-topic, each topic, each stance and sentiment."""
    rows = []
    stats = {}
    for split, records in report.records.items():
        c = Counter()
        for r in records:
            c["records"] += 1
            c[f"origin: {r.origin}"] += 1
            c[f"corpus: {r.source['corpus'] if r.source else 'none (written)'}"] += 1
            c["no topic"] += not r.topics
            c["context needed (records)"] += r.context_needed
            for topic, stance in r.topics.items():
                c[f"topic: {topic}"] += 1
                c[f"stance: {stance}"] += 1
                if r.origin == "corpus":
                    c["real-sentence pairs"] += 1
                    c[f"real stance: {stance}"] += 1
                    c["context slice (pairs)"] += r.context_needed
            c[f"sentiment: {r.sentiment}"] += 1
        stats[split] = c
    from rustance.corpora import CORPORA

    keys = (["records", "origin: corpus", "origin: written", *[f"corpus: {c}" for c in CORPORA], "no topic"] + [f"topic: {t.id}" for t in topics]
            + [f"stance: {s}" for s in STANCES] + ["real-sentence pairs"] + [f"real stance: {s}" for s in STANCES]
            + ["context needed (records)", "context slice (pairs)"] + [f"sentiment: {s}" for s in SENTIMENTS])
    for key in keys:
        values = [stats[s][key] for s in report.records]
        rows.append([key, *map(str, values), str(sum(values))])
    return rows


# The data targets of issue 15 (five times the round 1-4 stance data); `rustance data check` shows progress.
TARGETS = {
    "train: real-sentence (sentence, topic) pairs": ("train", "real-sentence pairs", 6000),
    **{f"train: real pairs with stance {s}": ("train", f"real stance: {s}", 800) for s in STANCES},
    **{f"test: real pairs with stance {s}": ("test", f"real stance: {s}", 120) for s in STANCES},
    "test: context-slice pairs": ("test", "context slice (pairs)", 100),
}


def target_rows(rows: list[list[str]]) -> list[list[str]]:
    """Rows ``[target, have, want, met]`` for the data targets, plus the share of no-topic records."""
    splits = list(SPLITS)
    table = {row[0]: row[1:] for row in rows}
    out = []
    for name, (split, key, want) in TARGETS.items():
        have = int(table.get(key, ["0"] * 4)[splits.index(split)])
        out.append([name, str(have), f">= {want}", "yes" if have >= want else "no"])
    total, none = int(table["records"][-1]), int(table["no topic"][-1])
    share = 100 * none / max(total, 1)
    out.append(["all: records with no topic (negatives)", f"{share:.1f} %", ">= 25 %", "yes" if share >= 25 else "no"])
    return out
