"""One evaluation (``results.json``): CSV, a Markdown table, two plots, and the artefact folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.io import atomic_file, write_json
from layerbridge.report._plot import pyplot, save

CSV_COLUMNS = [
    "language",
    "low_resource",
    "script",
    "covered",
    "n",
    "accuracy",
    "accuracy_lo",
    "accuracy_hi",
    "macro_f1",
    "macro_f1_lo",
    "macro_f1_hi",
    "invalid",
    "generation_accuracy",  # mode "both" only
]


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.1f}"


def csv_text(results: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for lang, r in results["languages"].items():
        writer.writerow(
            [
                lang,
                int(r["low_resource"]),
                r.get("script", ""),
                "" if r.get("covered") is None else int(r["covered"]),
                r["n"],
                f"{r['accuracy']:.6f}",
                f"{r['accuracy_ci'][0]:.6f}",
                f"{r['accuracy_ci'][1]:.6f}",
                f"{r['macro_f1']:.6f}",
                f"{r['macro_f1_ci'][0]:.6f}",
                f"{r['macro_f1_ci'][1]:.6f}",
                r["invalid"],
                f"{r['generation']['accuracy']:.6f}" if "generation" in r else "",
            ]
        )
    for name, avg in results["averages"].items():
        if avg["languages"]:
            writer.writerow(
                [
                    f"avg:{name}",
                    "",
                    "",
                    "",
                    len(avg["languages"]),
                    f"{avg['accuracy']:.6f}",
                    f"{avg['accuracy_ci'][0]:.6f}",
                    f"{avg['accuracy_ci'][1]:.6f}",
                    f"{avg['macro_f1']:.6f}",
                    "",
                    "",
                    "",
                    f"{avg['generation_accuracy']:.6f}" if "generation_accuracy" in avg else "",
                ]
            )
    return out.getvalue()


def markdown_table(results: dict[str, Any]) -> str:
    """results.md: the accuracy table, then the confusion matrices."""
    return results_markdown(results) + "\n" + confusion_markdown(results)


def results_markdown(results: dict[str, Any]) -> str:
    """Per-language accuracy / macro-F1 (%, 95% bootstrap CI) plus the group averages; with
    mode "both", the generation (exact-match) accuracy and its unmatched count beside them."""
    both = all("generation" in r for r in results["languages"].values()) and results["languages"]
    extra_head, extra_rule = (
        (" generation accuracy % [95% CI] | no label |", "---|---:|") if both else ("", "")
    )
    lines = [
        f"## {results['task']} — {results['split']} ({results['config']['mode']}, "
        f"fusion `{results['bridge'].get('fusion', '?')}`)",
        "",
        "| language | n | accuracy % [95% CI] | macro-F1 % [95% CI] |" + extra_head,
        "|---|---:|---|---|" + extra_rule,
    ]
    for lang, r in results["languages"].items():
        mark = " *(low-resource)*" if r["low_resource"] else ""
        row = (
            f"| {lang}{mark} | {r['n']} | {_pct(r['accuracy'])} [{_pct(r['accuracy_ci'][0])}, "
            f"{_pct(r['accuracy_ci'][1])}] | {_pct(r['macro_f1'])} [{_pct(r['macro_f1_ci'][0])}, "
            f"{_pct(r['macro_f1_ci'][1])}] |"
        )
        if both:
            gen = r["generation"]
            lo, hi = gen["accuracy_ci"]
            row += f" {_pct(gen['accuracy'])} [{_pct(lo)}, {_pct(hi)}] | {gen['invalid']} |"
        lines.append(row)
    for name, avg in results["averages"].items():
        if avg["languages"]:
            lo, hi = avg["accuracy_ci"]
            row = (
                f"| **average ({name})** | | **{_pct(avg['accuracy'])}** [{_pct(lo)}, {_pct(hi)}] | "
                f"{_pct(avg['macro_f1'])} |"
            )
            lines.append(row + (f" **{_pct(avg.get('generation_accuracy'))}** | |" if both else ""))
    return "\n".join(lines) + "\n"


def confusion_markdown(results: dict[str, Any]) -> str:
    """Each language's confusion matrix (rows = gold, columns = predicted)."""
    labels = results["label_strings"]
    lines = ["Confusion matrices (rows = gold, columns = predicted; `∅` = no label matched):", ""]
    for lang, r in results["languages"].items():
        lines += [
            f"**{lang}**",
            "",
            "| gold \\ pred | " + " | ".join(labels) + " | ∅ |",
            "|---|" + "---:|" * (len(labels) + 1),
        ]
        for label, row in zip(labels, r["confusion"], strict=True):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_layer_weights(results: dict[str, Any], path: Path) -> None:
    """Heatmap: languages (rows) x encoder layers (columns), mean fusion weight."""
    plt = pyplot()

    langs = list(results["languages"])
    weights = np.array([results["languages"][lang]["layer_weights"] for lang in langs])
    row = 0.35 if len(langs) <= 40 else 0.14
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * weights.shape[1], 1 + row * len(langs)), dpi=120)
    image = ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0)
    first = 0 if results["bridge"].get("include_embeddings") else 1  # layer 0 = embedding output
    ax.set_xticks(range(weights.shape[1]), [str(i + first) for i in range(weights.shape[1])])
    ax.set_yticks(range(len(langs)), langs, fontsize=8 if len(langs) <= 40 else 5)
    ax.set_xlabel("encoder layer")
    ax.set_ylabel("language")
    ax.set_title(f"{results['task']}: mean layer weight ({results['bridge'].get('fusion', '')})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    save(fig, path)


def plot_accuracy(results: dict[str, Any], path: Path) -> None:
    """Per-language accuracy with 95% CIs and the chance level."""
    plt = pyplot()

    langs = list(results["languages"])
    acc = np.array([results["languages"][lang]["accuracy"] for lang in langs]) * 100
    lo = np.array([results["languages"][lang]["accuracy_ci"][0] for lang in langs]) * 100
    hi = np.array([results["languages"][lang]["accuracy_ci"][1] for lang in langs]) * 100
    colors = ["tab:orange" if results["languages"][lang]["low_resource"] else "tab:blue" for lang in langs]
    from matplotlib.patches import Patch

    many = len(langs) > 40
    fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + (0.12 if many else 0.5) * len(langs)), 3.2), dpi=120)
    ax.bar(langs, acc, color=colors, yerr=[acc - lo, hi - acc], capsize=0 if many else 3)
    if many:
        ax.tick_params(axis="x", labelrotation=90, labelsize=5)
    chance = ax.axhline(100 / len(results["label_strings"]), color="grey", linestyle="--", linewidth=1)
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results['task']} {results['split']} — {results['bridge'].get('fusion', '')}", fontsize=9)
    handles = [Patch(color="tab:blue"), Patch(color="tab:orange"), chance]
    ax.legend(handles, ["other", "low-resource", "chance"], loc="upper right", fontsize=7)
    fig.tight_layout()
    save(fig, path)


def write_report(results: dict[str, Any], predictions: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, predictions.json, results.csv, results.md, layer_weights.png, accuracy.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "predictions": out_dir / "predictions.json",
        "csv": out_dir / "results.csv",
        "markdown": out_dir / "results.md",
        "layer_weights": out_dir / "layer_weights.png",
        "accuracy": out_dir / "accuracy.png",
    }
    write_json(paths["json"], results)
    write_json(paths["predictions"], predictions)
    with atomic_file(paths["csv"], "w", encoding="utf-8") as handle:
        handle.write(csv_text(results))
    with atomic_file(paths["markdown"], "w", encoding="utf-8") as handle:
        handle.write(markdown_table(results))
    plot_layer_weights(results, paths["layer_weights"])
    plot_accuracy(results, paths["accuracy"])
    return paths
