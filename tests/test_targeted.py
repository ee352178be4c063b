"""Entity-targeted sentiment: the RuSentNE reader, the by-sentence split, markers, metrics, train/evaluate/predict."""

import csv
import json
from pathlib import Path

import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from conftest import E5_DIR, TOY
from rustance import load
from rustance.cli import app
from rustance.metrics import score_targeted
from rustance.records import DataError
from rustance.targets import LABEL_VALUES, TargetExample, mark_target, read_target_file, split_by_sentence

runner = CliRunner()
HEADER = ["sentence", "entity", "entity_tag", "entity_pos_start_rel", "entity_pos_end_rel", "label"]
ENTITIES = {"Москва": "CITY", "Госдеп": "ORGANIZATION", "МИД": "ORGANIZATION", "ЕС": "ORGANIZATION",
            "США": "COUNTRY", "Россия": "COUNTRY", "министр": "PROFESSION", "Стороны": "ORGANIZATION"}
CODE = {"negative": "-1", "neutral": "0", "positive": "1"}


def toy_target_rows() -> list[list[str]]:
    """Every TOY sentence that names one of ENTITIES, labelled with the sentence's sentiment."""
    rows = []
    for text, _, sentiment in TOY:
        for entity, tag in ENTITIES.items():
            start = text.find(entity)
            if start >= 0:
                rows.append([text, entity, tag, str(start), str(start + len(entity)), CODE[sentiment]])
    return rows


def write_tsv(path: Path, rows: list[list[str]], header=HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_reader_reports_every_bad_row_by_line(tmp_path):
    good = toy_target_rows()[0]
    rows = [good,
            good[:4],  # too few fields
            [*good[:3], "x", good[4], "0"],  # offsets not integers
            [good[0], "Вашингтон", good[2], good[3], good[4], "0"],  # entity not at the offsets
            [*good[:5], "2"],  # label outside -1/0/1
            [good[0], good[1], good[2], "5", "999", "0"]]  # offsets outside the sentence
    path = write_tsv(tmp_path / "bad.tsv", rows)
    with pytest.raises(DataError) as error:
        read_target_file(path)
    message = str(error.value)
    for line in (3, 4, 5, 6, 7):
        assert f"bad.tsv:{line}:" in message
    assert "bad.tsv:2:" not in message
    examples, bad = read_target_file(path, strict=False)
    assert len(examples) == 1 and [b.line for b in bad] == [3, 4, 5, 6, 7]
    assert examples[0].target == good[1] and examples[0].label == LABEL_VALUES[good[5]]


def test_reader_reads_quoted_fields_and_unlabelled_files(tmp_path):
    sentence = 'Клуб "ФК ""Тамбов""" проиграл.'.replace('""', '"')  # quotes inside: written CSV-quoted
    entity = 'ФК "Тамбов"'
    start = sentence.index(entity)
    path = write_tsv(tmp_path / "q.tsv", [[sentence, entity, "ORGANIZATION", str(start), str(start + len(entity))]],
                     header=HEADER[:5])
    assert '""' in path.read_text(encoding="utf-8")
    (example,), bad = read_target_file(path)
    assert not bad and example.label is None and example.target == entity


def test_missing_header_column_is_a_clear_error(tmp_path):
    path = write_tsv(tmp_path / "h.tsv", [], header=["sentence", "entity", "label"])
    with pytest.raises(DataError, match="header lacks column"):
        read_target_file(path)


def test_split_never_puts_one_sentence_on_both_sides():
    examples = [TargetExample(f"Предложение {i // 3}.", 0, 11, "", "neutral") for i in range(60)]
    train, dev = split_by_sentence(examples, 0.25, seed=7)
    assert len(train) + len(dev) == 60 and dev
    assert not {e.sentence for e in train} & {e.sentence for e in dev}
    again_train, again_dev = split_by_sentence(examples, 0.25, seed=7)
    assert [e.sentence for e in again_dev] == [e.sentence for e in dev]


def test_markers():
    example = TargetExample("Вчера Лавров встретился с Блинкеном.", 6, 12, "PERSON")
    assert mark_target(example, "typed") == ("Вчера @ * PERSON * Лавров @ встретился с Блинкеном.", None, 6)
    assert mark_target(example, "plain")[0] == "Вчера @ Лавров @ встретился с Блинкеном."
    assert mark_target(example, "segment") == (example.sentence, "Лавров", None)


def test_f1_pn_leaves_neutral_out_of_the_average():
    gold = ["negative", "neutral", "positive", "neutral", "negative", "positive", "neutral"]
    pred = ["negative", "negative", "neutral", "neutral", "negative", "positive", "positive"]
    m = score_targeted(gold, pred)
    assert m["f1_pn"] == pytest.approx(f1_score(gold, pred, labels=["negative", "positive"], average="macro"))
    assert m["f1_pn0"] == pytest.approx(f1_score(gold, pred, average="macro"))


def _train(tiny_encoder_dir, tmp_path, *extra) -> Path:
    data = write_tsv(tmp_path / "train.tsv", toy_target_rows() * 3)
    out = tmp_path / "model"
    result = runner.invoke(app, [
        "train", "--config", "configs/rusentne.yaml", "--set", f"model.name={tiny_encoder_dir}",
        "--set", 'model.text_prefix=""', "--set", "model.max_length=48", "--set", f"data.train={data}",
        "--set", "data.dev_fraction=0.3", "--set", f"train.output_dir={out}", "--set", "train.epochs=2",
        "--set", "train.batch_size=8", "--set", "train.freeze_layers=1", *extra])
    assert result.exit_code == 0, result.output
    return out


def test_train_evaluate_predict_targeted(tiny_encoder_dir, tmp_path):
    out = _train(tiny_encoder_dir, tmp_path)
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "targeted_sentiment" and config["target_marker"] == "typed"

    report = tmp_path / "report"
    result = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(tmp_path / "train.tsv"),
                                 "--split", "dev", "--out", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["systems"]) == {"model", "majority class", "TF-IDF + logistic regression",
                                       "TF-IDF + logistic regression (unweighted)"}
    assert metrics["systems"]["majority class"]["per_class"]["neutral"]["recall"] in (0.0, 1.0)
    dev_lines = {int(line.split("\t")[0]) for line in (report / "predictions.tsv").read_text().splitlines()[1:]}
    assert 0 < len(dev_lines) < len(toy_target_rows()) * 3
    assert (report / "neutral_threshold.png").is_file() and "F1_PN" in (report / "report.md").read_text()

    unlabelled = write_tsv(tmp_path / "test.tsv", [r[:5] for r in toy_target_rows()], header=HEADER[:5])
    result = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(unlabelled), "--out",
                                 str(tmp_path / "blind")])
    assert result.exit_code == 0, result.output
    assert not json.loads((tmp_path / "blind" / "metrics.json").read_text())["labelled"]
    predicted = (tmp_path / "blind" / "predictions.tsv").read_text().splitlines()
    assert len(predicted) == len(toy_target_rows()) + 1

    classifier = load(out)
    text = "Госдеп сорвал переговоры о рейсах, это недопустимо."
    by_string = classifier.predict(text, target="Госдеп")[0]
    by_span = classifier.predict([text], target=[(0, 6)])[0]
    assert by_string.sentiment in ("negative", "neutral", "positive")
    assert by_string.probabilities == pytest.approx(by_span.probabilities)
    assert (by_string.start, by_string.end, by_string.target) == (0, 6, "Госдеп")
    with pytest.raises(ValueError, match="does not occur"):
        classifier.predict(text, target="Лавров")

    result = runner.invoke(app, ["predict", "--model", str(out), "-", "--output", str(tmp_path / "corpus")])
    assert result.exit_code == 2 and "targeted-sentiment model" in result.output


def test_segment_marker_trains_and_config_checks(tiny_encoder_dir, tmp_path):
    out = _train(tiny_encoder_dir, tmp_path, "--set", "model.target_marker=segment", "--set", "model.pooling=mean")
    assert load(out).predict("Москва готова обсуждать возврат дипсобственности.", target="Москва")[0].sentiment
    result = runner.invoke(app, ["train", "--config", "configs/rusentne.yaml", "--set", "model.target_marker=segment"])
    assert result.exit_code == 2 and "model.pooling" in result.output


@pytest.mark.skipif(not (E5_DIR / "tokenizer.json").is_file(), reason=f"real encoder not found at {E5_DIR}")
def test_marker_index_points_at_the_opening_marker_with_the_real_tokenizer():
    from transformers import AutoTokenizer

    from rustance.target_model import encode_targets

    tokenizer = AutoTokenizer.from_pretrained(E5_DIR)
    examples = [TargetExample("Вчера Лавров встретился с Блинкеном.", 26, 34, "PERSON"),
                TargetExample("Госдеп отказался от переговоров.", 0, 6, "ORGANIZATION")]
    settings = {"target_marker": "typed", "max_length": 64, "text_prefix": "query: "}
    batch = encode_targets(tokenizer, examples, settings)
    for row, index in enumerate(batch["marker_index"].tolist()):
        assert index > 0
        assert tokenizer.convert_ids_to_tokens(int(batch["input_ids"][row, index])).strip("▁") == "@"
