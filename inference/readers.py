"""Streaming readers for corpus inference: JSONL, JSON arrays, CSV/TSV, Parquet, plain text, folders, stdin.

Every input item becomes either a :class:`Document` or a :class:`Reject` (file, line, reason), in a
deterministic order, so a run can be resumed by skipping the first N items. A problem with a whole file (an
unreadable Parquet file, a CSV header without the text column) is one *file-level* reject: it does not count
as an item, so removing the bad file does not shift the items of the others, and the run goes on.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import Enum
from pathlib import Path

from rustance.errors import RustanceError


class InputFormat(str, Enum):
    """How an input is read (``--input-format``)."""

    JSONL = "jsonl"
    JSON = "json"  # a JSON array of objects, or JSON lines under that name (see is_json_array)
    CSV = "csv"
    TSV = "tsv"
    PARQUET = "parquet"
    TXT = "txt"  # one document per file
    LINES = "lines"  # one document per line


FORMATS = tuple(f.value for f in InputFormat)
SUFFIXES = {".jsonl": InputFormat.JSONL, ".ndjson": InputFormat.JSONL, ".json": InputFormat.JSON,
            ".csv": InputFormat.CSV, ".tsv": InputFormat.TSV, ".parquet": InputFormat.PARQUET,
            ".pq": InputFormat.PARQUET, ".txt": InputFormat.TXT}
STDIN = "<stdin>"


class InputError(RustanceError, ValueError):
    """An input that cannot be read at all (missing, unreadable, unknown format) or a bad reading option."""


class ColumnKind(str, Enum):
    """How a kept input column is written to the output rows."""

    TEXT = "text"  # the value as a string (numbers written out, lists and objects as JSON); null when missing
    DATE = "date"  # a timestamp (UTC for values with a time zone); the text in <name>_raw when it does not parse


_DATE_NAME = re.compile(r"(^|_)(date|datetime|time|timestamp)$|_at$|^published", re.IGNORECASE)


@dataclass(frozen=True)
class KeptColumn:
    """An input field carried into every output row of its document (``--keep-column NAME[:text|:date]``)."""

    name: str
    kind: ColumnKind

    @classmethod
    def parse(cls, spec: str) -> "KeptColumn":
        """``name`` (a date if the name says so: date, time, timestamp, *_date, *_at, published...),
        ``name:date`` or ``name:text``."""
        name, _, kind = spec.partition(":")
        if not name:
            raise InputError(f"--keep-column {spec!r}: give a column name (NAME, NAME:date or NAME:text)")
        if kind:
            try:
                return cls(name, ColumnKind(kind))
            except ValueError:
                raise InputError(f"--keep-column {spec!r}: the type after ':' must be date or text") from None
        return cls(name, ColumnKind.DATE if _DATE_NAME.search(name) else ColumnKind.TEXT)

    @property
    def output_columns(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_raw") if self.kind is ColumnKind.DATE else (self.name,)


@dataclass
class Document:
    doc_id: str
    text: str
    source: str  # file the document came from
    line: int  # 1-based line (JSONL, text lines), row (CSV, Parquet) or item (JSON array) in that file
    kept: dict = field(default_factory=dict)  # output column -> value, for the kept columns
    missing: tuple[str, ...] = ()  # kept columns the item lacks (written as null)
    unparsed: tuple[str, ...] = ()  # date columns whose value is not a date (kept as text in <name>_raw)


@dataclass
class Reject:
    source: str
    line: int
    reason: str
    excerpt: str = ""
    file_level: bool = False  # the whole file (not one item) could not be read; not counted as an item


@dataclass(frozen=True)
class ReaderOptions:
    text_column: str = "text"
    id_column: str | None = None  # None: the "id" field when there is one, else FILE:LINE; "": always FILE:LINE;
    # a name: that field, which every item must have (a file without it is rejected)
    input_format: InputFormat | None = None  # None: from the file suffix (lines for stdin)
    max_chars: int = 1_000_000  # longer documents are rejected, not split
    json_items: str | None = None  # .json: the key (dots for nested keys) of the array inside a top-level object,
    # e.g. "messages" for Telegram Desktop's result.json; None: the file is the array
    keep_columns: tuple[KeptColumn, ...] = ()

    def __post_init__(self):
        if self.input_format is not None and not isinstance(self.input_format, InputFormat):
            try:
                object.__setattr__(self, "input_format", InputFormat(self.input_format))
            except ValueError:
                raise InputError(f"--input-format must be one of {', '.join(FORMATS)}, "
                                 f"got {self.input_format!r}") from None
        if self.max_chars < 1:
            raise InputError(f"--max-chars must be at least 1, got {self.max_chars}")
        if not self.text_column:
            raise InputError("--text-column must name a field")
        names = [c.name for c in self.keep_columns]
        if len(set(names)) != len(names):
            raise InputError(f"--keep-column names a column twice: {', '.join(names)}")

    @property
    def id_field(self) -> str | None:
        return "id" if self.id_column is None else (self.id_column or None)


def resolve_inputs(inputs: list[str], input_format: InputFormat | str | None = None,
                   exclude: str | Path | None = None) -> list[str]:
    """Expand folders (sorted, recursive) and check every path before any work starts.

    Files under ``exclude`` (the output folder, when it lies inside an input folder) are left out.
    """
    skip = Path(exclude).resolve() if exclude is not None else None
    paths = []
    for item in inputs:
        if item == "-":
            paths.append("-")
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not (skip is not None and p.resolve().is_relative_to(skip)))
            if not found:
                raise InputError(f"{path}: folder holds no .jsonl/.json/.csv/.tsv/.parquet/.txt files")
            paths += [str(p) for p in found]
        elif not path.exists():
            raise InputError(f"{path}: no such file or folder")
        elif not path.is_file():
            raise InputError(f"{path}: not a regular file")
        else:
            if input_format is None and path.suffix.lower() not in SUFFIXES:
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
    return raw[:limit].encode("utf-8", "replace").decode("utf-8")  # no lone surrogates in the rejects file


def _bad_unicode(value: str) -> int | None:
    """Position of the first character UTF-8 cannot encode (a lone surrogate, e.g. from a JSON "\\ud800"
    escape or an invalid byte read with surrogateescape), or None."""
    try:
        value.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return exc.start


def _joined_pieces(text: list) -> str | None:
    """Rich text as a list of strings and ``{"text": ...}`` pieces (Telegram's export format), joined; else None."""
    if all(isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str)) for p in text):
        return "".join(p if isinstance(p, str) else p["text"] for p in text)
    return None


# Russian month names (nominative and genitive) for dateutil, next to the English ones it knows
_RU_MONTHS = ["январь января янв", "февраль февраля фев", "март марта мар", "апрель апреля апр", "май мая",
              "июнь июня июн", "июль июля июл", "август августа авг", "сентябрь сентября сен сент",
              "октябрь октября окт", "ноябрь ноября ноя", "декабрь декабря дек"]
_DATEUTIL_INFO = None


def parse_date(value) -> datetime | None:
    """A date or time from an input value, or None when it is not one.

    ISO 8601 (``2024-03-01``, ``2024-03-01T10:00:00+03:00``), Unix seconds or milliseconds (numbers or digit
    strings), and the common written forms dateutil reads (``01.03.2024``, ``1 March 2024``, ``1 марта 2024``;
    day before month when ambiguous). Values with a time zone are converted to UTC; the result is naive
    (times without a zone are kept as written).
    """
    global _DATEUTIL_INFO
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, bool) or value is None:
        return None
    elif isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"\d{9,13}", value.strip())):
        number = float(value)
        if number >= 1e11:  # milliseconds
            number /= 1000
        try:
            return datetime.fromtimestamp(number, timezone.utc).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            if not re.search(r"\d{4}", text):  # a bare day or month name would get today's date
                return None
            from dateutil import parser

            if _DATEUTIL_INFO is None:
                class _Info(parser.parserinfo):
                    MONTHS = [tuple(en) + tuple(ru.split()) for en, ru in zip(parser.parserinfo.MONTHS, _RU_MONTHS)]

                _DATEUTIL_INFO = _Info(dayfirst=True)
            try:
                parsed = parser.parse(text, parserinfo=_DATEUTIL_INFO)
            except (ValueError, OverflowError, parser.ParserError):
                return None
    else:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _as_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False, default=str)


def _kept(obj: dict, options: ReaderOptions) -> tuple[dict, tuple, tuple]:
    kept, missing, unparsed = {}, [], []
    for column in options.keep_columns:
        value = obj.get(column.name)
        if value is None:
            missing.append(column.name)
            kept.update(dict.fromkeys(column.output_columns))
            continue
        if column.kind is ColumnKind.DATE:
            parsed = parse_date(value)
            kept[column.name], kept[f"{column.name}_raw"] = parsed, None if parsed else _as_text(value)
            if parsed is None:
                unparsed.append(column.name)
        else:
            kept[column.name] = _as_text(value)
    return kept, tuple(missing), tuple(unparsed)


def _document(obj: dict, where: str, line: int, options: ReaderOptions) -> Document | Reject:
    text = obj.get(options.text_column)
    if isinstance(text, list):
        joined = _joined_pieces(text)
        if joined is None:
            return Reject(where, line, f"text field {options.text_column!r} is a list that is not rich-text pieces",
                          _excerpt(json.dumps(text, ensure_ascii=False)))
        text = joined
    if text is None:
        return Reject(where, line, f"missing text field {options.text_column!r}",
                      _excerpt(json.dumps(obj, ensure_ascii=False, default=str)))
    if not isinstance(text, str):
        return Reject(where, line, f"text field {options.text_column!r} is {type(text).__name__}, not a string",
                      _excerpt(repr(text)))
    if not text.strip():
        return Reject(where, line, "empty document")
    if len(text) > options.max_chars:
        return Reject(where, line, f"document of {len(text)} characters exceeds --max-chars {options.max_chars}",
                      _excerpt(text))
    id_field = options.id_field
    doc_id = obj.get(id_field) if id_field else None
    if doc_id is None or (isinstance(doc_id, str) and not doc_id):
        if options.id_column:  # named by the user: every item must have it
            return Reject(where, line, f"missing id field {options.id_column!r}",
                          _excerpt(json.dumps(obj, ensure_ascii=False, default=str)))
        doc_id = f"{Path(where).name}:{line}"
    doc_id = doc_id if isinstance(doc_id, str) else _as_text(doc_id)
    kept, missing, unparsed = _kept(obj, options)
    for what, value in [("text", text), ("id", doc_id), *((f"column {k!r}", v) for k, v in kept.items()
                                                          if isinstance(v, str))]:
        position = _bad_unicode(value)
        if position is not None:
            return Reject(where, line, f"invalid Unicode in the {what}: an unpaired surrogate "
                                       f"(U+{ord(value[position]):04X}) at character {position}", _excerpt(value))
    return Document(doc_id, text, where, line, kept, missing, unparsed)


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
    plain = ReaderOptions("text", "", max_chars=options.max_chars)
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Reject(where, number, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            yield _document({"text": text}, where, number, plain)


class _LineSource:
    """The lines of a binary file from a byte offset, decoded for :mod:`csv` (invalid UTF-8 kept as
    surrogate escapes, so it can be rejected row by row), remembering where the current record started."""

    def __init__(self, handle, offset: int, number: int):
        handle.seek(offset)
        self.handle, self.number, self.offset = handle, number - 1, offset
        self.record: list[tuple[int, int]] = []  # (line number, byte offset) of the record's first two lines

    def start_record(self) -> None:
        self.record = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        raw = self.handle.readline()
        if not raw:
            raise StopIteration
        if self.offset == 0:
            raw = raw.removeprefix(_BOM)
        self.number += 1
        if len(self.record) < 2:
            self.record.append((self.number, self.offset))
        self.offset = self.handle.tell()
        return raw.decode("utf-8", "surrogateescape")

    def first_line(self) -> int:
        return self.record[0][0] if self.record else self.number

    def after_first_line(self) -> tuple[int, int] | None:
        """Line number and offset of the line after the record's first: where reading resumes after a bad record."""
        if len(self.record) == 2:
            return self.record[1]
        return (self.number + 1, self.offset) if self.record else None


def _csv(handle, where: str, delimiter: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    """Rows of a CSV/TSV file (a seekable binary handle) as documents.

    The parser is strict: a quote that is never closed, or text after a closing quote, is an error, and a
    record that spans several lines but has the wrong number of fields is rejected. After such a bad record,
    reading restarts on the line after its first, so a stray ``"`` costs one row, not the rest of the file.
    Fields may be as long as the file (a longer document than --max-chars is then rejected as such).
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = _LineSource(handle, 0, 1)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield Reject(where, 1, f"unreadable CSV header: {exc}", file_level=True)
        return
    needed = [options.text_column] + ([options.id_column] if options.id_column else [])
    for name in needed:
        if name not in header:
            what = "text" if name == options.text_column else "id"
            yield Reject(where, 1, f"no {what} column {name!r} (columns: {', '.join(header)}); "
                                   f"use --{what}-column", _excerpt(delimiter.join(header)), file_level=True)
            return
    while True:
        lines.start_record()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number = lines.first_line()
            hint = " (a quote that is never closed: a stray '\"' at the start of a field?)" \
                if "unexpected end of data" in str(exc) else ""
            yield Reject(where, number, f"malformed CSV: {exc}{hint}", _excerpt(_line_at(handle, lines)))
            restart = lines.after_first_line()
            if restart is None:
                break
            lines = _LineSource(handle, restart[1], restart[0])
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
            continue
        number = lines.first_line()
        if not row:
            continue
        if len(row) != len(header):
            yield Reject(where, number, f"ragged row: {len(row)} fields, header has {len(header)}",
                         _excerpt(delimiter.join(row).encode("utf-8", "surrogateescape")))
            if lines.number > number:  # a quoted field ran over several lines: read them again as rows
                restart = lines.after_first_line()
                lines = _LineSource(handle, restart[1], restart[0])
                reader = csv.reader(lines, delimiter=delimiter, strict=True)
            continue
        if any("\udc80" <= ch <= "\udcff" for field in row for ch in field):
            yield Reject(where, number, "invalid UTF-8",
                         _excerpt(delimiter.join(row).encode("utf-8", "surrogateescape")))
            continue
        yield _document(dict(zip(header, row)), where, number, options)


def _line_at(handle, lines: _LineSource) -> bytes:
    """The first line of the current record (for a reject's excerpt), without moving the reader."""
    if not lines.record:
        return b""
    position = handle.tell()
    handle.seek(lines.record[0][1])
    raw = handle.readline(400)
    handle.seek(position)
    return raw


def _parquet(path, where: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except Exception as exc:  # pyarrow raises several types for empty and corrupt files
        yield Reject(where, 0, f"not a readable Parquet file ({exc})", file_level=True)
        return
    for name in [options.text_column] + ([options.id_column] if options.id_column else []):
        if name not in names:
            what = "text" if name == options.text_column else "id"
            yield Reject(where, 0, f"no {what} column {name!r} (columns: {', '.join(names)}); use --{what}-column",
                         file_level=True)
            return
    wanted = [options.text_column, options.id_field, *(c.name for c in options.keep_columns)]
    columns = list(dict.fromkeys(c for c in wanted if c and c in names))
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            for obj in batch.to_pylist():
                row += 1
                yield _document(obj, where, row, options)
    except Exception as exc:  # a truncated or corrupt row group: the rows after it cannot be read
        yield Reject(where, row + 1, f"Parquet file unreadable after row {row}, rest of file skipped ({exc})",
                     file_level=True)


def file_format(path: str, options: ReaderOptions) -> InputFormat:
    """The reader for a file: --input-format, else by suffix; a .json file of JSON lines is read as such."""
    fmt = options.input_format or SUFFIXES[Path(path).suffix.lower()]
    if fmt is InputFormat.JSON and options.input_format is None and not options.json_items \
            and not is_json_array(path) and _is_json_lines(path):
        return InputFormat.JSONL
    return fmt


def _read_file(handle, where: str, fmt: InputFormat, options: ReaderOptions) -> Iterator[Document | Reject]:
    """Items of one binary handle (seekable unless the format reads forward only)."""
    if fmt is InputFormat.JSON:
        yield from _json_array(handle, where, options)
    elif fmt is InputFormat.JSONL:
        yield from _jsonl(handle, where, options)
    elif fmt in (InputFormat.CSV, InputFormat.TSV):
        yield from _csv(handle, where, "," if fmt is InputFormat.CSV else "\t", options)
    elif fmt is InputFormat.PARQUET:
        yield from _parquet(handle, where, options)
    elif fmt is InputFormat.LINES:
        yield from _lines(handle, where, options)
    else:
        yield from _text(handle, where, options)


def read_file(path: str, options: ReaderOptions, where: str | None = None) -> Iterator[Document | Reject]:
    """Items of one file (``where``: the name items give as their source, default ``path``); a file that
    cannot be opened or read on is a file-level reject, not an exception."""
    where = path if where is None else where
    try:
        fmt = file_format(path, options)
        with open(path, "rb") as handle:
            yield from _read_file(handle, where, fmt, options)
    except OSError as exc:
        yield Reject(where, 0, f"cannot be read ({exc.strerror or exc})", file_level=True)


def read_documents(paths: list[str], options: ReaderOptions) -> Iterator[Document | Reject]:
    """Yield documents and rejects from every path in order."""
    for path in paths:
        if path != "-":
            yield from read_file(path, options)
            continue
        fmt = options.input_format or InputFormat.LINES
        stream = sys.stdin.buffer
        if fmt in (InputFormat.JSONL, InputFormat.LINES):  # read forward: streamed
            yield from _read_file(stream, STDIN, fmt, options)
        else:  # CSV, Parquet and JSON arrays need to seek: spooled to a temporary file first
            with tempfile.TemporaryFile() as spool:
                shutil.copyfileobj(stream, spool)
                spool.seek(0)
                yield from _read_file(spool, STDIN, fmt, options)


def _text(handle, where: str, options: ReaderOptions) -> Iterator[Document | Reject]:
    """A plain-text file is one document; its id is the file name."""
    raw = handle.read()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        yield Reject(where, raw.count(b"\n", 0, exc.start) + 1, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
        return
    yield _document({"text": text, "id": Path(where).name}, where, 1,
                    ReaderOptions("text", "id", max_chars=options.max_chars))


def count_items(paths: list[str], options: ReaderOptions) -> int | None:
    """A quick estimate of the number of input items (for progress and ETA); None when unknown (stdin).

    A file that cannot be counted counts as 0: reading it will report the problem as a file-level reject.
    """
    total = 0
    for path in paths:
        if path == "-":
            return None
        try:
            total += _count_file(path, options)
        except Exception:  # noqa: BLE001 - any unreadable file: the reader rejects it with the reason
            continue
    return total


def _count_file(path: str, options: ReaderOptions) -> int:
    fmt = file_format(path, options)
    if fmt is InputFormat.JSON:
        with open(path, "rb") as handle:  # items that reading yields (documents and rejects)
            return sum(1 for item in _json_array(handle, path, options) if not getattr(item, "file_level", False))
    if fmt is InputFormat.PARQUET:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt is InputFormat.TXT:
        return 1
    with open(path, "rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - (1 if fmt in (InputFormat.CSV, InputFormat.TSV) else 0), 0)
