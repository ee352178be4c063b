"""Russian sentence splitting with character offsets (razdel, paragraph by paragraph)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from razdel import sentenize

_LINE = re.compile(r"[^\n]+")


@dataclass(frozen=True)
class Sentence:
    """A sentence and its ``[start, end)`` character offsets in the document."""

    text: str
    start: int
    end: int


def split_sentences(text: str) -> list[Sentence]:
    """Split ``text`` into sentences; line breaks always end a sentence.

    Offsets index into ``text`` itself, so ``text[s.start:s.end] == s.text``.
    """
    result = []
    for line in _LINE.finditer(text):
        for piece in sentenize(line.group()):
            if piece.text.strip():
                start = line.start() + piece.start
                result.append(Sentence(piece.text, start, start + len(piece.text)))
    return result
