"""Per-class PCA against a GAN, both scored by a classifier judge (seed 004 section 5).

PCA is fitted once, in closed form, on the generator's whole training split with the largest
component count asked for; fewer components are the leading ones of that fit (component space
draws beyond k set to zero), so every count is exact and the eigendecomposition runs once."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import load_splits
from ..errors import ConfigError
from ..evaluation.judge import check_judge_fits, judge_fid, judge_scores
from ..runs import open_generator, open_judge, sample, to_uint8
from ..io import write_json
from ..objectives.base import default_labels, seeded_normal
from ..models.pca import PCAGenerator
from ..report.plots import components_curve

FIT_CHUNK = 2_000  # images per accumulation step when fitting PCA


def parse_components(text: str) -> list[int]:
    try:
        ks = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"bad --components {text!r}: use e.g. 1,2,4,8,16,32,64") from None
    if not ks or ks[0] < 1:
        raise ConfigError("--components must be positive integers")
    return ks


def run_pca_vs_gan(gan_run: Path, judge_run: Path, *, components: list[int], n: int, out: Path, device,
                   data_root: Path | None) -> dict:
    if n < 1:
        raise ConfigError("--n must be >= 1")
    gan_cfg, objective, network = open_generator(gan_run, device=device, data_root=data_root)
    splits = load_splits(gan_cfg.data.name, data_root, val_fraction=gan_cfg.data.val_fraction,
                         seed=gan_cfg.data.split_seed)
    spec = splits.spec
    judge = open_judge(judge_run, device=device, data_root=data_root)
    check_judge_fits(judge, spec, gan_cfg.preset)
    dim = spec.channels * spec.image_size ** 2
    if components[-1] > dim:
        raise ConfigError(f"--components goes up to {dim} (the pixels of one {spec.name} image)")
    seeds = list(range(n))
    labels = default_labels(seeds, spec.num_classes)
    real = splits.test[0][:n]

    gan_images = to_uint8(sample(objective, network, seeds, labels.to(device) if objective.conditional else None))
    gan = {"judge_accuracy": judge_scores(judge, gan_images, labels, device=device)["accuracy"]
           if objective.conditional else None,
           "judge_fid": judge_fid(judge, gan_images, real, device=device)}

    pca = PCAGenerator(spec.num_classes, (spec.channels, spec.image_size, spec.image_size), components[-1]).to(device)
    x, y = splits.train
    for i in range(0, len(y), FIT_CHUNK):
        pca.accumulate(x[i:i + FIT_CHUNK].to(device).float() / 127.5 - 1, y[i:i + FIT_CHUNK].to(device))
    z = seeded_normal(seeds, (components[-1],), device)
    rows = []
    for k in components:
        with torch.no_grad():
            images = to_uint8(pca.generate(z * (torch.arange(components[-1], device=device) < k), labels.to(device)))
        scores = judge_scores(judge, images.cpu(), labels, device=device)
        rows.append({"components": k, "params": spec.num_classes * (k * dim + dim + k),
                     "judge_accuracy": scores["accuracy"], "judge_fid": judge_fid(judge, images.cpu(), real, device=device)})

    out.mkdir(parents=True, exist_ok=True)
    summary = {"experiment": "pca-vs-gan", "judge": judge.name, "gan": str(gan_run), "gan_preset": gan_cfg.preset,
               "dataset": spec.name, "n": n, "gan_scores": gan, "pca": rows}
    write_json(out / "pca-vs-gan.json", summary)
    components_curve([r["components"] for r in rows], [r["judge_accuracy"] for r in rows], gan["judge_accuracy"],
                     out / "pca-vs-gan.png", f"judge: {judge.name}", gan_label=gan_cfg.preset)
    return summary
