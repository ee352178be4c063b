"""The model card (``README.md``) of a saved rustance model, written with ``huggingface_hub.ModelCard``.

It is rebuilt from the files of the model folder: ``config.json`` (task, labels, topics), ``training_config.yaml``
(data and settings), ``dev_metrics.json`` (dev figures, from training) and ``evaluations.json`` (figures that
``rustance evaluate`` recorded, e.g. on the test split). :func:`push_model` uploads a folder to the Hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from rustance.errors import RustanceError

LICENSE = "mit"
EVALUATIONS = "evaluations.json"


class PushError(RustanceError, RuntimeError):
    """The model folder could not be uploaded to the Hub."""


def _read(path: Path) -> dict:
    try:
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}


def _figures(metrics: dict, task: str) -> dict[str, float]:
    from rustance.tasks import task_spec

    keys = [*task_spec(task).metrics, "accuracy"]
    return {k: float(metrics[k]) for k in keys if isinstance(metrics.get(k), (int, float))}


def record_evaluation(model_dir: str | Path, name: str, data: str, headline: dict[str, float]) -> None:
    """Store the model's headline figures on an evaluation set (``evaluations.json``) and rebuild the card."""
    model_dir = Path(model_dir)
    evaluations = _read(model_dir / EVALUATIONS)
    evaluations[name] = {"data": str(data), **{k: round(float(v), 4) for k, v in headline.items()}}
    tmp = model_dir / f".{EVALUATIONS}.tmp"
    tmp.write_text(json.dumps(evaluations, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(model_dir / EVALUATIONS)
    write_model_card(model_dir)


def model_card(model_dir: str | Path, name: str | None = None):
    """The :class:`huggingface_hub.ModelCard` of a model folder (``name``: the model's name, default the
    folder's)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = _read(model_dir / "config.json")
    training = _read(model_dir / "training_config.yaml")
    dev = _read(model_dir / "dev_metrics.json")
    evaluations = _read(model_dir / EVALUATIONS)
    from rustance.tasks import task_spec

    spec = task_spec(config.get("task", "stance"))
    task = spec.name
    base = config.get("base_model") or training.get("model", {}).get("name")
    name = name or model_dir.resolve().name
    sets = {"dev": _figures(dev, task)} if dev else {}
    sets.update({key: _figures(value, task) for key, value in evaluations.items() if isinstance(value, dict)})
    results = [EvalResult(task_type="text-classification", dataset_type=f"rustance-{task}",
                          dataset_name=f"rustance {task} ({split})", dataset_split=split, metric_type="f1",
                          metric_name=metric, metric_value=value)
               for split, figures in sets.items() for metric, value in figures.items() if metric != "accuracy"]
    data = ModelCardData(
        language=["ru"], license=LICENSE, library_name="transformers", pipeline_tag="text-classification",
        tags=["rustance", "russian", "political-news", *spec.card_tags],
        base_model=base if base and not str(base).startswith(("/", ".", "~")) else None,
        model_name=name, eval_results=results or None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(name, config, training, sets, spec, base)}")


def _table(sets: dict[str, dict[str, float]]) -> str:
    metrics = list(dict.fromkeys(k for figures in sets.values() for k in figures))
    if not metrics:
        return "No figures recorded yet: `rustance evaluate --model THIS_FOLDER --data FILE` adds them.\n"
    lines = ["| set | " + " | ".join(m.replace("_macro_f1", " macro-F1") for m in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for split, figures in sets.items():
        lines.append(f"| {split} | " + " | ".join(f"{figures[m]:.3f}" if m in figures else "–" for m in metrics)
                     + " |")
    return "\n".join(lines) + "\n"


def _listing(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _body(name: str, config: dict, training: dict, sets: dict, spec, base: str | None) -> str:
    data, train = training.get("data", {}), training.get("train", {})
    parts = [f"# {name}", "", f"A rustance model ({spec.description}). {spec.card_summary}", ""]
    if config.get("topics"):
        parts += ["## Labels", "", "Stances: " + ", ".join(config.get("stances") or []) + "; sentiment: "
                  + ", ".join(str(v) for v in (config.get("id2label") or {}).values()) + ".", "",
                  "## Topics", "", *[f"- `{t['id']}`: {t.get('description', '')}" for t in config["topics"]], ""]
    else:
        parts += ["## Labels", "", "Sentiment: " + ", ".join(str(v) for v in (config.get("id2label") or {}).values())
                  + ".", ""]
    if config.get("thresholds"):
        parts += ["Decision thresholds per topic (chosen on dev): "
                  + ", ".join(f"`{k}` {v}" for k, v in config["thresholds"].items()), ""]
    parts += [
        "## Use", "", "```python", "from rustance import load", "", f'model = load("{name}")  # a folder or a Hub id',
        spec.card_example, "```", "",
        "`AutoModel.from_pretrained` loads it too after `import rustance.model` (which registers the "
        "`rustance` model type).", "",
        "## Model", "",
        f"- Base encoder: `{base}`", f"- Pooling: {config.get('pooling')}; max length {config.get('max_length')} tokens"
        + (f"; previous sentence read as context ({config.get('context_mode')})" if config.get("use_context") else ""),
        f"- Calibration (softmax temperatures, fitted on dev): {config.get('temperatures')}"
        if config.get("temperatures") else "- No calibration stored",
        *([f"- TF-IDF fusion: each head's probability is w × network + (1 − w) × a TF-IDF + logistic-regression "
           "model fitted on the same training file (`tfidf.skops`, read with skops"
           + ("; its topic models also read the previous sentence" if train.get("tfidf_context") else "")
           + "); w per head, chosen on dev: "
           + ", ".join(f"{k} {v:g}" for k, v in config["fusion"].items())
           + (f"; the blend's temperatures: {config['fusion_temperatures']}" if config.get("fusion_temperatures") else "")]
          if config.get("fusion") else []), "",
        "## Training", "",
        f"- Data: `{data.get('train')}` (dev: `{data.get('dev') or 'split off the training file'}`)",
        f"- Epochs {train.get('epochs')}, batch {train.get('batch_size')}, learning rates {train.get('learning_rate')} "
        f"(encoder) / {train.get('head_learning_rate')} (heads), seed {train.get('seed')}; "
        f"checkpoint chosen on dev `{train.get('metric_for_best')}`",
        "- The full training configuration is `training_config.yaml` in this folder.", "",
        "## Results", "", _table(sets),
        "Dev figures are optimistic: dev chose " + _listing(
            ["the checkpoint"] + (["the thresholds"] if config.get("thresholds") else [])
            + (["the calibration"] if config.get("temperatures") else [])
            + (["the fusion weights"] if config.get("fusion") else [])) + ".", "",
        "## Intended use and limitations", "",
        "For analysts tracking official rhetoric in Russian political and diplomatic news. Not for decisions about "
        "individuals, and not outside this news domain without re-evaluation.", "",
        spec.card_limitations, "",
    ]
    return "\n".join(parts)


def write_model_card(model_dir: str | Path, name: str | None = None) -> Path:
    """(Re)write ``README.md`` in a model folder."""
    path = Path(model_dir) / "README.md"
    model_card(model_dir, name).save(path)
    return path


def push_model(model_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a model folder (weights, config, tokenizer, card; not checkpoints or evaluation reports) to the
    Hub repository ``repo_id``; returns its URL. Any Hub or network failure is a one-line :class:`PushError`."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise PushError(f"{model_dir} is not a saved rustance model (config.json and model.safetensors)")
    if not (model_dir / "README.md").is_file():
        write_model_card(model_dir)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, repo_type="model",
                                   ignore_patterns=["checkpoints/*", "eval-*", ".*", "*/.*"],
                                   commit_message="Upload rustance model")
    except Exception as exc:  # offline mode, network, authentication, permissions: all reported the same way
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PushError(f"cannot push {model_dir} to the Hub repository {repo_id!r}: {first}") from exc
    return getattr(commit, "repo_url", None) or f"https://huggingface.co/{repo_id}"
