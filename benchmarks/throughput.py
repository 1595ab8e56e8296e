"""Training throughput of every preset: the tool's loop beside a plain PyTorch baseline.

The baseline trains the same network with the same optimiser the way a typical script does:
a torchvision-style Dataset with per-sample transforms, a DataLoader, `.item()` every step.
Both see the same data set (CIFAR presets fall back to an image folder when CIFAR-100 is absent).

    python benchmarks/throughput.py --data-root ../shared/data --cifar folder:/tmp/cifar10-jpeg
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from budgetvision.config import apply_overrides
from budgetvision.errors import DataError
from budgetvision.objectives import build_objective
from budgetvision.presets import PRESETS
from budgetvision.device import resolve_device
from budgetvision.optim import build_optimizers
from budgetvision.loop import fit, input_stats, prepare


class PerSampleDataset(Dataset):
    """What a plain script does: index one image, transform it in Python."""

    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def baseline_images_per_s(prep, steps: int, workers: int) -> float:
    cfg, spec, device = prep.config, prep.splits.spec, prep.device
    mean, std = input_stats(cfg, spec)
    aug = cfg.data.augment
    ops = []
    if aug.crop:
        ops.append(v2.RandomCrop(spec.image_size, padding=aug.crop))
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.randaugment:
        ops.append(v2.RandAugment(aug.randaugment, aug.randaugment_magnitude))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    data = PerSampleDataset(*prep.splits.train, v2.Compose(ops))
    loader = DataLoader(data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True, num_workers=workers)
    objective = build_objective(cfg, spec).to(device)
    opts = build_optimizers(objective, cfg.optim, device)
    done, t0, images = 0, None, 0
    while done < steps:
        for x, y in loader:
            out = objective.train_step(x.to(device), y.to(device), opts, grad_clip=cfg.train.grad_clip)
            out["loss"].item()
            done += 1
            if done == 3:  # warm-up excluded
                t0, images = time.perf_counter(), 0
            elif done > 3:
                images += len(y)
            if done >= steps:
                break
    return images / (time.perf_counter() - t0)


def tool_images_per_s(prep, steps: int) -> float:
    cfg = apply_overrides(prep.config, [f"train.steps={steps}", "train.log_every=5", f"train.eval_every={steps}",
                                        f"train.checkpoint_every={steps}", f"train.sample_every={steps}"])
    prep = type(prep)(cfg, prep.splits, prep.device, prep.params, prep.param_counts, prep.over_budget)
    with tempfile.TemporaryDirectory() as tmp:
        fit(prep, 0, Path(tmp), progress=False)
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in rows if r["kind"] == "train"][1:]  # the first 5 steps warm up
    rates.sort()
    return rates[len(rates) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="*", default=sorted(PRESETS))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--data-root", default=None)
    p.add_argument("--cifar", default=None, help="stand-in data set for cifar100 presets, e.g. folder:PATH")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    p.add_argument("--no-baseline", action="store_true")
    args = p.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, {args.steps} steps per measurement (warm-up excluded)")
    print(f"{'preset':28} {'dataset':26} {'tool img/s':>11} {'baseline':>9} {'ratio':>6}")
    for name in args.presets:
        cfg = PRESETS[name].config
        dataset = cfg.data.name
        if dataset == "cifar100" and args.cifar:
            dataset = args.cifar
        cfg = apply_overrides(cfg, [f"data.name={dataset}"])
        try:
            prep = prepare(cfg, data_root=Path(args.data_root) if args.data_root else None, device=device,
                           allow_over=False)
        except DataError as e:
            print(f"{name:28} skipped: {e}")
            continue
        tool = tool_images_per_s(prep, args.steps)
        if args.no_baseline or cfg.task != "classify":
            print(f"{name:28} {dataset[-26:]:26} {tool:11.0f}")
            continue
        base = baseline_images_per_s(prep, args.steps, args.workers)
        print(f"{name:28} {dataset[-26:]:26} {tool:11.0f} {base:9.0f} {tool / base:6.2f}")


if __name__ == "__main__":
    main()
