"""Corpus inference: stream documents, label every sentence, write resumable output parts.

Layout of an output folder::

    _manifest.json            what was run (fingerprint) and which parts are finished
    part-00000.parquet        rows of documents [first_item, end_item) of the input stream
    _part-00000.rejects.jsonl inputs of that range that could not be processed (file, line, reason)
    _rejects.jsonl            all rejects, written when the run completes

Only the row parts have names without a leading ``_``, so Parquet readers that skip such files (pyarrow,
``pandas.read_parquet("out/")``, Spark) read the folder as one table.

A part and its rejects are written to temporary files and renamed; the manifest is rewritten (also
atomically) only after that, so a killed run leaves at worst an unlisted part that the next run
overwrites. Re-running the same command skips the input items already covered by listed parts.
"""

from __future__ import annotations

from rustance.errors import RustanceError
import ctypes
import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rustance import __version__
from rustance.inference.readers import Document, Reject
from rustance.labels import SENTIMENTS, STANCES
from rustance.text import split_sentences

MANIFEST = "_manifest.json"
REJECTS = "_rejects.jsonl"


class OutputConflict(RustanceError, RuntimeError):
    """The output folder holds a run with another model or configuration."""


@dataclass
class RunOptions:
    output_format: str = "parquet"  # parquet | jsonl
    window: int = 2048  # sentences sorted by length together (bucketing window); one task for a worker
    workers: int = 1  # threads labelling windows in parallel (see configure_threads)
    part_sentences: int = 5_000  # sentences per output part (a part ends at a document boundary); peak memory
    # grows with it (benchmarks/memory.py, 200k sentences: 1,145 MB with 5,000 vs 1,434 MB with 20,000)


@dataclass
class Summary:
    documents: int = 0
    sentences: int = 0
    rejected: int = 0
    truncated: int = 0
    skipped_items: int = 0  # input items already done by an earlier run
    seconds: float = 0.0
    parts: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)


def _atomic_write(path: Path, data: bytes) -> None:
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

    threads = available_cores() if threads is None else threads
    workers = min(2, threads) if workers is None else workers
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be at least 1, got {workers} and {threads}")
    per_worker = max(1, threads // workers)
    torch.set_num_threads(per_worker)
    return workers, per_worker


def fingerprint(model_dir: Path, settings: dict) -> dict:
    """What must match for an output folder to be continued: model weights and output-relevant options."""
    digest = hashlib.sha256()
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        weights = model_dir / "model.onnx"
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"model": str(model_dir.resolve()), "weights_sha256": digest.hexdigest()[:16], **settings}


def label_rows(classifier, sentences: list[tuple], model_name: str) -> list[dict]:
    """Output rows for (doc_id, index, start, end, text, context) sentences: the topics a sentence is about
    (probability at or over the topic's threshold, most probable first) with their stance, and the sentiment.

    Probabilities are rounded to 4 decimals.
    """
    topic, stance, sentiment, truncated = classifier.probabilities(
        [s[4] for s in sentences], [s[5] for s in sentences], with_truncation=True)
    chosen = classifier.chosen_topics(topic)
    topic_ids = [t.id for t in classifier.topics]
    stance_best = stance.argmax(-1).numpy()
    stance = stance.double().numpy().round(4)
    sentiment_best = sentiment.argmax(-1).tolist()
    sentiment = sentiment.double().numpy().round(4).tolist()
    topic = topic.double().numpy().round(4)
    rows = []
    for i, (doc_id, index, start, end, text, _) in enumerate(sentences):
        topics = [{"topic": topic_ids[j], "stance": STANCES[stance_best[i, j]], "probability": float(topic[i, j]),
                   **dict(zip(STANCES, stance[i, j].tolist()))} for j in chosen[i]]
        rows.append({
            "doc_id": doc_id, "sentence_index": index, "start": start, "end": end, "sentence": text,
            "topics": topics, "sentiment": SENTIMENTS[sentiment_best[i]],
            **{f"sentiment_{s}": p for s, p in zip(SENTIMENTS, sentiment[i])},
            "truncated": truncated[i], "model": model_name, "rustance_version": __version__,
        })
    return rows


def output_schema():
    """The Arrow schema of output rows (Parquet parts, and the Ray engine's output)."""
    import pyarrow as pa

    topic = pa.struct([("topic", pa.string()), ("stance", pa.string()), ("probability", pa.float32()),
                       *[(s, pa.float32()) for s in STANCES]])
    return pa.schema([
        ("doc_id", pa.string()), ("sentence_index", pa.int32()), ("start", pa.int64()), ("end", pa.int64()),
        ("sentence", pa.string()), ("topics", pa.list_(topic)), ("sentiment", pa.string()),
        *[(f"sentiment_{s}", pa.float32()) for s in SENTIMENTS],
        ("truncated", pa.bool_()), ("model", pa.string()), ("rustance_version", pa.string()),
    ])


def document_sentences(doc_id: str, text: str) -> list[tuple]:
    """(doc_id, index, start, end, sentence, previous sentence) for every sentence of a document."""
    pieces = split_sentences(text)
    return [(doc_id, i, p.start, p.end, p.text, pieces[i - 1].text if i else "") for i, p in enumerate(pieces)]


class CorpusRunner:
    """Labels a stream of documents into an output folder, resumably."""

    def __init__(self, classifier, output_dir: str | Path | None, options: RunOptions,
                 run_fingerprint: dict | None = None, model_name: str = "", progress=None):
        self.classifier = classifier
        self.options = options
        self.fingerprint = run_fingerprint or {}
        self.model_name = model_name
        self.progress = progress  # a tqdm-like bar counting input items, or None
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.manifest = self._open_manifest() if self.output_dir is not None else {"parts": []}

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
        if self.output_dir.exists() and any(self.output_dir.iterdir()):
            raise OutputConflict(f"{self.output_dir} exists, is not empty and has no {MANIFEST}; "
                                 "choose another --output")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"fingerprint": self.fingerprint, "rustance": __version__, "parts": [], "complete": False}
        self._save_manifest(manifest)
        return manifest

    def _save_manifest(self, manifest: dict) -> None:
        _atomic_write(self.output_dir / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())

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
                pending.append((chunk, [(len(window), pool.submit(label_rows, self.classifier, window, self.model_name))
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
                    documents: int) -> dict:
        name = f"part-{number:05d}.{'parquet' if self.options.output_format == 'parquet' else 'jsonl'}"
        if self.options.output_format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(rows, schema=output_schema())
            tmp = self.output_dir / f".{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, self.output_dir / name)
        else:
            _atomic_write(self.output_dir / name,
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
        reject_name = f"_part-{number:05d}.rejects.jsonl"
        _atomic_write(self.output_dir / reject_name,
                      "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rejects).encode())
        return {"name": name, "rejects": reject_name, "items": list(items), "rows": len(rows),
                "documents": documents, "rejected": len(rejects)}

    # --- the run --------------------------------------------------------------------------------
    def _chunks(self, items: Iterable[Document | Reject], skip: int, summary: Summary) -> Iterator[tuple]:
        """Group input items after the first ``skip`` into chunks of about ``part_sentences`` sentences.

        Yields ``(sentences, rejects, (first_item, end_item), documents)``; a chunk ends at a document boundary.
        """
        sentences: list[tuple] = []
        rejects: list[Reject] = []
        documents, first_item, end_item = 0, skip, skip
        for item, entry in enumerate(items):
            if item < skip:
                summary.skipped_items += 1
                continue
            end_item = item + 1
            if isinstance(entry, Reject):
                rejects.append(entry)
            else:
                pieces = document_sentences(entry.doc_id, entry.text)
                if not pieces:
                    rejects.append(Reject(entry.source, entry.line, "no sentences (whitespace only)"))
                sentences += pieces
                documents += bool(pieces)
            if len(sentences) >= self.options.part_sentences:
                yield sentences, rejects, (first_item, end_item), documents
                sentences, rejects, documents, first_item = [], [], 0, end_item
        if sentences or rejects or first_item < end_item:
            yield sentences, rejects, (first_item, end_item), documents

    def run(self, items: Iterable[Document | Reject], on_progress: Callable[[Summary], None] | None = None) -> Summary:
        """Process ``items`` (documents and rejects in input order) into the output folder; resumes."""
        started = time.time()
        summary = Summary()
        parts = self.manifest["parts"]
        done_items = parts[-1]["items"][1] if parts else 0
        if self.progress is not None:
            self.progress.update(done_items)
        if self.manifest.get("complete"):
            summary.skipped_items = done_items
            return summary
        for (_, rejects, item_range, documents), rows in self._labelled(self._chunks(items, done_items, summary)):
            part = self._write_part(len(self.manifest["parts"]), rows, rejects, item_range, documents)
            self.manifest["parts"].append(part)
            self._save_manifest(self.manifest)
            summary.parts += 1
            self._count(rows, rejects, documents, summary)
            del rows
            release_freed_memory()
            if on_progress:
                on_progress(summary)
        self.manifest["complete"] = True
        self._save_manifest(self.manifest)
        self._write_all_rejects()
        summary.seconds = time.time() - started
        return summary

    def stream(self, items: Iterable[Document | Reject], summary: Summary) -> Iterator[dict | Reject]:
        """Label ``items`` without an output folder: yield rows and rejects in input order."""
        for (_, rejects, _, documents), rows in self._labelled(self._chunks(items, 0, summary)):
            self._count(rows, rejects, documents, summary)
            yield from rejects
            yield from rows

    @staticmethod
    def _count(rows: list[dict], rejects: list[Reject], documents: int, summary: Summary) -> None:
        summary.documents += documents
        summary.sentences += len(rows)
        summary.rejected += len(rejects)
        summary.truncated += sum(r["truncated"] for r in rows)
        for r in rejects:
            key = r.reason.split(":")[0].split(" at ")[0]
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
