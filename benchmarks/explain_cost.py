"""What `rustance predict --explain` costs per sentence, against a plain run measured in the same run.

    python benchmarks/explain_cost.py --model runs/e5-3l --sentences 300 --repeats 2 \
        --report reports/explain-cost.md

Takes whole Telegram posts (../shared/corpora/telegram_news, evenly spaced over the corpus) until they hold
``--sentences`` sentences, loads the model once, and labels them with the corpus engine into an output
folder (what `rustance predict --output` runs, model loading excepted) without explanations and with each
``--methods`` explanation method, in interleaved rounds (a slow spell on the shared machine hits every variant
alike); the report gives the median time per sentence of every variant, its ratio to the plain run of the
same round, and the time per explained sentence (one with at least one topic: only those are explained).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def load_documents(n_sentences: int, corpora: Path) -> list:
    """Evenly spaced posts of the Telegram corpus holding about ``n_sentences`` sentences in all."""
    from rustance.corpora import iter_documents
    from rustance.inference.readers import Document
    from rustance.text import split_sentences

    posts = list(iter_documents("telegram_news", corpora))
    step = max(1, len(posts) // max(1, n_sentences // 3))
    documents, sentences = [], 0
    for start in range(step):  # a second pass (offset by one) only if the first did not hold enough
        for i in range(start, len(posts), step):
            doc_id, text = posts[i]
            documents.append(Document(doc_id, text, "telegram_news", i))
            sentences += len(split_sentences(text))
            if sentences >= n_sentences:
                return documents
    return documents


def run_once(classifier, documents: list, explain, workers: int) -> dict:
    from rustance.inference.engine import CorpusRunner, RunOptions, iter_rows

    with tempfile.TemporaryDirectory() as folder:
        runner = CorpusRunner(classifier, Path(folder) / "out", RunOptions(workers=workers, explain=explain),
                              {"benchmark": "explain_cost"}, "bench")
        started = time.perf_counter()
        summary = runner.run(documents)
        seconds = time.perf_counter() - started
        rows = list(iter_rows(Path(folder) / "out"))
    topics = sum(len(r["topics"]) for r in rows)
    return {"seconds": seconds, "sentences": summary.sentences, "with_topic": sum(bool(r["topics"]) for r in rows),
            "topics": topics, "words_listed": sum(len(t.get("words") or []) for r in rows for t in r["topics"])}


def main() -> None:
    from rustance import load
    from rustance.explain import ExplainMethod, words_of
    from rustance.inference.engine import configure_threads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--corpora", type=Path, default=SHARED / "corpora")
    parser.add_argument("--methods", nargs="+", choices=[m.value for m in ExplainMethod], default=["occlusion"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    workers, per_worker = configure_threads()  # what `rustance predict` uses by default
    classifier = load(args.model, batch_size=64)
    documents = load_documents(args.sentences, args.corpora)
    variants = {"plain": None, **{m: ExplainMethod(m) for m in args.methods}}
    run_once(classifier, documents[:5], None, workers)  # warm-up, not timed
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(args.repeats):
        for name, explain in variants.items():
            threads = workers if explain is not ExplainMethod.INTEGRATED_GRADIENTS else 1  # as predict picks
            if threads != workers:
                configure_threads(1)
            runs[name].append(run_once(classifier, documents, explain, threads))
            if threads != workers:
                configure_threads(workers)
            print(f"round {round_ + 1} {name}: {runs[name][-1]}", flush=True)

    first = runs["plain"][0]
    n, with_topic = first["sentences"], first["with_topic"]
    from rustance.inference.engine import document_sentences

    words = [len(words_of(s[4])) for d in documents for s in document_sentences(d)]
    plain = statistics.median(r["seconds"] for r in runs["plain"])
    lines = [
        "# Cost of `rustance predict --explain`",
        "",
        f"Command: `python benchmarks/explain_cost.py --model {args.model} --sentences {args.sentences} --repeats "
        f"{args.repeats} --methods {' '.join(args.methods)}" + (f" --report {args.report}`" if args.report else "`"),
        "",
        f"Model: `{args.model}` ({classifier.settings.get('base_model', '?')}, "
        f"{getattr(classifier.model.config.encoder_config, 'num_hidden_layers', '?')} layers). Input: {len(documents)} "
        f"Telegram posts (evenly spaced over ../shared/corpora/telegram_news), {n} sentences ({statistics.mean(words):.1f} "
        f"words on average); {with_topic} of them ({100 * with_topic / n:.0f} %) are about at least one topic "
        f"({first['topics']} sentence-topic pairs) and are the ones explained. Corpus engine into an output folder "
        f"as `rustance predict --output` runs it ({workers} labelling thread(s) × {per_worker} on {os.cpu_count()} "
        "shared cores; Integrated Gradients: 1 thread × all, as predict picks for it), model loaded once, not "
        f"timed. Median of {args.repeats} interleaved round(s); the ratio is to the plain run of the same round.",
        "",
        "| run | seconds | ms per sentence | × plain (per round) | ms per explained sentence | words listed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, found in runs.items():
        seconds = statistics.median(r["seconds"] for r in found)
        ratios = [r["seconds"] / p["seconds"] for r, p in zip(found, runs["plain"])]
        extra = (f"{1000 * (seconds - plain) / max(with_topic, 1):.0f} (extra over plain)"
                 if name != "plain" else "")
        label = "plain (no --explain)" if name == "plain" else f"--explain --explain-method {name}"
        lines.append(f"| {label} | {seconds:.1f} | {1000 * seconds / n:.1f} | "
                     f"{statistics.median(ratios):.1f} ({', '.join(f'{r:.1f}' for r in ratios)}) | {extra} | "
                     f"{found[0]['words_listed'] if name != 'plain' else ''} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
