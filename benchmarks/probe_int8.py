"""Probe: does torch dynamic int8 quantisation pay off for the corpus engine?

Prints (1) engine speed with and without dynamic int8 on the rubert-tiny2 shape (random weights, with
context, 4,000 Telegram sentences) and (2) how often a quantised trained model's labels agree with the fp32
model on a labelled file. Speed alone is not enough: labels must agree (the ONNX export demands >= 99 %).

    python benchmarks/probe_int8.py --model runs/e5-small --check data/stance/dev.jsonl
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SHARED, load_sentences, shape_checkpoint  # noqa: E402

from rustance.inference.engine import CorpusRunner, RunOptions, Summary  # noqa: E402
from rustance.inference.predictor import agreement_with  # noqa: E402
from rustance.inference.predictor import load  # noqa: E402
from rustance.inference.readers import Document  # noqa: E402
from rustance.records import load_records  # noqa: E402


def quantised(classifier):
    classifier.model = torch.ao.quantization.quantize_dynamic(classifier.model, {torch.nn.Linear}, dtype=torch.qint8)
    return classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="trained model for the agreement check")
    parser.add_argument("--check", type=Path, default=Path("data/stance/dev.jsonl"))
    parser.add_argument("--sentences", type=int, default=4000)
    args = parser.parse_args()
    sentences = load_sentences(args.sentences, SHARED / "corpora")
    documents = [Document(f"d{i}", "\n".join(sentences[i : i + 5]), "probe", i) for i in range(0, len(sentences), 5)]
    with tempfile.TemporaryDirectory() as folder:
        shape_checkpoint(SHARED / "models" / "rubert-tiny2-shape", folder)
        for name in ("fp32", "int8"):
            classifier = load(folder, batch_size=64)
            if name == "int8":
                classifier = quantised(classifier)
            started = time.perf_counter()
            for _ in CorpusRunner(classifier, None, RunOptions()).stream(documents, Summary()):
                pass
            print(f"{name}: {len(sentences) / (time.perf_counter() - started):.0f} sentences/s (rubert-tiny2 shape)")
    if args.model:
        reference = load(args.model)
        records = load_records(args.check, reference.topics)
        share = agreement_with(reference, quantised(load(args.model)), [r.text for r in records], [r.context for r in records])
        print(f"int8 labels agree with fp32 on {100 * share:.1f} % of {len(records)} sentences of {args.check}")


if __name__ == "__main__":
    main()
