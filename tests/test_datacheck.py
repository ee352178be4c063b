"""Counts, data targets and agreement figures that `rustance data check` prints."""

import json

from conftest import toy_records, write_jsonl
from rustance.agreement import agreement, agreement_markdown
from rustance.datacheck import check_splits, count_table, target_rows
from rustance.labels import load_topics

TOPICS = load_topics()


def _splits(tmp_path, train_rows):
    write_jsonl(tmp_path / "train.jsonl", train_rows)
    for name in ("dev", "test"):
        write_jsonl(tmp_path / f"{name}.jsonl", [])
    return check_splits(tmp_path, TOPICS)


def test_counts_real_pairs_and_context_slice(tmp_path):
    rows = [
        {"id": "a", "text": "Первое.", "topics": {"flights": "critical", "sanctions": "conditional"},
         "sentiment": "negative", "context_needed": True},
        {"id": "b", "text": "Второе.", "topics": {"flights": "neutral"}, "sentiment": "neutral"},
        {"id": "c", "text": "Третье.", "topics": {"flights": "neutral"}, "sentiment": "neutral", "origin": "written"},
        {"id": "d", "text": "Четвёртое.", "topics": {}, "sentiment": "neutral"},
    ]
    table = {row[0]: row[1:] for row in count_table(_splits(tmp_path, rows), TOPICS)}
    assert table["real-sentence pairs"][0] == "3"  # the written record's pair is not real
    assert table["real stance: neutral"][0] == "1"
    assert table["context slice (pairs)"][0] == "2"
    assert table["context needed (records)"][0] == "1"
    targets = {row[0]: row for row in target_rows(count_table(_splits(tmp_path, rows), TOPICS))}
    assert targets["train: real-sentence (sentence, topic) pairs"][1:] == ["3", ">= 6000", "no"]
    assert targets["all: records with no topic (negatives)"][1] == "25.0 %"
    assert targets["all: records with no topic (negatives)"][3] == "yes"


def test_context_needed_agreement_only_when_both_passes_have_it():
    a = {"topics": {"flights": "critical"}, "sentiment": "negative", "context_needed": True}
    b = {"topics": {"flights": "critical"}, "sentiment": "negative", "context_needed": False}
    c = {"topics": {"flights": "neutral"}, "sentiment": "neutral", "context_needed": False}
    result = agreement([(a, a), (a, b), (c, c), (c, c)], [t.id for t in TOPICS])
    assert result["context_needed_items"] == 4
    assert result["context_needed_agreement"] == 0.75
    assert "context needed" in agreement_markdown(result)
    plain = {"topics": {"flights": "neutral"}, "sentiment": "neutral"}  # rounds 1-4 carry no context_needed
    old = agreement([(plain, plain), (plain, c)], [t.id for t in TOPICS])
    assert "context_needed_kappa" not in old
