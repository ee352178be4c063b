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
