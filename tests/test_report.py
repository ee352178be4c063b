"""summarize --html: the self-contained report, its charts, captions, change points and a real browser render."""

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from conftest import topic, write_predict_output
from rustance.cli import app
from rustance.report import NO_WORD, NOT_EXPLAINED, UNEXPLAINED_NOTE, change_points

runner = CliRunner()
KEPT = {"date": pa.timestamp("us"), "channel": pa.string()}


def shifting_rows() -> list[dict]:
    """Sanctions in channels A and B for 12 months: mostly conciliatory until June, mostly critical from July;
    channel C has 3 sentences (greyed); flights appear in 4 months only; 2 undated sentences."""
    rows = []
    for month in range(1, 13):
        main, other = ("conciliatory", "critical") if month <= 6 else ("critical", "conciliatory")
        for channel in "AB":
            for i in range(15):
                stance = main if i < 13 else other
                words = [{"word": "санкции", "weight": 0.3}, {"word": f"слово{i}", "weight": 0.1}]
                rows.append({"topics": [{**topic("sanctions", stance, 0.9, 0.5 + i / 40), "words": words}],
                             "sentence": f"{channel}{month}-{i}: про санкции", "date": datetime(2024, month, 1 + i),
                             "channel": channel, "doc_id": f"{channel}-{month}-{i}"})
    for month in (2, 3, 4, 5):
        rows.append({"topics": [{**topic("flights", "neutral"), "words": []}], "date": datetime(2024, month, 9),
                     "channel": "A"})
    rows += [{"topics": [{**topic("sanctions", "critical"), "words": []}], "date": datetime(2024, 5, 5),
              "channel": "C"}] * 3
    rows += [{"topics": [{**topic("sanctions", "neutral"), "words": []}], "date": None, "channel": "B"}] * 2
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    folder = write_predict_output(base / "out", shifting_rows(), KEPT, part_rows=100, explained=True)
    result = runner.invoke(app, ["summarize", str(folder), "--by", "month", "--by", "channel", "--out",
                                 str(base / "summary"), "--html", str(base / "summary" / "report.html"),
                                 "--attribution", "Test corpus © nobody, CC BY 4.0"])
    assert result.exit_code == 0, result.output
    return base / "summary" / "report.html"


def _figures(page: str) -> list[dict]:
    return json.loads(re.search(r'<script type="application/json" id="figures">(.*?)</script>', page, re.S)[1])


def test_report_is_self_contained_with_charts_and_captions(report):
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"http", page)  # nothing fetched: opens offline
    assert "Plotly" in page and report.stat().st_size < 6_000_000
    figures = _figures(page)
    titles = [f["layout"]["title"]["text"] for f in figures]
    assert titles == ["flights: stance by month", "flights: stance by channel",
                      "sanctions: stance by month", "sanctions: stance by channel"]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)
    assert len(captions) == 4
    assert "363 dated sentences about «sanctions»" in captions[2]  # 2 × 12 × 15 + 3 from channel C
    assert "2 sentences about «sanctions» have no date" in captions[2]
    assert "Rests on 365 sentences from 3 channels; 1 with fewer than 10 sentences are grey" in captions[3]
    assert "Months with fewer than 10 sentences are grey" in captions[0]
    assert "Test corpus © nobody, CC BY 4.0" in page


def test_thin_cells_are_grey_not_hidden(report):
    heat = _figures(report.read_text(encoding="utf-8"))[3]
    shown, grey = heat["data"]
    assert shown["y"] == grey["y"] == ["B", "A", "C"]  # most sentences first; channel C is on the chart...
    assert grey["colorscale"][0][1] == grey["colorscale"][-1][1]  # ...drawn in one grey
    c_row = shown["y"].index("C")
    assert all(v is None for v in shown["z"][c_row]) and grey["z"][c_row][1] == 1.0  # 3 of 3 critical
    volume = _figures(report.read_text(encoding="utf-8"))[0]["data"][-1]  # flights: 1 sentence a month
    assert set(volume["marker"]["color"]) == {"#c8c8c8"}


def test_change_point_found_where_the_stance_flips(report):
    page = report.read_text(encoding="utf-8")
    sanctions = re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)[2]
    assert "Change points in the stance shares (dashed lines): 2024-07." in sanctions
    assert "ruptures" in sanctions and "Pelt" in sanctions and "penalty" in sanctions
    shapes = _figures(page)[2]["layout"]["shapes"]
    assert shapes and {s["x0"][:10] for s in shapes} == {"2024-07-01"}  # one line, across both panels


def test_change_points_quiet_on_a_flat_signal():
    rng = np.random.default_rng(0)
    counts = np.full(12, 200)
    shares = rng.multinomial(200, [0.4, 0.3, 0.2, 0.1], size=12) / 200
    assert change_points(shares, counts, [f"m{i}" for i in range(12)]).periods == []
    assert change_points(shares[:3], counts[:3], ["a", "b", "c"]).periods == []


def test_examples_highest_probability_first_with_words(report):
    page = report.read_text(encoding="utf-8")
    examples = json.loads(re.search(r'<script type="application/json" id="examples">(.*?)</script>', page, re.S)[1])
    cell = examples["sanctions"]["A"]["conciliatory"]
    assert len(cell) == 3
    assert [e["probability"] for e in cell] == sorted((e["probability"] for e in cell), reverse=True)
    assert cell[0]["probability"] == 0.85  # i = 14 (conciliatory from July on) is the most confident
    assert {"date", "doc_id", "sentence", "topic_probability"} <= set(cell[0])
    assert cell[0]["words"][0] == {"word": "санкции", "weight": pytest.approx(0.3)}
    assert "words that drove the label" in page and "санкции (+0.30)" in page
    flights = examples["flights"]["A"]["neutral"]  # explained rows in which no word raised the stance
    assert flights and all(e["words"] == [] for e in flights)
    assert f"<td>{NO_WORD}</td>" in page and UNEXPLAINED_NOTE not in page


def _examples_table(page: str, topic: str) -> list[list[str]]:
    table = re.search(rf"Example sentences about «{topic}».*?<tbody>(.*?)</tbody>", page, re.S)[1]
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]


def test_report_without_explanations_says_so(tmp_path):
    rows = [{"topics": [topic("sanctions", "critical")], "date": datetime(2024, 3, d), "channel": "A"} for d in (1, 9)]
    folder = write_predict_output(tmp_path / "out", rows, KEPT)
    result = runner.invoke(app, ["summarize", str(folder), "--by", "month", "--by", "channel", "--out",
                                 str(tmp_path / "s"), "--html", str(tmp_path / "s" / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "s" / "r.html").read_text(encoding="utf-8")
    assert page.count(UNEXPLAINED_NOTE) == 2  # under the title and above the examples of the one topic
    assert "words that drove the label</th>" not in page and len(_examples_table(page, "sanctions")) == 2


def test_report_over_explained_and_plain_runs_marks_the_plain_rows(tmp_path):
    explained = [{"topics": [{**topic("sanctions", "critical", confidence=0.9),
                               "words": [{"word": "осудил", "weight": 0.4}]}],
                  "date": datetime(2024, 3, 1), "channel": "A", "doc_id": "x1"}]
    plain = [{"topics": [topic("sanctions", "neutral", confidence=0.8)], "date": datetime(2024, 3, 2), "channel": "A",
              "doc_id": "p1"}]
    folders = [write_predict_output(tmp_path / "explained", explained, KEPT, explained=True),
               write_predict_output(tmp_path / "plain", plain, KEPT)]
    result = runner.invoke(app, ["summarize", *map(str, folders), "--by", "channel", "--out", str(tmp_path / "s"),
                                 "--html", str(tmp_path / "s" / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "s" / "r.html").read_text(encoding="utf-8")
    words = {row[4]: row[-1] for row in _examples_table(page, "sanctions")}  # doc id -> words
    assert words == {"x1": "осудил (+0.40)", "p1": NOT_EXPLAINED}


def _chromium() -> str | None:
    return next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p and Path(p).is_file()), None)


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=20000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=300)


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium found (apt-get install chromium): the browser rendering test did not run")
    result = _headless(browser, tmp_path / "profile", "--dump-dom", report.as_uri())
    dom = result.stdout
    assert 'data-status="ok"' in dom, (result.stderr[-2000:], dom[-500:])
    assert "data-errors" not in re.search(r"<html[^>]*>", dom)[0], dom[:300]  # no JavaScript error was caught
    assert 'data-plots="4"' in dom and dom.count('class="main-svg"') >= 4
    shot = tmp_path / "report.png"
    _headless(browser, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.parametrize("by, charts", [([], 0), (["week"], 1), (["channel"], 1)])
def test_report_with_fewer_dimensions(tmp_path, by, charts):
    rows = [{"topics": [topic("ukraine", "critical")], "date": datetime(2024, 3, d), "channel": "A"} for d in (1, 9, 20)]
    folder = write_predict_output(tmp_path / "out", rows, KEPT)
    args = ["summarize", str(folder), *[x for b in by for x in ("--by", b)], "--out", str(tmp_path / "s"),
            "--html", str(tmp_path / "s" / "r.html")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "s" / "r.html").read_text(encoding="utf-8")
    assert len(_figures(page)) == charts and "Example sentences about «ukraine»" in page
    assert "Data: /models/toy" not in page and "(no attribution given: pass --attribution)" in page


def test_report_without_topics_says_so(tmp_path):
    folder = write_predict_output(tmp_path / "out", [{}, {}], KEPT)
    result = runner.invoke(app, ["summarize", str(folder), "--by", "month", "--out", str(tmp_path / "s"),
                                 "--html", str(tmp_path / "s" / "r.html")])
    assert result.exit_code == 0, result.output
    assert "No sentence is about any topic" in (tmp_path / "s" / "r.html").read_text(encoding="utf-8")
