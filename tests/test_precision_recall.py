"""Improved precision and recall (Kynkäänniemi et al. 2019): the pure function on point sets whose
answers are worked out by hand, and `eval --prc` on tiny runs trained offline on digits (the
fixtures of test_generative_eval, trained once more for this module)."""
import json

import pytest
import torch

from budgetvision import sample as bv_sample
from budgetvision.cli import main
from budgetvision.evaluation import fid as fidlib
from budgetvision.evaluation import judge as judgelib
from budgetvision.evaluation.judge import judge_fid
from budgetvision.data import splits_of
from budgetvision.data.datasets import eval_subset
from budgetvision.runs import evaluate_generator, open_judge, open_run
from budgetvision.evaluation.precision_recall import PRC_K, knn_radii, precision_recall
from test_generative_eval import digits, inception_weights, runs  # noqa: F401  (fixtures)


def points(*xs: float) -> torch.Tensor:
    """1-D points as (N, 1) features."""
    return torch.tensor(xs, dtype=torch.float64).unsqueeze(1)


def gaussian(n: int, d: int, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


# ---------------------------------------------------------------- the function, by hand

def test_radius_is_the_kth_nearest_other_point():
    x = points(0, 1, 3, 7)
    # distances from 0: 1, 3, 7; from 1: 1, 2, 6; from 3: 2, 3, 4; from 7: 4, 6, 7 (itself left out)
    assert knn_radii(x, 1).tolist() == [1, 1, 2, 4]
    assert knn_radii(x, 3).tolist() == [7, 6, 4, 7]
    assert knn_radii(x, 2, chunk=1).tolist() == [3, 2, 3, 6]


def test_identical_sets_give_one_and_one():
    x = gaussian(300, 16)
    assert precision_recall(x, x.clone()) == {"precision": 1.0, "recall": 1.0, "k": PRC_K}


def test_disjoint_clusters_give_zero_and_zero():
    assert precision_recall(gaussian(200, 8), gaussian(150, 8, shift=100.0, seed=1)) == \
        {"precision": 0.0, "recall": 0.0, "k": PRC_K}


def test_fake_covering_one_of_two_real_modes():
    # real: modes {0,1,2,3} and {100,...,103}; 3rd-nearest radii 3, 2, 2, 3 in each.
    # fake {0.5, ..., 3.5}: radii 3, 2, 2, 3. Every fake point lies in mode A's balls (precision 1);
    # mode A's real points lie in the fake balls, mode B's are 96 away (recall 4/8).
    real = points(0, 1, 2, 3, 100, 101, 102, 103)
    fake = points(0.5, 1.5, 2.5, 3.5)
    assert precision_recall(real, fake) == {"precision": 1.0, "recall": 0.5, "k": 3}
    # the roles swapped: now every real point is covered, but half the samples are off the manifold
    assert precision_recall(fake, real) == {"precision": 0.5, "recall": 1.0, "k": 3}


def test_fractional_answer_worked_out_by_hand():
    real = points(0, 1, 2, 3, 4)
    fake = points(3, 3.5, 4, 4.5, 10)
    # real radii (k=3): 0 -> {1,2,3}: 3; 1 -> {1,1,2}: 2; 2 -> {1,1,2}: 2; 3 -> 2; 4 -> 3
    #   balls [-3,3] [-1,3] [0,4] [1,5] [1,7]: fake 3, 3.5, 4, 4.5 inside, 10 outside -> precision 4/5
    # fake radii (k=3): 3 -> {.5,1,1.5}: 1.5; 3.5 -> {.5,.5,1}: 1; 4 -> 1; 4.5 -> 1.5; 10 -> {5.5,6,6.5}: 6.5
    #   balls [1.5,4.5] [2.5,4.5] [3,5] [3,6] [3.5,16.5]: real 2, 3, 4 inside, 0 and 1 outside -> recall 3/5
    assert knn_radii(real.double(), 3).tolist() == [3, 2, 2, 2, 3]
    assert knn_radii(fake.double(), 3).tolist() == [1.5, 1, 1, 1.5, 6.5]
    assert precision_recall(real, fake) == {"precision": 0.8, "recall": 0.6, "k": 3}
    # k = 1: real radii all 1, balls covering [-1,5]: fake 3, 3.5, 4, 4.5 in -> precision 4/5;
    #   fake radii .5 .5 .5 .5 5.5: real 3 and 4 lie on fake points, real 2 is .5 short of fake 3's
    #   ball [2.5,3.5], and 10's ball [4.5,15.5] reaches none -> recall 2/5
    assert precision_recall(real, fake, k=1) == {"precision": 0.8, "recall": 0.4, "k": 1}


def test_a_point_on_a_ball_boundary_is_inside():
    # k=1: real radii 2, 2; fake radii 6, 6. Fake 4 is exactly 2 from real 2: inside, as the paper's
    # code (dist <= radius) has it; a strict < would give precision 0.
    assert precision_recall(points(0, 2), points(4, 10), k=1) == {"precision": 0.5, "recall": 1.0, "k": 1}


def test_chunked_equals_unchunked_and_float32_equals_float64():
    real, fake = gaussian(300, 32), gaussian(250, 32, shift=0.3, seed=1)
    whole = precision_recall(real, fake, chunk=10_000)
    assert 0 < whole["precision"] < 1 and 0 < whole["recall"] < 1
    for chunk in (1, 7, 64, 299, 300):
        assert precision_recall(real, fake, chunk=chunk) == whole, chunk
    assert precision_recall(real.double(), fake.double()) == whole
    # swapping the sets swaps the two numbers
    swapped = precision_recall(fake, real)
    assert (swapped["precision"], swapped["recall"]) == (whole["recall"], whole["precision"])


def test_far_from_the_origin_gives_the_same_answer():
    # cdist's |a|^2 + |b|^2 - 2ab: at |a|^2 ~ 10^9 float32 round-off (~60) swamps distances of ~1,
    # float64's (~10^-7) does not
    real, fake = gaussian(200, 8).double(), gaussian(150, 8, shift=0.3, seed=1).double()
    assert precision_recall(real + 1e4, fake + 1e4) == precision_recall(real, fake)


def test_agrees_with_torch_fidelity():
    prc = pytest.importorskip("torch_fidelity.metric_prc")  # torch-fidelity >= 0.4
    real, fake = gaussian(400, 24), gaussian(300, 24, shift=0.25, seed=1) * 1.3
    ours = precision_recall(real, fake, k=5, chunk=128)
    # torch-fidelity's convention: features_1 generated, features_2 real
    theirs = prc.calculate_precision_recall_full(fake.double(), real.double(), neighborhood=5)
    # the same points counted inside (theirs is a float32 mean, hence not equality)
    assert (ours["precision"], ours["recall"]) == pytest.approx(theirs, abs=1e-6)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="more than 3"):
        precision_recall(gaussian(3, 4), gaussian(10, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        precision_recall(gaussian(10, 4), gaussian(10, 5))
    with pytest.raises(ValueError, match="positive"):
        precision_recall(gaussian(10, 4), gaussian(10, 4), chunk=0)


# ---------------------------------------------------------------- eval --prc

def test_evaluate_generator_prc_reuses_the_fid_features(runs, inception_weights, digits, monkeypatch):  # noqa: F811
    calls = {"inception": [], "judge": []}

    def counted(fn, key):
        def wrapper(*args, **kwargs):
            calls[key].append(fn(*args, **kwargs))
            return calls[key][-1]
        return wrapper
    monkeypatch.setattr(fidlib, "inception_features", counted(fidlib.inception_features, "inception"))
    monkeypatch.setattr("budgetvision.runs.evaluate.judge_features",
                        counted(judgelib.judge_features, "judge"))
    out = evaluate_generator(runs["generator"], fid=True, prc=True, n=8, judge=runs["judge"],
                             inception_weights=inception_weights, device="cpu", batch_size=4)
    assert out["prc_k"] == out["judge_prc_k"] == 3 and out["prc_n"] == out["prc_n_reference"] == 8
    # one Inception pass per image set (samples, test images) for FID and PRC together; one judge
    # pass for samples, test images and the train images of the floor
    assert {k: len(v) for k, v in calls.items()} == {"inception": 2, "judge": 3}
    # each precision / recall is that of these very passes, test images as the real set: swapped roles
    # or another pass would read otherwise (precision counts samples, recall test images, of 8)
    (fake_inception, _), (real_inception, _) = calls["inception"]
    fake_judge, real_judge, _ = calls["judge"]
    for prefix, real, fake in (("", real_inception, fake_inception), ("judge_", real_judge, fake_judge)):
        expected = precision_recall(real.double(), fake.double())
        assert (out[f"{prefix}precision"], out[f"{prefix}recall"]) == (expected["precision"], expected["recall"])
    judge = open_judge(runs["judge"], device="cpu")
    splits = splits_of(open_run(runs["generator"])[0].data)   # the generator's own splits give the floor
    floor = judge_fid(judge, eval_subset(splits.train, 8)[0], eval_subset(splits.test, 8)[0], device="cpu")
    # The shared features change nothing, up to the order of float32 sums: the floor above passes
    # batches of 250 where the evaluation passed 4, and oneDNN sums each reduction in another order.
    # Each of the judge's (LeNet-5's) four reductions, of 25, 150, 400 and 120 terms, may then round
    # otherwise: at most (25 + 150 + 400 + 120) u = 4.1e-5 relative per feature (u = 2^-24), which FID,
    # quadratic in the features, doubles. Measured: 1.4e-7 on an Intel Xeon, 0 on an AMD EPYC; another
    # image set moves an 8-image FID by tens of percent.
    assert out["judge_fid_real_floor"] == pytest.approx(floor, rel=2 * 695 * 2.0 ** -24)


def test_cli_eval_prc_with_a_judge_writes_judge_precision_recall(runs, tmp_path, monkeypatch, capsys):  # noqa: F811
    # No Inception weights anywhere and no download: --prc then measures in the judge's features only.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(fidlib, "INCEPTION_URL", f"http://127.0.0.1:9/{fidlib.INCEPTION_FILE}")
    gen, judge = str(runs["generator"]), str(runs["judge"])
    passes = []   # the judge's feature passes: samples, test images, train images (the floor)
    features = judgelib.judge_features
    monkeypatch.setattr("budgetvision.runs.evaluate.judge_features",
                        lambda *args, **kwargs: passes.append(features(*args, **kwargs)) or passes[-1])
    capsys.readouterr()
    with pytest.warns(UserWarning, match="judge's features only"):
        assert main(["eval", gen, "--prc", "--judge", judge, "--n", "60"]) == 0
    printed = capsys.readouterr().out
    assert "judge_precision: " in printed and "judge_recall: " in printed and "mnist-lenet" in printed
    result = json.loads((runs["generator"] / "eval.json").read_text())
    assert result["judge_prc_k"] == 3 and result["judge_n"] == 60
    # what the command wrote is precision_recall of the judge's features of seeds 0-59's samples
    # (drawn again here, image k from seed k alone) against those of its real images
    fake, real, _ = passes
    again = features(open_judge(runs["judge"], device="cpu"), bv_sample(runs["generator"], "0-59"), device="cpu")
    assert torch.equal(fake, again)
    expected = precision_recall(real, fake)
    assert (result["judge_precision"], result["judge_recall"]) == (expected["precision"], expected["recall"])
    assert not any(line.startswith(("precision:", "recall:")) for line in printed.splitlines())

    # a later judge call without --prc leaves no judge_precision of another n behind
    assert main(["eval", gen, "--judge", judge, "--n", "20"]) == 0
    assert "judge_precision" not in json.loads((runs["generator"] / "eval.json").read_text())

    # without a judge, --prc needs the Inception weights and says so exactly as --fid does
    capsys.readouterr()
    assert main(["eval", gen, "--fid"]) == 2
    fid_error = capsys.readouterr().err
    assert main(["eval", gen, "--prc"]) == 2
    assert capsys.readouterr().err == fid_error and "--inception-weights PATH" in fid_error
    assert fid_error.count("\n") == 1
    assert main(["eval", gen, "--prc", "--judge", judge, "--n", "3"]) == 2
    assert "--prc needs --n above 3" in capsys.readouterr().err
    assert main(["eval", judge, "--prc"]) == 2
    assert "--prc is for generator runs" in capsys.readouterr().err
