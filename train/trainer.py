"""Fine-tuning on the Hugging Face :class:`~transformers.Trainer`.

:class:`RustanceTrainer` is a ``Trainer`` subclass (as sentence-transformers' ``CrossEncoderTrainer`` is): the
task's multi-task loss in ``compute_loss``, two learning-rate groups (encoder, heads) in ``create_optimizer``.
The Trainer brings the rest: device choice (CUDA, then MPS, then CPU), ``bf16``/``fp16`` autocast, gradient
accumulation, checkpoints in ``<output_dir>/checkpoints`` and ``resume_from_checkpoint``, early stopping
(``EarlyStoppingCallback``), ``report_to`` (TensorBoard ...). Data are ``datasets.Dataset`` objects tokenised
with ``map``; metrics come from the task's ``compute_metrics`` (scikit-learn).

After training, explicit steps on dev, in this order: calibration (softmax temperatures of the stance and
sentiment heads), TF-IDF fusion (``train.tfidf_fusion``: :mod:`rustance.train.fusion`) and decision thresholds
(per topic). Evaluation itself changes nothing in the model.

The output folder only ever gets files the trainer writes (listed in ``.rustance-files.json``); everything
else in it (``eval-*`` reports, notes) is left alone, and temporary names are unique to the run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from rustance.calibration import head_probabilities
from rustance.config import Config
from rustance.errors import RustanceError
from rustance.labels import SENTIMENTS, STANCES, Topic, load_topics
from rustance.metrics import Labels, decode_labels, gold_labels, headline, score
from rustance.records import DataError, Record, load_records
from rustance.tasks import task_spec

logger = logging.getLogger("rustance")

MANIFEST = ".rustance-files.json"  # the files of an output folder that the trainer wrote
CHECKPOINTS = "checkpoints"


class TrainingError(RustanceError, ValueError):
    """Training cannot start or go on as configured (output folder, resume, device, precision)."""


# ---------------------------------------------------------------------------------------------- shared pieces


def record_labels(records: list[Record]) -> list[Labels]:
    return [Labels(topics=r.topics, sentiment=r.sentiment) for r in records]


def choose_thresholds(topic_probabilities, gold_presence, topics: tuple[Topic, ...] | list[str],
                      min_support: int = 5) -> dict[str, float]:
    """Per-topic threshold in [0.2, 0.8] maximising F1; 0.5 for topics with fewer than ``min_support`` positives.

    ``gold_presence`` is an (n, topics) 0/1 array, or the records (their ``topics``)."""
    from sklearn.metrics import f1_score

    ids = [t.id if isinstance(t, Topic) else t for t in topics]
    probabilities = np.asarray(topic_probabilities)
    if not isinstance(gold_presence, np.ndarray):
        gold_presence = np.array([[t in r.topics for t in ids] for r in gold_presence])
    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)
    thresholds = {}
    for j, topic in enumerate(ids):
        gold = gold_presence[:, j] > 0.5
        if gold.sum() < min_support:
            thresholds[topic] = 0.5
            continue
        scores = [f1_score(gold, probabilities[:, j] >= th, zero_division=0) for th in grid]
        thresholds[topic] = float(grid[int(np.argmax(scores))])
    return thresholds


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """Temperature scaling: the T in [0.25, 8] (log grid) minimising the dev negative log-likelihood of
    ``softmax(logits / T)``; rows whose gold is negative (-100) are ignored."""
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64).reshape(-1, np.asarray(logits).shape[-1])
    gold = torch.as_tensor(np.asarray(gold), dtype=torch.long).reshape(-1)
    keep = gold >= 0
    if not keep.any():
        return 1.0
    logits, gold = logits[keep], gold[keep]
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    losses = [float(nn.functional.cross_entropy(logits / t, gold)) for t in grid]
    return round(float(grid[int(np.argmin(losses))]), 4)


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
        self.to(out["topic_logits"].device)
        # summed over topics (not averaged), so topic detection weighs as much as one classification task
        loss = self.topic(out["topic_logits"].float(), batch["presence"].float()).sum(1).mean()
        loss = loss + self.sentiment(out["sentiment_logits"].float(), batch["sentiment"])
        if (batch["stance"] >= 0).any():
            loss = loss + self.stance(out["stance_logits"].float().reshape(-1, len(STANCES)),
                                      batch["stance"].reshape(-1))
        return loss


class PadCollator:
    """Pads token inputs (``input_ids`` and ``context_input_ids`` with their masks and token types) to the
    longest item of the batch and stacks the other named columns."""

    def __init__(self, pad_id: int, columns: tuple[str, ...]):
        self.pad_id, self.columns = pad_id, columns

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = {}
        for prefix in ("", "context_"):
            key = prefix + "input_ids"
            if key not in features[0]:
                continue
            width = max(len(f[key]) for f in features)
            ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(features), width), dtype=torch.long)
            types = torch.zeros((len(features), width), dtype=torch.long)
            for row, f in enumerate(features):
                n = len(f[key])
                ids[row, :n] = torch.as_tensor(f[key])
                mask[row, :n] = 1
                if prefix + "token_type_ids" in f:
                    types[row, :n] = torch.as_tensor(f[prefix + "token_type_ids"])
            batch[key], batch[prefix + "attention_mask"] = ids, mask
            if prefix + "token_type_ids" in features[0]:
                batch[prefix + "token_type_ids"] = types
        for column in self.columns:
            batch[column] = torch.tensor([f[column] for f in features])
        return batch


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


# ------------------------------------------------------------------------------------------------ stance task


def load_training_data(config: Config):
    topics = load_topics(config.data.topics)
    train = load_records(config.data.train, topics, config.data.corpora_dir)
    dev = load_records(config.data.dev, topics, config.data.corpora_dir)
    if not train:
        raise DataError(f"{config.data.train}: no training records")
    if not dev:
        raise DataError(f"{config.data.dev}: no dev records (needed for early stopping)")
    return topics, train, dev


def record_targets(records: list[Record], topics: tuple[Topic, ...]) -> dict[str, torch.Tensor]:
    """Training targets: ``presence`` (records × topics, 0/1), ``stance`` (stance index, -100 where the topic is
    absent) and ``sentiment`` (index)."""
    topic_index = {t.id: i for i, t in enumerate(topics)}
    presence = torch.zeros(len(records), len(topics))
    stance = torch.full((len(records), len(topics)), -100, dtype=torch.long)
    for row, record in enumerate(records):
        for topic, label in record.topics.items():
            presence[row, topic_index[topic]] = 1.0
            stance[row, topic_index[topic]] = STANCES.index(label)
    sentiment = torch.tensor([SENTIMENTS.index(r.sentiment) for r in records])
    return {"presence": presence, "stance": stance, "sentiment": sentiment}


class StanceTask:
    """Topics + per-topic stance + sentiment on labelled JSONL records (the default task).

    What :func:`train` needs from a task: ``model``, ``tokenizer``, ``train_dataset``, ``eval_dataset``,
    ``label_names``, ``collator``, ``loss(outputs, labels)``, ``compute_metrics(eval_prediction)``,
    ``finalize(model, dev_prediction)`` (calibration and thresholds; returns the final dev metrics)."""

    label_names = ("presence", "stance", "sentiment")

    def __init__(self, config: Config, log=print):
        from datasets import Dataset

        from rustance.inputs import InputBuilder

        self.topics, train_records, dev_records = load_training_data(config)
        log(f"train: {len(train_records)} records, dev: {len(dev_records)} records, topics: {len(self.topics)}")
        self.topic_ids = [t.id for t in self.topics]
        self.model, self.tokenizer = task_spec("stance").build(config)
        self.loss_fn = MultiTaskLoss(record_targets(train_records, self.topics), config.train.class_weights)
        self.tune_thresholds, self.calibrate = config.train.tune_thresholds, config.train.calibrate
        self.tfidf_fusion, self.tfidf_context = config.train.tfidf_fusion, config.train.tfidf_context
        self.train_records, self.dev_texts = train_records, [r.text for r in dev_records]
        self.dev_contexts = [r.context for r in dev_records]
        self.inputs = InputBuilder(self.tokenizer, self.model.config.settings)
        self.collator = PadCollator(self.inputs.pad_id, self.label_names)
        _quiet_datasets()

        def dataset(records: list[Record], name: str):
            targets = record_targets(records, self.topics)
            data = Dataset.from_dict({"text": [r.text for r in records], "context": [r.context or "" for r in records],
                                      **{k: v.tolist() for k, v in targets.items()}})
            return data.map(self._encode, batched=True, remove_columns=["text", "context"],
                            new_fingerprint=f"rustance-{name}-{uuid.uuid4().hex}")

        self.train_dataset, self.eval_dataset = dataset(train_records, "train"), dataset(dev_records, "dev")

    def _encode(self, batch: dict) -> dict:
        items = self.inputs.encode(batch["text"], batch["context"])
        out = {"input_ids": [i.ids for i in items], "length": [len(i.ids) for i in items]}
        if self.inputs.with_types:
            out["token_type_ids"] = [i.type_ids for i in items]
        if self.inputs.pooled_context:
            context = self.inputs.encode(batch["context"])
            out["context_input_ids"] = [i.ids for i in context]
            if self.inputs.with_types:
                out["context_token_type_ids"] = [i.type_ids for i in context]
        return out

    def loss(self, outputs: dict, labels: dict) -> torch.Tensor:
        return self.loss_fn(outputs, labels)

    def _score(self, topic_logits, stance_logits, sentiment_logits, labels, thresholds) -> dict:
        topic_p = torch.sigmoid(torch.as_tensor(topic_logits)).numpy()
        predicted = decode_labels(topic_p, stance_logits, sentiment_logits, self.topic_ids, thresholds)
        return score(gold_labels(*labels, self.topic_ids), predicted, self.topic_ids)

    def compute_metrics(self, prediction) -> dict[str, float]:
        """Dev headline metrics; with ``tune_thresholds`` scored at thresholds chosen on these predictions (as
        the saved model will be), without storing them."""
        topic_logits, stance_logits, sentiment_logits = prediction.predictions
        labels = prediction.label_ids
        thresholds = None
        if self.tune_thresholds:
            thresholds = choose_thresholds(torch.sigmoid(torch.as_tensor(topic_logits)).numpy(), labels[0],
                                           self.topic_ids)
        return headline(self._score(topic_logits, stance_logits, sentiment_logits, labels, thresholds))

    def finalize(self, model, prediction, log=print) -> dict:
        """Explicit post-training steps on dev: calibrate, fuse with TF-IDF, then tune thresholds; returns the
        dev metrics (of the probabilities the saved model will report)."""
        topic_logits, stance_logits, sentiment_logits = prediction.predictions
        presence, stance, sentiment = prediction.label_ids
        if not all(np.array_equal(np.asarray(got), np.asarray(self.eval_dataset[name], dtype=np.asarray(got).dtype))
                   for name, got in zip(self.label_names, prediction.label_ids)):
            # the TF-IDF part's dev probabilities are of the records in file order: predictions in any other
            # order would blend each sentence with another's (the Trainer length-groups evaluation batches too)
            raise TrainingError("the dev predictions are not in the order of the dev records; cannot fuse or "
                                "calibrate against them")
        if self.calibrate:
            model.config.temperatures = {"stance": fit_temperature(stance_logits, stance),
                                         "sentiment": fit_temperature(sentiment_logits, sentiment)}
            log(f"calibration: temperatures {model.config.temperatures}")
        probabilities = head_probabilities({"topic_logits": topic_logits, "stance_logits": stance_logits,
                                            "sentiment_logits": sentiment_logits}, model.config.temperatures or {})
        if self.tfidf_fusion:
            from rustance.lexical import blend
            from rustance.train.fusion import fit_fusion

            lexical, weights, blend_temperatures, _, _ = fit_fusion(
                self.train_records, self.topics, self.dev_texts, probabilities, (presence, stance, sentiment), log,
                self.tune_thresholds, dev_contexts=self.dev_contexts, context=self.tfidf_context)
            model.config.fusion, model.config.fusion_temperatures, model.lexical = weights, blend_temperatures, lexical
            if lexical is not None:
                probabilities = blend(probabilities, lexical.probabilities(self.dev_texts, self.dev_contexts), weights,
                                      blend_temperatures)
        if self.tune_thresholds:
            model.config.thresholds = choose_thresholds(probabilities[0].numpy(), presence, self.topic_ids)
            log(f"topic thresholds: {model.config.thresholds}")
        predicted = decode_labels(*(p.numpy() for p in probabilities), self.topic_ids, model.config.thresholds)
        metrics = score(gold_labels(presence, stance, sentiment, self.topic_ids), predicted, self.topic_ids)
        return {**headline(metrics), "detail": metrics}


def make_task(config: Config, log=print):
    """The training task of ``config.task``, from the task registry."""
    return task_spec(config.task).training_task()(config, log)


# ------------------------------------------------------------------------------------------------ the trainer


def _trainer_class():
    from transformers import Trainer

    class RustanceTrainer(Trainer):
        """``Trainer`` with a rustance task's loss and two learning rates (encoder, heads)."""

        def __init__(self, *args, task, head_learning_rate: float, **kwargs):
            self.task, self.head_learning_rate = task, head_learning_rate
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False  # our loss is a mean per batch: let the Trainer scale for GA

        def _get_eval_sampler(self, eval_dataset):
            """Evaluation in the dataset's order. The ``Trainer`` length-groups evaluation batches as well when
            ``train_sampling_strategy`` is ``group_by_length`` (``train.group_by_length``), which returns the
            dev predictions permuted; the task's ``finalize`` pairs them with per-record data (the TF-IDF
            part's dev probabilities), so they must come back in file order."""
            if eval_dataset is None or self.args.world_size > 1:
                return None  # as the Trainer does without length grouping (the launcher shards in order)
            return torch.utils.data.SequentialSampler(eval_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = {name: inputs.pop(name) for name in self.task.label_names if name in inputs}
            outputs = model(**inputs)
            loss = self.task.loss(outputs, labels)
            return (loss, outputs) if return_outputs else loss

        def create_optimizer(self, model=None):
            model = self.model if model is None else model
            if self.optimizer is None:
                decay = set(self.get_decay_parameter_names(model))
                groups = []
                for is_encoder, lr in ((True, self.args.learning_rate), (False, self.head_learning_rate)):
                    for with_decay in (True, False):
                        params = [p for n, p in model.named_parameters() if p.requires_grad
                                  and n.startswith("encoder.") == is_encoder and (n in decay) == with_decay]
                        if params:
                            groups.append({"params": params, "lr": lr,
                                           "weight_decay": self.args.weight_decay if with_decay else 0.0})
                optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
                kwargs.pop("lr", None)
                self.optimizer = optimizer_cls(groups, **kwargs)
            return self.optimizer

    return RustanceTrainer


def _progress_callback(log, metric: str):
    from transformers import TrainerCallback

    class EpochLog(TrainerCallback):
        """One line per evaluation, and the training seconds of each epoch (without evaluation)."""

        def __init__(self):
            self.best, self.epoch_seconds, self.started = None, {}, None

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.started is not None:
                self.epoch_seconds[round(state.epoch or 0, 4)] = round(time.perf_counter() - self.started, 2)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            metrics = metrics or {}
            losses = [e["loss"] for e in state.log_history if "loss" in e]
            current = metrics.get(f"eval_{metric}")
            improved = current is not None and (self.best is None or current > self.best)
            if improved:
                self.best = current
            shown = "  ".join(f"{k[5:]} {v:.3f}" for k, v in metrics.items()
                              if k.startswith("eval_") and (k.endswith("_f1") or k.startswith("eval_f1_")))
            log(f"epoch {state.epoch:g}: loss {losses[-1] if losses else float('nan'):.4f}  {shown}"
                + ("  (best)" if improved else ""))

    return EpochLog()


def _checkpoints(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                  key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)


def is_model_folder(folder: Path) -> bool:
    """A folder a rustance trainer wrote (0.3 manifest, or a config.json of a rustance model of any version)."""
    if (folder / MANIFEST).is_file():
        return True
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("model_type") == "rustance" or isinstance(data.get("rustance"), dict))


def check_output_dir(output_dir: Path, resume: bool) -> None:
    """Refuse a folder that is not a rustance model folder, or one whose interrupted run would be ignored."""
    if output_dir.exists() and not output_dir.is_dir():
        raise TrainingError(f"train.output_dir {output_dir} is a file; choose a folder")
    if not output_dir.is_dir():
        if resume:
            raise TrainingError(f"nothing to resume: {output_dir} does not exist")
        return
    checkpoints = _checkpoints(output_dir / CHECKPOINTS)
    if resume and not checkpoints:
        raise TrainingError(f"nothing to resume: no checkpoint in {output_dir / CHECKPOINTS}")
    if not resume and checkpoints:
        raise TrainingError(f"{output_dir / CHECKPOINTS} holds checkpoints of an interrupted run: continue it with "
                            "`rustance train --resume` (same config), or delete that folder to start afresh")
    others = [p for p in output_dir.iterdir() if p.name != CHECKPOINTS]  # an empty or partial checkpoints/ is ours
    if others and not is_model_folder(output_dir):
        raise TrainingError(f"train.output_dir {output_dir} exists and is not a rustance model folder; "
                            "choose another output_dir")


def save_model_folder(model, tokenizer, output_dir: Path, extra: dict[str, str | bytes]) -> list[str]:
    """Write the model, tokenizer and ``extra`` files into ``output_dir``, each file renamed into place from a
    temporary folder unique to this run. Files an earlier training wrote (the manifest) that this one did not
    are removed; nothing else in the folder is touched. Returns the files written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".rustance-tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, content in extra.items():
            (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        from rustance.card import write_model_card

        write_model_card(tmp, name=output_dir.resolve().name)
        written = sorted(p.name for p in tmp.iterdir() if p.is_file())
        previous = []
        if (output_dir / MANIFEST).is_file():
            try:
                previous = json.loads((output_dir / MANIFEST).read_text(encoding="utf-8")).get("files", [])
            except ValueError:
                previous = []
        for name in written:
            os.replace(tmp / name, output_dir / name)
        for name in set(previous) - set(written):
            if "/" not in name and (output_dir / name).is_file():
                (output_dir / name).unlink()
        manifest = tmp / MANIFEST
        manifest.write_text(json.dumps({"files": written}, indent=1))
        os.replace(manifest, output_dir / MANIFEST)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def _remove_checkpoints(folder: Path) -> None:
    """Delete this run's Trainer checkpoints (folders with trainer_state.json) once the model is saved."""
    for checkpoint in folder.glob("checkpoint-*"):
        if (checkpoint / "trainer_state.json").is_file() or not any(checkpoint.iterdir()):
            shutil.rmtree(checkpoint, ignore_errors=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def read_training_config(model_dir: str | Path) -> dict:
    """The ``training_config.yaml`` saved beside a model ({} when absent)."""
    path = Path(model_dir) / "training_config.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _history(log_history: list[dict], epoch_seconds: dict) -> list[dict]:
    """Per evaluation: epoch, step, mean training loss of the epoch, training seconds, dev metrics."""
    rows, loss = [], None
    for entry in log_history:
        if "loss" in entry:
            loss = entry["loss"]
        if any(k.startswith("eval_") for k in entry):
            epoch = entry.get("epoch", 0)
            rows.append({"epoch": round(epoch, 4), "step": entry.get("step"), "train_loss": loss,
                         "train_seconds": epoch_seconds.get(round(epoch, 4)),
                         **{k[5:]: v for k, v in entry.items() if k.startswith("eval_") and isinstance(v, float)
                            and (k.endswith("_f1") or k.startswith("eval_f1_") or k == "eval_accuracy")}})
    return rows


def training_arguments(config: Config, checkpoints: Path, n_train: int):
    """The ``TrainingArguments`` of a rustance config."""
    from transformers import TrainingArguments

    from rustance.model import resolve_device

    t = config.train
    device = resolve_device(t.device)  # auto: CUDA, MPS, then CPU; an absent device is a clear error
    try:
        return TrainingArguments(
            output_dir=str(checkpoints),
            per_device_train_batch_size=t.batch_size,
            per_device_eval_batch_size=t.eval_batch_size,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            num_train_epochs=t.epochs,
            max_steps=t.max_steps or -1,
            learning_rate=t.learning_rate,
            weight_decay=t.weight_decay,
            warmup_steps=t.warmup_ratio,  # under 1: a share of the training steps
            lr_scheduler_type="linear",
            max_grad_norm=1.0,
            eval_strategy="epoch",
            save_strategy="epoch",
            logging_strategy="epoch",
            save_total_limit=2,  # the best and the latest
            load_best_model_at_end=True,
            metric_for_best_model=t.metric_for_best,
            greater_is_better=True,
            restore_callback_states_from_checkpoint=True,
            seed=t.seed,
            data_seed=t.seed,
            bf16=t.bf16,
            fp16=t.fp16,
            use_cpu=device == "cpu",  # said outright: the Trainer refuses bf16 on a CPU it was not told of
            report_to=[] if t.report_to in ("none", "") else [t.report_to],
            remove_unused_columns=False,
            label_names=None,
            train_sampling_strategy="group_by_length" if t.group_by_length else "random",
            length_column_name="length",
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
            disable_tqdm=not os.isatty(2),
            save_only_model=False,
        )
    except (ValueError, ImportError) as exc:  # e.g. fp16 without a GPU, a report_to integration not installed
        raise TrainingError(f"training settings: {str(exc).splitlines()[0]}") from exc


def train(config: Config, log=print) -> dict:
    """Fine-tune as configured; save the best dev checkpoint to ``train.output_dir``. Returns dev metrics.

    ``train.resume_from_checkpoint`` (``last`` or a checkpoint folder) continues an interrupted run."""
    from transformers import EarlyStoppingCallback, set_seed

    settings = config.train
    output_dir = Path(settings.output_dir)
    resume = settings.resume_from_checkpoint
    check_output_dir(output_dir, resume is not None)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    set_seed(settings.seed)
    task = make_task(config, log)
    model = task.model
    if settings.freeze_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if settings.freeze_layers:
        from rustance.model import transformer_layers

        layers = transformer_layers(model.encoder, settings.freeze_layers, "train.freeze_layers")
        for layer in layers[: settings.freeze_layers]:
            layer.requires_grad_(False)

    checkpoints = output_dir / CHECKPOINTS
    args = training_arguments(config, checkpoints, len(task.train_dataset))
    args.label_names = list(task.label_names)
    progress = _progress_callback(log, settings.metric_for_best)
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=task.train_dataset, eval_dataset=task.eval_dataset,
        data_collator=task.collator, compute_metrics=task.compute_metrics, task=task,
        head_learning_rate=settings.head_learning_rate,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=settings.patience), progress],
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # one line per epoch comes from the EpochLog callback instead
    log(f"device: {args.device}" + (", bf16 autocast" if settings.bf16 else ", fp16 autocast" if settings.fp16 else ""))
    started = time.time()
    if resume == "last":  # the newest complete checkpoint (the Trainer writes trainer_state.json last)
        resume = str(_checkpoints(checkpoints)[-1])
        log(f"resuming from {resume}")
    elif resume is not None and not (Path(resume) / "trainer_state.json").is_file():
        raise TrainingError(f"train.resume_from_checkpoint: {resume} is not a complete checkpoint folder "
                            "(or use 'last')")
    trainer.train(resume_from_checkpoint=resume)
    elapsed = time.time() - started
    model = trainer.model
    dev_prediction = trainer.predict(task.eval_dataset)
    best = task.finalize(model, dev_prediction, log=log)
    history = _history(trainer.state.log_history, progress.epoch_seconds)
    best_step = trainer.state.best_global_step
    summary = {k: v for k, v in best.items() if k != "detail"}
    from rustance.train.report import plot_history

    curve = output_dir / f".training_curve-{uuid.uuid4().hex[:8]}.png"
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_history(history, curve)
    try:
        save_model_folder(model, task.tokenizer, output_dir, {
            "training_config.yaml": yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False),
            "dev_metrics.json": json.dumps({"step": best_step, **best}, indent=2, ensure_ascii=False),
            "history.json": json.dumps({"seconds": round(elapsed, 1), "device": str(args.device),
                                        "precision": "bf16" if settings.bf16 else "fp16" if settings.fp16 else "fp32",
                                        "epochs": history}, indent=2),
            "training_curve.png": curve.read_bytes(),
        })
    finally:
        curve.unlink(missing_ok=True)
    _remove_checkpoints(checkpoints)
    log(f"best dev {settings.metric_for_best} = {summary.get(settings.metric_for_best, float('nan')):.4f} "
        f"(step {best_step}); model saved to {output_dir} ({elapsed:.0f} s)")
    return best
