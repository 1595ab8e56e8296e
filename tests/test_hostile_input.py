"""Hostile but realistic input (issue 27): edited run files, planted links, crafted pickles, flags that
would be ignored. Each case gets one line on stderr and a non-zero exit, and leaves the run folder,
the cache and neighbouring files byte for byte as they were; a damaged log is repaired, saying what
was dropped."""
import json
import os
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import budgetvision.io as bio
from budgetvision.cli import main
from budgetvision.data import cache_dir, load_splits
from budgetvision.errors import DataError
from budgetvision.loop import _StopSignals

TRAIN = ["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "4", "--no-progress",
         "--set", "train.checkpoint_every=2"]
BIG = 2 ** 64


def one_line_error(capsys, argv, words, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def snapshot(*roots: Path) -> dict:
    """Every file (its bytes) and link (its target) under the roots."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            if p.is_symlink():
                out[p] = ("link", os.readlink(p))
            elif p.is_file():
                out[p] = p.read_bytes()
            elif p.is_dir():
                out[p] = "dir"
    return out


def train_run(out: Path, capsys, *extra) -> Path:
    assert main(TRAIN + ["--out", str(out)] + list(extra)) == 0
    capsys.readouterr()
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture
def run_dir(tmp_path, capsys):
    return train_run(tmp_path / "runs", capsys)


def unfinish(run: Path) -> None:
    """The run as a kill after its last checkpoint leaves it: training done, results not written."""
    (run / "seed-0" / "results.json").unlink()
    (run / "results.json").unlink()


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGETVISION_CACHE", str(tmp_path_factory.mktemp("gen-cache")))
        assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "10", "--set",
                     "train.batch_size=128", "--out", str(out), "--no-progress"]) == 0
    (run,) = out.iterdir()
    return run


# ---------------------------------------------------------------- 1, 4: image folders

def _png(path: Path, value: int, side: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), value, np.uint8)).save(path)


def _folder(root: Path) -> Path:
    for split, n in (("train", 4), ("test", 2)):
        for cls, value in (("cat", 10), ("dog", 200)):
            for i in range(n):
                _png(root / split / cls / f"{i}.png", value + i)
    return root


def _labels_by_value(s) -> dict:
    return {int(x[0, 0, 0]): int(y) for x, y in zip(*s.test)}


def test_swapped_class_folders_are_decoded_again(tmp_path):
    root = _folder(tmp_path / "pets")
    before = load_splits(f"folder:{root}", val_fraction=0.0)
    assert _labels_by_value(before) == {10: 0, 11: 0, 200: 1, 201: 1}
    for split in ("train", "test"):   # mv keeps every mtime, size and count
        (root / split / "cat").rename(root / split / "tmp")
        (root / split / "dog").rename(root / split / "cat")
        (root / split / "tmp").rename(root / split / "dog")
    after = load_splits(f"folder:{root}", val_fraction=0.0)
    assert _labels_by_value(after) == {10: 1, 11: 1, 200: 0, 201: 0}


def test_links_to_folders_inside_a_class_are_skipped_and_named(tmp_path):
    root = _folder(tmp_path / "pets")
    (root / "train" / "cat" / "loop").symlink_to(root / "train" / "cat")
    _png(tmp_path / "outside" / "0.png", 99)   # a link to / would scan the whole file system
    (root / "train" / "dog" / "outside").symlink_to(tmp_path / "outside")
    with pytest.warns(UserWarning, match="2 link"):
        s = load_splits(f"folder:{root}", val_fraction=0.0)
    assert len(s.train[1]) == 8 and s.train[1].tolist() == [0] * 4 + [1] * 4


# ---------------------------------------------------------------- 2, 10: links planted in a run

@pytest.mark.parametrize("planted", [".lock", "seed-0/metrics.jsonl"])
def test_a_link_planted_in_a_run_is_refused_and_its_target_kept(run_dir, tmp_path, capsys, planted):
    victim = tmp_path / "victim"
    victim.write_text("precious\n" * 100)
    unfinish(run_dir)
    (run_dir / planted).unlink(missing_ok=True)
    (run_dir / planted).symlink_to(victim)
    before = snapshot(run_dir, victim)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"], "symbolic link")
    assert snapshot(run_dir, victim) == before


def test_a_seed_folder_that_is_a_link_is_refused(run_dir, tmp_path, capsys):
    unfinish(run_dir)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run_dir / "seed-0", elsewhere)
    (run_dir / "seed-0").symlink_to(elsewhere)
    before = snapshot(run_dir, elsewhere)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"], "symbolic link")
    assert snapshot(run_dir, elsewhere) == before


def test_figures_are_written_without_a_fixed_temporary_name(run_dir, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    unfinish(run_dir)
    (run_dir / ".training.png.tmp.png").symlink_to(victim)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert victim.read_text() == "precious"
    assert (run_dir / "training.png").read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------- 3: pickles that run code

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _write_cifar100(root: Path, meta, protocol: int = 4) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        d = {"filenames": [f"{i}.png" for i in range(n)], "fine_labels": rng.integers(0, 100, n).tolist(),
             "coarse_labels": [0] * n, "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (folder / split).write_bytes(pickle.dumps(d, protocol=protocol))
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


NAMES = {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar100_pickles_of_every_protocol_still_load(tmp_path, protocol):
    _write_cifar100(tmp_path, NAMES, protocol)
    s = load_splits("cifar100", tmp_path, val_fraction=0.0, download=False)
    assert s.train[0].shape == (40, 3, 32, 32) and s.spec.class_names[3] == "c3"


@pytest.mark.parametrize("meta, words", [
    ("payload", "io.open, which a CIFAR file never holds"),
    ({"fine_label_names": 5}, "malformed"),
    ({"fine_label_names": [1, 2]}, "malformed"),
])
def test_a_crafted_cifar100_meta_is_refused_without_running_it(tmp_path, capsys, meta, words):
    marker = tmp_path / "ran"
    folder = _write_cifar100(tmp_path / "data", _Payload(marker) if meta == "payload" else meta)
    before = snapshot(folder)
    one_line_error(capsys, ["train", "--preset", "mnist-lenet", "--dataset", "cifar100", "--data-root",
                            str(tmp_path / "data"), "--out", str(tmp_path / "runs"), "--no-progress"], words)
    assert not marker.exists() and snapshot(folder) == before and not (tmp_path / "runs").exists()


def test_fid_inception_weights_are_loaded_once_and_handed_on_checked(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    from budgetvision.evaluation import fid

    handed = {}

    class Fake(torch.nn.Module):
        def __init__(self, name, features, feature_extractor_weights_path=None):
            super().__init__()
            handed["weights"] = feature_extractor_weights_path

    monkeypatch.setattr(tf_inception, "FeatureExtractorInceptionV3", Fake)
    state = {"w": torch.arange(3.0)}
    torch.save(state, tmp_path / "inception.pth")
    fid.load_inception(tmp_path / "inception.pth", "cpu")
    weights = handed["weights"]
    assert not isinstance(weights, (str, os.PathLike)), "torch-fidelity would unpickle the file again, unchecked"
    assert torch.equal(torch.load(weights, weights_only=True)["w"], state["w"])


# ---------------------------------------------------------------- 5: a damaged log

def _damage(log: Path, how: str) -> None:
    if how == "malformed":   # a row edited in place: the checkpoint's offset still falls between rows
        log.write_bytes(b"#" + log.read_bytes()[1:])
    elif how == "short":
        log.write_bytes(log.read_bytes()[:10])
    else:
        log.unlink()


@pytest.mark.parametrize("how, words", [("malformed", "1 damaged line"), ("short", "bytes short"),
                                        ("deleted", "empty or missing")])
def test_a_damaged_log_is_repaired_on_resume_saying_what_was_dropped(run_dir, capsys, how, words):
    unfinish(run_dir)
    log = run_dir / "seed-0" / "metrics.jsonl"
    _damage(log, how)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("budgetvision: warning:") == 1 and words in err and str(log) in err, err
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 4
    assert all(json.loads(line)["kind"] for line in log.read_text().splitlines())
    assert main(["report", str(run_dir)]) == 0


def test_a_log_damaged_after_the_checkpoint_finishes_the_run(run_dir, capsys):
    unfinish(run_dir)
    log = run_dir / "seed-0" / "metrics.jsonl"
    with open(log, "a") as f:
        f.write("{half a row")
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "results.json").exists()


# ---------------------------------------------------------------- 6: a checkpoint of another run

@pytest.mark.parametrize("other", [["--steps", "6"], []], ids=["other-config", "same-config"])
def test_a_checkpoint_copied_from_another_run_is_not_evaluated(run_dir, tmp_path, capsys, other):
    donor = train_run(tmp_path / "donor", capsys, *other)
    shutil.copy(donor / "seed-0" / "checkpoint.pt", run_dir / "seed-0" / "checkpoint.pt")
    before = snapshot(run_dir)
    one_line_error(capsys, ["eval", str(run_dir)], "another")
    assert snapshot(run_dir) == before


def test_a_checkpoint_copied_from_another_run_is_not_resumed(run_dir, tmp_path, capsys):
    donor = train_run(tmp_path / "donor", capsys)
    unfinish(run_dir)
    shutil.copy(donor / "seed-0" / "checkpoint.pt", run_dir / "seed-0" / "checkpoint.pt")
    before = snapshot(run_dir)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"], "another run")
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- 7, 8: what a resume takes from the user

def test_a_budget_edited_in_config_json_does_not_hold_on_resume(run_dir, capsys, monkeypatch):
    import budgetvision.runs.folder as folder

    monkeypatch.setattr(folder, "fit", lambda *a, **k: pytest.fail("trained past the budget"))
    unfinish(run_dir)
    shutil.rmtree(run_dir / "seed-0")
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["steps"], config["budget"]["max_steps"] = 10_001, 20_000
    (run_dir / "config.json").write_text(json.dumps(config))
    before = snapshot(run_dir)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"], "10,001 steps is 1 over")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("flags", [["--preset", "mnist-lenet"], ["--steps", "8"], ["--set", "optim.lr=1"],
                                   ["--seeds", "2"], ["--dry-run"], ["--seed", "3"], ["--dataset", "mnist"],
                                   ["--over-budget"]], ids=lambda f: f[0])
def test_flags_a_resume_would_ignore_are_refused(run_dir, capsys, flags):
    unfinish(run_dir)
    before = snapshot(run_dir)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress", *flags], flags[0])
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- 9: one line where a traceback was

@pytest.mark.parametrize("extra, words", [
    (["--seed", str(BIG)], "train.seed"),
    (["--seed", str(2 ** 63 - 1), "--seeds", "2"], "largest seed"),
    (["--set", "data.split_seed=" + str(BIG)], "data.split_seed"),
    (["--set", "train.tta_shift=16"], "train.tta_shift 16"),
    (["--set", "data.augment.crop=1000000"], "data.augment.crop 1000000"),
])
def test_out_of_range_settings_are_one_line_before_any_work(tmp_path, capsys, extra, words):
    one_line_error(capsys, TRAIN + ["--out", str(tmp_path / "runs"), *extra], words)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("extra, words", [(["--seeds", f"0-{BIG}"], "largest seed"),
                                          (["--seeds", str(BIG)], "largest seed"),
                                          (["--nrow", "-1"], "--nrow")])
def test_bad_sample_options_are_one_line(generator, tmp_path, capsys, extra, words):
    before = snapshot(generator)
    one_line_error(capsys, ["sample", str(generator), "--out", str(tmp_path / "s.png"), *extra], words)
    assert snapshot(generator) == before and not (tmp_path / "s.png").exists()


def test_neighbours_beyond_the_training_set_are_refused(generator, tmp_path, capsys, monkeypatch):
    import budgetvision.report.plots as plots

    monkeypatch.setattr(plots, "neighbours_figure", lambda *a, **k: pytest.fail("drew made-up neighbours"))
    before = snapshot(generator)
    one_line_error(capsys, ["neighbours", str(generator), "--out", str(tmp_path / "n.png"), "--k", "100000"],
                   "training images")
    assert snapshot(generator) == before and not (tmp_path / "n.png").exists()


@pytest.mark.parametrize("name, content", [("results.json", {}), ("results.json", []), ("eval.json", []),
                                           ("results.json", {"task": "classify"})])
def test_report_of_damaged_run_files_is_one_line(run_dir, capsys, name, content):
    (run_dir / name).write_text(json.dumps(content))
    before = snapshot(run_dir)
    one_line_error(capsys, ["report", str(run_dir)], f"corrupt file {run_dir / name}")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("seeds", [["../../escape"], "0", [], [0, 0], [-1], [True]])
def test_a_malformed_run_json_is_one_line_and_creates_nothing(run_dir, tmp_path, capsys, seeds):
    manifest = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**manifest, "seeds": seeds}))
    unfinish(run_dir)
    before = snapshot(tmp_path)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"], "run.json")
    one_line_error(capsys, ["eval", str(run_dir)], "run.json")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- 10: the smaller ones

@pytest.mark.parametrize("extra, words", [(["--study", "../../x"], "plain name"), (["--study", "/tmp/x"], "plain name"),
                                          (["--trials", "0"], "--trials")])
def test_sweep_names_and_counts_are_checked(tmp_path, capsys, monkeypatch, extra, words):
    import budgetvision.sweep as sweep

    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    out = tmp_path / "a" / "b" / "sweeps"
    one_line_error(capsys, ["sweep", "--preset", "mnist-lenet", "--dataset", "digits", "--out", str(out), *extra],
                   words)
    assert snapshot(tmp_path) == {}


def test_full_disk_names_the_file(run_dir, capsys, monkeypatch):
    unfinish(run_dir)

    real = os.fdopen

    def full(fd, mode, *args, **kwargs):   # the disk fills as the seed's results are written
        if ".results.json." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        return real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(bio.os, "fdopen", full)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"],
                   f"No space left on device ({run_dir / 'seed-0' / 'results.json'})")


def test_a_failing_tensorboard_writer_is_one_line_without_its_thread_traceback(tmp_path, capsys, monkeypatch):
    from tensorboard.summary.writer import record_writer

    def denied(self, data):
        raise PermissionError(13, "Permission denied", "events.out.tfevents")

    seen = []
    monkeypatch.setattr(record_writer.RecordWriter, "write", denied)
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.thread))
    one_line_error(capsys, TRAIN + ["--out", str(tmp_path)], "Permission denied")
    assert seen == [], "the writer thread's traceback was printed as well"


def test_a_second_ctrl_c_names_the_run_folder(tmp_path, capsys, monkeypatch):
    import budgetvision.api as api

    stop = _StopSignals(tmp_path / "00007-mnist-lenet")
    stop._handle(2, None)
    with pytest.raises(KeyboardInterrupt) as e:
        stop._handle(2, None)
    monkeypatch.setattr(api, "train", lambda *a, **k: (_ for _ in ()).throw(e.value))
    assert main(TRAIN + ["--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert f"--resume {tmp_path / '00007-mnist-lenet'}" in err and "RUN" not in err, err


def test_cache_is_left_alone_by_refused_input(run_dir, capsys):
    before = snapshot(cache_dir())
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--steps", "5"], "--steps")
    assert snapshot(cache_dir()) == before


def test_the_readme_states_the_opset_export_writes():
    """The usage page's Export section (moved there from the README) names the opset export writes."""
    from torch.onnx import _constants

    usage = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    assert f"{_constants.ONNX_DEFAULT_OPSET} with torch" in usage


def test_every_preset_budget_is_its_task_rule():
    from budgetvision.budget import RULES, budget_of
    from budgetvision.presets import PRESETS

    for p in PRESETS.values():
        assert p.config.budget == RULES[p.config.task] == budget_of(p.config), p.name
