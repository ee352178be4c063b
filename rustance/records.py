"""The JSON Lines record format of ../shared/LABELS.md: reading and validating it."""

from __future__ import annotations

from rustance.errors import RustanceError
import json
from dataclasses import dataclass, field
from pathlib import Path

from rustance.corpora import StandoffError, previous_sentence, resolve_span
from rustance.labels import SENTIMENTS, STANCES, Topic


class DataError(RustanceError, ValueError):
    """One or more invalid records; the message names file and line of each."""


@dataclass
class Record:
    """One labelled sentence."""

    id: str
    text: str
    topics: dict[str, str]
    sentiment: str
    context: str = ""
    origin: str = "corpus"
    source: dict | None = field(default=None, repr=False)
    context_needed: bool = False  # a topic of the sentence is named only in its previous sentence
    round: int | None = None  # annotation round (5 and later; rounds 1-4 carry none)


def _check(obj: object, topic_ids: set[str]) -> str | None:
    """Return what is wrong with a parsed record, or None."""
    if not isinstance(obj, dict):
        return "a record must be a JSON object"
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        return "missing or empty 'id'"
    if "text" in obj:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            return "'text' must be a non-empty string"
    elif not isinstance(obj.get("source"), dict):
        return "needs 'text' or a stand-off 'source' object"
    topics = obj.get("topics")
    if not isinstance(topics, dict):
        return "'topics' must be an object mapping topic id to stance ({} for none)"
    for topic, stance in topics.items():
        if topic not in topic_ids:
            return f"unknown topic {topic!r} (known: {', '.join(sorted(topic_ids))})"
        if stance not in STANCES:
            return f"unknown stance {stance!r} for topic {topic!r} (allowed: {', '.join(STANCES)})"
    if obj.get("sentiment") not in SENTIMENTS:
        return f"'sentiment' must be one of {', '.join(SENTIMENTS)}, got {obj.get('sentiment')!r}"
    if "context" in obj and not isinstance(obj["context"], str):
        return "'context' must be a string"
    if "context_needed" in obj:
        if not isinstance(obj["context_needed"], bool):
            return "'context_needed' must be true or false"
        if obj["context_needed"] and not topics:
            return "'context_needed' is true but the record has no topic"
    return None


def load_records(
    path: str | Path, topics: tuple[Topic, ...], corpora_dir: str | Path | None = None
) -> list[Record]:
    """Read and validate a JSONL file; stand-off records are resolved against ``corpora_dir``.

    Raises :class:`DataError` listing every bad line as ``file:line: reason``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    topic_ids = {t.id for t in topics}
    records, errors, ids = [], [], set()
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                errors.append(f"{where}: not valid UTF-8")
                continue
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: bad JSON ({exc.msg} at column {exc.colno})")
                continue
            problem = _check(obj, topic_ids)
            if problem is None and obj["id"] in ids:
                problem = f"duplicate id {obj['id']!r}"
            if problem is None and "text" not in obj:
                try:
                    obj["text"] = resolve_span(obj["source"], corpora_dir)
                    obj.setdefault("context", previous_sentence(obj["source"], corpora_dir))
                except StandoffError as exc:
                    problem = str(exc)
            if problem:
                errors.append(f"{where}: {problem}")
                continue
            ids.add(obj["id"])
            records.append(
                Record(
                    id=obj["id"],
                    text=obj["text"],
                    topics=dict(obj["topics"]),
                    sentiment=obj["sentiment"],
                    context=obj.get("context", ""),
                    origin=obj.get("origin", "corpus"),
                    source=obj.get("source"),
                    context_needed=obj.get("context_needed", False),
                    round=obj.get("round"),
                )
            )
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DataError(f"{len(errors)} invalid record(s):\n  {shown}{more}")
    return records
