"""Runs that survive: a real training process killed with SIGKILL at random moments (checkpoint
writes included) and resumed ends exactly where the uninterrupted run ends."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from budgetvision.io import load_checkpoint

CASES = {  # name: (preset, steps, overrides) — tiny, on the offline digits
    "classifier": ("mnist-lenet", 60, ["train.batch_size=32", "train.ema_decay=0.9", "data.augment.crop=2",
                                      "data.augment.hflip=0.5", "optim.schedule=onecycle"]),
    "gan": ("cifar100-aw-sngan", 30, ["train.batch_size=16", "train.ema_decay=0.9"]),
    "diffusion": ("cifar100-vdiffusion", 24, ["train.batch_size=16", "objective.sample_steps=4",
                                             "train.ema_decay=0.9"]),
}


def train_cmd(out, preset, steps, overrides, checkpoint_every):
    return [sys.executable, "-m", "budgetvision", "train", "--preset", preset, "--dataset", "digits",
            "--steps", str(steps), "--out", str(out), "--no-progress", "--set", "train.log_every=1",
            "train.eval_every=20", "train.sample_every=30", f"train.checkpoint_every={checkpoint_every}",
            *overrides]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # identical kernels in every process


def logged_steps(run_root):
    rows = list(run_root.glob("*/seed-0/metrics.jsonl"))
    if not rows:
        return 0
    lines = [line for line in rows[0].read_text().splitlines() if line.endswith("}")]
    return json.loads(lines[-1])["step"] if lines else 0


def kill_at(cmd, run_root, step, steps, timeout=120):
    """Start `cmd`, SIGKILL it once it has logged `step`, and prove the kill landed mid-run."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and logged_steps(run_root) < step and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the kill at step {step}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert step <= logged_steps(run_root) < steps, "the kill did not land inside the run"
    assert not list(run_root.glob("*/seed-0/results.json")), "a killed run wrote its results"


def assert_same(a, b, where="objective"):
    """Tensors bit-identical, nested state (optimisers', the Sobol engine's, RNGs') equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigkill_and_resume_matches_uninterrupted(case, tmp_path):
    preset, steps, overrides = CASES[case]
    straight = tmp_path / "straight"
    subprocess.run(train_cmd(straight, preset, steps, overrides, 10), env=env(), check=True,
                   capture_output=True)
    killed = tmp_path / "killed"
    kills = sorted(random.Random(case).sample(range(3, steps - 3), 3))
    # A checkpoint every 2 steps makes kills likely to land inside a checkpoint write.
    kill_at(train_cmd(killed, preset, steps, overrides, 2), killed, kills[0], steps)
    (run,) = killed.iterdir()
    for step in kills[1:]:
        kill_at([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"], killed, step,
                steps)
    done = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"],
                          env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (ref,) = straight.iterdir()
    a = load_checkpoint(ref / "seed-0" / "checkpoint.pt")
    b = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    assert a["step"] == b["step"] == steps
    # networks, their EMA, every optimiser and scheduler, the data order and both RNG streams
    for key in ("objective", "ema", "optimizers", "schedulers", "loader", "rng", "sums", "seen", "skipped"):
        assert_same(a[key], b[key], key)
    ra = json.loads((ref / "seed-0" / "results.json").read_text())
    rb = json.loads((run / "seed-0" / "results.json").read_text())
    assert ra.keys() == rb.keys()
    for k in ra:
        if k not in ("wall_seconds", "samples"):
            assert ra[k] == rb[k], k
    if "samples" in ra:  # a generator's last grid: the same image, byte for byte
        assert (ref / "seed-0" / "samples").is_dir()
        final = f"step-{steps:06d}.png"
        assert (ref / "seed-0" / "samples" / final).read_bytes() == (run / "seed-0" / "samples" / final).read_bytes()
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"


def _as_old_layout(config: dict) -> dict:
    """A config as budgetvision wrote it before objective sections (and before train.tta_shift)."""
    old = {"task": "classify", **config}
    old["objective"] = {"gan_loss": "bce", "timesteps": 1000, "components": 64, **config["objective"]}
    old["train"] = {k: v for k, v in config["train"].items() if k != "tta_shift"}
    return old


def test_a_run_killed_under_an_older_config_layout_resumes(tmp_path):
    preset, steps, overrides = "mnist-lenet", 24, ["train.batch_size=32"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(train_cmd(straight, preset, steps, overrides, 10), env=env(), check=True, capture_output=True)
    kill_at(train_cmd(killed, preset, steps, overrides, 10), killed, 13, steps)
    (run,) = killed.iterdir()
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(_as_old_layout(config)))
    ckpt = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    assert ckpt["step"] == 10
    ckpt["config"] = _as_old_layout(ckpt["config"])
    torch.save(ckpt, run / "seed-0" / "checkpoint.pt")
    done = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"],
                          env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (ref,) = straight.iterdir()
    assert_same(load_checkpoint(ref / "seed-0" / "checkpoint.pt")["objective"],
                load_checkpoint(run / "seed-0" / "checkpoint.pt")["objective"])


def test_a_resume_reads_its_data_where_the_run_trained(shared_data, tmp_path):
    """A run trained with --data-root resumes without it (run.json records the root), even where
    $BUDGETVISION_DATA names a folder with no MNIST in it; --data-root still overrides."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "MNIST").symlink_to(shared_data / "MNIST", target_is_directory=True)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "budgetvision", "train", "--preset", "mnist-lenet", "--steps", "300",
           "--data-root", str(root), "--out", str(out), "--no-progress", "--set", "train.batch_size=32",
           "train.log_every=1", "train.eval_every=1000", "train.checkpoint_every=5"]
    kill_at(cmd, out, 10, 300)
    (run,) = out.iterdir()
    assert json.loads((run / "run.json").read_text())["data_root"] == str(root.resolve())
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    resume = [sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"]
    elsewhere = {**env(), "BUDGETVISION_DATA": str(empty)}
    # --data-root wins over the record: a file where a folder should be fails even with a network
    # (an empty folder would be downloaded into)
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    told = subprocess.run([*resume, "--data-root", str(not_a_folder)], env=elsewhere, capture_output=True, text=True)
    assert told.returncode != 0 and str(not_a_folder) in told.stderr
    done = subprocess.run(resume, env=elsewhere, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "seed-0" / "results.json").read_text())["steps"] == 300
