"""Confidence a user can act on: ECE, the abstain rule (min_confidence) in the API and the CLI, the coverage curve."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TOY
from rustance import load
from rustance.calibration import coverage_curve, detection_confidence, reliability, top_label
from rustance.cli import app
from rustance.inference.corpus import ComputeOptions, options_fingerprint
from rustance.inference.engine import iter_rows
from rustance.labels import STANCES
from rustance.metrics import Labels, score

runner = CliRunner()
TEXTS = [t for t, _, _ in TOY]


def test_ece_matches_a_hand_computed_fixture():
    # 15 bins of width 1/15, closed on the right:
    #   bin 1 (0.067, 0.133]: 0.10 right, 0.12 wrong -> confidence 0.11, accuracy 0.5, |gap| 0.39, 2 items
    #   bin 4 (0.267, 0.333]: 0.30 wrong            -> |0 - 0.30| = 0.30, 1 item
    #   bin 7 (0.467, 0.533]: 0.50 right            -> |1 - 0.50| = 0.50, 1 item
    #   bin 14 (0.933, 1]:    0.95 right, 1.0 wrong -> confidence 0.975, accuracy 0.5, |gap| 0.475, 2 items
    # ECE = (2 * 0.39 + 0.30 + 0.50 + 2 * 0.475) / 6 = 2.53 / 6
    result = reliability([0.10, 0.12, 0.50, 0.95, 1.0, 0.30], [1, 0, 1, 1, 0, 0])
    assert result["ece"] == pytest.approx(2.53 / 6)
    assert [b["count"] for b in result["bins"]] == [0, 2, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2]
    assert result["bins"][14]["confidence"] == pytest.approx(0.975) and result["bins"][14]["accuracy"] == 0.5
    assert result["bins"][0]["confidence"] is None and result["n"] == 6
    # a calibrated bin: 0.75 confidence, three right out of four
    assert reliability([0.75] * 4, [1, 1, 1, 0])["ece"] == pytest.approx(0.0)


def test_reliability_bins_agree_with_scikit_learn():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.25, 1.0, 400)
    correct = rng.uniform(size=400) < confidence ** 2
    result = reliability(confidence, correct)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=15, strategy="uniform")
    used = [b for b in result["bins"] if b["count"]]
    np.testing.assert_allclose([b["accuracy"] for b in used], accuracy)
    np.testing.assert_allclose([b["confidence"] for b in used], mean_confidence)
    assert sum(b["count"] for b in result["bins"]) == 400


def test_top_label_scores_the_most_probable_class():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.35, 0.25]])
    result = top_label(probabilities, np.array([0, 2, 0]))
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["mean_confidence"] == pytest.approx((0.7 + 0.6 + 0.4) / 3)


def _stance_rows(top: list[float]) -> torch.Tensor:
    """Stance probabilities whose most probable class (critical) has probability ``top[k]``."""
    rows = []
    for p in top:
        rest = (1 - p) / 3
        rows.append([rest, p, rest, rest])
    return torch.tensor(rows)


def test_uncertain_exactly_below_the_cut_on_crafted_probabilities(tiny_model_dir):
    classifier = load(tiny_model_dir)
    ids = [t.id for t in classifier.topics]
    classifier.thresholds = {ids[0]: 0.3}  # the others keep 0.5
    # one sentence; per topic: its probability and its top stance probability
    topic_p = [0.35, 0.9, 0.55, 0.45, 0.2, 0.6, 0.05]
    stance_top = [0.9, 0.59, 0.6, 0.9, 0.3, 0.95, 0.4]
    topic = torch.tensor([topic_p], dtype=torch.float32)
    stance = _stance_rows(stance_top).unsqueeze(0)
    sentiment = torch.tensor([[0.2, 0.5, 0.3]])
    plain = classifier.decode(["x"], topic, stance, sentiment)[0]
    assert [t.topic for t in plain.topics] == [ids[1], ids[5], ids[2], ids[0]] and plain.uncertain_topics is None
    assert "uncertain_topics" not in plain.to_row()
    cut = 0.6
    abstained = classifier.decode(["x"], topic, stance, sentiment, min_confidence=cut)[0]
    confidence = detection_confidence(np.array(topic_p, dtype=np.float32).astype(float),
                                      classifier.threshold_array())
    # topic 0: p 0.35 over its 0.3 threshold, decision confidence 0.35 < 0.6 -> uncertain although reported before
    # topic 3: p 0.45 under 0.5, confidence 0.55 -> uncertain; topic 4: 0.2, confidence 0.8 -> confidently absent
    assert [t.topic for t in abstained.topics] == [ids[1], ids[5]]
    assert [t.topic for t in abstained.uncertain_topics] == [ids[2], ids[3], ids[0]]  # most probable first
    assert {ids[j] for j in range(7) if confidence[j] < cut} == {t.topic for t in abstained.uncertain_topics}
    for j, entry in enumerate(abstained.all_topics):
        assert entry.stance == ("uncertain" if stance_top[j] < cut else "critical"), (j, entry)
        assert entry.stance_probabilities["critical"] == pytest.approx(stance_top[j])  # probabilities kept
    assert abstained.topics[0].stance == "uncertain"  # 0.59 < 0.6; 0.6 itself is answered (topic 2)
    row = abstained.to_row()
    assert [t["stance"] for t in row["uncertain_topics"]] == ["critical", "critical", "critical"]
    assert abstained.sentiment == plain.sentiment


def test_predict_min_confidence_keeps_the_default_and_rejects_bad_values(tiny_model_dir):
    classifier = load(tiny_model_dir)
    plain = classifier.predict(TEXTS)
    confidences = sorted(max(t.stance_probabilities.values()) for p in plain for t in p.all_topics)
    cut = confidences[len(confidences) // 2]  # about half the stances fall under it
    abstained = classifier.predict(TEXTS, min_confidence=cut)
    answered = uncertain = 0
    for p, q in zip(plain, abstained):
        assert q.sentiment_probabilities == p.sentiment_probabilities
        for a, b in zip(p.all_topics, q.all_topics):
            assert b.stance_probabilities == a.stance_probabilities
            if max(a.stance_probabilities.values()) < cut:
                assert b.stance == "uncertain"
                uncertain += 1
            else:
                assert b.stance == a.stance
                answered += 1
        assert {t.topic for t in q.topics} | {t.topic for t in q.uncertain_topics} >= {t.topic for t in p.topics}
    assert answered and uncertain
    assert [p.to_row() for p in classifier.predict(TEXTS, min_confidence=None)] == [p.to_row() for p in plain]
    for bad in (0, 1, 1.5, -0.2, "0.5", True):
        with pytest.raises(ValueError, match="min_confidence must be a number between 0 and 1"):
            classifier.predict(TEXTS[:1], min_confidence=bad)
    document = classifier.predict_document(" ".join(TEXTS[:3]), min_confidence=cut)
    assert all(p.uncertain_topics is not None for p in document)


def _labels(presence, stance, topic_ids):
    return [Labels(topics={t: STANCES[stance[i][j]] for j, t in enumerate(topic_ids) if presence[i][j]},
                   sentiment="neutral") for i in range(len(presence))]


def test_coverage_curve_by_hand_and_monotone():
    topic_ids = ["a", "b"]
    thresholds = np.array([0.5, 0.5])
    # three sentences × two topics
    presence = np.array([[1, 0], [1, 1], [0, 0]])
    gold = np.array([[0, -100], [1, 3], [-100, -100]])
    topic = np.array([[0.9, 0.2], [0.7, 0.4], [0.1, 0.95]])
    stance = np.zeros((3, 2, 4))
    stance[0, 0] = [0.8, 0.1, 0.05, 0.05]  # right, confident
    stance[1, 0] = [0.5, 0.3, 0.1, 0.1]  # wrong (gold critical), unsure
    stance[1, 1] = [0.1, 0.1, 0.1, 0.7]  # right (neutral); topic missed (0.4 < 0.5)
    stance[0, 1] = stance[2, 0] = [0.25, 0.25, 0.25, 0.25]
    stance[2, 1] = [0.1, 0.6, 0.2, 0.1]  # topic b reported in a sentence without topics
    curves = coverage_curve(topic, stance, presence, gold, thresholds, cuts=(0.0, 0.6, 0.75))
    stance_curve = {p["cut"]: p for p in curves["stance"]}
    assert [stance_curve[c]["answered"] for c in (0.0, 0.6, 0.75)] == [3, 2, 1]
    # at 0.6 the unsure wrong pair is dropped: conciliatory and neutral both right
    assert stance_curve[0.6]["macro_f1"] == pytest.approx(1.0)
    joint = {p["cut"]: p for p in curves["joint"]}
    # joint confidences: (s0,a) min(0.9, 0.8)=0.8; (s0,b) 0.8; (s1,a) min(0.7, 0.5)=0.5; (s1,b) 0.6;
    # (s2,a) 0.9; (s2,b) min(0.95, 0.6)=0.6
    assert [joint[c]["answered"] for c in (0.0, 0.6, 0.75)] == [6, 5, 3]
    assert joint[0.75]["coverage"] == pytest.approx(0.5) and joint[0.75]["macro_f1"] == pytest.approx(1.0)
    # at cut 0 the curves give the metrics of every pair
    predicted = _labels(topic >= thresholds, stance.argmax(-1), topic_ids)
    for i, p in enumerate(predicted):
        p.stance_for = {t: STANCES[stance[i, j].argmax()] for j, t in enumerate(topic_ids)}
    metrics = score(_labels(presence, gold, topic_ids), predicted, topic_ids)
    assert stance_curve[0.0]["macro_f1"] == pytest.approx(metrics["stance"]["macro_f1"])
    assert joint[0.0]["macro_f1"] == pytest.approx(metrics["joint"]["macro_f1"])
    # on random probabilities coverage only falls as the cut rises
    rng = np.random.default_rng(1)
    topic = rng.uniform(size=(50, 2))
    stance = rng.dirichlet(np.ones(4), size=(50, 2))
    presence = (rng.uniform(size=(50, 2)) < 0.5).astype(int)
    gold = np.where(presence > 0, rng.integers(0, 4, size=(50, 2)), -100)
    for points in coverage_curve(topic, stance, presence, gold, thresholds).values():
        coverage = [p["coverage"] for p in points]
        assert coverage == sorted(coverage, reverse=True) and coverage[0] == 1.0 and coverage[-1] < 1.0


def test_min_confidence_option_is_fingerprinted_and_validated(tiny_model_dir, tmp_path):
    assert "compute.min_confidence" not in options_fingerprint(compute=ComputeOptions())
    assert options_fingerprint(compute=ComputeOptions(min_confidence=0.6))["compute.min_confidence"] == 0.6
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(TEXTS)), encoding="utf-8")
    plain = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(data), "--output", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    rows = list(iter_rows(tmp_path / "a"))
    assert all("uncertain_topics" not in r for r in rows)
    confidences = sorted(max(t[s] for s in STANCES) for r in rows for t in r["topics"])
    cut = round(confidences[len(confidences) // 2], 4)
    again = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(data), "--output", str(tmp_path / "a"),
                                "--min-confidence", str(cut)])
    assert again.exit_code == 2 and "compute.min_confidence" in again.output
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / f"b-{fmt}"
        result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(data), "--output", str(out),
                                     "--min-confidence", str(cut), "--format", fmt])
        assert result.exit_code == 0, result.output
        abstained = list(iter_rows(out))
        assert len(abstained) == len(rows)
        seen = set()
        for before, after in zip(rows, abstained):
            assert set(after) == set(before) | {"uncertain_topics"}
            stances = {t["topic"]: t for t in before["topics"]}
            for t in after["topics"] + after["uncertain_topics"]:
                top = max(t[s] for s in STANCES)
                if abs(top - cut) > 1e-4:  # rounded to 4 decimals in the rows
                    assert (t["stance"] == "uncertain") == (top < cut), t
                    seen.add(t["stance"] == "uncertain")
                if t["topic"] in stances and t["stance"] != "uncertain":
                    assert t["stance"] == stances[t["topic"]]["stance"]
        assert seen == {True, False}
        manifest = json.loads((out / "_manifest.json").read_text())
        assert manifest["fingerprint"]["compute.min_confidence"] == cut
    streamed = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(data), "--min-confidence", "0.5"])
    assert streamed.exit_code == 0 and "uncertain_topics" in streamed.stdout.splitlines()[0]
    for bad in ("1", "0", "1.5", "-0.1"):
        result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(data), "--min-confidence", bad])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert lines == [f"error: --min-confidence must be a number between 0 and 1 (exclusive), got {float(bad)!r}"]
