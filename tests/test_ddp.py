"""Data-parallel training under torchrun on this CPU (Gloo): two real processes train one run to the
weights one process reaches with the same global batch and write one run folder; a two-process run
killed with SIGKILL, or stopped with Ctrl-C, resumes under torchrun to the uninterrupted run's weights."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from budgetvision.data import BatchLoader, build_augment
from budgetvision.io import load_checkpoint
from test_resume import assert_same, logged_steps, train_cmd

REPO = Path(__file__).resolve().parents[1]

CASES = {  # name: (preset, steps, overrides), on the offline digits at global batch 32
    "lenet": ("mnist-lenet", 20, ["train.batch_size=32", "train.ema_decay=0.9"]),
    # BatchNorm synced over the processes (and the patch-whitening stem set from data on every rank).
    # Few steps at a small learning rate: this network's max-pools route gradients by which value is
    # largest, so one float rounding anywhere flips a route within ~6-20 steps and the runs part by
    # ~1e-3 (one process with channels_last off parts from itself by exactly as much); before that
    # the weights agree to ~1e-7, against ~1e-2 with BatchNorm left per process. Nesterov SGD, not
    # the preset's Muon: torch's Newton-Schulz iteration runs in bfloat16, whose rounding turns the
    # ~1e-7 summation-order differences into ~1e-4 (measured: 8e-5 after 5 steps). fp32 whatever the
    # preset says, for the same reason: bf16 autocast on a bf16-native CPU parted them by 8e-4 in 5 steps.
    "batchnorm": ("cifar100-speedrun-convnet", 5, ["train.batch_size=32", "data.augment.crop=0",
                                                   "data.augment.hflip=0", "data.augment.cutout=0",
                                                   "optim.name=sgd", "optim.lr=0.02",
                                                   "train.cpu_amp=false"]),
}


def env():
    # One thread per process (2 processes on 2 cores), and the worktree's package first.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(free_port()), "-m", "budgetvision", *args]


def train_args(out, preset, steps, overrides, checkpoint_every=1000) -> list[str]:
    return train_cmd(out, preset, steps, overrides, checkpoint_every)[3:]   # without "python -m budgetvision"


def final(out: Path) -> dict:
    (run,) = out.iterdir()
    return load_checkpoint(run / "seed-0" / "checkpoint.pt")


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_processes_train_what_one_process_trains(case, tmp_path):
    preset, steps, overrides = CASES[case]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(train_cmd(one, preset, steps, overrides, 1000), env=env(), check=True, capture_output=True)
    done = subprocess.run(torchrun(*train_args(two, preset, steps, overrides)), env=env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    a, b = final(one), final(two)
    assert a["step"] == b["step"] == steps
    # The same function of the same data, summed in another order: the gradient is the mean of two
    # half-batch means (all_reduce) instead of one mean over 32 images, and BatchNorm's moments are
    # combined from two halves. That moves float32 roundings (~1e-7 relative per step); 1e-5 absolute
    # on weights of scale ~0.1-1 leaves ~100x room over the measured 3e-8 (lenet, 20 Adam steps) and
    # 1.2e-7 (batchnorm) and stays far below a real difference (BatchNorm per process, a shard seen
    # twice or missed: >= 1e-3 after one step).
    for key in ("objective", "ema"):
        if a[key] is None:
            continue
        for name, tensor in a[key].items():
            torch.testing.assert_close(b[key][name], tensor, rtol=0, atol=1e-5, msg=lambda m: f"{key}.{name}: {m}")
    (run,) = two.iterdir()
    assert json.loads((run / "results.json").read_text())["world_size"] == 2
    assert json.loads((run / "seed-0" / "results.json").read_text())["world_size"] == 2
    assert b["world_size"] == 2 and len(b["other_ranks"]) == 1
    # One run folder, one log: rank 1 wrote nothing, and the logged rows are the global batch's.
    rows = [json.loads(line) for line in (run / "seed-0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, steps + 1))
    (ref,) = one.iterdir()
    ref_rows = [json.loads(line) for line in (ref / "seed-0" / "metrics.jsonl").read_text().splitlines()]
    for r, s in zip(rows, ref_rows):
        assert r["loss"] == pytest.approx(s["loss"], rel=1e-4) and r["accuracy"] == s["accuracy"]
    assert done.stdout.count("run folder:") == 1   # rank 0 speaks for the group


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:   # gone meanwhile
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_group_at(cmd, out, step, steps, timeout=180):
    """Start torchrun, SIGKILL it and both ranks (torchrun starts each rank in a session of its own)
    once the run has logged `step`, as a lost machine would, and prove the kill landed mid-run."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    while proc.poll() is None and logged_steps(out) < step and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the kill at step {step}"
    ranks = children(proc.pid)
    assert len(ranks) == 2, ranks
    for pgid in (proc.pid, *ranks):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(alive(r) for r in ranks) and time.time() < deadline:
        time.sleep(0.01)
    assert step <= logged_steps(out) < steps, "the kill did not land inside the run"
    assert not list(out.glob("*/seed-0/results.json")), "a killed run wrote its results"


def interrupt_group_at(cmd, out, step, timeout=180) -> str:
    """Start torchrun and, once the run has logged `step`, send SIGINT to torchrun and both ranks, as
    Ctrl-C in a terminal does (each rank then hears it twice: torchrun forwards it). Returns stderr."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + timeout
    while proc.poll() is None and logged_steps(out) < step and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before the signal"
    for pid in (proc.pid, *children(proc.pid)):
        os.kill(pid, signal.SIGINT)
    return proc.communicate(timeout=120)[1]


def test_a_killed_and_a_stopped_two_process_run_resume_under_torchrun_to_the_uninterrupted_weights(tmp_path):
    # Augmented, so each rank's own augmentation generator must come back from the checkpoint.
    preset, steps = "mnist-lenet", 60
    overrides = ["train.batch_size=32", "train.ema_decay=0.9", "data.augment.crop=2", "optim.schedule=onecycle"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    done = subprocess.run(torchrun(*train_args(straight, preset, steps, overrides, 10)), env=env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kill_group_at(torchrun(*train_args(stopped, preset, steps, overrides, 4)), stopped, 13, steps)
    (run,) = stopped.iterdir()
    # The last checkpoint before the kill (every 4 steps; a loaded machine may run a few steps
    # between the poll that saw step 13 and the kill): the resume replays from there.
    at = load_checkpoint(run / "seed-0" / "checkpoint.pt")["step"]
    assert at % 4 == 0 and 12 <= at <= logged_steps(stopped) < steps
    # Ctrl-C: every rank finishes the same step, rank 0 checkpoints it and says how to go on, once.
    err = interrupt_group_at(torchrun("train", "--resume", str(run), "--no-progress"), stopped, 25)
    at = load_checkpoint(run / "seed-0" / "checkpoint.pt")["step"]
    assert 25 <= at < steps and logged_steps(stopped) == at
    assert err.count(f"budgetvision: stopped by SIGINT after step {at} of {steps}; checkpoint written") == 1, err
    resumed = subprocess.run(torchrun("train", "--resume", str(run), "--no-progress"), env=env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = final(straight), final(stopped)
    assert a["step"] == b["step"] == steps
    # Two processes on both sides, the same reductions in the same order: bit-identical.
    for key in ("objective", "ema", "optimizers", "schedulers", "loader", "rng", "sums", "seen", "skipped",
                "world_size", "other_ranks"):
        assert_same(a[key], b[key], key)
    assert not torch.equal(a["loader"]["generator"], a["other_ranks"][0]["loader"]["generator"])
    assert len(list(stopped.iterdir())) == 1 and not list(run.rglob("*.tmp"))
    # A two-process checkpoint resumes only on two processes.
    (run / "seed-0" / "results.json").unlink()
    alone = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"],
                           env=env(), capture_output=True, text=True)
    assert alone.returncode == 2 and "was written by 2 training process(es)" in alone.stderr, alone.stderr


def test_a_batch_that_does_not_split_over_the_processes_is_refused_in_one_line(tmp_path):
    done = subprocess.run(torchrun(*train_args(tmp_path, "mnist-lenet", 4, ["train.batch_size=33"])), env=env(),
                          capture_output=True, text=True)
    assert done.returncode != 0
    line = "budgetvision: error: train.batch_size 33 is the global batch and does not split over 2 processes"
    assert done.stderr.count(line) == 1, done.stderr
    assert not list(tmp_path.iterdir()), "a refused run left a folder"


def test_the_loader_splits_each_global_batch_by_rank():
    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 4, 4).contiguous()
    y = torch.arange(40)
    kw = dict(mean=(0.0,), std=(1.0,), device="cpu", seed=3)
    one = BatchLoader(x, y, 8, **kw)
    ranks = [BatchLoader(x, y, 8, **kw, rank=r, world_size=2) for r in range(2)]
    for _ in range(12):   # past an epoch's end (40 // 8 = 5 batches)
        _, labels = next(one)
        shards = [next(r)[1] for r in ranks]
        assert torch.equal(torch.cat(shards), labels) and len(shards[0]) == len(shards[1]) == 4
    # Each rank augments with its own generator; rank 0 keeps the one-process one.
    augment = build_augment({"crop": 1})
    gens = [BatchLoader(x, y, 8, **kw, augment=augment, rank=r, world_size=2).generator.get_state() for r in range(2)]
    assert torch.equal(gens[0], BatchLoader(x, y, 8, **kw, augment=augment).generator.get_state())
    assert not torch.equal(gens[0], gens[1])
