"""The command line as a user drives it: exit codes, one-line errors, nothing half-written."""
import json
import subprocess
import sys

import pytest

from budgetvision.cli import main
from budgetvision.presets import PRESETS


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_json_lists_every_preset_within_budget(capsys):
    code, out, _ = run(capsys, "presets", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["name"] for r in rows} == set(PRESETS)
    for r in rows:
        assert {"name", "task", "dataset", "params", "param_budget", "step_budget", "source"} <= set(r)
        assert r["params"] < r["param_budget"]
        if r["paper_params"]:
            assert abs(r["params"] - r["paper_params"]) <= 0.01 * r["paper_params"]


def test_presets_table(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0 and "addnist-mobilenet" in out and "source" in out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_dry_runs(capsys, preset, tmp_path):
    code, out, err = run(capsys, "train", "--preset", preset, "--dry-run", "--out", str(tmp_path / "runs"))
    assert code == 0, err
    assert "within budget" in out and '"preset": "%s"' % preset in out
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_dry_run_on_other_dataset(capsys):
    code, out, err = run(capsys, "train", "--preset", "addnist-mobilenet", "--dataset", "mnist", "--seed", "7",
                         "--set", "optim.lr=1e-3", "train.batch_size=128", "--dry-run")
    assert code == 0, err
    cfg = json.loads(out[: out.rindex("}") + 1])
    assert cfg["data"]["name"] == "mnist" and cfg["train"]["seed"] == 7
    assert cfg["optim"]["lr"] == 1e-3 and cfg["train"]["batch_size"] == 128
    # --set given twice adds to the first (argparse's plain nargs="+" kept only the last, silently)
    code, out, err = run(capsys, "train", "--preset", "addnist-mobilenet", "--set", "optim.lr=2e-3",
                         "--set", "train.batch_size=64", "train.steps=50", "--dry-run")
    cfg = json.loads(out[: out.rindex("}") + 1])
    assert code == 0 and (cfg["optim"]["lr"], cfg["train"]["batch_size"], cfg["train"]["steps"]) == (2e-3, 64, 50)


@pytest.mark.parametrize("argv, words", [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--preset", "mnist-lenet", "--set", "optim.nope=1"], "unknown config key 'optim.nope'"),
    (["train", "--preset", "mnist-lenet", "--set", "train.batch_size=big"], "must be an integer"),
    (["train", "--preset", "mnist-lenet", "--set", "budget.max_steps=99999"], "cannot be overridden"),
    (["train", "--preset", "mnist-lenet", "--steps", "10001"], "over budget: 10,001 steps is 1 over"),
    (["train", "--preset", "mnist-lenet", "--steps", "-5"], "train.steps must be >= 1"),
    (["train", "--preset", "mnist-lenet", "--seeds", "0"], "--seeds must be >= 1"),
    (["train", "--preset", "mnist-lenet", "--dataset", "imagenet"], "imagenet"),
    (["train"], "needs --preset"),
    (["eval", "does/not/exist"], "no run folder"),
])
def test_bad_input_one_line_nonzero_nothing_written(capsys, tmp_path, argv, words):
    out_dir = tmp_path / "runs"
    code, _, err = run(capsys, *argv, "--out", str(out_dir)) if argv[0] == "train" else run(capsys, *argv)
    assert code == 2
    assert words in err and err.count("\n") == 1, err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unknown_command_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "budgetvision", "fly"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid choice" in proc.stderr


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "budgetvision", "presets"], capture_output=True, text=True)
    assert proc.returncode == 0 and "cifar100-dsc-transformer" in proc.stdout
