"""Corpus inference on a Ray cluster (``rustance predict --engine ray``), with Ray Data.

Plan: every input file is read by rustance's own readers in a Ray task (so bad items become the same
rejects — file, line, reason — as in the local engine, and every input format works) → documents are split
into sentences (a stateless ``map_batches``) → labelled in an actor pool where each actor loads the model
once (``map_batches`` with a callable class; actors are restarted and their tasks retried if one dies) →
written as Parquet or JSONL with Ray's datasinks to ``OUTPUT/rows/``; rejects go to ``OUTPUT/rejects/``.
Rows have the same schema and labels as the local engine's; with ``--explain`` each actor adds the words that
drove the labels to its batch right after labelling it, as the local engine does per window.

The folder holds a ``_manifest.json`` (engine ``ray``, the fingerprint, ``complete``) and the same OS lock
as the local engine's. A run that did not complete (a failed job, a kill) is restarted from the beginning
by running the same command: its own ``rows/`` and ``rejects/`` are replaced. A complete run over unchanged
files is not repeated.

Ray is optional (``pip install rustance[ray]``) and imported only here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from rustance import __version__
from rustance.errors import RustanceError
from rustance.explain import ExplainMethod
from rustance.inference.engine import (MANIFEST, OWN_FILES, OutputConflict, OutputFolder, Summary, atomic_write,
                                       document_sentences, explained_rows, output_schema)
from rustance.inference.readers import ColumnKind, Document, ReaderOptions, read_file

CRASH_ONCE_ENV = "RUSTANCE_TEST_CRASH_ONCE"  # test hook: path of a marker file; the first actor call dies
ITEMS_PER_BATCH = 512  # documents and rejects per block handed on by a reading task

# Reading, splitting and filtering are light next to the model; they ask for no CPU slot so that they
# still run when the actors hold every CPU of the cluster (e.g. 2 actors on a 2-CPU machine).
LIGHT = {"num_cpus": 0}


class RayEngineError(RustanceError, RuntimeError):
    """A Ray run that cannot start as asked."""


def _item_schema(reading: ReaderOptions):
    import pyarrow as pa

    kept = [f for f in output_schema(reading.keep_columns) if f.name in
            {name for c in reading.keep_columns for name in c.output_columns}]
    return pa.schema([("document", pa.bool_()), ("doc_id", pa.string()), ("text", pa.string()),
                      ("source", pa.string()), ("line", pa.int64()), ("reason", pa.string()),
                      ("excerpt", pa.string()), ("file_level", pa.bool_()), *kept])


def read_items(batch: dict, reading: ReaderOptions):
    """A Ray ``map_batches`` generator: the documents and rejects of each input file, in blocks."""
    import pyarrow as pa

    schema = _item_schema(reading)
    kept = [name for c in reading.keep_columns for name in c.output_columns]
    for path, source in zip(batch["path"], batch["source"]):
        rows = []
        for entry in read_file(str(path), reading, where=str(source)):
            if isinstance(entry, Document):
                rows.append({"document": True, "doc_id": entry.doc_id, "text": entry.text, "source": entry.source,
                             "line": entry.line, "file_level": False, **entry.kept})
            else:
                rows.append({"document": False, "source": entry.source, "line": entry.line, "reason": entry.reason,
                             "excerpt": entry.excerpt, "file_level": entry.file_level, **dict.fromkeys(kept)})
            if len(rows) >= ITEMS_PER_BATCH:
                yield pa.Table.from_pylist(rows, schema=schema)
                rows = []
        if rows:
            yield pa.Table.from_pylist(rows, schema=schema)


def split_documents(batch, kept: list[str]) -> dict:
    """Documents → sentence rows, each with its previous sentence as context and its document's fields."""
    columns: dict[str, list] = {k: [] for k in ("doc_id", "source", "line", *kept, "sentence_index", "start", "end",
                                                "sentence", "context")}
    for row in batch.to_pylist():
        if not row["document"]:
            continue
        document = Document(row["doc_id"], row["text"], row["source"], row["line"], {k: row[k] for k in kept})
        for head, index, start, end, text, context in document_sentences(document):
            for key, value in [*head.items(), ("sentence_index", index), ("start", start), ("end", end),
                               ("sentence", text), ("context", context)]:
                columns[key].append(value)
    return columns


class SentenceLabeller:
    """A Ray actor: loads the model once, labels batches of sentence rows."""

    def __init__(self, model_dir: str, batch_size: int, threads: int, model_name: str, reading: ReaderOptions,
                 dates_as_text: bool, min_confidence: float | None = None, explain: str | None = None):
        import torch

        from rustance.inference.predictor import load

        torch.set_num_threads(threads)
        self.classifier = load(model_dir, batch_size=batch_size)
        self.model_name = model_name
        self.kept = [name for c in reading.keep_columns for name in c.output_columns]
        self.min_confidence = min_confidence
        self.explain = ExplainMethod(explain) if explain is not None else None
        schema = output_schema(reading.keep_columns, abstain=min_confidence is not None,
                               explain=self.explain is not None)
        if dates_as_text:  # JSON output: kept dates as ISO 8601 text, as the local engine writes them
            import pyarrow as pa

            for c in reading.keep_columns:
                if c.kind is ColumnKind.DATE:
                    schema = schema.set(schema.get_field_index(c.name), pa.field(c.name, pa.string()))
        self.schema, self.dates_as_text = schema, dates_as_text

    def __call__(self, batch):
        import pyarrow as pa

        marker = os.environ.get(CRASH_ONCE_ENV)
        if marker and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # simulate a worker dying mid-run (tests)
        sentences = []
        for row in batch.to_pylist():
            head = {"doc_id": row["doc_id"], "source": row["source"], "line": row["line"],
                    **{k: row[k] for k in self.kept}}
            if self.dates_as_text:
                head = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in head.items()}
            sentences.append((head, row["sentence_index"], row["start"], row["end"], row["sentence"], row["context"]))
        rows = explained_rows(self.classifier, sentences, self.model_name, self.min_confidence, self.explain)
        return pa.Table.from_pylist(rows, schema=self.schema)


def _open_folder(output: Path, fingerprint: dict, stats: list | None) -> dict | None:
    """The manifest of a complete run over unchanged input (nothing to do), else None after clearing what an
    unfinished or outdated run of this engine left; refuses folders that are not this engine's."""
    manifest_path = output / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("engine") != "ray":
            raise OutputConflict(f"{output} holds a run of the local engine; choose another --output for --engine ray")
        if manifest.get("fingerprint") != fingerprint:
            theirs = manifest.get("fingerprint", {})
            changed = sorted(k for k in set(theirs) | set(fingerprint) if theirs.get(k) != fingerprint.get(k))
            raise OutputConflict(f"{output} holds a run with a different model or configuration (differs in: "
                                 f"{', '.join(changed)}); choose another --output or delete that folder")
        if manifest.get("complete") and stats is not None and manifest.get("inputs") == stats:
            return manifest
        for name in ("rows", "rejects"):  # this engine's own output of the unfinished run, written again
            shutil.rmtree(output / name, ignore_errors=True)
    elif any(p.name not in OWN_FILES for p in output.iterdir()):
        raise RayEngineError(f"{output} exists and is not empty; choose another --output")
    return None


def run_ray(model_dir: Path, paths: list[str], output: Path, reading: ReaderOptions, writing, compute,
            fingerprint: dict, model_name: str) -> Summary:
    """Label ``paths`` into ``output`` on Ray; returns the run's summary."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayEngineError("--engine ray needs Ray: pip install 'rustance[ray]'") from exc
    from rustance.inference.corpus import input_stats

    if "-" in paths:
        raise RayEngineError("--engine ray reads files, not stdin")
    if not (model_dir / "config.json").is_file():
        raise RayEngineError(f"{model_dir} is not a rustance model folder (no config.json)")
    started = time.time()
    stats = input_stats(paths)
    with OutputFolder(output):
        done = _open_folder(output, fingerprint, stats)
        if done is not None:
            summary = Summary(skipped_items=done["totals"].get("documents", 0) + done["totals"].get("rejected", 0))
            summary.totals = done["totals"]
            return summary
        schema = output_schema(reading.keep_columns, abstain=compute.min_confidence is not None,
                               explain=writing.explain is not None)
        manifest = {"engine": "ray", "fingerprint": fingerprint, "rustance": __version__,
                    "model": {"name": model_name, "path": str(model_dir.resolve()),
                              "weights_sha256": fingerprint.get("weights_sha256")},
                    "schema": {f.name: str(f.type) for f in schema},
                    "kept_columns": [{"name": c.name, "kind": c.kind.value} for c in reading.keep_columns],
                    "parts": [], "complete": False, "inputs": stats, "totals": {}}
        atomic_write(output / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())
        if not ray.is_initialized():
            ray.init(address=compute.ray_address, ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = True
        kept = [name for c in reading.keep_columns for name in c.output_columns]
        files = ray.data.from_items([{"path": str(Path(p).resolve()), "source": p} for p in paths],
                                    override_num_blocks=max(1, len(paths)))
        items = files.map_batches(read_items, batch_size=1, fn_kwargs={"reading": reading}, **LIGHT)
        sentences = items.map_batches(split_documents, fn_kwargs={"kept": kept}, batch_format="pyarrow", **LIGHT)
        labelled = sentences.map_batches(
            SentenceLabeller,
            fn_constructor_args=(str(model_dir.resolve()), compute.batch_size, compute.threads or 1, model_name,
                                 reading, writing.output_format.value == "jsonl", compute.min_confidence,
                                 writing.explain.value if writing.explain is not None else None),
            batch_size=2048,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=compute.num_actors),
            num_cpus=compute.threads or 1,
            runtime_env={"env_vars": {CRASH_ONCE_ENV: os.environ[CRASH_ONCE_ENV]}} if CRASH_ONCE_ENV in os.environ else None,
            max_restarts=-1,
            max_task_retries=-1,
        )
        if writing.output_format.value == "parquet":
            labelled.write_parquet(str(output / "rows"))
        else:
            labelled.write_json(str(output / "rows"))
        rejects = items.filter(lambda row: not row["document"], **LIGHT).select_columns(
            ["source", "line", "reason", "excerpt", "file_level"])
        rejects.write_json(str(output / "rejects"))
        summary = _summarise(output, reading, writing.output_format.value)
        manifest["parts"] = _row_files(output)
        manifest["totals"] = summary.totals
        manifest["complete"] = True
        atomic_write(output / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())
        summary.seconds = time.time() - started
        return summary


def _summarise(output: Path, reading: ReaderOptions, fmt: str) -> Summary:
    """Counts of a finished Ray run, from its output: documents, rejects, repeated ids, kept-column gaps."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    summary = Summary()
    rows_dir = output / "rows"
    columns = ["doc_id", "source", "line", "truncated", *(n for c in reading.keep_columns for n in c.output_columns)]
    table = ds.dataset(str(rows_dir), format="parquet" if fmt == "parquet" else "json").to_table(columns=columns) \
        if rows_dir.exists() and any(rows_dir.iterdir()) else pa.table({c: pa.array([], pa.string()) for c in columns})
    summary.sentences = table.num_rows
    summary.truncated = int(pc.sum(table["truncated"]).as_py() or 0) if table.num_rows else 0
    aggregations = [("doc_id", "min"), *((n, "count") for c in reading.keep_columns for n in c.output_columns)]
    documents = table.group_by(["source", "line"]).aggregate(aggregations)
    summary.documents = documents.num_rows
    per_id = documents.group_by("doc_id_min").aggregate([("source", "count")])
    repeats = per_id.filter(pc.greater(per_id["source_count"], 1))
    summary.duplicate_ids = int(pc.sum(pc.subtract(repeats["source_count"], 1)).as_py() or 0)
    summary.duplicate_examples = [repr(i) for i in repeats["doc_id_min"].to_pylist()[:3]]
    for column in reading.keep_columns:
        missing = documents.num_rows - pc.sum(pc.greater(documents[f"{column.name}_count"], 0)).as_py() \
            if documents.num_rows else 0
        if column.kind is ColumnKind.DATE:
            unparsed = int(pc.sum(pc.greater(documents[f"{column.name}_raw_count"], 0)).as_py() or 0) \
                if documents.num_rows else 0
            missing -= unparsed
            if unparsed:
                summary.dates_unparsed[column.name] = unparsed
        if missing:
            summary.kept_missing[column.name] = int(missing)
    for path in sorted((output / "rejects").glob("*.json")) if (output / "rejects").exists() else []:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                reject = json.loads(line)
                summary.rejected += 1
                key = reject["reason"].split(":")[0].split(" at ")[0].split(" (")[0]
                summary.reject_reasons[key] = summary.reject_reasons.get(key, 0) + 1
                if reject.get("file_level"):
                    summary.file_rejects.append(f"{reject['source']}: {reject['reason']}")
    summary.totals = {"documents": summary.documents, "sentences": summary.sentences, "rejected": summary.rejected,
                      "truncated": summary.truncated, "duplicate_ids": summary.duplicate_ids,
                      "kept_missing": summary.kept_missing, "dates_unparsed": summary.dates_unparsed}
    return summary


def _row_files(output: Path) -> list[dict]:
    """The row files Ray wrote (``rows/...``, in name order) with their row counts, for the manifest's
    ``parts`` (so readers of local-engine folders, e.g. ``iter_rows`` and ``rustance summarize``, read them)."""
    import pyarrow.parquet as pq

    parts = []
    for path in sorted((output / "rows").iterdir()) if (output / "rows").is_dir() else []:
        if path.suffix == ".parquet":
            parts.append({"name": f"rows/{path.name}", "rows": pq.ParquetFile(path).metadata.num_rows})
        elif path.suffix in (".json", ".jsonl"):
            with open(path, "rb") as handle:
                parts.append({"name": f"rows/{path.name}", "rows": sum(1 for line in handle if line.strip())})
    return parts


def read_rows(folder: str | Path) -> list[dict]:
    """All rows of a Ray output folder (``rows/``), sorted by document id and sentence index."""
    import pyarrow.dataset as ds

    folder = Path(folder) / "rows"
    fmt = "parquet" if any(p.suffix == ".parquet" for p in folder.iterdir()) else "json"
    rows = ds.dataset(str(folder), format=fmt).to_table().to_pylist()
    return sorted(rows, key=lambda r: (r["doc_id"], r["sentence_index"]))
