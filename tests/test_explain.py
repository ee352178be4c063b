"""Explanations by word occlusion: the right words on a known function, real-model weights, output layout."""

import numpy as np
import pyarrow as pa
import pytest

import rustance.explain as explain
from conftest import TOY
from rustance import load
from rustance.explain import add_explanations, explained_schema, occlusion, without, words_of
from rustance.inference.engine import document_sentences, label_rows, output_schema
from rustance.inference.readers import Document


def cue_stance(texts, contexts):
    """Topic 0's 'critical' (stance 1) probability rises with «осудил» (+0.6) and «недопустимо» (+0.1);
    «мир» lowers it (-0.1); the context «резко» adds 0.05 whatever the sentence."""
    out = np.full((len(texts), 2, 4), 0.25)
    for i, (text, context) in enumerate(zip(texts, contexts)):
        words = set(text.lower().replace(",", " ").replace(".", " ").split())
        out[i, 0, 1] = 0.1 + 0.6 * ("осудил" in words) + 0.1 * ("недопустимо" in words) - 0.1 * ("мир" in words) \
            + 0.05 * ("резко" in context)
    return out


def test_occlusion_finds_the_words_that_raised_the_stance(monkeypatch):
    monkeypatch.setattr(explain, "CHUNK", 3)  # variants go through the function in several calls
    texts = ["МИД осудил запрет, это недопустимо и мир далёк.", "Погода тёплая.", "Осудил."]
    result = occlusion(texts, [[(0, 1)], [], [(0, 1), (1, 1)]], cue_stance, contexts=["резко", "", ""])
    words = [[(w.word, round(w.weight, 6)) for w in found] for found in result[0]]
    assert words == [[("осудил", 0.6), ("недопустимо", 0.1)]]  # «мир» lowered it: not listed; the others: 0
    assert result[1] == []
    assert [(w.word, round(w.weight, 6)) for w in result[2][0]] == [("Осудил", 0.6)] and result[2][1] == []
    first = result[0][0][0]
    assert texts[0][first.start : first.end] == "осудил"


def test_words_and_deletion():
    text = "Москва, однако, готова — к диалогу."
    assert [w for _, _, w in words_of(text)] == ["Москва", "однако", "готова", "к", "диалогу"]
    spans = [(s, e) for s, e, w in words_of(text) if w in ("однако", "к")]
    assert without(text, spans) == "Москва, , готова — диалогу."
    with pytest.raises(ValueError):
        occlusion(["a"], [], cue_stance)


def test_real_model_weights_are_probability_drops(tiny_model_dir):
    classifier = load(tiny_model_dir)
    sentences = document_sentences(Document("d1", " ".join(t for t, _, _ in TOY[:4]), "test", 1))
    rows = label_rows(classifier, sentences, "tiny")
    for row in rows:  # make sure something is explained whatever the untrained model says
        if not row["topics"]:
            row["topics"] = [{"topic": "flights", "stance": "critical"}]
    contexts = [s[5] for s in sentences]
    add_explanations(classifier, rows, contexts, top_k=3)
    row, context = rows[0], contexts[0]
    entry = row["topics"][0]
    assert 0 < len(entry["words"]) <= 3
    weights = [w["weight"] for w in entry["words"]]
    assert weights == sorted(weights, reverse=True) and min(weights) > 0
    j = [t.id for t in classifier.topics].index(entry["topic"])
    k = ["conciliatory", "critical", "conditional", "neutral"].index(entry["stance"])
    spans = {w: (s, e) for s, e, w in words_of(row["sentence"])}
    full = classifier.probabilities([row["sentence"]], [context])[1][0, j, k].item()
    top = entry["words"][0]
    dropped = classifier.probabilities([without(row["sentence"], [spans[top["word"]]])], [context])[1][0, j, k].item()
    assert top["weight"] == pytest.approx(full - dropped, abs=1e-4)
    table = pa.Table.from_pylist(rows, schema=explained_schema(output_schema()))  # the layout predict --explain writes
    assert table.column("topics").to_pylist()[0][0]["words"][0]["word"] == top["word"]


def test_predict_with_explain_sets_words(tiny_model_dir):
    classifier = load(tiny_model_dir)
    texts = [t for t, _, _ in TOY[:6]]
    plain = classifier.predict(texts)
    predictions = classifier.predict(texts, explain=True)
    assert all(t.words is None for p in plain for t in p.topics)
    assert "words" not in str(plain[0].to_row())
    explained = [t for p in predictions for t in p.topics]
    assert explained and any(t.words for t in explained)
    for p in predictions:
        assert [t.topic for t in p.topics] == [t.topic for t in plain[predictions.index(p)].topics]
        for t, entry in zip(p.topics, p.to_row()["topics"]):
            assert all(w.weight > 0 and p.text[w.start : w.end] == w.word for w in t.words)
            assert entry["words"] == [w.to_dict() for w in t.words]


def test_all_signs_on_request():
    texts = ["МИД осудил запрет, мир далёк."]
    found = occlusion(texts, [[(0, 1)]], cue_stance, top_k=10, positive_only=False)[0][0]
    weights = {w.word: round(w.weight, 6) for w in found}
    assert weights == {"осудил": 0.6, "МИД": 0.0, "запрет": 0.0, "далёк": 0.0, "мир": -0.1}
    assert found[0].word == "осудил" and found[-1].word == "мир"


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_pooled_model_dir"])
def test_integrated_gradients_are_complete_and_word_aligned(fixture, request):
    """Attributions sum to f(sentence) - f(baseline) (IG's completeness: a sentence without punctuation, whose
    tokens all belong to words), and land on the sentence's words."""
    pytest.importorskip("captum", reason="captum is not installed: pip install 'rustance[explain]'")
    import torch

    from rustance.explain import _encode_with_offsets, integrated_gradients

    classifier = load(request.getfixturevalue(fixture))
    text, context = TOY[13][0].rstrip("."), TOY[1][0]
    found = integrated_gradients(classifier, [text], [[(0, 1)]], [context], top_k=50, steps=64,
                                 positive_only=False)[0][0]
    assert sorted(w.word for w in found) == sorted(w for _, _, w in words_of(text))
    assert all(text[w.start : w.end] == w.word for w in found)
    merged, spans = _encode_with_offsets(classifier.inputs, text, context)
    ids = torch.tensor([merged.ids])
    baseline = ids.clone()
    assert [text[s[0] : s[1]].lower() for s in spans if s is not None] == [w.lower() for _, _, w in words_of(text)]
    baseline[0, [i for i, s in enumerate(spans) if s is not None]] = classifier.inputs.pad_id

    def stance_of(token_ids):
        batch = {"input_ids": token_ids, "attention_mask": torch.ones_like(token_ids)}
        if classifier.inputs.with_types:
            batch["token_type_ids"] = torch.tensor([merged.type_ids])
        with torch.no_grad():
            if classifier.inputs.pooled_context:
                ctx = classifier.model.vectors(**classifier.inputs.pad(classifier.inputs.encode([context])))
                logits = classifier.model.heads(torch.cat([classifier.model.vectors(**batch), ctx], -1))
            else:
                logits = classifier.model(**batch)
        return torch.softmax(logits["stance_logits"][0, 0], -1)[1].item()

    assert stance_of(ids) == pytest.approx(classifier.probabilities([text], [context])[1][0, 0, 1].item(), abs=1e-4)
    difference = stance_of(ids) - stance_of(baseline)
    assert sum(w.weight for w in found) == pytest.approx(difference, abs=0.05 * abs(difference) + 1e-4)
