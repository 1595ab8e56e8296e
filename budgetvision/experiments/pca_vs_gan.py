"""Per-class PCA against a GAN, both scored by a classifier judge (Rzayev section 5).

PCA is fitted once, in closed form, on the generator's whole training split with the largest
component count asked for; fewer components are the leading ones of that fit (component space
draws beyond k set to zero), so every count is exact and the eigendecomposition runs once.

Rzayev's words fit two readings, so both are scored (`mode`): "sample", new images drawn in the
space of the leading k components ("each generated images were reassembled to their original
size"), and "reconstruct", real held-out test images projected onto their class's leading k
components and back ("Individual images were then reconstructed into its original size of
28 x 28 pixels")."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import load_splits
from ..data.datasets import eval_subset
from ..errors import ConfigError
from ..evaluation.judge import check_judge_fits, judge_fid, judge_scores
from ..runs import open_generator, open_judge, sample, to_uint8
from ..io import write_json
from ..objectives.base import default_labels, seeded_normal
from ..models.pca import PCAGenerator
from ..report.plots import components_curve

FIT_CHUNK = 2_000  # images per accumulation step when fitting PCA
MODES = ("sample", "reconstruct", "both")


def parse_components(text: str) -> list[int]:
    try:
        ks = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"bad --components {text!r}: use e.g. 1,2,4,8,16,32,64") from None
    if not ks or ks[0] < 1:
        raise ConfigError("--components must be positive integers")
    return ks


def run_pca_vs_gan(gan_run: Path, judge_run: Path, *, components: list[int], n: int, out: Path, device,
                   data_root: Path | None, mode: str = "both") -> dict:
    if n < 1:
        raise ConfigError("--n must be >= 1")
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
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
    real, real_labels, _ = eval_subset(splits.test, n)

    gan_images = to_uint8(sample(objective, network, seeds, labels.to(device) if objective.conditional else None))
    gan = {"judge_accuracy": judge_scores(judge, gan_images, labels, device=device)["accuracy"]
           if objective.conditional else None,
           "judge_fid": judge_fid(judge, gan_images, real, device=device)}

    pca = PCAGenerator(spec.num_classes, (spec.channels, spec.image_size, spec.image_size), components[-1]).to(device)
    x, y = splits.train
    for i in range(0, len(y), FIT_CHUNK):
        pca.accumulate(x[i:i + FIT_CHUNK].to(device).float() / 127.5 - 1, y[i:i + FIT_CHUNK].to(device))
    z = seeded_normal(seeds, (components[-1],), device)
    real_in = real.to(device).float() / 127.5 - 1

    def score(k: int, images: torch.Tensor, intended: torch.Tensor) -> dict:
        return {"components": k, "params": spec.num_classes * (k * dim + dim + k),
                "judge_accuracy": judge_scores(judge, images.cpu(), intended, device=device)["accuracy"],
                "judge_fid": judge_fid(judge, images.cpu(), real, device=device)}

    rows, rebuilt = [], []
    with torch.no_grad():
        for k in components:
            if mode in ("sample", "both"):
                drawn = pca.generate(z * (torch.arange(components[-1], device=device) < k), labels.to(device))
                rows.append(score(k, to_uint8(drawn), labels))
            if mode in ("reconstruct", "both"):
                back = pca.reconstruct(real_in, real_labels.to(device), k).clamp(-1, 1)
                rebuilt.append(score(k, to_uint8(back), real_labels))

    out.mkdir(parents=True, exist_ok=True)
    summary = {"experiment": "pca-vs-gan", "mode": mode, "judge": judge.name, "gan": str(gan_run),
               "gan_preset": gan_cfg.preset, "dataset": spec.name, "n": n, "gan_scores": gan,
               "pca": rows,                    # samples from k components, labelled seed % classes
               "pca_reconstruct": rebuilt}     # the first n test images through k components, their own labels
    write_json(out / "pca-vs-gan.json", summary)
    curves = {"per-class PCA samples": rows, "per-class PCA reconstructions of test images": rebuilt}
    components_curve({label: ([r["components"] for r in rs], [r["judge_accuracy"] for r in rs])
                      for label, rs in curves.items() if rs},
                     gan["judge_accuracy"], out / "pca-vs-gan.png", f"judge: {judge.name}", gan_label=gan_cfg.preset)
    return summary
