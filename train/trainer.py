"""Fine-tuning loop: shared encoder + topic/stance/sentiment heads, early stopping on dev."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from transformers import get_linear_schedule_with_warmup, set_seed

from rustance.config import Config
from rustance.inference.predictor import Classifier
from rustance.labels import SENTIMENTS, STANCES, Topic, load_topics
from rustance.metrics import Labels, headline, score
from rustance.model import build_model, transformer_layers
from rustance.progress import progress as progress_bar
from rustance.records import DataError, Record, load_records


def record_labels(records: list[Record]) -> list[Labels]:
    return [Labels(topics=r.topics, sentiment=r.sentiment) for r in records]


def evaluate_records(classifier: Classifier, records: list[Record], tune_thresholds: bool = False) -> dict:
    """Predict ``records`` and score them against their labels.

    With ``tune_thresholds`` the per-topic decision thresholds are first chosen on these records
    (the dev set during training) and stored in the classifier and its model config.
    """
    texts = [r.text for r in records]
    probabilities = classifier.probabilities(texts, [r.context for r in records])
    if tune_thresholds:
        classifier.thresholds = choose_thresholds(probabilities[0], records, classifier.topics)
        classifier.model.config.rustance["thresholds"] = classifier.thresholds
    predictions = classifier.decode(texts, *probabilities)
    return score(record_labels(records), [p.to_labels() for p in predictions], [t.id for t in classifier.topics])


def choose_thresholds(topic_probabilities: torch.Tensor, records: list[Record], topics: tuple[Topic, ...],
                      min_support: int = 5) -> dict[str, float]:
    """Per-topic threshold in [0.2, 0.8] maximising F1; 0.5 for topics with fewer than ``min_support`` positives."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)
    thresholds = {}
    for j, topic in enumerate(topics):
        gold = np.array([topic.id in r.topics for r in records])
        if gold.sum() < min_support:
            thresholds[topic.id] = 0.5
            continue
        scores = [f1_score(gold, topic_probabilities[:, j].numpy() >= th, zero_division=0) for th in grid]
        thresholds[topic.id] = float(grid[int(np.argmax(scores))])
    return thresholds


def _targets(records: list[Record], topics: tuple[Topic, ...]) -> dict[str, torch.Tensor]:
    topic_index = {t.id: i for i, t in enumerate(topics)}
    presence = torch.zeros(len(records), len(topics))
    stance = torch.full((len(records), len(topics)), -100, dtype=torch.long)
    for row, record in enumerate(records):
        for topic, label in record.topics.items():
            presence[row, topic_index[topic]] = 1.0
            stance[row, topic_index[topic]] = STANCES.index(label)
    sentiment = torch.tensor([SENTIMENTS.index(r.sentiment) for r in records])
    return {"presence": presence, "stance": stance, "sentiment": sentiment}


def balanced_weights(counts: torch.Tensor, cap: float = 5.0) -> torch.Tensor:
    """'Balanced' class weights (n / (k * count)), capped so rare classes do not explode."""
    counts = counts.float().clamp(min=1.0)
    weights = counts.sum() / (len(counts) * counts)
    return weights.clamp(max=cap)


class MultiTaskLoss(nn.Module):
    """Sum of topic (BCE summed over topics), stance (CE on present topics) and sentiment (CE) losses."""

    def __init__(self, targets: dict[str, torch.Tensor], class_weights: bool):
        super().__init__()
        pos = targets["presence"].sum(0)
        neg = len(targets["presence"]) - pos
        stance_counts = torch.bincount(targets["stance"][targets["stance"] >= 0], minlength=len(STANCES))
        sentiment_counts = torch.bincount(targets["sentiment"], minlength=len(SENTIMENTS))
        if class_weights:
            pos_weight = (neg / pos.clamp(min=1.0)).sqrt().clamp(1.0, 10.0)
            stance_weight, sentiment_weight = balanced_weights(stance_counts), balanced_weights(sentiment_counts)
        else:
            pos_weight = stance_weight = sentiment_weight = None
        self.topic = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
        self.stance = nn.CrossEntropyLoss(weight=stance_weight, ignore_index=-100)
        self.sentiment = nn.CrossEntropyLoss(weight=sentiment_weight)

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # summed over topics (not averaged), so topic detection weighs as much as one classification task
        loss = self.topic(out["topic_logits"], batch["presence"]).sum(1).mean()
        loss = loss + self.sentiment(out["sentiment_logits"], batch["sentiment"])
        if (batch["stance"] >= 0).any():
            loss = loss + self.stance(out["stance_logits"].reshape(-1, len(STANCES)), batch["stance"].reshape(-1))
        return loss


def _save(model, tokenizer, config: Config, metrics: dict, output_dir: Path) -> None:
    """Write the checkpoint to a temporary folder, then swap it in (never a half-written model)."""
    tmp = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False))
    (tmp / "dev_metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    old = output_dir.with_name(output_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if output_dir.exists():
        output_dir.rename(old)
    tmp.rename(output_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_training_config(model_dir: str | Path) -> dict:
    """The ``training_config.yaml`` saved beside a model ({} when absent)."""
    path = Path(model_dir) / "training_config.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def load_training_data(config: Config):
    topics = load_topics(config.data.topics)
    train = load_records(config.data.train, topics, config.data.corpora_dir)
    dev = load_records(config.data.dev, topics, config.data.corpora_dir)
    if not train:
        raise DataError(f"{config.data.train}: no training records")
    if not dev:
        raise DataError(f"{config.data.dev}: no dev records (needed for early stopping)")
    return topics, train, dev


def _check_output_dir(output_dir: Path) -> None:
    """Refuse to overwrite a folder that is not an earlier rustance checkpoint."""
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        config = output_dir / "config.json"
        if not (config.is_file() and '"rustance"' in config.read_text(encoding="utf-8")):
            raise ValueError(f"train.output_dir {output_dir} exists and is not a rustance model folder; "
                             "choose another output_dir")


class StanceTask:
    """Topics + per-topic stance + sentiment on labelled JSONL records (the default task)."""

    def __init__(self, config: Config, log=print):
        topics, self.train_records, self.dev_records = load_training_data(config)
        log(f"train: {len(self.train_records)} records, dev: {len(self.dev_records)} records, topics: {len(topics)}")
        self.model, self.tokenizer = build_model(config.model.name, topics, config.model.pooling,
                                                 config.model.use_context, config.model.max_length,
                                                 config.model.text_prefix, config.model.context_mode,
                                                 config.model.num_layers)
        self.targets = _targets(self.train_records, topics)
        self.loss_fn = MultiTaskLoss(self.targets, config.train.class_weights)
        self.tune_thresholds = config.train.tune_thresholds
        self.classifier = Classifier(self.model, self.tokenizer, batch_size=64)
        self.lengths = [len(r.text) + len(r.context or "") for r in self.train_records]

    def loss(self, idx: list[int]) -> torch.Tensor:
        batch, _ = self.classifier.inputs([self.train_records[i].text for i in idx],
                                          [self.train_records[i].context for i in idx])
        return self.loss_fn(self.model(**batch), {k: v[idx] for k, v in self.targets.items()})

    def evaluate(self) -> tuple[dict, dict]:
        metrics = evaluate_records(self.classifier, self.dev_records, tune_thresholds=self.tune_thresholds)
        return metrics, headline(metrics)


def make_task(config: Config, log=print):
    if config.task == "targeted_sentiment":
        from rustance.train.targeted import TargetSentimentTask

        return TargetSentimentTask(config, log)
    return StanceTask(config, log)


def batch_indices(n: int, batch_size: int, generator: torch.Generator,
                  lengths: list[int] | None = None) -> list[list[int]]:
    """Shuffled mini-batches; with ``lengths``, items of similar length share a batch (windows of 50 batches
    are sorted by length, then the batches are shuffled)."""
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    batches = []
    window = batch_size * 50
    for begin in range(0, n, window):
        chunk = sorted(order[begin : begin + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train(config: Config, log=print) -> dict:
    """Fine-tune as configured; save the best dev checkpoint to ``train.output_dir``. Returns dev metrics."""
    settings = config.train
    _check_output_dir(Path(settings.output_dir))
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    set_seed(settings.seed)
    task = make_task(config, log)
    model, tokenizer = task.model, task.tokenizer
    if settings.freeze_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if settings.freeze_layers:
        layers = transformer_layers(model.encoder, settings.freeze_layers, "train.freeze_layers")
        for layer in layers[: settings.freeze_layers]:
            layer.requires_grad_(False)

    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": settings.learning_rate},
         {"params": head_params, "lr": settings.head_learning_rate}],
        weight_decay=settings.weight_decay,
    )
    n_train = len(task.lengths)
    total_steps = math.ceil(n_train / settings.batch_size) * settings.epochs
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    generator = torch.Generator().manual_seed(settings.seed)
    trainable = encoder_params + head_params

    output_dir = Path(settings.output_dir)
    best, best_metrics, stale, step, history = -1.0, {}, 0, 0, []
    started = time.time()
    progress = progress_bar(total_steps, "training", unit="step")
    for epoch in range(1, settings.epochs + 1):
        model.train()
        running = []
        for idx in batch_indices(n_train, settings.batch_size, generator,
                                 task.lengths if settings.group_by_length else None):
            loss = task.loss(idx)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running.append(loss.item())
            step += 1
            progress.update(1)
            progress.set_postfix(epoch=epoch, loss=f"{np.mean(running[-20:]):.3f}", refresh=False)
            if settings.max_steps and step >= settings.max_steps:
                break
        model.eval()
        metrics, summary = task.evaluate()
        history.append({"epoch": epoch, "step": step, "train_loss": float(np.mean(running)),
                        "seconds": round(time.time() - started, 1), **summary})
        current = summary[settings.metric_for_best]
        improved = current > best
        log(f"epoch {epoch}: loss {np.mean(running):.4f}  " + "  ".join(f"{k} {v:.3f}" for k, v in summary.items())
            + ("  (best, saved)" if improved else ""))
        if improved:
            best, best_metrics, stale = current, metrics, 0
            _save(model, tokenizer, config, {"epoch": epoch, "step": step, **summary, "detail": metrics}, output_dir)
        else:
            stale += 1
        if stale >= settings.patience or (settings.max_steps and step >= settings.max_steps):
            break
    progress.close()
    elapsed = time.time() - started
    (output_dir / "history.json").write_text(json.dumps({"seconds": round(elapsed, 1), "epochs": history}, indent=2))
    from rustance.train.report import plot_history

    plot_history(history, output_dir / "training_curve.png")
    log(f"best dev {settings.metric_for_best} = {best:.4f}; model saved to {output_dir} ({elapsed:.0f} s)")
    return best_metrics
