"""The evaluation harness: the model and the baselines scored on the same labelled file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rustance.calibration import BINS, coverage_curve, top_label
from rustance.inference.predictor import Classifier
from rustance.metrics import headline, score
from rustance.records import DataError, load_records
from rustance.train.baselines import KeywordBaseline, TfidfBaseline
from rustance.train.report import write_confidence_plots, write_markdown, write_plots
from rustance.train.trainer import read_training_config, record_labels, record_targets


def _training_file(model_dir: Path) -> str | None:
    return read_training_config(model_dir).get("data", {}).get("train")


def _prediction_row(record, prediction) -> dict:
    """One line of predictions.jsonl: the record's id and the prediction's :meth:`SentencePrediction.to_row`
    (the shape of ``rustance predict``'s rows); stand-off records keep their reference, not the corpus text."""
    row = {"id": record.id, **prediction.to_row()}
    if record.source is not None:
        del row["sentence"]
        row["source"] = record.source
    return row


def confidence_report(classifier: Classifier, logits: dict, records, lexical: tuple | None = None) -> tuple[dict, dict]:
    """Calibration (top-label ECE of the stance head over gold (sentence, topic) pairs and of the sentiment
    head, with the model's temperatures and without) and the coverage curves (:mod:`rustance.calibration`).
    For a fused model the probabilities are the blended ones (``lexical``: the TF-IDF part's), as reported."""
    targets = record_targets(records, classifier.topics)
    presence, stance_gold, sentiment_gold = (targets[k].numpy() for k in ("presence", "stance", "sentiment"))
    present = presence > 0.5
    calibration = {"bins": BINS, "confidence": "top-label probability",
                   "stance_pairs": "gold (sentence, topic) pairs: the stance predicted for each gold topic"}
    for head in ("stance", "sentiment"):
        calibration[head] = {"temperature": float(classifier.temperatures.get(head, 1.0))}
        if classifier.fusion:  # a fused model's blend is calibrated too ("after" applies both)
            calibration[head]["blend_temperature"] = float(classifier.fusion_temperatures.get(head, 1.0))
    for when, temperatures in (("before", {}), ("after", None)):
        topic_p, stance_p, sentiment_p = (t.double().numpy() for t in classifier.scale(logits, temperatures, lexical))
        calibration["stance"][when] = top_label(stance_p[present], stance_gold[present])
        calibration["sentiment"][when] = top_label(sentiment_p, sentiment_gold)
    coverage = coverage_curve(topic_p, stance_p, presence, stance_gold, classifier.threshold_array())
    return calibration, coverage


def run_evaluation(
    model_dir: str | Path,
    data: str | Path,
    out_dir: str | Path,
    train_file: str | Path | None = None,
    corpora_dir: str | Path | None = None,
    batch_size: int = 32,
    log=print,
    device: str = "auto",
    split: str | None = None,
    command: str | None = None,
) -> dict:
    """Score the model, a keyword baseline and TF-IDF + LR (trained on ``train_file``) on ``data``.

    Writes ``metrics.json``, ``report.md`` and confusion-matrix / per-topic PNGs to ``out_dir``.
    (``split`` is for targeted sentiment; a stance model's files are its splits.)
    """
    if split not in (None, "all"):
        raise DataError("--split applies to targeted-sentiment models; give the stance split's file as --data")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    classifier = Classifier.load(model_dir, batch_size=batch_size, device=device)
    records = load_records(data, classifier.topics, corpora_dir)
    if not records:
        raise DataError(f"{data}: no records to evaluate")
    topic_ids = [t.id for t in classifier.topics]
    gold = record_labels(records)
    texts, contexts = [r.text for r in records], [r.context for r in records]

    systems = {}
    started = time.time()
    logits, truncated = classifier.logits(texts, contexts)
    lexical = classifier.lexical_probabilities(texts, contexts)  # a fused model's TF-IDF part (None without fusion)
    predictions = classifier.decode(texts, *classifier.scale(logits, lexical=lexical), truncated)
    systems["model"] = {"metrics": score(gold, [p.to_labels() for p in predictions], topic_ids),
                        "seconds": round(time.time() - started, 2)}
    log(f"model: {len(records)} sentences in {systems['model']['seconds']} s")

    baselines = [KeywordBaseline(classifier.topics)]
    train_file = train_file or _training_file(model_dir)
    if train_file and Path(train_file).is_file():
        train_records = load_records(train_file, classifier.topics, corpora_dir)
        baselines.append(TfidfBaseline(classifier.topics).fit(train_records))
    else:
        log("no training file found for the TF-IDF baseline (pass --train FILE); scoring keyword rules only")
    for baseline in baselines:
        systems[baseline.name] = {"metrics": score(gold, baseline.predict(texts), topic_ids)}

    calibration, coverage = confidence_report(classifier, logits, records, lexical)
    for head in ("stance", "sentiment"):
        log(f"calibration: {head} ECE {calibration[head]['before']['ece']:.3f} before scaling, "
            f"{calibration[head]['after']['ece']:.3f} after (T = {calibration[head]['temperature']:g})")
    summary = {
        "model_dir": str(model_dir),
        "data": str(data),
        "train_for_baselines": str(train_file) if train_file else None,
        "n_sentences": len(records),
        "fusion": classifier.fusion,  # weights of the network per head against the model's TF-IDF part
        "headline": {name: headline(s["metrics"]) for name, s in systems.items()},
        "systems": systems,
        "calibration": calibration,
        "coverage": coverage,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    images = write_plots(systems, topic_ids, out_dir)
    images.update(write_confidence_plots(calibration, coverage, out_dir))
    write_markdown(summary, images, out_dir / "report.md")
    (out_dir / "predictions.jsonl").write_text(
        "".join(json.dumps(_prediction_row(r, p), ensure_ascii=False) + "\n" for r, p in zip(records, predictions)),
        encoding="utf-8",
    )
    return summary
