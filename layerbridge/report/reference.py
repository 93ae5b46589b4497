"""A comparison with another system's published answers (``reference-<name>.json``): Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layerbridge.io import atomic_file, write_json


def reference_markdown(result: dict[str, Any]) -> str:
    """Groups first (each fusion's accuracy, Δ vs the reference with its sentence-level bootstrap
    CI), then every language of the smallest named group, all in %."""
    name, fusions = result["name"], result["fusions"]
    lines = [
        f"Bridges vs **{name}**'s published zero-shot answers, scored on the same test items "
        f"({result['items_per_language']} per language; seeds {result['seeds']} averaged). "
        f"Δ = fusion − {name} in points, 95% CI and p from resampling the test sentences "
        "(each carries its difference averaged over the group's languages).",
        "",
        f"| group | {name} | " + " | ".join(f"`{f}` (Δ [95% CI], p)" for f in fusions) + " |",
        "|---|---:|" + "---:|" * len(fusions),
    ]
    for group, stats in result["groups"].items():
        cells = [_cell(stats[f]) for f in fusions]
        size = len(stats["languages"])
        lines.append(f"| {group} ({size}) | {100 * stats['reference']:.1f} | " + " | ".join(cells) + " |")
    focus = result["focus_group"]
    if focus in result["groups"]:
        lines += [
            "",
            f"Per language ({focus}); in brackets {name} on the full test split "
            f"({result['full_test_items']} items):",
            "",
            f"| language | {name} | " + " | ".join(f"`{f}`" for f in fusions) + " |",
            "|---|---:|" + "---:|" * len(fusions),
        ]
        for lang in result["groups"][focus]["languages"]:
            row = result["languages"][lang]
            full = result["reference_full_test"][lang]
            lines.append(
                f"| {lang} | {100 * row['reference']:.1f} ({100 * full:.1f}) | "
                + " | ".join(f"{100 * row[f]:.1f}" for f in fusions)
                + " |"
            )
    return "\n".join(lines) + "\n"


def _cell(test: dict[str, float]) -> str:
    return (
        f"{100 * test['accuracy']:.1f} ({100 * test['delta']:+.1f} "
        f"[{100 * test['ci_low']:+.1f}, {100 * test['ci_high']:+.1f}], p={test['p_value']:.3f})"
    )


def write_reference(result: dict[str, Any], out_dir: Path) -> Path:
    """``reference-<name>.json`` and ``.md`` in ``out_dir``; returns the Markdown's path."""
    stem = out_dir / f"reference-{result['name']}"
    write_json(stem.with_suffix(".json"), result)
    with atomic_file(stem.with_suffix(".md")) as handle:
        handle.write(reference_markdown(result))
    return stem.with_suffix(".md")
