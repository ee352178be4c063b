"""Peak memory of `rustance predict` must not grow with corpus size.

Runs the CLI in a subprocess on synthetic corpora of N1 and N2 sentences (real Telegram sentences,
repeated) with a small model, and reports each run's peak RSS (ru_maxrss of the child) and their ratio.

    python benchmarks/memory.py --small 10000 --large 200000 --out reports/benchmark-memory.md
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SHARED, load_sentences, shape_checkpoint  # noqa: E402


def run(model: Path, sentences: list[str], n: int, folder: Path) -> dict:
    data = folder / f"corpus-{n}.jsonl"
    with open(data, "w", encoding="utf-8") as handle:
        for i in range(0, n, 5):  # documents of five sentences, one per line
            text = "\n".join(sentences[(i + k) % len(sentences)] for k in range(min(5, n - i)))
            handle.write(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rustance.cli", "predict", "--model", str(model), str(data),
                    "--output", str(folder / f"out-{n}")], check=True, capture_output=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all waited-for children: run the small corpus first
    return {"sentences": n, "seconds": seconds, "peak_rss_mb": peak / 1024, "grew_from_mb": before / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path,
                        help="rustance model folder (default: rubert-tiny2 shape with random weights)")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sentences = load_sentences(5000, SHARED / "corpora")
    with tempfile.TemporaryDirectory() as folder:
        model = args.model
        if model is None:
            model = Path(folder) / "model"
            shape_checkpoint(SHARED / "models" / "rubert-tiny2-shape", model)
        small = run(model, sentences, args.small, Path(folder))
        large = run(model, sentences, args.large, Path(folder))
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    command = " ".join(["python benchmarks/memory.py", *sys.argv[1:]])
    report = (f"# Peak memory of `rustance predict` vs corpus size\n\nCommand: `{command}` (default model: "
              "rubert-tiny2 shape, random weights)\n\n| sentences | seconds | peak RSS MB |\n"
              f"| --- | --- | --- |\n| {small['sentences']} | {small['seconds']:.0f} | {small['peak_rss_mb']:.0f} |\n"
              f"| {large['sentences']} | {large['seconds']:.0f} | {large['peak_rss_mb']:.0f} |\n\n"
              f"Ratio of peaks: {ratio:.2f} (the large run's peak is at least the small one's, as ru_maxrss of "
              "children is a running maximum).\n")
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
