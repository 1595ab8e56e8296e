"""Stopping cleanly and one process per run, with real training processes on the offline digits:
SIGTERM / SIGINT finish the step, checkpoint and exit 143 / 130 with the resume line; checkpoints
also come by wall time; a second process on a running run refuses; files keep the user's umask."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from budgetvision.io import load_checkpoint, write_json
from test_resume import env, kill_at, logged_steps, train_cmd

STEPS = 400   # long enough on one thread that a signal lands mid-run


def _start(out, *extra, steps=STEPS):
    cmd = train_cmd(out, "mnist-lenet", steps, ["train.batch_size=32", *extra], 1000)
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(out, step, proc, timeout=120):
    deadline = time.time() + timeout
    while proc.poll() is None and logged_steps(out) < step and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the signal"


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_checkpoints_the_step_and_resumes_to_the_uninterrupted_result(sig, code, tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(train_cmd(straight, "mnist-lenet", STEPS, ["train.batch_size=32"], 1000), env=env(),
                   check=True, capture_output=True)
    out = tmp_path / "stopped"
    proc = _start(out)
    _wait_for(out, 20, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    (run,) = out.iterdir()
    state = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    assert 20 <= state["step"] < STEPS                      # no periodic checkpoint was due before step 1000
    assert f"stopped by {sig.name} after step {state['step']} of {STEPS}" in err
    assert f"budgetvision train --resume {run}" in err and err.count("\n") == 1
    done = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"],
                          env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (ref,) = straight.iterdir()
    a = json.loads((ref / "seed-0" / "results.json").read_text())
    b = json.loads((run / "seed-0" / "results.json").read_text())
    assert {k: v for k, v in a.items() if k != "wall_seconds"} == {k: v for k, v in b.items() if k != "wall_seconds"}


def test_checkpoints_also_come_by_wall_time(tmp_path):
    kill_at(train_cmd(tmp_path, "mnist-lenet", STEPS, ["train.batch_size=32", "train.checkpoint_minutes=1e-6"], 1000),
            tmp_path, 30, STEPS)
    (run,) = tmp_path.iterdir()
    assert load_checkpoint(run / "seed-0" / "checkpoint.pt")["step"] >= 29   # every step, not every 1000


def test_a_second_process_on_a_running_run_refuses_and_the_log_stays_whole(tmp_path):
    steps = 2_000
    first = _start(tmp_path, steps=steps)
    _wait_for(tmp_path, 5, first)
    # Paused, not killed: it keeps its lock and cannot finish while the second process starts up (a
    # free-running first run of a tiny net has finished 2,000 steps before a busy machine imported torch).
    first.send_signal(signal.SIGSTOP)
    (run,) = tmp_path.iterdir()
    second = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"],
                            env=env(), capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run finished before the second process tried"
    assert second.returncode == 2
    assert f"is being trained by pid {first.pid}" in second.stderr and second.stderr.count("\n") == 1
    first.send_signal(signal.SIGKILL)   # the operating system releases the lock with the process (paused too)
    first.wait()
    done = subprocess.run([sys.executable, "-m", "budgetvision", "train", "--resume", str(run), "--no-progress"],
                          env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line)["step"] for line in (run / "seed-0" / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "train"]
    assert logged == sorted(set(logged)) and logged[-1] == steps   # no duplicated or out-of-order rows


def test_written_files_keep_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
