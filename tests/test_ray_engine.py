"""The Ray Data engine: same rows as the local engine, and a crashed actor is retried."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TOY
from rustance.cli import app
from rustance.inference.engine import iter_rows

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rustance[ray]'")

from rustance.inference.ray_engine import CRASH_ONCE_ENV, read_rows  # noqa: E402

runner = CliRunner()
DOCS = [" ".join(t for t, _, _ in TOY[i : i + 3]) for i in range(0, len(TOY), 3)]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture()
def corpus(tmp_path) -> Path:
    rows = [{"id": f"d{i:02d}", "text": t} for i, t in enumerate(DOCS * 3)]
    rows.append({"id": "blank", "text": "   "})
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _local_rows(model, corpus, out, *extra) -> list[dict]:
    result = runner.invoke(app, ["predict", "--model", str(model), str(corpus), "--output", str(out), *extra])
    assert result.exit_code == 0, result.output
    return sorted(iter_rows(out), key=lambda r: (r["doc_id"], r["sentence_index"]))


def _ray_rows(model, corpus, out, *extra) -> list[dict]:
    result = runner.invoke(app, ["predict", "--model", str(model), str(corpus), "--output", str(out),
                                 "--engine", "ray", *extra])
    assert result.exit_code == 0, result.output
    return read_rows(out)


def _assert_same(local: list[dict], distributed: list[dict]) -> None:
    assert len(local) == len(distributed) > 0
    for a, b in zip(local, distributed):
        assert set(a) == set(b)
        for key in ("doc_id", "source", "line", "sentence_index", "start", "end", "sentence", "sentiment", "truncated",
                    "model"):
            assert a[key] == b[key], key
        assert [t["topic"] for t in a["topics"]] == [t["topic"] for t in b["topics"]]
        assert [t["stance"] for t in a["topics"]] == [t["stance"] for t in b["topics"]]
        # probabilities: batches are padded differently in the two engines, so allow float noise
        assert b["sentiment_negative"] == pytest.approx(a["sentiment_negative"], abs=2e-3)


def test_ray_engine_matches_local_engine(local_ray, tiny_model_dir, corpus, tmp_path):
    local = _local_rows(tiny_model_dir, corpus, tmp_path / "local")
    distributed = _ray_rows(tiny_model_dir, corpus, tmp_path / "ray", "--num-actors", "2")
    _assert_same(local, distributed)
    rejects = [json.loads(line) for p in (tmp_path / "ray" / "rejects").glob("*.json") for line in p.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(len(DOCS) * 3 + 1, "empty document")]


def test_ray_engine_abstains_like_the_local_engine(local_ray, tiny_model_dir, corpus, tmp_path):
    local = _local_rows(tiny_model_dir, corpus, tmp_path / "local", "--min-confidence", "0.27")
    distributed = _ray_rows(tiny_model_dir, corpus, tmp_path / "ray", "--min-confidence", "0.27")
    _assert_same(local, distributed)
    stances = [t["stance"] for r in local for t in r["topics"] + r["uncertain_topics"]]
    assert "uncertain" in stances and set(stances) - {"uncertain"}  # 0.27 splits the tiny model's stances
    for a, b in zip(local, distributed):
        assert [t["topic"] for t in a["uncertain_topics"]] == [t["topic"] for t in b["uncertain_topics"]]
    manifest = json.loads((tmp_path / "ray" / "_manifest.json").read_text())
    assert manifest["fingerprint"]["compute.min_confidence"] == 0.27 and "uncertain_topics" in manifest["schema"]


def test_crashed_actor_is_restarted_and_output_complete(local_ray, tiny_model_dir, corpus, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    distributed = _ray_rows(tiny_model_dir, corpus, tmp_path / "ray", "--format", "jsonl")
    assert marker.exists(), "the test hook did not crash an actor"
    local = _local_rows(tiny_model_dir, corpus, tmp_path / "local")
    _assert_same(local, distributed)


def test_ray_engine_refuses_non_empty_output(local_ray, tiny_model_dir, corpus, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something.txt").write_text("x")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(corpus), "--output",
                                 str(tmp_path / "out"), "--engine", "ray"])
    assert result.exit_code == 2
    assert "not empty" in result.output


def test_bad_lines_are_rejected_like_the_local_engine_and_a_failed_run_can_be_rerun(local_ray, tiny_model_dir, tmp_path):
    good = [json.dumps({"id": f"g{i}", "text": t}, ensure_ascii=False).encode() for i, t in enumerate(DOCS[:3])]
    lines = [good[0], b'{"id": "broken", "text": ', '{"id": "u", "text": "'.encode() + b"\xff" + b'"}',
             b'{"id": "s", "text": "\\ud800"}', good[1], good[2]]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "b.csv").write_text(f'id,text\nc1,"{DOCS[3]}"\nc2,"too",many,fields\n', encoding="utf-8")
    out = tmp_path / "ray"
    distributed = _ray_rows(tiny_model_dir, folder, out)
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(folder), "--output", str(tmp_path / "local")])
    assert result.exit_code == 0, result.output
    local = sorted(iter_rows(tmp_path / "local"), key=lambda r: (r["doc_id"], r["sentence_index"]))
    _assert_same(local, distributed)
    ray_rejects = sorted((Path(r["source"]).name, r["line"], r["reason"]) for p in (out / "rejects").glob("*.json")
                         for r in map(json.loads, p.read_text().splitlines()))
    local_rejects = sorted((Path(r["source"]).name, r["line"], r["reason"]) for r in
                           map(json.loads, (tmp_path / "local" / "_rejects.jsonl").read_text().splitlines()))
    assert ray_rejects == local_rejects and len(ray_rejects) == 4
    # a run that did not finish (here: marked unfinished, its rows partly lost) is run again into its folder
    manifest = json.loads((out / "_manifest.json").read_text())
    manifest["complete"] = False
    (out / "_manifest.json").write_text(json.dumps(manifest))
    for path in list((out / "rows").iterdir())[:1]:
        path.unlink()
    _assert_same(local, _ray_rows(tiny_model_dir, folder, out))


def test_ray_engine_keeps_columns(local_ray, tiny_model_dir, tmp_path):
    rows = [{"id": "a", "text": DOCS[0], "date": "2024-03-01T10:00:00+03:00", "channel": "mid"},
            {"id": "b", "text": DOCS[1], "date": "вчера", "channel": "tass"},
            {"id": "c", "text": DOCS[2]}]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    extra = ["--keep-column", "date", "--keep-column", "channel"]
    distributed = _ray_rows(tiny_model_dir, path, tmp_path / "ray", *extra)
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), str(path), "--output",
                                 str(tmp_path / "local"), *extra])
    assert result.exit_code == 0, result.output
    local = sorted(iter_rows(tmp_path / "local"), key=lambda r: (r["doc_id"], r["sentence_index"]))
    assert [(r["doc_id"], r["date"], r["date_raw"], r["channel"]) for r in distributed] == \
        [(r["doc_id"], r["date"], r["date_raw"], r["channel"]) for r in local]
    assert distributed[0]["date"].isoformat() == "2024-03-01T07:00:00"
    manifest = json.loads((tmp_path / "ray" / "_manifest.json").read_text())
    assert sorted(iter_rows(tmp_path / "ray"), key=lambda r: (r["doc_id"], r["sentence_index"])) == distributed
    assert manifest["totals"]["dates_unparsed"] == {"date": 1}
    assert manifest["totals"]["kept_missing"] == {"date": 1, "channel": 1}


def test_ray_engine_explains_like_the_local_engine(local_ray, eager_model_dir, corpus, tmp_path):
    """--explain on Ray: the same words per topic as the local engine's, with the explained schema; a rerun
    without --explain into its folder is refused."""
    from rustance.explain import words_of

    extra = ["--explain"]
    distributed = _ray_rows(eager_model_dir, corpus, tmp_path / "ray", *extra)
    result = runner.invoke(app, ["predict", "--model", str(eager_model_dir), str(corpus), "--output",
                                 str(tmp_path / "local"), *extra])
    assert result.exit_code == 0, result.output
    local = sorted(iter_rows(tmp_path / "local"), key=lambda r: (r["doc_id"], r["sentence_index"]))
    _assert_same(local, distributed)
    manifest = json.loads((tmp_path / "ray" / "_manifest.json").read_text())
    assert manifest["fingerprint"]["writing.explain"] == "occlusion" and "words" in manifest["schema"]["topics"]
    listed = 0
    for a, b in zip(local, distributed):
        for x, y in zip(a["topics"], b["topics"]):
            assert {w["word"] for w in y["words"]} <= {w for _, _, w in words_of(b["sentence"])}
            theirs = {w["word"]: w["weight"] for w in x["words"]}
            for w in y["words"]:  # batches are padded differently in the two engines: float noise, near-ties
                if w["word"] in theirs:
                    assert w["weight"] == pytest.approx(theirs[w["word"]], abs=2e-3)
            listed += len(y["words"])
    assert listed > 0
    refused = runner.invoke(app, ["predict", "--model", str(eager_model_dir), str(corpus), "--output",
                                  str(tmp_path / "ray"), "--engine", "ray"])
    assert refused.exit_code == 2 and "writing.explain" in refused.output
