"""Evaluation output for people: Markdown report and PNG plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _confusion(ax, matrix: list[list[int]], labels: list[str], title: str) -> None:
    data = np.array(matrix) if matrix else np.zeros((len(labels), len(labels)), dtype=int)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=9)
    top = data.max() if data.size else 0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, str(data[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if data[i, j] > top / 2 else "black")


def write_plots(systems: dict, topic_ids: list[str], out_dir: Path) -> dict[str, str]:
    """Confusion matrices (stance, joint, sentiment) per system, and per-topic F1 bars."""
    images = {}
    for task in ("topic", "stance", "joint", "sentiment"):
        size = 4.2 if task != "topic" else 5.5
        fig, axes = plt.subplots(1, len(systems), figsize=(size * len(systems), size - 0.2), squeeze=False)
        for ax, (name, result) in zip(axes[0], systems.items()):
            m = result["metrics"][task]
            _confusion(ax, m["confusion"], m["labels"], f"{name}\nmacro-F1 {m['macro_f1']:.3f}")
        fig.suptitle(f"{task} confusion matrices")
        fig.tight_layout()
        images[f"{task}_confusion"] = f"confusion_{task}.png"
        fig.savefig(out_dir / images[f"{task}_confusion"], dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(topic_ids)), 4))
    width = 0.8 / len(systems)
    for k, (name, result) in enumerate(systems.items()):
        f1 = [result["metrics"]["topic"]["per_class"][t]["f1"] for t in topic_ids]
        ax.bar(np.arange(len(topic_ids)) + k * width, f1, width, label=name)
    ax.set_xticks(np.arange(len(topic_ids)) + width * (len(systems) - 1) / 2, topic_ids, rotation=30, ha="right")
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.set_title("topic detection F1 per topic")
    ax.legend(fontsize=8)
    fig.tight_layout()
    images["topic_f1"] = "topic_f1.png"
    fig.savefig(out_dir / images["topic_f1"], dpi=110)
    plt.close(fig)
    return images


COVERAGE_TABLE_CUTS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # the rows of report.md's coverage table


def write_confidence_plots(calibration: dict, coverage: dict, out_dir: Path) -> dict[str, str]:
    """Reliability diagrams (stance and sentiment heads, before and after temperature scaling, with the
    bin counts) and the coverage curve (macro-F1 of the answered pairs against their share)."""
    heads = ("stance", "sentiment")
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    for column, head in enumerate(heads):
        top, bottom = axes[0][column], axes[1][column]
        top.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
        width = 1 / calibration["bins"]
        for k, (when, colour) in enumerate((("before", "#d95f02"), ("after", "#1b9e77"))):
            result = calibration[head][when]
            used = [b for b in result["bins"] if b["count"]]
            label = (f"{when}: T = {calibration[head]['temperature']:g}" if when == "after" else "before: T = 1")
            if when == "after" and "blend_temperature" in calibration[head]:
                label += f", blend T = {calibration[head]['blend_temperature']:g}"
            top.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], marker="o", color=colour,
                     label=f"{label}, ECE {result['ece']:.3f}")
            bottom.bar([b["lower"] + width * (0.25 + 0.5 * k) for b in result["bins"]],
                       [b["count"] for b in result["bins"]], width / 2, color=colour, label=when)
        pairs = "(sentence, gold topic) pairs" if head == "stance" else "sentences"
        top.set_title(f"{head} head: {calibration[head]['after']['n']} {pairs}", fontsize=10)
        top.set_ylabel("accuracy in bin")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.legend(fontsize=8, loc="upper left")
        bottom.set_xlabel(f"top-label confidence ({calibration['bins']} bins)")
        bottom.set_ylabel("count")
        bottom.legend(fontsize=8)
    fig.suptitle("reliability diagrams: before and after temperature scaling")
    fig.tight_layout()
    fig.savefig(out_dir / "reliability.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, colour in (("stance", "#7570b3"), ("joint", "#e7298a")):
        points = [p for p in coverage[name] if p["macro_f1"] is not None]
        ax.plot([p["coverage"] for p in points], [p["macro_f1"] for p in points], marker=".", color=colour,
                label="stance given the gold topic" if name == "stance" else "joint (topic and stance)")
        for p in points:
            if p["cut"] in COVERAGE_TABLE_CUTS[1:]:
                ax.annotate(f"{p['cut']:g}", (p["coverage"], p["macro_f1"]), fontsize=7, color=colour,
                            textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("coverage (share of pairs answered)")
    ax.set_ylabel("macro-F1 of the answered pairs")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1)
    ax.invert_xaxis()
    ax.set_title("abstaining below a confidence cut (labels: min_confidence)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "coverage.png", dpi=110)
    plt.close(fig)
    return {"reliability": "reliability.png", "coverage": "coverage.png"}


def _confidence_markdown(summary: dict, images: dict[str, str]) -> list[str]:
    calibration, coverage = summary["calibration"], summary["coverage"]
    rows = []
    for head in ("stance", "sentiment"):
        c = calibration[head]
        rows.append([head, str(c["after"]["n"]), f"{c['temperature']:g}"
                     + (f", blend {c['blend_temperature']:g}" if "blend_temperature" in c else ""), f"{c['before']['ece']:.3f}",
                     f"{c['after']['ece']:.3f}", f"{c['before']['mean_confidence']:.3f}",
                     f"{c['after']['mean_confidence']:.3f}", f"{c['after']['accuracy']:.3f}"])
    parts = ["## Model: calibration",
             f"Expected calibration error (ECE) of the top-label confidence, {calibration['bins']} equal-width bins, "
             "before temperature scaling (T = 1) and after (the temperatures fitted on dev and saved with the "
             "model). Stance: over the (sentence, topic) pairs of the gold topics, the stance predicted for each; "
             "sentiment: over sentences. Definitions: `rustance/calibration.py`."
             + (" For a model fused with TF-IDF the probabilities are the blend's; 'before' applies no temperature, "
                "'after' the network's and then the blend's (`blend`)." if summary.get("fusion") else ""),
             _table(rows, ["head", "n", "temperature", "ECE before", "ECE after", "mean confidence before",
                           "mean confidence after", "accuracy"]),
             f"![reliability diagrams]({images['reliability']})"]
    by_cut = {name: {p["cut"]: p for p in points} for name, points in coverage.items()}
    rows = []
    for cut in COVERAGE_TABLE_CUTS:
        row = ["none (all answered)" if cut == 0 else f"{cut:g}"]
        for name in ("stance", "joint"):
            p = by_cut[name].get(cut)
            if p is None:
                row += ["–", "–"]
            else:
                row += [f"{p['coverage']:.3f}", "–" if p["macro_f1"] is None else f"{p['macro_f1']:.3f}"]
        rows.append(row)
    parts += ["## Model: macro-F1 against coverage (abstaining with `min_confidence`)",
              "A pair below the cut is answered `uncertain` (as `rustance predict --min-confidence` does); "
              "coverage is the share of pairs answered, macro-F1 is over the answered ones. Stance: gold "
              "(sentence, topic) pairs, answered when the top stance probability reaches the cut. Joint: every "
              "(sentence, topic) pair, answered when the topic decision's confidence (p if reported, else 1 - p) "
              "reaches the cut and, for a reported topic, so does its stance's.",
              _table(rows, ["min_confidence", "stance coverage", "stance macro-F1", "joint coverage",
                            "joint macro-F1"]),
              f"![coverage curve]({images['coverage']})"]
    return parts


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(summary: dict, images: dict[str, str], path: Path) -> None:
    heads = summary["headline"]
    keys = list(next(iter(heads.values())))
    parts = [
        "# rustance evaluation",
        f"Model `{summary['model_dir']}` on `{summary['data']}` ({summary['n_sentences']} sentences). "
        f"Baselines trained on `{summary['train_for_baselines']}`.",
        *([f"The model blends its network's probabilities with its own TF-IDF part (fitted on its training file; "
           "weights of the network per head, chosen on dev: "
           + ", ".join(f"{k} {v:g}" for k, v in summary["fusion"].items()) + "); the rows below score the blend."]
          if summary.get("fusion") else []),
        "## Summary (macro-F1)",
        _table([[name] + [f"{v[k]:.3f}" for k in keys] for name, v in heads.items()], ["system"] + keys),
    ]
    model = summary["systems"]["model"]["metrics"]
    for task in ("stance", "sentiment", "joint"):
        rows = [[lab, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])]
                for lab, v in model[task]["per_class"].items()]
        parts += [f"## Model: {task} (accuracy {model[task]['accuracy']:.3f}, macro-F1 {model[task]['macro_f1']:.3f})",
                  _table(rows, ["class", "precision", "recall", "F1", "support"]), f"![{task}]({images[task + '_confusion']})"]
    rows = [[t, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]), str(v["predicted"])]
            for t, v in model["topic"]["per_class"].items()]
    parts += [f"## Model: topics (macro-F1 {model['topic']['macro_f1']:.3f}, exact match "
              f"{model['topic']['exact_match']:.3f})",
              _table(rows, ["topic", "precision", "recall", "F1", "support", "predicted"]), f"![topic F1]({images['topic_f1']})",
              f"![topic confusion]({images['topic_confusion']})",
              "Definitions: see `rustance/metrics.py` (stance = stance given a gold topic; joint = topic and stance "
              "both right, macro over the four stances)."]
    if "calibration" in summary and "reliability" in images:
        parts += _confidence_markdown(summary, images)
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def plot_history(epochs: list[dict], path: Path) -> None:
    """Training loss and dev macro-F1 per epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = [e["epoch"] for e in epochs]
    left.plot(x, [e["train_loss"] for e in epochs], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    keys = [k for k in epochs[0] if k.endswith("_macro_f1") or k.startswith("f1_")] if epochs else []
    for key in keys:
        right.plot(x, [e[key] for e in epochs], marker="o", label=key.replace("_macro_f1", ""))
    right.set_xlabel("epoch")
    right.set_ylabel("dev F1")
    right.set_ylim(0, 1)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_targeted_report(summary: dict, out_dir: Path) -> None:
    """report.md for targeted sentiment: systems table, per-class figures, confusion matrices and the
    neutral-threshold sweep (PNG + table)."""
    where = f"`{summary['data']}`" + (f" (split `{summary['split']}`)" if summary.get("split") else "")
    parts = ["# rustance evaluation: entity-targeted sentiment",
             f"Model `{summary['model_dir']}` (encoder `{summary['base_model']}`, target marker "
             f"`{summary['target_marker']}`) on {where}: {summary['n_targets']} targets in "
             f"{summary['n_sentences']} sentences; model inference {summary['model_seconds']} s."
             + (f" Training took {summary['training_seconds']:.0f} s." if summary.get("training_seconds") else "")]
    if summary.get("command"):
        parts.append(f"Command: `{summary['command']}`")
    if summary["skipped_rows"]:
        parts.append(f"{len(summary['skipped_rows'])} malformed row(s) skipped (listed in metrics.json).")
    if not summary["labelled"]:
        parts.append("The file has no labels: predictions only, in `predictions.tsv` (by line).")
        (out_dir / "report.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        return
    systems = summary["systems"]
    parts += ["## Summary",
              "F1_PN: macro-F1 over negative and positive (the official RuSentNE-2023 metric); "
              "F1_PN0: macro-F1 over all three classes.",
              _table([[name, f"{m['f1_pn']:.3f}", f"{m['f1_pn0']:.3f}", f"{m['accuracy']:.3f}"]
                      for name, m in systems.items()], ["system", "F1_PN", "F1_PN0", "accuracy"])]
    for name, m in systems.items():
        rows = [[lab, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])]
                for lab, v in m["per_class"].items()]
        parts += [f"### {name}", _table(rows, ["class", "precision", "recall", "F1", "support"])]
    fig, axes = plt.subplots(1, len(systems), figsize=(4.2 * len(systems), 4.0), squeeze=False)
    for ax, (name, m) in zip(axes[0], systems.items()):
        _confusion(ax, m["confusion"], m["labels"], f"{name}\nF1_PN {m['f1_pn']:.3f}")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_sentiment.png", dpi=110)
    plt.close(fig)
    parts.append("![confusion matrices](confusion_sentiment.png)")

    sweep = summary["neutral_shift_sweep"]
    best = max(sweep, key=lambda r: r["f1_pn"])
    at_zero = next(r for r in sweep if r["shift"] == 0)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([r["shift"] for r in sweep], [r["f1_pn"] for r in sweep], marker="o", label="F1_PN")
    ax.plot([r["shift"] for r in sweep], [r["f1_pn0"] for r in sweep], marker=".", label="F1_PN0")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("shift added to log P(neutral)  (< 0: fewer neutral predictions)")
    ax.set_ylabel("F1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "neutral_threshold.png", dpi=110)
    plt.close(fig)
    weighted = systems.get("TF-IDF + logistic regression")
    unweighted = systems.get("TF-IDF + logistic regression (unweighted)")
    parts += ["## Class imbalance: weighting and the neutral threshold",
              f"Model as trained (shift 0): F1_PN {at_zero['f1_pn']:.3f}. Best shift on this same data: "
              f"{best['shift']:+.2f} gives F1_PN {best['f1_pn']:.3f} (an oracle choice on the evaluation data, "
              "shown to size the effect, not a result).",
              "![neutral threshold](neutral_threshold.png)"]
    if weighted and unweighted:
        parts.append(f"TF-IDF + LR with balanced class weights: F1_PN {weighted['f1_pn']:.3f}; without: "
                     f"{unweighted['f1_pn']:.3f}.")
    (out_dir / "report.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
