"""Streaming readers for corpus inference: JSONL, JSON arrays, CSV/TSV, Parquet, plain text, folders, stdin.

Every input item becomes either a :class:`Document` or a :class:`Reject` (file, line, reason), in a
deterministic order, so a run can be resumed by skipping the first N items.
"""

from __future__ import annotations

from rustance.errors import RustanceError
import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt", "lines")
# .json: a JSON array of objects (as in many exports), or JSON lines under that name (see is_json_array)
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
             ".parquet": "parquet", ".pq": "parquet", ".txt": "txt"}


class InputError(RustanceError, ValueError):
    """An input that cannot be read at all (missing, unreadable, unknown format)."""


@dataclass
class Document:
    doc_id: str
    text: str
    source: str  # file the document came from
    line: int  # 1-based line (JSONL, text lines) or row (CSV, Parquet) in that file


@dataclass
class Reject:
    source: str
    line: int
    reason: str
    excerpt: str = ""


@dataclass
class ReaderOptions:
    text_column: str = "text"
    id_column: str | None = "id"
    input_format: str | None = None  # None: from the file suffix ("lines" for stdin)
    max_chars: int = 1_000_000  # longer documents are rejected, not split
    json_items: str | None = None  # .json: the key (dots for nested keys) of the array inside a top-level object,
    # e.g. "messages" for Telegram Desktop's result.json; None: the file is the array


def resolve_inputs(inputs: list[str], input_format: str | None = None) -> list[str]:
    """Expand folders (sorted, recursive) and check every path before any work starts."""
    paths = []
    for item in inputs:
        if item == "-":
            paths.append("-")
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
            if not found:
                raise InputError(f"{path}: folder holds no .jsonl/.json/.csv/.tsv/.parquet/.txt files")
            paths += [str(p) for p in found]
        elif not path.exists():
            raise InputError(f"{path}: no such file or folder")
        elif not path.is_file():
            raise InputError(f"{path}: not a regular file")
        else:
            if input_format is None and path.suffix.lower() not in _SUFFIXES:
                raise InputError(f"{path}: unknown file type; name it .jsonl/.json/.csv/.tsv/.parquet/.txt "
                                 "or pass --input-format")
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
            except OSError as exc:
                raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
            paths.append(str(path))
    if not paths:
        raise InputError("no input given")
    return paths


def _excerpt(raw: str | bytes, limit: int = 200) -> str:
    if isinstance(raw, bytes):
        raw = raw[:limit].decode("utf-8", errors="replace")
    return raw[:limit]


def _joined_pieces(text: list) -> str | None:
    """Rich text as a list of strings and ``{"text": ...}`` pieces (Telegram's export format), joined; else None."""
    if all(isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str)) for p in text):
        return "".join(p if isinstance(p, str) else p["text"] for p in text)
    return None


def _document(obj: dict, where: str, line: int, options: ReaderOptions) -> Document | Reject:
    text = obj.get(options.text_column)
    if isinstance(text, list):
        joined = _joined_pieces(text)
        if joined is None:
            return Reject(where, line, f"text field {options.text_column!r} is a list that is not rich-text pieces",
                          _excerpt(json.dumps(text, ensure_ascii=False)))
        text = joined
    if text is None:
        return Reject(where, line, f"missing text field {options.text_column!r}", _excerpt(json.dumps(obj, ensure_ascii=False)))
    if not isinstance(text, str):
        return Reject(where, line, f"text field {options.text_column!r} is {type(text).__name__}, not a string",
                      _excerpt(repr(text)))
    if not text.strip():
        return Reject(where, line, "empty document")
    if len(text) > options.max_chars:
        return Reject(where, line, f"document of {len(text)} characters exceeds --max-chars {options.max_chars}",
                      _excerpt(text))
    doc_id = obj.get(options.id_column) if options.id_column else None
    if doc_id is None or (isinstance(doc_id, str) and not doc_id):
        doc_id = f"{Path(where).name}:{line}"
    return Document(str(doc_id), text, where, line)


def _jsonl(handle, where: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    _skip_bom(handle)
    for number, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Reject(where, number, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Reject(where, number, f"malformed JSON: {exc.msg} at column {exc.colno}", _excerpt(line))
            continue
        if not isinstance(obj, dict):
            yield Reject(where, number, f"JSON {type(obj).__name__}, not an object", _excerpt(line))
            continue
        yield _document(obj, where, number, options)


_BOM = b"\xef\xbb\xbf"


def _skip_bom(handle) -> None:
    """Step over a UTF-8 byte-order mark at the start of a binary stream (files and stdin both buffer)."""
    if handle.peek(3)[:3] == _BOM:
        handle.read(3)


def _first_byte(handle) -> bytes:
    """The first non-blank byte ahead in a binary stream, after a byte-order mark (stepped over), without
    consuming it; b"" for a blank stream."""
    _skip_bom(handle)
    return handle.peek(4096).lstrip()[:1]


def is_json_array(path: str) -> bool:
    """Whether the file holds a top-level JSON array."""
    with open(path, "rb") as handle:
        return _first_byte(handle) == b"["


def _is_json_lines(path: str) -> bool:
    """Whether a .json file that is not an array is JSON lines: its first non-blank line is a whole JSON value
    (a pretty-printed object, such as Telegram Desktop's result.json, is not)."""
    with open(path, "rb") as handle:
        _skip_bom(handle)
        for raw in handle:
            if raw.strip():
                try:
                    json.loads(raw)
                    return True
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return False
    return True


def _json_array(handle, where: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    """Stream the objects of a top-level JSON array (ijson: memory bounded by the largest item).

    An item's 1-based position in the array stands where other formats give a line number. A syntax error or
    invalid UTF-8 ends the file: everything after it goes to the rejects as one entry, since no parser can
    tell where the next item starts. Anything but an array at the top is one reject that says what to do.
    """
    import ijson

    first = _first_byte(handle)
    expected, prefix = (b"{", f"{options.json_items}.item") if options.json_items else (b"[", "item")
    if first != expected:
        what = {b"{": "a JSON object", b"[": "a JSON array", b"": "empty"}.get(first, f"starts with {first!r}")
        if options.json_items:
            yield Reject(where, 1, f"--json-items {options.json_items} needs a JSON object at the top, found {what}")
        else:
            yield Reject(where, 1, f"not a JSON array ({what}): rustance reads a JSON array of objects, JSON lines "
                                   "(--input-format jsonl), or the array under a key of a JSON object (--json-items "
                                   "KEY, e.g. --json-items messages for Telegram Desktop's result.json)")
        return
    start, number, backend = handle.tell() if handle.seekable() else 0, 0, "yajl2_c"
    while True:
        try:
            items = ijson.get_backend(backend).items(handle, prefix, use_float=True)
            for index, obj in enumerate(items, start=1):
                if index <= number:  # yielded before a restart
                    continue
                number = index
                if isinstance(obj, dict):
                    yield _document(obj, where, number, options)
                else:
                    yield Reject(where, number, f"JSON array item is {type(obj).__name__}, not an object",
                                 _excerpt(json.dumps(obj, ensure_ascii=False, default=str)))
            if options.json_items and not number:
                yield Reject(where, 1, f"no array items under the key {options.json_items!r}")
            return
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            message = str(exc).splitlines()[0].removeprefix("b'").removeprefix('b"')
            if "integer overflow" in message and backend == "yajl2_c" and handle.seekable():
                # the C parser stops at integers of 2^63 and over; the pure-Python one reads them (more slowly)
                handle.seek(start)
                backend = "python"
                continue
            yield Reject(where, number + 1, f"malformed JSON array after item {number}, rest of file skipped: "
                                            f"{message}")
            return


def _lines(handle, where: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Reject(where, number, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
            continue
        if text.strip():
            yield _document({"text": text}, where, number, ReaderOptions("text", None, max_chars=options.max_chars))


def _csv(path: str, delimiter: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    csv.field_size_limit(max(options.max_chars * 4, 1 << 20))
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Reject(path, 1, f"unreadable CSV header: {exc}")
            return
        if options.text_column not in header:
            raise InputError(f"{path}: no column {options.text_column!r} (columns: {', '.join(header)}); "
                             "use --text-column")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield Reject(path, reader.line_num, f"malformed CSV: {exc}")
                continue
            number = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                yield Reject(path, number, f"ragged row: {len(row)} fields, header has {len(header)}",
                             _excerpt(delimiter.join(row)))
                continue
            if any("\udc80" <= ch <= "\udcff" for field in row for ch in field):
                yield Reject(path, number, "invalid UTF-8", _excerpt(delimiter.join(row).encode("utf-8", "replace")))
                continue
            yield _document(dict(zip(header, row)), path, number, options)


def _parquet(path: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = parquet.schema_arrow.names
    if options.text_column not in names:
        raise InputError(f"{path}: no column {options.text_column!r} (columns: {', '.join(names)}); use --text-column")
    columns = [options.text_column] + ([options.id_column] if options.id_column in names else [])
    row = 0
    for batch in parquet.iter_batches(batch_size=1024, columns=columns):
        for obj in batch.to_pylist():
            row += 1
            yield _document(obj, path, row, options)


def read_documents(paths: list[str], options: ReaderOptions) -> Iterator[Document | Reject]:
    """Yield documents and rejects from every path in order."""
    for path in paths:
        if path == "-":
            fmt = options.input_format or "lines"
            stream = sys.stdin.buffer
            if fmt == "jsonl":
                yield from _jsonl(stream, "<stdin>", options)
            elif fmt == "json":
                yield from _json_array(stream, "<stdin>", options)
            elif fmt == "lines":
                yield from _lines(stream, "<stdin>", options)
            else:
                yield from _lines_or_text(io.BytesIO(stream.read()), "<stdin>", fmt, options)
            continue
        fmt = _file_format(path, options)
        if fmt == "json":
            with open(path, "rb") as handle:
                yield from _json_array(handle, path, options)
        elif fmt == "jsonl":
            with open(path, "rb") as handle:
                yield from _jsonl(handle, path, options)
        elif fmt in ("csv", "tsv"):
            yield from _csv(path, "," if fmt == "csv" else "\t", options)
        elif fmt == "parquet":
            yield from _parquet(path, options)
        elif fmt == "lines":
            with open(path, "rb") as handle:
                yield from _lines(handle, path, options)
        elif fmt == "txt":
            with open(path, "rb") as handle:
                yield from _lines_or_text(handle, path, fmt, options)
        else:
            raise InputError(f"unknown input format {fmt!r} (known: {', '.join(FORMATS)})")


def _file_format(path: str, options: ReaderOptions) -> str:
    """The reader for a file: --input-format, else by suffix; a .json file of JSON lines is read as such."""
    fmt = options.input_format or _SUFFIXES[Path(path).suffix.lower()]
    if fmt == "json" and options.input_format is None and not options.json_items and not is_json_array(path) \
            and _is_json_lines(path):
        return "jsonl"
    return fmt


def _lines_or_text(handle, where: str, fmt: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    """A plain-text file is one document; its id is the file name."""
    raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield Reject(where, raw.count(b"\n", 0, exc.start) + 1, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
        return
    yield _document({"text": text, "id": Path(where).name}, where, 1, ReaderOptions("text", "id", max_chars=options.max_chars))


def count_items(paths: list[str], options: ReaderOptions) -> int | None:
    """A quick estimate of the number of input items (for progress and ETA); None when unknown (stdin)."""
    total = 0
    for path in paths:
        if path == "-":
            return None
        fmt = _file_format(path, options)
        if fmt == "json":
            total += _count_array_items(path, options)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            total += pq.ParquetFile(path).metadata.num_rows
        elif fmt == "txt":
            total += 1
        else:
            with open(path, "rb") as handle:
                lines = sum(1 for line in handle if line.strip())
            total += max(lines - (1 if fmt in ("csv", "tsv") else 0), 0)
    return total


def _count_array_items(path: str, options: ReaderOptions) -> int:
    """Items that reading a .json file as an array yields (documents and rejects), for the progress bar."""
    with open(path, "rb") as handle:
        return sum(1 for _ in _json_array(handle, path, options))
