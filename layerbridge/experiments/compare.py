"""Train and evaluate several fusion strategies (and seeds) on one task; summarise with statistics.

Layout of ``out_dir``::

    <fusion>/seed-<s>/          a training run (best/, final/, log.jsonl, summary.json)
    <fusion>/seed-<s>/eval/     its test evaluation (results.json, predictions.json, plots)
    comparison.json / .md / .csv

A finished (fusion, seed) is reused when the comparison is run again, so an interrupted
comparison continues where it stopped; each test split is evaluated once per run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.config import EvalConfig, RunConfig
from layerbridge.evaluation import metrics
from layerbridge.evaluation.evaluate import evaluate
from layerbridge.evaluation.report import plot_gain_vs_baseline, plot_sorted_accuracy
from layerbridge.io import atomic_file, write_json
from layerbridge.modeling.builders import load_base_models
from layerbridge.tasks import get_task
from layerbridge.training import train
from layerbridge.training.state import checkpoint_dirs

BASELINE = "last"


def run_dir(out_dir: Path, fusion: str, seed: int) -> Path:
    return out_dir / fusion / f"seed-{seed}"


def run_comparison(
    config: RunConfig,
    fusions: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    eval_config: EvalConfig | None = None,
    *,
    reuse: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train every (fusion, seed), evaluate each once on the test split, and summarise."""
    out_dir = Path(out_dir)
    eval_config = eval_config or EvalConfig()
    task = get_task(config.task)
    base = None
    runs: dict[str, dict[int, dict]] = {}
    for fusion in fusions:
        for seed in seeds:
            folder = run_dir(out_dir, fusion, seed)
            results_file = folder / "eval" / "results.json"
            if reuse and results_file.is_file():
                log(f"{fusion} seed {seed}: reusing {results_file}")
                runs.setdefault(fusion, {})[seed] = _load_run(folder)
                continue
            base = base or load_base_models(config.bridge)
            options = config.bridge.fusion_options if fusion == config.bridge.fusion else {}
            run_config = replace(
                config,
                bridge=replace(config.bridge, fusion=fusion, fusion_options=options),
                train=replace(config.train, seed=seed, output_dir=str(folder)),
            )
            resume = reuse and bool(checkpoint_dirs(folder))
            log(f"{fusion} seed {seed}: training -> {folder}" + (" (resuming)" if resume else ""))
            result = train(run_config, resume=resume, overwrite=not resume, base=base, progress=progress)
            log(f"{fusion} seed {seed}: best dev accuracy {result.summary['best_dev_accuracy']:.3f}; testing")
            evaluate(
                result.bridge,
                task,
                eval_config,
                out_dir=folder / "eval",
                bridge_info={"path": str(result.best_dir), "seed": seed},
                progress=progress,
            )
            runs.setdefault(fusion, {})[seed] = _load_run(folder)
    summary = summarize(runs, task.low_resource, baseline=BASELINE if BASELINE in fusions else fusions[0])
    summary["config"] = config.to_dict()
    summary["eval"] = eval_config.to_dict()
    write_json(out_dir / "comparison.json", summary)
    with atomic_file(out_dir / "comparison.md", "w", encoding="utf-8") as handle:
        handle.write(markdown(summary))
    plot_sorted_accuracy(summary, out_dir / "accuracy_sorted.png")
    if summary["significance"]:
        plot_gain_vs_baseline(summary, out_dir / "gain_vs_baseline.png")
    return summary


def _load_run(folder: Path) -> dict[str, Any]:
    return {
        "results": json.loads((folder / "eval" / "results.json").read_text()),
        "predictions": json.loads((folder / "eval" / "predictions.json").read_text()),
        "train": json.loads((folder / "summary.json").read_text()),
    }


def summarize(runs: dict[str, dict[int, dict]], low_resource: Sequence[str], baseline: str) -> dict[str, Any]:
    """Mean ± std over seeds per language, averages, and paired tests of each fusion vs ``baseline``.

    Significance per language pairs the same test examples: the paired bootstrap resamples
    examples and compares seed-averaged correctness; McNemar pools (seed, example) pairs of
    equal seeds.
    """
    fusions = list(runs)
    first = next(iter(next(iter(runs.values())).values()))["results"]
    languages = list(first["languages"])
    groups = {
        name: avg["languages"] for name, avg in first.get("averages", {}).items() if avg["languages"]
    } or {"all": languages}
    groups.setdefault("all", languages)
    table: dict[str, dict[str, Any]] = {}
    for fusion, by_seed in runs.items():
        per_lang = {}
        for lang in languages:
            accs = [run["results"]["languages"][lang]["accuracy"] for run in by_seed.values()]
            f1s = [run["results"]["languages"][lang]["macro_f1"] for run in by_seed.values()]
            cis = [run["results"]["languages"][lang]["accuracy_ci"] for run in by_seed.values()]
            per_lang[lang] = {
                "accuracy_mean": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "accuracy_per_seed": accs,
                "accuracy_ci_per_seed": cis,
                "macro_f1_mean": float(np.mean(f1s)),
                "n": by_seed[next(iter(by_seed))]["results"]["languages"][lang]["n"],
            }
        averages = {}
        for name, langs in groups.items():
            per_seed = [
                float(np.mean([run["results"]["languages"][x]["accuracy"] for x in langs]))
                for run in by_seed.values()
            ]
            averages[name] = {
                "languages": langs,
                "accuracy_mean": float(np.mean(per_seed)),
                "accuracy_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                "accuracy_per_seed": per_seed,
            }
        table[fusion] = {
            "seeds": sorted(by_seed),
            "languages": per_lang,
            "averages": averages,
            "best_dev_accuracy": [run["train"]["best_dev_accuracy"] for run in by_seed.values()],
        }
    significance = {}
    if baseline in runs:
        for fusion in fusions:
            if fusion == baseline:
                continue
            significance[fusion] = {
                lang: paired_tests(runs[fusion], runs[baseline], lang) for lang in languages
            }
            # per-language claims: Holm-Bonferroni over this fusion's languages
            raw = [significance[fusion][lang]["bootstrap"]["p_value"] for lang in languages]
            for lang, adjusted in zip(languages, metrics.holm(raw), strict=True):
                significance[fusion][lang]["bootstrap"]["p_holm"] = adjusted
            for name, avg in table[fusion]["averages"].items():
                significance[fusion][f"avg:{name}"] = paired_tests_pooled(
                    runs[fusion], runs[baseline], avg["languages"]
                )
    meta = {lang: {k: first["languages"][lang].get(k) for k in ("script", "covered")} for lang in languages}
    return {
        "fusions": fusions,
        "languages": languages,
        "language_meta": meta,
        "groups": groups,
        "low_resource": list(low_resource),
        "baseline": baseline,
        "table": table,
        "significance": significance,
    }


def _correct_matrix(
    by_seed: dict[int, dict], lang: str, seeds: Sequence[int]
) -> tuple[np.ndarray, list[str]]:
    """[S, N] correctness of each seed's predictions on one language (rows aligned by uid)."""
    first = by_seed[seeds[0]]["predictions"][lang]
    uids = first["uid"]
    rows = []
    for seed in seeds:
        pred = by_seed[seed]["predictions"][lang]
        if pred["uid"] != uids:
            raise ValueError(f"runs evaluated different {lang} examples; cannot pair them")
        rows.append(np.asarray(pred["pred"]) == np.asarray(pred["gold"]))
    return np.stack(rows), uids


def paired_tests(runs_a: dict[int, dict], runs_b: dict[int, dict], lang: str) -> dict[str, Any]:
    """A vs B on one language, over the seeds both have, on the same test examples."""
    seeds = sorted(set(runs_a) & set(runs_b))
    correct_a, uids = _correct_matrix(runs_a, lang, seeds)
    correct_b, uids_b = _correct_matrix(runs_b, lang, seeds)
    if uids != uids_b:
        raise ValueError(f"the two fusions were evaluated on different {lang} examples")
    boot = metrics.bootstrap_difference([correct_a.mean(0) - correct_b.mean(0)])
    # McNemar on (seed, example) pairs: A's seed-s prediction vs B's seed-s prediction
    truth = np.zeros(correct_a.size, dtype=int)
    mc = metrics.mcnemar(truth, np.where(correct_a.ravel(), 0, 1), np.where(correct_b.ravel(), 0, 1))
    return {"seeds": seeds, "n": int(correct_a.shape[1]), "bootstrap": boot, "mcnemar": mc}


def paired_tests_pooled(
    runs_a: dict[int, dict], runs_b: dict[int, dict], languages: Sequence[str]
) -> dict[str, Any]:
    """Paired bootstrap of the difference in mean-over-languages accuracy (each language resampled)."""
    seeds = sorted(set(runs_a) & set(runs_b))
    diffs = [
        _correct_matrix(runs_a, lang, seeds)[0].mean(0) - _correct_matrix(runs_b, lang, seeds)[0].mean(0)
        for lang in languages
    ]
    return {"seeds": seeds, "bootstrap": metrics.bootstrap_difference(diffs)}


def markdown(summary: dict[str, Any]) -> str:
    """Accuracy (%) mean ± std over seeds per language and fusion, Δ vs baseline with p-values."""
    fusions, baseline = summary["fusions"], summary["baseline"]
    seeds = summary["table"][fusions[0]]["seeds"]
    head = "| language | " + " | ".join(f"`{f}`" for f in fusions)
    others = [f for f in fusions if f != baseline and f in summary["significance"]]
    head += "".join(f" | Δ `{f}` − `{baseline}` (p boot / McNemar)" for f in others) + " |"
    lines = [
        f"Accuracy (%), mean ± std over seeds {seeds}; Δ in points with paired-test p-values "
        "(per language: bootstrap / McNemar; Holm = bootstrap p adjusted over all languages).",
        "",
        head,
        "|---|" + "---:|" * (len(fusions) + len(others)),
    ]

    def cell(stats: dict) -> str:
        return f"{100 * stats['accuracy_mean']:.1f} ± {100 * stats['accuracy_std']:.1f}"

    for lang in summary["languages"]:
        mark = " *(low)*" if lang in summary["low_resource"] else ""
        row = f"| {lang}{mark} | " + " | ".join(cell(summary["table"][f]["languages"][lang]) for f in fusions)
        for f in others:
            sig = summary["significance"][f][lang]
            holm = sig["bootstrap"].get("p_holm")
            row += (
                f" | {100 * sig['bootstrap']['delta']:+.1f} "
                f"(p={sig['bootstrap']['p_value']:.3f} / {sig['mcnemar']['p_value']:.3f}"
                + (f"; Holm {holm:.3f})" if holm is not None else ")")
            )
        lines.append(row + " |")
    for name in summary["table"][fusions[0]]["averages"]:
        row = (
            f"| **average ({name}, {len(summary['table'][fusions[0]]['averages'][name]['languages'])})** | "
            + " | ".join(f"**{cell(summary['table'][f]['averages'][name])}**" for f in fusions)
        )
        for f in others:
            sig = summary["significance"][f][f"avg:{name}"]["bootstrap"]
            row += f" | {100 * sig['delta']:+.1f} (p={sig['p_value']:.3f})"
        lines.append(row + " |")
    return "\n".join(lines) + "\n"
