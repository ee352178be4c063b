"""rustance.lexical: the TF-IDF part of a fused model (skops file, refusal of foreign types, the blend)."""

import numpy as np
import pytest
import torch

from conftest import toy_records
from rustance.labels import load_topics
from rustance.lexical import FILE, LexicalModelError, blend, check_weights, find_lexical, load_lexical, save_lexical
from rustance.records import Record
from rustance.train.baselines import TfidfBaseline


class Stranger:
    """A type no rustance model file holds."""

    def __init__(self):
        self.payload = [1, 2, 3]


def _fitted():
    topics = load_topics()
    records = [Record(id=r["id"], text=r["text"], topics=r["topics"], sentiment=r["sentiment"])
               for r in toy_records()]
    return TfidfBaseline(topics).fit(records), [r.text for r in records]


def test_save_and_load_give_the_same_probabilities_without_the_introspection_vocabulary(tmp_path):
    lexical, texts = _fitted()
    before = lexical.probabilities(texts + ["Совсем новое предложение о рейсах."])
    path = save_lexical(lexical, tmp_path)
    assert path == tmp_path / FILE and path.is_file()
    assert lexical.words.vocabulary_ and lexical.chars.vocabulary_  # the saved object is left as it was
    loaded = load_lexical(path)
    assert not hasattr(loaded.chars, "stop_words_") and not hasattr(loaded.words, "stop_words_")
    after = loaded.probabilities(texts + ["Совсем новое предложение о рейсах."])
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b)
    assert find_lexical(tmp_path).topic_ids == lexical.topic_ids


def test_foreign_types_corrupt_and_missing_files_are_refused(tmp_path):
    import skops.io as sio

    sio.dump(Stranger(), tmp_path / FILE)
    with pytest.raises(LexicalModelError, match="Stranger"):
        load_lexical(tmp_path / FILE)
    (tmp_path / FILE).write_bytes(b"not a zip file at all")
    with pytest.raises(LexicalModelError, match="cannot read"):
        load_lexical(tmp_path / FILE)
    (tmp_path / FILE).unlink()
    with pytest.raises(LexicalModelError, match="no tfidf.skops"):
        find_lexical(tmp_path)


def test_blend_mixes_each_head_by_its_own_weight():
    rng = np.random.default_rng(0)
    network = tuple(torch.rand(shape) for shape in ((5, 2), (5, 2, 4), (5, 3)))
    lexical = tuple(rng.random(shape) for shape in ((5, 2), (5, 2, 4), (5, 3)))
    out = blend(network, lexical, {"topic": 1.0, "stance": 0.0, "sentiment": 0.3})
    assert torch.equal(out[0], network[0])
    np.testing.assert_allclose(out[1].numpy(), lexical[1], rtol=1e-6)
    np.testing.assert_allclose(out[2].numpy(), 0.3 * network[2].numpy() + 0.7 * lexical[2], rtol=1e-5)


@pytest.mark.parametrize("weights", [{"topic": 1.0, "stance": 0.5}, {"topic": 1.2, "stance": 0.5, "sentiment": 0},
                                     {"topic": True, "stance": 0.5, "sentiment": 0}, [0.5, 0.5, 0.5]])
def test_fusion_weights_are_checked(weights):
    with pytest.raises(LexicalModelError, match="config.fusion"):
        check_weights(weights)
    assert check_weights(None) is None
    assert check_weights({"topic": 1, "stance": 0.5, "sentiment": 0}) == {"topic": 1.0, "stance": 0.5, "sentiment": 0.0}


def _context_records():
    """Sentences that name no topic themselves: the previous sentence decides (flights or nothing)."""
    vague = ["В Госдепе пока увязывают рассмотрение этих тем с политикой.", "Такие шаги обсуждаются уже давно.",
             "Решение по этому вопросу пока не принято.", "Стороны вернутся к этому позже."]
    flights = "Россия предложила восстановить прямое авиасообщение с США."
    weather = "В Москве ожидается тёплая погода и слабый ветер."
    records = []
    for i, text in enumerate(vague * 3):
        records.append(Record(id=f"f{i}", text=text, topics={"flights": "critical"}, sentiment="negative",
                              context=flights))
        records.append(Record(id=f"w{i}", text=text, topics={}, sentiment="neutral", context=weather))
        records.append(Record(id=f"s{i}", text=flights, topics={"flights": "conciliatory"}, sentiment="positive"))
    return records


def test_a_context_tfidf_part_reads_the_previous_sentence_for_topics_and_survives_saving(tmp_path):
    topics, records = load_topics(), _context_records()
    flights = [t.id for t in topics].index("flights")
    text = "Решение по этому вопросу пока не принято."
    contexts = ["Москва ждёт ответа по прямому авиасообщению с США.", "Завтра в Москве будет тёплая погода."]
    plain = TfidfBaseline(topics).fit(records)
    reading = TfidfBaseline(topics, context=True).fit(records)
    plain_topic = plain.probabilities([text, text], contexts)[0][:, flights]
    assert plain_topic[0] == plain_topic[1]  # the default part reads the sentence alone
    topic, stance, sentiment = reading.probabilities([text, text], contexts)
    assert topic[0, flights] > 0.5 > topic[1, flights]
    np.testing.assert_allclose(stance, plain.probabilities([text, text])[1])  # stance reads the sentence alone
    assert [bool(p.topics) for p in reading.predict([text, text], contexts)] == [True, False]
    no_context = reading.probabilities([text])[0]  # none given: an empty previous sentence
    np.testing.assert_allclose(no_context, reading.probabilities([text], [""])[0])
    with pytest.raises(ValueError, match="1 sentences but 2 contexts"):
        reading.probabilities([text], contexts)
    loaded = load_lexical(save_lexical(reading, tmp_path))
    assert loaded.context is True
    np.testing.assert_allclose(loaded.probabilities([text, text], contexts)[0], topic)


def test_a_part_saved_before_the_context_option_reads_the_sentence_alone(tmp_path):
    lexical, texts = _fitted()
    del lexical.context  # as in tfidf.skops files written before TfidfBaseline(context=...) existed
    loaded = load_lexical(save_lexical(lexical, tmp_path))
    assert not hasattr(loaded, "context")
    with_context = loaded.probabilities(texts[:2], ["Прямое авиасообщение с США.", "Санкции."])
    for a, b in zip(with_context, loaded.probabilities(texts[:2])):
        np.testing.assert_allclose(a, b)
