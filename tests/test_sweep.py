"""Sweeps on Optuna with a real SQLite study: the search-space syntax, two worker processes sharing
one study, a grid, the report, and one-line refusals."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from budgetvision.cli import main
from budgetvision.errors import BudgetVisionError, ConfigError
from budgetvision.presets import get_preset
from budgetvision.sweep import Dimension, open_study, parse_space
from test_resume import env

COMMON = ["--preset", "mnist-lenet", "--dataset", "digits", "--steps", "20", "--no-progress",
          "--set", "train.eval_every=10", "train.log_every=10", "data.val_fraction=0.1"]


def test_search_space_syntax():
    cfg = get_preset("mnist-lenet").config
    dims = parse_space(["optim.lr=log:1e-4:1e-2", "train.label_smoothing=0:0.2", "train.batch_size=int:16:64",
                        "optim.name=adam|adamw|sgd"], cfg)
    assert dims == [Dimension("optim.lr", "log", 1e-4, 1e-2), Dimension("train.label_smoothing", "float", 0, 0.2),
                    Dimension("train.batch_size", "int", 16, 64), Dimension("optim.name", "choice",
                                                                             choices=("adam", "adamw", "sgd"))]


def test_choices_arrive_typed_as_their_config_fields():
    """Rzayev's grid: F, D in 1..3 and B in 32, 64, 128 are ints to Optuna, not strings."""
    dims = parse_space(["model.capacity=1|2|3", "model.depth=1|2|3", "train.batch_size=32|64|128",
                        "optim.lr=1e-3|1e-2", "train.amp=true|false", "optim.betas=0.5,0.999|0.9,0.999"],
                       get_preset("mnist-ccgan").config)
    capacity, depth, batch, lr, amp, betas = (d.choices for d in dims)
    assert capacity == depth == (1, 2, 3) and batch == (32, 64, 128)
    assert all(type(v) is int for v in capacity + depth + batch)
    assert lr == (1e-3, 1e-2) and all(type(v) is float for v in lr)
    assert amp == (True, False)
    assert betas == ("0.5,0.999", "0.9,0.999")   # a tuple is no Optuna categorical: as written
    with pytest.raises(ConfigError, match="model.capacity must be >= 1, got 0"):
        parse_space(["model.capacity=0|1"], get_preset("mnist-ccgan").config)


@pytest.mark.parametrize("item, words", [
    ("optim.learning_rate=log:1e-4:1e-2", "unknown config key"),
    ("optim.lr=log:0:1", "lo > 0"),
    ("optim.lr=1e-2:1e-4", "lo < hi"),
    ("train.label_smoothing=0:1.5", "label_smoothing must be in"),
    ("optim.name=adam|lion", "optim.name must be one of"),
    ("optim.lr", "malformed"),
    ("optim.lr=fast:slow", "must be numbers"),
])
def test_a_bad_space_fails_with_one_line_before_any_trial(item, words):
    with pytest.raises(ConfigError) as e:
        parse_space([item], get_preset("mnist-lenet").config)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_two_workers_share_one_study_and_the_report_reads_it(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'sweep.db'}"
    cmd = [sys.executable, "-m", "budgetvision", "sweep", *COMMON, "--space", "optim.lr=log:1e-4:1e-2",
           "--trials", "4", "--storage", db, "--study", "lr", "--out", str(tmp_path), "--pruner", "none"]
    workers = [subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    study = open_study(db, "lr", preset="mnist-lenet", create=False)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 4 <= len(complete) <= 5        # a worker may start one last trial as the other finishes the 4th
    runs = [t.user_attrs["run_dir"] for t in complete]
    assert len(set(runs)) == len(runs)    # no trial run twice, each its own run folder
    for t in complete:   # the validation curve is reported (for pruners); its last point is the score
        assert sorted(t.intermediate_values) == [10, 20] and t.intermediate_values[20] == t.value
    assert main(["sweep", "--report", "--study", "lr", "--storage", db, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    best = max(complete, key=lambda t: t.value)
    assert f"best: trial {best.number}, validation accuracy {100 * best.value:.2f} %" in out
    assert (tmp_path / "lr" / "history.png").stat().st_size > 0
    with pytest.raises(Exception, match="sweeps preset 'mnist-lenet', not 'mnist-pca'"):
        open_study(db, "lr", preset="mnist-pca", create=True)


def test_a_grid_runs_every_combination_once(tmp_path, capsys):
    assert main(["sweep", *COMMON, "--grid", "--space", "optim.name=adam|sgd", "train.batch_size=16|32",
                 "--trials", "4", "--out", str(tmp_path), "--study", "grid"]) == 0
    study = open_study(f"sqlite:///{(tmp_path / 'grid' / 'sweep.db').resolve()}", "grid", preset=None, create=False)
    combos = sorted((t.params["optim.name"], t.params["train.batch_size"]) for t in study.trials
                    if t.state.name in ("COMPLETE", "PRUNED"))
    assert combos == [("adam", 16), ("adam", 32), ("sgd", 16), ("sgd", 32)]


def _open_after(barrier, db):
    barrier.wait()
    open_study(db, "race", preset="mnist-lenet", create=True)


def test_workers_started_together_on_a_new_sqlite_file_all_open_it(tmp_path):
    """Optuna creates a new SQLite file's tables on first open; workers started at the same moment
    raced there and the loser failed on a UNIQUE constraint (seen in CI)."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    db = f"sqlite:///{tmp_path / 'race.db'}"
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_after, args=(barrier, db)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(open_study(db, "race", preset="mnist-lenet", create=False).trials) == 0


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A 60-step LeNet on digits: the judge of the generator sweeps below."""
    out = tmp_path_factory.mktemp("judge")
    assert main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "60", "--out", str(out),
                 "--no-progress"]) == 0
    (run,) = out.iterdir()
    return run


GAN = ["--preset", "mnist-ccgan", "--dataset", "digits", "--steps", "6", "--no-progress",
       "--set", "train.log_every=2", "train.sample_every=6", "train.checkpoint_every=6"]


def test_a_generator_grid_is_judged_and_its_over_budget_point_fails_saying_why(tmp_path, judge, capsys):
    """Rzayev's grid: F = 3 makes the CCGAN 2.75 M parameters on digits, over the 1 M budget: that
    point fails with the budget's reason and the grid goes on; F = 1 trains and is scored by the
    judge's accuracy on its samples; the report draws D's accuracy and the losses per combination."""
    assert main(["sweep", *GAN, "--grid", "--space", "model.capacity=1|3", "--trials", "2", "--judge", str(judge),
                 "--judge-n", "40", "--out", str(tmp_path), "--study", "fd"]) == 0
    out = capsys.readouterr().out
    study = open_study(f"sqlite:///{(tmp_path / 'fd' / 'sweep.db').resolve()}", "fd", preset=None, create=False)
    by_f = {t.params["model.capacity"]: t for t in study.trials}
    assert by_f[3].state.name == "FAIL" and "run_dir" not in by_f[3].user_attrs
    assert "2,751,394 parameters is 1,751,395 over the limit" in by_f[3].user_attrs["failed"]
    assert "over the limit" in out
    done = by_f[1]
    assert done.state.name == "COMPLETE" and study.user_attrs["metric"] == "judge accuracy (40 samples)"
    scored = json.loads((Path(done.user_attrs["run_dir"]) / "eval.json").read_text())
    assert scored["judge_n"] == 40 and scored["judge"].startswith("mnist-lenet")
    assert done.value == scored["judge_accuracy"] and done.user_attrs["judge_fid"] == scored["judge_fid"]
    last = done.user_attrs["last_logged"]
    assert last["step"] == 6 and {"d_accuracy", "d_loss", "loss"} <= set(last)
    assert main(["sweep", "--report", "--study", "fd", "--out", str(tmp_path)]) == 0
    report = capsys.readouterr().out
    assert f"best: trial {done.number}, judge accuracy (40 samples) {100 * done.value:.2f} %" in report
    for png in ("history.png", "trials.png", "scores.png"):
        assert (tmp_path / "fd" / png).stat().st_size > 0
    page = (tmp_path / "fd" / "report.html").read_text()
    assert "over the limit" in page and f'id="{Path(done.user_attrs["run_dir"]).name}"' in page
    assert page.count("data:image/png;base64") >= 3 + 1   # the study's three plots, the trial's training graph


def test_over_budget_points_run_marked_when_asked(tmp_path, judge, capsys):
    assert main(["sweep", *GAN, "--grid", "--space", "model.capacity=1|3", "--trials", "2", "--judge", str(judge),
                 "--judge-n", "10", "--over-budget", "--out", str(tmp_path), "--study", "over"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial")]
    assert len(lines) == 2 and ["OVER BUDGET" in line for line in lines].count(True) == 1
    study = open_study(f"sqlite:///{(tmp_path / 'over' / 'sweep.db').resolve()}", "over", preset=None, create=False)
    for trial in study.trials:
        over = trial.params["model.capacity"] == 3
        assert trial.state.name == "COMPLETE" and trial.user_attrs["over_budget"] is over
        assert json.loads((Path(trial.user_attrs["run_dir"]) / "results.json").read_text())["over_budget"] is over


@pytest.mark.parametrize("args, words", [
    (["--preset", "mnist-ccgan", "--dataset", "digits"], "pass --judge RUN"),
    (["--preset", "mnist-dcgan", "--dataset", "digits", "--judge", "x"], "is unconditional"),
    (["--preset", "mnist-lenet", "--dataset", "digits", "--judge", "x"], "scored by validation accuracy"),
])
def test_sweeps_say_how_a_trial_cannot_be_scored(tmp_path, args, words, capsys):
    assert main(["sweep", *args, "--space", "optim.lr=log:1e-4:1e-2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


@pytest.mark.parametrize("args, words", [
    (["--preset", "mnist-lenet"], "needs a validation split"),          # Rzayev trained on all of train
    (["--preset", "mnist-lenet", "--set", "data.val_fraction=0.1", "--pruner", "asha"], "--pruner must be one of"),
    (["--preset", "mnist-lenet", "--set", "data.val_fraction=0.1", "--storage", "nosuchdb://x"], "cannot open study"),
])
def test_a_refused_sweep_writes_nothing(tmp_path, args, words, capsys):
    """The study's folder (runs/sweeps/<study>/ and any parent it needed) appears only once the sweep
    is accepted: a refusal is one line and an untouched disk."""
    out = tmp_path / "runs" / "sweeps"
    assert main(["sweep", *args, "--dataset", "digits", "--space", "optim.lr=log:1e-4:1e-2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert list(tmp_path.iterdir()) == []


def test_a_worker_killed_mid_trial_leaves_its_trial_retried_and_the_study_finishes(tmp_path):
    """SIGKILL one worker while its trial trains: it stops beating, the next worker fails that trial
    after three missed beats (1 s each here) and runs its parameters again, and the study completes."""
    db = f"sqlite:///{tmp_path / 'sweep.db'}"
    cmd = [sys.executable, "-m", "budgetvision", "sweep", "--preset", "mnist-lenet", "--dataset", "digits",
           "--steps", "400", "--no-progress", "--set", "train.eval_every=200", "data.val_fraction=0.1",
           "--space", "optim.lr=log:1e-4:1e-2", "--trials", "2", "--storage", db, "--study", "kill",
           "--out", str(tmp_path), "--pruner", "none", "--heartbeat", "1"]
    victim = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:   # until its first trial has a run folder: it is training
        try:
            running = [t for t in open_study(db, "kill", preset=None, create=False).trials
                       if t.state.name == "RUNNING" and "run_dir" in t.user_attrs]
        except BudgetVisionError:   # the worker has not created the study yet
            running = []
        if running:
            break
        assert victim.poll() is None, "the worker ended before it was killed"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    (killed,) = running
    time.sleep(4)   # three beats of 1 s go by in silence
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    trials = open_study(db, "kill", preset=None, create=False).trials
    by_state = {s: [t for t in trials if t.state.name == s] for s in ("FAIL", "COMPLETE")}
    assert [t.number for t in by_state["FAIL"]] == [killed.number]
    assert len(by_state["COMPLETE"]) == 2
    retried = [t for t in by_state["COMPLETE"] if t.params == killed.params]
    assert len(retried) == 1 and retried[0].user_attrs["run_dir"] != killed.user_attrs["run_dir"]
