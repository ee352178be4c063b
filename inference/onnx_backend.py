"""Optional ONNX Runtime backend: export a trained model, check it agrees, run it in the engine.

    rustance export-onnx --model runs/m --out runs/m-onnx [--int8] [--check data/stance/dev.jsonl]

The export refuses to leave a model whose labels agree with the PyTorch model on fewer than 99 % of the
check sentences. A pooled-context model is exported as two graphs: ``model.onnx`` (tokens → pooled vector,
run once per distinct sentence) and ``heads.onnx`` (sentence and context vectors → logits).
Needs ``pip install rustance[onnx]`` (onnx, onnxruntime).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer

from rustance.inference.predictor import Classifier, agreement_with
from rustance.model import ModelLoadError, load_config

ONNX_FILE = "model.onnx"
HEADS_FILE = "heads.onnx"  # only for ``context_mode: pooled`` models, whose model.onnx gives pooled vectors
OUTPUTS = ("topic_logits", "stance_logits", "sentiment_logits")
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Outputs(nn.Module):
    """Tuple outputs for the exporter: the full model, or only its pooled vectors."""

    def __init__(self, model: nn.Module, with_types: bool, vectors_only: bool):
        super().__init__()
        self.model, self.with_types, self.vectors_only = model, with_types, vectors_only

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                  "token_type_ids": token_type_ids if self.with_types else None}
        if self.vectors_only:
            return self.model.vectors(**inputs)
        out = self.model(**inputs)
        return tuple(out[k] for k in OUTPUTS)


class _Heads(nn.Module):
    """The heads alone (pooled-context models): features of sentence and context → logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features):
        out = self.model.heads(features)
        return tuple(out[k] for k in OUTPUTS)


class OnnxModel:
    """Duck-types the parts of :class:`rustance.model.StanceModel` that inference uses."""

    def __init__(self, folder: Path, threads: int | None = None):
        import onnxruntime as ort

        self.config = load_config(folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.lexical = None  # a fused model's TF-IDF part, exported beside the graph (rustance.lexical)
        if self.config.fusion:
            from rustance.lexical import LexicalModelError, find_lexical

            try:
                self.lexical = find_lexical(folder)
            except LexicalModelError as exc:
                raise ModelLoadError(str(exc)) from exc
        self.head_session = None
        if (folder / HEADS_FILE).is_file():
            self.head_session = ort.InferenceSession(str(folder / HEADS_FILE), options,
                                                     providers=["CPUExecutionProvider"])

    def to(self, device):
        return self

    def eval(self):
        return self

    def _feed(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {k: v.numpy().astype(np.int64) for k, v in batch.items() if k in self.inputs}

    @staticmethod
    def _logits(session, feed: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in zip(OUTPUTS, session.run(list(OUTPUTS), feed))}

    def __call__(self, **batch) -> dict[str, torch.Tensor]:
        return self._logits(self.session, self._feed(batch))

    def vectors(self, **batch) -> torch.Tensor:
        return torch.from_numpy(self.session.run(["vector"], self._feed(batch))[0])

    def heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._logits(self.head_session, {"features": features.float().numpy()})


def load_onnx(folder: str | Path, batch_size: int = 64, threads: int | None = None):
    """A :class:`Classifier` running on ONNX Runtime from an exported folder."""
    folder = Path(folder)
    if not (folder / ONNX_FILE).is_file():
        raise ModelLoadError(f"{folder} has no {ONNX_FILE}; create it with `rustance export-onnx`")
    return Classifier(OnnxModel(folder, threads), AutoTokenizer.from_pretrained(folder), batch_size=batch_size)


def _fuse(path: Path, config, log=print) -> None:
    """Fuse attention, layer-norm and GELU subgraphs into ONNX Runtime's transformer kernels, in place."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size)
        optimized.save_model_to_file(str(path))
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        log(f"fused operators: {fused}")
    except Exception as exc:  # an architecture the fusion does not know: keep the plain graph
        log(f"transformer graph fusion skipped ({type(exc).__name__}: {exc})")


def export_onnx(reference, out_dir: str | Path, texts: list[str], contexts: list[str],
                int8: bool = False, min_agreement: float = 0.99, log=print) -> float:
    """Export ``reference`` (a PyTorch :class:`Classifier`), optionally quantise it (dynamic int8), and keep
    the result only if its labels agree with the reference on at least ``min_agreement`` of ``texts``."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; choose a new --out")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pooled = reference.inputs.pooled_context
    sample, _ = reference.inputs(["Пример предложения для экспорта."], ["Контекст."])
    names = [n for n in TOKEN_INPUTS if n in sample]
    outputs = ["vector"] if pooled else list(OUTPUTS)
    dynamic = {n: {0: "batch", 1: "tokens"} for n in names}
    dynamic.update({n: {0: "batch"} for n in outputs})
    wrapper = _Outputs(reference.model, "token_type_ids" in names, vectors_only=pooled).eval()
    encoder = reference.model.encoder
    previous = encoder.config._attn_implementation
    encoder.set_attn_implementation("eager")  # the attention pattern ONNX Runtime's fusion recognises
    try:
        with torch.no_grad():
            torch.onnx.export(wrapper, tuple(sample[n] for n in names), str(tmp / ONNX_FILE), input_names=names,
                              output_names=outputs, dynamic_axes=dynamic, opset_version=17, dynamo=False)
            if pooled:
                vector = wrapper(*(sample[n] for n in names))  # one sentence's vector (its width depends on the pooling)
                features = torch.cat([vector, vector], dim=-1)  # the sentence's and its context's
                torch.onnx.export(_Heads(reference.model).eval(), (features,), str(tmp / HEADS_FILE),
                                  input_names=["features"], output_names=list(OUTPUTS),
                                  dynamic_axes={n: {0: "batch"} for n in ("features", *OUTPUTS)},
                                  opset_version=17, dynamo=False)
    finally:
        encoder.set_attn_implementation(previous)
    _fuse(tmp / ONNX_FILE, reference.model.config, log)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(tmp / ONNX_FILE), str(tmp / "model.int8.onnx"), weight_type=QuantType.QInt8,
                         per_channel=True, extra_options={"DefaultTensorType": 1})  # 1 = FLOAT
        (tmp / "model.int8.onnx").replace(tmp / ONNX_FILE)
    reference.model.config.save_pretrained(tmp)
    if reference.lexical is not None:  # a fused model: its TF-IDF part runs beside the graph
        from rustance.lexical import save_lexical

        save_lexical(reference.lexical, tmp)
    reference.tokenizer.save_pretrained(tmp)
    score = agreement_with(reference, load_onnx(tmp), texts, contexts)
    log(f"labels agree with the PyTorch model on {100 * score:.2f} % of {len(texts)} sentences")
    if score < min_agreement:
        shutil.rmtree(tmp)
        raise ValueError(f"agreement {100 * score:.2f} % is below the required {100 * min_agreement:.0f} %; "
                         "no ONNX model written")
    tmp.rename(out_dir)
    return score
