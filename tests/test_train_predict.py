"""End to end on a tiny BERT: train via the CLI, load, predict, evaluate."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TOY
from rustance import SentencePrediction, TopicStance, load
from rustance.cli import app

runner = CliRunner()


def _train(tiny_encoder_dir, toy_files, out, *extra):
    train, dev = toy_files
    return runner.invoke(app, ["train", "--set", f"model.name={tiny_encoder_dir}", "--set", f"data.train={train}",
                               "--set", f"data.dev={dev}", "--set", f"train.output_dir={out}",
                               "--set", "train.batch_size=6", "--set", "train.head_learning_rate=0.01",
                               "--set", "train.learning_rate=0.001", "--set", "model.max_length=32", *extra])


@pytest.fixture(scope="module")
def trained(tiny_encoder_dir, tmp_path_factory):
    from conftest import toy_records, write_jsonl

    folder = tmp_path_factory.mktemp("run")
    files = (write_jsonl(folder / "train.jsonl", toy_records("tr")), write_jsonl(folder / "dev.jsonl", toy_records("dv")))
    result = _train(tiny_encoder_dir, files, folder / "model", "--set", "train.epochs=40", "--set", "train.patience=40",
                    "--set", "train.warmup_ratio=0")
    assert result.exit_code == 0, result.output
    return folder


def test_checkpoint_layout(trained):
    model = trained / "model"
    assert json.loads((model / "config.json").read_text())["context_mode"] == "pooled"  # the default
    for name in ("config.json", "model.safetensors", "training_config.yaml", "dev_metrics.json", "history.json"):
        assert (model / name).is_file(), name
    assert json.loads((model / "config.json").read_text())["id2label"] == {"0": "negative", "1": "neutral",
                                                                           "2": "positive"}


def test_training_learns_the_toy_task(trained):
    metrics = json.loads((trained / "model" / "dev_metrics.json").read_text())
    assert metrics["overall_macro_f1"] > 0.8, metrics
    history = json.loads((trained / "model" / "history.json").read_text())["epochs"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_predict_returns_typed_deterministic_results(trained):
    classifier = load(trained / "model")
    texts = [t for t, _, _ in TOY[:6]]
    first, again = classifier.predict(texts), classifier.predict(list(reversed(texts)))[::-1]
    assert all(isinstance(p, SentencePrediction) for p in first)
    assert all(isinstance(t, TopicStance) for p in first for t in p.topics)
    assert [p.to_row() for p in first] == [p.to_row() for p in again]
    for p in first:
        assert sum(p.sentiment_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert len(p.all_topics) == 7
    assert classifier.predict([]) == []
    with pytest.raises(TypeError):
        classifier.predict([1, 2])


def test_repeated_inputs_are_computed_once_with_the_same_result(tiny_model_dir):
    import torch

    classifier = load(tiny_model_dir)  # a pair-context model: the same sentence with another context is new
    texts = [t for t, _, _ in TOY[:4]]
    contexts = ["", texts[0], texts[1], texts[2]]
    repeated_texts = texts + texts[:2] + [texts[0]]
    repeated_contexts = contexts + contexts[:2] + [texts[3]]  # the last one: same sentence, another context
    calls = []
    original = classifier.model.forward
    classifier.model.forward = lambda **batch: calls.append(len(batch["input_ids"])) or original(**batch)
    repeated = classifier.probabilities(repeated_texts, repeated_contexts)
    assert sum(calls) == 5  # four distinct pairs plus the new context
    single = [classifier.probabilities([t], [c]) for t, c in zip(repeated_texts, repeated_contexts)]
    for k in range(3):
        torch.testing.assert_close(repeated[k], torch.cat([s[k] for s in single]), atol=1e-5, rtol=1e-4)


def test_predict_document_splits_and_keeps_offsets(trained):
    classifier = load(trained / "model")
    text = "Москва готова возобновить прямое авиасообщение с Вашингтоном. ЕС утвердил новый пакет санкций.\nПогода в Москве будет тёплой."
    results = classifier.predict_document(text)
    assert len(results) == 3
    for r in results:
        assert text[r.start : r.end] == r.text


def test_training_is_reproducible(tiny_encoder_dir, toy_files, tmp_path):
    outs = []
    for name in ("a", "b"):
        result = _train(tiny_encoder_dir, toy_files, tmp_path / name, "--set", "train.max_steps=4")
        assert result.exit_code == 0, result.output
        outs.append(json.loads((tmp_path / name / "dev_metrics.json").read_text())["detail"])
    assert outs[0] == outs[1]


def test_evaluate_writes_report_with_baselines(trained, tmp_path):
    import sys

    import numpy as np

    from conftest import write_jsonl
    from rustance.calibration import top_label
    from rustance.labels import STANCES

    out = tmp_path / "eval"
    records = [json.loads(line) for line in (trained / "dev.jsonl").read_text().splitlines()]
    for record in records[:4]:  # a context slice for the study's context recall (read from predictions.jsonl)
        record["context_needed"] = True
    data = write_jsonl(tmp_path / "dev.jsonl", records)
    result = runner.invoke(app, ["evaluate", "--model", str(trained / "model"), "--data", str(data), "--out", str(out),
                                 "--train", str(trained / "train.jsonl")])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary["headline"]) == {"model", "keyword rules", "TF-IDF + logistic regression"}
    for image in ("confusion_stance", "confusion_sentiment", "confusion_joint", "reliability", "coverage"):
        assert (out / f"{image}.png").stat().st_size > 1000, image
    report = (out / "report.md").read_text()
    assert "TF-IDF" in report and "## Model: calibration" in report and "![coverage curve](coverage.png)" in report
    assert "stance" in result.output and "calibration: stance ECE" in result.output

    # calibration: ECE of the stance head over the gold topics' pairs, with the saved temperature and without
    classifier = load(trained / "model", device="cpu")
    calibration = summary["calibration"]
    assert calibration["stance"]["temperature"] == classifier.temperatures["stance"] != 1.0
    texts = [r["text"] for r in records]
    for when, temperatures in (("after", dict(classifier.temperatures)), ("before", {})):
        classifier.temperatures = temperatures
        predictions = classifier.predict(texts)
        pairs = [(p.all_topics[[t.topic for t in p.all_topics].index(topic)].stance_probabilities, STANCES.index(s))
                 for p, r in zip(predictions, records) for topic, s in r["topics"].items()]
        expected = top_label(np.array([[probs[s] for s in STANCES] for probs, _ in pairs]),
                             np.array([g for _, g in pairs]))
        assert calibration["stance"][when]["ece"] == pytest.approx(expected["ece"], abs=1e-4), when
        assert calibration["stance"][when]["n"] == len(pairs) == 14
        assert sum(b["count"] for b in calibration["sentiment"][when]["bins"]) == len(records)
    assert calibration["stance"]["before"]["ece"] != calibration["stance"]["after"]["ece"]
    rows = [line for line in report.splitlines() if line.startswith("| stance | 14 |")]
    assert rows and f"{calibration['stance']['after']['ece']:.3f}" in rows[0]

    # coverage: every pair answered at cut 0 (the model's own figures), fewer as the cut rises
    for task in ("stance", "joint"):
        curve = summary["coverage"][task]
        assert curve[0]["cut"] == 0 and curve[0]["coverage"] == 1.0
        assert curve[0]["macro_f1"] == pytest.approx(summary["headline"]["model"][f"{task}_macro_f1"])
        assert [p["coverage"] for p in curve] == sorted((p["coverage"] for p in curve), reverse=True)

    # predictions.jsonl: the one row shape (to_row) plus the record id, readable by the stance study
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    classifier.temperatures = {"stance": calibration["stance"]["temperature"],
                               "sentiment": calibration["sentiment"]["temperature"]}
    assert lines[0] == {"id": records[0]["id"], **classifier.predict(texts[:1])[0].to_row()}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from stance_study import context_recall

    recall, total = context_recall(data, out / "predictions.jsonl", str(tmp_path))
    found = [{t["topic"] for t in line["topics"]} for line in lines[:4]]
    assert total == 4 and recall == pytest.approx(sum(topic in f for r, f in zip(records[:4], found)
                                                       for topic in r["topics"]) / 4)


def test_cli_errors_are_clear(tmp_path, tiny_encoder_dir, toy_files):
    result = runner.invoke(app, ["train", "--set", "train.epochs=zero"])
    assert result.exit_code == 2 and "train.epochs" in result.output
    result = _train(tmp_path / "nowhere", toy_files, tmp_path / "m")
    assert result.exit_code == 2 and "does not exist" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "a", "topics": {"mars": "neutral"}, "sentiment": "neutral"}\n')
    result = _train(tiny_encoder_dir, (bad, bad), tmp_path / "m")
    assert result.exit_code == 2 and f"{bad}:1" in result.output and "unknown topic 'mars'" in result.output
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path), "--data", str(bad)])
    assert result.exit_code == 2 and "not a rustance model folder" in result.output
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("do not delete")
    result = _train(tiny_encoder_dir, toy_files, keep)
    assert result.exit_code == 2 and "is not a rustance model folder" in result.output
    assert (keep / "notes.txt").read_text() == "do not delete"


def test_user_topic_is_trained_and_predicted(tiny_encoder_dir, tmp_path):
    from conftest import write_jsonl

    topics = tmp_path / "topics.yaml"
    topics.write_text("- id: weather\n  description: погода\n- id: flights\n  description: авиасообщение\n",
                      encoding="utf-8")
    rows = [{"id": f"w{i}", "text": t, "topics": ({"weather": "neutral"} if "Погода" in t else
                                                  {"flights": s} if (s := topics_.get("flights")) else {}),
             "sentiment": sent} for i, (t, topics_, sent) in enumerate(TOY)]
    data = write_jsonl(tmp_path / "w.jsonl", rows)
    result = _train(tiny_encoder_dir, (data, data), tmp_path / "m", "--set", f"data.topics={topics}",
                    "--set", "train.max_steps=2")
    assert result.exit_code == 0, result.output
    classifier = load(tmp_path / "m")
    assert [t.id for t in classifier.topics] == ["weather", "flights"]
    assert {t.topic for t in classifier.predict("Погода будет тёплой.")[0].all_topics} == {"weather", "flights"}


def test_topic_attention_pooling_trains_and_predicts(tiny_encoder_dir, toy_files, tmp_path):
    result = _train(tiny_encoder_dir, toy_files, tmp_path / "model", "--set", "model.pooling=topic_attention",
                    "--set", "train.epochs=40", "--set", "train.patience=40", "--set", "train.warmup_ratio=0")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "model" / "dev_metrics.json").read_text())
    assert metrics["overall_macro_f1"] > 0.8, metrics
    classifier = load(tmp_path / "model")
    texts = [t for t, _, _ in TOY[:4]]
    alone = classifier.predict(texts)
    document = classifier.predict_document(" ".join(texts))  # each sentence's vector reused as the next's context
    assert len(alone) == 4 and len(document) == 4
    assert all(len(p.all_topics) == 7 for p in alone)


def test_tfidf_baseline_probabilities_agree_with_its_decisions():
    import numpy as np

    from conftest import toy_records
    from rustance.labels import SENTIMENTS, STANCES, load_topics
    from rustance.records import Record
    from rustance.train.baselines import TfidfBaseline

    topics = load_topics()
    records = [Record(id=r["id"], text=r["text"], topics=r["topics"], sentiment=r["sentiment"]) for r in toy_records()]
    baseline = TfidfBaseline(topics).fit(records)
    texts = [r.text for r in records]
    topic, stance, sentiment = baseline.probabilities(texts)
    assert topic.shape == (len(texts), len(topics)) and stance.shape == (len(texts), len(topics), len(STANCES))
    assert np.allclose(stance.sum(-1), 1) and np.allclose(sentiment.sum(-1), 1)
    for i, labels in enumerate(baseline.predict(texts)):
        assert labels.sentiment == SENTIMENTS[int(sentiment[i].argmax())]
        for j, t in enumerate(baseline.topic_ids):
            assert labels.stance_for[t] == STANCES[int(stance[i, j].argmax())]
            assert (t in labels.topics) == (topic[i, j] > 0.5)
