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
