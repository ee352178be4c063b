import json

import pytest

from conftest import toy_records, write_jsonl
from rustance.corpora import span_digest
from rustance.labels import load_topics
from rustance.records import DataError, load_records

TOPICS = load_topics()


def test_valid_file_loads(tmp_path):
    records = load_records(write_jsonl(tmp_path / "ok.jsonl", toy_records()), TOPICS)
    assert len(records) == len(toy_records())
    assert records[0].topics == toy_records()[0]["topics"]


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "bad JSON"),
        ('["a list"]', "JSON object"),
        ('{"id": "x", "topics": {}, "sentiment": "neutral"}', "needs 'text'"),
        ('{"id": "x", "text": "  ", "topics": {}, "sentiment": "neutral"}', "non-empty string"),
        ('{"id": "x", "text": "a", "topics": {"weather": "neutral"}, "sentiment": "neutral"}', "unknown topic 'weather'"),
        ('{"id": "x", "text": "a", "topics": {"sanctions": "angry"}, "sentiment": "neutral"}', "unknown stance 'angry'"),
        ('{"id": "x", "text": "a", "topics": {}, "sentiment": "meh"}', "'sentiment' must be one of"),
        ('{"id": "x", "text": "a", "topics": [], "sentiment": "neutral"}', "'topics' must be an object"),
        ('{"text": "a", "topics": {}, "sentiment": "neutral"}', "missing or empty 'id'"),
        ('{"id": "x", "text": "a", "topics": {"flights": "neutral"}, "sentiment": "neutral", "context_needed": "yes"}',
         "'context_needed' must be true or false"),
        ('{"id": "x", "text": "a", "topics": {}, "sentiment": "neutral", "context_needed": true}',
         "'context_needed' is true but the record has no topic"),
    ],
)
def test_bad_record_reports_file_and_line(tmp_path, line, reason):
    good = json.dumps(toy_records()[0], ensure_ascii=False)
    path = tmp_path / "data.jsonl"
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_records(path, TOPICS)
    assert f"{path}:2:" in str(info.value)
    assert reason in str(info.value)


def test_duplicate_ids_and_invalid_utf8(tmp_path):
    rows = toy_records()[:2]
    rows[1]["id"] = rows[0]["id"]
    path = write_jsonl(tmp_path / "dup.jsonl", rows)
    with open(path, "ab") as handle:
        handle.write(b'{"id": "\xff\xfe"}\n')
    with pytest.raises(DataError) as info:
        load_records(path, TOPICS)
    message = str(info.value)
    assert "2 invalid record(s)" in message
    assert f"{path}:2: duplicate id" in message
    assert f"{path}:3: not valid UTF-8" in message


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_records(tmp_path / "absent.jsonl", TOPICS)


def _fake_corpus(root):
    folder = root / "rusentrel" / "train"
    folder.mkdir(parents=True)
    text = "{Author, Unknown} Первое предложение.\n{Author, Unknown} Москва осудила новые санкции США. Ещё одно."
    (folder / "art1.txt").write_text(text, encoding="utf-8")
    return text.replace("{Author, Unknown}", " " * len("{Author, Unknown}"))


def test_standoff_records_resolve_with_context(tmp_path):
    text = _fake_corpus(tmp_path / "corpora")
    span = "Москва осудила новые санкции США."
    start = text.index(span)
    source = {"corpus": "rusentrel", "doc": "art1.txt", "start": start, "end": start + len(span),
              "sha1": span_digest(span)}
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "s1", "source": source, "topics": {"sanctions": "critical"},
                                               "sentiment": "negative"}])
    [record] = load_records(path, TOPICS, tmp_path / "corpora")
    assert record.text == span
    assert record.context == "Первое предложение."


def test_standoff_span_that_no_longer_matches_fails_clearly(tmp_path):
    text = _fake_corpus(tmp_path / "corpora")
    start = text.index("Москва")
    source = {"corpus": "rusentrel", "doc": "art1.txt", "start": start, "end": start + 10, "sha1": "0000000000"}
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "s1", "source": source, "topics": {}, "sentiment": "neutral"}])
    with pytest.raises(DataError, match="no longer matches"):
        load_records(path, TOPICS, tmp_path / "corpora")
    source.update(doc="art9.txt")
    write_jsonl(path, [{"id": "s1", "source": source, "topics": {}, "sentiment": "neutral"}])
    with pytest.raises(DataError, match="no document 'art9.txt'"):
        load_records(path, TOPICS, tmp_path / "corpora")


def test_custom_topic_file(tmp_path):
    topic_file = tmp_path / "topics.yaml"
    topic_file.write_text("- id: energy\n  description: газ, нефть, энергетика\n- id: sanctions\n  description: санкции\n",
                          encoding="utf-8")
    topics = load_topics(topic_file)
    assert [t.id for t in topics] == ["energy", "sanctions"]
    path = write_jsonl(tmp_path / "e.jsonl", [{"id": "e1", "text": "Газ подорожал.", "topics": {"energy": "neutral"},
                                               "sentiment": "neutral"}])
    assert load_records(path, topics)[0].topics == {"energy": "neutral"}
    with pytest.raises(DataError, match="unknown topic 'energy'"):
        load_records(path, TOPICS)
    topic_file.write_text("- id: a\n- id: a\n")
    with pytest.raises(ValueError, match="appears twice"):
        load_topics(topic_file)


def test_context_needed_is_read(tmp_path):
    rows = toy_records()[:2]
    rows[0]["topics"] = {"flights": "critical"}
    rows[0]["context_needed"] = True
    records = load_records(write_jsonl(tmp_path / "ctx.jsonl", rows), TOPICS)
    assert [r.context_needed for r in records] == [True, False]
