"""Generator evaluation: Fréchet distance, KID, IS, the classifier judge, LPIPS neighbours and the
run-level `evaluate_generator`, on real runs trained offline on scikit-learn's digits.

The FID Inception and the LPIPS AlexNet weights cannot be downloaded here, so the tests save
randomly initialised networks of the same architectures in the files' own formats and drive the
whole loading and scoring path with them; the numbers mean nothing, the code path is the real one."""
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from budgetvision.cli import main
from budgetvision.data import DataSpec, load_splits
from budgetvision.errors import BudgetVisionError
from budgetvision.evaluation import fid as fidlib
from budgetvision.evaluation import perceptual
from budgetvision.evaluation.judge import check_judge_fits, judge_features, judge_fid, judge_scores
from budgetvision.runs import evaluate_generator, fid_reference, open_judge, to_uint8
from budgetvision.evaluation.perceptual import find_lpips_weights, load_lpips, lpips_distance, nearest_lpips


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A ~100-step LeNet judge and a 10-step PCA generator, both on digits, trained through the CLI."""
    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGETVISION_CACHE", str(tmp_path_factory.mktemp("train-cache")))
        assert main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "100",
                     "--out", str(out / "judge"), "--no-progress"]) == 0
        assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "10",
                     "--set", "train.batch_size=128", "--out", str(out / "gen"), "--no-progress"]) == 0
    (judge,) = (out / "judge").iterdir()
    (gen,) = (out / "gen").iterdir()
    return {"judge": judge, "generator": gen}


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    """torch-fidelity's FID Inception, randomly initialised, saved as its weights file is."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the random initialisation
            return None

    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "empty.pth")
    torch.manual_seed(0)
    net = Unloaded("random", ["2048"], feature_extractor_weights_path=str(folder / "empty.pth"))
    for m in net.modules():  # variance-preserving, so deep features neither vanish nor blow up
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = folder / fidlib.INCEPTION_FILE
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory) -> Path:
    """torchvision's AlexNet convolutional weights (its `features.*` keys), randomly initialised."""
    import torchvision

    torch.manual_seed(0)
    alexnet = torchvision.models.alexnet(weights=None)
    path = tmp_path_factory.mktemp("alexnet") / "alexnet-owt-7be5be79.pth"
    torch.save({f"features.{k}": v for k, v in alexnet.features.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


def noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x.float() + sigma * torch.randn(x.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# ---------------------------------------------------------------- Fréchet distance, KID, IS

def _scipy_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_on_known_gaussians():
    rng = np.random.default_rng(0)
    for d in (1, 3, 16):
        a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        assert fidlib.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_fid(mu1, s1, mu2, s2), rel=1e-9)
        assert fidlib.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9 * np.trace(s1))
    # Commuting (diagonal) covariances, one of them singular: the closed form sum (sqrt a - sqrt b)^2.
    va, vb = np.array([4.0, 1.0, 0.0, 9.0]), np.array([1.0, 1.0, 2.0, 0.0])
    mu = np.array([1.0, 0.0, 0.0, 0.0])
    expected = 1.0 + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum()
    assert fidlib.frechet_distance(mu, np.diag(va), np.zeros(4), np.diag(vb)) == pytest.approx(expected, rel=1e-12)
    # Fewer samples than dimensions (singular S1 = X^T X / (n-1)): tr (S1 S2)^(1/2) is then the sum
    # of square roots of the eigenvalues of the small X S2 X^T / (n-1).
    x, y = rng.normal(size=(5, 40)), 2 * rng.normal(size=(300, 40))
    (m1, s1), (m2, s2) = fidlib.feature_stats(x), fidlib.feature_stats(y)
    xc = x - m1
    small = np.sqrt(np.clip(np.linalg.eigvalsh(xc @ s2 @ xc.T / 4), 0, None)).sum()
    expected = (m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * small
    assert fidlib.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    assert fidlib.frechet_distance(m1, s1, m1, s1) == pytest.approx(0, abs=1e-9 * np.trace(s1))
    with pytest.raises(ValueError):
        fidlib.frechet_distance(mu, np.eye(4), mu[:3], np.eye(3))


def test_kid_is_unbiased_and_separates_distributions():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(600, 16, generator=g)
    same = torch.randn(600, 16, generator=g)
    shifted = torch.randn(600, 16, generator=g) + 0.5
    mean, std = fidlib.kernel_inception_distance(real, same, subset_size=100)
    # the unbiased MMD^2 of one distribution with itself is 0 in expectation (the biased one is > 0)
    assert abs(mean) < std
    mean_shift, std_shift = fidlib.kernel_inception_distance(real, shifted, subset_size=100)
    assert mean_shift > 5 * std_shift > 0
    assert fidlib.kernel_inception_distance(real, same, subset_size=100) == (mean, std)  # seeded draws


def test_inception_score_bounds():
    assert fidlib.inception_score(torch.zeros(100, 1008))[0] == pytest.approx(1.0)  # no confidence at all
    confident = torch.full((100, 1008), -30.0)
    confident[torch.arange(100), torch.arange(100) % 5] = 30.0  # sure of 5 classes, equally often
    assert fidlib.inception_score(confident, splits=1) == (pytest.approx(5.0, rel=1e-6), 0.0)
    mean, std = fidlib.inception_score(confident, splits=5)  # random splits hold the classes unevenly
    assert 4 < mean <= 5 + 1e-6 and std > 0


# ---------------------------------------------------------------- the standard Inception path

def test_inception_fid_zero_for_self_and_growing_with_noise(inception_weights, digits):
    net = fidlib.load_inception(inception_weights, "cpu")
    x = digits.test[0][:8]  # grey 16x16, repeated to RGB and resized to 299 inside
    sets = torch.cat([x, noisy(x, 20), noisy(x, 80)])
    feats, logits = fidlib.inception_features(net, sets, device="cpu", batch_size=8)
    assert feats.shape == (24, 2048) and logits.shape == (24, 1008) and feats.dtype == torch.float32
    rgb, _ = fidlib.inception_features(net, x[:2].repeat(1, 3, 1, 1), device="cpu")
    assert torch.allclose(rgb, feats[:2], atol=1e-5)
    clean, light, heavy = (fidlib.feature_stats(feats[i:i + 8]) for i in (0, 8, 16))
    assert clean[0].dtype == clean[1].dtype == np.float64 and clean[1].shape == (2048, 2048)
    self_fid = fidlib.frechet_distance(*clean, *clean)  # rank-7 covariances in 2048 dimensions
    assert abs(self_fid) < 1e-9 * np.trace(clean[1])
    assert 0 < fidlib.frechet_distance(*light, *clean) < fidlib.frechet_distance(*heavy, *clean)
    with pytest.raises(ValueError):
        fidlib.inception_features(net, x.float(), device="cpu")


def test_hub_cache_is_found_and_missing_weights_give_one_line(tmp_path, monkeypatch, inception_weights, runs):
    hub = tmp_path / "torch" / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # nothing listens on the loopback discard port: a download attempt fails at once, offline or not
    monkeypatch.setattr(fidlib, "INCEPTION_URL", f"http://127.0.0.1:9/{fidlib.INCEPTION_FILE}")
    monkeypatch.setattr(perceptual, "_alexnet_url", lambda: "http://127.0.0.1:9/alexnet-owt-7be5be79.pth")
    eval_json = runs["generator"] / "eval.json"
    before = eval_json.read_bytes() if eval_json.exists() else None
    with pytest.raises(BudgetVisionError) as e:
        evaluate_generator(runs["generator"], fid=True, n=4, device="cpu")
    msg = one_line(e)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and "--inception-weights PATH" in msg
    assert str(hub / "checkpoints") in msg
    assert (eval_json.read_bytes() if eval_json.exists() else None) == before  # failed before writing
    with pytest.raises(BudgetVisionError) as e:
        find_lpips_weights(None)
    assert "alexnet-owt-7be5be79.pth" in one_line(e) and "--lpips-weights PATH" in str(e.value)
    with pytest.raises(BudgetVisionError) as e:
        fidlib.find_inception_weights(tmp_path / "nowhere.pth")
    assert "nowhere.pth" in one_line(e)
    (tmp_path / "junk.pth").write_text("<html>not weights</html>")
    with pytest.raises(BudgetVisionError) as e:
        fidlib.load_inception(tmp_path / "junk.pth", "cpu")
    assert "junk.pth" in one_line(e)
    # the file where the libraries keep their downloads is found without being named
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "checkpoints" / fidlib.INCEPTION_FILE).symlink_to(inception_weights)
    assert fidlib.find_inception_weights(None) == hub / "checkpoints" / fidlib.INCEPTION_FILE


# ---------------------------------------------------------------- the judge

def test_judge_on_real_test_images_equals_its_test_accuracy(runs, digits):
    judge = open_judge(runs["judge"], device="cpu")
    assert judge.name == f"mnist-lenet ({runs['judge']})"
    x, y = digits.test
    as_samples = to_uint8(x.float() / 127.5 - 1)  # real images through the samples' quantisation
    assert torch.equal(as_samples, x)
    scores = judge_scores(judge, as_samples, y, device="cpu", batch_size=100)
    recorded = json.loads((runs["judge"] / "results.json").read_text())["test_accuracy"]
    assert scores["accuracy"] == pytest.approx(recorded, abs=1e-12) == judge.test_accuracy
    # and on one held-out batch, against the judge's own predictions
    batch = judge_scores(judge, x[:64], y[:64], device="cpu")
    with torch.no_grad():
        mean = torch.tensor(judge.mean).view(1, -1, 1, 1)
        std = torch.tensor(judge.std).view(1, -1, 1, 1)
        direct = (judge.network((x[:64].float() / 255 - mean) / std).argmax(1) == y[:64]).double().mean()
    assert batch["accuracy"] == pytest.approx(float(direct), abs=1e-12)
    confusion = np.array(scores["confusion"])
    assert confusion.sum() == len(y) and confusion.shape == (10, 10)
    assert scores["per_class_accuracy"] == pytest.approx(list(confusion.diagonal() / confusion.sum(1)))


def test_judge_fid_zero_for_self_grows_with_noise_and_matches_torchmetrics(runs, digits):
    from torchmetrics.image.fid import FrechetInceptionDistance

    judge = open_judge(runs["judge"], device="cpu")
    x = digits.test[0]
    assert judge_fid(judge, x, x, device="cpu") == pytest.approx(0, abs=1e-8)
    fids = [judge_fid(judge, noisy(x, s), x, device="cpu") for s in (8, 32, 96)]
    assert 0 < fids[0] < fids[1] < fids[2]
    metric = FrechetInceptionDistance(feature=fidlib._Given(judge_features(judge, x[:1], device="cpu").shape[1]))
    metric.update(judge_features(judge, x, device="cpu"), real=True)
    metric.update(judge_features(judge, noisy(x, 32), device="cpu"), real=False)
    assert float(metric.compute()) == pytest.approx(fids[1], rel=1e-6)


def test_judge_kid_is_the_unbiased_polynomial_mmd_of_the_judges_features(runs, tmp_path, monkeypatch):
    """eval --judge's KID is evaluation/fid.py's KID of the judge's features of the test images and of
    the samples, the ones its judge-feature FID reads. At n = 5 every subset of 5 is the whole set, so
    it is exactly the unbiased MMD^2 with the cubic kernel k(x, y) = (x.y / d + 1)^3 of both feature
    sets divided by the real features' RMS, worked here by hand, with no spread over its subsets."""
    import shutil
    from budgetvision.runs import evaluate as evaluation

    gen = Path(shutil.copytree(runs["generator"], tmp_path / "gen"))   # the shared run's eval.json untouched
    passes = []   # the judge's features of: the samples, the test images, the floor's train images

    def kept(*args, **kwargs):
        passes.append(judge_features(*args, **kwargs))
        return passes[-1]
    monkeypatch.setattr(evaluation, "judge_features", kept)
    out = evaluate_generator(gen, judge=runs["judge"], n=5, device="cpu")
    fake, real, _ = passes
    scale = float(real.double().pow(2).mean().sqrt())   # the real features' RMS, by hand
    assert out["judge_kid_feature_scale"] == pytest.approx(scale, rel=1e-12) and scale != pytest.approx(1.0)
    assert (out["judge_kid_mean"], out["judge_kid_std"]) == fidlib.kernel_inception_distance(real / scale,
                                                                                             fake / scale)
    x, y = real.double() / scale, fake.double() / scale

    def k(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    def within(kk):   # the mean over pairs of two different images
        return (kk.sum() - kk.diagonal().sum()) / (5 * 4)
    mmd = float(within(k(x, x)) + within(k(y, y)) - 2 * k(x, y).mean())
    # far from 0 (unbiased, so it may be negative at n = 5), so float32 rounding is small beside it
    assert abs(mmd) > 0.01 * float(k(x, x).diagonal().mean())
    assert out["judge_kid_mean"] == pytest.approx(mmd, rel=1e-5)
    assert out["judge_kid_std"] == pytest.approx(0.0, abs=1e-5 * abs(mmd))
    assert (out["judge_kid_subset_size"], out["judge_kid_subsets"]) == (5, fidlib.KID_SUBSETS)
    assert json.loads((gen / "eval.json").read_text())["judge_kid_mean"] == out["judge_kid_mean"]


def test_judge_refusals_are_one_line(runs):
    with pytest.raises(BudgetVisionError) as e:
        open_judge(runs["generator"], device="cpu")
    assert "classifier" in one_line(e)
    judge = open_judge(runs["judge"], device="cpu")
    cifar = DataSpec("cifar100", 3, 32, 100, (0.5,) * 3, (0.5,) * 3, tuple(map(str, range(100))))
    with pytest.raises(BudgetVisionError) as e:
        check_judge_fits(judge, cifar, "some-gan (runs/00001)")
    assert "100 classes" in one_line(e) and "digits" in str(e.value)
    with pytest.raises(BudgetVisionError) as e:
        evaluate_generator(runs["generator"], judge=runs["generator"], n=4, device="cpu")
    assert "classifier" in one_line(e)


# ---------------------------------------------------------------- LPIPS

def test_lpips_nearest_finds_a_training_image_itself(alexnet_weights, digits):
    net = load_lpips(alexnet_weights, "cpu")
    train = digits.train[0][:300]
    d = lpips_distance(net, train[:4], train[:4], device="cpu")
    assert torch.allclose(d, torch.zeros(4), atol=1e-6)
    samples = torch.cat([train[[5, 17]], noisy(train[[40]], 60)])
    dist, idx = nearest_lpips(net, samples, train, device="cpu")
    assert idx[:2].tolist() == [5, 17] and torch.allclose(dist[:2], torch.zeros(2), atol=1e-6)
    assert dist[2] > 0


# ---------------------------------------------------------------- run level

def test_evaluate_generator_writes_eval_json_and_reuses_reference(runs, inception_weights, alexnet_weights,
                                                                   monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("evaluation must not reach the network")
    monkeypatch.setattr(socket, "create_connection", no_network)
    passes = []   # (features, logits) of each Inception pass: the samples', then the test images'

    def kept(*args, **kwargs):
        passes.append(inception_features(*args, **kwargs))
        return passes[-1]
    inception_features = fidlib.inception_features
    monkeypatch.setattr(fidlib, "inception_features", kept)
    gen = runs["generator"]
    out = evaluate_generator(gen, fid=True, kid=True, inception_score=True, n=4, judge=runs["judge"], lpips=True,
                             inception_weights=inception_weights, lpips_weights=alexnet_weights, device="cpu",
                             batch_size=2)
    written = json.loads((gen / "eval.json").read_text())
    assert written == out
    assert out["preset"] == "mnist-pca" and out["step"] == 10 and out["labels"] == "seed % 10"
    for key in ("fid", "kid_mean", "kid_std", "is_mean", "judge_accuracy", "judge_fid", "lpips_nearest_mean"):
        assert np.isfinite(out[key]), key
    assert out["fid_n"] == 4 and out["fid_n_reference"] == 4 and len(passes) == 2
    # FID in closed form for n points: with S = A^T A, A the centred features (n x 2048) / sqrt(n - 1),
    # tr (S1 S2)^(1/2) is the nuclear norm of A1 A2^T (4 x 4): no pivoted Cholesky, no eigensolver
    (fake, _), (real, _) = passes
    a1, a2 = ((f.double() - f.double().mean(0)) / 3 ** 0.5 for f in (fake, real))
    closed = ((fake.double().mean(0) - real.double().mean(0)).square().sum() + a1.square().sum()
              + a2.square().sum() - 2 * torch.linalg.matrix_norm(a1 @ a2.T, "nuc"))
    assert out["fid"] == pytest.approx(float(closed), rel=1e-9)   # both float64 sums of the same features
    # IS at n = 4 is over 4 splits of one image each: a split's marginal is its own image's class
    # distribution, so every KL term is 0 and IS exactly 1, with no spread
    assert (out["is_mean"], out["is_std"]) == (pytest.approx(1.0, abs=1e-6), pytest.approx(0.0, abs=1e-6))
    assert out["judge"] == f"mnist-lenet ({runs['judge']})" and "fid" not in [k for k in out if "judge" in k]
    assert np.array(out["judge_confusion"]).sum(1).tolist() == [1] * 4 + [0] * 6  # seeds 0-3: classes 0-3
    assert (gen / "judge-confusion.png").stat().st_size > 0
    assert "pixel-L2" in out["lpips_method"] and out["lpips_n"] == 4

    ref = fid_reference("digits", "test", n=4, inception_weights=inception_weights, device="cpu")
    assert ref["cached"] and ref["n"] == 4 and Path(ref["path"]).parent.name == "fid-ref"
    with np.load(ref["path"]) as z:  # pytorch-fid's names for the statistics
        assert z["mu"].shape == (2048,) and z["sigma"].dtype == np.float64

    # a later call on the same checkpoint keeps the earlier metrics beside its own
    again = evaluate_generator(gen, judge=runs["judge"], n=20, device="cpu")
    merged = json.loads((gen / "eval.json").read_text())
    assert "fid" not in again and merged["fid"] == out["fid"] and merged["judge_n"] == 20


def test_cli_eval_of_a_generator_run_with_a_judge(tmp_path, capsys):
    """`budgetvision eval GEN --judge CLS` end to end, and the flags' one-line refusals."""
    from budgetvision.cli import main

    runs = tmp_path / "runs"
    common = ["--dataset", "digits", "--out", str(runs), "--no-progress"]
    assert main(["train", "--preset", "mnist-lenet", "--steps", "60", *common]) == 0
    assert main(["train", "--preset", "mnist-pca", "--steps", "6", *common, "--set", "train.batch_size=128",
                 "objective.components=1"]) == 0
    judge, gen = sorted(runs.iterdir())
    capsys.readouterr()
    assert main(["eval", str(gen), "--judge", str(judge), "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert "judge_accuracy" in out and "mnist-lenet" in out
    result = json.loads((gen / "eval.json").read_text())
    # the accuracy is the judge's confusion matrix read out: seeds 0-99, labels seed % 10, 10 a class
    confusion = np.array(result["judge_confusion"])
    assert confusion.sum(1).tolist() == [10] * 10
    assert result["judge_accuracy"] == np.trace(confusion) / 100
    assert 0 <= result["judge_fid_real_floor"] < result["judge_fid"]  # real images beat a 1-component PCA
    assert main(["eval", str(gen)]) == 2
    assert "needs at least one of" in capsys.readouterr().err
    assert main(["eval", str(judge), "--fid"]) == 2
    assert "is for generator runs" in capsys.readouterr().err


def test_cli_eval_samples_a_diffusion_run_with_the_sampler_asked_for(tmp_path, capsys):
    """`eval --sampler dpmpp2m --sample-steps N --cfg-scale W --guidance-interval LO,HI` replace the
    run's own sampler and guidance for that evaluation, eval.json says which drew the samples, and scores of other
    samples are not merged in; a one-pass generator or a classifier refuses the flags in one line."""
    from budgetvision.cli import main

    runs = tmp_path / "runs"
    common = ["--dataset", "digits", "--out", str(runs), "--no-progress"]
    assert main(["train", "--preset", "mnist-lenet", "--steps", "30", *common]) == 0
    assert main(["train", "--preset", "cifar100-vdiffusion", "--steps", "2", *common,
                 "--set", "train.batch_size=8", "objective.sample_steps=2"]) == 0
    assert main(["train", "--preset", "mnist-pca", "--steps", "2", *common, "--set", "train.batch_size=64",
                 "objective.components=1"]) == 0
    judge, diffusion, pca = sorted(runs.iterdir())
    assert main(["eval", str(diffusion), "--judge", str(judge), "--n", "12", "--prc",
                 "--sampler", "dpmpp2m", "--sample-steps", "4"]) == 0
    first = json.loads((diffusion / "eval.json").read_text())
    assert (first["sampler"], first["sample_steps"]) == ("dpmpp2m", 4) and "judge_precision" in first
    assert main(["eval", str(diffusion), "--judge", str(judge), "--n", "12", "--sampler", "ddim",
                 "--sample-steps", "3"]) == 0
    second = json.loads((diffusion / "eval.json").read_text())
    assert (second["sampler"], second["sample_steps"]) == ("ddim", 3)
    assert "judge_precision" not in second       # the dpmpp2m samples' score is not carried over
    assert first["cfg_scale"] == second["cfg_scale"] == 3.0   # the run's own guidance (the anonymous paper's w)
    assert main(["eval", str(diffusion), "--judge", str(judge), "--n", "12", "--sampler", "ddim",
                 "--sample-steps", "3", "--cfg-scale", "0"]) == 0
    third = json.loads((diffusion / "eval.json").read_text())
    assert third["cfg_scale"] == 0.0 and (third["sampler"], third["sample_steps"]) == ("ddim", 3)
    assert third["guidance_interval"] == [0.0, 0.0]            # the run's own: every level
    assert main(["eval", str(diffusion), "--judge", str(judge), "--n", "12", "--sampler", "ddim",
                 "--sample-steps", "3", "--cfg-scale", "0", "--guidance-interval", "0.5,2"]) == 0
    fourth = json.loads((diffusion / "eval.json").read_text())
    assert fourth["guidance_interval"] == [0.5, 2.0] and fourth["cfg_scale"] == 0.0
    capsys.readouterr()
    assert main(["eval", str(diffusion), "--judge", str(judge), "--n", "12", "--guidance-interval", "2,1"]) == 2
    assert "objective.guidance_interval must be lo,hi" in capsys.readouterr().err
    # sample and the Python API take the same settings: an interval above every level is no guidance.
    from budgetvision import api
    plain = api.sample(diffusion, "0-3", cfg_scale=0)
    torch.testing.assert_close(api.sample(diffusion, "0-3", guidance_interval="1e9,0"), plain, rtol=0, atol=0)
    assert not torch.equal(api.sample(diffusion, "0-3"), plain)
    assert main(["sample", str(diffusion), "--seeds", "0-3", "--cfg-scale", "0", "--sample-steps", "3",
                 "--out", str(tmp_path / "w0.png")]) == 0 and (tmp_path / "w0.png").exists()
    capsys.readouterr()
    assert main(["sample", str(pca), "--sampler", "ddim", "--out", str(tmp_path / "pca.png")]) == 2
    assert "for diffusion runs" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["eval", str(pca), "--judge", str(judge), "--sampler", "ddim"]) == 2
    assert "for diffusion runs" in capsys.readouterr().err
    assert main(["eval", str(judge), "--sample-steps", "4"]) == 2
    assert "--sample-steps is for generator runs" in capsys.readouterr().err
    assert main(["eval", str(judge), "--cfg-scale", "1"]) == 2
    assert "--cfg-scale is for generator runs" in capsys.readouterr().err


def test_cli_eval_no_ema_scores_the_trained_generator_and_keeps_the_two_apart(tmp_path, runs, capsys):
    """A generator trained with an EMA is scored through its EMA copy by default and through its
    trained weights with --no-ema: open_seed hands over exactly those tensors, eval.json names
    which ("weights"), and a judge score of the one is not merged into the other's file."""
    from budgetvision.io import load_checkpoint
    from budgetvision.runs import open_seed

    assert main(["train", "--preset", "mnist-projection-gan", "--dataset", "digits", "--steps", "3",
                 "--out", str(tmp_path), "--no-progress", "--set", "train.batch_size=16",
                 "train.ema_decay=0.5"]) == 0
    (gen,) = tmp_path.iterdir()
    state = load_checkpoint(gen / "seed-0" / "checkpoint.pt", map_location="cpu")
    trained = {k[len("generator."):]: v for k, v in state["objective"].items() if k.startswith("generator.")}
    averaged = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    for ema, expected, name in ((True, averaged, "ema"), (False, trained, "trained")):
        opened = open_seed(gen, device="cpu", ema=ema)
        assert opened.weights == name
        got = opened.network.state_dict()
        assert all(torch.equal(got[k], expected[k]) for k in got), name
    assert not all(torch.equal(trained[k], averaged[k]) for k in trained)   # the test can tell them apart
    judge = ["--judge", str(runs["judge"]), "--n", "40"]
    assert main(["eval", str(gen), *judge, "--prc"]) == 0
    first = json.loads((gen / "eval.json").read_text())
    assert first["weights"] == "ema" and "judge_precision" in first
    assert main(["eval", str(gen), *judge, "--no-ema"]) == 0
    second = json.loads((gen / "eval.json").read_text())
    assert second["weights"] == "trained" and "judge_precision" not in second
    assert second["judge_fid"] != first["judge_fid"]


def test_an_eval_json_from_before_weights_were_named_still_merges(runs):
    """A file written before eval.json said which weights it scored holds the run's default ones:
    a default eval of a run without an EMA (PCA) keeps its scores beside the new ones."""
    from budgetvision.cli import main as cli

    gen, judge = runs["generator"], ["--judge", str(runs["judge"]), "--n", "40"]
    assert cli(["eval", str(gen), *judge]) == 0
    path = gen / "eval.json"
    legacy = json.loads(path.read_text())
    assert legacy.pop("weights") == "trained"
    path.write_text(json.dumps({**legacy, "earlier_score": 1.5}))
    assert cli(["eval", str(gen), *judge]) == 0
    merged = json.loads(path.read_text())
    assert merged["earlier_score"] == 1.5 and merged["weights"] == "trained"
