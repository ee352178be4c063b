"""Screen (issue 15): a topic-conditioned input for stance, in the two-stage form.

The default model reads a sentence once and every topic's stance comes from that one pass (topic-attention
pooling). Here stance is scored by a second encoder that reads the *topic description and the sentence as a
pair* ("query: <description>" / "<sentence>"), run only on the topics the default model detects. The pair
encoder is a Hugging Face ``AutoModelForSequenceClassification`` cut to the same budget as the study (the
config's ``model.num_layers``, embeddings and lowest ``train.freeze_layers`` layers frozen, bf16 autocast,
``train.epochs``), trained by ``transformers.Trainer`` with class-balanced cross-entropy on the gold
(sentence, topic) stance pairs of the training file, its softmax temperature fitted on dev.

Three systems are scored on dev and test with :func:`rustance.metrics.score` (the ``evaluate`` metrics):
* the detector alone (``--detector``, a fused default run);
* its topics, stance from the pair encoder;
* its topics, stance from ``w x pair + (1 - w) x detector``, ``w`` chosen on dev stance-given-topic macro-F1.
Topic decisions are the detector's in all three, so topic F1 and the context-slice recall do not change; the
question is stance and joint. The cost is measured on test sentences: the detector alone against the detector
plus one pair pass per detected topic, in sentences per second, in the same run.

    python benchmarks/topic_pair_study.py --detector FUSED_RUN --config configs/e5-small-offline.yaml \
        --seed 1 --runs /work/runs/topic-pair --out reports/topic-pair-screen.md
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from datasets import Dataset
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)
from transformers.modeling_outputs import SequenceClassifierOutput

from rustance import load
from rustance.labels import STANCES
from rustance.metrics import Labels, decode_labels, score
from rustance.records import load_records
from rustance.train.trainer import fit_temperature, record_labels


class MeanPooledPairClassifier(torch.nn.Module):
    """The encoder, mean pooling over the pair's tokens (how e5 was trained to embed) and a linear stance layer;
    ``--pooling cls`` uses ``AutoModelForSequenceClassification`` (the [CLS] token through BERT's pooler)."""

    def __init__(self, name: str, num_labels: int, **extra):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(name, add_pooling_layer=False, **extra)
        self.dropout = torch.nn.Dropout(0.1)
        self.classifier = torch.nn.Linear(self.encoder.config.hidden_size, num_labels)
        self.base_model_prefix = "encoder"

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


class BalancedTrainer(Trainer):
    """``Trainer`` with class-balanced cross-entropy (the rare stances weigh as much as the common ones)."""

    def __init__(self, *args, class_weights: torch.Tensor, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels,
                                                 weight=self.class_weights.to(outputs.logits.device))
        return (loss, outputs) if return_outputs else loss


def gold_pairs(records, descriptions: dict[str, str]) -> tuple[list[tuple[int, str]], list[int]]:
    pairs, labels = [], []
    for i, r in enumerate(records):
        for t, stance in r.topics.items():
            if t in descriptions:
                pairs.append((i, t))
                labels.append(STANCES.index(stance))
    return pairs, labels


def encode(tokenizer, records, pairs, descriptions, prefix: str, max_length: int) -> dict:
    first = [prefix + descriptions[t] for _, t in pairs]
    second = [records[i].text for i, _ in pairs]
    return tokenizer(first, second, truncation="only_second", max_length=max_length)


@torch.inference_mode()
def pair_logits(model, tokenizer, records, pairs, descriptions, prefix, max_length, batch_size=64) -> np.ndarray:
    """Stance logits of (sentence, topic) pairs, batched by length."""
    if not pairs:
        return np.zeros((0, len(STANCES)), dtype=np.float32)
    encoded = encode(tokenizer, records, pairs, descriptions, prefix, max_length)
    order = np.argsort([len(ids) for ids in encoded["input_ids"]])
    collator = DataCollatorWithPadding(tokenizer)
    out = np.zeros((len(pairs), len(STANCES)), dtype=np.float32)
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = collator([{k: encoded[k][i] for k in encoded} for i in idx])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out[idx] = model(**batch).logits.float().numpy()
    return out


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = x / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def train_pair_model(cfg: dict, records, descriptions, seed: int, out: Path, log, pooling: str = "mean") -> tuple:
    model_cfg, train_cfg = cfg["model"], cfg["train"]
    name = model_cfg["name"]
    tokenizer = AutoTokenizer.from_pretrained(name)
    extra = {"num_hidden_layers": model_cfg["num_layers"]} if model_cfg.get("num_layers") else {}
    torch.manual_seed(seed)  # the new stance layer's initialisation
    if pooling == "mean":
        model = MeanPooledPairClassifier(name, len(STANCES), **extra)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=len(STANCES), **extra)
    base = getattr(model, model.base_model_prefix)
    if train_cfg.get("freeze_embeddings"):
        base.embeddings.word_embeddings.weight.requires_grad_(False)
    for layer in base.encoder.layer[: int(train_cfg.get("freeze_layers") or 0)]:
        layer.requires_grad_(False)
    prefix, max_length = model_cfg.get("text_prefix") or "", int(model_cfg.get("max_length", 128)) + 32
    pairs, labels = gold_pairs(records, descriptions)
    encoded = encode(tokenizer, records, pairs, descriptions, prefix, max_length)
    dataset = Dataset.from_dict({**encoded, "labels": labels, "length": [len(i) for i in encoded["input_ids"]]})
    counts = np.bincount(labels, minlength=len(STANCES)).astype(float)
    weights = torch.tensor(counts.sum() / (len(STANCES) * np.maximum(counts, 1)), dtype=torch.float32)
    log(f"pair encoder: {len(pairs)} training pairs, stance counts {dict(zip(STANCES, counts.astype(int)))}")
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("classifier")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("classifier")]
    optimizer = torch.optim.AdamW([
        {"params": body, "lr": float(train_cfg["learning_rate"]), "weight_decay": float(train_cfg["weight_decay"])},
        {"params": head, "lr": float(train_cfg["head_learning_rate"]), "weight_decay": 0.0},
    ])
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=float(train_cfg["epochs"]),
        per_device_train_batch_size=int(train_cfg["batch_size"]), warmup_steps=float(train_cfg["warmup_ratio"]),
        bf16=bool(train_cfg.get("bf16")), use_cpu=True, train_sampling_strategy="group_by_length", length_column_name="length", save_strategy="no",
        logging_steps=50, report_to=[], seed=seed, dataloader_num_workers=0,
    )
    trainer = BalancedTrainer(model=model, args=args, train_dataset=dataset, class_weights=weights,
                              data_collator=DataCollatorWithPadding(tokenizer), optimizers=(optimizer, None))
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    torch.save(model.state_dict(), out / "pair-model.pt")  # a study artefact, not a product checkpoint
    return model, tokenizer, prefix, max_length, len(pairs), seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", required=True, help="a fused default run (topics and the stance it blends)")
    parser.add_argument("--config", default="configs/e5-small-offline.yaml")
    parser.add_argument("--train", default="data/stance/train.jsonl")
    parser.add_argument("--dev", default="data/stance/dev.jsonl")
    parser.add_argument("--test", default="data/stance/test.jsonl")
    parser.add_argument("--corpora", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pooling", choices=["mean", "cls"], default="mean",
                        help="how the pair encoder reads the pair: mean of its token states, or [CLS] through the pooler")
    parser.add_argument("--runs", default="runs/topic-pair")
    parser.add_argument("--cost-sentences", type=int, default=1000)
    parser.add_argument("--out", default=None, help="markdown report (default: print only)")
    args = parser.parse_args(argv)
    command = "python benchmarks/topic_pair_study.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    runs = Path(args.runs) / f"pair-{args.pooling}-s{args.seed}"
    runs.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    def log(msg):
        print(msg, flush=True)

    cfg = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    detector = load(args.detector, device="cpu")
    topics = detector.topics
    topic_ids = [t.id for t in topics]
    descriptions = {t.id: t.description for t in topics}
    splits = {s: load_records(getattr(args, s), topics, args.corpora) for s in ("train", "dev", "test")}
    model, tokenizer, prefix, max_length, n_pairs, train_seconds = train_pair_model(
        cfg, splits["train"], descriptions, args.seed, runs, log, args.pooling)
    log(f"pair encoder trained in {train_seconds:.0f} s")

    results, temperature = {}, None
    for split in ("dev", "test"):
        records = splits[split]
        texts, contexts = [r.text for r in records], [r.context for r in records]
        logits, _ = detector.logits(texts, contexts)
        topic_p, stance_p, sentiment_p = (t.double().numpy() for t in detector.scale(
            logits, lexical=detector.lexical_probabilities(texts, contexts)))
        base = decode_labels(topic_p, stance_p, sentiment_p, topic_ids, detector.thresholds)
        gold = record_labels(records)
        # every pair the systems need a stance for: gold topics (stance given topic) and detected ones (joint)
        wanted = sorted({(i, t) for i, g in enumerate(gold) for t in g.topics}
                        | {(i, t) for i, p in enumerate(base) for t in p.topics})
        raw = pair_logits(model, tokenizer, records, wanted, descriptions, prefix, max_length)
        if split == "dev":
            gold_index = [k for k, (i, t) in enumerate(wanted) if t in gold[i].topics]
            temperature = fit_temperature(raw[gold_index], np.array([STANCES.index(gold[wanted[k][0]].topics[wanted[k][1]])
                                                                    for k in gold_index]))
            log(f"pair encoder temperature {temperature:.3f}")
        pair_p = softmax(raw, temperature)
        row = {(i, t): pair_p[k] for k, (i, t) in enumerate(wanted)}

        def system(weight: float) -> list[Labels]:
            out = []
            for i, p in enumerate(base):
                stance_for = dict(p.stance_for)
                for t in topic_ids:
                    if (i, t) in row:
                        j = topic_ids.index(t)
                        mixed = weight * row[(i, t)] + (1 - weight) * stance_p[i, j]
                        stance_for[t] = STANCES[int(np.argmax(mixed))]
                out.append(Labels(topics={t: stance_for[t] for t in p.topics}, sentiment=p.sentiment,
                                  stance_for=stance_for))
            return out

        grid = [round(w, 1) for w in np.arange(0, 1.01, 0.1)]
        results[split] = {w: score(gold, system(w), topic_ids) for w in grid}
    chosen = max(results["dev"], key=lambda w: (round(results["dev"][w]["stance"]["macro_f1"], 6), -w))
    log(f"blend weight of the pair encoder chosen on dev: {chosen}")

    # cost: the detector alone vs the detector plus the pair encoder on its detected topics, same sentences
    sample = splits["test"][: args.cost_sentences]
    texts, contexts = [r.text for r in sample], [r.context for r in sample]
    started = time.time()
    predictions = detector.predict(texts, contexts)
    detector_seconds = time.time() - started
    detected = [(i, t.topic) for i, p in enumerate(predictions) for t in p.topics]
    started = time.time()
    pair_logits(model, tokenizer, sample, detected, descriptions, prefix, max_length)
    pair_seconds = time.time() - started
    cost = {"sentences": len(sample), "detected_pairs": len(detected),
            "detector_sentences_per_s": len(sample) / detector_seconds,
            "two_stage_sentences_per_s": len(sample) / (detector_seconds + pair_seconds),
            "pair_pairs_per_s": len(detected) / pair_seconds if detected else None}
    cost["ratio"] = cost["two_stage_sentences_per_s"] / cost["detector_sentences_per_s"]
    log(json.dumps(cost))

    def line(name, metrics):
        return (f"| {name} | {metrics['topic']['macro_f1']:.3f} | {metrics['stance']['macro_f1']:.3f} | "
                f"{metrics['joint']['macro_f1']:.3f} | "
                + " | ".join(f"{metrics['stance']['per_class'][s]['f1']:.3f}" for s in STANCES) + " |")

    header = ("| system | topic | stance given topic | joint | " + " | ".join(f"{s} F1" for s in STANCES)
              + " |\n|---|---|---|---|" + "---|" * len(STANCES))
    lines = [f"# Screen: topic-conditioned input for stance (seed {args.seed}, {args.pooling} pooling)", "",
             f"Command: `{command}`", "",
             f"Pair encoder: `{cfg['model']['name']}`, {args.pooling} pooling, {cfg['model'].get('num_layers')} layers, lowest "
             f"{cfg['train'].get('freeze_layers')} and the word embeddings frozen, {cfg['train']['epochs']} epoch(s), "
             f"bf16, class-balanced loss, {n_pairs} gold training pairs, trained in {train_seconds:.0f} s on the CPU; "
             f"softmax temperature {temperature:.3f} fitted on dev. Detector: `{args.detector}`. Blend weight of the "
             f"pair encoder chosen on dev stance-given-topic macro-F1: {chosen}.", ""]
    for split in ("dev", "test"):
        lines += [f"## {split}", "", header,
                  line(f"detector alone ({Path(args.detector).name})", results[split][0.0]),
                  line("detector topics, pair-encoder stance", results[split][1.0]),
                  line(f"detector topics, blended stance (w = {chosen})", results[split][chosen]), ""]
    lines += ["## Cost (test sentences, same run)", "",
              f"{cost['sentences']} sentences, {cost['detected_pairs']} detected (sentence, topic) pairs: detector alone "
              f"{cost['detector_sentences_per_s']:.1f} sentences/s, detector + pair encoder "
              f"{cost['two_stage_sentences_per_s']:.1f} sentences/s ({cost['ratio']:.2f}x); the pair encoder alone "
              f"{cost['pair_pairs_per_s'] or 0:.1f} pairs/s. A one-stage form (a pair per topic, {len(topic_ids)} per "
              f"sentence) would need {len(topic_ids)} pair passes per sentence.", ""]
    text = "\n".join(lines)
    (runs / "screen.json").write_text(json.dumps({
        "command": command, "chosen_weight": chosen, "temperature": temperature, "train_seconds": train_seconds,
        "cost": cost, "n_pairs": n_pairs,
        "metrics": {s: {str(w): {k: results[s][w][k]["macro_f1"] for k in ("topic", "stance", "joint", "sentiment")}
                        for w in results[s]} for s in results}}, indent=2))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
