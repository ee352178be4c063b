"""Label vocabularies and the topic set (ids plus short Russian descriptions)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from rustance.errors import RustanceError

STANCES: tuple[str, ...] = ("conciliatory", "critical", "conditional", "neutral")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")


class TopicsError(RustanceError, ValueError):
    """A topic file that is missing or not a valid topic list."""


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
        where = str(path)
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TopicsError(f"topic file {where} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TopicsError(f"topic file {where} cannot be read: {exc}") from None
    try:
        entries = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise TopicsError(f"{where}: invalid YAML: {' '.join(str(exc).split())}") from None
    if isinstance(entries, dict):
        entries = entries.get("topics")
    if not isinstance(entries, list) or not entries:
        raise TopicsError(f"{where}: expected a non-empty list of topics with 'id' and 'description'")
    topics, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"].isidentifier():
            raise TopicsError(f"{where}: topic #{i + 1} needs an 'id' made of letters, digits and '_'")
        if entry["id"] in seen:
            raise TopicsError(f"{where}: topic id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        topics.append(Topic(entry["id"], str(entry.get("description", ""))))
    return tuple(topics)
