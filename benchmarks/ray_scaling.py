"""Ray engine scaling: the same corpus through the local engine and through Ray with 1 and 2 actors.

Documents are Telegram news posts from ../shared/corpora (written to a temporary JSONL file, never to the
repo); the model is a rustance checkpoint with the default rubert-tiny2 shape and random weights (speed, not
quality). Each variant runs in its own process; wall time includes Ray start-up and model loading per actor,
as a user would see it. Also reports the driver's peak RSS.

    python benchmarks/ray_scaling.py --documents 4000 --out reports/benchmark-ray.md
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_corpus(path: Path, n: int, corpora: Path) -> int:
    from rustance.corpora import iter_documents
    from rustance.text import split_sentences

    sentences = 0
    with open(path, "w", encoding="utf-8") as out:
        for i, (doc_id, text) in enumerate(iter_documents("telegram_news", corpora)):
            if i >= n:
                break
            out.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
            sentences += len(split_sentences(text))
    return sentences


def run_variant(variant: str, model: Path, corpus: Path, out: Path) -> dict:
    from typer.testing import CliRunner

    from rustance.cli import app

    args = ["predict", "--model", str(model), str(corpus), "--output", str(out)]
    if variant != "local":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        args += ["--engine", "ray", "--num-actors", variant.split("-")[1]]
    started = time.perf_counter()
    result = CliRunner().invoke(app, args)
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    return {"seconds": seconds, "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--shape", type=Path, default=SHARED / "models" / "rubert-tiny2-shape")
    parser.add_argument("--corpora", type=Path, default=SHARED / "corpora")
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        result = run_variant(args.variant, args.workdir / "model", args.workdir / "corpus.jsonl",
                             args.workdir / f"out-{args.variant}")
        print(json.dumps(result))
        return
    from throughput import emit, shape_checkpoint

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sentences = write_corpus(work / "corpus.jsonl", args.documents, args.corpora)
        shape_checkpoint(args.shape, work / "model")
        for variant in ("local", "ray-1", "ray-2"):
            command = [sys.executable, __file__, "--variant", variant, "--workdir", str(work)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
            print(variant, results[variant], flush=True)
    lines = [f"# Ray engine scaling ({args.documents} Telegram posts, {sentences} sentences, rubert-tiny2 shape, "
             "random weights, 2-core machine)", "",
             f"Command: `python benchmarks/ray_scaling.py --documents {args.documents}`", "",
             "| engine | wall s | sentences/s | × local | driver peak RSS MB |", "| --- | --- | --- | --- | --- |"]
    names = {"local": "local engine (default)", "ray-1": "Ray, 1 actor", "ray-2": "Ray, 2 actors"}
    for variant, r in results.items():
        lines.append(f"| {names[variant]} | {r['seconds']:.1f} | {sentences / r['seconds']:.0f} | "
                     f"{results['local']['seconds'] / r['seconds']:.2f} | {r['driver_peak_rss_mb']:.0f} |")
    lines += ["", "Wall time includes starting Ray and loading the model in each actor."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
