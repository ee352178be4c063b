"""JSON-array input (.json files, as many exports are): streamed items, rejects with item numbers, JSON lines
under a .json name, and the end-to-end CLI run."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rustance.cli import app
from rustance.inference.engine import iter_rows
from rustance.inference.readers import Document, ReaderOptions, Reject, count_items, read_documents

runner = CliRunner()


def _items(path: Path, **options) -> list:
    return list(read_documents([str(path)], ReaderOptions(**options)))


def test_array_items_become_documents_and_bad_items_rejects(tmp_path):
    path = tmp_path / "export.json"
    items = [{"message_id": 7, "text": "Посольство России в Вашингтоне продолжит работу."}, 5,
             {"message_id": 8}, {"message_id": 9, "text": "   "}, {"message_id": 10, "text": "Второй документ."}]
    path.write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
    found = _items(path, id_column="message_id")
    assert [type(x).__name__ for x in found] == ["Document", "Reject", "Reject", "Reject", "Document"]
    assert (found[0].doc_id, found[0].line, found[4].doc_id, found[4].line) == ("7", 1, "10", 5)
    assert [(r.line, r.reason) for r in found[1:4]] == [
        (2, "JSON array item is int, not an object"), (3, "missing text field 'text'"), (4, "empty document")]
    assert count_items([str(path)], ReaderOptions()) == 5  # items, not lines of the pretty-printed file


def test_broken_array_keeps_earlier_items_and_rejects_the_rest(tmp_path):
    path = tmp_path / "broken.json"
    path.write_bytes(b'[{"text": "\xd0\x9f\xd0\xb5\xd1\x80\xd0\xb2\xd1\x8b\xd0\xb9."}, {"text": "\xff\xfe"}, {"text": "c"}]')
    found = _items(path)
    assert isinstance(found[0], Document) and found[0].text == "Первый."
    assert len(found) == 2 and isinstance(found[1], Reject) and found[1].line == 2
    assert found[1].reason.startswith("malformed JSON array after item 1, rest of file skipped")
    truncated = tmp_path / "truncated.json"
    truncated.write_text('[{"text": "a"}, {"text": "b"', encoding="utf-8")
    found = _items(truncated)
    assert [type(x).__name__ for x in found] == ["Document", "Reject"]
    assert "premature EOF" in found[1].reason


def test_json_lines_under_a_json_name_are_still_read_line_by_line(tmp_path):
    path = tmp_path / "lines.json"
    path.write_text('{"id": "a", "text": "Первый."}\n{"id": "b", "text": "Второй."}\n', encoding="utf-8")
    assert [(d.doc_id, d.line) for d in _items(path)] == [("a", 1), ("b", 2)]


def test_predict_cli_reads_a_json_export(tiny_model_dir, tmp_path):
    path = tmp_path / "channel.json"
    items = [{"message_id": i, "text": f"Москва и Вашингтон обсудили рейсы. Переговоры продолжатся {i}."}
             for i in range(4)] + [{"message_id": 99, "text": 42}]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output",
                                 str(tmp_path / "out"), "--id-column", "message_id"])
    assert result.exit_code == 0, result.output
    rows = list(iter_rows(tmp_path / "out"))
    assert [(r["doc_id"], r["sentence_index"]) for r in rows] == [(str(i), j) for i in range(4) for j in range(2)]
    rejects = [json.loads(line) for line in (tmp_path / "out" / "_rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(5, "text field 'text' is int, not a string")]


def test_byte_order_mark_big_integers_and_counts_agree_with_reading(tmp_path):
    path = tmp_path / "bom.json"
    items = [{"id": 2**70, "text": "Первый."}, {"id": 2, "text": "Второй."}, 3]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(items, ensure_ascii=False).encode())
    found = _items(path)
    assert [getattr(x, "doc_id", None) for x in found] == [str(2**70), "2", None]
    assert count_items([str(path)], ReaderOptions()) == len(found) == 3
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "a"}, {"text": "b"}, oops]', encoding="utf-8")
    assert count_items([str(broken)], ReaderOptions()) == len(_items(broken)) == 3
    lines = tmp_path / "bom.jsonl"
    lines.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "x"}\n')
    assert [d.doc_id for d in _items(lines)] == ["a"]


def test_a_top_level_object_is_one_clear_reject(tmp_path):
    export = {"name": "channel", "messages": [{"id": 1, "text": "Первый."}]}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False, indent=1), encoding="utf-8")
    for options in ({}, {"input_format": "json"}):
        found = _items(path, **options)
        assert len(found) == 1 and isinstance(found[0], Reject), options
        assert found[0].reason.startswith("not a JSON array (a JSON object)") and "--json-items" in found[0].reason
    assert count_items([str(path)], ReaderOptions()) == 1


def test_resumed_json_array_run_equals_an_uninterrupted_one(tiny_model_dir, tmp_path):
    path = tmp_path / "channel.json"
    items = [{"id": i, "text": f"Москва и Вашингтон обсудили рейсы {i}. Переговоры продолжатся."} for i in range(6)]
    items.insert(3, "not an object")
    path.write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
    whole = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output",
                                str(tmp_path / "whole"), "--part-sentences", "2"])
    assert whole.exit_code == 0, whole.output
    resumed = tmp_path / "resumed"
    first = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output", str(resumed),
                                "--part-sentences", "2"])
    assert first.exit_code == 0, first.output
    manifest_path = resumed / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["parts"], manifest["complete"] = manifest["parts"][:2], False  # as if killed after two parts
    manifest_path.write_text(json.dumps(manifest))
    again = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output", str(resumed),
                                "--part-sentences", "2"])
    assert again.exit_code == 0, again.output
    assert list(iter_rows(resumed)) == list(iter_rows(tmp_path / "whole"))
    assert (resumed / "_rejects.jsonl").read_text() == (tmp_path / "whole" / "_rejects.jsonl").read_text()


def test_output_folder_of_the_old_layout_is_refused_clearly(tiny_model_dir, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    path = tmp_path / "in.json"
    path.write_text('[{"text": "Первый."}]', encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output", str(old)])
    assert result.exit_code != 0 and "manifest.json" in result.output and "0.1" in result.output


def test_telegram_desktop_export_with_json_items_and_rich_text(tiny_model_dir, tmp_path):
    export = {"name": "channel", "type": "public_channel", "messages": [
        {"id": 1, "type": "message", "text": ["Посольство ", {"type": "bold", "text": "России"}, " продолжит работу."]},
        {"id": 2, "type": "service", "text": ""},
        {"id": 3, "type": "message", "text": "Переговоры о рейсах продолжатся."},
        {"id": 4, "type": "message", "text": [{"type": "custom_emoji"}]},
    ]}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False, indent=1), encoding="utf-8")
    found = _items(path, json_items="messages")
    assert [(type(x).__name__, x.line) for x in found] == [("Document", 1), ("Reject", 2), ("Document", 3),
                                                          ("Reject", 4)]
    assert found[0].text == "Посольство России продолжит работу."
    assert found[3].reason.startswith("text field 'text' is a list that is not rich-text pieces")
    assert count_items([str(path)], ReaderOptions(json_items="messages")) == 4
    assert _items(path, json_items="chats")[0].reason == "no array items under the key 'chats'"
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--json-items", "messages",
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted({r["doc_id"] for r in iter_rows(tmp_path / "out")}) == ["1", "3"]
