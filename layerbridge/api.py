"""The Python API, mirroring the command line (for notebooks and scripts).

>>> import layerbridge as lb
>>> result = lb.train(lb.RunConfig.load("configs/quickstart.yaml"))   # layerbridge train
>>> scores = lb.evaluate(result.best_dir, "sinhala-news", lb.EvalConfig(limit=100))
>>> lb.predict(result.best_dir, ["ශ්‍රී ලංකා ක්‍රිකට් කණ්ඩායම ජය ගත්තේය."])
[{'label': 'Sports', 'probabilities': {...}}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from layerbridge.checkpoint import load_bridge, read_bridge_meta
from layerbridge.config import EvalConfig, RunConfig, TaskConfig
from layerbridge.data.types import Example
from layerbridge.errors import ConfigError, DataError
from layerbridge.evaluation.evaluate import evaluate as _evaluate
from layerbridge.evaluation.predict import predict_examples
from layerbridge.io import ensure_writable
from layerbridge.modeling.bridge import Bridge
from layerbridge.tasks import get_task
from layerbridge.tasks.base import Task, template_fields
from layerbridge.training import TrainResult
from layerbridge.training import train as _train


@dataclass(frozen=True)
class PromptSpec:
    """What ``predict`` needs of a task: the template and the label strings."""

    name: str
    template: str
    label_strings: tuple[str, ...]

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(template_fields(self.template)))


def train(
    config: RunConfig | dict | str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """``layerbridge train``: train a bridge; returns it (best dev weights) and where it was saved."""
    if isinstance(config, str | Path):
        config = RunConfig.load(config)
    elif isinstance(config, dict):
        config = RunConfig.from_dict(config)
    return _train(config, resume=resume, overwrite=overwrite, progress=progress)


def _bridge_meta(bridge: Bridge | str | Path) -> dict:
    """The extra metadata saved with a bridge folder (cheap: no model is loaded)."""
    return {} if isinstance(bridge, Bridge) else read_bridge_meta(bridge).get("extra", {})


def _load(bridge: Bridge | str | Path, device: str | None, trust_remote_code: bool) -> Bridge:
    if isinstance(bridge, Bridge):
        return bridge
    return load_bridge(bridge, device=device, trust_remote_code=trust_remote_code)


def _as_task(task: TaskConfig | str | None, meta: dict, data_dir: str | None = None) -> Task:
    """The task to use: given, or the one saved with the bridge (with its prompt and labels)."""
    if task is None:
        saved = meta.get("task")
        if not saved:
            raise ConfigError("no task given and the bridge does not record the task it was trained for")
        task = Task.config_from_description(saved, data_dir=data_dir)
    elif isinstance(task, str):
        task = TaskConfig(name=task, data_dir=data_dir)
    return get_task(task)


def _prompt_spec(task: TaskConfig | str | None, meta: dict) -> PromptSpec:
    """Template and label strings for ``predict`` (the saved ones need no task data)."""
    if task is None and meta.get("task"):
        config = Task.config_from_description(meta["task"])
        return PromptSpec(config.name, config.template, tuple(config.labels))
    found = _as_task(task, meta)
    return PromptSpec(found.name, found.template, tuple(found.label_strings))


def evaluate(
    bridge: Bridge | str | Path,
    task: TaskConfig | str | None = None,
    config: EvalConfig | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """``layerbridge eval``: per-language accuracy / macro-F1 with CIs (+ artefacts in ``out_dir``).

    Task, languages and the output folder are checked before the models load.
    """
    config = config or EvalConfig()
    task_obj = _as_task(task, _bridge_meta(bridge))
    for lang in config.languages or ():
        task_obj.check_language(config.split, lang)
    if out_dir is not None:
        ensure_writable(Path(out_dir))
    model = _load(bridge, device, trust_remote_code)
    info = {"path": str(bridge)} if not isinstance(bridge, Bridge) else {}
    return _evaluate(model, task_obj, config, out_dir=out_dir, bridge_info=info, progress=progress)


def predict(
    bridge: Bridge | str | Path,
    inputs: Sequence[str | dict[str, str]],
    *,
    task: TaskConfig | str | None = None,
    mode: str = "score",
    batch_size: int = 32,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> list[dict[str, Any]]:
    """``layerbridge predict``: label (with probabilities) or generated text for each input.

    An input is the text of a one-field task, a dict of field values, or the fields joined
    by a TAB (e.g. premise<TAB>hypothesis for NLI).
    """
    meta = _bridge_meta(bridge)
    spec = _prompt_spec(task, meta)
    examples = [Example(_fields(spec, item, i), 0, f"input/{i}") for i, item in enumerate(inputs)]
    config = EvalConfig(mode=mode, batch_size=batch_size)
    model = _load(bridge, device, trust_remote_code)
    with torch.no_grad():
        preds = predict_examples(model, spec.template, examples, spec.label_strings, config, progress=False)

    def name(index: int) -> str | None:
        return spec.label_strings[index] if index >= 0 else None

    results = []
    for i in range(len(examples)):
        record: dict[str, Any] = {"label": name(preds.pred[i])}
        if preds.scores is not None:
            probs = preds.probabilities()[i]
            record["probabilities"] = dict(zip(spec.label_strings, map(float, probs), strict=True))
        if preds.texts is not None:
            record["text"] = preds.texts[i]
        if preds.generated is not None:  # mode "both": the generation's label beside the scored one
            record["generated_label"] = name(preds.generated[i])
        results.append(record)
    return results


def _fields(spec: PromptSpec, item: str | dict[str, str], index: int) -> dict[str, str]:
    names = spec.fields
    if isinstance(item, dict):
        missing = [n for n in names if not str(item.get(n, "")).strip()]
        if missing:
            raise DataError(f"input #{index} lacks field(s) {', '.join(missing)} of task {spec.name}")
        return {n: str(item[n]) for n in names}
    if not isinstance(item, str) or not item.strip():
        raise DataError(f"input text #{index} is empty")
    parts = item.split("\t") if len(names) > 1 else [item]
    if len(parts) != len(names):
        raise DataError(
            f"input #{index} must give {len(names)} fields ({', '.join(names)}) separated by a TAB, "
            f"got {len(parts)}"
        )
    return dict(zip(names, (p.strip() for p in parts), strict=True))
