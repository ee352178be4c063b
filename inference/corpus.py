"""``run_corpus``: a corpus run as one library call (what ``rustance predict`` does).

It owns everything around the engines: checking the inputs and the output folder (before the model is
loaded), the run fingerprint (derived from the option dataclasses below: every field counts unless its
metadata says ``fingerprint=False``; one whose metadata says ``"if set"`` counts only while it is not None,
so that adding such an option keeps the fingerprints of earlier runs), threads, the progress bar, and the choice
of engine (the local, resumable one in :mod:`rustance.inference.engine`, or Ray in
:mod:`rustance.inference.ray_engine`).
"""

from __future__ import annotations

import errno
import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from pathlib import Path

from rustance.calibration import check_min_confidence
from rustance.errors import RustanceError
from rustance.explain import ExplainMethod
from rustance.inference.engine import (CorpusRunner, OutputConflict, OutputFolder, RunOptions, Summary, check_positive,
                                       configure_threads, output_schema, weights_digest, write_error)
from rustance.inference.readers import (InputError, ReaderOptions, Reject, count_items, read_documents,
                                        resolve_inputs)

log = logging.getLogger("rustance.corpus")


class Engine(str, Enum):
    LOCAL = "local"  # this machine: streaming, resumable
    RAY = "ray"  # a Ray cluster (pip install 'rustance[ray]')


class Backend(str, Enum):
    TORCH = "torch"
    ONNX = "onnx"  # a folder made by `rustance export-onnx`


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"  # torch backend: bfloat16 autocast (CPUs with AVX512-BF16/AMX)


class NothingLabelled(RustanceError):
    """Every input item was rejected: the run produced no rows."""


def _enum(kind: type[Enum], value, option: str):
    try:
        return kind(value)
    except ValueError:
        raise InputError(f"--{option} must be one of {', '.join(k.value for k in kind)}, got {value!r}") from None


@dataclass(frozen=True)
class ComputeOptions:
    """How the labels are computed; only ``engine``, ``backend``, ``precision`` and ``min_confidence`` change
    the output."""

    engine: Engine = Engine.LOCAL
    backend: Backend = Backend.TORCH
    precision: Precision = Precision.FP32
    batch_size: int = field(default=64, metadata={"fingerprint": False})  # sentences per forward pass
    threads: int | None = field(default=None, metadata={"fingerprint": False})  # CPU threads in all
    workers: int | None = field(default=None, metadata={"fingerprint": False})  # local engine: labelling threads
    ray_address: str | None = field(default=None, metadata={"fingerprint": False})
    num_actors: int = field(default=1, metadata={"fingerprint": False})  # Ray: model replicas
    device: str = field(default="auto", metadata={"fingerprint": False})  # local torch backend: auto|cpu|cuda|mps
    # abstain: stances and topic decisions less confident than this are reported as uncertain (Classifier.decode);
    # in the fingerprint when set (runs without it keep the fingerprint they had before the option existed)
    min_confidence: float | None = field(default=None, metadata={"fingerprint": "if set"})

    def __post_init__(self):
        object.__setattr__(self, "engine", _enum(Engine, self.engine, "engine"))
        object.__setattr__(self, "backend", _enum(Backend, self.backend, "backend"))
        object.__setattr__(self, "precision", _enum(Precision, self.precision, "precision"))
        check_positive(batch_size=self.batch_size, threads=self.threads, workers=self.workers,
                       num_actors=self.num_actors)
        try:
            check_min_confidence(self.min_confidence, "--min-confidence")
        except ValueError as exc:
            raise InputError(str(exc)) from None


def _plain(value):
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def options_fingerprint(**options) -> dict:
    """``{"<name>.<field>": value}`` for every field of the given option dataclasses that changes the output
    (metadata ``fingerprint``: False leaves a field out, ``"if set"`` leaves it out while it is None)."""
    return {f"{name}.{f.name}": _plain(getattr(value, f.name)) for name, value in options.items()
            for f in fields(value) if f.metadata.get("fingerprint", True)
            and not (f.metadata.get("fingerprint") == "if set" and getattr(value, f.name) is None)}


def check_explain(writing: RunOptions, compute: ComputeOptions) -> None:
    """Refuse an ``--explain-method`` that cannot run as asked, before anything is read or loaded."""
    if writing.explain is not ExplainMethod.INTEGRATED_GRADIENTS:
        return
    if compute.backend is Backend.ONNX:
        raise InputError("--explain-method integrated_gradients takes gradients of the torch model: use it with "
                         "--backend torch, or --explain-method occlusion with --backend onnx")
    if importlib.util.find_spec("captum") is None:
        raise InputError("--explain-method integrated_gradients needs Captum: pip install 'rustance[explain]' "
                         "(or use --explain-method occlusion)")


def model_name(model_dir: Path) -> str:
    """What output rows record as the model: its base encoder and folder name."""
    from rustance.errors import RustanceError
    from rustance.model import load_config

    try:
        base = load_config(model_dir).base_model or ""
    except RustanceError:
        base = ""
    return f"{base} ({model_dir.name})".strip()


def input_stats(paths: list[str]) -> list | None:
    """Size and modification time of every input file (None when stdin is among them)."""
    if "-" in paths:
        return None
    stats = []
    for path in paths:
        stat = Path(path).stat()
        stats.append([path, stat.st_size, stat.st_mtime_ns])
    return stats


def _load_classifier(model: Path, compute: ComputeOptions, threads: int):
    from rustance.inference.predictor import Classifier, load

    if compute.backend is Backend.ONNX:
        from rustance.inference.onnx_backend import load_onnx

        return load_onnx(model, batch_size=compute.batch_size, threads=threads)
    classifier = load(model, batch_size=compute.batch_size, precision=compute.precision.value, device=compute.device)
    if not isinstance(classifier, Classifier):
        raise InputError(f"{model} is a targeted-sentiment model: score RuSentNE-format files with `rustance "
                         "evaluate`, or use rustance.load(...).predict(sentence, target=...)")
    return classifier


def run_corpus(model: str | Path, inputs: Sequence[str] = ("-",), output: str | Path | None = None, *,
               reading: ReaderOptions = ReaderOptions(), writing: RunOptions = RunOptions(),
               compute: ComputeOptions = ComputeOptions(), progress: bool = True,
               emit: Callable[[dict | Reject], None] | None = None) -> Summary:
    """Label every sentence of ``inputs`` (files, folders, ``"-"`` for stdin) with the model in ``model``.

    With ``output``, writes a resumable output folder (rerun the same call to resume) and returns the run's
    :class:`Summary`; without, passes each row (a dict) and reject to ``emit`` in input order. Raises a
    :class:`RustanceError` for anything the user can fix (bad input path or option, unusable output folder,
    changed input on resume, no usable model) — before the model is loaded where it can — and
    :class:`NothingLabelled` when every item was rejected.
    """
    model = Path(model)
    output_schema(reading.keep_columns)  # a kept column that clashes with an output column is refused now
    check_explain(writing, compute)
    paths = resolve_inputs(list(inputs) or ["-"], reading.input_format, exclude=output)
    if compute.engine is Engine.RAY:
        if output is None:
            raise InputError("--engine ray writes to a folder: give --output")
        from rustance.inference.ray_engine import run_ray

        summary = run_ray(model, paths, Path(output), reading, writing, compute,
                          _fingerprint(model, inputs, reading, writing, compute), model_name(model))
        return _report(summary)
    if not (model / "config.json").is_file():
        raise InputError(f"{model} is not a rustance model folder (no config.json)")
    folder = OutputFolder(output) if output is not None else None
    try:
        runner = CorpusRunner(None, output, writing, _fingerprint(model, inputs, reading, writing, compute)
                              if output is not None else None, model_name(model), keep_columns=reading.keep_columns,
                              manifest_extra={"engine": Engine.LOCAL.value, "model": {
                                  "name": model_name(model), "path": str(model.resolve()),
                                  "weights_sha256": weights_digest(model)}},
                              min_confidence=compute.min_confidence)
        stats = input_stats(paths)
        if output is not None and runner.up_to_date(stats):  # nothing to label: no model, no counting
            return _report(runner.run([], input_stats=stats))
        workers = compute.workers
        if workers is None and writing.explain is ExplainMethod.INTEGRATED_GRADIENTS:
            workers = 1  # its windows take the model one at a time (engine._GRADIENTS_LOCK): one thread has all
        workers, per_worker = configure_threads(workers, compute.threads)
        runner.classifier = _load_classifier(model, compute, per_worker)
        runner.options = replace(writing, workers=workers)
        if output is None:
            summary = Summary()
            for entry in runner.stream(read_documents(paths, reading), summary):
                emit(entry)
            return _report(summary)
        from rustance.progress import progress as progress_bar

        bar = progress_bar(count_items(paths, reading), "documents", unit="doc") if progress else None
        runner.progress = bar
        try:
            summary = runner.run(read_documents(paths, reading), input_stats=stats)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS) or (
                    exc.filename and Path(str(exc.filename)).resolve().is_relative_to(Path(output).resolve())):
                raise write_error(Path(output), exc) from exc
            raise
        finally:
            if bar is not None:
                bar.close()
        return _report(summary)
    finally:
        if folder is not None:
            folder.release()


def _fingerprint(model: Path, inputs: Sequence[str], reading, writing, compute) -> dict:
    return {"model": str(model.resolve()), "weights_sha256": weights_digest(model), "inputs": list(inputs),
            **options_fingerprint(reading=reading, writing=writing, compute=compute)}


def _report(summary: Summary) -> Summary:
    """Log what needs the user's attention; refuse a run in which nothing could be labelled."""
    for problem in summary.file_rejects:
        log.warning("file skipped: %s", problem)
    if summary.duplicate_ids:
        log.warning("%d documents have an id an earlier document of this run already had (e.g. %s); rows carry "
                    "source and line to tell them apart", summary.duplicate_ids, ", ".join(summary.duplicate_examples))
    for name, count in summary.kept_missing.items():
        log.warning("kept column %r is missing in %d documents (written as null)", name, count)
    for name, count in summary.dates_unparsed.items():
        log.warning("kept column %r holds no readable date in %d documents (kept as text in %s_raw)",
                    name, count, name)
    totals = summary.totals or {}
    if not totals.get("documents") and (totals.get("rejected") or summary.file_rejects):
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.reject_reasons.items())) or \
            "; ".join(summary.file_rejects)
        raise NothingLabelled(f"no document could be labelled: every input item was rejected ({reasons})")
    return summary
