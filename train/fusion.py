"""TF-IDF fusion, fitted after training (``train.tfidf_fusion``, or ``rustance fuse`` for a trained model).

The lexical part (:class:`~rustance.train.baselines.TfidfBaseline`) is fitted on the training records. Then, on
dev, one weight per head is chosen from :data:`GRID` by that head's dev macro-F1 (topic: at thresholds re-tuned
for each weight; stance given the gold topic; sentiment), one head at a time, starting from the network alone
and keeping it on ties; the topic thresholds are then chosen anew for the blended topic probabilities. If every
head keeps weight 1 the model stays unfused. The network's probabilities are the calibrated ones (temperatures
first): the blend mixes what the predictor reports.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from rustance.lexical import HEADS, blend
from rustance.metrics import decode_labels, gold_labels, headline, score

GRID = tuple(float(w) for w in np.round(np.arange(1.0, -0.01, -0.1), 1))  # network weight; 1 = network alone
METRIC = {"topic": "topic_macro_f1", "stance": "stance_macro_f1", "sentiment": "sentiment_macro_f1"}


def choose_fusion(network: tuple, lexical: tuple, gold: tuple, topic_ids: list[str], log=print,
                  tune_thresholds: bool = True):
    """Per-head network weights and the topic thresholds for the blend, chosen on dev.

    ``network`` and ``lexical`` are ``(topic, stance, sentiment)`` probabilities of the dev records (tensors or
    arrays of the model's shapes), ``gold`` their ``(presence, stance, sentiment)`` targets. Returns ``(weights,
    thresholds, dev_metrics)``; ``weights`` is None when the network alone is best on every head. Without
    ``tune_thresholds`` topics are decided at 0.5 throughout (and ``thresholds`` is None), as the model will."""
    from rustance.train.trainer import choose_thresholds

    network = tuple(torch.as_tensor(np.asarray(p), dtype=torch.float32) for p in network)
    presence = np.asarray(gold[0])
    reference = gold_labels(*(np.asarray(g) for g in gold), topic_ids)

    def evaluate(weights: dict, thresholds=None):
        topic, stance, sentiment = (p.numpy() for p in blend(network, lexical, weights))
        if thresholds is None and tune_thresholds:
            thresholds = choose_thresholds(topic, presence, topic_ids)
        return headline(score(reference, decode_labels(topic, stance, sentiment, topic_ids, thresholds), topic_ids)), \
            thresholds

    weights = {head: 1.0 for head in HEADS}
    _, thresholds = evaluate(weights)
    for head in HEADS:
        best = None
        for w in GRID:
            trial = {**weights, head: w}
            metrics, _ = evaluate(trial, None if head == "topic" else thresholds)
            if best is None or metrics[METRIC[head]] > best[0] + 1e-9:
                best = (metrics[METRIC[head]], w)
        weights[head] = best[1]
        if head == "topic":
            _, thresholds = evaluate(weights)
        log(f"fusion: {head} weight of the network {best[1]:g} (dev {METRIC[head]} {best[0]:.4f})")
    metrics, thresholds = evaluate(weights)
    if all(w == 1.0 for w in weights.values()):
        return None, thresholds, metrics
    return weights, thresholds, metrics


def fit_blend_temperatures(network: tuple, lexical: tuple, gold: tuple, weights: dict) -> dict[str, float]:
    """Temperatures of the blended stance and sentiment distributions (``softmax(log(p) / T)``), fitted on dev
    by negative log-likelihood (the trainer's ``fit_temperature`` over log-probabilities); they change no
    decision, only the confidence reported."""
    from rustance.train.trainer import fit_temperature

    network = tuple(torch.as_tensor(np.asarray(p), dtype=torch.float32) for p in network)
    _, stance, sentiment = blend(network, lexical, weights)
    log = {"stance": torch.log(stance.clamp_min(1e-12)).numpy(), "sentiment": torch.log(sentiment.clamp_min(1e-12)).numpy()}
    return {"stance": fit_temperature(log["stance"], np.asarray(gold[1])),
            "sentiment": fit_temperature(log["sentiment"], np.asarray(gold[2]))}


def fit_fusion(train_records, topics, dev_texts: list[str], network: tuple, gold: tuple, log=print,
               tune_thresholds: bool = True, lexical=None, dev_contexts: list[str] | None = None,
               context: bool = False):
    """Fit the TF-IDF part on ``train_records`` and choose the fusion on dev (:func:`choose_fusion`).
    ``context``: its topic models also read the previous sentence (``TfidfBaseline(context=True)``; the dev
    records' previous sentences are ``dev_contexts``).

    Returns ``(lexical, weights, temperatures, thresholds, dev_metrics)`` (``temperatures``: of the blend,
    :func:`fit_blend_temperatures`); ``lexical``, ``weights`` and ``temperatures`` are None when the fusion is
    not used (the network alone is best on dev, or the training data has a single stance or sentiment class, so
    TF-IDF gives no probabilities for them). ``lexical`` may be given (already fitted) instead of
    ``train_records``."""
    from rustance.train.baselines import TfidfBaseline

    if lexical is None:
        log(f"fusion: fitting TF-IDF + logistic regression on {len(train_records)} training records"
            + (" (topic models also read the previous sentence)" if context else ""))
        lexical = TfidfBaseline(topics, context=context).fit(train_records)
    if lexical.stance_model is None or lexical.sentiment_model is None:
        log("fusion: skipped (the training data have a single stance or sentiment class)")
        return None, None, None, None, None
    dev_lexical = lexical.probabilities(dev_texts, dev_contexts)
    weights, thresholds, metrics = choose_fusion(network, dev_lexical, gold, [t.id for t in topics], log,
                                                 tune_thresholds)
    if weights is None:
        log("fusion: the network alone is best on dev; no TF-IDF part kept")
        return None, None, None, thresholds, metrics
    temperatures = fit_blend_temperatures(network, dev_lexical, gold, weights)
    log(f"fusion: temperatures of the blend {temperatures}")
    return lexical, weights, temperatures, thresholds, metrics


def fuse_model(model_dir: str | Path, out_dir: str | Path, train: str | None = None, dev: str | None = None,
               corpora_dir: str | None = None, log=print, context: bool | None = None) -> dict:
    """Add (or refit) the TF-IDF fusion of a trained stance model and save the result to ``out_dir`` (a new
    folder): the same weights and temperatures, the TF-IDF part fitted on the model's training file (or
    ``train``; a fused model keeps its own unless ``train`` is given), fusion weights and topic thresholds (if the model has any) chosen on its dev file (or ``dev``).
    ``context``: a new TF-IDF part's topic models also read the previous sentence (default: as the model's own
    TF-IDF part or training configuration did, else ``train.tfidf_context``'s default); giving it refits the
    TF-IDF part like ``train``.
    Returns the dev metrics of the fused model; a :class:`TrainingError` (nothing written) when the network
    alone is best on dev."""
    import yaml

    from rustance.config import TrainConfig
    from rustance.inference.predictor import Classifier
    from rustance.records import DataError, load_records
    from rustance.train.trainer import TrainingError, read_training_config, record_targets, save_model_folder

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not model_dir.is_dir():
        raise TrainingError(f"{model_dir}: no such model folder")
    if out_dir.exists():
        raise TrainingError(f"{out_dir} exists; choose a new output folder")
    training = read_training_config(model_dir)
    data = training.get("data", {})
    given_train = train
    train, dev = train or data.get("train"), dev or data.get("dev")
    if not train or not dev:
        raise DataError(f"{model_dir} names no training or dev file (training_config.yaml); pass --train and --dev")
    corpora_dir = corpora_dir or data.get("corpora_dir")
    classifier = Classifier.load(model_dir)
    reuse = classifier.lexical if given_train is None and context is None else None  # a fused model keeps its own
    if context is None and classifier.lexical is not None:  # a refit keeps the model's own choice
        context = getattr(classifier.lexical, "context", False)  # parts saved before the option read the sentence alone
    elif context is None:  # an unfused model: its training configuration's, else the default
        context = bool(training.get("train", {}).get("tfidf_context", TrainConfig.tfidf_context))
    if reuse is not None:
        log(f"fusion: reusing the TF-IDF part of {model_dir} (pass --train to fit a new one)")
    train_records = load_records(train, classifier.topics, corpora_dir) if reuse is None else []
    dev_records = load_records(dev, classifier.topics, corpora_dir)
    texts = [r.text for r in dev_records]
    contexts = [r.context for r in dev_records]
    log(f"the network's probabilities on {len(texts)} dev records ({dev})")
    logits, _ = classifier.logits(texts, contexts)
    targets = record_targets(dev_records, classifier.topics)
    gold = tuple(targets[k].numpy() for k in ("presence", "stance", "sentiment"))
    tune = bool(classifier.thresholds)  # a model trained without tune_thresholds keeps deciding at 0.5
    lexical, weights, temperatures, thresholds, metrics = fit_fusion(
        train_records, classifier.topics, texts, classifier.scale(logits, lexical=None), gold, log, tune, reuse,
        contexts, context)
    if lexical is None:
        raise TrainingError(f"{model_dir}: TF-IDF fusion does not help this model on {dev} (or cannot be fitted: "
                            "see above); nothing written")
    model = classifier.model
    model.config.fusion, model.config.fusion_temperatures, model.lexical = weights, temperatures, lexical
    if tune:
        model.config.thresholds = thresholds
    extra = {}
    for name in ("history.json", "training_curve.png"):
        if (model_dir / name).is_file():
            extra[name] = (model_dir / name).read_bytes()
    training.setdefault("train", {}).update({"tfidf_fusion": True,
                                             "tfidf_context": bool(getattr(lexical, "context", False))})
    training.setdefault("data", {}).update({"train": str(train), "dev": str(dev)})  # the files the fusion used
    extra["training_config.yaml"] = yaml.safe_dump(training, allow_unicode=True, sort_keys=False)
    previous = {}
    if (model_dir / "dev_metrics.json").is_file():
        previous = json.loads((model_dir / "dev_metrics.json").read_text(encoding="utf-8"))
    extra["dev_metrics.json"] = json.dumps({"step": previous.get("step"), **metrics, "fused_from": str(model_dir)},
                                           indent=2)
    try:
        save_model_folder(model.cpu(), classifier.tokenizer, out_dir, extra)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    log(f"fused model saved to {out_dir}: weights of the network {weights}")
    return metrics
