"""Time `rustance summarize` over generated predict output in the real layout and report its peak memory.

    python benchmarks/summarize.py --rows 1000000 --threads 2 --report reports/benchmark-summarize.md

Writes ROWS sentence rows (Parquet parts of 5,000 rows, as `rustance predict` writes them, with `date` and
`channel` kept columns: 24 channels, Aug 2023 - Dec 2024, 1 % undated; 0-2 topics per sentence) into a temporary
folder, then runs `rustance summarize OUT --by month --by channel` (and once more with `--html`) in a child
process limited to THREADS DuckDB threads, and reports wall time and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rustance import __version__
from rustance.inference.engine import MANIFEST, output_schema
from rustance.labels import SENTIMENTS, STANCES, load_topics

WORDS = ("Москва Вашингтон санкции переговоры посольство рейсы диалог ограничения заявил министр готова "
         "требует ответные меры стороны вопрос").split()


def generate(folder: Path, rows: int, part_rows: int = 5_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    topics = [t.id for t in load_topics()]
    schema = output_schema().append(pa.field("date", pa.timestamp("us"))).append(pa.field("channel", pa.string()))
    topic_type = schema.field("topics").type.value_type
    start, span = np.datetime64("2023-08-01T00:00:00", "us"), np.timedelta64(518 * 24 * 3600, "s")
    parts = []
    for number, first in enumerate(range(0, rows, part_rows)):
        n = min(part_rows, rows - first)
        counts = rng.choice([0, 1, 2], size=n, p=[0.6, 0.3, 0.1])
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        m = int(offsets[-1])
        stance_p = rng.dirichlet(np.ones(len(STANCES)), size=m).astype(np.float32)
        entries = pa.StructArray.from_arrays(
            [pa.array(rng.choice(topics, size=m)), pa.array(np.array(STANCES)[stance_p.argmax(1)]),
             pa.array(rng.uniform(0.5, 1, size=m).astype(np.float32)),
             *[pa.array(stance_p[:, k]) for k in range(len(STANCES))]], fields=list(topic_type))
        sentiment_p = rng.dirichlet(np.ones(len(SENTIMENTS)), size=n).astype(np.float32)
        words = rng.choice(WORDS, size=(n, 14))
        dates = start + (rng.uniform(0, 1, size=n) * span.astype("timedelta64[us]").astype(np.int64)).astype(
            "timedelta64[us]")
        date_array = pa.array(dates, pa.timestamp("us"), mask=rng.uniform(size=n) < 0.01)
        columns = {
            "doc_id": pa.array([f"doc-{(first + i) // 5}" for i in range(n)]),
            "sentence_index": pa.array(np.arange(first, first + n, dtype=np.int32) % 5),
            "start": pa.array(np.zeros(n, dtype=np.int64)), "end": pa.array(np.full(n, 120, dtype=np.int64)),
            "sentence": pa.array([" ".join(w) + "." for w in words]),
            "topics": pa.ListArray.from_arrays(pa.array(offsets), entries),
            "sentiment": pa.array(np.array(SENTIMENTS)[sentiment_p.argmax(1)]),
            **{f"sentiment_{s}": pa.array(sentiment_p[:, k]) for k, s in enumerate(SENTIMENTS)},
            "truncated": pa.array(np.zeros(n, dtype=bool)), "model": pa.array(["benchmark (generated)"] * n),
            "rustance_version": pa.array([__version__] * n), "date": date_array,
            "channel": pa.array([f"channel_{c:02d}" for c in rng.integers(0, 24, size=n)]),
        }
        name = f"part-{number:05d}.parquet"
        pq.write_table(pa.table(columns, schema=schema), folder / name)
        (folder / f"_part-{number:05d}.rejects.jsonl").write_text("")
        parts.append({"name": name, "rejects": f"_part-{number:05d}.rejects.jsonl", "items": [first, first + n],
                      "rows": n, "documents": n // 5, "rejected": 0})
    manifest = {"fingerprint": {"model": "generated", "weights_sha256": "0" * 16}, "rustance": __version__,
                "parts": parts, "complete": True}
    (folder / MANIFEST).write_text(json.dumps(manifest))


PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print('peak-rss-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(done.returncode)")


def timed(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of a child process (measured by a fresh wrapper), and its output."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    output, _, peak = done.stderr.strip().rpartition("peak-rss-kb ")
    return seconds, int(peak) / 1024, output.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "labelled"
        out.mkdir()
        started = time.perf_counter()
        generate(out, args.rows)
        generated = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        cli = [sys.executable, "-m", "rustance.cli", "summarize", str(out), "--by", "month", "--by", "channel",
               "--threads", str(args.threads), "--out", str(Path(tmp) / "summary")]
        load = os.getloadavg()[0]
        tables = timed(cli)
        report = timed([*cli, "--html", str(Path(tmp) / "summary" / "report.html")])
        html_mb = (Path(tmp) / "summary" / "report.html").stat().st_size / 1e6
    lines = [
        "# summarize benchmark",
        "",
        f"Command: `python benchmarks/summarize.py --rows {args.rows} --threads {args.threads}"
        + (f" --report {args.report}`" if args.report else "`"),
        "",
        f"{args.rows:,} generated output rows in the predict layout ({size:.0f} MB of Parquet in "
        f"{-(-args.rows // 5000)} parts, generated in {generated:.0f} s), `--by month --by channel`, DuckDB limited "
        f"to {args.threads} threads, each run in a fresh process (wall time includes starting Python); the "
        f"machine has {os.cpu_count()} cores, shared (1-minute load average {load:.1f} when the runs started):",
        "",
        "| run | wall time | peak RSS |",
        "| --- | --- | --- |",
        f"| tables (summary + volume, Parquet + CSV) | {tables[0]:.1f} s | {tables[1]:.0f} MB |",
        f"| tables + `--html` report ({html_mb:.1f} MB) | {report[0]:.1f} s | {report[1]:.0f} MB |",
        "",
        "Peak RSS is the `rustance summarize` process's maximum resident set size (`getrusage` in a fresh",
        "wrapper process per run). Printed summary of the tables run:",
        "",
        "```",
        tables[2],
        "```",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
