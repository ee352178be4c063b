"""The ``rustance`` command line: train, evaluate, predict."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from rustance.explain import ExplainMethod
from rustance.inference.corpus import Backend, Engine, Precision
from rustance.inference.engine import OutputFormat
from rustance.inference.readers import InputFormat

app = typer.Typer(help="Stance toward topics and sentiment in Russian political news.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Option(help="YAML config (see configs/)")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="override a field: section.field=value, or a top-level "
                                                           "field such as task=targeted_sentiment (repeatable)")] = [],
    resume: Annotated[bool, typer.Option(help="continue an interrupted run from the newest checkpoint in "
                                              "OUTPUT_DIR/checkpoints (same config)")] = False,
) -> None:
    """Fine-tune an encoder (HF Trainer); the best dev checkpoint is saved with a model card."""
    from rustance.config import load_config
    from rustance.errors import RustanceError

    if resume:
        set_ = [*set_, "train.resume_from_checkpoint=last"]
    try:
        cfg = load_config(config, set_)
    except RustanceError as exc:
        _fail(str(exc))
    _quiet_transformers()
    from rustance.train.trainer import train as run_training

    try:
        run_training(cfg, log=lambda m: console.print(m, highlight=False))
    except RustanceError as exc:
        _fail(str(exc))


def _headline_table(summary: dict) -> Table:
    heads = summary["headline"]
    keys = list(next(iter(heads.values())))
    table = Table(title=f"macro-F1 on {summary['data']} ({summary['n_sentences']} sentences)")
    table.add_column("system")
    for key in keys:
        table.add_column(key.replace("_macro_f1", ""), justify="right")
    for name, values in heads.items():
        table.add_row(name, *(f"{values[k]:.3f}" for k in keys))
    return table


def _print_details(out: Console, detail: dict) -> None:
    """Per-class tables and confusion matrices of the model."""
    for task in ("topic", "stance", "sentiment"):
        table = Table(title=f"model: {task}")
        for column in ("class", "precision", "recall", "F1", "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for label, v in detail[task]["per_class"].items():
            table.add_row(label, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
        out.print(table)
        labels = detail[task]["labels"]
        matrix = Table(title=f"model: {task} confusion (rows gold, columns predicted, numbered as the rows)")
        matrix.add_column("")
        for number in range(1, len(labels) + 1):
            matrix.add_column(str(number), justify="right")
        for number, (label, row) in enumerate(zip(labels, detail[task]["confusion"]), start=1):
            matrix.add_row(f"{number} {label}", *map(str, row))
        out.print(matrix)


def _model_task(model: Path):
    """The task registry entry of a saved model (its config.json, read as a RustanceConfig)."""
    from rustance.errors import RustanceError
    from rustance.model import load_config
    from rustance.tasks import task_spec

    try:
        return task_spec(load_config(model).task)
    except RustanceError as exc:
        _fail(str(exc))


def _check_device(device: str) -> None:
    if device not in ("auto", "cpu", "cuda", "mps") and not device.startswith(("cuda:", "mps:")):
        _fail(f"--device must be auto, cpu, cuda or mps, got {device!r}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="trained model folder")],
    data: Annotated[Path, typer.Option(help="labelled JSONL file (stance models) or RuSentNE-format TSV "
                                            "(targeted-sentiment models; unlabelled files get predictions only)")],
    out: Annotated[Optional[Path], typer.Option(help="report folder (default: MODEL/eval-<data name>)")] = None,
    train_file: Annotated[Optional[Path], typer.Option("--train", help="training file for the baselines "
                                                       "(default: the one in the model's training_config.yaml)")] = None,
    corpora: Annotated[Optional[Path], typer.Option(help="corpus folder for stand-off records")] = None,
    split: Annotated[Optional[str], typer.Option(help="targeted sentiment: score only the dev or train part of "
                                                 "the by-sentence split stored with the model")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="replace an existing report in --out")] = False,
) -> None:
    """Score the model and baselines; write metrics.json, report.md and PNG plots."""
    from rustance.errors import RustanceError

    _quiet_transformers()
    _check_device(device)
    out = out or model / (f"eval-{data.stem}" + (f"-{split}" if split else ""))
    if split not in (None, "dev", "train", "all"):
        _fail(f"--split must be dev, train or all, got {split!r}")
    if (out / "report.md").exists() and not overwrite:
        _fail(f"{out}/report.md exists; choose another --out or pass --overwrite to replace it")
    log = lambda m: console.print(m, highlight=False)  # noqa: E731
    spec = _model_task(model)
    try:
        summary = spec.evaluator()(model, data, out, split=split, train_file=train_file, corpora_dir=corpora,
                                   device=device, log=log, command="rustance " + " ".join(sys.argv[1:]))
    except RustanceError as exc:
        _fail(str(exc))
    if summary.get("labelled", True) and "headline" in summary and model.is_dir():
        from rustance.card import record_evaluation

        name = data.stem + (f"-{split}" if split else "")
        try:
            record_evaluation(model, name, str(data), summary["headline"]["model"])
        except OSError as exc:
            log(f"model card not updated ({exc})")
    if "n_targets" in summary:
        _print_targeted(summary)
    else:
        out_console = Console()
        out_console.print(_headline_table(summary))
        _print_details(out_console, summary["systems"]["model"]["metrics"])
    console.print(f"report written to {out}/report.md", highlight=False)


def _print_targeted(summary: dict) -> None:
    out = Console()
    if not summary["labelled"]:
        out.print(f"{summary['n_targets']} targets predicted (no labels in {summary['data']})")
        return
    table = Table(title=f"targeted sentiment on {summary['data']} ({summary['n_targets']} targets)")
    for column in ("system", "F1_PN", "F1_PN0", "accuracy"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, m in summary["systems"].items():
        table.add_row(name, f"{m['f1_pn']:.3f}", f"{m['f1_pn0']:.3f}", f"{m['accuracy']:.3f}")
    out.print(table)


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help="trained model folder")],
    inputs: Annotated[Optional[list[str]], typer.Argument(
        help="JSONL, JSON (an array of objects), CSV/TSV, Parquet or .txt files, folders of them, or '-' for stdin "
             "(default)")] = None,
    output: Annotated[Optional[Path], typer.Option(
        help="output folder (Parquet/JSONL parts + manifest; re-run to resume). Omit to print JSON lines")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="output parts")] = OutputFormat.PARQUET,
    text_column: Annotated[str, typer.Option(help="field/column holding the document text")] = "text",
    id_column: Annotated[Optional[str], typer.Option(
        help="field/column holding the document id, which every item must then have (default: 'id' where "
             "present, else FILE:LINE; '' for FILE:LINE always)")] = None,
    keep_column: Annotated[list[str], typer.Option(
        help="input field carried into every output row (repeatable); NAME:date parses dates, NAME:text keeps "
             "text; names like date, time, *_at are dates by default")] = [],
    input_format: Annotated[Optional[InputFormat], typer.Option(
        help="json is an array of objects, txt one document per file, lines one per line; default by suffix "
             "(lines for stdin)")] = None,
    json_items: Annotated[Optional[str], typer.Option(
        help="JSON input: the key of the array inside a top-level object, dots for nested keys "
             "(e.g. messages for Telegram Desktop's result.json)")] = None,
    batch_size: Annotated[int, typer.Option(help="sentences per forward pass")] = 64,
    max_chars: Annotated[int, typer.Option(help="longer documents go to the rejects file")] = 1_000_000,
    part_sentences: Annotated[int, typer.Option(help="sentences per output part (memory grows with it)")] = 5_000,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads in all (default: all cores)")] = None,
    workers: Annotated[Optional[int], typer.Option(
        help="local engine: windows labelled in parallel, sharing --threads (default: 2 if 2+ cores)")] = None,
    backend: Annotated[Backend, typer.Option(help="onnx: a folder made by `rustance export-onnx`")] = Backend.TORCH,
    precision: Annotated[Precision, typer.Option(help="torch backend: bf16 is faster on CPUs with AVX512-BF16/AMX; "
                                                      "labels may differ slightly, see reports/precision-agreement.md")
                         ] = Precision.FP32,
    engine: Annotated[Engine, typer.Option(help="local (resumable, this machine) or ray (a Ray cluster; "
                                                "pip install 'rustance[ray]', see docs/scaling.md)")] = Engine.LOCAL,
    device: Annotated[str, typer.Option(help="torch backend: auto (CUDA, then MPS, then CPU), cpu, cuda or mps")] = "auto",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    num_actors: Annotated[int, typer.Option(help="Ray engine: model replicas (actors), one CPU each by default")] = 1,
    min_confidence: Annotated[Optional[float], typer.Option(
        help="abstain: a stance whose probability is below this (0 < x < 1) is written as 'uncertain', and a topic "
             "whose presence decision is less confident goes to uncertain_topics (default: off)")] = None,
    explain: Annotated[bool, typer.Option(
        help="add per topic the words that drove the label (topics[].words, with weights); costs about one "
             "extra model pass per word of every sentence with a topic, see reports/explain-faithfulness.md")] = False,
    explain_method: Annotated[Optional[ExplainMethod], typer.Option(
        help="with --explain: occlusion (default, any backend) or integrated_gradients (torch backend, needs "
             "pip install 'rustance[explain]')")] = None,
) -> None:
    """Label every sentence of a corpus: streaming, resumable, bad input goes to _rejects.jsonl."""
    from rustance.errors import RustanceError
    from rustance.inference.corpus import ComputeOptions, NothingLabelled, run_corpus
    from rustance.inference.engine import RunOptions, json_value
    from rustance.inference.readers import KeptColumn, ReaderOptions

    _log_to_stderr()
    _quiet_transformers()

    def emit(entry) -> None:
        if isinstance(entry, dict):
            print(json.dumps(entry, ensure_ascii=False, default=json_value))
        else:
            typer.echo(f"rejected {entry.source}:{entry.line}: {entry.reason}", err=True)

    try:
        reading = ReaderOptions(text_column=text_column, id_column=id_column, input_format=input_format,
                                max_chars=max_chars, json_items=json_items,
                                keep_columns=tuple(KeptColumn.parse(spec) for spec in keep_column))
        if explain_method is not None and not explain:
            _fail("--explain-method needs --explain")
        writing = RunOptions(output_format=output_format, part_sentences=part_sentences,
                             explain=(explain_method or ExplainMethod.OCCLUSION) if explain else None)
        _check_device(device)
        compute = ComputeOptions(engine=engine, backend=backend, precision=precision, batch_size=batch_size, device=device,
                                 threads=threads, workers=workers, ray_address=ray_address, num_actors=num_actors,
                                 min_confidence=min_confidence)
        summary = run_corpus(model, inputs or ["-"], output, reading=reading, writing=writing, compute=compute,
                             emit=emit)
    except RustanceError as exc:
        _fail(str(exc), code=1 if isinstance(exc, NothingLabelled) else 2)
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.reject_reasons.items()))
    console.print(f"processed {summary.documents} documents, {summary.sentences} sentences"
                  f" ({summary.truncated} truncated); rejected {summary.rejected}" + (f" ({reasons})" if reasons else "")
                  + (f"; skipped {summary.skipped_items} items done by an earlier run" if summary.skipped_items else "")
                  + (f"; output in {output}" if output else ""), highlight=False)


def _log_to_stderr() -> None:
    """rustance's warnings (logging) as 'warning: ...' lines on stderr."""
    import logging

    class CurrentStderr(logging.StreamHandler):
        """Writes to whatever sys.stderr is when a message comes (it is replaced under test runners)."""

        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("rustance")
    if not any(isinstance(h, logging.StreamHandler) and type(h).__name__ == "CurrentStderr" for h in logger.handlers):
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@app.command()
def summarize(
    folders: Annotated[list[Path], typer.Argument(help="output folder(s) of `rustance predict --output`")],
    by: Annotated[list[str], typer.Option(help="day, week, month or quarter, and/or a kept column such as "
                                               "channel (repeatable)")] = [],
    out: Annotated[Path, typer.Option(help="folder for summary/volume .parquet and .csv")] = Path("summary"),
    html: Annotated[Optional[Path], typer.Option(help="also write a self-contained interactive HTML report")] = None,
    date_column: Annotated[str, typer.Option(help="kept column holding the date")] = "date",
    min_sentences: Annotated[int, typer.Option(help="report: cells with fewer sentences are greyed")] = 10,
    attribution: Annotated[Optional[str], typer.Option(
        help="report: corpus attribution line (default: the manifest's, else the input paths)")] = None,
    threads: Annotated[Optional[int], typer.Option(help="DuckDB threads (default: all cores)")] = None,
) -> None:
    """Stance shares (with 95 % Wilson intervals), sentiment and confidence per period, group and topic."""
    from rustance.errors import RustanceError
    from rustance.summarize import summarize as write_summary

    try:
        summary = write_summary(folders, by, out, date_column=date_column, threads=threads, html=html,
                                min_sentences=min_sentences, attribution=attribution)
    except RustanceError as exc:
        _fail(str(exc))
    console.print(summary.describe(), highlight=False)


@app.command("export-onnx")
def export_onnx(
    model: Annotated[Path, typer.Option(help="trained model folder")],
    out: Annotated[Path, typer.Option(help="new folder for the ONNX model")],
    check: Annotated[Path, typer.Option(help="labelled JSONL whose sentences are used for the agreement check")] = Path(
        "data/stance/dev.jsonl"),
    int8: Annotated[bool, typer.Option(help="dynamic int8 quantisation of the weights")] = False,
    min_agreement: Annotated[float, typer.Option(help="refuse below this share of identical labels")] = 0.99,
    corpora: Annotated[Optional[Path], typer.Option(help="corpus folder for stand-off records")] = None,
) -> None:
    """Export to ONNX (optionally int8) and check its labels agree with the PyTorch model."""
    _quiet_transformers()
    from rustance.inference.onnx_backend import export_onnx as run_export
    from rustance.inference.predictor import load
    from rustance.model import ModelLoadError
    from rustance.records import DataError, load_records

    try:
        reference = load(model, device="cpu")  # ONNX export traces on the CPU
        records = load_records(check, reference.topics, corpora)
        run_export(reference, out, [r.text for r in records], [r.context for r in records], int8=int8,
                   min_agreement=min_agreement, log=lambda m: console.print(m, highlight=False))
    except (DataError, ModelLoadError, FileExistsError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"ONNX model written to {out}", highlight=False)


@app.command()
def convert(
    old: Annotated[Path, typer.Argument(help="a model folder saved by rustance 0.2")],
    new: Annotated[Path, typer.Argument(help="new folder for the 0.3 (Hugging Face model type 'rustance') model")],
) -> None:
    """Convert a rustance 0.2 checkpoint to the 0.3 format (same weights; RustanceConfig, model card)."""
    from rustance.errors import RustanceError
    from rustance.model import convert_checkpoint

    _quiet_transformers()
    try:
        convert_checkpoint(old, new)
    except RustanceError as exc:
        _fail(str(exc))
    console.print(f"converted model written to {new}", highlight=False)


@app.command()
def fuse(
    model: Annotated[Path, typer.Option(help="a trained stance model folder")],
    out: Annotated[Path, typer.Option(help="new folder for the fused model")],
    train: Annotated[Optional[Path], typer.Option(help="training file of the TF-IDF part (default: the model's; a fused model "
                                                       "keeps its own TF-IDF part unless this is given)")] = None,
    dev: Annotated[Optional[Path], typer.Option(help="dev file that chooses the weights (default: the model's)")] = None,
    corpora: Annotated[Optional[Path], typer.Option(help="where stand-off records resolve")] = None,
    tfidf_context: Annotated[Optional[bool], typer.Option(
        "--tfidf-context/--no-tfidf-context",
        help="the TF-IDF part's topic models also read the previous sentence, or not (default: as the model's own "
             "TF-IDF part or training config, else train.tfidf_context's default; either flag fits a new TF-IDF "
             "part)")] = None,
) -> None:
    """Blend a trained model with TF-IDF (what train.tfidf_fusion does after training): fit TF-IDF + logistic
    regression on the training file, choose each head's weight and the topic thresholds on dev, save to --out."""
    from rustance.errors import RustanceError
    from rustance.records import DataError
    from rustance.train.fusion import fuse_model

    _quiet_transformers()
    try:
        metrics = fuse_model(model, out, train and str(train), dev and str(dev), corpora and str(corpora),
                             log=lambda m: console.print(m, highlight=False), context=tfidf_context)
    except (RustanceError, DataError, FileNotFoundError) as exc:
        _fail(str(exc))
    if metrics:
        console.print("dev after fusion: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()
                                                      if isinstance(v, float)), highlight=False)


@app.command()
def push(
    model: Annotated[Path, typer.Option(help="trained model folder")],
    repo: Annotated[str, typer.Option(help="Hugging Face Hub repository id, e.g. org/rustance-e5-small")],
    private: Annotated[bool, typer.Option(help="create the repository as private")] = False,
) -> None:
    """Upload a trained model folder (weights, config, tokenizer, model card) to the Hugging Face Hub."""
    from rustance.card import push_model
    from rustance.errors import RustanceError

    try:
        url = push_model(model, repo, private=private)
    except RustanceError as exc:
        _fail(str(exc))
    console.print(f"pushed {model} to {url}", highlight=False)


data_app = typer.Typer(help="Work with the labelled data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def data_check(
    data_dir: Annotated[Path, typer.Option(help="folder with train/dev/test.jsonl")] = Path("data/stance"),
    corpora: Annotated[Optional[Path], typer.Option(help="corpus folder for stand-off records")] = None,
    topics: Annotated[Optional[Path], typer.Option(help="topic file (default: the seven default topics)")] = None,
    markdown: Annotated[bool, typer.Option(help="print the counts as a Markdown table")] = False,
) -> None:
    """Validate every split (schema, labels, spans, leaks between splits) and print counts."""
    from rustance.datacheck import SPLITS, check_splits, count_table, target_rows
    from rustance.labels import TopicsError, load_topics

    try:
        topic_set = load_topics(topics)
    except TopicsError as exc:
        _fail(str(exc))
    report = check_splits(data_dir, topic_set, corpora)
    rows = count_table(report, topic_set)
    header = ["", *SPLITS, "all"]
    if markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        table = Table(title=f"records in {data_dir}")
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    targets = target_rows(rows)
    print(f"\nData targets (issue 15): {sum(t[3] == 'yes' for t in targets)} of {len(targets)} met\n")
    print("| target | have | want | met |\n|---|---|---|---|")
    for row in targets:
        print("| " + " | ".join(row) + " |")
    agreement_file = data_dir / "agreement.jsonl"
    if agreement_file.is_file():
        from rustance.agreement import agreement, agreement_markdown

        items = [json.loads(line) for line in agreement_file.read_text(encoding="utf-8").splitlines()]
        known = {r.id for records in report.records.values() for r in records}
        report.problems += [f"{agreement_file}: id {item['id']!r} is in no split" for item in items
                            if item["id"] not in known]
        real_rounds = [r.round for records in report.records.values() for r in records if r.origin == "corpus"]
        groups: dict[str, list[dict]] = {}
        for item in items:  # items without a round are from rounds 1-4
            groups.setdefault(item.get("round", "rounds 1-4"), []).append(item)
        for group, members in groups.items():
            pairs = [(item["first"], item["second"]) for item in members]
            distinct = len({item["id"] for item in members})
            real = sum((n is None) == (group == "rounds 1-4") for n in real_rounds)
            print(f"\nDouble annotation, {group}: {len(pairs)} sentences labelled twice independently, {distinct} "
                  f"distinct records ({100 * distinct / max(real, 1):.1f} % of the {real} real-sentence records of "
                  f"{group}), from {agreement_file}\n")
            print(agreement_markdown(agreement(pairs, [t.id for t in topic_set])))
    if report.problems:
        for problem in report.problems:
            typer.secho(problem, fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    console.print("data check passed", highlight=False)


if __name__ == "__main__":
    app()
