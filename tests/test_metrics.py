from sklearn.metrics import f1_score

from rustance.metrics import Labels, score

TOPICS = ["flights", "sanctions"]
GOLD = [
    Labels({"flights": "critical"}, "negative"),
    Labels({"sanctions": "neutral"}, "neutral"),
    Labels({"flights": "conditional", "sanctions": "conditional"}, "neutral"),
    Labels({}, "positive"),
]


def test_perfect_predictions_score_one():
    result = score(GOLD, GOLD, TOPICS)
    assert result["topic"]["macro_f1"] == 1.0
    assert result["stance"]["macro_f1"] == 1.0
    assert result["joint"]["macro_f1"] == 1.0
    assert result["sentiment"]["accuracy"] == 1.0


def test_stance_is_scored_on_gold_topics_even_when_topic_missed():
    pred = [
        Labels({}, "negative", {"flights": "critical", "sanctions": "neutral"}),  # topic missed, stance right
        Labels({"sanctions": "critical"}, "neutral", {"sanctions": "critical", "flights": "neutral"}),
        Labels({"flights": "conditional"}, "negative", {"flights": "conditional", "sanctions": "neutral"}),
        Labels({"flights": "neutral"}, "positive", {"flights": "neutral", "sanctions": "neutral"}),
    ]
    result = score(GOLD, pred, TOPICS)
    gold_stances = ["critical", "neutral", "conditional", "conditional"]
    pred_stances = ["critical", "critical", "conditional", "neutral"]
    labels = ["critical", "neutral", "conditional"]  # classes present in gold
    assert result["stance"]["macro_f1"] == f1_score(gold_stances, pred_stances, labels=labels, average="macro")
    assert result["stance"]["per_class"]["conciliatory"]["support"] == 0
    assert result["topic"]["per_class"]["flights"]["support"] == 2
    assert result["topic"]["per_class"]["flights"]["predicted"] == 2
    # joint: one (sentence, topic) pair per cell, 'none' where absent
    joint_gold = ["critical", "none", "none", "neutral", "conditional", "conditional", "none", "none"]
    joint_pred = ["none", "none", "none", "critical", "conditional", "none", "neutral", "none"]
    expected = f1_score(joint_gold, joint_pred, labels=["critical", "neutral", "conditional"], average="macro")
    assert abs(result["joint"]["macro_f1"] - expected) < 1e-12
    assert result["sentiment"]["confusion"][1] == [1, 1, 0]  # gold neutral: one predicted negative, one neutral


def test_topic_thresholds_are_chosen_on_dev():
    import torch

    from rustance.labels import Topic
    from rustance.records import Record
    from rustance.train.trainer import choose_thresholds

    topics = (Topic("flights", ""), Topic("sanctions", ""))
    records = [Record(str(i), "x", {"flights": "neutral"} if i < 6 else {}, "neutral") for i in range(12)]
    # flights positives score 0.35..0.45, negatives 0.1: only a low threshold separates them
    probs = torch.tensor([[0.35 + 0.02 * i, 0.9] if i < 6 else [0.1, 0.9] for i in range(12)])
    chosen = choose_thresholds(probs, records, topics)
    assert 0.1 < chosen["flights"] <= 0.35
    assert chosen["sanctions"] == 0.5  # no positives: keep the default
