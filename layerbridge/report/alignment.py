"""The layer-wise alignment probe (``alignment.json``): a Markdown table and a heatmap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.io import atomic_file, write_json
from layerbridge.report._plot import pyplot, save


def plot_alignment(probe: dict[str, Any], path: Path) -> None:
    """Alignment probe: heatmap languages x representations (mean of both retrieval directions)."""
    plt = pyplot()
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
    save(fig, path)


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
