"""The task registry: the one place that maps a task name to everything that depends on it.

Every other module asks this registry (``task_spec(name).model_class()``, ``.predictor()``, ...) instead of
comparing the task by string. The entries name their classes and functions as ``"module:attribute"`` and
import them on first use, so the registry itself is cheap to import (the config validation uses it).

Adding a task: write its model class (a :class:`rustance.model.RustanceModel` subclass), predictor, training
task, evaluator and report, then add one :class:`TaskSpec` here (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rustance.errors import RustanceError


class UnknownTask(RustanceError, ValueError):
    """A task name that is not in the registry."""


def _resolve(path: str):
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class TaskSpec:
    """What rustance needs to train, load, run and evaluate one task."""

    name: str
    description: str
    model_path: str  # RustanceModel subclass: the heads and forward
    build_path: str  # function(config: Config) -> (model, tokenizer): a fresh model on a pretrained encoder
    predictor_path: str  # the class rustance.load() returns: Predictor(model, tokenizer, batch_size, device, ...)
    training_path: str  # training task class: TrainingTask(config, log) (datasets, loss, metrics, post-steps)
    evaluator_path: str  # function(model_dir, data, out_dir, **options) -> summary dict (metrics.json, report.md)
    report_path: str  # writes report.md from an evaluation summary
    metrics: tuple[str, ...]  # dev metrics that may select the checkpoint (train.metric_for_best)
    poolings: tuple[str, ...]  # allowed model.pooling values
    needs_dev_file: bool  # data.dev must name a file (else dev is split off the training file)
    corpus_inference: bool  # `rustance predict` (the corpus engines) can run it
    card_summary: str = ""  # model card: what the model does (Markdown)
    card_example: str = ""  # model card: one line of Python after `model = load(...)`
    card_limitations: str = ""  # model card: how the labels were made, what the figures mean
    card_tags: tuple[str, ...] = ()

    def model_class(self):
        return _resolve(self.model_path)

    def build(self, config):
        return _resolve(self.build_path)(config)

    def predictor(self):
        return _resolve(self.predictor_path)

    def training_task(self):
        return _resolve(self.training_path)

    def evaluator(self):
        return _resolve(self.evaluator_path)

    def report(self):
        return _resolve(self.report_path)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec for spec in (
        TaskSpec(
            name="stance",
            description="topics, per-topic stance and sentence sentiment",
            model_path="rustance.model:StanceModel",
            build_path="rustance.model:build_from_config",
            predictor_path="rustance.inference.predictor:Classifier",
            training_path="rustance.train.trainer:StanceTask",
            evaluator_path="rustance.train.evaluate:run_evaluation",
            report_path="rustance.train.report:write_markdown",
            metrics=("overall_macro_f1", "stance_macro_f1", "topic_macro_f1", "sentiment_macro_f1",
                     "joint_macro_f1"),
            poolings=("mean", "cls", "topic_attention"),
            needs_dev_file=True,
            corpus_inference=True,
            card_summary="For each sentence of Russian political and diplomatic news it says which **topics** it is "
                         "about, its **stance** toward each and its **sentiment** (negative, neutral, positive).",
            card_example='model.predict("Москва готова возобновить прямое авиасообщение.")',
            card_limitations="The topic and stance labels of the training data were produced by AI annotator sessions "
                             "following the project's annotation guidelines (`data/GUIDELINES.md`; provenance in "
                             "`data/README.md`), with part of the data labelled twice to measure agreement; they are "
                             "not an expert gold standard. Labels near a decision threshold are the least reliable; "
                             "figures come from one training seed.",
            card_tags=("stance-detection",),
        ),
        TaskSpec(
            name="targeted_sentiment",
            description="sentiment toward a marked entity in a sentence (RuSentNE-2023)",
            model_path="rustance.target_model:TargetSentimentModel",
            build_path="rustance.target_model:build_from_config",
            predictor_path="rustance.inference.targeted:TargetClassifier",
            training_path="rustance.train.targeted:TargetSentimentTask",
            evaluator_path="rustance.train.targeted:run_target_evaluation",
            report_path="rustance.train.report:write_targeted_report",
            metrics=("f1_pn", "f1_pn0"),
            poolings=("mean", "target"),
            needs_dev_file=False,
            corpus_inference=False,
            card_summary="**Entity-targeted sentiment** (RuSentNE-2023 style): the sentiment (negative, neutral, "
                         "positive) of a sentence toward one marked entity.",
            card_example='model.predict("Госдеп вновь отказался от переговоров, заявил Лавров.", target="Госдеп")',
            card_limitations="Trained on the RuSentNE-2023 training data (news sentences with annotated entities); "
                             "the dev split is the project's own, so the figures are not comparable with the shared "
                             "task's official test results.",
            card_tags=("targeted-sentiment",),
        ),
    )
}


def task_spec(name: str) -> TaskSpec:
    """The registry entry of task ``name``; :class:`UnknownTask` names the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None
