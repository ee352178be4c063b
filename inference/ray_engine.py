"""Corpus inference on a Ray cluster (``rustance predict --engine ray``), with Ray Data.

Plan: read with Ray's datasources (JSONL, CSV/TSV, Parquet, plain-text files) → split documents into
sentences (a stateless ``map_batches``) → label them in an actor pool where each actor loads the model
once (``map_batches`` with a callable class; actors are restarted and their tasks retried if one dies)
→ write Parquet or JSONL with Ray's datasinks. Rows have the same schema and labels as the local engine.
Documents whose text is missing, not a string or blank are written to ``OUTPUT/rejects/``.

Ray is optional (``pip install rustance[ray]``) and imported only here.
"""

from __future__ import annotations

from rustance.errors import RustanceError
import os
from dataclasses import dataclass
from pathlib import Path

from rustance.inference.engine import document_sentences, label_rows, output_schema

CRASH_ONCE_ENV = "RUSTANCE_TEST_CRASH_ONCE"  # test hook: path of a marker file; the first actor call dies


class RayEngineError(RustanceError, RuntimeError):
    """A Ray run that cannot start as asked."""


@dataclass
class RayOptions:
    input_format: str  # jsonl | csv | tsv | parquet | txt
    text_column: str = "text"
    id_column: str | None = "id"
    output_format: str = "parquet"
    num_actors: int = 1
    cpus_per_actor: int = 1  # torch threads per actor
    batch_size: int = 64  # sentences per forward pass
    block_sentences: int = 2048  # sentences per actor call (length-bucketed inside)
    address: str | None = None  # Ray cluster address; None = start or join a local instance


# Reading, splitting and filtering are light next to the model; they ask for no CPU slot so that they
# still run when the actors hold every CPU of the cluster (e.g. 2 actors on a 2-CPU machine).
LIGHT = {"num_cpus": 0}


def _read(paths: list[str], options: RayOptions):
    import ray.data

    fmt = options.input_format
    if fmt == "json":  # .json files: JSON lines under that name are fine, arrays are read by the local engine only
        from rustance.inference.readers import is_json_array

        arrays = [p for p in paths if is_json_array(p)]
        if arrays:
            raise RayEngineError(f"--engine ray reads JSON lines, and {arrays[0]} holds a JSON array: use the local "
                                 "engine, or convert it (e.g. jq -c '.[]' in.json > in.jsonl)")
        fmt = "jsonl"
    if fmt == "jsonl":
        return ray.data.read_json(paths, lines=True, ray_remote_args=LIGHT)
    if fmt in ("csv", "tsv"):
        from pyarrow import csv

        parse = csv.ParseOptions(delimiter="," if fmt == "csv" else "\t")
        return ray.data.read_csv(paths, parse_options=parse, ray_remote_args=LIGHT)
    if fmt == "parquet":
        return ray.data.read_parquet(paths, ray_remote_args=LIGHT)
    if fmt == "txt":  # one document per file, its id the file name (as in the local engine)
        def decode(batch: dict) -> dict:
            return {"id": [Path(p).name for p in batch["path"]],
                    "text": [b.decode("utf-8", errors="replace") for b in batch["bytes"]]}

        return ray.data.read_binary_files(paths, include_paths=True, ray_remote_args=LIGHT).map_batches(decode, **LIGHT)
    raise RayEngineError(f"--engine ray reads jsonl, csv, tsv, parquet or txt, not {fmt!r}")


def _valid(text: object) -> bool:
    return isinstance(text, str) and bool(text.strip())


def split_documents(batch: dict, text_column: str, id_column: str) -> dict:
    """Documents → sentence rows, each with its previous sentence as context (blank documents dropped
    here; they are written to the rejects folder by a separate pass)."""
    columns: dict[str, list] = {k: [] for k in ("doc_id", "sentence_index", "start", "end", "sentence", "context")}
    for doc_id, text in zip(batch[id_column], batch[text_column]):
        if _valid(text):
            for sentence in document_sentences(str(doc_id), text):
                for key, value in zip(columns, sentence):
                    columns[key].append(value)
    return columns


class SentenceLabeller:
    """A Ray actor: loads the model once, labels batches of sentence rows."""

    def __init__(self, model_dir: str, batch_size: int, threads: int, model_name: str):
        import torch

        from rustance.inference.predictor import load

        torch.set_num_threads(threads)
        self.classifier = load(model_dir, batch_size=batch_size)
        self.model_name = model_name

    def __call__(self, batch: dict):
        import pyarrow as pa

        marker = os.environ.get(CRASH_ONCE_ENV)
        if marker and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # simulate a worker dying mid-run (tests)
        sentences = [(str(d), int(i), int(s), int(e), str(t), str(c)) for d, i, s, e, t, c in zip(
            batch["doc_id"], batch["sentence_index"], batch["start"], batch["end"], batch["sentence"], batch["context"])]
        return pa.Table.from_pylist(label_rows(self.classifier, sentences, self.model_name), schema=output_schema())


def run_ray(model_dir: str | Path, paths: list[str], output: str | Path, options: RayOptions,
            model_name: str = "") -> dict:
    """Label ``paths`` into ``output`` on Ray; returns counts (sentences written, documents rejected)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayEngineError("--engine ray needs Ray: pip install 'rustance[ray]'") from exc
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise RayEngineError(f"{output} exists and is not empty; choose another --output")
    if "-" in paths:
        raise RayEngineError("--engine ray reads files, not stdin")
    if options.input_format != "txt" and not options.id_column:
        raise RayEngineError("--engine ray needs an id column (--id-column) to identify documents")
    if not ray.is_initialized():
        ray.init(address=options.address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = True
    model_dir = str(Path(model_dir).resolve())
    text_column, id_column = ("text", "id") if options.input_format == "txt" else (options.text_column,
                                                                                  options.id_column)
    documents = _read([str(Path(p).resolve()) for p in paths], options)
    sentences = documents.map_batches(split_documents, fn_kwargs={"text_column": text_column, "id_column": id_column},
                                      batch_format="numpy", **LIGHT)
    labelled = sentences.map_batches(
        SentenceLabeller,
        fn_constructor_args=(model_dir, options.batch_size, options.cpus_per_actor, model_name),
        batch_size=options.block_sentences,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=options.num_actors),
        num_cpus=options.cpus_per_actor,
        runtime_env={"env_vars": {CRASH_ONCE_ENV: os.environ[CRASH_ONCE_ENV]}} if CRASH_ONCE_ENV in os.environ else None,
        max_restarts=-1,
        max_task_retries=-1,
    )
    output.mkdir(parents=True, exist_ok=True)
    if options.output_format == "parquet":
        labelled.write_parquet(str(output / "rows"))
    else:
        labelled.write_json(str(output / "rows"))
    rejects = documents.filter(lambda row: not _valid(row.get(text_column)), **LIGHT)
    rejected = rejects.count()
    if rejected:
        rejects.write_json(str(output / "rejects"))
    return {"sentences": count_rows(output / "rows"), "rejected_documents": rejected}


def count_rows(folder: Path) -> int:
    """Rows in a folder of Parquet (metadata only) or JSONL files."""
    total = 0
    for path in sorted(folder.iterdir()):
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            total += pq.ParquetFile(path).metadata.num_rows
        elif path.suffix in (".json", ".jsonl"):
            with open(path, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
    return total


def read_rows(folder: str | Path) -> list[dict]:
    """All rows of a Ray output folder (``rows/``), sorted by document id and sentence index."""
    import pyarrow.dataset as ds

    folder = Path(folder) / "rows"
    fmt = "parquet" if any(p.suffix == ".parquet" for p in folder.iterdir()) else "json"
    rows = ds.dataset(str(folder), format=fmt).to_table().to_pylist()
    return sorted(rows, key=lambda r: (r["doc_id"], r["sentence_index"]))
