"""The project's own labelled data must load, resolve against ../shared/corpora and keep splits apart."""

from pathlib import Path

import pytest

from conftest import SHARED
from rustance.labels import load_topics
from rustance.records import load_records

DATA = Path(__file__).resolve().parents[1] / "data" / "stance"
CORPORA = SHARED / "corpora"


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"corpora not found at {CORPORA}")
def test_stance_splits_resolve_and_do_not_overlap():
    topics = load_topics()
    splits = {name: load_records(DATA / f"{name}.jsonl", topics, CORPORA) for name in ("train", "dev", "test")}
    assert all(splits.values())
    texts = {name: {" ".join(r.text.split()) for r in records} for name, records in splits.items()}
    docs = {name: {(r.source["corpus"], r.source["doc"]) for r in records if r.source} for name, records in splits.items()}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not texts[a] & texts[b], f"same sentence in {a} and {b}"
        assert not docs[a] & docs[b], f"same source document in {a} and {b}"
    assert all(r.origin == "corpus" for r in splits["test"]), "project-written records must not be in test"
