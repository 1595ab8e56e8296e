"""What evaluation reads of a split: the whole split, or a seeded draw stratified by class, never the
first n images. Folders on disk are stored class by class (train/a/..., train/b/...), so the first n
images of a folder data set hold a few classes."""
import json

import pytest
import torch
from torchvision.io import write_png

from budgetvision.cli import main
from budgetvision.data import load_splits
from budgetvision.data.datasets import EVAL_DRAW_SEED, draw_record, eval_draw, eval_subset


def class_sorted_folder(root, per_class: dict[str, int]) -> None:
    """Two grey 16x16 classes as a user stores them: class a dark (a level of 20-60), class b light
    (180-220), each image its level plus a little noise, one PNG per image, a folder per class and split."""
    g = torch.Generator().manual_seed(0)
    for split, n in per_class.items():
        for name, lo in {"a": 20, "b": 180}.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                level = lo + 40 * torch.rand((), generator=g)
                image = level + 8 * torch.randn(1, 16, 16, generator=g)
                write_png(image.round().clamp(0, 255).to(torch.uint8), str(folder / f"{i:04d}.png"))


def test_a_draw_holds_every_class_in_its_share():
    y = torch.repeat_interleave(torch.arange(10), torch.tensor([600] * 9 + [100]))   # sorted, one class small
    idx = eval_draw(y, 1_000)
    counts = torch.bincount(y[idx], minlength=10).tolist()
    # quotas 1000 * 600/5500 = 109.09 (nine classes) and 18.18, rounded by largest remainder to 1,000
    assert counts == [109] * 9 + [19], counts
    assert torch.equal(idx, torch.sort(idx).values) and len(set(idx.tolist())) == 1_000


def test_a_draw_is_the_same_every_time_and_seeded():
    y = torch.repeat_interleave(torch.arange(3), 50)
    assert torch.equal(eval_draw(y, 30), eval_draw(y, 30))
    assert not torch.equal(eval_draw(y, 30), eval_draw(y, 30, seed=EVAL_DRAW_SEED + 1))


def test_a_draw_that_covers_the_split_is_the_split_in_its_order():
    y = torch.tensor([2, 0, 1, 1, 0])
    assert eval_draw(y, 5).tolist() == [0, 1, 2, 3, 4] and eval_draw(y, 50).tolist() == [0, 1, 2, 3, 4]
    x = torch.arange(5).view(5, 1, 1, 1).to(torch.uint8)
    images, labels, _ = eval_subset((x, y), 9)
    assert images is x and labels is y
    assert draw_record("test", 5, 5)["draw"] == "the whole split"


def test_a_second_draw_can_avoid_the_first():
    y = torch.repeat_interleave(torch.arange(4), 100)
    first = eval_draw(y, 100)
    second = eval_draw(y, 100, exclude=first)
    assert not set(first.tolist()) & set(second.tolist())
    assert torch.bincount(y[second], minlength=4).tolist() == [25, 25, 25, 25]


@pytest.fixture(scope="module")
def two_class_runs(tmp_path_factory):
    """A 60-step LeNet judge and a 10-step PCA generator on a class-sorted two-class folder."""
    root = tmp_path_factory.mktemp("two-class")
    class_sorted_folder(root / "data", {"train": 600, "test": 300})
    data = f"folder:{root / 'data'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGETVISION_CACHE", str(root / "cache"))
        for preset, steps in (("mnist-lenet", 60), ("mnist-pca", 10)):
            assert main(["train", "--preset", preset, "--dataset", data, "--steps", str(steps),
                         "--out", str(root / preset), "--no-progress"]) == 0
    (judge,) = (root / "mnist-lenet").iterdir()
    (gen,) = (root / "mnist-pca").iterdir()
    return judge, gen


def test_judge_compares_samples_with_every_class_of_a_class_sorted_folder(two_class_runs):
    """The issue's reproduction: with the first 200 test images (all of class a) as the reference, the
    judge's precision read 0.495; class-b samples now find class-b test images beside them."""
    judge, gen = two_class_runs
    judge_results = json.loads((judge / "seed-0" / "results.json").read_text())
    assert judge_results["test_accuracy"] == 1.0    # dark against light: a judge that reads them right
    assert judge_results["train_accuracy_n"] == 1200 and judge_results["train_accuracy_draw"] == "the whole split"
    assert main(["eval", str(gen), "--judge", str(judge), "--prc", "--n", "200", "--no-progress"]) == 0
    out = json.loads((gen / "eval.json").read_text())
    assert (out["reference"], out["reference_images"], out["judge_n"]) == ("test", 600, 200)
    assert out["reference_draw"] == f"the whole split where n covers it, else stratified by class, seed {EVAL_DRAW_SEED}"
    # Measured: precision 0.93, recall 0.975, judge FID 0.03; against the first 200 test images
    # (class a only) they read 0.47, 0.97 and 1,598.
    assert out["judge_precision"] >= 0.9 and out["judge_recall"] >= 0.9, out
    assert out["judge_fid"] < 1.0, out
    assert out["judge_real_accuracy"] == 1.0 and out["judge_accuracy"] == 1.0
    assert out["judge_fid_real_floor_images"] == {"split": "train", "n": 200, "of": 1200,
                                                  "draw": f"stratified by class, seed {EVAL_DRAW_SEED}"}


def test_a_train_reference_scores_into_its_own_file(two_class_runs, capsys):
    """Choosing reads train (or val), reporting reads test: never one file, so a screen cannot
    overwrite a reported score, and no score against one reference is merged with another's."""
    judge, gen = two_class_runs
    assert main(["eval", str(gen), "--judge", str(judge), "--prc", "--n", "100", "--no-progress"]) == 0
    reported = (gen / "eval.json").read_bytes()
    assert main(["eval", str(gen), "--judge", str(judge), "--prc", "--n", "100", "--reference", "train",
                 "--no-progress"]) == 0
    assert "eval-train.json" in capsys.readouterr().out
    assert (gen / "eval.json").read_bytes() == reported
    chosen = json.loads((gen / "eval-train.json").read_text())
    assert (chosen["reference"], chosen["reference_images"], chosen["judge_n"]) == ("train", 1200, 100)
    assert chosen["judge_fid_real_floor_images"]["split"] == "train (disjoint from the reference)"
    assert chosen["judge_real_accuracy"] == 1.0 and chosen["judge_precision"] >= 0.9


def test_a_val_reference_needs_a_val_split(two_class_runs, capsys):
    judge, gen = two_class_runs
    before = sorted(p.name for p in gen.iterdir())
    assert main(["eval", str(gen), "--judge", str(judge), "--n", "50", "--reference", "val", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "has no val split here" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in gen.iterdir()) == before


def test_a_classifier_run_takes_no_reference(two_class_runs, capsys):
    judge, _ = two_class_runs
    assert main(["eval", str(judge), "--reference", "train"]) == 2
    assert "--reference is for generator runs" in capsys.readouterr().err


def test_a_classifier_is_read_with_the_statistics_it_trained_with(tmp_path, capsys):
    """Evaluated on other files (the official AddNIST sample, a folder that changed), a classifier
    still standardises its inputs with its own train split's mean and std, recorded in run.json."""
    from budgetvision.runs import open_seed

    class_sorted_folder(tmp_path / "data", {"train": 40, "test": 20})
    assert main(["train", "--preset", "mnist-lenet", "--dataset", f"folder:{tmp_path / 'data'}", "--steps", "5",
                 "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    manifest = json.loads((run / "run.json").read_text())
    trained = load_splits(f"folder:{tmp_path / 'data'}", val_fraction=0.0).spec
    assert manifest["input_mean"] == pytest.approx(list(trained.mean), abs=0) and len(manifest["input_std"]) == 1
    for png in (tmp_path / "data" / "train" / "a").iterdir():   # class a's train images become light
        png.write_bytes((tmp_path / "data" / "train" / "b" / png.name).read_bytes())
    now = load_splits(f"folder:{tmp_path / 'data'}", val_fraction=0.0).spec
    assert now.mean[0] > trained.mean[0] + 0.2
    opened = open_seed(run, device="cpu")
    assert (opened.spec.mean, opened.spec.std) == (trained.mean, trained.std)
