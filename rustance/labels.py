"""Label vocabularies and the topic set (ids plus short Russian descriptions)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

STANCES: tuple[str, ...] = ("conciliatory", "critical", "conditional", "neutral")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Topic:
    """One issue the model tracks: a stable id and a short Russian description."""

    id: str
    description: str


def load_topics(path: str | Path | None = None) -> tuple[Topic, ...]:
    """Read a topic file (YAML list of ``{id, description}``); ``None`` gives the default seven."""
    if path is None:
        raw = resources.files("rustance").joinpath("topics.yaml").read_text(encoding="utf-8")
        where = "rustance/topics.yaml"
    else:
        raw = Path(path).read_text(encoding="utf-8")
        where = str(path)
    entries = yaml.safe_load(raw)
    if isinstance(entries, dict):
        entries = entries.get("topics")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{where}: expected a non-empty list of topics with 'id' and 'description'")
    topics, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"].isidentifier():
            raise ValueError(f"{where}: topic #{i + 1} needs an 'id' made of letters, digits and '_'")
        if entry["id"] in seen:
            raise ValueError(f"{where}: topic id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        topics.append(Topic(entry["id"], str(entry.get("description", ""))))
    return tuple(topics)
