"""The model card (``README.md``) written into every saved bridge folder, Hugging Face style.

Rendered from the folder's own ``bridge_config.json`` record (base models, fusion, the task
and its prompt, the training budget, the dev metric at save time), so the card never says
anything the checkpoint does not record.
"""

from __future__ import annotations

from typing import Any

import yaml

from layerbridge.builtin import BUILTIN_MODELS
from layerbridge.runtime import precision_label


def _hub_id(name: str) -> str:
    """A built-in model's upstream Hugging Face id; anything else as given."""
    return BUILTIN_MODELS[name].hf_id if name in BUILTIN_MODELS else name


def _task(extra: dict[str, Any]) -> dict[str, Any]:
    """The task record saved by training (a mapping); anything else a caller stored is not a task."""
    task = extra.get("task")
    return task if isinstance(task, dict) else {}


def _front_matter(meta: dict[str, Any]) -> str:
    bridge, task = meta["bridge"], _task(meta.get("extra", {}))
    header: dict[str, Any] = {
        "library_name": "layerbridge",
        "tags": ["layerbridge", "multilingual", "cross-lingual-transfer", bridge["fusion"]],
        "base_model": [_hub_id(bridge["encoder"]), _hub_id(bridge["llm"])],
        "pipeline_tag": "text-classification",
    }
    languages = task.get("languages")
    if languages:
        header["language"] = list(languages)
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n"


def _training_lines(extra: dict[str, Any]) -> list[str]:
    training = extra.get("training")
    needed = ("train_examples", "total_steps", "batch_size", "grad_accum", "world_size", "examples_seen")
    if not isinstance(training, dict) or not all(k in training for k in (*needed, "lr", "seed", "precision")):
        return ["- Training: not recorded (a bridge saved outside `layerbridge train`)."]
    return [
        f"- Training: English only, {training['train_examples']} examples; step {extra.get('step')} of "
        f"{training['total_steps']} optimizer steps, batch {training['batch_size']} x grad_accum "
        f"{training['grad_accum']} x {training['world_size']} process(es), "
        f"{training['examples_seen']} examples seen; AdamW lr {training['lr']}, seed {training['seed']}, "
        f"precision {precision_label(training['precision'])}.",
    ]


def model_card(meta: dict[str, Any]) -> str:
    """README.md for a bridge folder whose ``bridge_config.json`` holds ``meta``."""
    bridge, extra = meta["bridge"], meta.get("extra", {})
    task = _task(extra)
    params = meta.get("parameters", {})
    options = f" {bridge['fusion_options']}" if bridge.get("fusion_options") else ""
    lines = [
        f"# layerbridge bridge: `{bridge['fusion']}` fusion, {bridge['encoder']} -> {bridge['llm']}",
        "",
        "A trained bridge between a frozen multilingual encoder and a frozen LLM: encoder layer",
        "states are fused, projected into the LLM's embedding space and read as a soft prompt.",
        "Only the bridge is stored here; the base models are loaded from their own ids.",
        "",
        f"- Encoder: `{bridge['encoder']}` ({_hub_id(bridge['encoder'])}); LLM: `{bridge['llm']}` "
        f"({_hub_id(bridge['llm'])}); both frozen"
        + ("" if bridge.get("freeze_encoder", True) else " (encoder fine-tuned)")
        + ".",
        f"- Fusion: `{bridge['fusion']}`{options}; projector `{bridge['projector']}`"
        + (" with an RMS-normed output" if bridge.get("projector_norm") == "rms" else "")
        + "; "
        f"{params.get('trainable', '?')} trainable parameters; max {bridge['max_length']} encoder tokens.",
    ]
    if task:
        labels = ", ".join(f"`{v}`" for v in dict(task.get("labels") or {}).values())
        lines.append(f"- Task: `{task.get('name')}`, prompt `{task.get('template')!r}`, labels {labels}.")
    lines += _training_lines(extra)
    if isinstance(extra.get("dev_accuracy"), int | float):
        lines.append(
            f"- English dev accuracy at this step: {100 * extra['dev_accuracy']:.1f}% (label scoring)."
        )
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from layerbridge import Bridge",
        'bridge = Bridge.from_pretrained("path/to/this/folder")',
        "```",
        "",
        "or `layerbridge eval|predict path/to/this/folder`, or with lm-evaluation-harness:",
        "`layerbridge lm-eval run --model layerbridge --model_args bridge=path/to/this/folder --tasks …`.",
    ]
    return _front_matter(meta) + "\n" + "\n".join(lines) + "\n"
