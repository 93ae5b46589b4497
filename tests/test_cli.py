"""The command line: jobs work end to end; bad input gives one line and a non-zero exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from layerbridge import api
from layerbridge.cli.main import main
from layerbridge.config import EvalConfig, RunConfig, TaskConfig
from tests.conftest import tiny_run_config
from tests.test_training import ROOT, _env


@pytest.fixture(scope="module")
def trained(tiny_dir, marker_task, tmp_path_factory):
    """A tiny bridge trained on the marker task through the CLI (config file + --set overrides)."""
    out = tmp_path_factory.mktemp("cli-run")
    config = tiny_run_config(tiny_dir, marker_task, out / "run", max_steps=300, eval_every=100, save_every=0)
    path = out / "run.yaml"
    path.write_text(config.to_yaml())
    assert main(["train", "-c", str(path), "--set", "train.log_every=50"]) == 0
    return out / "run"


def test_train_eval_predict_from_the_command_line(trained, capsys, tmp_path):
    bridge = trained / "best"
    assert main(["eval", str(bridge), "--limit", "40", "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["task"] == "marker" and results["languages"]["en"]["n"] == 40
    assert results["languages"]["en"]["accuracy"] >= 0.8
    capsys.readouterr()
    assert (
        main(["predict", str(bridge), "text : w3 marker w9 label :", "text : w3 w9 label :", "--json"]) == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["label"] for x in lines] == ["yes", "no"]
    assert abs(sum(lines[0]["probabilities"].values()) - 1) < 1e-6
    assert main(["predict", str(bridge), "text : w1 label :", "--generate"]) == 0
    assert capsys.readouterr().out.strip()
    # --both: the scored label and the label greedy generation gives, from the same pass
    assert main(["predict", str(bridge), "text : w3 marker w9 label :", "--both", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] == "yes" and record["generated_label"] in ("yes", "no", None)
    assert main(["predict", str(bridge), "text : w3 marker w9 label :", "--both"]) == 0
    assert capsys.readouterr().out.split("\t")[-1].strip() == f"generated={record['generated_label'] or '-'}"


def test_predict_keeps_one_output_line_per_input_line(trained, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text('text : marker w2 label :\n\n{"text": "text : w2 w5 label :"}\n{not json, just text\n')
    assert main(["predict", str(trained / "best"), "--file", str(inputs)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[1] == "-"  # the blank line keeps its place
    assert out[0].split("\t")[0] == "yes" and out[2].split("\t")[0] == "no"
    assert out[3].split("\t")[0] in ("yes", "no")  # text that merely starts with "{" is text
    assert main(["predict", str(trained / "best"), "--file", str(inputs), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[1] == {"input": "", "label": None, "error": "empty input"}
    assert records[2]["input"] == '{"text": "text : w2 w5 label :"}'
    inputs.write_bytes(b"fine\nnot \xff utf-8\n")
    assert main(["predict", str(trained / "best"), "--file", str(inputs)]) == 2
    err = capsys.readouterr().err
    assert f"{inputs}, line 2: not valid UTF-8" in err and len(err.strip().splitlines()) == 1


def test_generated_text_stays_on_one_line():
    from layerbridge.cli.jobs import _one_line

    assert _one_line("a\nb\tc\\n") == "a\\nb\\tc\\\\n"


def test_predict_reads_stdin(trained):
    done = subprocess.run(
        [sys.executable, "-m", "layerbridge.cli.main", "predict", str(trained / "best")],
        input="text : marker w2 label :\ntext : w2 w5 label :\n",
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.strip().splitlines()] == ["yes", "no"]


def test_python_api_mirrors_the_cli(trained, tmp_path):
    results = api.evaluate(trained / "best", None, EvalConfig(limit=20), progress=False)
    assert results["languages"]["en"]["n"] == 20
    predictions = api.predict(trained / "best", ["text : marker label :", {"text": "text : w1 label :"}])
    assert [p["label"] for p in predictions] == ["yes", "no"]


def test_config_round_trip_and_overrides(tmp_path):
    config = RunConfig.load(None, ["bridge.fusion=last", "train.lr=6e-4", "train.betas=[0.9, 0.95]"])
    assert config.bridge.fusion == "last" and config.train.lr == 6e-4 and config.train.betas == (0.9, 0.95)
    for suffix, text in ((".yaml", config.to_yaml()), (".json", config.to_json())):
        path = tmp_path / f"run{suffix}"
        path.write_text(text)
        assert RunConfig.from_file(path) == config
    assert RunConfig.from_json(config.to_json()).task == TaskConfig()


BAD_COMMANDS = [
    (["train", "--fusion", "mean"], "unknown fusion 'mean'"),
    (["train", "--task", "mnli"], "unknown task 'mnli'"),
    (["train", "--set", "bridge.fusion_options={heads: 2}"], "bad fusion_options for 'transformer-softmax'"),
    (["train", "--set", "bridge.fusion_options={head_init: ones}"], "head_init must be 'default' or 'zeros'"),
    (["train", "--set", "train.lr=fast"], "train.lr must be a number"),
    (["train", "--set", "train.learning_rate=1"], "unknown key(s) learning_rate"),
    (["train", "-c", "/no/such/config.yaml"], "does not exist"),
    (["eval", "/no/such/bridge"], "not a bridge checkpoint"),
    (["eval", "BRIDGE", "--languages", "xx"], "unknown language 'xx'"),
    (["predict", "BRIDGE", "   "], "no input: every input line is blank"),
    (["predict", "BRIDGE", "x", "--generate", "--both"], "--generate and --both exclude each other"),
    (["predict", "BRIDGE", "[1, 2]"], "input line 1 is a JSON list; give one JSON object per line"),
    (["models", "prepare", "gpt-5"], "unknown built-in model 'gpt-5'"),
    (["train", "--max-steps", "0"], "train.max_steps must be at least 1"),
    (["train", "--set", "train.log_every=0"], "train.log_every must be at least 1"),
    (["eval", "BRIDGE", "--batch-size", "0"], "batch size must be at least 1"),
    (["eval", "BRIDGE", "--split", "valid"], "unknown split 'valid'"),
    (["compare", "--task", "sinhala-news", "--fusions", "last,typo"], "unknown fusion 'typo'"),
    (["compare", "--task", "sinhala-news", "--seeds", "1,x"], "--seeds must be comma-separated integers"),
    (["study", "--tasks", "typo"], "unknown study task(s) typo"),
    (["probe", "--task", "sinhala-news", "--limit", "1"], "--limit must be at least 2"),
]


@pytest.mark.parametrize(("args", "message"), BAD_COMMANDS)
def test_bad_input_gives_one_line_and_nonzero_exit(args, message, trained, capsys):
    args = [str(trained / "best") if a == "BRIDGE" else a for a in args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_bad_data_through_a_real_process_has_no_traceback(tmp_path):
    spec = tmp_path / "bad.yaml"
    (tmp_path / "train.csv").write_text("text,label\nhello,maybe\n")
    spec.write_text(
        "template: '{text}'\nlabels: {yes: Yes, no: No}\ntrain: train.csv\ndev: train.csv\n"
        "test: [{path: train.csv, language: en}]\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerbridge.cli.main",
            "train",
            "--task",
            "custom",
            "--task-spec",
            str(spec),
            "-o",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "label 'maybe' is not in the label set" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    usage = subprocess.run(
        [sys.executable, "-m", "layerbridge.cli.main", "train", "--no-such-option"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    assert usage.returncode == 2 and "No such option" in usage.stderr and "Traceback" not in usage.stderr


def test_shipped_configs_parse():
    from pathlib import Path

    from layerbridge.tasks.custom import read_spec

    folder = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(folder.glob("*.yaml")):
        if path.name.startswith("custom-task"):
            assert read_spec(path)["labels"]["neg"] == "Negative"
        else:
            config = RunConfig.from_file(path)
            assert config.train.lr > 0, path


def _marker_examples(n: int = 40):
    import random

    from layerbridge.data.types import Example
    from tests.conftest import marker_example

    rng = random.Random(7)
    rows = [marker_example(rng) for _ in range(n)]
    return [Example({"text": text}, int(label == "no"), f"m/{i}") for i, (text, label) in enumerate(rows)]


def _count_generated(bridge, monkeypatch) -> list[int]:
    rows: list[int] = []
    original = bridge.generate_ids

    def counting(input_ids, *args, **kwargs):
        rows.append(input_ids.shape[0])
        return original(input_ids, *args, **kwargs)

    monkeypatch.setattr(bridge, "generate_ids", counting)
    return rows


def _check_both_equals_score_and_generate(bridge, examples, monkeypatch) -> list[int]:
    """Mode "both" = mode "score" (scores, predictions) + mode "generate" (texts, predictions)."""
    from layerbridge.evaluation.predict import predict_examples

    args = (bridge, "{text}", examples, ["yes", "no"])
    scored = predict_examples(*args, EvalConfig(mode="score", batch_size=8), progress=False)
    generated = predict_examples(*args, EvalConfig(mode="generate", batch_size=8), progress=False)
    rows = _count_generated(bridge, monkeypatch)
    both = predict_examples(*args, EvalConfig(mode="both", batch_size=8), progress=False)
    assert (both.pred == scored.pred).all() and (both.scores == scored.scores).all()
    assert (both.generated == generated.pred).all() and both.texts == generated.texts
    assert (both.layer_weight_sum == scored.layer_weight_sum).all()
    return rows


def test_both_metrics_from_one_scoring_pass_match_each_mode_alone(trained, monkeypatch):
    """A trained bridge's greedy continuation is mostly a label + EOS: those examples are not
    generated at all, and the generation metric is still exactly what generating gives."""
    bridge = api._load(trained / "best", "cpu", False)
    examples = _marker_examples()
    rows = _check_both_equals_score_and_generate(bridge, examples, monkeypatch)
    assert sum(rows) < len(examples) // 2  # most answers came from the scoring pass


def test_both_metrics_generate_where_no_label_is_the_greedy_continuation(make_bridge, monkeypatch):
    bridge = make_bridge("bert", "transformer-softmax")  # untrained: no label is ever greedy
    examples = _marker_examples(12)
    rows = _check_both_equals_score_and_generate(bridge, examples, monkeypatch)
    assert sum(rows) == len(examples)


def test_eval_both_reports_the_two_metrics_side_by_side(trained, tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", str(trained / "best"), "--limit", "20", "--mode", "both", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    en = results["languages"]["en"]
    assert en["accuracy"] >= 0.8 and 0 <= en["generation"]["accuracy"] <= 1
    assert en["generation"]["invalid"] == sum(
        p < 0 for p in json.loads((out / "predictions.json").read_text())["en"]["generated"]
    )
    assert results["averages"]["all"]["generation_accuracy"] == en["generation"]["accuracy"]
    assert "generation accuracy % [95% CI]" in (out / "results.md").read_text()
