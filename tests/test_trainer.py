"""The HF-Trainer training path: resume after kill -9, the output folder's other files, the model card,
user errors as one line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from rustance.cli import app

runner = CliRunner()

SETTINGS = ["train.batch_size=9", "train.head_learning_rate=0.01", "train.learning_rate=0.001", "model.max_length=32",
            "train.warmup_ratio=0", "train.epochs=6", "train.patience=20"]


def _args(tiny_encoder_dir, files, out, *extra):
    train, dev = files
    sets = [f"model.name={tiny_encoder_dir}", f"data.train={train}", f"data.dev={dev}", f"train.output_dir={out}",
            *SETTINGS, *extra]
    return ["train", *[x for s in sets for x in ("--set", s)]]


def _one_error_line(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in last, last


def test_resume_after_kill_reaches_the_same_dev_metrics(tiny_encoder_dir, toy_files, tmp_path):
    reference = runner.invoke(app, _args(tiny_encoder_dir, toy_files, tmp_path / "ref"))
    assert reference.exit_code == 0, reference.output

    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "rustance.cli", *_args(tiny_encoder_dir, toy_files, out)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # wait for the first complete checkpoint (the Trainer writes trainer_state.json last); generous bound
        for _ in range(6000):
            if list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")) or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None, "training ended before it could be killed"
        assert list((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not (out / "model.safetensors").exists()  # nothing final was written

    fresh = runner.invoke(app, _args(tiny_encoder_dir, toy_files, out))  # a fresh run would ignore the checkpoints
    _one_error_line(fresh, "--resume")
    resumed = runner.invoke(app, [*_args(tiny_encoder_dir, toy_files, out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in resumed.output
    expected = json.loads((tmp_path / "ref" / "dev_metrics.json").read_text())
    got = json.loads((out / "dev_metrics.json").read_text())
    assert got["detail"] == expected["detail"] and got["step"] == expected["step"]
    assert not (out / "checkpoints").exists()  # a finished run leaves no checkpoints behind
    nothing = runner.invoke(app, [*_args(tiny_encoder_dir, toy_files, out), "--resume"])
    _one_error_line(nothing, "nothing to resume")


def test_training_never_deletes_user_files_and_writes_a_model_card(tiny_encoder_dir, toy_files, tmp_path):
    out = tmp_path / "model"
    siblings = [tmp_path / "model.old", tmp_path / "model.tmp"]
    for sibling in siblings:
        sibling.mkdir()
        (sibling / "keep.txt").write_text("mine")
    args = _args(tiny_encoder_dir, toy_files, out, "train.max_steps=2")
    assert runner.invoke(app, args).exit_code == 0
    written = set(json.loads((out / ".rustance-files.json").read_text())["files"])
    assert {"config.json", "model.safetensors", "README.md", "dev_metrics.json"} <= written
    (out / "notes.md").write_text("my notes")
    (out / "eval-test").mkdir()
    (out / "eval-test" / "report.md").write_text("an earlier report")
    before = (out / "model.safetensors").stat().st_mtime_ns
    result = runner.invoke(app, args)  # retrain into the same folder
    assert result.exit_code == 0, result.output
    assert (out / "notes.md").read_text() == "my notes"
    assert (out / "eval-test" / "report.md").read_text() == "an earlier report"
    assert (out / "model.safetensors").stat().st_mtime_ns != before  # the trainer's own files are replaced
    for sibling in siblings:
        assert (sibling / "keep.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".rustance-tmp")]

    card = (out / "README.md").read_text()
    from huggingface_hub import ModelCard

    data = ModelCard.load(out / "README.md").data.to_dict()
    assert data["language"] == ["ru"] and data["license"] == "mit" and "rustance" in data["tags"]
    metrics = data["model-index"][0]["results"]
    dev = json.loads((out / "dev_metrics.json").read_text())
    assert any(r["metrics"][0]["value"] == pytest.approx(dev["overall_macro_f1"]) for r in metrics)
    assert "sanctions" in card and "GUIDELINES.md" in card and "| dev |" in card
    assert data["model-index"][0]["name"] == "model" and 'load("model")' in card  # the folder's name, not a temp one

    # evaluate adds its figures to the card and refuses to overwrite a report
    data_file = toy_files[1]
    evaluation = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(data_file), "--device", "cpu"])
    assert evaluation.exit_code == 0, evaluation.output
    assert f"| {data_file.stem} |" in (out / "README.md").read_text()
    again = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(data_file)])
    _one_error_line(again, "report.md exists", "--overwrite")
    assert runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(data_file), "--overwrite"]).exit_code == 0


def test_user_errors_are_one_line(tiny_encoder_dir, tiny_model_dir, toy_files, tmp_path, monkeypatch):
    missing = tmp_path / "missing-topics.yaml"
    _one_error_line(runner.invoke(app, _args(tiny_encoder_dir, toy_files, tmp_path / "m", f"data.topics={missing}")),
                    "not found")
    broken = tmp_path / "broken-topics.yaml"
    broken.write_text("- id: [unclosed\n")
    _one_error_line(runner.invoke(app, _args(tiny_encoder_dir, toy_files, tmp_path / "m", f"data.topics={broken}")),
                    "invalid YAML")
    _one_error_line(runner.invoke(app, ["data", "check", "--topics", str(broken)]), "invalid YAML")
    _one_error_line(runner.invoke(app, ["data", "check", "--topics", str(missing)]), "not found")
    (tmp_path / "flat.yaml").write_text("just a string\n")
    _one_error_line(runner.invoke(app, ["data", "check", "--topics", str(tmp_path / "flat.yaml")]), "list of topics")

    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_model_dir, truncated)
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_model_dir, foreign)
    shutil.copy(tiny_encoder_dir / "model.safetensors", foreign / "model.safetensors")
    for model, message in ((truncated, "cannot load the weights"), (foreign, "does not fit")):
        _one_error_line(runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(toy_files[1]),
                                            "--out", str(tmp_path / "e")]), message)
        _one_error_line(runner.invoke(app, ["predict", "--model", str(model), str(toy_files[1])]), message)

    # `rustance train` resolves stand-off records against $RUSTANCE_CORPORA
    standoff = tmp_path / "standoff.jsonl"
    standoff.write_text(json.dumps({"id": "s1", "source": {"corpus": "rusentrel", "doc": "a.txt", "start": 0, "end": 5},
                                    "topics": {}, "sentiment": "neutral"}) + "\n")
    monkeypatch.setenv("RUSTANCE_CORPORA", str(tmp_path / "my-corpora"))
    result = runner.invoke(app, _args(tiny_encoder_dir, (standoff, standoff), tmp_path / "m"))
    assert result.exit_code == 2 and "error: 1 invalid record" in result.output  # bad records are listed by line
    assert f"{tmp_path / 'my-corpora' / 'rusentrel'} not found" in result.output

    _one_error_line(runner.invoke(app, ["push", "--model", str(tiny_model_dir), "--repo", "someone/rustance-test"]),
                    "cannot push")
    _one_error_line(runner.invoke(app, ["convert", str(tiny_model_dir), str(tmp_path / "c")]), "not a rustance 0.2")
