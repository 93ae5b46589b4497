"""Writing evaluation artefacts: JSON, CSV, a Markdown table and two plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.io import atomic_file, write_json

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
                ]
            )
    return out.getvalue()


def markdown_table(results: dict[str, Any]) -> str:
    """Per-language accuracy / macro-F1 (%, 95% bootstrap CI) plus the averages and confusion matrices."""
    lines = [
        f"## {results['task']} — {results['split']} ({results['config']['mode']}, "
        f"fusion `{results['bridge'].get('fusion', '?')}`)",
        "",
        "| language | n | accuracy % [95% CI] | macro-F1 % [95% CI] |",
        "|---|---:|---|---|",
    ]
    for lang, r in results["languages"].items():
        mark = " *(low-resource)*" if r["low_resource"] else ""
        lines.append(
            f"| {lang}{mark} | {r['n']} | {_pct(r['accuracy'])} [{_pct(r['accuracy_ci'][0])}, "
            f"{_pct(r['accuracy_ci'][1])}] | {_pct(r['macro_f1'])} [{_pct(r['macro_f1_ci'][0])}, "
            f"{_pct(r['macro_f1_ci'][1])}] |"
        )
    for name, avg in results["averages"].items():
        if avg["languages"]:
            lo, hi = avg["accuracy_ci"]
            lines.append(
                f"| **average ({name})** | | **{_pct(avg['accuracy'])}** [{_pct(lo)}, {_pct(hi)}] | "
                f"{_pct(avg['macro_f1'])} |"
            )
    labels = results["label_strings"]
    lines += ["", "Confusion matrices (rows = gold, columns = predicted; `∅` = no label matched):", ""]
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


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_layer_weights(results: dict[str, Any], path: Path) -> None:
    """Heatmap: languages (rows) x encoder layers (columns), mean fusion weight."""
    plt = _pyplot()

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
    _save(fig, path)


def plot_accuracy(results: dict[str, Any], path: Path) -> None:
    """Per-language accuracy with 95% CIs and the chance level."""
    plt = _pyplot()

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
    _save(fig, path)


def plot_sorted_accuracy(summary: dict[str, Any], path: Path) -> None:
    """Comparison: per-language accuracy (mean over seeds), languages sorted by the baseline, one
    line per fusion; the baseline's seed spread as a band."""
    plt = _pyplot()
    langs, table, baseline = summary["languages"], summary["table"], summary["baseline"]
    key = baseline if baseline in table else summary["fusions"][0]
    order = sorted(langs, key=lambda x: table[key]["languages"][x]["accuracy_mean"])
    many = len(order) > 40
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + (0.09 if many else 0.45) * len(order)), 3.6), dpi=130)
    x = np.arange(len(order))
    for fusion in summary["fusions"]:
        stats = [table[fusion]["languages"][lang] for lang in order]
        mean = np.array([s["accuracy_mean"] for s in stats]) * 100
        ax.plot(x, mean, marker="" if many else "o", markersize=3, linewidth=1.2, label=fusion)
        if fusion == key:
            std = np.array([s["accuracy_std"] for s in stats]) * 100
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xticks(x, order, rotation=90, fontsize=4.5 if many else 8)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_ylabel("accuracy (%), mean over seeds")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"per-language accuracy, sorted by `{key}` (band: ±1 std over seeds)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_gain_vs_baseline(summary: dict[str, Any], path: Path) -> None:
    """Comparison: each fusion's gain over the baseline (points) against the baseline's accuracy,
    one panel per fusion, coloured by whether the encoder was pretrained on the language."""
    plt = _pyplot()
    table, baseline, meta = summary["table"], summary["baseline"], summary.get("language_meta", {})
    others = [f for f in summary["fusions"] if f != baseline and f in summary["significance"]]
    fig, axes = plt.subplots(1, len(others), figsize=(4.2 * len(others), 3.6), dpi=130, squeeze=False)
    colours = {
        True: ("tab:blue", "encoder-covered"),
        False: ("tab:red", "not covered"),
        None: ("grey", "unknown"),
    }
    for ax, fusion in zip(axes[0], others, strict=True):
        for flag, (colour, name) in colours.items():
            langs = [x for x in summary["languages"] if meta.get(x, {}).get("covered") is flag]
            if not langs:
                continue
            base = np.array([table[baseline]["languages"][x]["accuracy_mean"] for x in langs]) * 100
            gain = np.array([table[fusion]["languages"][x]["accuracy_mean"] for x in langs]) * 100 - base
            ax.scatter(base, gain, s=12, color=colour, alpha=0.75, label=f"{name} ({len(langs)})")
            if len(langs) <= 20:
                for b, g, lang in zip(base, gain, langs, strict=True):
                    ax.annotate(lang, (b, g), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"`{baseline}` accuracy (%)")
        ax.set_ylabel(f"gain of `{fusion}` (points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{fusion} − {baseline}, per language", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


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


def plot_alignment(probe: dict[str, Any], path: Path) -> None:
    """Alignment probe: heatmap languages x representations (mean of both retrieval directions)."""
    plt = _pyplot()
    langs = sorted(
        probe["languages"],
        key=lambda x: (probe["languages"][x]["covered"] is not True, -probe["languages"][x]["mean"][-1]),
    )
    values = np.array([probe["languages"][x]["mean"] for x in langs]) * 100
    columns = probe["columns"]
    row = 0.35 if len(langs) <= 40 else 0.13
    fig, ax = plt.subplots(figsize=(2.5 + 0.45 * len(columns), 1.2 + row * len(langs)), dpi=120)
    image = ax.imshow(values, aspect="auto", cmap="magma", vmin=0, vmax=100)
    ax.set_xticks(range(len(columns)), columns, rotation=90 if len(columns) > 16 else 0, fontsize=8)
    labels = [x + (" *" if probe["languages"][x]["covered"] is False else "") for x in langs]
    ax.set_yticks(range(len(langs)), labels, fontsize=8 if len(langs) <= 40 else 4.5)
    ax.set_xlabel("encoder layer (emb = embedding output)")
    ax.set_title(
        f"{probe['task']}: translation retrieval vs English, % (mean of both directions)\n"
        "covered languages first; * = not in the encoder's pretraining",
        fontsize=8,
    )
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    _save(fig, path)


def markdown_alignment(probe: dict[str, Any]) -> str:
    """Alignment probe: per-group mean retrieval accuracy by representation, and the best one."""
    columns = probe["columns"]
    lines = [
        f"## Cross-lingual alignment — {probe['task']} {probe['split']} (retrieval of the English "
        "translation, %, mean of both directions)",
        "",
        "| group | languages | " + " | ".join(columns) + " | best |",
        "|---|---:|" + "---:|" * len(columns) + "---|",
    ]
    for name, s in probe["summary"].items():
        cells = " | ".join(f"{100 * v:.1f}" for v in s["mean"])
        lines.append(f"| {name} | {s['languages']} | {cells} | {s['best']} |")
    timing = probe["timing"]
    lines += ["", f"{timing['sentences']} sentences in {timing['seconds']} s."]
    return "\n".join(lines) + "\n"


def write_alignment_report(probe: dict[str, Any], out_dir: Path) -> str:
    """Write alignment.json, alignment.md and alignment.png; returns the Markdown table."""
    text = markdown_alignment(probe)
    write_json(out_dir / "alignment.json", probe)
    with atomic_file(out_dir / "alignment.md", "w", encoding="utf-8") as handle:
        handle.write(text)
    plot_alignment(probe, out_dir / "alignment.png")
    return text
