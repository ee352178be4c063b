"""Do the fast variants label like the fp32 PyTorch model? Measured on a trained model and a labelled file.

For torch bf16 autocast, ONNX Runtime (fused graph) and ONNX Runtime int8, prints the share of sentences whose
labels (topics, their stances, sentiment) equal those of fp32 PyTorch, and each variant's scores on the file.
Random weights (the throughput benchmark) put labels near ties, so agreement is measured here instead.
With ``--corpus-sentences N`` agreement is also measured on N unlabelled Telegram sentences (each with its
previous sentence), the kind of text a corpus run labels. With ``--sensitivity`` it also measures how fragile
the labels are to int8 rounding alone: the linear weights rounded to int8 per output channel (activations
kept fp32, simulated in PyTorch), and ONNX int8 with one MatMul/Attention node quantised at a time.

    python benchmarks/precision_agreement.py --model runs/e5-small --data data/stance/dev.jsonl \
        --out reports/precision-agreement.md
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SHARED, emit, load_sentences  # noqa: E402


def int8_rounded_weights(model_dir: Path):
    """The model with every encoder linear weight rounded to int8 per output channel (symmetric), in fp32."""
    import torch

    from rustance.inference.predictor import load

    classifier = load(model_dir)
    with torch.no_grad():
        for module in classifier.model.encoder.modules():
            if isinstance(module, torch.nn.Linear):
                scale = module.weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
                module.weight.copy_(torch.round(module.weight / scale) * scale)
    return classifier


def one_node_int8(onnx_dir: Path, work: Path) -> Iterator[tuple[str, Path]]:
    """A copy of an exported (unquantised) folder with one MatMul or Attention node dynamically quantised, for
    each such node in turn (each copy is deleted once the next is asked for: a 12-layer model has 48 nodes)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rustance.inference.onnx_backend import ONNX_FILE

    graph = onnx.load(str(onnx_dir / ONNX_FILE)).graph
    weights = {tensor.name for tensor in graph.initializer}
    nodes = [n.name for n in graph.node if n.op_type == "Attention" or (n.op_type == "MatMul" and n.input[1] in weights)]
    for i, name in enumerate(nodes):
        folder = work / f"one-node-{i}"
        shutil.copytree(onnx_dir, folder)
        quantize_dynamic(str(onnx_dir / ONNX_FILE), str(folder / ONNX_FILE), weight_type=QuantType.QInt8,
                         per_channel=True, nodes_to_exclude=[n for n in nodes if n != name],
                         extra_options={"DefaultTensorType": 1})
        yield name, folder
        shutil.rmtree(folder)


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
    parser.add_argument("--corpus-sentences", type=int, default=0,
                        help="also measure agreement on this many Telegram sentences (unlabelled)")
    parser.add_argument("--sensitivity", action="store_true", help="also measure int8 rounding one part at a time")
    args = parser.parse_args()
    reference = load(args.model)
    records = load_records(args.data, reference.topics, args.corpora)
    texts, contexts = [r.text for r in records], [r.context for r in records]
    variants = {"fp32 PyTorch (reference)": reference, "bf16 autocast PyTorch": load(args.model, precision="bf16")}
    corpus = load_sentences(args.corpus_sentences, args.corpora) if args.corpus_sentences else []
    corpus_contexts = [""] + corpus[:-1]  # consecutive sentences of the corpus: each one's previous sentence
    options = "".join([f" --corpus-sentences {args.corpus_sentences}" if corpus else "",
                       " --sensitivity" if args.sensitivity else ""])
    corpus_column = f" | same labels on {len(corpus)} Telegram sentences" if corpus else ""
    with tempfile.TemporaryDirectory() as folder:
        for name, int8 in (("ONNX Runtime, fused graph", False), ("ONNX Runtime int8", True)):
            out = Path(folder) / name.replace(" ", "_").replace(",", "")
            export_onnx(reference, out, texts[:64], contexts[:64], int8=int8, min_agreement=0.0, log=lambda m: None)
            variants[name] = load_onnx(out)
        if args.sensitivity:
            variants["fp32 PyTorch, linear weights rounded to int8 per channel (activations fp32)"] = (
                int8_rounded_weights(args.model))
        lines = [f"# Labels of the fast variants against fp32 PyTorch ({args.model.name}, {len(records)} sentences "
                 f"of {args.data})", "",
                 f"Command: `python benchmarks/precision_agreement.py --model {args.model} --data {args.data}"
                 f"{options}`", "",
                 f"| variant | same labels as fp32{corpus_column} | overall macro F1 | topic | stance | joint | sentiment |",
                 "| --- | --- |" + (" --- |" if corpus else "") + " --- | --- | --- | --- | --- |"]
        for name, classifier in variants.items():
            agree = agreement_with(reference, classifier, texts, contexts)
            on_corpus = (f" | {100 * agreement_with(reference, classifier, corpus, corpus_contexts):.1f} %"
                         if corpus else "")
            scores = headline(evaluate_records(classifier, records))
            lines.append(f"| {name} | {100 * agree:.1f} %{on_corpus} | "
                         + " | ".join(f"{v:.3f}" for v in scores.values()) + " |")
            print(lines[-1], flush=True)
        if args.sensitivity:
            lines += ["", "ONNX int8 with a single node quantised (all others fp32), labels equal to fp32 on the "
                      "check file:", "", "| quantised node | same labels as fp32 |", "| --- | --- |"]
            unquantised = Path(folder) / "ONNX_Runtime_fused_graph"
            for node, out in one_node_int8(unquantised, Path(folder)):
                agree = agreement_with(reference, load_onnx(out), texts, contexts)
                lines.append(f"| `{node}` | {100 * agree:.1f} % |")
                print(lines[-1], flush=True)
    lines += ["", "`rustance export-onnx` refuses to write a model whose labels agree with fp32 on fewer than 99 % "
              "of its check file; bf16 has no such gate, so check it here before using `--precision bf16`."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
