"""Job commands: train, eval, predict, compare, quickstart, tasks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table  # the task list only

from layerbridge.config import EvalConfig, RunConfig, TaskConfig
from layerbridge.errors import ConfigError, DataError

console = Console(stderr=True)
out = Console()


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _run_config(config: Path | None, sets: list[str] | None, shortcuts: dict[str, Any]) -> RunConfig:
    """Config file, then shortcut options, then ``--set`` overrides (later wins)."""
    overrides = [f"{key}={json.dumps(value)}" for key, value in shortcuts.items() if value is not None]
    return RunConfig.load(config, overrides + list(sets or []))


def _print(markdown: str) -> None:
    """Print a rendered Markdown report (layerbridge.report) as it is written to disk."""
    out.print(markdown, markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- train
def train_cmd(
    config: Path = typer.Option(None, "--config", "-c", help="YAML/JSON run config (bridge / task / train)"),
    sets: list[str] = typer.Option(None, "--set", "-s", help="override, e.g. train.lr=6e-4 (repeatable)"),
    task: str = typer.Option(None, help="task name: xnli, indicxnli, sinhala-news, marc, custom"),
    task_spec: Path = typer.Option(None, help="YAML/JSON spec of a custom task"),
    data_dir: Path = typer.Option(None, help="local data directory (default $LAYERBRIDGE_DATA)"),
    encoder: str = typer.Option(None, help="encoder: e5-small, a Hugging Face id or a path"),
    llm: str = typer.Option(None, help="LLM: smollm2-135m, a Hugging Face id or a path"),
    fusion: str = typer.Option(None, help="last | global-softmax | transformer-softmax"),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="run folder"),
    seed: int = typer.Option(None),
    max_steps: int = typer.Option(None, help="optimizer steps (overrides epochs)"),
    lr: float = typer.Option(None, help="learning rate"),
    batch_size: int = typer.Option(None, help="per-device batch size"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's latest checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in output_dir"),
    evaluate_test: bool = typer.Option(
        False, "--evaluate", help="evaluate the best bridge on the test split"
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="allow the base models' custom code (a config file cannot)"
    ),
) -> None:
    """Train a bridge on English data.

    Several GPUs or CPU processes:
    `accelerate launch --multi_gpu --num_processes N -m layerbridge.cli.main train ...`
    """
    from layerbridge.training import train

    shortcuts = {
        "task.name": task or ("custom" if task_spec else None),
        "task.spec": str(task_spec) if task_spec else None,
        "task.data_dir": str(data_dir) if data_dir else None,
        "bridge.encoder": encoder,
        "bridge.llm": llm,
        "bridge.fusion": fusion,
        "train.output_dir": str(output_dir) if output_dir else None,
        "train.seed": seed,
        "train.max_steps": max_steps,
        "train.lr": lr,
        "train.batch_size": batch_size,
    }
    run = _train_run_config(config, sets, shortcuts, resume and output_dir is None, trust_remote_code)
    result = train(run, resume=resume, overwrite=overwrite)
    s = result.summary
    best = "n/a" if s["best_dev_accuracy"] is None else f"{100 * s['best_dev_accuracy']:.1f}%"
    console.print(
        f"[green]✓[/green] {s['steps']} steps, best English dev accuracy {best} at step {s['best_step']}"
    )
    console.print(f"  best bridge: {result.best_dir}   log: {result.output_dir / 'log.jsonl'}")
    if evaluate_test:
        from layerbridge.evaluation import evaluate
        from layerbridge.report.evaluation import results_markdown
        from layerbridge.tasks import get_task

        results = evaluate(
            result.bridge, get_task(run.task), EvalConfig(), out_dir=result.output_dir / "eval"
        )
        _print(results_markdown(results))


def _train_run_config(
    config: Path | None, sets: list[str] | None, shortcuts: dict[str, Any], resume_here: bool, trust: bool
) -> RunConfig:
    """The run config of ``train``: file, shortcut options, ``--set``; remote code only by flag."""
    from layerbridge.training.outputs import is_run_dir

    run = _run_config(config, sets, shortcuts)
    if run.bridge.trust_remote_code and not trust:
        raise ConfigError(
            "the config sets bridge.trust_remote_code; pass --trust-remote-code to allow custom model code"
        )
    if trust:
        run = run.replace(bridge=run.bridge.replace(trust_remote_code=True))
    if resume_here and config is not None and config.name == "config.yaml" and is_run_dir(config.parent):
        # `train -c RUN/config.yaml --resume` continues RUN where it is now (it may have moved)
        run = run.replace(train=run.train.replace(output_dir=str(config.parent)))
    return run


# --------------------------------------------------------------------------- eval
def eval_cmd(
    bridge: Path = typer.Argument(..., help="a trained bridge folder (e.g. runs/x/best)"),
    task: str = typer.Option(None, help="task (default: the one the bridge was trained for)"),
    task_spec: Path = typer.Option(None, help="YAML/JSON spec of a custom task"),
    data_dir: Path = typer.Option(None, help="local data directory (default $LAYERBRIDGE_DATA)"),
    source: str = typer.Option("auto", help="auto | local | hub"),
    languages: str = typer.Option(None, help="comma-separated languages (default: all of the task)"),
    split: str = typer.Option("test", help="test | dev"),
    mode: str = typer.Option(
        "score", help="score (label scoring) | generate (greedy, exact match) | both (side by side)"
    ),
    limit: int = typer.Option(None, help="at most N examples per language (class-balanced)"),
    batch_size: int = typer.Option(32),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the CIs"),
    out_dir: Path = typer.Option(None, "--out", help="artefact folder (default: <bridge>/../eval-<split>)"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1, … (default: GPU if any)"),
    covered_languages: str = typer.Option(
        None,
        help="languages the encoder was pretrained on, for grouped averages: comma-separated or a "
        "file (default: XLM-R's 100 for XLM-R-family encoders such as e5)",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="allow the base models' custom code (never taken from the bridge)"
    ),
) -> None:
    """Evaluate a bridge: accuracy and macro-F1 per language with 95% CIs, tables and plots."""
    from layerbridge import api
    from layerbridge.checkpoint import read_bridge_meta
    from layerbridge.languages import read_language_list
    from layerbridge.report.evaluation import results_markdown
    from layerbridge.tasks import Task

    saved = read_bridge_meta(bridge).get("extra", {}).get("task")
    where = {"data_dir": str(data_dir) if data_dir else None, "source": source}
    if task_spec or task:
        task_config = TaskConfig(
            name="custom" if task_spec else task, spec=task_spec and str(task_spec), **where
        )
    elif saved:  # a bridge is evaluated with the prompt and label strings it was trained with
        task_config = Task.config_from_description(saved, **where)
    else:
        raise ConfigError("the bridge does not record its task; pass --task")
    config = EvalConfig(
        split=split,
        languages=_csv(languages),
        mode=mode,
        limit=limit,
        batch_size=batch_size,
        bootstrap=bootstrap,
        covered_languages=sorted(read_language_list(covered_languages)) if covered_languages else None,
    )
    target = out_dir or bridge.parent / f"eval-{split}"
    results = api.evaluate(
        bridge, task_config, config, out_dir=target, device=device, trust_remote_code=trust_remote_code
    )
    _print(results_markdown(results))
    console.print(
        f"artefacts: {target} (results.json, results.csv, results.md, layer_weights.png, accuracy.png)"
    )


# --------------------------------------------------------------------------- predict
def predict_cmd(
    bridge: Path = typer.Argument(..., help="a trained bridge folder"),
    texts: list[str] = typer.Argument(None, help="input texts (default: --file, else stdin, one per line)"),
    file: Path = typer.Option(
        None, "--file", "-f", help="one input per line (plain text, TAB-separated fields, or JSON objects)"
    ),
    input_format: str = typer.Option(
        "auto", "--input-format", help="auto (a line that parses as a JSON object is one) | text | json"
    ),
    generate: bool = typer.Option(False, "--generate", help="generate free text instead of scoring labels"),
    both: bool = typer.Option(
        False,
        "--both",
        help="score labels and also give the label greedy generation yields (exact match, or -)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per input"),
    task: str = typer.Option(None, help="task for prompt and labels (default: the bridge's own)"),
    device: str = typer.Option(None),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="allow the base models' custom code (never taken from the bridge)"
    ),
) -> None:
    """Classify text in any language (label + probabilities), or generate text, with a trained bridge.

    Output has one line per input line, in order; a blank input line gives a line with no label.
    """
    from layerbridge import api

    if input_format not in ("auto", "text", "json"):
        raise ConfigError(f"unknown --input-format {input_format!r}; choose auto, text or json")
    if generate and both:
        raise ConfigError("--generate and --both exclude each other (--both already generates)")
    lines = list(texts) if texts else _read_input_lines(file)
    inputs = {i: _parse_input(line, input_format, i + 1) for i, line in enumerate(lines) if line.strip()}
    if not inputs:
        raise DataError("no input: every input line is blank")
    results = api.predict(
        bridge,
        list(inputs.values()),
        task=task,
        mode="generate" if generate else "both" if both else "score",
        device=device,
        trust_remote_code=trust_remote_code,
    )
    by_line = dict(zip(inputs, results, strict=True))
    for i, line in enumerate(lines):
        result = by_line.get(i)
        if as_json:
            record = {"input": line, **(result or {"label": None, "error": "empty input"})}
            print(json.dumps(record, ensure_ascii=False), flush=True)  # JSON lines
        elif result is None:
            print("-", flush=True)
        elif generate:
            print(f"{_one_line(result['text'])}\t{result['label'] or '-'}", flush=True)
        else:
            probs = ", ".join(f"{k}={v:.2f}" for k, v in result["probabilities"].items())
            generated = f"\tgenerated={result['generated_label'] or '-'}" if both else ""
            print(f"{result['label']}\t{probs}{generated}", flush=True)


def _read_input_lines(file: Path | None) -> list[str]:
    """Input lines from --file or stdin, decoded as UTF-8 (a clear error otherwise)."""
    if file is not None:
        if not file.is_file():
            raise DataError(f"input file {file} does not exist")
        raw, where = file.read_bytes(), str(file)
    elif sys.stdin is None or sys.stdin.closed:
        raise DataError("no input: standard input is closed; give texts as arguments or --file FILE")
    elif sys.stdin.isatty():
        raise DataError("no input: give texts as arguments, --file FILE, or pipe them on stdin")
    else:
        raw, where = sys.stdin.buffer.read(), "standard input"
    try:
        return raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{where}, line {line}: not valid UTF-8 (byte {raw[err.start]:#04x})") from None


def _one_line(text: str) -> str:
    """Generated text on one output line: newlines and tabs escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _parse_input(line: str, fmt: str, number: int) -> str | dict[str, str]:
    """A JSON object line -> its fields; anything else -> the text (see --input-format)."""
    stripped = line.strip()
    if fmt == "text" or (fmt == "auto" and not stripped.startswith(("{", "["))):
        return line
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as err:
        if fmt == "json":
            raise DataError(f"input line {number} is not valid JSON: {err.msg}") from None
        return line  # auto: text that merely starts with a bracket
    if not isinstance(value, dict):
        raise DataError(
            f"input line {number} is a JSON {type(value).__name__}; give one JSON object per line "
            "(or --input-format text to classify the line as written)"
        )
    return {str(k): str(v) for k, v in value.items()}


# --------------------------------------------------------------------------- compare / quickstart
def compare_cmd(
    task: str = typer.Option(None, help="task name (or set it in --config)"),
    fusions: str = typer.Option("last,global-softmax,transformer-softmax", help="comma-separated fusions"),
    seeds: str = typer.Option("1,2,3", help="comma-separated seeds"),
    config: Path = typer.Option(None, "--config", "-c", help="YAML/JSON run config shared by all runs"),
    sets: list[str] = typer.Option(None, "--set", "-s", help="override, e.g. train.max_steps=200"),
    languages: str = typer.Option(None, help="test languages (default: all of the task)"),
    limit: int = typer.Option(None, help="test examples per language"),
    eval_batch_size: int = typer.Option(
        None, min=1, help="test batch size (label scores move in the last bits with padding)"
    ),
    out_dir: Path = typer.Option(Path("runs/compare"), "--out", help="output folder"),
    lr_grid: str = typer.Option(
        None, help="learning rates, e.g. 3e-4,1e-3,3e-3: each fusion gets the best on English dev"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="retrain runs that already finished"),
) -> None:
    """Train and test several fusions (x seeds) on one task; print one comparison table."""
    from layerbridge.experiments.compare import run_comparison
    from layerbridge.modeling.fusion import FUSIONS
    from layerbridge.report.comparison import comparison_markdown

    run = _run_config(config, sets, {"task.name": task})

    try:
        seed_list = [int(s) for s in _csv(seeds) or []]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    fusion_list = _csv(fusions) or []
    if not seed_list or not fusion_list:
        raise ConfigError("give at least one fusion and one seed")
    for name in fusion_list:
        FUSIONS.get(name)  # every name is checked before anything trains
    if len(set(fusion_list)) != len(fusion_list) or len(set(seed_list)) != len(seed_list):
        raise ConfigError("--fusions and --seeds must not repeat a value")
    try:
        grid = [float(v) for v in _csv(lr_grid) or []]
    except ValueError:
        raise ConfigError(f"--lr-grid must be comma-separated numbers, got {lr_grid!r}") from None
    if any(v <= 0 for v in grid):
        raise ConfigError(f"--lr-grid values must be positive, got {lr_grid!r}")
    summary = run_comparison(
        run,
        fusion_list,
        seed_list,
        out_dir,
        EvalConfig(languages=_csv(languages), limit=limit).replace(
            batch_size=eval_batch_size or EvalConfig.batch_size
        ),
        lr_grid=grid,
        reuse=not overwrite,
        log=console.log,
    )
    _print(comparison_markdown(summary))
    console.print(f"tables: {out_dir / 'comparison.md'}  per-run plots: {out_dir}/<fusion>/seed-<s>/eval/")


def quickstart_cmd(
    out_dir: Path = typer.Option(Path("runs/quickstart"), "--out", help="output folder"),
    steps: int = typer.Option(None, help="optimizer steps per bridge (batch 8) [default: the recipe's]"),
    limit: int = typer.Option(None, help="test examples per language [default: the recipe's]"),
    seeds: str = typer.Option(None, help="comma-separated seeds, e.g. 1,2,3 [default: the recipe's]"),
    data_dir: Path = typer.Option(None, help="local data directory (default $LAYERBRIDGE_DATA)"),
) -> None:
    """Train a Transformer-Softmax bridge and a last-layer baseline on English news; test on en + si."""
    from layerbridge.experiments.quickstart import run_quickstart
    from layerbridge.report.comparison import comparison_markdown

    start = time.perf_counter()
    console.print(
        "[bold]layerbridge quickstart[/bold]: e5-small + SmolLM2-135M, English BBC news -> Sinhala news"
    )
    try:
        seed_list = [int(v) for v in _csv(seeds) or []] or None
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    overrides = {
        k: v for k, v in {"steps": steps, "limit": limit, "seeds": seed_list}.items() if v is not None
    }
    summary = run_quickstart(
        out_dir, data_dir=str(data_dir) if data_dir else None, log=console.log, **overrides
    )
    _print(comparison_markdown(summary))
    chance = 100 / 5
    console.print(f"chance level: {chance:.0f}%   wall time: {(time.perf_counter() - start) / 60:.1f} min")
    for fusion in summary["fusions"]:
        seed = summary["table"][fusion]["seeds"][0]
        folder = out_dir / fusion / f"seed-{seed}" / "eval"
        console.print(f"{fusion}: plots {folder / 'layer_weights.png'}, {folder / 'accuracy.png'}")
    console.print(f"tables: {out_dir / 'comparison.md'}")


def study_cmd(
    quick: bool = typer.Option(False, "--quick", help="tiny budget: checks the whole pipeline in minutes"),
    out_dir: Path = typer.Option(None, "--out", help="run folder (default runs/study or runs/study-quick)"),
    export_dir: Path = typer.Option(
        None, "--export", help="committed results (default results/study or runs/study-quick/results)"
    ),
    tasks: str = typer.Option(
        None, help="only these tasks (comma-separated); finished ones stay in the export"
    ),
    data_dir: Path = typer.Option(None, help="local data directory (default $LAYERBRIDGE_DATA)"),
) -> None:
    """The study: last vs global-softmax vs transformer-softmax, each at its own learning rate,
    on SIB-200, Sinhala news, XNLI and MARC. Resumable, also from the committed results."""
    from layerbridge.experiments.study import run_study
    from layerbridge.report.comparison import comparison_markdown

    budget = "quick" if quick else "cpu"
    out_dir = out_dir or Path("runs/study-quick" if quick else "runs/study")
    export_dir = export_dir or (out_dir / "results" if quick else Path("results/study"))
    command = "layerbridge study" + (" --quick" if quick else "") + (f" --tasks {tasks}" if tasks else "")
    result = run_study(
        out_dir,
        export_dir,
        budget,
        str(data_dir) if data_dir else None,
        _csv(tasks),
        log=console.log,
        command=command,
    )
    for task, summary in result["summaries"].items():
        _print(f"## {task}\n\n" + comparison_markdown(summary))
    console.print(f"tables and plots: {export_dir / 'README.md'}")


def bench_cmd(
    shapes: str = typer.Option(
        "builtin",
        help="builtin (e5-small + SmolLM2-135M) and/or paper (random "
        "mT5-large-shaped encoder + Llama-3.2-1B-shaped LLM)",
    ),
    batch_sizes: str = typer.Option("8", help="comma-separated training batch sizes"),
    steps: int = typer.Option(10, help="timed steps per case (after warm-up)"),
    warmup: int = typer.Option(3, help="untimed warm-up steps"),
    fusion: str = typer.Option("transformer-softmax"),
    precision: str = typer.Option(
        "auto", help="auto (bf16 on GPU and native-bf16 CPUs, else fp32) | fp32 | bf16"
    ),
    naive: bool = typer.Option(True, "--naive/--no-naive", help="also time the naive reference design"),
    eval_examples: int = typer.Option(64, help="examples for the label-scoring throughput"),
    eval_batch_size: int = typer.Option(16),
    device: str = typer.Option(None),
    compile_llm: bool = typer.Option(False, "--compile", help="torch.compile the LLM decoder (ours only)"),
    profile: bool = typer.Option(
        False, "--profile", help="also profile one training step of each design (ops, kernels, top ops)"
    ),
    out: Path = typer.Option(None, "--out", help="write the JSON report here (and a .md beside it)"),
) -> None:
    """Measure training and evaluation throughput, ours vs the naive design, in one process."""
    from layerbridge.bench.run import BenchConfig, run_benchmark
    from layerbridge.io import write_json
    from layerbridge.report.bench import bench_markdown

    config = BenchConfig(
        shapes=_csv(shapes) or ["builtin"],
        batch_sizes=[int(b) for b in _csv(batch_sizes) or []],
        steps=steps,
        warmup=warmup,
        fusion=fusion,
        device=device,
        precision=precision,
        naive=naive,
        eval_examples=eval_examples,
        eval_batch_size=eval_batch_size,
        compile=compile_llm,
        profile=profile,
    )
    report = run_benchmark(config, log=console.log)
    report["command"] = "layerbridge " + " ".join(sys.argv[1:])
    table = bench_markdown(report)
    _print(table)
    if out is not None:
        write_json(out, report)
        out.with_suffix(".md").write_text(table, encoding="utf-8")
        console.print(f"report: {out} and {out.with_suffix('.md')}")


def probe_cmd(
    task: str = typer.Option("sib200", help="a task with parallel test sets"),
    encoder: str = typer.Option("e5-small", help="encoder: built-in name, Hugging Face id or path"),
    bridge: Path = typer.Option(None, help="a trained bridge: also probe its fused representation"),
    languages: str = typer.Option(None, help="comma-separated languages (default: all of the task)"),
    limit: int = typer.Option(None, help="at most N English sentences (and their translations)"),
    split: str = typer.Option("test", help="test | dev"),
    batch_size: int = typer.Option(64),
    covered_languages: str = typer.Option(
        None,
        help="languages the encoder was pretrained on: comma-separated or a file (default: XLM-R's for e5)",
    ),
    data_dir: Path = typer.Option(None, help="local data directory (default $LAYERBRIDGE_DATA)"),
    out_dir: Path = typer.Option(Path("runs/alignment"), "--out", help="artefact folder"),
    device: str = typer.Option(None),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="allow custom model code"),
) -> None:
    """Layer-wise cross-lingual alignment: retrieval of each sentence's English translation per layer."""
    from layerbridge.evaluation.alignment import ProbeModel, alignment_probe
    from layerbridge.io import ensure_writable
    from layerbridge.languages import coverage_for
    from layerbridge.report.alignment import write_alignment_report
    from layerbridge.tasks import get_task

    if limit is not None and limit < 2:
        raise ConfigError(f"--limit must be at least 2, got {limit}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    task_obj = get_task(TaskConfig(name=task, data_dir=str(data_dir) if data_dir else None))
    langs = _csv(languages) or list(task_obj.eval_languages)
    for lang in langs:  # every argument is checked before a model loads
        task_obj.check_language(split, lang)
    ensure_writable(out_dir)
    if bridge is not None:
        from layerbridge.checkpoint import load_bridge

        loaded = load_bridge(bridge, device=device, trust_remote_code=trust_remote_code)
        model, encoder_name = ProbeModel.of_bridge(loaded), loaded.config.encoder
    else:
        from layerbridge.modeling.builders import load_encoder

        model = ProbeModel(*load_encoder(encoder, device, "float32", trust_remote_code))
        encoder_name = encoder
    coverage = coverage_for(encoder_name, covered_languages)
    probe = alignment_probe(
        model, task_obj, langs, split=split, limit=limit, batch_size=batch_size, coverage=coverage
    )
    probe["encoder"] = encoder_name
    probe["bridge"] = str(bridge) if bridge else None
    print(write_alignment_report(probe, out_dir))
    console.print(f"artefacts: {out_dir} (alignment.json, alignment.md, alignment.png)")


def tasks_cmd() -> None:
    """List the tasks, their languages, label strings and data sources."""
    from layerbridge.tasks import TASKS

    table = Table(title="tasks")
    for column in ("name", "languages", "low-resource", "labels", "hub datasets"):
        table.add_column(column)
    for name in TASKS.names():
        cls = TASKS.get(name)
        if name == "custom":
            table.add_row(name, "from your spec", "", "from your spec", "")
            continue
        langs, low = " ".join(cls.languages), " ".join(cls.low_resource)
        if len(cls.languages) > 20:
            langs = f"{len(cls.languages)} FLORES-200 codes ({cls.languages[0]} … {cls.languages[-1]})"
            langs += "; ISO aliases: si ta sw ur hi en …"
            low = f"{len(cls.low_resource)}: " + low
        table.add_row(
            name,
            langs,
            low,
            " / ".join(cls.default_label_strings),
            " ".join(cls.hub_datasets),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("predict")(predict_cmd)
    app.command("compare")(compare_cmd)
    app.command("quickstart")(quickstart_cmd)
    app.command("study")(study_cmd)
    app.command("bench")(bench_cmd)
    app.command("tasks")(tasks_cmd)
    app.command("probe")(probe_cmd)
