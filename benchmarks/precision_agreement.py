"""Do the fast variants label like the fp32 PyTorch model? Measured on a trained model and a labelled file.

For torch bf16 autocast, ONNX Runtime (fused graph) and ONNX Runtime int8, prints the share of sentences whose
labels (topics, their stances, sentiment) equal those of fp32 PyTorch, and each variant's scores on the file.
Random weights (the throughput benchmark) put labels near ties, so agreement is measured here instead.

    python benchmarks/precision_agreement.py --model runs/e5-small --data data/stance/dev.jsonl \
        --out reports/precision-agreement.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SHARED, emit  # noqa: E402


def main() -> None:
    from rustance.inference.onnx_backend import export_onnx, load_onnx
    from rustance.inference.predictor import agreement_with, load
    from rustance.metrics import headline
    from rustance.records import load_records
    from rustance.train.trainer import evaluate_records

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model trained with `rustance train`")
    parser.add_argument("--data", type=Path, default=Path("data/stance/dev.jsonl"))
    parser.add_argument("--corpora", type=Path, default=SHARED / "corpora")
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    args = parser.parse_args()
    reference = load(args.model)
    records = load_records(args.data, reference.topics, args.corpora)
    texts, contexts = [r.text for r in records], [r.context for r in records]
    variants = {"fp32 PyTorch (reference)": reference, "bf16 autocast PyTorch": load(args.model, precision="bf16")}
    with tempfile.TemporaryDirectory() as folder:
        for name, int8 in (("ONNX Runtime, fused graph", False), ("ONNX Runtime int8", True)):
            out = Path(folder) / name.replace(" ", "_").replace(",", "")
            export_onnx(reference, out, texts[:64], contexts[:64], int8=int8, min_agreement=0.0, log=lambda m: None)
            variants[name] = load_onnx(out)
        lines = [f"# Labels of the fast variants against fp32 PyTorch ({args.model.name}, {len(records)} sentences "
                 f"of {args.data})", "",
                 f"Command: `python benchmarks/precision_agreement.py --model {args.model} --data {args.data}`", "",
                 "| variant | same labels as fp32 | overall macro F1 | topic | stance | joint | sentiment |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, classifier in variants.items():
            agree = agreement_with(reference, classifier, texts, contexts)
            scores = headline(evaluate_records(classifier, records))
            lines.append(f"| {name} | {100 * agree:.1f} % | " + " | ".join(f"{v:.3f}" for v in scores.values()) + " |")
            print(lines[-1], flush=True)
    lines += ["", "`rustance export-onnx` refuses to write a model whose labels agree with fp32 on fewer than 99 % "
              "of its check file; bf16 has no such gate, so check it here before using `--precision bf16`."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
