"""CPU threads shared between budgetvision processes: a process whose count nobody chose takes an
even share of the cores beside the others, and gives it back or takes more as they start and end."""
import os
import subprocess
import sys
import time

import pytest
import torch

import budgetvision.device as dev
from budgetvision.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("cores, others, expected", [
    (2, [], 2),                                                            # alone: torch's own count
    (2, [{"threads": 2, "auto": True}], 1),                                # two unchosen: half each
    (16, [{"threads": 4, "auto": True}] * 3, 4),                           # four unchosen
    (8, [{"threads": 2, "auto": False}, {"threads": 3, "auto": True}], 3),  # (8 - 2 chosen) / 2
    (2, [{"threads": 2, "auto": False}], 1),                               # nothing left: still one
    (4, [{"threads": 1, "auto": False}], 3),
])
def test_fair_share(cores, others, expected):
    assert dev.fair_share(cores, others) == expected


@pytest.fixture
def share(monkeypatch, tmp_path):
    """This process as one whose threads nobody chose, on a machine where torch alone takes 4, with a
    registry of its own (BUDGETVISION_CACHE); torch's count restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(dev, "_TORCH_OWN", 4)
    monkeypatch.setattr(dev, "_SHARE", None)
    monkeypatch.setattr(dev, "_REBALANCE_SECONDS", 0.0)
    yield tmp_path
    if dev._SHARE is not None:
        dev._SHARE.leave()
    torch.set_num_threads(before)


def _other_process(env: dict, threads: int | None) -> subprocess.Popen:
    """A second budgetvision process that has taken its threads and waits; it says when it has."""
    code = ("import sys, time; from budgetvision.device import set_threads; "
            f"set_threads({threads}); print('ready', flush=True); time.sleep(120)")
    env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_process_halves_the_first_and_its_end_gives_the_cores_back(share):
    env = dict(os.environ)
    assert dev.set_threads(None) == 4                   # alone
    other = _other_process(env, None)
    try:
        assert dev.rebalance_threads() == (4, 2)        # the other started: half each
        assert torch.get_num_threads() == 2
        assert dev.rebalance_threads() is None          # nothing changed since
    finally:
        other.kill()
        other.wait()
    assert dev.rebalance_threads() == (2, 4)            # it ended (its file is stale): all again
    assert not any(p.name == str(other.pid) for p in dev._share_folder().iterdir())


def test_a_chosen_count_is_kept_and_left_to_it(share):
    env = dict(os.environ)
    other = _other_process(env, 1)                      # --threads 1
    try:
        assert dev.set_threads(None) == 3               # what it leaves of torch's 4
        assert dev.set_threads(2) == 2                  # chosen here too: kept, and no longer re-shared
        assert dev.rebalance_threads() is None and torch.get_num_threads() == 2
    finally:
        other.kill()
        other.wait()


def test_omp_num_threads_is_a_choice(share, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert dev.set_threads(None) == 1 and not dev._SHARE.auto
    assert dev.rebalance_threads() is None


def test_a_training_re_shares_its_threads_as_it_goes_and_says_so(share, capsys):
    """The loop asks every step; a change is a status line. The other process starts before the run, so
    the run's first share is already 2 and the change it reports is the other's end, mid-run."""
    other = _other_process(dict(os.environ), None)
    calls = {"n": 0}
    real = dev.rebalance_threads

    def after_a_few_steps():
        calls["n"] += 1
        if calls["n"] == 3:
            other.kill()
            other.wait()
        return real()

    import budgetvision.loop as loop_mod
    try:
        loop_mod.rebalance_threads = after_a_few_steps
        assert main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "6", "--out",
                     str(share / "runs"), "--no-progress", "--set", "train.eval_every=6"]) == 0
    finally:
        loop_mod.rebalance_threads = real
        other.kill()
        other.wait()
    said = capsys.readouterr()
    assert "(2 threads)" in said.out                        # the start line: half of 4
    assert "step 3/6 CPU threads 2 -> 4" in said.err, said.err
