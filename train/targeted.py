"""Entity-targeted sentiment (RuSentNE-2023 style): training task, baselines and evaluation harness."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from torch import nn

from rustance.config import Config, DataConfig
from rustance.inference.targeted import TargetClassifier
from rustance.labels import SENTIMENTS
from rustance.metrics import headline_targeted, score_targeted
from rustance.records import DataError
from rustance.target_model import encode_targets
from rustance.tasks import task_spec
from rustance.targets import TargetExample, read_target_file, split_by_sentence
from rustance.train.trainer import balanced_weights, read_training_config

TAGS = ("PERSON", "ORGANIZATION", "PROFESSION", "COUNTRY", "NATIONALITY")


def load_target_splits(train_file: str, dev_file: str | None, dev_fraction: float, seed: int
                       ) -> tuple[list[TargetExample], list[TargetExample]]:
    """Train and dev examples: a dev file if given, else a by-sentence split of the training file."""
    examples, _ = read_target_file(train_file)
    if any(e.label is None for e in examples):
        raise DataError(f"{train_file}: training needs a label column")
    if dev_file:
        dev, _ = read_target_file(dev_file)
        if any(e.label is None for e in dev):
            raise DataError(f"{dev_file}: the dev file needs a label column")
        return examples, dev
    return split_by_sentence(examples, dev_fraction, seed)


class TargetSentimentTask:
    """Targeted sentiment for :func:`rustance.train.trainer.train` (see ``StanceTask`` for the interface)."""

    label_names = ("labels",)

    def __init__(self, config: Config, log=print):
        from datasets import Dataset

        from rustance.train.trainer import PadCollator, _quiet_datasets

        data = config.data
        train_examples, self.dev_examples = load_target_splits(data.train, data.dev, data.dev_fraction,
                                                               data.split_seed)
        counts = Counter(e.label for e in train_examples)
        log(f"train: {len(train_examples)} targets in {len({e.sentence for e in train_examples})} "
            f"sentences ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); dev: {len(self.dev_examples)}")
        self.model, self.tokenizer = task_spec("targeted_sentiment").build(config)
        labels = torch.tensor([SENTIMENTS.index(e.label) for e in train_examples])
        weights = balanced_weights(torch.bincount(labels, minlength=len(SENTIMENTS))) if config.train.class_weights \
            else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.calibrate = config.train.calibrate
        self.collator = PadCollator(self.tokenizer.pad_token_id or 0, ("marker_index", "labels"))
        settings = self.model.config.settings
        _quiet_datasets()

        def encode(batch: dict) -> dict:
            examples = [TargetExample(*row) for row in zip(batch["sentence"], batch["start"], batch["end"],
                                                           batch["tag"])]
            out = encode_targets(self.tokenizer, examples, settings, tensors=False)
            out.pop("attention_mask", None)  # the collator builds it
            out["length"] = [len(ids) for ids in out["input_ids"]]
            return out

        def dataset(examples: list[TargetExample], name: str):
            table = Dataset.from_dict({"sentence": [e.sentence for e in examples], "start": [e.start for e in examples],
                                       "end": [e.end for e in examples], "tag": [e.tag for e in examples],
                                       "labels": [SENTIMENTS.index(e.label) for e in examples]})
            return table.map(encode, batched=True, remove_columns=["sentence", "start", "end", "tag"],
                             new_fingerprint=f"rustance-{name}-{uuid.uuid4().hex}")

        self.train_dataset, self.eval_dataset = dataset(train_examples, "train"), dataset(self.dev_examples, "dev")

    def loss(self, outputs: dict, labels: dict) -> torch.Tensor:
        self.loss_fn.to(outputs["sentiment_logits"].device)
        return self.loss_fn(outputs["sentiment_logits"].float(), labels["labels"])

    @staticmethod
    def _logits(prediction):
        logits = prediction.predictions
        return logits[0] if isinstance(logits, (tuple, list)) else logits

    def compute_metrics(self, prediction) -> dict[str, float]:
        predicted = [SENTIMENTS[i] for i in np.asarray(self._logits(prediction)).argmax(-1)]
        return headline_targeted(score_targeted([SENTIMENTS[i] for i in prediction.label_ids], predicted))

    def finalize(self, model, prediction, log=print) -> dict:
        """Explicit post-training step on dev: calibrate the sentiment head; returns the dev metrics."""
        from rustance.train.trainer import fit_temperature

        logits = self._logits(prediction)
        if self.calibrate:
            model.config.temperatures = {"sentiment": fit_temperature(logits, prediction.label_ids)}
            log(f"calibration: temperatures {model.config.temperatures}")
        predicted = [SENTIMENTS[i] for i in np.asarray(logits).argmax(-1)]
        metrics = score_targeted([SENTIMENTS[i] for i in prediction.label_ids], predicted)
        return {**headline_targeted(metrics), "detail": metrics}


class MajorityBaseline:
    name = "majority class"

    def fit(self, examples: list[TargetExample]) -> "MajorityBaseline":
        self.label = Counter(e.label for e in examples).most_common(1)[0][0]
        return self

    def predict(self, examples: list[TargetExample]) -> list[str]:
        return [self.label] * len(examples)


class TargetTfidfBaseline:
    """Logistic regression on TF-IDF of the sentence (words + character n-grams), of the five words either
    side of the target, and the entity type."""

    def __init__(self, class_weight: str | None = "balanced", seed: int = 0):
        self.class_weight = class_weight
        self.name = "TF-IDF + logistic regression" + (" (unweighted)" if class_weight is None else "")
        self.seed = seed
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                     max_features=100_000)
        self.window = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")

    @staticmethod
    def _window(e: TargetExample, width: int = 5) -> str:
        left = e.sentence[: e.start].split()[-width:]
        right = e.sentence[e.end :].split()[:width]
        return " ".join([f"L_{w}" for w in left] + ["TARGET"] + [f"R_{w}" for w in right])

    def _features(self, examples: list[TargetExample]):
        tags = csr_matrix(np.array([[e.tag == t for t in TAGS] for e in examples], dtype=float))
        sentences = [e.sentence for e in examples]
        return hstack([self.words.transform(sentences), self.chars.transform(sentences),
                       self.window.transform([self._window(e) for e in examples]), tags]).tocsr()

    def fit(self, examples: list[TargetExample]) -> "TargetTfidfBaseline":
        sentences = [e.sentence for e in examples]
        self.words.fit(sentences)
        self.chars.fit(sentences)
        self.window.fit([self._window(e) for e in examples])
        self.model = LogisticRegression(C=4.0, class_weight=self.class_weight, max_iter=3000, random_state=self.seed)
        self.model.fit(self._features(examples), [e.label for e in examples])
        return self

    def predict(self, examples: list[TargetExample]) -> list[str]:
        return [str(x) for x in self.model.predict(self._features(examples))]


def neutral_shift_sweep(probabilities: torch.Tensor, gold: list[str], shifts=np.arange(-3.0, 3.01, 0.25)) -> list[dict]:
    """F1_PN and F1_PN0 when ``shift`` is added to the neutral log-probability before the argmax
    (negative shifts favour the polar classes): the effect of a decision threshold on neutral."""
    logp = torch.log(probabilities.clamp(min=1e-9))
    neutral = SENTIMENTS.index("neutral")
    rows = []
    for shift in shifts:
        adjusted = logp.clone()
        adjusted[:, neutral] += float(shift)
        pred = [SENTIMENTS[i] for i in adjusted.argmax(1).tolist()]
        m = score_targeted(gold, pred)
        rows.append({"shift": round(float(shift), 2), "f1_pn": m["f1_pn"], "f1_pn0": m["f1_pn0"]})
    return rows


def _split_settings(training: dict) -> tuple[float, int]:
    """dev_fraction and split_seed of a saved training config (the defaults of older configs)."""
    data, defaults = training.get("data", {}), DataConfig()
    return data.get("dev_fraction", defaults.dev_fraction), data.get("split_seed", defaults.split_seed)


def _select_split(examples: list[TargetExample], split: str | None, training: dict) -> list[TargetExample]:
    if split is None or split == "all":
        return examples
    data = training.get("data", {})
    if data.get("dev"):
        raise DataError(f"--split {split}: this model was trained with a separate dev file ({data['dev']}); "
                        "pass that file instead")
    train, dev = split_by_sentence(examples, *_split_settings(training))
    return dev if split == "dev" else train


def run_target_evaluation(model_dir: str | Path, data: str | Path, out_dir: str | Path, split: str | None = None,
                          train_file: str | Path | None = None, batch_size: int = 32, log=print,
                          command: str | None = None, device: str = "auto", corpora_dir=None) -> dict:
    """Score a targeted-sentiment model on a RuSentNE-format file, beside majority and TF-IDF baselines.

    ``split`` (dev / train) re-creates the by-sentence split stored in the model's training config, so
    ``--data train.tsv --split dev`` scores the held-out dev part. An unlabelled file gets predictions only.
    Writes ``metrics.json``, ``report.md``, PNG plots and ``predictions.tsv`` (line, span, label, probabilities).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    classifier = TargetClassifier.load(model_dir, batch_size=batch_size, device=device)
    training = read_training_config(model_dir)
    examples, bad = read_target_file(data, strict=False)
    for row in bad[:20]:
        log(f"skipped {data}:{row.line}: {row.reason}")
    examples = _select_split(examples, split, training)
    if not examples:
        raise DataError(f"{data}: no valid rows to score")
    started = time.time()
    probabilities = classifier.probabilities(examples)
    seconds = round(time.time() - started, 2)
    predictions = classifier.decode(examples, probabilities)
    log(f"model: {len(examples)} targets in {seconds} s")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_predictions(examples, predictions, out_dir / "predictions.tsv")
    labelled = all(e.label is not None for e in examples)
    summary = {"model_dir": str(model_dir), "data": str(data), "split": split, "n_targets": len(examples),
               "n_sentences": len({e.sentence for e in examples}), "skipped_rows": [vars(b) for b in bad],
               "labelled": labelled, "model_seconds": seconds,
               "base_model": classifier.settings.get("base_model"),
               "target_marker": classifier.settings.get("target_marker"),
               "training_seconds": _training_seconds(model_dir), "command": command}
    if labelled:
        gold = [e.label for e in examples]
        systems = {"model": score_targeted(gold, [p.sentiment for p in predictions])}
        train_examples = _baseline_training(training, train_file, log)
        if train_examples:
            for baseline in (MajorityBaseline(), TargetTfidfBaseline(), TargetTfidfBaseline(class_weight=None)):
                systems[baseline.name] = score_targeted(gold, baseline.fit(train_examples).predict(examples))
        summary["systems"] = systems
        summary["headline"] = {name: headline_targeted(m) for name, m in systems.items()}
        summary["neutral_shift_sweep"] = neutral_shift_sweep(probabilities, gold)
    from rustance.train.report import write_targeted_report

    write_targeted_report(summary, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def _training_seconds(model_dir: Path) -> float | None:
    history = model_dir / "history.json"
    return json.loads(history.read_text()).get("seconds") if history.is_file() else None


def _baseline_training(training: dict, train_file: str | Path | None, log) -> list[TargetExample]:
    """The examples the model was trained on (its train split), for fitting the baselines."""
    data = training.get("data", {})
    path = train_file or data.get("train")
    if not path or not Path(path).is_file():
        log("no training file found for the baselines (pass --train FILE); scoring the model only")
        return []
    if train_file:
        return read_target_file(train_file)[0]
    train, _ = load_target_splits(path, data.get("dev"), *_split_settings(training))
    return train


def _write_predictions(examples: list[TargetExample], predictions, path: Path) -> None:
    """Predictions by source line (no sentence text): line, start, end, label (-1/0/1), probabilities."""
    code = {"negative": -1, "neutral": 0, "positive": 1}
    lines = ["line\tentity_pos_start_rel\tentity_pos_end_rel\tlabel\tp_negative\tp_neutral\tp_positive"]
    for e, p in zip(examples, predictions):
        probs = "\t".join(f"{p.probabilities[s]:.4f}" for s in SENTIMENTS)
        lines.append(f"{e.line}\t{e.start}\t{e.end}\t{code[p.sentiment]}\t{probs}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
