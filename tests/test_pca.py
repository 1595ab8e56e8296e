"""Per-class PCA generator (Rzayev section 5) and the generator commands on a real run of it."""
import json

import pytest
import torch

from budgetvision.cli import main
from budgetvision.config import PCAConfig
from budgetvision.models.pca import PCAGenerator
from budgetvision.objectives.pca import PCA


def fitted(components, n=60, classes=3, shape=(1, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g) * 2 - 1
    y = torch.arange(n) % classes
    pca = PCA(PCAGenerator(classes, shape, components), PCAConfig())
    for i in range(0, n, 16):  # streamed in batches, as the loop does
        pca.train_step(x[i:i + 16], y[i:i + 16], {})
    return pca, x, y


def test_all_components_reconstruct_training_images():
    pca, x, y = fitted(components=16)
    assert torch.allclose(pca.pca.reconstruct(x, y), x, atol=1e-4)


def test_fewer_components_reconstruct_worse_but_keep_the_class_mean():
    pca, x, y = fitted(components=2)
    err = (pca.pca.reconstruct(x, y) - x).pow(2).mean()
    assert 1e-3 < err < x.var()
    assert torch.allclose(pca.pca.mean[0], x[y == 0].flatten(1).mean(0), atol=1e-5)


def test_reconstruction_through_the_leading_k_components():
    """reconstruct(x, y, k) projects onto the class's leading k components only: k = 0 is the class
    mean, all components the image itself, and the error never grows with k."""
    pca, x, y = fitted(components=16)
    mean_only = pca.pca.reconstruct(x, y, 0)   # fits first
    torch.testing.assert_close(mean_only, pca.pca.mean[y].reshape(x.shape))
    errors = [(pca.pca.reconstruct(x, y, k) - x).pow(2).mean().item() for k in (0, 1, 2, 4, 8, 16)]
    assert all(a >= b - 1e-9 for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-8 < errors[1]
    torch.testing.assert_close(pca.pca.reconstruct(x, y, 16), pca.pca.reconstruct(x, y))


def test_once_fitted_sampling_reads_no_training_statistic():
    """The streamed moments are declared training state and not counted (models/registry.py): that
    holds only if sampling never reads them. Overwritten with garbage (the two counts kept equal, the
    sign of no new data), the fitted generator draws the very same images."""
    from budgetvision.models.registry import buffer_roles, count_params

    pca, _, _ = fitted(components=4)
    before = pca.sample(list(range(6)))
    roles = buffer_roles(pca.pca)
    assert roles == dict.fromkeys(("count", "sum", "outer", "fitted_count"), "training state")
    for name in ("sum", "outer"):
        getattr(pca.pca, name).normal_()
    pca.pca.count.fill_(7.0)
    pca.pca.fitted_count.fill_(21.0)            # 3 classes x 7
    assert torch.equal(pca.sample(list(range(6))), before)
    # counted: the 3 classes' means (16), components (4 x 16) and scales (4)
    assert count_params(pca.pca) == 3 * (16 + 4 * 16 + 4)


def test_samples_depend_on_seed_only_and_stay_in_range():
    pca, _, _ = fitted(components=3)
    batch = pca.sample(list(range(8)))
    single = torch.cat([pca.sample([s]) for s in range(8)])
    assert torch.equal(batch, single) and batch.shape == (8, 1, 4, 4)
    assert batch.min() >= -1 and batch.max() <= 1
    with pytest.raises(ValueError, match="class indices"):   # 3 classes
        pca.sample([0, 1], torch.tensor([0, 3]))


def test_interpolation_endpoints_are_the_samples():
    pca, _, _ = fitted(components=3)
    frames = pca.interpolate([(0, 3), (6, 9)], 5)  # same class (seed % 3) at both ends
    assert frames.shape == (2, 5, 1, 4, 4)
    assert torch.allclose(frames[:, 0], pca.sample([0, 6]), atol=1e-5)
    assert torch.allclose(frames[:, -1], pca.sample([3, 9]), atol=1e-5)


def test_interpolation_in_the_closer_ends_class():
    pca, _, _ = fitted(components=3)
    frames = pca.interpolate([(0, 1)], 5, label_mode="nearest")  # classes 0 and 1 (seed % 3)
    blend = pca.interpolate([(0, 1)], 5)                         # PCA's blend: the first seed's class
    torch.testing.assert_close(frames[:, :3], blend[:, :3])
    torch.testing.assert_close(frames[:, -1], pca.sample([1]))
    assert not torch.allclose(blend[:, -1], pca.sample([1]))


def test_pca_too_large_for_memory_is_refused(capsys):
    code = main(["train", "--preset", "mnist-pca", "--dataset", "cifar100", "--dry-run"])
    assert code == 2 and "GiB of covariance" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pca_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "10", "--out", str(out),
                 "--no-progress", "--set", "train.batch_size=128", "train.sample_every=5",
                 "train.checkpoint_every=5", "train.log_every=5"]) == 0
    (run,) = out.iterdir()
    return run


def test_generator_run_writes_results_and_grids(pca_run):
    results = json.loads((pca_run / "results.json").read_text())
    assert results["task"] == "generate" and results["params"] == results["param_counts"]["total"] < 1_000_000
    assert results["images_seen"] == 10 * 128 and results["over_budget"] is False
    for name in ("training.png", "seed-0/samples/step-000005.png", "seed-0/samples/step-000010.png"):
        assert (pca_run / name).stat().st_size > 0


def test_sample_interpolate_neighbours_commands(pca_run, tmp_path, capsys):
    assert main(["sample", str(pca_run), "--seeds", "0-15", "--out", str(tmp_path / "grid.png")]) == 0
    assert main(["sample", str(pca_run), "--seeds", "0-9", "--class", "3", "--out", str(tmp_path / "3.png")]) == 0
    assert main(["interpolate", str(pca_run), "--pairs", "3", "--steps", "4", "--out", str(tmp_path / "i.png")]) == 0
    assert main(["neighbours", str(pca_run), "--seeds", "0-3", "--k", "3", "--out", str(tmp_path / "nn.png")]) == 0
    for name in ("grid.png", "3.png", "i.png", "nn.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_interpolate_command_takes_the_recipes_path_unless_told(tmp_path, capsys):
    """`budgetvision interpolate` walks as the run's recipe says (objective.interpolation and
    _labels, e.g. Jalil's linear path); --mode / --labels override it."""
    out = tmp_path / "runs"
    assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "3", "--out", str(out),
                 "--no-progress", "--set", "train.batch_size=128", "objective.interpolation=lerp",
                 "objective.interpolation_labels=nearest"]) == 0
    (run,) = out.iterdir()
    capsys.readouterr()
    assert main(["interpolate", str(run), "--pairs", "2", "--out", str(tmp_path / "a.png")]) == 0
    assert "(lerp, nearest labels)" in capsys.readouterr().out
    assert main(["interpolate", str(run), "--pairs", "2", "--mode", "slerp", "--labels", "blend",
                 "--out", str(tmp_path / "b.png")]) == 0
    assert "(slerp, blend labels)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["sample", "RUN", "--seeds", "9-2"], "end is below the start"),
    (["sample", "RUN", "--seeds", "x"], "bad seed list"),
    (["sample", "RUN", "--class", "10"], "--class must be in 0..9"),
    (["sample", "RUN", "--out", "grid.jpg"], "must name a .png"),
    (["sample", "RUN", "--run-seed", "4"], "has no seed 4"),
    (["interpolate", "RUN", "--steps", "1"], "--steps >= 2"),
])
def test_generator_command_bad_input(pca_run, tmp_path, capsys, argv, words):
    argv = [str(pca_run) if a == "RUN" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def test_classifier_run_refused_by_generator_commands(tmp_path, capsys):
    assert main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "5", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "g.png")]) == 2
    assert "needs a generator run" in capsys.readouterr().err
