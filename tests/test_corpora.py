"""Corpus readers and sentence splitting (real corpora tests skip when ../shared is absent)."""

import itertools

import pytest

from conftest import SHARED
from rustance.corpora import CORPORA, StandoffError, iter_documents, resolve_span, span_digest
from rustance.text import split_sentences

CORPORA_DIR = SHARED / "corpora"


def test_split_sentences_offsets_and_line_breaks():
    text = "Первое предложение. Второе — с цифрами 1.5 и т. д.\n\n   Третье после пустой строки!"
    sentences = split_sentences(text)
    assert [s.text for s in sentences][0] == "Первое предложение."
    assert sentences[-1].text == "Третье после пустой строки!"
    for s in sentences:
        assert text[s.start : s.end] == s.text


@pytest.mark.skipif(not CORPORA_DIR.is_dir(), reason=f"corpora not found at {CORPORA_DIR}")
@pytest.mark.parametrize("corpus", CORPORA)
def test_every_corpus_reads_and_resolves(corpus):
    docs = list(itertools.islice(iter_documents(corpus, CORPORA_DIR), 5))
    assert docs and all(isinstance(d, str) and text.strip() for d, text in docs)
    doc, text = docs[-1]
    sentence = split_sentences(text)[0]
    source = {"corpus": corpus, "doc": doc, "start": sentence.start, "end": sentence.end,
              "sha1": span_digest(sentence.text)}
    assert resolve_span(source, CORPORA_DIR) == sentence.text
    with pytest.raises(StandoffError, match="bad span"):
        resolve_span({**source, "end": len(text) + 10}, CORPORA_DIR)
