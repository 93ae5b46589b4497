"""A finished comparison against another system's published answers (e.g. GPT-4 on SIB-200).

Reads a comparison folder — a live one (``<fusion>/seed-<s>/eval/predictions.json``) or a
committed export (``runs/<fusion>/seed-<s>/predictions.json``) — and scores the reference's
answers on exactly the items each bridge was tested on (:mod:`layerbridge.evaluation.reference`).
Besides the comparison's own groups it reports ``low_resource_covered``: the task's low-resource
languages that the encoder was pretrained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layerbridge.errors import ConfigError
from layerbridge.evaluation.reference import compare_to_reference, reference_correctness
from layerbridge.report.reference import write_reference

FOCUS_GROUP = "low_resource_covered"


def check_reference_inputs(results_dir: Path, answers_dir: Path, name: str) -> dict[str, Any]:
    """Validate the inputs (before anything is read at length); returns the comparison summary."""
    if not (results_dir / "comparison.json").is_file():
        raise ConfigError(f"{results_dir} is not a finished comparison (no comparison.json)")
    if not answers_dir.is_dir() or not any(answers_dir.glob("*.tsv")):
        raise ConfigError(f"{answers_dir} holds no answers files (<language>.tsv)")
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ConfigError(f"bad reference name {name!r} (it names the output files: use e.g. gpt-4)")
    return json.loads((results_dir / "comparison.json").read_text(encoding="utf-8"))


def predictions_path(results_dir: Path, fusion: str, seed: int) -> Path:
    """Where one run's test predictions are: the live run folder's, else the export's."""
    live = results_dir / fusion / f"seed-{seed}" / "eval" / "predictions.json"
    exported = results_dir / "runs" / fusion / f"seed-{seed}" / "predictions.json"
    if live.is_file() or not exported.is_file():
        return live
    return exported


def compare_with_reference(
    results_dir: str | Path, answers_dir: str | Path, name: str, n_resamples: int = 10_000
) -> Path:
    """Score ``name``'s answers in ``answers_dir`` against the comparison in ``results_dir`` and
    write ``reference-<name>.json`` / ``.md`` there; returns the Markdown's path."""
    results_dir, answers_dir = Path(results_dir), Path(answers_dir)
    summary = check_reference_inputs(results_dir, answers_dir, name)
    fusions = {}
    for fusion in summary["fusions"]:
        paths = [predictions_path(results_dir, fusion, s) for s in summary["table"][fusion]["seeds"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ConfigError(f"test predictions missing: {missing[0]}")
        fusions[fusion] = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    reference = reference_correctness(answers_dir, summary["languages"])
    groups = dict(summary["groups"])
    covered = set(groups.get("covered", ()))
    groups[FOCUS_GROUP] = [lang for lang in summary["low_resource"] if lang in covered]
    result = compare_to_reference(fusions, reference, groups, n_resamples)
    first = next(iter(result["languages"].values()))
    result |= {
        "name": name,
        "answers": str(answers_dir),
        "fusions": summary["fusions"],
        "seeds": summary["table"][summary["fusions"][0]]["seeds"],
        "items_per_language": first["n"],
        "full_test_items": max(len(v) for v in reference.values()),
        "focus_group": FOCUS_GROUP,
    }
    return write_reference(result, results_dir)
