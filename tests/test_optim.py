"""The optimisers and schedules built from an OptimConfig, against torch's own implementations."""
import copy

import pytest
import torch

from budgetvision.config import OptimConfig
from budgetvision.optim import ConvMuon, build_optimizer, build_scheduler

CPU = torch.device("cpu")


def _step_both(mine, ours_params, ref, ref_params, shapes, steps=3):
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        for p, q, shape in zip(ours_params, ref_params, shapes, strict=True):
            g = torch.randn(shape, generator=gen)
            p.grad, q.grad = g.reshape(p.shape).clone(), g.reshape(q.shape).clone()
        mine.step()
        ref.step()


def test_conv_muon_steps_every_non_filter_parameter_as_torch_nesterov_sgd():
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(5))]
    qs = copy.deepcopy(ps)
    mine = ConvMuon(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, muon_lr=0.02)
    ref = torch.optim.SGD(qs, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    _step_both(mine, ps, ref, qs, [(5, 3), (5,)])
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (40, 2, 1, 1)])   # wide and tall once flattened
def test_conv_muon_steps_a_filter_as_torch_muon_steps_its_flattened_matrix(shape):
    torch.manual_seed(0)
    conv = torch.nn.Parameter(torch.randn(shape))
    flat = torch.nn.Parameter(conv.detach().reshape(shape[0], -1).clone())
    mine = ConvMuon([conv], lr=0.1, momentum=0.95, weight_decay=0.1, muon_lr=0.05)
    ref = torch.optim.Muon([flat], lr=0.05, momentum=0.95, weight_decay=0.1)
    before = flat.detach().clone()
    _step_both(mine, [conv], ref, [flat], [flat.shape])
    torch.testing.assert_close(conv.detach().reshape(flat.shape), flat.detach(), rtol=0, atol=0)
    assert (flat - before).abs().max() > 1e-3   # the steps moved the weights


def test_muon_builds_two_groups_and_onecycle_peaks_each_at_its_own_rate():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 5, 5))
    cfg = OptimConfig(name="muon", lr=0.2, muon_lr=0.03, schedule="onecycle")
    opt = build_optimizer(net.parameters(), cfg, CPU)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 5]   # the filter; bias, BN x2, head x2
    sched = build_scheduler(opt, cfg, steps=10)
    peaks = [0.0, 0.0]
    for _ in range(10):
        opt.step()
        sched.step()
        peaks = [max(a, g["lr"]) for a, g in zip(peaks, opt.param_groups)]
    assert peaks == pytest.approx([0.03, 0.2], rel=1e-6)


@pytest.mark.parametrize("cycle", [True, False])
def test_onecycle_cycles_momentum_only_when_asked_else_each_group_keeps_its_own(cycle):
    """airbench's Muon recipe: filters at momentum 0.6, the rest at 0.85, neither cycled."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 5, 5))
    cfg = OptimConfig(name="muon", momentum=0.85, muon_momentum=0.6, schedule="onecycle", onecycle_momentum=cycle)
    opt = build_optimizer(net.parameters(), cfg, CPU)
    sched = build_scheduler(opt, cfg, steps=10)
    seen = []
    for _ in range(10):
        seen.append([g["momentum"] for g in opt.param_groups])
        opt.step()
        sched.step()
    if cycle:   # torch's 0.95 at the start, 0.85 at the peak (step 0.3 x 10 - 1 = 2), for both groups
        assert seen[0] == pytest.approx([0.95, 0.95]) and seen[2] == pytest.approx([0.85, 0.85])
    else:
        assert seen == [[0.6, 0.85]] * 10


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_the_fused_cpu_update_is_torchs_default_update_to_rounding(name):
    # build_optimizer takes torch's fused kernels on the CPU (a speed default): over 20 steps they
    # must move the parameters as torch's default for-loop implementation does.
    cfg = OptimConfig(name=name, lr=0.05, weight_decay=1e-2, momentum=0.9)
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(6, 4)), torch.nn.Parameter(torch.randn(6))]
    qs, start = copy.deepcopy(ps), copy.deepcopy(ps)
    mine = build_optimizer(ps, cfg, CPU)
    assert mine.defaults["fused"] is True
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    extra = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {"betas": cfg.betas}
    ref = kind(qs, lr=0.05, weight_decay=1e-2, foreach=False, **extra)
    _step_both(mine, ps, ref, qs, [(6, 4), (6,)], steps=20)
    for p, q, p0 in zip(ps, qs, start):
        assert (p - p0).abs().min() > 1e-3                      # every entry moved
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
