"""Bad input beyond the config: output folders, full disks, foreign or corrupt run files.
Each gets one line on stderr, exit 2, and leaves nothing half-written."""
import errno
import json

import pytest

import budgetvision.io as bio
from budgetvision.cli import main

TRAIN = ["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "4", "--no-progress",
         "--set", "train.checkpoint_every=2"]


def one_line_error(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


@pytest.fixture
def run_dir(tmp_path, capsys):
    assert main(TRAIN + ["--out", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    (run,) = (tmp_path / "runs").iterdir()
    return run


def test_output_folder_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    one_line_error(capsys, TRAIN + ["--out", str(tmp_path / "file" / "runs")], "cannot create output folder")


def test_full_disk_while_starting_leaves_nothing(tmp_path, capsys, monkeypatch):
    def full(fd, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bio.os, "fdopen", full)
    one_line_error(capsys, TRAIN + ["--out", str(tmp_path / "runs")], "No space left on device")
    assert list((tmp_path / "runs").iterdir()) == []


def test_full_disk_while_writing_results_keeps_the_good_files(run_dir, capsys, monkeypatch):
    ckpt = run_dir / "seed-0" / "checkpoint.pt"
    before = ckpt.read_bytes()
    (run_dir / "seed-0" / "results.json").unlink()  # the resumed seed must write its results again

    def full(fd, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bio.os, "fdopen", full)
    one_line_error(capsys, ["train", "--resume", str(run_dir), "--no-progress"], "No space left on device")
    assert ckpt.read_bytes() == before and not (run_dir / "seed-0" / "results.json").exists()
    assert not list(run_dir.rglob("*.tmp"))


def test_run_folder_from_another_version(run_dir, capsys):
    manifest = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**manifest, "format": "budgetvision-run-0"}))
    one_line_error(capsys, ["eval", str(run_dir)], "written by another version")


def test_not_a_run_folder(tmp_path, capsys):
    one_line_error(capsys, ["eval", str(tmp_path)], "missing file")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_corrupt_checkpoint_is_refused(run_dir, capsys, damage):
    ckpt = run_dir / "seed-0" / "checkpoint.pt"
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint at all")
    else:
        import torch
        torch.save({"weights": torch.zeros(3)}, ckpt)
    one_line_error(capsys, ["eval", str(run_dir)], "checkpoint")


def test_corrupt_config_in_run(run_dir, capsys):
    (run_dir / "config.json").write_text("{")
    one_line_error(capsys, ["eval", str(run_dir)], "corrupt config file")


def test_resume_of_a_finished_run_changes_nothing(run_dir, capsys):
    before = (run_dir / "results.json").read_text()
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert json.loads((run_dir / "results.json").read_text())["test_accuracy"] == json.loads(before)["test_accuracy"]


def test_gan_collapse_is_reported_as_a_warning(tmp_path, capsys):
    """A discriminator that wins outright (G frozen by a tiny lr) drives D's loss to ~0."""
    assert main(["train", "--preset", "mnist-dcgan", "--dataset", "digits", "--steps", "120", "--out", str(tmp_path),
                 "--no-progress", "--set", "optim.lr=1e-8", "optim.d_lr=2e-3", "train.log_every=5",
                 "train.batch_size=32", "train.sample_every=120"]) == 0
    assert "the generator has likely collapsed" in capsys.readouterr().err
    (run,) = tmp_path.iterdir()
    results = json.loads((run / "results.json").read_text())
    assert len(results["warnings"]) == 1 and "collapsed" in results["warnings"][0]
