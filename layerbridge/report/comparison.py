"""Comparisons and the study: Markdown tables, verdicts, plots and the study README.

Everything here renders a comparison summary (``comparison.json``, built by
:func:`layerbridge.experiments.compare.summarize`); nothing reads runs from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.io import atomic_file, write_json
from layerbridge.report._plot import pyplot, save
from layerbridge.runtime import precision_label


def comparison_markdown(summary: dict[str, Any]) -> str:
    """Accuracy (%) mean ± std over seeds per language and fusion, Δ vs baseline with p-values."""
    fusions, baseline = summary["fusions"], summary["baseline"]
    seeds = summary["table"][fusions[0]]["seeds"]
    head = "| language | " + " | ".join(f"`{f}`" for f in fusions)
    others = [f for f in fusions if f != baseline and f in summary["significance"]]
    head += "".join(f" | Δ `{f}` − `{baseline}` [95% CI] (p boot / McNemar)" for f in others) + " |"
    pooled = (
        " Averages of this parallel task resample the test sentences, each with its translations."
        if summary.get("parallel")
        else ""
    )
    lines = [
        f"Accuracy (%), mean ± std over seeds {seeds}; Δ in points with its paired-bootstrap 95% CI and "
        "p-values (per language: bootstrap / McNemar; Holm = bootstrap p adjusted over all languages)."
        + pooled,
        "",
        *budget_lines(summary),
        head,
        "|---|" + "---:|" * (len(fusions) + len(others)),
    ]

    for lang in summary["languages"]:
        mark = " *(low)*" if lang in summary["low_resource"] else ""
        row = f"| {lang}{mark} | " + " | ".join(
            _cell(summary["table"][f]["languages"][lang]) for f in fusions
        )
        for f in others:
            sig = summary["significance"][f][lang]
            holm = sig["bootstrap"].get("p_holm")
            row += (
                f" | {_delta(sig['bootstrap'])} "
                f"(p={sig['bootstrap']['p_value']:.3f} / {sig['mcnemar']['p_value']:.3f}"
                + (f"; Holm {holm:.3f})" if holm is not None else ")")
            )
        lines.append(row + " |")
    for name in summary["table"][fusions[0]]["averages"]:
        row = (
            f"| **average ({name}, {len(summary['table'][fusions[0]]['averages'][name]['languages'])})** | "
            + " | ".join(f"**{_cell(summary['table'][f]['averages'][name])}**" for f in fusions)
        )
        for f in others:
            sig = summary["significance"][f][f"avg:{name}"]["bootstrap"]
            row += f" | {_delta(sig)} (p={sig['p_value']:.3f})"
        lines.append(row + " |")
    return "\n".join(lines + seed_lines(summary) + generation_lines(summary)) + "\n"


def seed_lines(summary: dict[str, Any], max_languages: int = 8) -> list[str]:
    """Every seed's own accuracy (%) — per language when there are few, else the "all" average —
    and the English dev accuracy that selected each bridge: a mean ± std hides a stalled seed.
    Each row adds the seeds' range and the permutation p that they are equally good (a small p:
    the seeds differ by more than which test items each happened to get right)."""
    fusions, tables = summary["fusions"], summary["table"]
    seeds = tables[fusions[0]]["seeds"]
    if len(seeds) < 2:
        return []
    rows = [(lang, [tables[f]["languages"][lang] for f in fusions]) for lang in summary["languages"]]
    rows = rows if len(rows) <= max_languages else []
    if "all" in tables[fusions[0]]["averages"]:
        rows.append(("**average (all)**", [tables[f]["averages"]["all"] for f in fusions]))

    def per_seed(values: list[float | None]) -> str:
        return " / ".join("–" if v is None else f"{100 * v:.1f}" for v in values)

    def with_range(stats: dict[str, Any]) -> str:
        test = stats.get("seed_range")
        extra = f" (range {100 * test['range']:.1f}, p={test['p_value']:.2f})" if test else ""
        return per_seed(stats["accuracy_per_seed"]) + extra

    lines = [
        "",
        f"Per seed ({' / '.join(str(s) for s in seeds)}), accuracy (%); in brackets the seeds' range"
        " and the permutation p that they are equally good (items' outcomes shuffled among seeds):",
        "",
        "| language | " + " | ".join(f"`{f}`" for f in fusions) + " |",
        "|---|" + "---:|" * len(fusions),
    ]
    for name, stats in rows:
        lines.append(f"| {name} | " + " | ".join(with_range(s) for s in stats) + " |")
    dev = [per_seed(tables[f].get("best_dev_accuracy", [None] * len(seeds))) for f in fusions]
    lines.append("| English dev (selection) | " + " | ".join(dev) + " |")
    return lines


def generation_lines(summary: dict[str, Any]) -> list[str]:
    """The paper's metric beside ours (runs evaluated with ``mode: both``): greedy generation,
    exact match against the label strings, accuracy (%) mean ± std over seeds."""
    fusions, tables = summary["fusions"], summary["table"]
    if not all("generation" in tables[f]["averages"].get("all", {}) for f in fusions):
        return []
    lines = [
        "",
        "Greedy generation, exact match against the label strings (the paper's metric), accuracy (%) "
        "mean ± std over the same runs; an output that is no label counts as wrong:",
        "",
        "| language | " + " | ".join(f"`{f}`" for f in fusions) + " |",
        "|---|" + "---:|" * len(fusions),
    ]
    for lang in summary["languages"]:
        lines.append(
            f"| {lang} | "
            + " | ".join(_cell(tables[f]["languages"][lang]["generation"]) for f in fusions)
            + " |"
        )
    for name in tables[fusions[0]]["averages"]:
        cells = " | ".join(f"**{_cell(tables[f]['averages'][name]['generation'])}**" for f in fusions)
        lines.append(f"| **average ({name})** | {cells} |")
    return lines


def _cell(stats: dict) -> str:
    """A table cell: accuracy (%) mean ± std over seeds."""
    return f"{100 * stats['accuracy_mean']:.1f} ± {100 * stats['accuracy_std']:.1f}"


def _delta(boot: dict[str, float]) -> str:
    """A paired difference in points with its bootstrap 95% CI."""
    return f"{100 * boot['delta']:+.1f} [{100 * boot['ci_low']:+.1f}, {100 * boot['ci_high']:+.1f}]"


def budget_lines(summary: dict[str, Any]) -> list[str]:
    """What every fusion was given: learning rate (and how it was chosen), steps, examples seen."""
    lines = []
    for fusion in summary["fusions"]:
        given = summary.get("budget", {}).get(fusion)
        chosen = summary.get("lr_selection", {}).get(fusion)
        if not given or not chosen:
            continue
        how = (
            "chosen on English dev from "
            + ", ".join(f"{k}: {100 * v:.1f}%" for k, v in chosen["grid"].items())
            if chosen.get("grid")
            else "fixed"
        )
        seconds, runs = sum(t or 0 for t in given["train_seconds"]), len(given["train_seconds"])
        fusion_lr = (given.get("fusion_lr") or [None])[0]
        own = f", fusion lr {fusion_lr:g}" if fusion_lr and fusion_lr != chosen["lr"] else ""
        lines.append(
            f"- `{fusion}`: lr {chosen['lr']:g} ({how}){own}; {given['steps'][0]} optimizer steps, "
            f"{given['examples_seen'][0]} examples seen per seed; {seconds / 60:.1f} min training for its "
            + ("seed" if runs == 1 else f"{runs} seeds")
        )
        lines += restart_lines(given)
    lines += machine_lines(summary)
    return [*lines, ""] if lines else []


def restart_lines(given: dict[str, Any]) -> list[str]:
    """The attempts ``train.stall_check`` found at chance and restarted (their steps are compute
    spent on top of the stated budget; the training seconds above are the kept attempts')."""
    stalls = [r for restarts in given.get("restarts", []) for r in restarts]
    if not stalls:
        return []
    each = ", ".join(
        f"seed {r['seed']} at step {r['step']} "
        f"(English dev {100 * r['dev_accuracy']:.0f}%, p = {r['p_value']:.2f})"
        for r in stalls
    )
    return [f"  - restarted at chance: {each}; {sum(r['step'] for r in stalls)} more steps trained"]


def machine_lines(summary: dict[str, Any]) -> list[str]:
    """Where the runs trained: each distinct (machine, precision) once; runs that predate the
    record are counted as unrecorded."""
    seen: dict[str, int] = {}
    for given in summary.get("budget", {}).values():
        runs = len(given.get("steps", []))
        machines = given.get("machine") or [None] * runs
        for machine, precision in zip(machines, given.get("precision") or [None] * runs, strict=True):
            key = _machine(machine, precision)
            seen[key] = seen.get(key, 0) + 1
    return [f"- Machine ({n} run{'s' * (n > 1)}): {key}" for key, n in seen.items()]


def _machine(machine: dict | None, precision: str | None) -> str:
    if not machine:
        return "not recorded (runs trained before machines were recorded)"
    where = machine.get("gpu") or (
        f"{machine.get('cpu')}, {machine.get('cpu_cores')} cores"
        + (f" ({' '.join(machine['cpu_flags'])})" if machine.get("cpu_flags") else "")
    )
    return (
        f"{where}; torch {machine.get('torch')}, transformers {machine.get('transformers')}; "
        f"precision {precision_label(precision)}"
    )


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


def dominant_layers(summary: dict[str, Any]) -> list[str]:
    """Per fused run: the layer with the largest mean weight (over languages), its weight and
    the normalised entropy of the weights (1 = uniform, 0 = a single layer)."""
    lines = []
    for fusion in summary["fusions"]:
        stats = summary["table"][fusion]
        if fusion == "last" or not stats.get("layer_weights_per_seed"):
            continue
        cells = []
        per_seed = zip(
            stats["seeds"], stats["layer_weights_per_seed"], stats["layer_entropy_per_seed"], strict=True
        )
        for seed, weights, entropy in per_seed:
            p = np.asarray(weights) / np.sum(weights)
            cells.append(f"seed {seed}: layer {int(p.argmax()) + 1} ({p.max():.2f}), entropy {entropy:.2f}")
        lines.append(f"- `{fusion}`: " + "; ".join(cells))
    return lines


def study_readme(summaries: dict[str, dict], record: dict[str, Any]) -> str:
    """The study's README.md: setup, then per task the verdicts, the table, plots, layer weights."""
    hw = record["hardware"]
    lines = [
        "# Study: does fusing all encoder layers beat the last layer?",
        "",
        "Generated by `layerbridge study` — every number below is read from the JSON files in this",
        "folder (`<task>/comparison.json`, built from `<task>/runs/<fusion>/seed-<s>/results.json`",
        "and `predictions.json`).",
        "",
        f"- Command (the last invocation; each one trains what its `--tasks` still lack and re-renders "
        f"every finished task): `{record['command']}` (budget `{record['budget']}`)",
        "- Models: built-in `e5-small` encoder (12 layers, 118M) + `smollm2-135m` LLM; the paper",
        "  used mT5-large (24 layers) and a ~1B Llama-class LLM.",
        f"- Fusions {', '.join(f'`{f}`' for f in record['fusions'])}; seeds {record['seeds']};",
        "  English-only training; checkpoint selection on English dev; each test split evaluated once.",
        f"- Hardware: {hw['cpu']} ({hw['cpu_cores']} cores), GPU: {hw['gpu'] or 'none'}; "
        f"torch {hw['torch']}, transformers {hw['transformers']}.",
        "- Training time (the training loops of every run, the learning-rate grid's included): "
        + ", ".join(f"{k} {v / 60:.0f} min" for k, v in record["train_seconds"].items()),
        "- Significance: paired bootstrap over test examples (seed-averaged correctness, 10,000",
        "  resamples) and exact McNemar on (seed, example) pairs, each fusion against `last`.",
        "",
    ]
    for task, summary in summaries.items():
        cfg = record["configs"][task]
        train, bridge = cfg["run"]["train"], cfg["run"]["bridge"]
        projector = f"projector `{bridge['projector']}`" + (
            " with an RMS-normed output" if bridge.get("projector_norm") == "rms" else ""
        )
        if bridge.get("projector_init") == "zeros":
            projector += ", zero-initialised"
        lines += [
            f"## {task}",
            "",
            f"{cfg['steps']} optimizer steps x batch {train['batch_size']} (AdamW, "
            f"{train.get('schedule', 'cosine')} schedule, {100 * train['warmup_ratio']:.0f}% warm-up; "
            f"each fusion's learning rate below); {projector}; "
            f"dev {train['dev_limit'] or 'all'} English examples; test "
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
            comparison_markdown(summary),
            f"![layer weights]({task}/layer_weights.png)",
            f"![accuracy]({task}/accuracy.png)",
            f"![accuracy per language, sorted by the baseline]({task}/accuracy_sorted.png)",
            *([f"![gain over the baseline]({task}/gain_vs_baseline.png)"] if summary["significance"] else []),
            *[
                f"![translation retrieval per layer, `{f}` bridge]({task}/alignment/{f}/alignment.png)"
                for f in record.get("alignment", {}).get(task, [])
            ],
            "",
        ]
        if len(summary["fusions"]) > 1:
            lines += [
                "Learned layer weights per run (dominant layer, its weight, normalised entropy):",
                "",
                *dominant_layers(summary),
                "",
            ]
    return "\n".join(lines) + "\n"


def plot_sorted_accuracy(summary: dict[str, Any], path: Path) -> None:
    """Comparison: per-language accuracy (mean over seeds), languages sorted by the baseline, one
    line per fusion; the baseline's seed spread as a band."""
    plt = pyplot()
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
    save(fig, path)


def plot_gain_vs_baseline(summary: dict[str, Any], path: Path) -> None:
    """Comparison: each fusion's gain over the baseline (points) against the baseline's accuracy,
    one panel per fusion, coloured by whether the encoder was pretrained on the language."""
    plt = pyplot()
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
    save(fig, path)


def plot_layer_weights_by_fusion(summary: dict[str, Any], path: Path, title: str) -> None:
    """Heatmap per fused fusion: languages x encoder layers, mean layer weight over seeds."""
    plt = pyplot()
    fusions = [f for f in summary["fusions"] if f != "last"]
    langs = summary["languages"]
    fig, axes = plt.subplots(
        1, len(fusions), figsize=(4.2 * len(fusions) + 1, 1.2 + 0.32 * len(langs)), dpi=120, squeeze=False
    )
    for ax, fusion in zip(axes[0], fusions, strict=True):
        weights = np.asarray([summary["table"][fusion]["layer_weights"][lang] for lang in langs])
        image = ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0)
        ax.set_xticks(range(weights.shape[1]), [str(i + 1) for i in range(weights.shape[1])], fontsize=7)
        ax.set_yticks(range(len(langs)), langs, fontsize=7)
        ax.set_xlabel("encoder layer")
        ax.set_title(f"{fusion} (mean over seeds)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(f"{title}: learned layer weights (uniform = {1 / weights.shape[1]:.3f})", fontsize=10)
    fig.tight_layout()
    save(fig, path)


def plot_accuracy_by_fusion(summary: dict[str, Any], path: Path, title: str) -> None:
    """Grouped bars: per language, each fusion's accuracy (mean ± std over seeds)."""
    plt = pyplot()
    langs, fusions = summary["languages"], summary["fusions"]
    width = 0.8 / len(fusions)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(langs) + 2), 3.4), dpi=120)
    for i, fusion in enumerate(fusions):
        stats = [summary["table"][fusion]["languages"][lang] for lang in langs]
        means = np.array([s["accuracy_mean"] for s in stats]) * 100
        stds = np.array([s["accuracy_std"] for s in stats]) * 100
        offset = (i - (len(fusions) - 1) / 2) * width
        ax.bar(np.arange(len(langs)) + offset, means, width, yerr=stds, capsize=2, label=fusion)
    ax.set_xticks(range(len(langs)), [x + ("*" if x in summary["low_resource"] else "") for x in langs])
    ax.set_ylabel("accuracy % (mean ± std over seeds)")
    ax.set_title(f"{title} test (* = low-resource)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


def write_comparison(summary: dict[str, Any], out_dir: Path) -> None:
    """comparison.json, comparison.md, accuracy_sorted.png (+ gain_vs_baseline.png)."""
    write_json(out_dir / "comparison.json", summary)
    with atomic_file(out_dir / "comparison.md", "w", encoding="utf-8") as handle:
        handle.write(comparison_markdown(summary))
    plot_sorted_accuracy(summary, out_dir / "accuracy_sorted.png")
    if summary["significance"]:
        plot_gain_vs_baseline(summary, out_dir / "gain_vs_baseline.png")
