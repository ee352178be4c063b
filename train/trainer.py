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
from rustance.model import build_model, encode
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


def _balanced(counts: torch.Tensor, cap: float = 5.0) -> torch.Tensor:
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
            stance_weight, sentiment_weight = _balanced(stance_counts), _balanced(sentiment_counts)
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


def train(config: Config, log=print) -> dict:
    """Fine-tune as configured; save the best dev checkpoint to ``train.output_dir``. Returns dev metrics."""
    settings = config.train
    _check_output_dir(Path(settings.output_dir))
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    set_seed(settings.seed)
    topics, train_records, dev_records = load_training_data(config)
    log(f"train: {len(train_records)} records, dev: {len(dev_records)} records, topics: {len(topics)}")
    model, tokenizer = build_model(config.model.name, topics, config.model.pooling, config.model.use_context,
                                   config.model.max_length, config.model.text_prefix)
    targets = _targets(train_records, topics)
    loss_fn = MultiTaskLoss(targets, settings.class_weights)

    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": settings.learning_rate},
         {"params": head_params, "lr": settings.head_learning_rate}],
        weight_decay=settings.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_records) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    generator = torch.Generator().manual_seed(settings.seed)
    classifier = Classifier(model, tokenizer, batch_size=64)

    output_dir = Path(settings.output_dir)
    best, best_metrics, stale, step, history = -1.0, {}, 0, 0, []
    started = time.time()
    progress = progress_bar(total_steps, "training", unit="step")
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(len(train_records), generator=generator).tolist()
        running = []
        for begin in range(0, len(order), settings.batch_size):
            idx = order[begin : begin + settings.batch_size]
            batch = encode(tokenizer, [train_records[i].text for i in idx],
                           [train_records[i].context for i in idx], model.config.rustance)
            out = model(**batch)
            loss = loss_fn(out, {k: v[idx] for k, v in targets.items()})
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
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
        metrics = evaluate_records(classifier, dev_records, tune_thresholds=settings.tune_thresholds)
        summary = headline(metrics)
        history.append({"epoch": epoch, "step": step, "train_loss": float(np.mean(running)), **summary})
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
