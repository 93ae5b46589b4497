"""Train and evaluate several fusion strategies (and seeds) on one task; summarise with statistics.

Layout of ``out_dir``::

    lr-grid/<fusion>/lr-<v>/    the learning-rate grid's runs (first seed, English dev only)
    <fusion>/seed-<s>/          a training run (best/, final/, log.jsonl, summary.json)
    <fusion>/seed-<s>/eval/     its test evaluation (results.json, predictions.json, plots)
    comparison.json / .md / .csv

With a grid, the first seed's run *is* the grid run at the chosen rate (same config, same
seed: training it again would give the same weights bit for bit), copied and then tested.

A finished (fusion, seed) is reused when the comparison is run again, so an interrupted
comparison continues where it stopped; each test split is evaluated once per run. A run is
reused only if it recorded the config the comparison would use now
(:mod:`layerbridge.experiments.finished`); otherwise the comparison stops and says which fields
differ.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.checkpoint import load_bridge
from layerbridge.config import EvalConfig, RunConfig
from layerbridge.evaluation import metrics
from layerbridge.evaluation.evaluate import evaluate
from layerbridge.experiments.finished import check_precision, check_reusable
from layerbridge.modeling.builders import load_base_models
from layerbridge.report.comparison import write_comparison
from layerbridge.tasks import get_task
from layerbridge.training import train
from layerbridge.training.state import checkpoint_dirs

BASELINE = "last"
#: permutations of the seed-spread test (p to about +-0.01 near 0.1)
SEED_RESAMPLES = 2_000


def run_dir(out_dir: Path, fusion: str, seed: int) -> Path:
    return out_dir / fusion / f"seed-{seed}"


def grid_dir(out_dir: Path, fusion: str, lr: float) -> Path:
    """Where the learning-rate grid trains ``fusion`` at ``lr`` (English dev only)."""
    return out_dir / "lr-grid" / fusion / f"lr-{lr:g}"


def run_comparison(
    config: RunConfig,
    fusions: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    eval_config: EvalConfig | None = None,
    *,
    lr_grid: Sequence[float] = (),
    reuse: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_finished: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Train every (fusion, seed), evaluate each once on the test split, and summarise.

    With ``lr_grid``, each fusion first gets its own learning rate: the grid value with the
    best English dev accuracy for the first seed (:func:`select_learning_rates`), whose run
    becomes that seed's. ``on_finished(folder)`` is called as each run (grid or tested) is
    finished, e.g. to export it before the next one starts.
    """
    out_dir = Path(out_dir)
    eval_config = eval_config or EvalConfig()
    task = get_task(config.task)
    done = on_finished or (lambda folder: None)
    grid = [grid_dir(out_dir, f, lr) for f in fusions for lr in lr_grid]
    grid_done = all((folder / "summary.json").is_file() for folder in grid)
    if not all_finished(out_dir, fusions, seeds, lr_grid):  # the rest is computed as the rest was
        check_precision(out_dir, grid + [run_dir(out_dir, f, s) for f in fusions for s in seeds], config)
    base = None if grid_done else load_base_models(config.bridge)  # loaded once, when needed
    selection = select_learning_rates(config, fusions, lr_grid, seeds[0], out_dir, base, progress, log, done)
    runs: dict[str, dict[int, dict]] = {}
    for fusion in fusions:
        run_config = config.replace(train=config.train.replace(lr=selection[fusion]["lr"]))
        for seed in seeds:
            folder = run_dir(out_dir, fusion, seed)
            intended = _fusion_config(run_config, fusion, seed, folder)
            if reuse and (folder / "eval" / "results.json").is_file():
                check_reusable(folder, intended, eval_config)
                log(f"{fusion} seed {seed}: reusing {folder / 'eval' / 'results.json'}")
            else:
                if lr_grid and seed == seeds[0]:
                    adopt_grid_run(grid_dir(out_dir, fusion, selection[fusion]["lr"]), intended, log)
                base = base or load_base_models(config.bridge)
                train_and_test(
                    run_config, task, fusion, seed, folder, eval_config, base, reuse, progress, log
                )
            done(folder)
            runs.setdefault(fusion, {})[seed] = _load_run(folder)
    baseline = BASELINE if BASELINE in fusions else fusions[0]
    summary = summarize(runs, task.low_resource, baseline, parallel=task.parallel)
    summary["config"] = config.to_dict()
    summary["eval"] = eval_config.to_dict()
    summary["lr_selection"] = selection
    summary["budget"] = budget(runs)
    write_comparison(summary, out_dir)
    return summary


def _fusion_config(config: RunConfig, fusion: str, seed: int, folder: Path) -> RunConfig:
    """``config`` for one (fusion, seed) run; fusion options apply only to the fusion they name."""
    options = config.bridge.fusion_options if fusion == config.bridge.fusion else {}
    return replace(
        config,
        bridge=replace(config.bridge, fusion=fusion, fusion_options=options),
        train=replace(config.train, seed=seed, output_dir=str(folder)),
    )


def all_finished(
    out_dir: Path, fusions: Sequence[str], seeds: Sequence[int], lr_grid: Sequence[float]
) -> bool:
    """Every run of this comparison is finished: each grid run trained, each (fusion, seed)
    tested (so running it again trains and tests nothing)."""
    grid = [grid_dir(out_dir, f, lr) / "summary.json" for f in fusions for lr in lr_grid]
    tested = [run_dir(out_dir, f, s) / "eval" / "results.json" for f in fusions for s in seeds]
    return all(path.is_file() for path in grid + tested)


def select_learning_rates(
    config: RunConfig,
    fusions: Sequence[str],
    grid: Sequence[float],
    seed: int,
    out_dir: Path,
    base,
    progress: bool,
    log: Callable[[str], None],
    on_finished: Callable[[Path], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per fusion: the ``grid`` learning rate with the best English dev accuracy (one seed).

    Runs live in ``out_dir/lr-grid/<fusion>/lr-<value>/`` and are reused when finished; only
    English dev is used, never test. Without a grid every fusion keeps ``config.train.lr``.
    """
    if not grid:
        return {fusion: {"lr": config.train.lr, "grid": {}} for fusion in fusions}
    selection = {}
    for fusion in fusions:
        dev = {}
        for lr in grid:
            folder = grid_dir(out_dir, fusion, lr)
            run = _fusion_config(config.replace(train=config.train.replace(lr=lr)), fusion, seed, folder)
            if (folder / "summary.json").is_file():
                check_reusable(folder, run)
            else:
                log(f"{fusion}: learning rate {lr:g} on English dev -> {folder}")
                _train(run, folder, base, True, progress, log)
            if on_finished is not None:
                on_finished(folder)
            dev[f"{lr:g}"] = json.loads((folder / "summary.json").read_text())["best_dev_accuracy"]
        best = max(grid, key=lambda lr: (dev[f"{lr:g}"], -lr))  # ties: the smaller learning rate
        selection[fusion] = {"lr": best, "grid": dev, "seed": seed}
        log(f"{fusion}: chose lr {best:g} (English dev {dev[f'{best:g}']:.3f})")
    return selection


def budget(runs: dict[str, dict[int, dict]]) -> dict[str, Any]:
    """What each run was given: optimizer steps, examples seen, training seconds, where it ran
    (precision, machine) and the stalled attempts it restarted from, per fusion."""
    out = {}
    for fusion, by_seed in runs.items():
        train_summaries = [run["train"] for run in by_seed.values()]
        out[fusion] = {
            "steps": [t.get("steps") for t in train_summaries],
            "examples_seen": [t.get("examples_seen") for t in train_summaries],
            "train_seconds": [t.get("train_seconds") for t in train_summaries],
            "fusion_lr": [t.get("fusion_lr") for t in train_summaries],
            "precision": [t.get("precision") for t in train_summaries],
            "machine": [t.get("machine") for t in train_summaries],  # runtime.environment()
            "restarts": [t.get("restarts", []) for t in train_summaries],  # training/stall.py
        }
    return out


def _train(config: RunConfig, folder: Path, base, reuse: bool, progress: bool, log: Callable[[str], None]):
    """Train one run into ``folder``: continue an interrupted one (``reuse``), else start afresh."""
    resume = reuse and bool(checkpoint_dirs(folder))
    if resume:
        log(f"resuming {folder} from its latest checkpoint")
    return train(config, resume=resume, overwrite=not resume, base=base, progress=progress)


def train_and_test(
    config: RunConfig,
    task,
    fusion: str,
    seed: int,
    folder: Path,
    eval_config: EvalConfig,
    base,
    reuse: bool,
    progress: bool,
    log: Callable[[str], None],
) -> None:
    """One (fusion, seed): train (resuming an interrupted run) unless its training finished,
    then evaluate its best bridge once on test."""
    run = _fusion_config(config, fusion, seed, folder)
    if reuse and (folder / "summary.json").is_file():
        check_reusable(folder, run)
        bridge, best_dir = load_bridge(folder / "best", base=base), folder / "best"
        dev = json.loads((folder / "summary.json").read_text())["best_dev_accuracy"]
    else:
        log(f"{fusion} seed {seed}: training -> {folder}")
        result = _train(run, folder, base, reuse, progress, log)
        bridge, best_dir, dev = result.bridge, result.best_dir, result.summary["best_dev_accuracy"]
    log(f"{fusion} seed {seed}: best dev accuracy {dev:.3f}; testing")
    evaluate(
        bridge,
        task,
        eval_config,
        out_dir=folder / "eval",
        bridge_info={"path": str(best_dir), "seed": seed},
        progress=progress,
    )


def adopt_grid_run(source: Path, config: RunConfig, log: Callable[[str], None]) -> None:
    """Make the finished grid run ``source`` the run ``config`` asks for (its first seed at the
    chosen rate: the same config but the folder), unless that folder already holds a run or
    ``source`` has no weights (restored from an export: then the seed trains afresh)."""
    folder = Path(config.train.output_dir)
    if (folder.exists() and any(folder.iterdir())) or not (source / "best" / "bridge.safetensors").is_file():
        return
    check_reusable(source, config)  # the same run, wherever it was written
    log(f"{config.bridge.fusion} seed {config.train.seed}: the grid run {source} is this run")
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # a copy interrupted earlier
    shutil.copytree(source, staging)
    (staging / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    if folder.exists():
        folder.rmdir()  # empty
    staging.rename(folder)  # all or nothing


def _load_run(folder: Path) -> dict[str, Any]:
    return {
        "results": json.loads((folder / "eval" / "results.json").read_text()),
        "predictions": json.loads((folder / "eval" / "predictions.json").read_text()),
        "train": json.loads((folder / "summary.json").read_text()),
    }


def summarize(
    runs: dict[str, dict[int, dict]], low_resource: Sequence[str], baseline: str, parallel: bool = False
) -> dict[str, Any]:
    """Mean ± std over seeds per language, averages, and paired tests of each fusion vs ``baseline``.

    Significance per language pairs the same test examples: the paired bootstrap resamples
    examples and compares seed-averaged correctness; McNemar pools (seed, example) pairs of
    equal seeds. ``parallel``: the languages' test items are translations of the same items
    (SIB-200), so a group's bootstrap resamples items, not (language, item) pairs.
    """
    fusions = list(runs)
    first = next(iter(next(iter(runs.values())).values()))["results"]
    languages = list(first["languages"])
    groups = {
        name: avg["languages"] for name, avg in first.get("averages", {}).items() if avg["languages"]
    } or {"all": languages}
    groups.setdefault("all", languages)
    table = {fusion: fusion_table(by_seed, languages, groups) for fusion, by_seed in runs.items()}
    significance = {}
    if baseline in runs:
        for fusion in fusions:
            if fusion != baseline:
                significance[fusion] = fusion_significance(
                    runs[fusion], runs[baseline], table[fusion], languages, parallel
                )
    meta = {lang: {k: first["languages"][lang].get(k) for k in ("script", "covered")} for lang in languages}
    return {
        "fusions": fusions,
        "languages": languages,
        "language_meta": meta,
        "groups": groups,
        "low_resource": list(low_resource),
        "baseline": baseline,
        "parallel": parallel,
        "table": table,
        "significance": significance,
    }


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "accuracy_mean": float(np.mean(values)),
        "accuracy_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "accuracy_per_seed": values,
    }


def fusion_table(by_seed: dict[int, dict], languages: list[str], groups: dict[str, list[str]]) -> dict:
    """One fusion over its seeds: per-language and per-group accuracy (and the generation metric's,
    when the runs were evaluated in mode "both"), and its layer weights."""
    results = [run["results"]["languages"] for run in by_seed.values()]
    per_lang = {}
    for lang in languages:
        per_lang[lang] = _spread([r[lang]["accuracy"] for r in results]) | {
            "accuracy_ci_per_seed": [r[lang]["accuracy_ci"] for r in results],
            "macro_f1_mean": float(np.mean([r[lang]["macro_f1"] for r in results])),
            "n": results[0][lang]["n"],
        }
    averages = {
        name: {"languages": langs}
        | _spread([float(np.mean([r[x]["accuracy"] for x in langs])) for r in results])
        for name, langs in groups.items()
    }
    if all("generation" in r[lang] for r in results for lang in languages):  # evaluated in mode "both"
        for lang in languages:
            per_lang[lang]["generation"] = _spread([r[lang]["generation"]["accuracy"] for r in results])
        for name, langs in groups.items():
            per_run = [float(np.mean([r[x]["generation"]["accuracy"] for x in langs])) for r in results]
            averages[name]["generation"] = _spread(per_run)
    if len(by_seed) > 1:  # do the seeds differ by more than which items each got right?
        for key, test in seed_ranges(by_seed, languages, groups).items():
            (averages if key.startswith("avg:") else per_lang)[key.removeprefix("avg:")]["seed_range"] = test
    table = {
        "seeds": sorted(by_seed),
        "languages": per_lang,
        "averages": averages,
        "best_dev_accuracy": [run["train"]["best_dev_accuracy"] for run in by_seed.values()],
    }
    if all("layer_weights" in r[lang] for r in results for lang in languages):
        weights = np.asarray([[r[lang]["layer_weights"] for lang in languages] for r in results])  # [S, N, L]
        table["layer_weights"] = dict(zip(languages, weights.mean(0).tolist(), strict=True))
        table["layer_weights_per_seed"] = weights.mean(1).tolist()
        table["layer_entropy_per_seed"] = [metrics.normalised_entropy(w) for w in weights.mean(1)]
    return table


def seed_ranges(
    by_seed: dict[int, dict], languages: list[str], groups: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """The seed-spread permutation test (:func:`metrics.seed_range_test`) per language and per
    group (``avg:<group>``), on the seeds' per-item correctness."""
    seeds = sorted(by_seed)
    correct = {lang: _correct_matrix(by_seed, lang, seeds)[0] for lang in languages}
    tests = {lang: metrics.seed_range_test([correct[lang]], SEED_RESAMPLES) for lang in languages}
    for name, langs in groups.items():
        tests[f"avg:{name}"] = metrics.seed_range_test([correct[x] for x in langs], SEED_RESAMPLES)
    return tests


def fusion_significance(
    runs_a: dict[int, dict],
    runs_b: dict[int, dict],
    table_a: dict,
    languages: list[str],
    parallel: bool = False,
) -> dict[str, Any]:
    """Paired tests of A vs B per language (Holm-adjusted over languages) and per language group."""
    tests = {lang: paired_tests(runs_a, runs_b, lang) for lang in languages}
    raw = [tests[lang]["bootstrap"]["p_value"] for lang in languages]
    for lang, adjusted in zip(languages, metrics.holm(raw), strict=True):
        tests[lang]["bootstrap"]["p_holm"] = adjusted
    for name, avg in table_a["averages"].items():
        tests[f"avg:{name}"] = paired_tests_pooled(runs_a, runs_b, avg["languages"], parallel)
    return tests


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
    mc = metrics.mcnemar_correct(correct_a.ravel(), correct_b.ravel())
    return {"seeds": seeds, "n": int(correct_a.shape[1]), "bootstrap": boot, "mcnemar": mc}


def paired_tests_pooled(
    runs_a: dict[int, dict], runs_b: dict[int, dict], languages: Sequence[str], parallel: bool = False
) -> dict[str, Any]:
    """Paired bootstrap of the difference in mean-over-languages accuracy.

    Each language is resampled on its own; with ``parallel`` test sets the items are resampled
    instead, each carrying its difference averaged over the languages (d_j = mean_l d_{l,j}):
    the translations of one item are not independent evidence.
    """
    seeds = sorted(set(runs_a) & set(runs_b))
    diffs, items = [], []
    for lang in languages:
        correct_a, uids = _correct_matrix(runs_a, lang, seeds)
        diffs.append(correct_a.mean(0) - _correct_matrix(runs_b, lang, seeds)[0].mean(0))
        items.append([str(uid).rsplit("/", 1)[-1] for uid in uids])
    per_item = metrics.item_means(diffs, items) if parallel else None  # translations together
    return {
        "seeds": seeds,
        "resampled": "items, translations together" if per_item is not None else "items within each language",
        "bootstrap": metrics.bootstrap_difference([per_item] if per_item is not None else diffs),
    }
