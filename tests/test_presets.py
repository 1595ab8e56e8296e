"""Every preset, the papers' and ours, in its own setting: builds, is counted by the function that
enforces the budget, and one training step reaches every trained parameter with a finite gradient."""
from pathlib import Path

import pytest
import torch

from budgetvision.budget import enforce_budget
from budgetvision.cli import main
from budgetvision.config import apply_overrides
from budgetvision.setup import config_params, input_stats, param_counts, shape_spec
from budgetvision.models.layers import init_from_data
from budgetvision.models.registry import NORMALISATION_STATISTICS, buffer_roles, count_params
from budgetvision.objectives import build_objective
from budgetvision.optim import build_optimizers
from budgetvision.presets import PRESETS, get_preset

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_within_budget_and_one_step_reaches_every_parameter(name):
    cfg = apply_overrides(get_preset(name).config, ["train.batch_size=4"])
    spec = shape_spec(cfg)   # the preset's own data set's shape: no images needed
    torch.manual_seed(0)
    objective = build_objective(cfg, spec)
    counts = param_counts(objective)
    assert counts == config_params(cfg)
    assert enforce_budget(counts["total"], cfg.train.steps, cfg.budget, allow_over=False) is False
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")

    mean, std = input_stats(cfg, spec)
    x = torch.rand(4, spec.channels, spec.image_size, spec.image_size)
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    y = torch.arange(4) % spec.num_classes
    opts = build_optimizers(objective, cfg.optim, CPU)
    tensors = lambda: {k: v for k, v in objective.state_dict().items() if isinstance(v, torch.Tensor)}  # noqa: E731
    before = {k: v.detach().clone() for k, v in tensors().items()}
    out = objective.train_step(x, y, opts, grad_clip=cfg.train.grad_clip)
    assert all(torch.isfinite(v).all() for v in out.values())
    changed = [k for k, v in tensors().items() if not torch.equal(v, before[k])]
    assert changed, "one step changed nothing"
    for group, params in objective.optimizer_groups().items():
        for p in params:
            assert p.grad is not None, f"{name}: a {group} parameter {tuple(p.shape)} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {group}"
    if not objective.optimizer_groups():   # PCA: fitted in closed form, its statistics move instead
        assert any("sum" in k or "count" in k for k in changed)


def test_no_generator_preset_sets_the_validation_cadence_it_never_uses():
    """train.eval_every paces classifiers' validation passes; the loop validates no generator (they are
    scored after training, by `budgetvision eval`), so a generator preset setting it, commented "FID on
    10,000 samples is costly", promised an evaluation that never ran."""
    from budgetvision.config import TrainConfig

    generators = [n for n, p in PRESETS.items() if p.config.task == "generate"]
    assert len(generators) == 11
    assert [n for n in generators if PRESETS[n].config.train.eval_every != TrainConfig().eval_every] == []


def _saved_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of `module`, so all inference can read: each tensor once (tied ones too)."""
    seen, out = set(), {}
    for key, value in module.state_dict(keep_vars=True).items():
        if isinstance(value, torch.Tensor) and id(value) not in seen:
            seen.add(id(value))
            out[key] = value
    return out


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_tensor_a_preset_keeps_is_counted_unless_the_rule_exempts_it(name):
    """The budget rule (docs/budgets.md): every tensor a preset's networks keep is counted by
    count_params, except BatchNorm's running statistics, spectral norm's power-iteration vectors and
    declared training-only accumulators. A whitening stem's filters, fitted from the data and kept as
    a buffer, once went uncounted; a new fitted buffer that is not declared fails here."""
    cfg = get_preset(name).config
    spec = shape_spec(cfg)
    torch.manual_seed(0)
    objective = build_objective(cfg, spec)
    networks = objective.trained_networks()
    mean, std = input_stats(cfg, spec)
    x = (torch.rand(64, spec.channels, spec.image_size, spec.image_size) - mean[0]) / std[0]
    for network in networks.values():
        init_from_data(network, x)        # the loop fits what is fitted before the first step
    in_networks = {id(t) for net in networks.values() for t in _saved_tensors(net).values()}
    assert not [k for k, t in _saved_tensors(objective).items() if id(t) not in in_networks], \
        "the objective keeps a tensor outside its counted networks"
    allowed = {n for names in NORMALISATION_STATISTICS.values() for n in names}
    for role, network in networks.items():
        roles = buffer_roles(network)
        undeclared = [k for k, r in roles.items() if r == "undeclared"]
        assert not undeclared, f"{name}: {role} keeps buffers the budget rule does not place: {undeclared}"
        exempt = {k for k, r in roles.items() if r in ("normalisation", "training state")}
        assert all(k.rsplit(".", 1)[-1] in allowed for k, r in roles.items() if r == "normalisation")
        kept = sum(t.numel() for k, t in _saved_tensors(network).items() if k not in exempt)
        assert count_params(network) == kept, f"{name}: {role} keeps {kept:,} values, counts {count_params(network):,}"


def test_readme_presets_table_is_what_presets_markdown_prints(capsys):
    """The table of presets and their parameter counts (docs/presets.md, linked from the README) went
    stale once (a recipe's network changed, the table kept the old count): it must be
    `budgetvision presets --markdown` verbatim."""
    assert main(["presets", "--markdown"]) == 0
    printed = capsys.readouterr().out.strip()
    page = (Path(__file__).resolve().parents[1] / "docs" / "presets.md").read_text()
    start = page.index(printed.splitlines()[0])
    assert page[start:start + len(printed)] == printed
