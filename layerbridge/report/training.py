"""Training curves of one run (``log.jsonl`` records): what each fusion did while it learned.

Panels over optimizer steps: training loss; English dev accuracy; the soft prompt's RMS beside
the LLM's token embeddings' (how far the prompt sits from what the LLM was trained to read); the
fusion's mean layer weights (one line per encoder layer) with their normalised entropy and the
mean per-token entropy (how sharply each token picks layers) — over the training tokens of
each log window, or on dev for logs that predate them; Global Softmax's temperature (when the
fusion has one); the gradient norm before clipping (mean and max per log window). A stall
check (``train.stall_check``) shows as a cross on the dev panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.report._plot import pyplot, save


def plot_training(records: list[dict[str, Any]], path: Path) -> None:
    """``training.png``: loss, dev accuracy, soft-prompt RMS, layer weights (+ entropy),
    temperature vs step.

    Layer weights: the training log windows' when recorded, else the dev evaluations'."""
    plt = pyplot()
    train = [r for r in records if r.get("event") == "train"]
    dev = [r for r in records if r.get("event") == "dev"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6), dpi=110)
    (loss_ax, dev_ax, rms_ax), (weights_ax, temp_ax, grad_ax) = axes
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], linewidth=1)
    loss_ax.set_title("training loss (mean target-token NLL)", fontsize=9)
    dev_ax.plot([r["step"] for r in dev], [100 * r["dev_accuracy"] for r in dev], marker="o")
    checks = [r for r in records if r.get("event") == "stall_check"]
    dev_ax.plot([r["step"] for r in checks], [100 * r["dev_accuracy"] for r in checks], "rx", markersize=8)
    dev_ax.set_title("English dev accuracy (%)", fontsize=9)
    _plot_grad_norm(grad_ax, train)
    with_weights = [r for r in train if r.get("layer_weights")] or [r for r in dev if r.get("layer_weights")]
    where = "training tokens" if with_weights and with_weights[0]["event"] == "train" else "dev"
    if with_weights:
        steps = [r["step"] for r in with_weights]
        weights = np.asarray([r["layer_weights"] for r in with_weights])  # [E, L]
        for layer in range(weights.shape[1]):
            weights_ax.plot(
                steps, weights[:, layer], marker="o", markersize=3, linewidth=1, label=f"layer {layer + 1}"
            )
        entropy = weights_ax.twinx()
        entropy.plot(steps, [r["layer_entropy"] for r in with_weights], "k--x", linewidth=1)
        if all("token_entropy" in r for r in with_weights):  # mean per-token entropy
            entropy.plot(steps, [r["token_entropy"] for r in with_weights], "k:", linewidth=1.5)
        entropy.set_ylim(0, 1.05)
        entropy.set_ylabel("entropy / log L: of the mean (dashed), per token (dotted)", fontsize=7)
        weights_ax.legend(fontsize=5, ncol=2, loc="upper left")
    weights_ax.set_title(f"mean layer weights on {where}", fontsize=9)
    sized = [r for r in train if "prompt_rms" in r]
    if sized:
        steps = [r["step"] for r in sized]
        rms_ax.plot(steps, [r["prompt_rms"] for r in sized], label="soft prompt")
        rms_ax.plot(steps, [r["embedding_rms"] for r in sized], "k--", label="LLM token embeddings")
        rms_ax.legend(fontsize=7)
        rms_ax.set_title("RMS of the LLM's input vectors (training tokens)", fontsize=9)
    else:
        rms_ax.set_axis_off()
    temps = [r for r in train if "temperature" in r]
    if temps:
        temp_ax.plot([r["step"] for r in temps], [r["temperature"] for r in temps])
        temp_ax.set_title("Global Softmax temperature tau", fontsize=9)
    else:
        temp_ax.set_axis_off()
    for ax in (loss_ax, dev_ax, rms_ax, weights_ax, temp_ax, grad_ax):
        ax.set_xlabel("optimizer step", fontsize=8)
    fig.tight_layout()
    save(fig, path)


def _plot_grad_norm(ax, train: list[dict[str, Any]]) -> None:
    """The gradient norm before clipping per log window (mean and max), log scale."""
    normed = [r for r in train if "grad_norm" in r]
    if not normed:
        ax.set_axis_off()
        return
    steps = [r["step"] for r in normed]
    ax.plot(steps, [r["grad_norm"] for r in normed], label="mean")
    ax.plot(steps, [r["grad_norm_max"] for r in normed], "k:", label="max")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("gradient norm before clipping", fontsize=9)
