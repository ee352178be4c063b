"""rustance.train.fusion: weights chosen on dev, fusion in training, `rustance fuse`, and what a fused model
reports (predict, evaluate, ONNX)."""

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rustance.cli import app
from rustance.labels import STANCES
from rustance.lexical import FILE, blend
from rustance.train.fusion import choose_fusion

runner = CliRunner()
IDS = ["a", "b"]


def _gold(n=60, seed=0):
    rng = np.random.default_rng(seed)
    presence = (rng.random((n, 2)) < 0.5).astype(float)
    stance = np.where(presence > 0.5, rng.integers(0, len(STANCES), (n, 2)), -100)
    sentiment = rng.integers(0, 3, n)
    return presence, stance, sentiment


def _perfect(gold):
    presence, stance, sentiment = gold
    topic = np.where(presence > 0.5, 0.9, 0.1)
    stance_p = np.full((*stance.shape, len(STANCES)), 0.1)
    for (i, j), s in np.ndenumerate(stance):
        stance_p[i, j, max(int(s), 0)] = 0.7
    sentiment_p = np.full((len(sentiment), 3), 0.15)
    sentiment_p[np.arange(len(sentiment)), sentiment] = 0.7
    return topic, stance_p, sentiment_p


def _noise(gold, seed=1):
    rng = np.random.default_rng(seed)
    topic, stance, sentiment = _perfect(gold)
    return rng.random(topic.shape), rng.dirichlet(np.ones(len(STANCES)), stance.shape[:2]), \
        rng.dirichlet(np.ones(3), len(sentiment))


def test_a_perfect_network_keeps_weight_one_and_a_perfect_tfidf_takes_over():
    gold = _gold()
    weights, thresholds, metrics = choose_fusion(_perfect(gold), _noise(gold), gold, IDS, log=lambda m: None)
    assert weights is None and metrics["joint_macro_f1"] == 1.0 and set(thresholds) == set(IDS)
    weights, _, metrics = choose_fusion(_noise(gold), _perfect(gold), gold, IDS, log=lambda m: None)
    assert weights is not None and all(w < 1 for w in weights.values())
    assert metrics["topic_macro_f1"] == metrics["stance_macro_f1"] == metrics["sentiment_macro_f1"] == 1.0


def test_blend_temperatures_sharpen_an_underconfident_blend_without_changing_its_decisions():
    from rustance.train.fusion import fit_blend_temperatures

    gold = _gold(200)
    network, lexical = _perfect(gold), _perfect(gold)  # right every time, yet only 0.7 confident
    weights = {"topic": 0.5, "stance": 0.5, "sentiment": 0.5}
    temperatures = fit_blend_temperatures(network, lexical, gold, weights)
    assert temperatures["stance"] < 1 and temperatures["sentiment"] < 1
    net = tuple(torch.as_tensor(p, dtype=torch.float32) for p in network)
    plain, sharp = blend(net, lexical, weights), blend(net, lexical, weights, temperatures)
    assert torch.equal(plain[1].argmax(-1), sharp[1].argmax(-1)) and torch.equal(plain[0], sharp[0])
    assert sharp[1].max(-1).values.mean() > plain[1].max(-1).values.mean()
    torch.testing.assert_close(sharp[2].sum(-1), torch.ones(len(gold[2])))


def test_without_threshold_tuning_the_weights_are_chosen_at_one_half():
    gold = _gold()
    weights, thresholds, _ = choose_fusion(_noise(gold), _perfect(gold), gold, IDS, log=lambda m: None,
                                           tune_thresholds=False)
    assert thresholds is None and weights["topic"] < 1


def test_a_class_missing_from_train_gets_probability_zero_and_fusion_still_fits():
    from conftest import toy_records
    from rustance.labels import load_topics
    from rustance.records import Record
    from rustance.train.fusion import fit_fusion

    topics = load_topics()
    records = [Record(id=r["id"], text=r["text"], topics=r["topics"], sentiment=r["sentiment"])
               for r in toy_records() if "conditional" not in r["topics"].values()]
    texts = [r.text for r in records]
    gold = (np.array([[t.id in r.topics for t in topics] for r in records], dtype=float),
            np.array([[STANCES.index(r.topics[t.id]) if t.id in r.topics else -100 for t in topics] for r in records]),
            np.array([("negative", "neutral", "positive").index(r.sentiment) for r in records]))
    network = (torch.full((len(records), len(topics)), 0.5), torch.full((len(records), len(topics), 4), 0.25),
               torch.full((len(records), 3), 1 / 3))
    lexical, weights, temperatures, _, _ = fit_fusion(records, topics, texts, network, gold, log=lambda m: None)
    assert lexical is not None and weights is not None and set(temperatures) == {"stance", "sentiment"}
    _, stance, _ = lexical.probabilities(texts)
    assert np.all(stance[..., STANCES.index("conditional")] == 0)
    np.testing.assert_allclose(stance.sum(-1), 1.0)


SETTINGS = ["train.batch_size=9", "train.head_learning_rate=0.01", "train.learning_rate=0.001", "model.max_length=32",
            "train.warmup_ratio=0", "train.epochs=2", "train.patience=20"]


@pytest.fixture(scope="module")
def fused_model(tiny_encoder_dir, tmp_path_factory):
    """A tiny model trained with TF-IDF fusion on the toy files (dev = the train sentences: TF-IDF wins there)."""
    from conftest import toy_records, write_jsonl

    folder = tmp_path_factory.mktemp("fusion")
    train = write_jsonl(folder / "train.jsonl", toy_records("tr"))
    dev = write_jsonl(folder / "dev.jsonl", toy_records("dv"))
    out = folder / "model"
    sets = [f"model.name={tiny_encoder_dir}", f"data.train={train}", f"data.dev={dev}", f"train.output_dir={out}",
            *SETTINGS, "train.tfidf_fusion=true", "train.group_by_length=true"]  # length-grouped batches (the
    # offline recipe's): the dev predictions that the fusion step blends must still come back in file order
    result = runner.invoke(app, ["train", *[x for s in sets for x in ("--set", s)]])
    assert result.exit_code == 0, result.output
    assert "fusion: topic weight of the network" in result.output
    return out, train, dev


def test_training_saves_the_tfidf_part_and_predict_reports_the_blend(fused_model):
    from rustance import load

    out, _, _ = fused_model
    config = json.loads((out / "config.json").read_text())
    assert (out / FILE).is_file() and set(config["fusion"]) == {"topic", "stance", "sentiment"}
    assert any(w < 1 for w in config["fusion"].values())
    assert "TF-IDF fusion" in (out / "README.md").read_text() and FILE in json.loads(
        (out / ".rustance-files.json").read_text())["files"]
    classifier = load(out, device="cpu")
    texts = ["Москва готова возобновить прямое авиасообщение.", "Погода в Москве будет тёплой."]
    logits, _ = classifier.logits(texts)
    assert set(config["fusion_temperatures"]) == {"stance", "sentiment"}
    expected = blend(classifier.scale(logits), classifier.lexical.probabilities(texts), config["fusion"],
                     config["fusion_temperatures"])
    got = classifier.probabilities(texts)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    network_only = classifier.scale(logits)
    assert any(not torch.allclose(a, b) for a, b in zip(got, network_only))  # the blend changes what is reported
    prediction = classifier.predict(texts)[0]
    assert prediction.sentiment_probabilities == pytest.approx(
        dict(zip(("negative", "neutral", "positive"), got[2][0].tolist())))


def test_a_fused_model_without_its_tfidf_file_is_a_clear_error(fused_model, tmp_path):
    from rustance import load
    from rustance.model import ModelLoadError

    out, _, _ = fused_model
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / FILE).unlink()
    with pytest.raises(ModelLoadError, match="tfidf.skops"):
        load(broken)
    result = runner.invoke(app, ["predict", "--model", str(broken)], input="Санкции незаконны.\n")
    assert result.exit_code == 2 and "tfidf.skops" in result.output


def test_fuse_command_adds_fusion_to_a_trained_model_and_evaluate_scores_the_blend(fused_model, tiny_model_dir,
                                                                                   tmp_path):
    from rustance import load

    out, train, dev = fused_model
    missing = runner.invoke(app, ["fuse", "--model", str(tiny_model_dir), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "--train and --dev" in missing.output
    absent = runner.invoke(app, ["fuse", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")])
    assert absent.exit_code == 2 and "no such model folder" in absent.output and not (tmp_path / "y").exists()
    fused = tmp_path / "fused"
    result = runner.invoke(app, ["fuse", "--model", str(tiny_model_dir), "--out", str(fused), "--train", str(train),
                                 "--dev", str(dev)])
    assert result.exit_code == 0, result.output
    assert (fused / FILE).is_file() and load(fused).fusion is not None
    again = runner.invoke(app, ["fuse", "--model", str(tiny_model_dir), "--out", str(fused), "--train", str(train),
                                "--dev", str(dev)])
    assert again.exit_code == 2 and "exists" in again.output
    report = runner.invoke(app, ["evaluate", "--model", str(fused), "--data", str(dev), "--train", str(train),
                                 "--out", str(tmp_path / "eval")])
    assert report.exit_code == 0, report.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["fusion"] == load(fused).fusion
    assert "TF-IDF part" in (tmp_path / "eval" / "report.md").read_text()
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    classifier = load(fused)
    direct = classifier.predict([r["sentence"] for r in rows])  # evaluate reports what predict reports: the blend
    assert [[t["topic"] for t in r["topics"]] for r in rows] == [[t.topic for t in p.topics] for p in direct]
    for row, prediction in zip(rows, direct):
        assert row["sentiment_positive"] == pytest.approx(prediction.sentiment_probabilities["positive"], abs=1e-4)
    network_only = classifier.scale(classifier.logits([r["sentence"] for r in rows])[0])[2][:, 2]
    assert any(abs(r["sentiment_positive"] - float(p)) > 1e-3 for r, p in zip(rows, network_only))


def test_onnx_export_of_a_fused_model_carries_the_tfidf_part(fused_model, tmp_path):
    pytest.importorskip("onnxruntime")
    from rustance import load
    from rustance.inference.onnx_backend import load_onnx

    out, _, dev = fused_model
    result = runner.invoke(app, ["export-onnx", "--model", str(out), "--out", str(tmp_path / "onnx"),
                                 "--check", str(dev)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "onnx" / FILE).is_file()
    texts = ["Санкции — незаконное давление, заявил министр.", "Выставка откроется в понедельник."]
    for a, b in zip(load_onnx(tmp_path / "onnx").probabilities(texts), load(out).probabilities(texts)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_fuse_with_a_context_tfidf_part_blends_what_the_previous_sentence_says(tiny_model_dir, tmp_path):
    from conftest import write_jsonl
    from test_lexical import _context_records

    from rustance import load
    from rustance.train.trainer import read_training_config

    rows = [{"id": r.id, "text": r.text, "topics": r.topics, "sentiment": r.sentiment, "context": r.context}
            for r in _context_records()]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    fused = tmp_path / "fused"
    result = runner.invoke(app, ["fuse", "--model", str(tiny_model_dir), "--out", str(fused), "--train", str(data),
                                 "--dev", str(data), "--tfidf-context"])
    assert result.exit_code == 0, result.output
    assert "also read the previous sentence" in result.output
    assert read_training_config(fused)["train"]["tfidf_context"] is True
    assert "also read the previous sentence" in (fused / "README.md").read_text()  # the model card says so
    classifier = load(fused)
    assert classifier.lexical.context is True
    texts = ["Решение по этому вопросу пока не принято."] * 2
    contexts = ["Россия предложила восстановить прямое авиасообщение с США.", "В Москве ожидается тёплая погода."]
    logits, _ = classifier.logits(texts, contexts)
    lexical = classifier.lexical.probabilities(texts, contexts)
    assert lexical[0][0].tolist() != lexical[0][1].tolist()  # the TF-IDF part's topics follow the context
    expected = blend(classifier.scale(logits), lexical, classifier.fusion, classifier.fusion_temperatures)
    for got, want in zip(classifier.probabilities(texts, contexts), expected):  # what predict and the engines use
        torch.testing.assert_close(got, want)
    flights_index = [t.id for t in classifier.topics].index("flights")
    after = {c: classifier.predict_document(f"{c} {texts[0]}")[-1] for c in contexts}  # documents pass contexts too
    assert [p.text for p in after.values()] == texts
    for context, prediction in after.items():
        logits, _ = classifier.logits(texts[:1], [context])
        want = blend(classifier.scale(logits), classifier.lexical.probabilities(texts[:1], [context]),
                     classifier.fusion, classifier.fusion_temperatures)[0][0, flights_index]
        got = next(t.probability for t in prediction.all_topics if t.topic == "flights")
        assert got == pytest.approx(float(want), abs=1e-5)
    refit = runner.invoke(app, ["fuse", "--model", str(fused), "--out", str(tmp_path / "plain"), "--no-tfidf-context"])
    assert refit.exit_code == 0, refit.output  # either flag fits a new TF-IDF part, here reading the sentence alone
    assert load(tmp_path / "plain").lexical.context is False
    again = runner.invoke(app, ["fuse", "--model", str(tmp_path / "plain"), "--out", str(tmp_path / "again"),
                                "--train", str(data)])
    assert again.exit_code == 0, again.output  # a refit without a flag keeps the model's own choice
    assert load(tmp_path / "again").lexical.context is False


def test_the_dev_figures_training_saves_are_what_evaluate_finds_on_dev(fused_model, tmp_path):
    """The fusion step of training blends the dev predictions with the TF-IDF part's dev probabilities record by
    record; evaluating the saved model on the same dev file must give the same figures (it would not if the
    Trainer had returned the dev predictions in another order than the file's, as it does for length-grouped
    evaluation unless told otherwise)."""
    out, train, dev = fused_model
    saved = json.loads((out / "dev_metrics.json").read_text())
    result = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(dev), "--train", str(train),
                                 "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "eval" / "metrics.json").read_text())["headline"]["model"]
    for name in ("topic_macro_f1", "stance_macro_f1", "joint_macro_f1", "sentiment_macro_f1"):
        assert found[name] == pytest.approx(saved[name], abs=1e-6), name
