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
