"""The Python API, TensorBoard events and ONNX export, on real (tiny) runs of the offline digits."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import budgetvision as bv
from budgetvision.cli import main
from budgetvision.data import eval_batches, load_splits
from budgetvision.models.layers import translated
from budgetvision.runs import open_seed


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    return bv.train("cifar100-speedrun-convnet", dataset="digits", steps=40, out=out, progress=False,
                    overrides={"train.eval_every": 20, "train.log_every": 10, "train.checkpoint_every": 20})


def test_train_load_evaluate_agree_with_the_run(run):
    assert run.path.is_dir() and run.config.train.steps == 40 and run.config.train.flip_tta
    assert run.results["seeds"] == [0] and "test" in run.summary
    model = bv.load(run.path)
    assert not model.training
    splits = load_splits("digits")
    correct = 0
    with torch.no_grad():
        for x, y in eval_batches(*splits.test, 128, mean=splits.spec.mean, std=splits.spec.std, device="cpu"):
            correct += (model(x).argmax(1) == y).sum().item()
    # the loaded network is the one the run evaluated: the same test accuracy, to the image
    assert correct / len(splits.test[1]) == pytest.approx(run.results["test_accuracy"], abs=1e-12)
    assert bv.evaluate(run.path).test_accuracy == pytest.approx(run.results["test_accuracy"], abs=1e-12)
    with pytest.raises(bv.api.ConfigError, match="classifier run"):
        bv.evaluate(run.path, fid=True)


def test_eval_scores_a_classifier_with_other_test_time_view_weights(run, capsys):
    """`eval --tta-shift-weight`: the run's network under other view weights (sampling and test-time
    views are not training), the accuracy of those views' mean logits, recorded in eval.json."""
    net = open_seed(run.path, device=torch.device("cpu")).network.network
    splits = load_splits("digits")
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in eval_batches(*splits.test, 128, mean=splits.spec.mean, std=splits.spec.std, device="cpu"):
            views = [(net(v) + net(v.flip(-1))) / 2 for v in (x, translated(x, 1, 1), translated(x, -1, -1))]
            logits = 0.8 * views[0] + 0.1 * (views[1] + views[2])
            correct += (logits.argmax(1) == y).sum().item()
            loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
    assert main(["eval", str(run.path), "--tta-shift-weight", "0.2"]) == 0
    written = json.loads((run.path / "eval.json").read_text())
    assert written["tta_shift_weight"] == 0.2
    n = len(splits.test[1])
    assert written["test_accuracy"] == pytest.approx(correct / n, abs=1e-12)
    assert written["per_seed"][0]["test_loss"] == pytest.approx(loss / n, rel=1e-5)
    assert written["per_seed"][0]["test_loss"] != pytest.approx(run.results["per_seed"][0]["test_loss"], rel=1e-3)
    assert main(["eval", str(run.path), "--tta-shift-weight", "1.5"]) == 2
    assert "train.tta_shift_weight must be in (0, 1)" in capsys.readouterr().err
    lenet = bv.train("mnist-lenet", dataset="digits", steps=2, out=run.path.parent / "lenet", progress=False)
    assert main(["eval", str(lenet.path), "--tta-shift-weight", "0.5"]) == 2
    assert "has no shifted test-time views (train.tta_shift 0)" in capsys.readouterr().err


def test_overrides_as_a_dict_are_typed_strictly():
    cfg = bv.resolve("mnist-lenet", steps=7, overrides={"train.amp": False, "optim.betas": (0.5, 0.99),
                                                         "optim.lr": 2e-3})
    assert cfg.train.steps == 7 and cfg.train.amp is False and cfg.optim.betas == (0.5, 0.99)
    with pytest.raises(bv.api.ConfigError, match="unknown config key"):
        bv.resolve("mnist-lenet", overrides={"optim.learning_rate": 1})


def test_api_names_are_the_functions_even_after_every_module_is_imported():
    import budgetvision.cli  # noqa: F401  (imports the loop, the runs, ...)
    import budgetvision.loop  # noqa: F401

    for name in ("train", "resume", "load", "evaluate", "sample", "resolve"):
        assert getattr(bv, name).__module__ == "budgetvision.api", name


def test_import_is_light():
    code = "import sys, budgetvision; print('torch' in sys.modules, budgetvision.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and out[1] == bv.__version__


def test_tensorboard_events_hold_the_logged_metrics(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seed_dir = run.path / "seed-0"
    events = EventAccumulator(str(seed_dir))
    events.Reload()
    rows = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    val = [r for r in rows if r["kind"] == "val"]
    assert [e.step for e in events.Scalars("train/loss")] == [r["step"] for r in train] == [10, 20, 30, 40]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    assert [e.value for e in events.Scalars("val/accuracy")] == pytest.approx([r["accuracy"] for r in val], rel=1e-6)


def test_onnx_export_matches_pytorch_on_test_images(run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnx
    import onnxruntime

    path = tmp_path / "model.onnx"
    assert main(["export", str(run.path), "--onnx", str(path)]) == 0
    info = json.loads((tmp_path / "model.onnx.json").read_text())
    assert info["argmax_agreement"] == 1.0 and info["max_abs_logit_diff"] < 1e-3
    assert info["check_images"] == len(load_splits("digits").test[1])
    meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
    assert meta["flip_tta"] is True and len(meta["mean"]) == 1
    # any batch size; the flip-averaged network is inside the graph
    model = bv.load(run.path)
    x = torch.randn(5, 1, 16, 16)
    got = onnxruntime.InferenceSession(str(path)).run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), atol=1e-4, rtol=1e-4)
    assert "matches PyTorch" in capsys.readouterr().out


def test_a_gan_generator_exports_and_draws_what_sample_draws(tmp_path, capsys):
    """A conditional GAN's generator (the EMA copy): latents and labels in, the images `sample`
    writes out, checked on 512 seeded latents; refused in one line for a PCA run."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    out = tmp_path / "runs"
    assert main(["train", "--preset", "mnist-projection-gan", "--dataset", "digits", "--steps", "4", "--no-progress",
                 "--set", "train.sample_every=4", "train.checkpoint_every=4", "--out", str(out)]) == 0
    (run,) = out.iterdir()
    path = tmp_path / "g.onnx"
    assert main(["export", str(run), "--onnx", str(path)]) == 0
    info = json.loads((tmp_path / "g.onnx.json").read_text())
    assert info["check_images"] == 512 and info["max_abs_image_diff"] < 1e-3 and info["opset"] >= 18
    assert "labels (N,) int64" in info["input"] and "matches PyTorch on 512 seeded latents" in capsys.readouterr().out
    seeds = [3, 14, 15]
    z = torch.stack([torch.randn(128, generator=torch.Generator().manual_seed(s)) for s in seeds])
    got = onnxruntime.InferenceSession(str(path)).run(None, {"latents": z.numpy(),
                                                             "labels": np.array([7, 4, 5], dtype=np.int64)})[0]
    opened = open_seed(run, device=torch.device("cpu"))
    with torch.no_grad():
        drawn = opened.objective.sample(seeds, torch.tensor([7, 4, 5]), network=opened.network)
    torch.testing.assert_close(torch.from_numpy(got), drawn, atol=1e-4, rtol=1e-4)

    assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "2", "--no-progress",
                 "--out", str(tmp_path / "pca")]) == 0
    (pca,) = (tmp_path / "pca").iterdir()
    capsys.readouterr()
    assert main(["export", str(pca), "--onnx", str(tmp_path / "p.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ONNX export takes classifier runs and GAN runs" in err[0]
