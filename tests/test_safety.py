"""Nothing lost, nothing run that the user did not ask for, one-line errors (exit 2) for bad input.

Each test names the case of the safety issue it covers. Where a command fails, the test also
checks that no file outside the run's own staging folders changed (:func:`snapshot`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from layerbridge import load_bridge, save_bridge
from layerbridge.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from layerbridge.cli.main import main
from layerbridge.errors import CheckpointError, ConfigError
from layerbridge.io import atomic_dir, recover_atomic_leftovers
from layerbridge.runtime import resolve_device
from layerbridge.training import state as ckpt
from tests.conftest import tiny_run_config
from tests.test_training import ROOT, _env


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    if code != 0:  # a failure is one error line on stderr (beside progress bars), never a traceback
        assert "Traceback" not in err and err.count("error:") == 1 and err.count("\n") <= 2, err
    return code, err


@pytest.fixture(scope="module")
def short_run(tiny_dir, marker_task, tmp_path_factory):
    """A finished tiny run with two training checkpoints, as a config file and folder."""
    root = tmp_path_factory.mktemp("safety")
    config = tiny_run_config(tiny_dir, marker_task, root / "run", max_steps=20, eval_every=10, save_every=10)
    config = config.replace(train=config.train.replace(keep_checkpoints=0))
    path = root / "run.yaml"
    path.write_text(config.to_yaml())
    assert main(["train", "-c", str(path)]) == 0
    return root / "run", path


def saved_bridge(bridge, marker_task: Path, folder: Path) -> Path:
    """``bridge`` saved with the marker task's metadata (so that predict/eval know the prompt)."""
    from layerbridge.config import TaskConfig
    from layerbridge.tasks import get_task

    task = get_task(TaskConfig(name="custom", spec=str(marker_task)))
    return save_bridge(bridge, folder, extra={"task": task.describe()})


def _copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run-copy"
    shutil.copytree(run, target)
    return target


# ------------------------------------------------------------------ 1. data loss
def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path, marker_task, tiny_dir, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "thesis.txt").write_text("x")
    before = snapshot(tmp_path)
    code, err = run_cli(["train", "--task", "nope", "--overwrite", "-o", folder], capsys)
    assert code == 2 and "unknown task 'nope'" in err and snapshot(tmp_path) == before
    config = tiny_run_config(tiny_dir, marker_task, folder, max_steps=2)
    (tmp_path / "c.yaml").write_text(config.to_yaml())
    before = snapshot(tmp_path)
    code, err = run_cli(["train", "-c", tmp_path / "c.yaml", "--overwrite"], capsys)
    assert code == 2 and "is not a layerbridge run; refusing to delete it" in err
    assert snapshot(tmp_path) == before


def test_overwrite_of_a_real_run_waits_for_valid_input(short_run, tmp_path, capsys):
    run = _copy_run(short_run[0], tmp_path)
    before = snapshot(tmp_path)
    args = ["train", "-c", run / "config.yaml", "-o", run, "--overwrite"]
    code, err = run_cli([*args, "--fusion", "mean"], capsys)
    assert code == 2 and "unknown fusion 'mean'" in err
    code, err = run_cli([*args, "--set", "task.spec=/no/such/spec.yaml"], capsys)
    assert code == 2 and "does not exist" in err
    assert snapshot(tmp_path) == before


def test_study_with_an_unknown_task_changes_nothing(tmp_path, capsys):
    export = tmp_path / "results"
    export.mkdir()
    (export / "README.md").write_text("committed results")
    before = snapshot(tmp_path)
    code, err = run_cli(
        ["study", "--tasks", "sinhala-nwes", "--out", tmp_path / "o", "--export", export], capsys
    )
    assert code == 2 and "unknown study task(s) sinhala-nwes" in err
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ 2. remote code
def test_a_checkpoint_cannot_switch_on_remote_code(make_bridge, marker_task, tmp_path, monkeypatch, capsys):
    folder = saved_bridge(make_bridge("bert", "last"), marker_task, tmp_path / "bridge")
    meta = json.loads((folder / CONFIG_NAME).read_text())
    meta["bridge"]["trust_remote_code"] = True  # a downloaded bridge asks for custom code
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    seen = []
    import layerbridge.checkpoint as checkpoint

    real = checkpoint.build_bridge

    def spy(config, **kwargs):
        seen.append(config.trust_remote_code)
        return real(config, **kwargs)

    monkeypatch.setattr(checkpoint, "build_bridge", spy)
    load_bridge(folder, device="cpu")
    load_bridge(folder, device="cpu", trust_remote_code=True)  # the caller's own decision
    assert seen == [False, True]
    assert main(["predict", str(folder), "w1 w2"]) == 0 and seen[-1] is False
    assert main(["predict", str(folder), "w1 w2", "--trust-remote-code"]) == 0 and seen[-1] is True
    capsys.readouterr()


def test_a_config_file_alone_cannot_switch_on_remote_code(tmp_path, tiny_dir, marker_task, capsys):
    config = tiny_run_config(tiny_dir, marker_task, tmp_path / "run", max_steps=2)
    config = config.replace(bridge=config.bridge.replace(trust_remote_code=True))
    (tmp_path / "c.yaml").write_text(config.to_yaml())
    code, err = run_cli(["train", "-c", tmp_path / "c.yaml"], capsys)
    assert code == 2 and "pass --trust-remote-code" in err and not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 3. silent corruption
def test_flipped_bytes_in_the_weights_are_refused(make_bridge, marker_task, tmp_path, capsys):
    folder = saved_bridge(make_bridge("bert", "transformer-softmax"), marker_task, tmp_path / "bridge")
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_bridge(folder, device="cpu")
    code, err = run_cli(["predict", folder, "w1"], capsys)
    assert code == 2 and "corrupt or was modified" in err


def test_weights_and_json_have_the_same_permissions(make_bridge, tmp_path):
    folder = save_bridge(make_bridge("bert", "last"), tmp_path / "bridge")
    assert (folder / WEIGHTS_NAME).stat().st_mode & 0o777 == (folder / CONFIG_NAME).stat().st_mode & 0o777


# ------------------------------------------------------------------ 4. wrong results without an error
@pytest.mark.parametrize("steps", ["0", "-5"])
def test_non_positive_max_steps_is_refused(steps, capsys):
    code, err = run_cli(["train", "--max-steps", steps, "-o", "/nonexistent/never"], capsys)
    assert code == 2 and "train.max_steps must be at least 1" in err


# ------------------------------------------------------------------ 5. one line, exit 2
def test_invalid_utf8_in_a_data_file(tmp_path, capsys):
    (tmp_path / "train.csv").write_bytes(b"text,label\nhello \xff\xfe,yes\n")
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "template: '{text}'\nlabels: {yes: Yes, no: No}\ntrain: train.csv\ndev: train.csv\ntest: train.csv\n"
    )
    code, err = run_cli(["train", "--task-spec", spec, "-o", tmp_path / "run"], capsys)
    assert code == 2 and "train.csv: not valid UTF-8" in err and not (tmp_path / "run").exists()


def test_bridge_config_that_is_not_an_object(make_bridge, tmp_path, capsys):
    folder = save_bridge(make_bridge("bert", "last"), tmp_path / "bridge")
    (folder / CONFIG_NAME).write_text("[1, 2]")
    code, err = run_cli(["eval", folder], capsys)
    assert code == 2 and "must hold a JSON object" in err


def test_unwritable_output_is_reported_before_any_work(short_run, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    import layerbridge.api as api

    monkeypatch.setattr(api, "load_bridge", lambda *a, **k: pytest.fail("models loaded before the check"))
    code, err = run_cli(["eval", short_run[0] / "best", "--out", blocker / "eval"], capsys)
    assert code == 2 and "cannot write to" in err


def test_a_full_disk_while_saving_leaves_nothing_half_written(
    make_bridge, tmp_path, tiny_dir, marker_task, capsys, monkeypatch
):
    folder = save_bridge(make_bridge("bert", "last"), tmp_path / "bridge")
    before = snapshot(folder)
    import layerbridge.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(OSError, match="No space left"):
        save_bridge(make_bridge("bert", "last", seed=3), folder)
    assert snapshot(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["bridge"]
    config = tiny_run_config(
        tiny_dir, marker_task, tmp_path / "run", max_steps=10, eval_every=0, save_every=5
    )
    (tmp_path / "c.yaml").write_text(config.to_yaml())
    code, err = run_cli(["train", "-c", tmp_path / "c.yaml"], capsys)
    assert code == 2 and "No space left on device" in err
    run = tmp_path / "run"
    assert not list(run.rglob(".*.tmp")) and not list(run.rglob(".step-*")) and not (run / "best").exists()


def test_device_that_does_not_exist():
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device|unsupported device"):
        resolve_device("tpu")


def test_max_length_beyond_the_encoders_positions(make_bridge):
    with pytest.raises(ConfigError, match="longer than the encoder's 256 positions"):
        make_bridge("bert", "last", max_length=300)


def test_corrupt_trainer_state_falls_back_to_the_previous_checkpoint(short_run, tmp_path, capsys):
    run = _copy_run(short_run[0], tmp_path)
    first = run / "checkpoints" / "step-000010"
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == ["step-000010"]
    # a corrupt newest checkpoint next to an intact older one: resume from the older one
    bad = run / "checkpoints" / "step-000015"
    shutil.copytree(first, bad)
    (bad / ckpt.STATE_NAME).write_text('{"loop": {"step": 15, "ep')
    code, err = run_cli(["train", "-c", run / "config.yaml", "--resume"], capsys)
    assert code == 0, err
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "end" and log[-1]["steps"] == 20
    # every checkpoint corrupt: a one-line error, not a silent restart
    for folder in ckpt.checkpoint_dirs(run):
        (folder / ckpt.STATE_NAME).write_text("{")
    before = snapshot(run)
    code, err = run_cli(["train", "-c", run / "config.yaml", "--resume"], capsys)
    assert code == 2 and "no intact checkpoint" in err
    assert {k: v for k, v in snapshot(run).items() if not k.startswith(".")} == before


# ------------------------------------------------------------------ 6. smaller cases
def test_compare_checks_every_fusion_before_training(tmp_path, marker_task, capsys):
    code, err = run_cli(
        ["compare", "--task", "custom", "--set", f"task.spec={marker_task}", "--fusions", "last,typo",
         "--out", tmp_path / "cmp"],
        capsys,
    )  # fmt: skip
    assert code == 2 and "unknown fusion 'typo'" in err and not (tmp_path / "cmp").exists()


def test_a_moved_run_resumes_where_it_is(short_run, tmp_path, capsys):
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(short_run[0], moved)
    (moved / "summary.json").unlink()
    code, err = run_cli(["train", "-c", moved / "config.yaml", "--resume"], capsys)
    assert code == 0, err
    assert (moved / "summary.json").is_file() and not (short_run[0] / "checkpoints" / "step-000020").exists()
    relative = os.path.relpath(moved, Path.cwd())  # the same run, spelled relative
    code, err = run_cli(["train", "-c", moved / "config.yaml", "--resume", "-o", relative], capsys)
    assert code == 0, err


def test_custom_task_bridges_record_an_absolute_spec(short_run):
    meta = json.loads((short_run[0] / "best" / CONFIG_NAME).read_text())
    assert Path(meta["extra"]["task"]["spec"]).is_absolute()


def test_leftovers_of_a_kill_inside_a_save_are_recovered(tmp_path):
    (tmp_path / ".best.abc.tmp").mkdir()  # killed while writing the new copy
    (tmp_path / ".best.abc.tmp" / "bridge.safetensors").write_bytes(b"half")
    old = tmp_path / ".best.xyz.old"
    (old / "0").mkdir(parents=True)  # killed between "move the old copy aside" and "rename the new in"
    (old / "0" / "bridge.safetensors").write_bytes(b"previous")
    recover_atomic_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    assert (tmp_path / "best" / "bridge.safetensors").read_bytes() == b"previous"


def test_atomic_dir_survives_a_concurrent_writer(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "mine").write_text("1")
        target.mkdir()  # another process finished first
        (target / "theirs").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["mine"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_arguments_are_checked_before_models_load(short_run, capsys, monkeypatch):
    import layerbridge.api as api

    monkeypatch.setattr(api, "load_bridge", lambda *a, **k: pytest.fail("models loaded before the check"))
    code, err = run_cli(["eval", short_run[0] / "best", "--languages", "xx"], capsys)
    assert code == 2 and "unknown language 'xx'" in err
    code, err = run_cli(["predict", short_run[0] / "best", "--input-format", "json", "{bad"], capsys)
    assert code == 2 and "not valid JSON" in err


def test_closed_stdin_and_invalid_utf8_on_stdin(short_run):
    bridge = short_run[0] / "best"
    cmd = f"{sys.executable} -m layerbridge.cli.main predict {bridge} <&-"
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert done.returncode == 2 and "standard input is closed" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "layerbridge.cli.main", "predict", str(bridge)],
        input=b"ok line\nbad \xff line\n",
        capture_output=True,
        env=_env(),
        cwd=ROOT,
    )
    assert done.returncode == 2 and b"standard input, line 2: not valid UTF-8" in done.stderr
