"""Readers for the third-party corpora in ``../shared/corpora`` and the stand-off resolver.

Every corpus is seen as a mapping ``doc id -> document text``.  Stand-off records point
into that text with character offsets, so the repository never stores corpus text.

Document ids:
  * ``rusentrel``    — article file name, e.g. ``art12.txt``; markup such as
    ``{Author, Unknown}`` is blanked with spaces so offsets stay those of the raw file.
  * ``rusentne2023`` — 1-based data row of ``train.tsv``; the text is the sentence column.
  * ``ruattitudes``  — ``TextID``; the text is the title and sentences, one per line,
    lightly detokenised (no space before punctuation).
  * ``telegram_news`` — ``<file stem>:<message_id>``; the text is the post.
"""

from __future__ import annotations

from rustance.errors import RustanceError
import csv
import hashlib
import json
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

CORPORA = ("rusentrel", "rusentne2023", "ruattitudes", "telegram_news")
_MARKUP = re.compile(r"\{[^}\n]*\}")
_SPACE_BEFORE = re.compile(r" ([,.:;!?)»%])")
_SPACE_AFTER = re.compile(r"([(«]) ")


class StandoffError(RustanceError, ValueError):
    """A stand-off reference that cannot be resolved to text."""


def default_corpora_dir() -> Path:
    """``$RUSTANCE_CORPORA`` or ``../shared/corpora`` next to the working directory."""
    env = os.environ.get("RUSTANCE_CORPORA")
    return Path(env) if env else Path("../shared/corpora")


def span_digest(text: str) -> str:
    """Short fingerprint of a span, stored in stand-off records to detect drift."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def detokenize(line: str) -> str:
    return _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", line))


def iter_documents(corpus: str, root: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` for every document of ``corpus`` under ``root``."""
    base = Path(root) / corpus
    if corpus == "rusentrel":
        for path in sorted((base / "train").glob("art*.txt")):
            if path.name.count(".") == 1:  # skip artN.opin.txt / artN.author.txt
                yield path.name, _read_rusentrel(path)
    elif corpus == "rusentne2023":
        with open(base / "train.tsv", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            next(reader)
            for row_number, row in enumerate(reader, start=1):
                yield str(row_number), row[0]
    elif corpus == "ruattitudes":
        yield from _iter_ruattitudes(base / "collection.txt")
    elif corpus == "telegram_news":
        for path in sorted((base / "raw").glob("*_messages.json")):
            stem = path.name.split("_")[0]
            for message in json.loads(path.read_text(encoding="utf-8")):
                if isinstance(message.get("text"), str) and message["text"].strip():
                    yield f"{stem}:{message['message_id']}", message["text"]
    else:
        raise StandoffError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")


def _read_rusentrel(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return _MARKUP.sub(lambda m: " " * len(m.group()), text)


def _iter_ruattitudes(path: Path) -> Iterator[tuple[str, str]]:
    doc_id, lines = None, []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            if raw.startswith("TextID: "):
                doc_id, lines = raw.split(":", 1)[1].strip(), []
            elif raw.startswith(("Title: ", "Text: ")):
                lines.append(detokenize(raw.split(": ", 1)[1].rstrip("\n")))
            elif raw.startswith("-----") and doc_id is not None:
                yield doc_id, "\n".join(lines)
                doc_id = None
    if doc_id is not None:
        yield doc_id, "\n".join(lines)


@lru_cache(maxsize=8)
def _corpus_index(corpus: str, root: str) -> dict[str, str]:
    return dict(iter_documents(corpus, Path(root)))


def resolve_span(source: dict, root: Path | None = None) -> str:
    """Return the text a stand-off ``source`` points to, checking its digest if present."""
    root = Path(root) if root is not None else default_corpora_dir()
    corpus = source.get("corpus")
    if corpus not in CORPORA:
        raise StandoffError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")
    if not (root / corpus).is_dir():
        raise StandoffError(f"corpus folder {root / corpus} not found (set RUSTANCE_CORPORA)")
    documents = _corpus_index(corpus, str(root.resolve()))
    doc = str(source.get("doc"))
    if doc not in documents:
        raise StandoffError(f"{corpus}: no document {doc!r}")
    text = documents[doc]
    start, end = source.get("start"), source.get("end")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        raise StandoffError(f"{corpus}/{doc}: bad span [{start}, {end}) for a text of {len(text)} chars")
    span = text[start:end]
    expected = source.get("sha1")
    if expected is not None and span_digest(span) != expected:
        raise StandoffError(
            f"{corpus}/{doc}[{start}:{end}] no longer matches its digest {expected}: "
            f"the corpus changed; found {span[:60]!r}"
        )
    return span


def previous_sentence(source: dict, root: Path | None = None) -> str:
    """The sentence that ends before ``source['start']`` in the same document ('' if none)."""
    from rustance.text import split_sentences

    root = Path(root) if root is not None else default_corpora_dir()
    text = _corpus_index(source["corpus"], str(root.resolve()))[str(source["doc"])]
    before = [s.text for s in split_sentences(text[: source["start"]])]
    return before[-1] if before else ""
