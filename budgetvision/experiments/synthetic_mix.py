"""Train a classifier on real and generated images mixed at given real fractions (Rzayev section 4).

Every mix has the same total size and the real training set's class proportions; a per-class
override sets one class's real fraction on its own (the paper's experiment on a single digit).
Test accuracy is always on the real test split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import apply_overrides
from ..data import Splits, load_splits
from ..errors import BudgetVisionError, ConfigError
from ..runs import open_generator, sample, to_uint8
from ..io import write_json
from ..presets import get_preset
from ..report.plots import confusion_matrix, fraction_curve
from ..loop import fit
from ..setup import Prepared, config_params
from ..budget import budget_of, enforce_budget

GENERATED_SEED_OFFSET = 1_000_000  # generated images use seeds far from the 0-63 preview grids
PAPER_LR = 1e-3      # paper (4.2): "A learning rate of 0.001 achieved the best results"
PAPER_BATCH = 32     # paper (4.2): "Batch size 32 gave better results for different values of learning rate"
EPOCHS = 5           # CHOICE: the paper's LeNet trains "5 epochs" (3.3); it gives no length for the mixes


def class_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in the proportions `counts`, exactly (largest remainder)."""
    quota = counts / counts.sum() * total
    k = np.floor(quota).astype(np.int64)
    k[np.argsort(-(quota - k), kind="stable")[: total - int(k.sum())]] += 1
    return k


def mix_plan(y_real: Tensor, total: int, real_fraction: float, overrides: dict[int, float]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per class: how many real and how many generated images a mix holds."""
    classes = int(y_real.max()) + 1
    per_class = class_quotas(np.bincount(y_real.numpy(), minlength=classes), total)
    fractions = np.array([overrides.get(c, real_fraction) for c in range(classes)])
    real = np.minimum(np.round(per_class * fractions).astype(np.int64), np.bincount(y_real.numpy(), minlength=classes))
    return real, per_class - real


def build_mix(x_real: Tensor, y_real: Tensor, generated: dict[int, Tensor], real: np.ndarray, fake: np.ndarray,
              seed: int) -> tuple[Tensor, Tensor]:
    """The mixed training set: a seeded choice of real images per class, plus the first
    `fake[c]` generated images of each class c."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(len(real)):
        idx = rng.permutation(np.flatnonzero(y_real.numpy() == c))[: real[c]]
        xs += [x_real[torch.from_numpy(idx)], generated[c][: fake[c]]]
        ys += [torch.full((int(real[c]) + int(fake[c]),), c, dtype=torch.long)]
    return torch.cat(xs).contiguous(), torch.cat(ys)


def run_synthetic_mix(generator_run: Path, *, fractions: list[float], overrides: dict[int, float],
                      classifier: str, steps: int | None, total: int | None, out: Path, device,
                      data_root: Path | None, progress: bool = True, lr: float | None = None,
                      batch_size: int | None = None) -> dict:
    """Train `classifier` (a preset) on each mix, by default with the paper's lr and batch for
    EPOCHS epochs of the mix (whole batches per epoch rounded up, as Keras counts them)."""
    lr = PAPER_LR if lr is None else lr
    batch_size = PAPER_BATCH if batch_size is None else batch_size
    if not fractions or any(not 0 <= f <= 1 for f in fractions):
        raise ConfigError("--real-fractions must be numbers in [0, 1]")
    gen_cfg, objective, network = open_generator(generator_run, device=device, data_root=data_root)
    if not objective.conditional:
        raise BudgetVisionError(f"{generator_run} is unconditional; a synthetic mix needs class-conditional samples")
    splits = load_splits(gen_cfg.data.name, data_root, val_fraction=gen_cfg.data.val_fraction,
                         seed=gen_cfg.data.split_seed)
    spec = splits.spec
    bad = [c for c in overrides if not 0 <= c < spec.num_classes]
    if bad or any(not 0 <= f <= 1 for f in overrides.values()):
        raise ConfigError(f"--class-override needs CLASS:FRACTION with classes in 0..{spec.num_classes - 1} "
                          "and fractions in [0, 1]")
    x_real, y_real = splits.train
    total = total or len(y_real)
    steps = steps or EPOCHS * -(-total // max(batch_size, 1))
    cfg = apply_overrides(get_preset(classifier).config, [f"data.name={gen_cfg.data.name}", f"optim.lr={lr}",
                                                          f"train.batch_size={batch_size}", f"train.steps={steps}"])
    if cfg.task != "classify":
        raise ConfigError(f"--classifier must be a classifier preset, got '{classifier}'")
    counts = config_params(cfg, data_root)
    over = enforce_budget(counts["total"], cfg.train.steps, budget_of(cfg), allow_over=False)

    plans = {f: mix_plan(y_real, total, f, overrides) for f in fractions}
    need = np.max([fake for _, fake in plans.values()], axis=0)
    generated = {}
    for c in range(spec.num_classes):  # one generated pool per class, shared by every mix
        seeds = [GENERATED_SEED_OFFSET + c * total + i for i in range(int(need[c]))]
        labels = torch.full((len(seeds),), c, dtype=torch.long, device=device)
        generated[c] = to_uint8(sample(objective, network, seeds, labels)) if seeds else x_real[:0]

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in fractions:
        real, fake = plans[f]
        mixed = Splits(spec, build_mix(x_real, y_real, generated, real, fake, seed=cfg.train.seed),
                       splits.val, splits.test)
        prep = Prepared(cfg, mixed, device, counts["total"], counts, over)
        name = f"real-{f:g}"
        result = fit(prep, cfg.train.seed, out / name, progress=progress)
        confusion_matrix(result["confusion"], spec.class_names, out / f"{name}-confusion.png",
                         f"{classifier} trained on {100 * f:g} % real: test confusion")
        rows.append({"real_fraction": f, "real_images": int(real.sum()), "generated_images": int(fake.sum()),
                     "test_accuracy": result["test_accuracy"],
                     "per_class_accuracy": (torch.tensor(result["confusion"]).diag()
                                            / torch.tensor(result["confusion"]).sum(1).clamp_min(1)).tolist()})
    summary = {"experiment": "synthetic-mix", "generator": str(generator_run), "generator_preset": gen_cfg.preset,
               "classifier": classifier, "dataset": gen_cfg.data.name, "total": total,
               "class_overrides": {str(k): v for k, v in overrides.items()}, "steps": cfg.train.steps,
               "batch_size": cfg.train.batch_size, "lr": cfg.optim.lr, "params": counts["total"], "rows": rows}
    write_json(out / "synthetic-mix.json", summary)
    fraction_curve([r["real_fraction"] for r in rows], [r["test_accuracy"] for r in rows], out / "synthetic-mix.png",
                   f"{classifier} on real + {gen_cfg.preset} samples ({total:,} images)")
    return summary


def parse_overrides(text: str | None) -> dict[int, float]:
    """'0:0.4,3:0' -> {0: 0.4, 3: 0.0}."""
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        try:
            c, f = part.split(":")
            out[int(c)] = float(f)
        except ValueError:
            raise ConfigError(f"bad --class-override {part!r}: use CLASS:FRACTION, e.g. 0:0.4") from None
    return out


def parse_fractions(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"bad --real-fractions {text!r}: use e.g. 0,0.1,0.25,0.5,1") from None
