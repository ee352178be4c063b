"""Corpus-inference throughput on the default model's shape (rubert-tiny2, random weights).

Measures, on the same N real sentences (Telegram news corpus, ../shared/corpora), in one run:
  (a) a plain transformers pipeline("text-classification") loop at batch size 32 — the baseline;
  (b) rustance's corpus engine (PyTorch fp32, also bf16 autocast) on the sentence alone and with the previous
      sentence as context, both ways a model can read it: ``pair`` (a second segment of one input) and
      ``pooled`` (encoded once as a sentence of its own; the heads read both vectors), with its default
      threads (2 single-threaded workers on 2 cores) and with 1 worker x 2 threads;
  (c) the engine on ONNX Runtime and (d) on ONNX Runtime with dynamic int8 weights;
and prints sentences/s, peak RSS and the ratio to (a), plus the throughput the encoder's linear-layer
FLOPs would allow at this machine's measured fp32 matmul speed. Each variant runs in its own process so
peak memory is its own. Random weights give the real speed of the default model, not its quality.

    python benchmarks/throughput.py --sentences 20000 --out reports/benchmark-throughput.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def load_sentences(n: int, corpora: Path) -> list[str]:
    from rustance.corpora import iter_documents
    from rustance.text import split_sentences

    sentences = []
    for _, text in iter_documents("telegram_news", corpora):
        sentences += [s.text for s in split_sentences(text) if len(s.text) >= 20]
        if len(sentences) >= n:
            return sentences[:n]
    return sentences


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(sentences: list[str], shape: Path) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(shape, num_labels=3)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(shape),
                        device=-1, batch_size=32, truncation=True, max_length=128)
    for _ in classify(sentences[:500]):  # warm-up, as for the rustance variants
        pass
    started = time.perf_counter()
    for _ in classify(sentences):
        pass
    return {"seconds": time.perf_counter() - started}


def shape_checkpoint(shape: Path, folder: str | Path, context: str = "pooled") -> None:
    """Save a rustance checkpoint with the encoder shape of ``shape`` and random weights into ``folder``;
    ``context`` is none, pair or pooled."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from rustance.labels import STANCES, load_topics
    from rustance.model import RustanceConfig, StanceModel, sentiment_labels

    torch.manual_seed(0)
    config = RustanceConfig(encoder_config=AutoConfig.from_pretrained(shape).to_dict(), task="stance",
                            topics=[{"id": t.id, "description": t.description} for t in load_topics()],
                            stances=list(STANCES), pooling="mean", use_context=context != "none",
                            context_mode="pooled" if context == "pooled" else "pair", max_length=128, text_prefix="",
                            **sentiment_labels())
    StanceModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(shape).save_pretrained(folder)


def run_rustance(sentences: list[str], shape: Path, context: str = "none", backend: str = "torch",
                 precision: str = "fp32", workers: int | None = None) -> dict:
    from rustance.inference.engine import CorpusRunner, RunOptions, Summary, configure_threads
    from rustance.inference.predictor import load
    from rustance.inference.readers import Document

    workers, per_worker = configure_threads(workers)  # as `rustance predict` does (default: 2 workers here)
    with tempfile.TemporaryDirectory() as folder:
        shape_checkpoint(shape, folder, context)
        classifier = load(folder, batch_size=64, precision=precision)
        if backend != "torch":
            from rustance.inference.onnx_backend import export_onnx, load_onnx

            sample = sentences[:200]
            # random weights put labels near ties, so agreement is not enforced here (see precision_agreement.py)
            export_onnx(classifier, Path(folder) / "onnx", sample, [""] * len(sample),
                        int8=backend == "onnx-int8", min_agreement=0.0, log=lambda m: None)
            classifier = load_onnx(Path(folder) / "onnx", threads=per_worker)
    # documents of 5 sentences, one per line (a line break always ends a sentence), so the engine labels
    # exactly these sentences and the context (previous sentence) is real
    documents = [Document(f"d{i}", "\n".join(sentences[i : i + 5]), "bench", i) for i in range(0, len(sentences), 5)]
    runner = CorpusRunner(classifier, None, RunOptions(workers=workers))
    for _ in runner.stream(documents[:100], Summary()):  # warm-up, as the pipeline's first batches are
        pass
    summary = Summary()
    started = time.perf_counter()
    for _ in runner.stream(documents, summary):
        pass
    assert summary.sentences == len(sentences), (summary.sentences, len(sentences))
    return {"seconds": time.perf_counter() - started, "sentences_labelled": summary.sentences,
            "workers": workers, "threads_per_worker": per_worker}


def flops_limit(sentences: list[str], shape: Path) -> dict:
    """Sentences/s that the encoder's linear layers allow at the measured fp32 matmul speed (all threads)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from rustance.inputs import InputBuilder

    config = AutoConfig.from_pretrained(shape)
    tokenizer = AutoTokenizer.from_pretrained(shape)
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    flops_per_token = 2 * layers * (4 * h * h + 2 * h * ffn)
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    repeats, best = 20, float("inf")
    for _ in range(5):  # the best of five: other load on the machine only slows a trial down
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - started)
    gflops = 2 * 1024**3 * repeats / best / 1e9
    result = {"gflops": gflops}
    for key, use_context in (("sentence", False), ("pair", True)):
        inputs = InputBuilder(tokenizer, {"max_length": 128, "use_context": use_context})
        tokens = sum(len(item.ids) for item in inputs.encode(sentences, [""] + sentences[:-1])) / len(sentences)
        result[key] = {"tokens_per_sentence": tokens, "sentences_per_s": gflops * 1e9 / (flops_per_token * tokens)}
    return result


# variant: (row label, run_rustance arguments)
VARIANTS = {
    "limit": ("", None),
    "pipeline": ("(a) transformers pipeline, batch 32, sentence only", None),
    "fp32": ("(b) rustance PyTorch fp32, sentence only", {}),
    "fp32-1worker": ("(b) rustance PyTorch fp32, sentence only, 1 worker x 2 threads", {"workers": 1}),
    "fp32-pair": ("(b) rustance PyTorch fp32, context as a second segment (pair)", {"context": "pair"}),
    "fp32-pooled": ("(b) rustance PyTorch fp32, context encoded once (pooled)", {"context": "pooled"}),
    "bf16": ("(b) rustance PyTorch bf16 autocast, sentence only", {"precision": "bf16"}),
    "bf16-pair": ("(b) rustance PyTorch bf16 autocast, pair context", {"precision": "bf16", "context": "pair"}),
    "bf16-pooled": ("(b) rustance PyTorch bf16 autocast, pooled context", {"precision": "bf16", "context": "pooled"}),
    "onnx": ("(c) ONNX Runtime (fused graph), sentence only", {"backend": "onnx"}),
    "onnx-pair": ("(c) ONNX Runtime (fused graph), pair context", {"backend": "onnx", "context": "pair"}),
    "onnx-pooled": ("(c) ONNX Runtime (fused graph), pooled context", {"backend": "onnx", "context": "pooled"}),
    "onnx-int8": ("(d) ONNX Runtime int8, sentence only", {"backend": "onnx-int8"}),
    "onnx-int8-pair": ("(d) ONNX Runtime int8, pair context", {"backend": "onnx-int8", "context": "pair"}),
    "onnx-int8-pooled": ("(d) ONNX Runtime int8, pooled context", {"backend": "onnx-int8", "context": "pooled"}),
}


def median_run(found: list[dict]) -> dict:
    """The median of repeated runs of one variant (by time; the limit row by GFLOP/s), with the range of rates."""
    key = "seconds" if "seconds" in found[0] else "gflops"
    ordered = sorted(found, key=lambda run: run[key])
    result = dict(ordered[len(ordered) // 2])  # with an even count, the slower of the middle two
    result["all_seconds"] = [run.get("seconds") for run in found]
    return result


def emit(lines: list[str], out: Path | None) -> None:
    """Print a Markdown report and, with ``out``, write it there."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out:
        out.write_text(report, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--shape", type=Path, default=SHARED / "models" / "rubert-tiny2-shape")
    parser.add_argument("--corpora", type=Path, default=SHARED / "corpora")
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every variant this many times, rounds interleaved, and report the median")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    sentences = load_sentences(args.sentences, args.corpora)
    if args.variant:
        if args.variant == "pipeline":
            result = run_pipeline(sentences, args.shape)
        elif args.variant == "limit":
            result = flops_limit(sentences, args.shape)
        else:
            result = run_rustance(sentences, args.shape, **VARIANTS[args.variant][1])
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_ in range(args.repeats):  # whole rounds, so a slow spell on the machine hits every variant alike
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--variant", variant, "--sentences", str(args.sentences),
                       "--shape", str(args.shape), "--corpora", str(args.corpora)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[variant].append(json.loads(output.strip().splitlines()[-1]))
            print(f"round {round_ + 1}", variant, runs[variant][-1], flush=True)
    results = {variant: median_run(found) for variant, found in runs.items()}
    n = len(sentences)
    base = n / results["pipeline"]["seconds"]
    limit = results["limit"]
    lines = [f"# Corpus inference throughput ({n} Telegram sentences, rubert-tiny2 shape, random weights)", "",
             f"Command: `python benchmarks/throughput.py --sentences {args.sentences} --repeats {args.repeats}` on "
             f"{os.cpu_count()} cores; every variant in its own process, timed after a short warm-up, model loading "
             "not timed. rustance variants run the corpus engine (sentence splitting, tokenisation, output rows) "
             "with its default thread settings unless the row says otherwise. "
             f"Rates are the median of {args.repeats} run(s) per variant, in interleaved rounds; the last column "
             "gives the lowest and highest ratio to (a) within one round.", "",
             "| variant | sentences/s | × (a) | workers × threads | peak RSS MB | × (a) per round |",
             "| --- | --- | --- | --- | --- | --- |"]
    baseline_seconds = results["pipeline"]["all_seconds"]
    for key, (name, _) in VARIANTS.items():
        if key == "limit":
            continue
        rate = n / results[key]["seconds"]
        threads = f"{results[key]['workers']} × {results[key]['threads_per_worker']}" if "workers" in results[key] else ""
        ratios = [b / v for b, v in zip(baseline_seconds, results[key]["all_seconds"])]
        lines.append(f"| {name} | {rate:.0f} | {rate / base:.2f} | {threads} | {results[key]['peak_rss_mb']:.0f} | "
                     f"{min(ratios):.2f}–{max(ratios):.2f} |")
    lines += ["", f"Measured fp32 matmul: {limit['gflops']:.0f} GFLOP/s. The encoder's linear-layer FLOPs allow about "
              f"{limit['sentence']['sentences_per_s']:.0f} sentences/s for the sentence alone "
              f"({limit['sentence']['tokens_per_sentence']:.1f} tokens per input) and "
              f"{limit['pair']['sentences_per_s']:.0f}/s with the previous sentence as a second segment "
              f"({limit['pair']['tokens_per_sentence']:.1f} tokens), in fp32, before attention and other overhead. "
              "A pooled-context model encodes each sentence once, so its limit is the sentence-only one.",
              "", "Labels of the faster variants against fp32 PyTorch on a trained model: "
              "see `reports/precision-agreement.md` (random weights put labels near ties, so agreement is not "
              "measured here)."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
