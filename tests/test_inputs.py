"""Model inputs: pair layout, truncation (the context keeps its end), padding, length batching."""

import pytest

from conftest import E5_DIR, TINY2_SHAPE_DIR
from rustance.inputs import InputBuilder, length_batches

SENTENCES = ["Однако в Госдепе США пока увязывают рассмотрение этих тем с отвлечёнными политическими сюжетами.",
             "Переговорная позиция России будет пересмотрена.", "Да."]
CONTEXTS = ["Москва предлагает возобновить прямое авиасообщение и вернуть дипсобственность.", "", None]


def real_tokenizer(folder):
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.txt").is_file():
        pytest.skip(f"{folder} is absent (../shared/models holds it on the project machines)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("folder", [TINY2_SHAPE_DIR, E5_DIR], ids=["rubert-tiny2", "e5-small"])
def test_untruncated_inputs_equal_the_tokenizers_own_pair_encoding(folder):
    tokenizer = real_tokenizer(folder)
    builder = InputBuilder(tokenizer, {"max_length": 128, "use_context": True})
    batch, truncated = builder(SENTENCES, CONTEXTS)
    assert truncated == [False, False, False]
    for row, (text, context) in enumerate(zip(SENTENCES, CONTEXTS)):
        expected = {k: v[0] for k, v in tokenizer([text], [context or ""]).items()}  # lists: "" stays a pair
        length = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row, :length].tolist() == expected["input_ids"]
        assert set(batch["input_ids"][row, length:].tolist()) <= {tokenizer.pad_token_id}
        if "token_type_ids" in expected:
            assert batch["token_type_ids"][row, :length].tolist() == expected["token_type_ids"]
    assert ("token_type_ids" in batch) == ("token_type_ids" in tokenizer.model_input_names)


def test_context_gets_the_room_left_and_keeps_its_end():
    tokenizer = real_tokenizer(TINY2_SHAPE_DIR)
    max_length = 24
    builder = InputBuilder(tokenizer, {"max_length": max_length, "use_context": True})
    sentence_ids = tokenizer(SENTENCES[1], add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(CONTEXTS[0], add_special_tokens=False)["input_ids"]
    (item,) = builder.encode([SENTENCES[1]], [CONTEXTS[0]])
    room = max_length - 3 - len(sentence_ids)
    assert 0 < room < len(context_ids)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert item.ids == [cls, *sentence_ids, sep, *context_ids[-room:], sep]
    assert item.type_ids == [0] * (len(sentence_ids) + 2) + [1] * (room + 1)
    assert not item.truncated


def test_long_sentence_is_cut_flagged_and_leaves_no_room_for_context():
    tokenizer = real_tokenizer(TINY2_SHAPE_DIR)
    builder = InputBuilder(tokenizer, {"max_length": 16, "use_context": True})
    (item,) = builder.encode([SENTENCES[0]], [CONTEXTS[0]])
    sentence_ids = tokenizer(SENTENCES[0], add_special_tokens=False)["input_ids"]
    assert item.truncated and len(item.ids) == 16
    assert item.ids == [tokenizer.cls_token_id, *sentence_ids[:13], tokenizer.sep_token_id, tokenizer.sep_token_id]

    single = InputBuilder(tokenizer, {"max_length": 16, "use_context": False, "text_prefix": ""})
    (item,) = single.encode([SENTENCES[0]], [CONTEXTS[0]])  # the context is ignored without use_context
    assert item.truncated and item.ids == [tokenizer.cls_token_id, *sentence_ids[:14], tokenizer.sep_token_id]


def test_length_batches_cover_every_index_once_longest_first():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = list(length_batches(lengths, 3))
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_slow_tokenizers_are_refused():
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast"):
        InputBuilder(Slow(), {"max_length": 8})
