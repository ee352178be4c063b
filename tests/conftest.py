"""Shared fixtures: a tiny BERT encoder built on the spot, and small labelled files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the network

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
E5_DIR = SHARED / "models" / "multilingual-e5-small-ru"
TINY2_SHAPE_DIR = SHARED / "models" / "rubert-tiny2-shape"

# A small synthetic set: the cue words make every label learnable by a tiny model.
TOY = [
    ("Москва готова возобновить прямое авиасообщение с Вашингтоном.", {"flights": "conciliatory"}, "positive"),
    ("Стороны договорились обсудить восстановление авиарейсов.", {"flights": "conciliatory"}, "positive"),
    ("Госдеп сорвал переговоры о рейсах, это недопустимо.", {"flights": "critical"}, "negative"),
    ("МИД осудил запрет на полёты российских самолётов.", {"flights": "critical"}, "negative"),
    ("Если США снимут ограничения, рейсы будут возобновлены.", {"flights": "conditional"}, "neutral"),
    ("Авиасообщение прервано с весны.", {"flights": "neutral"}, "neutral"),
    ("Москва готова обсуждать возврат дипсобственности.", {"diplomatic_property": "conciliatory"}, "positive"),
    ("Изъятие дач — откровенный грабёж, заявили в МИД.", {"diplomatic_property": "critical"}, "negative"),
    ("Если дачи не вернут, последуют ответные меры.", {"diplomatic_property": "conditional"}, "negative"),
    ("Дачи в Мэриленде закрыты с 2016 года.", {"diplomatic_property": "neutral"}, "neutral"),
    ("ЕС утвердил новый пакет санкций.", {"sanctions": "neutral"}, "neutral"),
    ("Санкции — незаконное давление, заявил министр.", {"sanctions": "critical"}, "negative"),
    ("В ответ на новые санкции Россия примет зеркальные меры.", {"sanctions": "conditional"}, "negative"),
    ("Стороны готовы к диалогу о снятии санкций.", {"sanctions": "conciliatory"}, "positive"),
    ("Погода в Москве будет тёплой.", {}, "neutral"),
    ("Футбольный клуб выиграл кубок.", {}, "positive"),
    ("В результате пожара пострадали люди.", {}, "negative"),
    ("Выставка откроется в понедельник.", {}, "neutral"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_records(prefix: str = "toy") -> list[dict]:
    return [{"id": f"{prefix}-{i}", "text": t, "topics": topics, "sentiment": s} for i, (t, topics, s) in enumerate(TOY)]


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with a word-level vocabulary, saved like a hub model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w.lower() for text, _, _ in TOY for w in re.findall(r"\w+|[^\w\s]", text)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True, strip_accents=False)
    assert "[UNK]" not in tokenizer.tokenize(TOY[0][0])
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def toy_files(tmp_path) -> tuple[Path, Path]:
    train = write_jsonl(tmp_path / "train.jsonl", toy_records("tr"))
    dev = write_jsonl(tmp_path / "dev.jsonl", toy_records("dv"))
    return train, dev


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """An untrained rustance checkpoint (tiny encoder, random heads): enough to exercise inference."""
    import torch

    from rustance.labels import load_topics
    from rustance.model import build_model

    torch.manual_seed(0)
    model, tokenizer = build_model(str(tiny_encoder_dir), load_topics(), "mean", True, 32)
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_pooled_model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """Like ``tiny_model_dir``, but reading the previous sentence as a separately encoded input."""
    import torch

    from rustance.labels import load_topics
    from rustance.model import build_model

    torch.manual_seed(0)
    model, tokenizer = build_model(str(tiny_encoder_dir), load_topics(), "mean", True, 32, context_mode="pooled")
    folder = tmp_path_factory.mktemp("tiny-pooled-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def eager_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """``tiny_model_dir`` with every topic's threshold at 0: every sentence is about every topic, so every row
    has labels to explain (predict --explain) whatever the untrained heads say."""
    import shutil

    folder = tmp_path_factory.mktemp("eager") / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["thresholds"] = {t["id"]: 0.0 for t in config["topics"]}
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return folder


def write_predict_output(folder: Path, rows: list[dict], kept: dict | None = None, version: str | None = None,
                         model: str = "toy-model (toy)", part_rows: int = 4, weights: str = "0" * 16,
                         explained: bool = False) -> Path:
    """A predict output folder in the engine's layout (Parquet parts + _manifest.json) holding ``rows``.

    ``rows`` are output rows whose unset fields get defaults; ``kept`` maps extra columns (as predict
    --keep-column writes them) to an Arrow type; ``explained`` adds the topics' ``words`` (predict --explain).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rustance import __version__
    from rustance.inference.engine import MANIFEST, output_schema

    version = version or __version__
    schema = output_schema()
    if explained:
        from rustance.explain import explained_schema

        schema = explained_schema(schema)
    for name, kind in (kept or {}).items():
        schema = schema.append(pa.field(name, kind))
    folder.mkdir(parents=True)
    parts = []
    for number, begin in enumerate(range(0, len(rows), part_rows)):
        chunk = []
        for i, row in enumerate(rows[begin : begin + part_rows], start=begin):
            full = {"doc_id": f"d{i}", "sentence_index": 0, "start": 0, "end": 1, "sentence": f"Предложение {i}.",
                    "topics": [], "sentiment": "neutral", "sentiment_negative": 0.2, "sentiment_neutral": 0.6,
                    "sentiment_positive": 0.2, "truncated": False, "model": model, "rustance_version": version}
            full.update(row)
            chunk.append(full)
        name = f"part-{number:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema), folder / name)
        (folder / f"_part-{number:05d}.rejects.jsonl").write_text("", encoding="utf-8")
        parts.append({"name": name, "rejects": f"_part-{number:05d}.rejects.jsonl", "items": [begin, begin + len(chunk)],
                      "rows": len(chunk), "documents": len(chunk), "rejected": 0})
    manifest = {"fingerprint": {"model": "/models/toy", "weights_sha256": weights}, "rustance": version,
                "parts": parts, "complete": True}
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def topic(name: str, stance: str, probability: float = 0.9, confidence: float = 0.7) -> dict:
    """One entry of a row's ``topics``: the chosen stance gets ``confidence``, the others share the rest."""
    from rustance.labels import STANCES

    rest = round((1 - confidence) / 3, 4)
    return {"topic": name, "stance": stance, "probability": probability,
            **{s: confidence if s == stance else rest for s in STANCES}}
