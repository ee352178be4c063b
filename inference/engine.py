"""Corpus inference: stream documents, label every sentence, write resumable output parts.

Layout of an output folder::

    _manifest.json            what was run (fingerprint), which parts are finished, run totals
    part-00000.parquet        rows of documents [first_item, end_item) of the input stream
    _part-00000.rejects.jsonl inputs of that range that could not be processed (file, line, reason)
    _rejects.jsonl            all rejects, written when the run completes (before it is marked complete)
    _lock, _owner.json        the OS lock held by the run writing the folder, and who holds it

Only the row parts have names without a leading ``_``, so Parquet readers that skip such files (pyarrow,
``pandas.read_parquet("out/")``, Spark) read the folder as one table.

A part and its rejects are written to temporary files and renamed; the manifest is rewritten (also
atomically) only after that, so a killed run leaves at worst an unlisted part that the next run
overwrites. Re-running the same command skips the input items already covered by listed parts, after
checking that they are the same items: every part records a SHA-256 of the items read up to its end
(:func:`item_digest`), and a rerun whose input differs in those items is refused (:class:`InputChanged`);
items added after them (appended lines, a new last file) are labelled as new parts.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from rustance import __version__
from rustance.errors import RustanceError
from rustance.explain import ExplainMethod, add_explanations, explained_schema
from rustance.inference.readers import ColumnKind, Document, InputError, KeptColumn, Reject
from rustance.labels import SENTIMENTS, STANCES
from rustance.text import split_sentences

MANIFEST = "_manifest.json"
REJECTS = "_rejects.jsonl"
LOCK = "_lock"
OWNER = "_owner.json"
OWN_FILES = (LOCK, OWNER)  # present in a folder before its manifest
MIN_FREE_BYTES = 64 << 20  # an output folder with less free space is refused before the model loads
log = logging.getLogger("rustance.corpus")


class OutputConflict(RustanceError, RuntimeError):
    """The output folder cannot be used: another model or configuration, another run holds it, unwritable."""


class InputChanged(OutputConflict):
    """The input differs from what an earlier run into the same output folder read."""


class OutputFormat(str, Enum):
    PARQUET = "parquet"
    JSONL = "jsonl"


def check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {value!r}")


@dataclass(frozen=True)
class RunOptions:
    output_format: OutputFormat = OutputFormat.PARQUET
    window: int = field(default=2048, metadata={"fingerprint": False})  # sentences sorted by length together
    # (bucketing window); one task for a worker
    workers: int = field(default=1, metadata={"fingerprint": False})  # threads labelling windows in parallel
    part_sentences: int = 5_000  # sentences per output part (a part ends at a document boundary); peak memory
    # grows with it (benchmarks/memory.py, 200k sentences: 1,145 MB with 5,000 vs 1,434 MB with 20,000)
    # predict --explain: per topic, the words that drove the label (rustance.explain), by this method; None:
    # off (no extra work, the plain schema). In the fingerprint only when set, so plain runs keep theirs.
    explain: ExplainMethod | None = field(default=None, metadata={"fingerprint": "if set"})

    def __post_init__(self):
        object.__setattr__(self, "output_format", OutputFormat(self.output_format))
        if self.explain is not None:
            try:
                object.__setattr__(self, "explain", ExplainMethod(self.explain))
            except ValueError:
                raise InputError(f"--explain-method must be one of {', '.join(m.value for m in ExplainMethod)}, "
                                 f"got {self.explain!r}") from None
        check_positive(window=self.window, workers=self.workers, part_sentences=self.part_sentences)


@dataclass
class Summary:
    """Counts of one invocation; ``totals`` holds those of the whole run (all invocations into the folder)."""

    documents: int = 0
    sentences: int = 0
    rejected: int = 0
    truncated: int = 0
    skipped_items: int = 0  # input items already done by an earlier run
    seconds: float = 0.0
    parts: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    file_rejects: list[str] = field(default_factory=list)  # "file: reason" of files that could not be read
    duplicate_ids: int = 0  # documents whose id an earlier document of the run already had
    duplicate_examples: list[str] = field(default_factory=list)
    kept_missing: dict[str, int] = field(default_factory=dict)  # kept column -> documents without it
    dates_unparsed: dict[str, int] = field(default_factory=dict)  # date column -> documents whose value is no date
    totals: dict = field(default_factory=dict)


TOTAL_KEYS = ("documents", "sentences", "rejected", "truncated", "duplicate_ids")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def release_freed_memory() -> None:
    """Hand memory freed by finished batches back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Keeps the resident memory between parts low (each worker thread allocates in its own malloc arena);
    it does not lower the peak within a part, which ``part_sentences`` bounds.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(workers: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """Share ``threads`` CPU threads (default: all available cores) among ``workers`` labelling threads
    (default: 2 when there are 2 or more, else 1) and set torch's intra-op threads to each one's share.

    Returns ``(workers, threads per worker)``. On the 2-core benchmark machine two single-threaded workers
    label faster than one worker with two threads (reports/benchmark-throughput.md).
    """
    import torch

    check_positive(workers=workers, threads=threads)
    threads = available_cores() if threads is None else threads
    workers = min(2, threads) if workers is None else workers
    per_worker = max(1, threads // workers)
    torch.set_num_threads(per_worker)
    return workers, per_worker


def weights_digest(model_dir: Path) -> str:
    """The first 16 hex digits of the SHA-256 of a model folder's weights (safetensors, else ONNX), followed by
    its TF-IDF part (``tfidf.skops``) where the model has one."""
    from rustance.lexical import FILE

    digest = hashlib.sha256()
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        weights = model_dir / "model.onnx"
    for path in (weights, model_dir / FILE):
        if path == weights or path.is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def item_digest(entry: Document | Reject) -> bytes:
    """What identifies an input item for the resume check: its place, id, text and kept fields (or reason)."""
    if isinstance(entry, Reject):
        data = ["reject", entry.source, entry.line, entry.reason]
    else:
        data = ["document", entry.source, entry.line, entry.doc_id, entry.text, entry.kept]
    return json.dumps(data, ensure_ascii=True, default=str).encode()


# --- output rows ----------------------------------------------------------------------------------
DOCUMENT_COLUMNS = ("doc_id", "source", "line")


def label_rows(classifier, sentences: list[tuple], model_name: str, min_confidence: float | None = None) -> list[dict]:
    """Output rows for ``(document fields, index, start, end, text, context)`` sentences, where the document
    fields are ``doc_id``, ``source``, ``line`` and the kept columns: each row is those fields, the
    sentence's :meth:`SentencePrediction.to_row` and the model name and rustance version (``min_confidence``:
    see :meth:`Classifier.decode`)."""
    topic, stance, sentiment, truncated = classifier.probabilities(
        [s[4] for s in sentences], [s[5] for s in sentences], with_truncation=True)
    predictions = classifier.decode([s[4] for s in sentences], topic, stance, sentiment, truncated, every_topic=False,
                                    min_confidence=min_confidence)
    rows = []
    for (head, index, start, end, _, _), prediction in zip(sentences, predictions):
        prediction.start, prediction.end = start, end
        rows.append({**{k: head[k] for k in DOCUMENT_COLUMNS}, "sentence_index": index, **prediction.to_row(),
                     "model": model_name, "rustance_version": __version__,
                     **{k: v for k, v in head.items() if k not in DOCUMENT_COLUMNS}})
    return rows


# Integrated Gradients hooks the model's embedding layer while it runs: no other window may use the model then.
_GRADIENTS_LOCK = threading.Lock()


def explained_rows(classifier, sentences: list[tuple], model_name: str, min_confidence: float | None = None,
                   explain: ExplainMethod | None = None) -> list[dict]:
    """:func:`label_rows`, then with ``explain`` the words that drove each topic's label
    (:func:`rustance.explain.add_explanations`; write the rows with ``output_schema(..., explain=True)``)."""
    if explain is None:
        return label_rows(classifier, sentences, model_name, min_confidence)
    with _GRADIENTS_LOCK if explain is ExplainMethod.INTEGRATED_GRADIENTS else nullcontext():
        rows = label_rows(classifier, sentences, model_name, min_confidence)
        return add_explanations(classifier, rows, [s[5] for s in sentences], method=explain)


def output_schema(keep_columns: tuple[KeptColumn, ...] = (), abstain: bool = False, explain: bool = False):
    """The Arrow schema of output rows (Parquet parts, and the Ray engine's output); ``abstain`` (a run with
    ``min_confidence``) adds ``uncertain_topics`` after ``topics``; with ``explain``, every topic (of
    ``topics``) also carries ``words`` (:func:`rustance.explain.explained_schema`)."""
    import pyarrow as pa

    topic = pa.struct([("topic", pa.string()), ("stance", pa.string()), ("probability", pa.float32()),
                       *[(s, pa.float32()) for s in STANCES]])
    base = [
        ("doc_id", pa.string()), ("source", pa.string()), ("line", pa.int64()), ("sentence_index", pa.int32()),
        ("start", pa.int64()), ("end", pa.int64()), ("sentence", pa.string()), ("topics", pa.list_(topic)),
        *([("uncertain_topics", pa.list_(topic))] if abstain else []),
        ("sentiment", pa.string()), *[(f"sentiment_{s}", pa.float32()) for s in SENTIMENTS],
        ("truncated", pa.bool_()), ("model", pa.string()), ("rustance_version", pa.string()),
    ]
    kept = []
    for column in keep_columns:
        if column.kind is ColumnKind.DATE:
            kept += [(column.name, pa.timestamp("us")), (f"{column.name}_raw", pa.string())]
        else:
            kept.append((column.name, pa.string()))
    clash = sorted({name for name, _ in kept} & {name for name, _ in base})
    if clash:
        raise InputError(f"--keep-column {clash[0]!r} would overwrite the output column of that name; rename it "
                         "in the input")
    schema = pa.schema(base + kept)
    if explain:
        schema = explained_schema(schema)
    return schema


def document_sentences(document: Document) -> list[tuple]:
    """(document fields, index, start, end, sentence, previous sentence) for every sentence of a document."""
    head = {"doc_id": document.doc_id, "source": document.source, "line": document.line, **document.kept}
    pieces = split_sentences(document.text)
    return [(head, i, p.start, p.end, p.text, pieces[i - 1].text if i else "") for i, p in enumerate(pieces)]


# --- the output folder ----------------------------------------------------------------------------
class OutputFolder:
    """An output folder checked and locked before any model is loaded.

    Refuses (with :class:`OutputConflict`) a path that is a file, a folder it cannot write to, less than
    ``MIN_FREE_BYTES`` of free space, and a folder another run holds: the OS lock (``filelock``) is held
    until :meth:`release`, and the second run is told who holds it (process, host, start time).
    """

    def __init__(self, path: str | Path):
        from filelock import FileLock, Timeout

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutputConflict(f"--output {self.path} is an existing file, not a folder; choose another --output")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".rustance-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputConflict(f"cannot write to {self.path}: {exc.strerror or exc}; choose another --output") from exc
        free = shutil.disk_usage(self.path).free
        if free < MIN_FREE_BYTES:
            raise OutputConflict(f"{self.path}: only {free / 2**20:.1f} MB free on its disk (at least "
                                 f"{MIN_FREE_BYTES >> 20} MB needed); free space or choose another --output")
        self.lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            self.lock.acquire()
        except Timeout:
            try:
                owner = json.loads((self.path / OWNER).read_text(encoding="utf-8"))
                holder = f"process {owner['pid']} on {owner['host']}, started {owner['started']}"
            except (OSError, ValueError, KeyError):
                holder = "holder unknown"
            raise OutputConflict(f"{self.path} is in use by another rustance run ({holder}); wait for it to "
                                 "finish or choose another --output") from None
        atomic_write(self.path / OWNER, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)}, ensure_ascii=False).encode())

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def write_error(folder: Path, exc: OSError) -> OutputConflict:
    """A clear error for a failed write into an output folder (full disk, lost permissions)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the disk"
    return OutputConflict(f"cannot write to {folder}: {reason}; the finished parts are kept: fix this and run "
                          "the same command again to resume")


class CorpusRunner:
    """Labels a stream of documents into an output folder, resumably."""

    def __init__(self, classifier, output_dir: str | Path | None, options: RunOptions,
                 run_fingerprint: dict | None = None, model_name: str = "", progress=None,
                 keep_columns: tuple[KeptColumn, ...] = (), manifest_extra: dict | None = None,
                 min_confidence: float | None = None):
        self.classifier = classifier
        self.min_confidence = min_confidence  # abstain below it (Classifier.decode); adds uncertain_topics
        self.options = options
        self.fingerprint = run_fingerprint or {}
        self.model_name = model_name
        self.progress = progress  # a tqdm-like bar counting input items, or None
        self.keep_columns = tuple(keep_columns)
        self.schema = output_schema(self.keep_columns, abstain=min_confidence is not None,
                                    explain=options.explain is not None)
        self.manifest_extra = manifest_extra or {}
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.manifest = self._open_manifest() if self.output_dir is not None else {"parts": []}
        self._ids: set[str] = set()
        self._hash = hashlib.sha256()

    # --- manifest -------------------------------------------------------------------------------
    def _open_manifest(self) -> dict:
        path = self.output_dir / MANIFEST
        if path.exists():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("fingerprint") != self.fingerprint:
                theirs, ours = manifest.get("fingerprint", {}), self.fingerprint
                changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
                raise OutputConflict(
                    f"{self.output_dir} holds a run with a different model or configuration "
                    f"(differs in: {', '.join(changed)}); choose another --output or delete that folder")
            return manifest
        if (self.output_dir / "manifest.json").exists():
            raise OutputConflict(f"{self.output_dir} was written by rustance 0.1 (manifest.json), whose "
                                 "layout this version does not resume; finish it with that version or choose "
                                 "another --output")
        if self.output_dir.exists() and any(p.name not in OWN_FILES for p in self.output_dir.iterdir()):
            raise OutputConflict(f"{self.output_dir} exists, is not empty and has no {MANIFEST}; "
                                 "choose another --output")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"fingerprint": self.fingerprint, "rustance": __version__, **self.manifest_extra,
                    "schema": {f.name: str(f.type) for f in self.schema},
                    "kept_columns": [{"name": c.name, "kind": c.kind.value} for c in self.keep_columns],
                    "parts": [], "complete": False, "totals": {}}
        self._save_manifest(manifest)
        return manifest

    def _save_manifest(self, manifest: dict) -> None:
        parts = manifest["parts"]
        totals = {key: sum(p.get(key, 0) for p in parts) for key in TOTAL_KEYS}
        for key in ("kept_missing", "dates_unparsed"):
            totals[key] = {}
            for part in parts:
                for name, count in part.get(key, {}).items():
                    totals[key][name] = totals[key].get(name, 0) + count
        manifest["totals"] = totals
        atomic_write(self.output_dir / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())

    # --- labelling ------------------------------------------------------------------------------
    def _labelled(self, chunks: Iterable[tuple]) -> Iterator[tuple[tuple, list[dict]]]:
        """``(chunk, rows)`` for every chunk, in input order.

        The chunk's windows (sentences sorted by length together) go to ``workers`` threads: the model's
        math releases the GIL, so the threads run in parallel, and the next chunk is read and split while
        this one is labelled.
        """
        pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="rustance-label")
        pending: deque = deque()
        try:
            for chunk in chunks:
                sentences, size = chunk[0], self.options.window
                windows = [sentences[begin : begin + size] for begin in range(0, len(sentences), size)]
                pending.append((chunk, [(len(window), pool.submit(explained_rows, self.classifier, window,
                                                                  self.model_name, self.min_confidence,
                                                                  self.options.explain))
                                        for window in windows]))
                if len(pending) > 1:
                    yield self._collect(*pending.popleft())
            while pending:
                yield self._collect(*pending.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, chunk: tuple, windows: list) -> tuple[tuple, list[dict]]:
        """Wait for a chunk's windows; the progress bar advances by input items in proportion to sentences."""
        sentences, items = len(chunk[0]), chunk[2][1] - chunk[2][0]
        rows: list[dict] = []
        for size, future in windows:
            rows += future.result()
            if self.progress is not None:
                self.progress.update(items * size / sentences)
        if self.progress is not None and not sentences:
            self.progress.update(items)
        return chunk, rows

    # --- writing --------------------------------------------------------------------------------
    def _write_part(self, number: int, rows: list[dict], rejects: list[Reject], items: tuple[int, int],
                    stats: dict) -> dict:
        name = f"part-{number:05d}.{'parquet' if self.options.output_format is OutputFormat.PARQUET else 'jsonl'}"
        if self.options.output_format is OutputFormat.PARQUET:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(rows, schema=self.schema)
            tmp = self.output_dir / f".{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, self.output_dir / name)
        else:
            atomic_write(self.output_dir / name,
                          "".join(json.dumps(r, ensure_ascii=False, default=json_value) + "\n" for r in rows).encode())
        reject_name = f"_part-{number:05d}.rejects.jsonl"
        atomic_write(self.output_dir / reject_name,
                      "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rejects).encode())
        return {"name": name, "rejects": reject_name, "items": list(items), "rows": len(rows),
                "sentences": len(rows), "rejected": len(rejects), "truncated": sum(r["truncated"] for r in rows),
                **stats}

    # --- the run --------------------------------------------------------------------------------
    def _chunks(self, items: Iterable[Document | Reject], skip: int, summary: Summary,
                expected: str | None = None) -> Iterator[tuple]:
        """Group input items after the first ``skip`` into chunks of about ``part_sentences`` sentences.

        Yields ``(sentences, rejects, (first_item, end_item), stats, digest)``; a chunk ends at a document
        boundary. File-level rejects are not items: they join the current chunk's rejects (none while
        skipping, as the earlier run recorded them). The skipped items must hash to ``expected``.
        """
        sentences: list[tuple] = []
        rejects: list[Reject] = []
        stats = self._new_stats()
        item = first_item = end_item = skip
        count = 0
        if skip == 0:
            self._check_prefix(expected, 0)
        for entry in items:
            if isinstance(entry, Reject) and entry.file_level:
                if count >= skip:
                    rejects.append(entry)
                    summary.file_rejects.append(f"{entry.source}: {entry.reason}")
                continue
            self._hash.update(item_digest(entry))
            count += 1
            if count <= skip:
                summary.skipped_items += 1
                if isinstance(entry, Document):
                    self._ids.add(entry.doc_id)
                if count == skip:
                    self._check_prefix(expected, skip)
                continue
            item = count - 1
            end_item = item + 1
            if isinstance(entry, Reject):
                rejects.append(entry)
            else:
                pieces = document_sentences(entry)
                sentences += pieces
                stats["documents"] += 1
                self._note_document(entry, stats, summary)
            if len(sentences) >= self.options.part_sentences:
                yield sentences, rejects, (first_item, end_item), stats, self._hash.hexdigest()
                sentences, rejects, stats, first_item = [], [], self._new_stats(), end_item
        if count < skip:
            raise InputChanged(f"the input differs from what an earlier run into {self.output_dir} read: it "
                               f"holds {count} items, fewer than the {skip} labelled then; choose another --output "
                               "(or delete that folder) to label it again")
        if sentences or rejects or first_item < end_item:
            yield sentences, rejects, (first_item, end_item), stats, self._hash.hexdigest()

    def _check_prefix(self, expected: str | None, skip: int) -> None:
        if expected is not None and self._hash.hexdigest() != expected:
            raise InputChanged(f"the input differs from what an earlier run into {self.output_dir} read: its "
                               f"first {skip} items are not the same (a file was edited, replaced, added or "
                               "removed before the end of that run); choose another --output (or delete that "
                               "folder) to label it again")

    @staticmethod
    def _new_stats() -> dict:
        return {"documents": 0, "duplicate_ids": 0, "kept_missing": {}, "dates_unparsed": {}}

    def _note_document(self, document: Document, stats: dict, summary: Summary) -> None:
        if document.doc_id in self._ids:
            stats["duplicate_ids"] += 1
            summary.duplicate_ids += 1
            if len(summary.duplicate_examples) < 3:
                summary.duplicate_examples.append(f"{document.doc_id!r} ({document.source}:{document.line})")
        else:
            self._ids.add(document.doc_id)
        for key, names in (("kept_missing", document.missing), ("dates_unparsed", document.unparsed)):
            for name in names:
                stats[key][name] = stats[key].get(name, 0) + 1
                getattr(summary, key)[name] = getattr(summary, key).get(name, 0) + 1

    def run(self, items: Iterable[Document | Reject], on_progress: Callable[[Summary], None] | None = None,
            input_stats: list | None = None) -> Summary:
        """Process ``items`` (documents and rejects in input order) into the output folder; resumes.

        ``input_stats`` (size and modification time of every input file; None for stdin) lets a rerun of
        a complete run over unchanged files return at once; otherwise the items are read again and checked.
        """
        started = time.time()
        summary = Summary()
        parts = self.manifest["parts"]
        done_items = parts[-1]["items"][1] if parts else 0
        expected = parts[-1]["hash"] if parts else None
        if self.up_to_date(input_stats):
            summary.skipped_items = done_items
            self._finish(summary, started)
            return summary
        if self.progress is not None:
            self.progress.update(done_items)
        for (_, rejects, item_range, stats, digest), rows in self._labelled(
                self._chunks(items, done_items, summary, expected)):
            part = self._write_part(len(self.manifest["parts"]), rows, rejects, item_range, stats)
            part["hash"] = digest
            self.manifest["parts"].append(part)
            self.manifest["complete"] = False
            self.manifest["inputs"] = input_stats
            self._save_manifest(self.manifest)
            summary.parts += 1
            self._count(rows, rejects, stats["documents"], summary)
            del rows
            release_freed_memory()
            if on_progress:
                on_progress(summary)
        self.manifest["inputs"] = input_stats
        self._finish(summary, started)
        return summary

    def up_to_date(self, input_stats: list | None) -> bool:
        """Whether the folder holds a complete run over input files of the same size and modification time
        (then :meth:`run` only rewrites a missing rejects file: no model or input is needed)."""
        return bool(self.manifest.get("complete")) and input_stats is not None and \
            input_stats == self.manifest.get("inputs")

    def _finish(self, summary: Summary, started: float) -> None:
        """Write the whole run's rejects file, then mark the run complete (in this order, so a run killed in
        between writes the rejects file when it is run again)."""
        self._write_all_rejects()
        self.manifest["complete"] = True
        self._save_manifest(self.manifest)
        summary.totals = self.manifest["totals"]
        summary.seconds = time.time() - started

    def stream(self, items: Iterable[Document | Reject], summary: Summary) -> Iterator[dict | Reject]:
        """Label ``items`` without an output folder: yield rows and rejects in input order."""
        for (_, rejects, _, stats, _), rows in self._labelled(self._chunks(items, 0, summary)):
            self._count(rows, rejects, stats["documents"], summary)
            yield from rejects
            yield from rows
        summary.totals = {key: getattr(summary, key) for key in TOTAL_KEYS}

    @staticmethod
    def _count(rows: list[dict], rejects: list[Reject], documents: int, summary: Summary) -> None:
        summary.documents += documents
        summary.sentences += len(rows)
        summary.rejected += len(rejects)
        summary.truncated += sum(r["truncated"] for r in rows)
        for r in rejects:
            key = r.reason.split(":")[0].split(" at ")[0].split(" (")[0]
            summary.reject_reasons[key] = summary.reject_reasons.get(key, 0) + 1

    def _write_all_rejects(self) -> None:
        """Concatenate the parts' reject files (streamed, not held in memory) into one file."""
        target = self.output_dir / REJECTS
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as out:
            for part in self.manifest["parts"]:
                with open(self.output_dir / part["rejects"], "rb") as handle:
                    shutil.copyfileobj(handle, out)
        os.replace(tmp, target)


def json_value(value):
    """JSON for values json cannot write itself (kept dates: ISO 8601)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def iter_rows(output_dir: str | Path) -> Iterator[dict]:
    """Read back every row of a finished (or partial) output folder, in input order."""
    output_dir = Path(output_dir)
    manifest = json.loads((output_dir / MANIFEST).read_text(encoding="utf-8"))
    for part in manifest["parts"]:
        path = output_dir / part["name"]
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.read_table(path).to_pylist()
        else:
            for line in path.read_text(encoding="utf-8").splitlines():
                yield json.loads(line)
