"""predict --keep-column (issue 17 item 1) and the one prediction row shape (issue 14 item 5)."""

import json
from datetime import datetime

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import TOY
from rustance import load
from rustance.cli import app
from rustance.inference.engine import MANIFEST, iter_rows
from rustance.inference.readers import ColumnKind, InputError, KeptColumn, parse_date

runner = CliRunner()
DOCS = [" ".join(t for t, _, _ in TOY[i : i + 3]) for i in range(0, len(TOY), 3)]


@pytest.mark.parametrize("value, expected", [
    ("2024-03-01", datetime(2024, 3, 1)),
    ("2024-03-01T10:00:00+03:00", datetime(2024, 3, 1, 7)),  # time zones: converted to UTC
    ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10)),
    ("2024-03-01 10:00:00", datetime(2024, 3, 1, 10)),  # no zone: kept as written
    ("01.03.2024", datetime(2024, 3, 1)),  # day first
    ("1 марта 2024", datetime(2024, 3, 1)),
    ("March 1, 2024", datetime(2024, 3, 1)),
    (1709287200, datetime(2024, 3, 1, 10)),  # Unix seconds
    ("1709287200000", datetime(2024, 3, 1, 10)),  # Unix milliseconds as text
    ("вчера", None), ("10", None), ("", None), (True, None),
])
def test_dates_are_parsed(value, expected):
    assert parse_date(value) == expected


def test_kept_column_kinds():
    assert KeptColumn.parse("date").kind is ColumnKind.DATE
    assert KeptColumn.parse("created_at").kind is ColumnKind.DATE
    assert KeptColumn.parse("channel").kind is ColumnKind.TEXT
    assert KeptColumn.parse("when:date").kind is ColumnKind.DATE
    assert KeptColumn.parse("date:text").kind is ColumnKind.TEXT
    with pytest.raises(InputError, match="date or text"):
        KeptColumn.parse("date:number")


def test_kept_columns_reach_every_row_with_counts(tiny_model_dir, tmp_path):
    docs = [{"id": "a", "text": DOCS[0], "date": "2024-03-01T10:00:00+03:00", "channel": "mid", "views": 12},
            {"id": "b", "text": DOCS[1], "date": "вчера", "channel": "tass"},
            {"id": "c", "text": DOCS[2], "date": "05.04.2024"}]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output", str(out),
                                 "--keep-column", "date", "--keep-column", "channel", "--keep-column", "views"])
    assert result.exit_code == 0, result.output
    assert "kept column 'date' holds no readable date in 1 documents" in result.output
    assert "kept column 'channel' is missing in 1 documents" in result.output
    schema = pq.read_schema(next(out.glob("part-*.parquet")))
    assert str(schema.field("date").type) == "timestamp[us]" and str(schema.field("channel").type) == "string"
    rows = list(iter_rows(out))
    by_doc = {r["doc_id"]: r for r in rows}
    assert len(rows) == 9 and all({"date", "date_raw", "channel", "views"} <= set(r) for r in rows)
    assert (by_doc["a"]["date"], by_doc["a"]["date_raw"], by_doc["a"]["channel"], by_doc["a"]["views"]) == \
        (datetime(2024, 3, 1, 7), None, "mid", "12")
    assert (by_doc["b"]["date"], by_doc["b"]["date_raw"]) == (None, "вчера")
    assert (by_doc["c"]["date"], by_doc["c"]["channel"], by_doc["c"]["views"]) == (datetime(2024, 4, 5), None, None)
    totals = json.loads((out / MANIFEST).read_text())["totals"]
    assert totals["dates_unparsed"] == {"date": 1}
    assert totals["kept_missing"] == {"channel": 1, "views": 2}
    # JSON lines: dates as ISO 8601 text
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--keep-column", "date"])
    first = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert first["date"] == "2024-03-01T07:00:00"


def test_kept_column_that_clashes_with_an_output_column_is_refused(tiny_model_dir, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "a", "text": DOCS[0]}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--keep-column", "sentence"])
    assert result.exit_code == 2 and "error: --keep-column 'sentence' would overwrite" in result.output


def test_one_row_shape_for_the_api_and_the_engine(tiny_model_dir, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "a", "text": DOCS[0]}, ensure_ascii=False) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--format", "jsonl",
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = list(iter_rows(tmp_path / "out"))
    api = [p.to_row() for p in load(tiny_model_dir).predict_document(DOCS[0])]
    assert len(rows) == len(api) == 3
    for row, expected in zip(rows, api):
        assert {k: row[k] for k in expected} == expected
