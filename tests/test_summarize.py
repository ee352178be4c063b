"""rustance summarize: hand-checked counts and Wilson intervals, undated rows, refusals, real predict output."""

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from conftest import TOY, topic, write_jsonl, write_predict_output
from rustance.cli import app
from rustance.summarize import SummarizeError, summarize

runner = CliRunner()
JAN, FEB = datetime(2024, 1, 15, 12), datetime(2024, 2, 3)
KEPT = {"date": pa.timestamp("us"), "date_raw": pa.string(), "channel": pa.string()}


def fixture_rows() -> list[dict]:
    """23 sentences whose counts are worked out by hand in the tests below."""
    rows = []
    for i in range(10):  # channel A, January, sanctions: 3 critical, 7 neutral; 5 negative, 5 neutral sentiment
        rows.append({"topics": [topic("sanctions", "critical" if i < 3 else "neutral", 0.8 if i < 5 else 0.6, 0.7)],
                     "sentiment": "negative" if i < 5 else "neutral", "date": JAN, "channel": "A"})
    for _ in range(4):  # channel A, February: 4 conciliatory
        rows.append({"topics": [topic("sanctions", "conciliatory", 0.9, 0.9)], "sentiment": "positive",
                     "date": FEB, "channel": "A"})
    rows += [  # channel B, January: 3 about flights (one also about sanctions), 2 about nothing
        {"topics": [topic("flights", "critical")], "date": JAN, "channel": "B"},
        {"topics": [topic("flights", "conditional")], "date": JAN, "channel": "B"},
        {"topics": [topic("flights", "critical"), topic("sanctions", "critical")], "date": JAN, "channel": "B"},
        {"date": JAN, "channel": "B"},
        {"date": JAN, "channel": "B"},
    ]
    rows += [  # no date (one had a value that is not a date)
        {"topics": [topic("sanctions", "critical")], "date": None, "channel": "B"},
        {"date": None, "date_raw": "вчера", "channel": "B"},
        {"date": None, "channel": "B"},
    ]
    rows.append({"topics": [topic("sanctions", "neutral")], "date": FEB, "channel": None})  # no channel
    return rows


@pytest.fixture()
def labelled(tmp_path) -> Path:
    return write_predict_output(tmp_path / "out", fixture_rows(), KEPT)


def _cell(table: pd.DataFrame, period: str, channel: str, topic_id: str) -> pd.Series:
    found = table[(table.period == period) & (table.channel == channel) & (table.topic == topic_id)]
    assert len(found) == 1, table
    return found.iloc[0]


def test_counts_and_wilson_intervals_match_hand_computed_values(labelled, tmp_path):
    result = runner.invoke(app, ["summarize", str(labelled), "--by", "month", "--by", "channel",
                                 "--out", str(tmp_path / "summary")])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "summary" / "summary.parquet")
    assert len(table) == 6
    a_jan = _cell(table, "2024-01", "A", "sanctions")
    assert (a_jan.sentences, a_jan.documents, a_jan.n_critical, a_jan.n_neutral, a_jan.n_conciliatory) == (10, 10, 3, 7, 0)
    assert a_jan.critical_share == pytest.approx(0.3)
    # Wilson 95 % for 3/10, by hand: (0.3 + z²/20 ± z·sqrt(0.021 + z²/400)) / (1 + z²/10) = 0.1078 .. 0.6032
    assert (a_jan.critical_low, a_jan.critical_high) == (pytest.approx(0.1078, abs=1e-4), pytest.approx(0.6032, abs=1e-4))
    assert (a_jan.conciliatory_low, a_jan.conciliatory_share) == (0, 0)
    assert a_jan.sentiment_negative_share == pytest.approx(0.5)
    assert a_jan.sentiment_neutral_mean == pytest.approx(0.6)
    assert a_jan.mean_topic_probability == pytest.approx(0.7, abs=1e-6)
    assert a_jan.mean_stance_confidence == pytest.approx(0.7, abs=1e-6)
    a_feb = _cell(table, "2024-02", "A", "sanctions")
    # 4/4: (1 + z²/8 - z·sqrt(z²/64)) / (1 + z²/4) = 1 / (1 + z²/4) = 0.5101; the upper bound is 1
    assert (a_feb.sentences, a_feb.conciliatory_share) == (4, 1.0)
    assert (a_feb.conciliatory_low, a_feb.conciliatory_high) == (pytest.approx(0.5101, abs=1e-4), pytest.approx(1.0))
    b_flights = _cell(table, "2024-01", "B", "flights")
    assert (b_flights.sentences, b_flights.n_critical, b_flights.n_conditional) == (3, 2, 1)
    assert _cell(table, "2024-01", "B", "sanctions").n_critical == 1
    assert _cell(table, "undated", "B", "sanctions").sentences == 1
    assert _cell(table, "2024-02", "(missing)", "sanctions").n_neutral == 1
    assert str(a_jan.period_start) == "2024-01-01" and pd.isna(_cell(table, "undated", "B", "sanctions").period_start)
    # the CSV holds the same table
    csv = pd.read_csv(tmp_path / "summary" / "summary.csv")
    assert list(csv.columns) == list(table.columns) and csv.sentences.sum() == table.sentences.sum() == 20


def test_intervals_agree_with_scipy_for_many_counts(tmp_path):
    from scipy.stats import binomtest

    rows = [{"topics": [topic("flights", "critical" if i < k else "neutral")], "date": datetime(2024, n, 1)}
            for n, k in ((1, 0), (2, 1), (3, 5), (4, 17)) for i in range(n * 7)]
    folder = write_predict_output(tmp_path / "out", rows, {"date": pa.timestamp("us")}, part_rows=50)
    summarize([folder], ["month"], tmp_path / "summary")
    table = pd.read_parquet(tmp_path / "summary" / "summary.parquet")
    assert len(table) == 4
    for row in table.itertuples():
        expected = binomtest(int(row.n_critical), int(row.sentences)).proportion_ci(method="wilson")
        assert (row.critical_low, row.critical_high) == (pytest.approx(expected.low, abs=1e-9),
                                                         pytest.approx(expected.high, abs=1e-9))


def test_undated_and_missing_groups_are_reported_never_dropped(labelled, tmp_path):
    result = runner.invoke(app, ["summarize", str(labelled), "--by", "month", "--by", "channel",
                                 "--out", str(tmp_path / "summary")])
    assert result.exit_code == 0, result.output
    assert "undated: 3 sentences have no date (1 with a value that is not a date)" in result.output
    assert "channel: 1 sentences have no value" in result.output
    volume = pd.read_parquet(tmp_path / "summary" / "volume.parquet")
    assert volume.sentences.sum() == 23
    undated = volume[volume.period == "undated"].iloc[0]
    assert (undated.channel, undated.sentences, undated.sentences_with_topic) == ("B", 3, 1)
    b_jan = volume[(volume.period == "2024-01") & (volume.channel == "B")].iloc[0]
    assert (b_jan.sentences, b_jan.sentences_with_topic) == (5, 3)


@pytest.mark.parametrize("period, expected", [
    ("day", ["2024-12-30", "2025-01-05", "2025-03-31"]),
    ("week", ["2025-W01", "2025-W14"]),  # ISO weeks: 30 Dec 2024 is in week 1 of 2025
    ("quarter", ["2024-Q4", "2025-Q1"]),
    ("month", ["2024-12", "2025-01", "2025-03"]),
])
def test_periods(period, expected, tmp_path):
    dates = [datetime(2024, 12, 30, 23, 59), datetime(2025, 1, 5), datetime(2025, 3, 31)]
    folder = write_predict_output(tmp_path / "out", [{"topics": [topic("ukraine", "neutral")], "date": d} for d in dates],
                                  {"date": pa.timestamp("us")})
    summarize([folder], [period], tmp_path / "summary")
    table = pd.read_parquet(tmp_path / "summary" / "summary.parquet")
    assert list(table.period) == expected
    assert table.sentences.sum() == 3


def test_text_dates_are_parsed_in_utc_and_bad_ones_go_undated(tmp_path):
    rows = [{"topics": [topic("ukraine", "neutral")], "date": d}
            for d in ("2024-03-31T23:30:00-02:00", "2024-03-10", "not a date", None)]
    folder = write_predict_output(tmp_path / "out", rows, {"date": pa.string()})
    summary = summarize([folder], ["month"], tmp_path / "summary")
    table = pd.read_parquet(tmp_path / "summary" / "summary.parquet")
    assert dict(zip(table.period, table.sentences)) == {"2024-03": 1, "2024-04": 1, "undated": 2}
    assert (summary.undated, summary.unparsed_dates) == (2, 1)


def _error(args) -> str:
    result = runner.invoke(app, ["summarize", *map(str, args)])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_refuses_what_is_not_a_predict_output_folder(tmp_path, labelled):
    out = ["--out", tmp_path / "summary"]
    assert "does not exist" in _error([tmp_path / "nowhere", *out])
    (tmp_path / "file.parquet").write_bytes(b"x")
    assert "is a file" in _error([tmp_path / "file.parquet", *out])
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.parquet").write_bytes(b"x")
    assert "not a rustance predict output folder" in _error([tmp_path / "plain", *out])
    other = tmp_path / "other"
    other.mkdir()
    pd.DataFrame({"doc_id": ["a"], "text": ["b"]}).to_parquet(other / "part-00000.parquet")
    (other / "_manifest.json").write_text(json.dumps({"rustance": "0.2.0", "parts": [{"name": "part-00000.parquet"}]}))
    assert "its rows lack sentence, topics" in _error([other, *out])


def test_refuses_older_versions(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    assert "rustance 0.1" in _error([old, "--out", tmp_path / "s"])
    folder = write_predict_output(tmp_path / "v01", [{"topics": [topic("flights", "neutral")]}], version="0.1.0")
    assert "rustance 0.1.0" in _error([folder, "--out", tmp_path / "s"])


def test_refuses_a_mix_of_models(tmp_path):
    one = write_predict_output(tmp_path / "one", [{}] * 3, model="e5 (run-a)")
    two = write_predict_output(tmp_path / "two", [{}] * 2, model="e5 (run-b)", weights="1" * 16)
    message = _error([one, two, "--out", tmp_path / "s"])
    assert "several models" in message and "e5 (run-a) (3 sentences)" in message and "e5 (run-b)" in message
    same_name = write_predict_output(tmp_path / "three", [{}] * 2, model="e5 (run-a)", weights="2" * 16)
    assert "2 different weight files" in _error([one, same_name, "--out", tmp_path / "s"])
    mixed = write_predict_output(tmp_path / "mixed", [{"model": "a"}, {"model": "b"}])
    assert "several models" in _error([mixed, "--out", tmp_path / "s"])


def test_refuses_missing_columns_and_empty_output(tmp_path, labelled):
    message = _error([labelled, "--by", "month", "--by", "region", "--out", tmp_path / "s"])
    assert "no 'region' column" in message and "kept columns: date, date_raw, channel" in message
    undated = write_predict_output(tmp_path / "nodates", [{}], {"channel": pa.string()})
    assert "--keep-column date" in _error([undated, "--by", "week", "--out", tmp_path / "s"])
    assert "one period at most" in _error([labelled, "--by", "week", "--by", "month", "--out", tmp_path / "s"])
    assert "label column" in _error([labelled, "--by", "sentiment", "--out", tmp_path / "s"])
    empty = write_predict_output(tmp_path / "empty", [])
    assert "nothing to summarize" in _error([empty, "--out", tmp_path / "s"])


def test_no_topic_at_all_gives_empty_tables_and_says_so(tmp_path):
    folder = write_predict_output(tmp_path / "out", [{}] * 3)
    result = runner.invoke(app, ["summarize", str(folder), "--out", str(tmp_path / "summary")])
    assert result.exit_code == 0, result.output
    assert "no sentence is about any topic" in result.output
    assert len(pd.read_parquet(tmp_path / "summary" / "summary.parquet")) == 0
    assert pd.read_parquet(tmp_path / "summary" / "volume.parquet").sentences.sum() == 3


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_summarizes_a_real_predict_run(tiny_model_dir, tmp_path, output_format):
    texts = [t for t, _, _ in TOY]
    docs = [{"id": f"d{i}", "text": " ".join(texts[i : i + 3]), "date": f"2024-0{1 + i % 3}-1{i % 9}",
             "channel": "AB"[i % 2]} for i in range(len(texts))]
    docs.append({"id": "dx", "text": texts[0], "date": "когда-то", "channel": "A"})  # one sentence, no date
    data = write_jsonl(tmp_path / "in.jsonl", docs)
    out = tmp_path / "labelled"
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(data), "--output", str(out),
                                 "--part-sentences", "10", "--format", output_format, "--keep-column", "date",
                                 "--keep-column", "channel"])
    assert result.exit_code == 0, result.output
    from rustance.inference.engine import iter_rows

    rows = list(iter_rows(out))
    result = runner.invoke(app, ["summarize", str(out), "--by", "month", "--by", "channel",
                                 "--out", str(tmp_path / "summary")])
    assert result.exit_code == 0, result.output
    # the other dates parse (JSON lines parts hold them as ISO 8601 text)
    assert "undated: 1 sentences have no date (1 with a value that is not a date)" in result.output
    table = pd.read_parquet(tmp_path / "summary" / "summary.parquet")
    expected: dict[str, int] = {}
    for row in rows:
        for t in row["topics"]:
            expected[t["topic"]] = expected.get(t["topic"], 0) + 1
    assert table.groupby("topic").sentences.sum().to_dict() == expected
    volume = pd.read_parquet(tmp_path / "summary" / "volume.parquet")
    assert volume.sentences.sum() == len(rows)
    assert set(volume.period) == {"2024-01", "2024-02", "2024-03", "undated"} and set(volume.channel) == {"A", "B"}


def test_reads_the_ray_engine_layout(tmp_path):
    """--engine ray writes OUT/rows/*.parquet and OUT/rejects/ without a manifest."""
    local = write_predict_output(tmp_path / "local", fixture_rows(), KEPT, part_rows=5)
    ray_out = tmp_path / "ray"
    (ray_out / "rows").mkdir(parents=True)
    (ray_out / "rejects").mkdir()
    for number, part in enumerate(sorted(local.glob("part-*.parquet"))):
        part.rename(ray_out / "rows" / f"{number}_000000_{number:06d}.parquet")
    summary = summarize([ray_out], ["quarter", "channel"], tmp_path / "summary")
    assert (summary.rows, summary.undated, summary.unparsed_dates) == (23, 3, 1)
    table = pd.read_parquet(tmp_path / "summary" / "summary.parquet")
    assert _cell(table, "2024-Q1", "A", "sanctions").sentences == 14


def test_an_unfinished_run_is_summarized_with_a_note(tmp_path):
    folder = write_predict_output(tmp_path / "out", fixture_rows(), KEPT)
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["complete"] = False
    manifest["parts"] = manifest["parts"][:2]  # 8 rows listed so far
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["summarize", str(folder), "--out", str(tmp_path / "summary")])
    assert result.exit_code == 0, result.output
    assert f"note: the run in {folder} has not finished" in result.output
    assert pd.read_parquet(tmp_path / "summary" / "volume.parquet").sentences.sum() == 8


def test_unwritable_outputs_are_one_error_line(labelled, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert "is a file" in _error([labelled, "--out", tmp_path / "afile"])
    assert "cannot write the summary" in _error([labelled, "--out", tmp_path / "s", "--html",
                                                 tmp_path / "afile" / "report.html"])
