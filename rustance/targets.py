"""Entity-targeted sentiment data: the RuSentNE-2023 TSV format, a by-sentence dev split, target markers.

RuSentNE rows: ``sentence, entity, entity_tag, entity_pos_start_rel, entity_pos_end_rel[, label]`` with
labels -1 / 0 / 1 (negative / neutral / positive); official validation and test files have no label column.
Fields use CSV quoting (``""`` inside quoted fields), tab-separated.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from rustance.labels import SENTIMENTS
from rustance.records import DataError

COLUMNS = ("sentence", "entity", "entity_tag", "entity_pos_start_rel", "entity_pos_end_rel")
LABEL_VALUES = {"-1": "negative", "0": "neutral", "1": "positive"}
MARKERS = ("typed", "plain", "segment")


@dataclass
class TargetExample:
    """One sentence with one target span and, when known, the sentiment toward it."""

    sentence: str
    start: int
    end: int
    tag: str = ""  # entity type (PERSON, ORGANIZATION, ...) or "" when unknown
    label: str | None = None  # negative / neutral / positive
    line: int = 0  # line in the source file (1-based, header is line 1)

    @property
    def target(self) -> str:
        return self.sentence[self.start : self.end]


@dataclass
class BadRow:
    line: int
    reason: str


def _parse_row(row: list[str], header: list[str], line: int) -> TargetExample | str:
    if len(row) != len(header):
        return f"expected {len(header)} tab-separated fields, found {len(row)}"
    values = dict(zip(header, row))
    sentence, entity = values["sentence"], values["entity"]
    if not sentence.strip():
        return "empty sentence"
    try:
        start, end = int(values["entity_pos_start_rel"]), int(values["entity_pos_end_rel"])
    except ValueError:
        return "entity offsets are not integers"
    if not 0 <= start < end <= len(sentence):
        return f"entity offsets {start}..{end} outside the sentence (length {len(sentence)})"
    if sentence[start:end] != entity:
        return f"entity {entity!r} does not match the sentence at {start}..{end} ({sentence[start:end]!r})"
    label = None
    if "label" in values:
        if values["label"].strip() not in LABEL_VALUES:
            return f"label {values['label']!r} is not -1, 0 or 1"
        label = LABEL_VALUES[values["label"].strip()]
    return TargetExample(sentence, start, end, values["entity_tag"].strip(), label, line)


def read_target_file(path: str | Path, strict: bool = True) -> tuple[list[TargetExample], list[BadRow]]:
    """Read a RuSentNE-format TSV file, labelled or not.

    Every row is validated (field count, integer offsets inside the sentence, entity text at those offsets,
    label value). With ``strict`` any bad row raises :class:`DataError` listing them by line; otherwise bad
    rows are returned beside the good ones.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    examples, bad = [], []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)}; "
                                f"expected {', '.join(COLUMNS)}[, label]")
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                parsed = _parse_row(row, header, line)
                if isinstance(parsed, str):
                    bad.append(BadRow(line, parsed))
                else:
                    examples.append(parsed)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from exc
    if strict and bad:
        shown = "\n".join(f"  {path}:{b.line}: {b.reason}" for b in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise DataError(f"{path}: {len(bad)} bad row(s):\n{shown}{more}")
    return examples, bad


def split_by_sentence(examples: list[TargetExample], dev_fraction: float, seed: int
                      ) -> tuple[list[TargetExample], list[TargetExample]]:
    """Train/dev split that keeps all targets of one sentence on the same side (fixed seed)."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = [e.sentence for e in examples]
    splitter = GroupShuffleSplit(n_splits=1, test_size=dev_fraction, random_state=seed)
    train_idx, dev_idx = next(splitter.split(examples, groups=groups))
    return [examples[i] for i in sorted(train_idx)], [examples[i] for i in sorted(dev_idx)]


def mark_target(example: TargetExample, style: str) -> tuple[str, str | None, int | None]:
    """The model input for one example: (text, second segment or None, char index of the opening marker).

    * ``typed``   — ``… @ * PERSON * Иванов @ …``: the entity between punctuation markers with its type
                    (the "typed entity marker (punct)" of Zhou & Chen 2022; no new tokens needed).
    * ``plain``   — ``… @ Иванов @ …``.
    * ``segment`` — the sentence unchanged, the entity as a second segment (the RuSentNE baseline's input).
    """
    s, a, b = example.sentence, example.start, example.end
    if style == "segment":
        return s, example.target, None
    inner = f"* {example.tag} * {s[a:b]}" if style == "typed" and example.tag else s[a:b]
    return f"{s[:a]}@ {inner} @{s[b:]}", None, a


def sentiment_index(label: str) -> int:
    return SENTIMENTS.index(label)
