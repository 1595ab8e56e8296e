"""Training end to end on the offline digits: learning, outputs, eval, budget, resume, lr-find."""
import json
from dataclasses import replace

import pytest
import torch

import budgetvision.loop as train_mod
from budgetvision.cli import main
from budgetvision.config import BudgetConfig, apply_overrides
from budgetvision.device import cpu_has_bf16
from budgetvision.io import load_checkpoint
from budgetvision.presets import get_preset
from budgetvision.loop import fit
from budgetvision.setup import prepare

CPU = torch.device("cpu")


def digits_cfg(*extra, preset="mnist-lenet", steps=60):
    # A validation split held out (mnist-lenet trains on the whole split, as Rzayev did).
    return apply_overrides(get_preset(preset).config, ["data.name=digits", "data.val_fraction=0.1",
                                                        f"train.steps={steps}", "train.log_every=10", "train.eval_every=20",
                                                        "train.checkpoint_every=20", *extra])


def test_short_digits_run_learns_and_writes_everything(capsys, tmp_path):
    code = main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "300", "--seeds", "2",
                 "--out", str(tmp_path), "--no-progress", "--set", "train.eval_every=100", "data.val_fraction=0.1"])
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name == "00001-mnist-lenet"
    results = json.loads((run_dir / "results.json").read_text())
    # The stated bar: LeNet-5 reaches >= 90 % test accuracy on the digits in 300 steps.
    assert results["test_accuracy"] >= 0.90, results["test_accuracy"]
    for key in ("params", "steps", "batch_size", "images_seen", "seeds", "train_accuracy", "test_accuracy",
                "test_accuracy_std", "wall_seconds", "device", "over_budget"):
        assert key in results
    assert results["seeds"] == [0, 1] and results["over_budget"] is False
    assert results["images_seen"] == 300 * 64
    for name in ("config.json", "run.json", "training.png", "confusion.png", "seed-0/checkpoint.pt",
                 "seed-0/metrics.jsonl", "seed-1/results.json"):
        assert (run_dir / name).stat().st_size > 0, name
    rows = [json.loads(l) for l in (run_dir / "seed-0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [100, 200, 300]

    capsys.readouterr()
    assert main(["eval", str(run_dir)]) == 0
    evaluated = json.loads((run_dir / "eval.json").read_text())
    assert evaluated["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-9)


def test_over_budget_override_is_recorded(tmp_path):
    cfg = replace(digits_cfg(steps=10), budget=BudgetConfig(max_params=1_000, max_steps=10_000))
    with pytest.raises(Exception, match="over budget"):
        prepare(cfg, data_root=None, device=CPU, allow_over=False)
    prep = prepare(cfg, data_root=None, device=CPU, allow_over=True)
    assert fit(prep, 0, tmp_path / "seed-0", progress=False)["over_budget"] is True


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
    cfg = digits_cfg("train.ema_decay=0.9", "optim.schedule=onecycle",
                     "data.augment.crop=2", "data.augment.hflip=0.5")
    prep = prepare(cfg, data_root=None, device=CPU, allow_over=False)
    straight = fit(prep, 3, tmp_path / "straight", progress=False)

    calls = {"n": 0}
    real = train_mod.evaluate_classifier

    def dies_on_second_eval(*a, **k):  # the validation pass at step 40
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "evaluate_classifier", dies_on_second_eval)
    with pytest.raises(KeyboardInterrupt):
        fit(prep, 3, tmp_path / "killed", progress=False)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["step"] == 20  # eval runs before the save
    monkeypatch.setattr(train_mod, "evaluate_classifier", real)
    resumed = fit(prep, 3, tmp_path / "killed", progress=False)

    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    for k in a["objective"]:
        assert torch.equal(a["objective"][k], b["objective"][k]), k
    for k in ("test_accuracy", "train_accuracy", "val_accuracy", "test_loss"):
        assert straight[k] == resumed[k]
    assert (tmp_path / "straight" / "metrics.jsonl").read_text() .count("\n") == \
        (tmp_path / "killed" / "metrics.jsonl").read_text().count("\n")


def test_checkpoint_of_another_preset_is_refused(tmp_path):
    prep = prepare(digits_cfg(steps=20), data_root=None, device=CPU, allow_over=False)
    fit(prep, 0, tmp_path / "s", progress=False)
    other = prepare(digits_cfg(preset="addnist-mobilenet", steps=20), data_root=None, device=CPU, allow_over=False)
    with pytest.raises(Exception, match="belongs to another config"):
        fit(other, 0, tmp_path / "s", progress=False)


def test_nonfinite_loss_stops_with_step_named(tmp_path):
    prep = prepare(digits_cfg("optim.lr=1e6", "optim.name=sgd", steps=30), data_root=None, device=CPU,
                   allow_over=False)
    with pytest.raises(train_mod.NonFiniteLoss, match=r"non-finite .* at step \d+; last good checkpoint"):
        fit(prep, 0, tmp_path / "s", progress=False)


def test_nonfinite_skip_counts(tmp_path):
    prep = prepare(digits_cfg("optim.lr=1e6", "optim.name=sgd", "train.nonfinite=skip", steps=30),
                   data_root=None, device=CPU, allow_over=False)
    assert fit(prep, 0, tmp_path / "s", progress=False)["nonfinite_skipped"] > 0


def test_lr_find_writes_plot_and_suggestion(capsys, tmp_path):
    code = main(["lr-find", "--preset", "mnist-lenet", "--dataset", "digits", "--range-steps", "40",
                 "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "lr-find-mnist-lenet-digits.json").read_text())
    assert 1e-6 <= data["suggested_lr"] <= 1.0 and len(data["lrs"]) == len(data["losses"]) > 3
    assert (tmp_path / "lr-find-mnist-lenet-digits.png").stat().st_size > 0


def test_nonfinite_gradient_with_finite_loss_is_refused_before_the_update():
    from budgetvision.objectives.base import optimizer_step

    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=0.1)
    with pytest.raises(train_mod.NonFiniteLoss, match="non-finite gradient of the loss"):
        optimizer_step(torch.sqrt(w).sum(), opt, [w])  # loss 0, gradient inf
    assert torch.equal(w.detach(), torch.zeros(3)) and w.grad is None


def test_val_fraction_zero_trains_on_the_whole_split_and_reports_no_val(capsys, tmp_path):
    """mnist-lenet trains on the whole split, as Rzayev did: no validation passes, val accuracy
    null per seed and over seeds, and the summary, the graph and the report still work."""
    assert get_preset("mnist-lenet").config.data.val_fraction == 0
    assert main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "20", "--seeds", "2",
                 "--out", str(tmp_path / "runs"), "--no-progress", "--set", "train.eval_every=10"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["val_accuracy"] is None and results["val_accuracy_std"] is None
    assert all(r["val_accuracy"] is None for r in results["per_seed"])
    assert results["per_seed"][0]["train_accuracy_n"] == 1797 - 450       # every digits train image
    rows = [json.loads(l) for l in (run_dir / "seed-0" / "metrics.jsonl").read_text().splitlines()]
    assert rows and not [r for r in rows if r["kind"] == "val"]
    assert "test" in capsys.readouterr().out and (run_dir / "training.png").stat().st_size > 0
    assert main(["report", str(run_dir)]) == 0
    assert "trained on the whole training split" in (run_dir / "report.html").read_text()


def test_per_batch_spread_is_over_shuffled_batches_not_stored_order():
    """A folder set is stored class by class. A classifier right on 90 % of every class (its
    errors, as they may well be, stored together) has per-batch accuracies whose spread is the
    binomial sqrt(0.9 x 0.1 / 100) = 0.03 over random batches of 100; in stored order each batch
    is one class's first or second half, 80 % or 100 % right, and the spread would be 0.10."""
    from torch import nn

    from budgetvision.evaluation.classification import evaluate_classifier

    classes, per_class = 10, 200
    y = torch.arange(classes).repeat_interleave(per_class)
    wrong = (torch.arange(len(y)) % per_class) < per_class // 10   # each class's first 20 images
    x = torch.zeros(len(y), 1, 2, 2, dtype=torch.uint8)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = y.to(torch.uint8), wrong.to(torch.uint8)

    class Oracle(nn.Module):  # reads the label and whether to miss it from the pixels
        def forward(self, xb):
            label, miss = xb[:, 0, 0, 0].round().long(), xb[:, 0, 0, 1] > 0.5
            return nn.functional.one_hot(torch.where(miss, (label + 1) % classes, label), classes).float()

    kw = dict(mean=(0.0,), std=(1 / 255,), device="cpu", num_classes=classes, batch_size=100)
    out = evaluate_classifier(Oracle(), x, y, **kw)
    assert out["accuracy"] == pytest.approx(0.9, abs=1e-12)
    assert 0.015 < out["batch_accuracy_std"] < 0.045            # the binomial 0.03, from 20 batches
    assert evaluate_classifier(Oracle(), x, y, **kw)["batch_accuracy_std"] == out["batch_accuracy_std"]  # seeded
    stored = evaluate_classifier(Oracle(), x, y, spread_seed=None, **kw)["batch_accuracy_std"]
    assert stored == pytest.approx(0.1026, abs=1e-3)             # std of ten 0.8s and ten 1.0s (n - 1)


@pytest.mark.parametrize("cpu_amp, rel", [
    (False, 1e-4),
    pytest.param(True, 2e-3, marks=pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")),
])
def test_compile_changes_speed_not_what_a_short_run_computes(tmp_path, cpu_amp, rel):
    """cifar100-dsc-transformer compiles its network (the one preset where torch.compile measured
    faster on the CPU): three steps with it on and off log the same losses up to float rounding in the
    fused kernels, and evaluate to the same test accuracy. In fp32 within relative 1e-4; in bf16 (the
    preset's default on a bf16-native CPU) within 2e-3, half of bf16's rounding step 2^-8 (measured:
    2.3e-4 at step 3)."""
    assert get_preset("cifar100-dsc-transformer").config.train.compile
    losses, accuracy = {}, {}
    for on in (True, False):
        out = tmp_path / str(on)
        assert main(["train", "--preset", "cifar100-dsc-transformer", "--dataset", "digits", "--steps", "3",
                     "--out", str(out), "--no-progress", "--set", "train.batch_size=32", "train.log_every=1",
                     "train.eval_every=3", f"train.compile={str(on).lower()}",
                     f"train.cpu_amp={str(cpu_amp).lower()}"]) == 0
        rows = [json.loads(line) for line in next(out.glob("*/seed-0/metrics.jsonl")).read_text().splitlines()]
        losses[on] = [r["loss"] for r in rows if r["kind"] == "train"]
        accuracy[on] = json.loads(next(out.glob("*/results.json")).read_text())["test_accuracy"]
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], rel=rel)
    assert accuracy[True] == pytest.approx(accuracy[False], abs=0.002)   # a label flipped at most


@pytest.mark.parametrize("name", ["speedrun_convnet", "dsc_transformer", "addnist_digit_sum", "lenet5"])
def test_channels_last_changes_speed_not_results(name):
    """The CPU default (channels_last, measured faster there) computes the same logits and gradients as
    the default layout, up to float rounding in the convolutions (relative 1e-4; measured ~5e-6)."""
    from budgetvision.models import build_model

    torch.manual_seed(0)
    channels = 3 if name in ("addnist_digit_sum", "dsc_transformer") else 1
    size = 28 if name == "addnist_digit_sum" else 16
    nets = [build_model(name, in_channels=channels, num_classes=10, image_size=size) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    nets[1].to(memory_format=torch.channels_last)
    x, y = torch.randn(16, channels, size, size), torch.randint(0, 10, (16,))
    logits = []
    for net in nets:
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        logits.append(out.detach())
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-4, atol=1e-5)
    for (k, a), (_, b) in zip(nets[0].named_parameters(), nets[1].named_parameters()):
        scale = a.grad.abs().max().clamp_min(1e-12)
        assert ((a.grad - b.grad).abs().max() / scale).item() < 1e-4, k


def test_bf16_autocast_runs_on_cuda_and_only_on_a_bf16_cpu_where_asked(monkeypatch):
    import budgetvision.device as dev

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(dev, "cpu_has_bf16", lambda: native)
        assert dev.amp_dtype(cuda, amp=True, cpu_amp=False) is torch.bfloat16
        assert dev.amp_dtype(cuda, amp=False, cpu_amp=True) is None
        assert dev.amp_dtype(cpu, amp=True, cpu_amp=False) is None
        assert dev.amp_dtype(cpu, amp=False, cpu_amp=True) is None
        assert dev.amp_dtype(cpu, amp=True, cpu_amp=True) is (torch.bfloat16 if native else None)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16 (AVX-512-BF16 or AMX): cpu_amp is off here")
@pytest.mark.parametrize("preset, steps, extra", [
    ("cifar100-speedrun-convnet", 200, []),
    ("cifar100-dsc-transformer", 100, ["train.batch_size=64", "train.compile=false"]),   # its default: bf16
])
def test_cpu_bf16_changes_speed_not_what_a_short_run_learns(tmp_path, preset, steps, extra):
    """train.cpu_amp trains a recipe to about the accuracy of fp32 and says so in results.json: a short
    run on the digits with it on and off, the test split's accuracies within 2 points (measured on an
    Intel Xeon with AMX: speedrun at 200 steps 98.89 % fp32, 99.11 % bf16; dsc-transformer at 100 steps
    93.56 % both, as on an AMD EPYC). The speedrun takes 200: at 100, ten epochs in, the Xeon's bf16 run
    read 95.78 % against 98.00 % (the EPYC's 99.78 % against 99.56 %), runs not yet settled enough for two
    precisions to agree within 2 points on every CPU. At 3,000 CIFAR-10-JPEG steps the speedrun read 0.30
    points lower in bf16 over three seeds and keeps fp32; cifar100-dsc-transformer, level there, trains
    in bf16 (docs/speed.md: Precision)."""
    accuracy = {}
    for on in (False, True):
        out = tmp_path / str(on)
        assert main(["train", "--preset", preset, "--dataset", "digits", "--steps", str(steps),
                     "--out", str(out), "--no-progress", "--set", f"train.eval_every={steps}", *extra,
                     f"train.cpu_amp={str(on).lower()}"]) == 0
        results = json.loads(next(out.glob("*/results.json")).read_text())
        assert results["precision"] == ("bf16 autocast" if on else "fp32")
        accuracy[on] = results["test_accuracy"]
    assert abs(accuracy[True] - accuracy[False]) <= 0.02, accuracy


@pytest.mark.parametrize("step, warmup, expected_decay", [(0, True, 0.1), (10, True, 11 / 20), (20_000, True, 0.999),
                                                          (0, False, 0.999)])
def test_ema_decay_ramps_up_as_tensorflows_num_updates(step, warmup, expected_decay):
    from types import SimpleNamespace

    fake = SimpleNamespace(tc=SimpleNamespace(ema_decay=0.999, ema_warmup=warmup), step=step)
    ema, params = [torch.zeros(3)], [torch.ones(3)]
    train_mod.Training._ema_update(fake, ema, params, torch.tensor(step))
    torch.testing.assert_close(ema[0], torch.full((3,), 1 - expected_decay))
