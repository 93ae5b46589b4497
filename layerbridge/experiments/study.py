"""The paper-reproduction study: last vs global-softmax vs transformer-softmax on three tasks.

``layerbridge study`` trains every (task, fusion, seed) with English data only, selects each
run's checkpoint on English dev, evaluates it once on the test split of every language, and
writes

* ``<out>/<task>/…``            every run (checkpoints included; not for the repository);
* ``<export>/``                 what is committed: per-run results JSON/CSV/predictions,
  per-task comparison tables with paired significance tests, layer-weight heatmaps,
  accuracy charts, ``study.json`` (configs, commands, hardware, wall time) and README.md.

The budget is set for the machine at hand: ``--quick`` runs the whole pipeline in minutes
on a laptop CPU (numbers meaningless); the default CPU budget takes a few hours on two
cores; the paper's own budget (100k examples x 3 epochs, full test sets) needs a GPU.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.config import BridgeConfig, EvalConfig, RunConfig, TaskConfig, TrainConfig
from layerbridge.errors import ConfigError
from layerbridge.experiments.compare import run_comparison, run_dir
from layerbridge.io import atomic_file, write_json
from layerbridge.runtime import environment

FUSIONS = ("last", "global-softmax", "transformer-softmax")


@dataclass(frozen=True)
class StudyTask:
    name: str
    steps: int
    test_limit: int | None  # per language
    dev_limit: int
    max_length: int = 128


#: Budgets. "cpu" fits a 2-core CPU in a few hours; "quick" checks the pipeline in minutes.
BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "seeds": (1, 2, 3),
        "tasks": (
            StudyTask("sinhala-news", steps=200, test_limit=250, dev_limit=100),
            StudyTask("xnli", steps=200, test_limit=40, dev_limit=100),
            StudyTask("marc", steps=120, test_limit=80, dev_limit=100, max_length=96),
        ),
    },
    "quick": {
        "seeds": (1, 2),
        "tasks": (
            StudyTask("sinhala-news", steps=8, test_limit=8, dev_limit=16),
            StudyTask("xnli", steps=8, test_limit=8, dev_limit=16),
            StudyTask("marc", steps=8, test_limit=8, dev_limit=16, max_length=96),
        ),
    },
}


def task_config(task: StudyTask, data_dir: str | None, eval_every: int) -> RunConfig:
    """The shared RunConfig of one task (fusion, seed and output folder are set per run)."""
    return RunConfig(
        bridge=BridgeConfig(
            encoder="e5-small", llm="smollm2-135m", max_length=task.max_length, projector_init="zeros"
        ),
        task=TaskConfig(name=task.name, data_dir=data_dir),
        train=TrainConfig(
            lr=1e-3,
            max_steps=task.steps,
            batch_size=8,
            warmup_ratio=0.05,
            eval_every=eval_every,
            dev_limit=task.dev_limit,
            save_every=eval_every,
            keep_checkpoints=1,
            log_every=10,
        ),
    )


def run_study(
    out_dir: str | Path = "runs/study",
    export_dir: str | Path | None = "results",
    budget: str = "cpu",
    data_dir: str | None = None,
    tasks: list[str] | None = None,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or continue) the study and export the committed artefacts."""
    if budget not in BUDGETS:
        raise ConfigError(f"unknown study budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
    spec = BUDGETS[budget]
    known = [t.name for t in spec["tasks"]]
    unknown = sorted(set(tasks or ()) - set(known))
    if unknown or (tasks is not None and not tasks):
        raise ConfigError(
            f"unknown study task(s) {', '.join(unknown) or '(none)'}; choose from: {', '.join(known)}"
        )
    out_dir = Path(out_dir)
    chosen = [t for t in spec["tasks"] if tasks is None or t.name in tasks]
    started = time.time()
    summaries = {}
    configs = {}
    for task in chosen:
        eval_every = max(task.steps // 2, 1)
        config = task_config(task, data_dir, eval_every)
        eval_config = EvalConfig(limit=task.test_limit, batch_size=16)
        configs[task.name] = {"run": config.to_dict(), "eval": eval_config.to_dict(), "steps": task.steps}
        log(f"== {task.name}: {len(FUSIONS)} fusions x seeds {list(spec['seeds'])}, {task.steps} steps")
        summaries[task.name] = run_comparison(
            config,
            FUSIONS,
            spec["seeds"],
            out_dir / task.name,
            eval_config,
            reuse=True,
            progress=False,
            log=log,
        )
    record = {
        "budget": budget,
        "seeds": list(spec["seeds"]),
        "fusions": list(FUSIONS),
        "command": command or " ".join(["layerbridge", *sys.argv[1:]]),
        "configs": configs,
        "hardware": environment(),
        "wall_seconds_this_invocation": round(time.time() - started, 1),
        "train_seconds": _train_seconds(out_dir, chosen, spec["seeds"]),
    }
    if export_dir is not None:
        export(out_dir, Path(export_dir), summaries, record)
    return {"summaries": summaries, "record": record}


def _train_seconds(out_dir: Path, tasks, seeds) -> dict[str, float]:
    total = {}
    for task in tasks:
        seconds = 0.0
        for fusion in FUSIONS:
            for seed in seeds:
                path = run_dir(out_dir / task.name, fusion, seed) / "summary.json"
                if path.is_file():
                    seconds += json.loads(path.read_text())["train_seconds"]
        total[task.name] = round(seconds, 1)
    return total


# ------------------------------------------------------------------------------------ export
def export(out_dir: Path, export_dir: Path, summaries: dict[str, dict], record: dict[str, Any]) -> None:
    """Copy results (no weights) and write tables, plots and README into ``export_dir``."""
    from layerbridge.experiments.compare import markdown

    export_dir.mkdir(parents=True, exist_ok=True)
    for task, summary in summaries.items():
        target = export_dir / task
        target.mkdir(parents=True, exist_ok=True)
        for fusion in summary["fusions"]:
            for seed in summary["table"][fusion]["seeds"]:
                source = run_dir(out_dir / task, fusion, seed)
                dest = target / "runs" / fusion / f"seed-{seed}"
                dest.mkdir(parents=True, exist_ok=True)
                for name in ("results.json", "results.csv", "predictions.json", "results.md"):
                    shutil.copy2(source / "eval" / name, dest / name)
                for name in ("summary.json", "config.yaml", "log.jsonl"):
                    shutil.copy2(source / name, dest / name)
        write_json(target / "comparison.json", summary)
        with atomic_file(target / "comparison.md", "w", encoding="utf-8") as handle:
            handle.write(markdown(summary))
        plot_layer_weights(summary, out_dir / task, target / "layer_weights.png", task)
        plot_accuracy(summary, target / "accuracy.png", task)
    write_json(export_dir / "study.json", record)
    with atomic_file(export_dir / "README.md", "w", encoding="utf-8") as handle:
        handle.write(readme(summaries, record, out_dir))


def run_layer_weights(task_dir: Path, fusion: str, seed: int) -> dict[str, list[float]]:
    """One run's mean layer weights per test language, from its results.json."""
    results = json.loads((run_dir(task_dir, fusion, seed) / "eval" / "results.json").read_text())
    return {lang: r["layer_weights"] for lang, r in results["languages"].items()}


def mean_layer_weights(summary: dict, task_dir: Path, fusion: str) -> np.ndarray:
    """[languages, L] layer weights averaged over seeds."""
    per_seed = []
    for seed in summary["table"][fusion]["seeds"]:
        weights = run_layer_weights(task_dir, fusion, seed)
        per_seed.append([weights[lang] for lang in summary["languages"]])
    return np.mean(np.asarray(per_seed), axis=0)


def plot_layer_weights(summary: dict, task_dir: Path, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fusions = [f for f in summary["fusions"] if f != "last"]
    langs = summary["languages"]
    fig, axes = plt.subplots(
        1, len(fusions), figsize=(4.2 * len(fusions) + 1, 1.2 + 0.32 * len(langs)), dpi=120
    )
    axes = np.atleast_1d(axes)
    for ax, fusion in zip(axes, fusions, strict=True):
        weights = mean_layer_weights(summary, task_dir, fusion)
        image = ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0)
        ax.set_xticks(range(weights.shape[1]), [str(i + 1) for i in range(weights.shape[1])], fontsize=7)
        ax.set_yticks(range(len(langs)), langs, fontsize=7)
        ax.set_xlabel("encoder layer")
        ax.set_title(f"{fusion} (mean over seeds)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(f"{task}: learned layer weights (uniform = {1 / weights.shape[1]:.3f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_accuracy(summary: dict, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs, fusions = summary["languages"], summary["fusions"]
    width = 0.8 / len(fusions)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(langs) + 2), 3.4), dpi=120)
    for i, fusion in enumerate(fusions):
        stats = [summary["table"][fusion]["languages"][lang] for lang in langs]
        means = np.array([s["accuracy_mean"] for s in stats]) * 100
        stds = np.array([s["accuracy_std"] for s in stats]) * 100
        ax.bar(
            np.arange(len(langs)) + (i - (len(fusions) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            capsize=2,
            label=fusion,
        )
    ax.set_xticks(range(len(langs)), [x + ("*" if x in summary["low_resource"] else "") for x in langs])
    ax.set_ylabel("accuracy % (mean ± std over seeds)")
    ax.set_title(f"{task} test (* = low-resource)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def dominant_layers(summary: dict, task_dir: Path) -> list[str]:
    """Per fused run: the layer with the largest mean weight (over languages), its weight and
    the normalised entropy of the weights (1 = uniform, 0 = a single layer)."""
    lines = []
    for fusion in summary["fusions"]:
        if fusion == "last":
            continue
        cells = []
        for seed in summary["table"][fusion]["seeds"]:
            weights = np.mean(list(run_layer_weights(task_dir, fusion, seed).values()), axis=0)
            p = weights / weights.sum()
            entropy = float(-(p * np.log(np.clip(p, 1e-12, None))).sum() / np.log(len(p)))
            cells.append(f"seed {seed}: layer {int(p.argmax()) + 1} ({p.max():.2f}), entropy {entropy:.2f}")
        lines.append(f"- `{fusion}`: " + "; ".join(cells))
    return lines


def verdict(summary: dict, fusion: str, name: str = "all") -> str:
    """A plain-language reading of the averaged paired test of ``fusion`` vs the baseline."""
    sig = summary["significance"].get(fusion, {}).get(f"avg:{name}")
    if sig is None:
        return "n/a"
    boot = sig["bootstrap"]
    delta, lo, hi, p = 100 * boot["delta"], 100 * boot["ci_low"], 100 * boot["ci_high"], boot["p_value"]
    if p < 0.05:
        direction = "better" if delta > 0 else "worse"
        word = f"significantly {direction} than `{summary['baseline']}`"
    else:
        word = f"no significant difference from `{summary['baseline']}`"
    return f"{delta:+.1f} points [95% CI {lo:+.1f}, {hi:+.1f}], p = {p:.3f}: {word}"


def readme(summaries: dict[str, dict], record: dict[str, Any], out_dir: Path | None = None) -> str:
    from layerbridge.experiments.compare import markdown

    hw = record["hardware"]
    lines = [
        "# Study: does fusing all encoder layers beat the last layer?",
        "",
        "Generated by `layerbridge study` — every number below is read from the JSON files in this",
        "folder (`<task>/comparison.json`, built from `<task>/runs/<fusion>/seed-<s>/results.json`",
        "and `predictions.json`).",
        "",
        f"- Command: `{record['command']}` (budget `{record['budget']}`)",
        "- Models: built-in `e5-small` encoder (12 layers, 118M) + `smollm2-135m` LLM; the paper",
        "  used mT5-large (24 layers) and a ~1B Llama-class LLM.",
        f"- Fusions {', '.join(f'`{f}`' for f in record['fusions'])}; seeds {record['seeds']};",
        "  English-only training; checkpoint selection on English dev; each test split evaluated once.",
        f"- Hardware: {hw['cpu']} ({hw['cpu_cores']} cores), GPU: {hw['gpu'] or 'none'}; "
        f"torch {hw['torch']}, transformers {hw['transformers']}.",
        "- Training time (sum over runs): "
        + ", ".join(f"{k} {v / 60:.0f} min" for k, v in record["train_seconds"].items()),
        "- Significance: paired bootstrap over test examples (seed-averaged correctness, 10,000",
        "  resamples) and exact McNemar on (seed, example) pairs, each fusion against `last`.",
        "",
    ]
    for task, summary in summaries.items():
        cfg = record["configs"][task]
        lines += [
            f"## {task}",
            "",
            f"{cfg['steps']} optimizer steps x batch 8 (lr {cfg['run']['train']['lr']}, cosine, "
            f"5% warm-up, zero-initialised projector); dev {cfg['run']['train']['dev_limit']} English "
            "examples; test "
            f"{cfg['eval']['limit'] or 'all'} examples per language (class-balanced, the same for "
            "every run).",
            "",
        ]
        for fusion in summary["fusions"]:
            if fusion in summary["significance"]:
                lines.append(
                    f"- `{fusion}` vs `{summary['baseline']}`, all languages: {verdict(summary, fusion)}"
                )
                if "avg:low_resource" in summary["significance"][fusion]:
                    lines.append(f"  - low-resource languages: {verdict(summary, fusion, 'low_resource')}")
        lines += [
            "",
            markdown(summary),
            f"![layer weights]({task}/layer_weights.png)",
            f"![accuracy]({task}/accuracy.png)",
            "",
        ]
        if out_dir is not None and len(summary["fusions"]) > 1:
            lines += [
                "Learned layer weights per run (dominant layer, its weight, normalised entropy):",
                "",
                *dominant_layers(summary, out_dir / task),
                "",
            ]
    return "\n".join(lines) + "\n"
