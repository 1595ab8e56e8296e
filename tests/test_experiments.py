"""Rzayev's synthetic-data experiment: mixes keep their size and class proportions."""
import json

import numpy as np
import pytest
import torch

from budgetvision.cli import main
from budgetvision.data import load_splits
from budgetvision.experiments.synthetic_mix import build_mix, class_quotas, mix_plan
from budgetvision.runs import evaluate_generator


def test_class_quotas_exact_and_proportional():
    q = class_quotas(np.array([50, 30, 20]), 7)
    assert q.sum() == 7 and list(q) == [4, 2, 1]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_mix_keeps_size_and_class_proportions(fraction):
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    x = torch.arange(100, dtype=torch.uint8)[:, None, None, None].expand(100, 1, 2, 2).contiguous()
    real, fake = mix_plan(y, 50, fraction, {})
    assert (real + fake).tolist() == [30, 15, 5]
    assert real.sum() == round(50 * fraction) or abs(real.sum() - 50 * fraction) <= 3
    generated = {c: torch.full((30, 1, 2, 2), 200 + c, dtype=torch.uint8) for c in range(3)}
    mx, my = build_mix(x, y, generated, real, fake, seed=0)
    assert len(mx) == len(my) == 50 and torch.bincount(my).tolist() == [30, 15, 5]
    is_fake = mx[:, 0, 0, 0] >= 200
    assert int(is_fake.sum()) == int(fake.sum())
    assert torch.equal(mx[is_fake][:, 0, 0, 0].long() - 200, my[is_fake])  # generated images keep their class
    real_vals = mx[~is_fake][:, 0, 0, 0].long()
    assert torch.equal(y[real_vals], my[~is_fake])  # real images keep their labels


def test_class_override():
    y = torch.tensor([0] * 50 + [1] * 50)
    real, fake = mix_plan(y, 100, 1.0, {0: 0.4})
    assert real.tolist() == [20, 50] and fake.tolist() == [30, 0]


def test_synthetic_mix_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "6", "--out", str(runs),
                 "--no-progress", "--set", "train.batch_size=128"]) == 0
    (gen,) = runs.iterdir()
    out = tmp_path / "mix"
    assert main(["experiment", "synthetic-mix", "--generator", str(gen), "--real-fractions", "0,1",
                 "--class-override", "0:0.5", "--total", "300", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "synthetic-mix.json").read_text())
    # Rzayev (4.2): "A learning rate of 0.001 achieved the best results", "Batch size 32 gave
    # better results"; five epochs of each 300-image mix at 32 (10 batches an epoch, the last partial).
    assert summary["lr"] == 1e-3 and summary["batch_size"] == 32 and summary["steps"] == 5 * 10
    assert [r["real_fraction"] for r in summary["rows"]] == [0.0, 1.0]
    test_counts = torch.bincount(load_splits("digits").test[1], minlength=10).double()
    for r in summary["rows"]:
        assert r["real_images"] + r["generated_images"] == 300
        # the test accuracy counts the test images right, class by class as the per-class accuracies
        # (float32 ratios) say: whole numbers of images that add up
        correct = torch.tensor(r["per_class_accuracy"], dtype=torch.float64) * test_counts
        assert torch.allclose(correct, correct.round(), atol=1e-4)
        assert r["test_accuracy"] * test_counts.sum() == pytest.approx(float(correct.round().sum()), abs=1e-9)
    assert summary["rows"][1]["generated_images"] > 0  # class 0 stays half generated at fraction 1
    assert (out / "synthetic-mix.png").stat().st_size > 0 and (out / "real-0-confusion.png").exists()


def test_synthetic_mix_bad_input(tmp_path, capsys):
    assert main(["experiment", "synthetic-mix", "--generator", str(tmp_path), "--real-fractions", "0,2"]) == 2
    assert "--real-fractions must be numbers in [0, 1]" in capsys.readouterr().err
    assert main(["experiment", "synthetic-mix", "--generator", str(tmp_path), "--class-override", "a"]) == 2
    assert "bad --class-override" in capsys.readouterr().err


def test_pca_vs_gan_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--dataset", "digits", "--out", str(runs), "--no-progress"]
    assert main(["train", "--preset", "mnist-lenet", "--steps", "150", *common]) == 0
    assert main(["train", "--preset", "mnist-ccgan", "--steps", "5", *common, "--set", "train.batch_size=32",
                 "train.sample_every=5"]) == 0
    judge, gan = sorted(runs.iterdir())
    out = tmp_path / "pca"
    assert main(["experiment", "pca-vs-gan", "--gan", str(gan), "--judge", str(judge), "--components", "1,4,256",
                 "--n", "200", "--out", str(out)]) == 0
    summary = json.loads((out / "pca-vs-gan.json").read_text())
    assert summary["mode"] == "both"
    rows = {r["components"]: r for r in summary["pca"]}
    assert rows[256]["judge_accuracy"] > 0.8
    # Reconstruction (Rzayev's other reading): the first 200 test images through k components of
    # their class. All 256 pixels' components give the images back: the judge's own real accuracy.
    rebuilt = {r["components"]: r for r in summary["pca_reconstruct"]}
    assert sorted(rebuilt) == [1, 4, 256]
    real = json.loads((judge / "seed-0" / "results.json").read_text())
    assert rebuilt[256]["judge_fid"] < 1e-3 < rebuilt[1]["judge_fid"]
    assert abs(rebuilt[256]["judge_accuracy"] - real["test_accuracy"]) < 0.05  # 200 of its 450 test images
    # One component is little more than each class mean: recognisable, but far from the real
    # spread of digits, which the judge-feature FID sees.
    assert rows[256]["judge_fid"] < rows[1]["judge_fid"]
    # the GAN's row is what `eval --judge` reads of the same seeds 0-199 (labels seed % 10)
    assert summary["judge"].startswith("mnist-lenet")
    scored = evaluate_generator(gan, judge=judge, n=200, device="cpu")
    assert summary["gan_scores"] == {"judge_accuracy": scored["judge_accuracy"], "judge_fid": scored["judge_fid"]}
    assert (out / "pca-vs-gan.png").stat().st_size > 0
    assert main(["experiment", "pca-vs-gan", "--gan", str(gan), "--judge", str(judge), "--components", "1,256",
                 "--n", "100", "--mode", "reconstruct", "--out", str(tmp_path / "rec")]) == 0
    only = json.loads((tmp_path / "rec" / "pca-vs-gan.json").read_text())
    assert only["pca"] == [] and [r["components"] for r in only["pca_reconstruct"]] == [1, 256]
    assert main(["experiment", "pca-vs-gan", "--gan", str(gan), "--judge", str(gan)]) == 2
    assert "a judge must be a classifier run" in capsys.readouterr().err
