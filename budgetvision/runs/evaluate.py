"""Run-level evaluation: opens runs, samples, computes the metrics of evaluation/, writes `eval.json`.

A classifier run is re-evaluated on its test split. A generator run gets FID / KID / IS with the
standard Inception network against a reference split, improved precision and recall in the same
Inception features and in a judge's, a trained classifier's scores on class-conditional samples,
and LPIPS to the nearest training images (and `judge-confusion.png`).

The reference is the test split for reporting (`eval.json`), or train / val for choosing a setting
(`eval-train.json`, `eval-val.json`): scores against different references never share a file. Its
real images are `eval_draw`'s: the whole split, or a seeded draw stratified by class where --n is
smaller, never the first n (folders on disk are stored class by class).

Samples come from seeds 0..n-1, class seed % num_classes for conditional models (as `sample`
does), and are quantised to uint8 first, as a saved PNG would be: every metric sees exactly the
images a person could look at, on the same footing as the uint8 real images.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from ..data import Splits, load_splits, splits_of
from ..data.datasets import DRAW_RULE, EVAL_DRAW_SEED, draw_record, eval_subset
from ..errors import BudgetVisionError, ConfigError
from ..evaluation import evaluate_classifier
from ..evaluation import fid as fidlib
from ..evaluation.judge import Judge, check_judge_fits, judge_features, judge_predictions, judge_scores
from ..evaluation.perceptual import LPIPS_CANDIDATES, find_lpips_weights, load_lpips, nearest_lpips
from ..evaluation.precision_recall import PRC_K, precision_recall
from ..io import read_json, write_json
from ..models.layers import ViewAveraged
from ..report.plots import confusion_matrix
from ..setup import for_evaluation, input_stats
from .folder import mean_std, open_run, open_seed, seed_dirs, trained_spec
from .generate import sample, sampling_overrides, to_uint8

SPLITS = ("train", "val", "test")
LPIPS_SAMPLES = 1_000       # samples whose nearest training image LPIPS ranks (each costs 10 LPIPS passes)


def eval_file(run_dir: Path, reference: str = "test") -> Path:
    """Where a generator's scores against `reference` go: eval.json reports (test); the others choose."""
    return Path(run_dir) / ("eval.json" if reference == "test" else f"eval-{reference}.json")


def _split_name(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")


def _split(splits: Splits, split: str) -> tuple[Tensor, Tensor]:
    _split_name(split)
    images, labels = getattr(splits, split)
    if len(labels) == 0:
        raise ConfigError(f"{splits.spec.name} has no {split} split here (data.val_fraction = 0): "
                          "choose train or test")
    return images, labels


def _reference(splits: Splits, dataset: str, split: str, n: int, *, weights: Path, net, device, batch_size: int,
               val_fraction: float, split_seed: int, progress: bool) -> tuple[dict, Path, bool]:
    whole = _split(splits, split)
    images = eval_subset(whole, n)[0]
    # train / val depend on how val was carved; the test split does not. A draw names its seed.
    key = "" if split == "test" else f"-val{val_fraction:g}-seed{split_seed}"
    key += "" if len(images) == len(whole[1]) else f"-stratified{EVAL_DRAW_SEED}"
    path = fidlib.reference_path(dataset, split, len(images), fidlib.file_sha256(weights), key)
    stats, cached = fidlib.reference_statistics(images, path=path, net=net, weights=weights, device=device,
                                                batch_size=batch_size, progress=progress)
    return stats, path, cached


def fid_reference(dataset: str, split: str = "test", *, n: int = 10_000, data_root: Path | None = None,
                  device, inception_weights: Path | None = None, batch_size: int = 250,
                  val_fraction: float = 0.1, split_seed: int = 0, progress: bool = False) -> dict:
    """Compute (or find cached) the Inception reference statistics of n images of a data set's split
    (`eval_draw`'s, as eval reads them); what `eval --fid` then reuses. Returns where they are and what they hold."""
    _check_n(n)
    _split_name(split)
    weights = fidlib.find_inception_weights(inception_weights)
    device = torch.device(device)
    splits = load_splits(dataset, data_root, val_fraction=val_fraction, seed=split_seed)
    stats, path, cached = _reference(splits, dataset, split, n, weights=weights, net=None, device=device,
                                     batch_size=batch_size, val_fraction=val_fraction, split_seed=split_seed,
                                     progress=progress)
    return {"dataset": dataset, "split": split, "n": len(stats["features"]), "path": str(path), "cached": cached,
            "inception_weights": f"{weights.name} sha256:{fidlib.file_sha256(weights)[:16]}"}


def _draw(objective, network, seeds: list[int], labels: Tensor | None, batch_size: int, progress: bool) -> Tensor:
    out = []
    for i in tqdm(range(0, len(seeds), batch_size), desc="sampling", unit="batch", disable=not progress, leave=False):
        lab = None if labels is None else labels[i:i + batch_size]
        out.append(to_uint8(sample(objective, network, seeds[i:i + batch_size], lab, batch_size=batch_size)))
    return torch.cat(out)


def draw_timed(objective, network, seeds: list[int], labels: Tensor | None, *, batch_size: int = 250,
               progress: bool = False) -> tuple[Tensor, float]:
    """uint8 samples of `seeds` and the rate they were drawn at, images/s (each batch is copied to
    the host, so the clock stops after the device has finished)."""
    start = time.perf_counter()
    images = _draw(objective, network, seeds, labels, batch_size, progress)
    return images, len(seeds) / (time.perf_counter() - start)


def _frechet(generated: Tensor, real: Tensor) -> float:
    return fidlib.frechet_distance(*fidlib.feature_stats(generated), *fidlib.feature_stats(real))


def _prc(real: Tensor, generated: Tensor, device: torch.device) -> dict:
    # float64 distances: on the GPU when there is one, else the CPU (MPS has no float64)
    on = device if device.type == "cuda" else torch.device("cpu")
    return precision_recall(real.to(on), generated.to(on))


def _find_weights(explicit: Path | None, *, required: bool) -> Path | None:
    """The Inception weights, or None where they cannot be found and are not `required`."""
    try:
        return fidlib.find_inception_weights(explicit)
    except BudgetVisionError as e:
        if required or explicit is not None:  # a named file that is not there is a typo, not an absence
            raise
        warnings.warn(f"--prc: precision and recall in the judge's features only; {e}")
        return None


def evaluate_generator(run_dir: Path, *, fid: bool = False, kid: bool = False, inception_score: bool = False,
                       prc: bool = False, n: int = 10_000, judge: Path | None = None, lpips: bool = False,
                       inception_weights: Path | None = None, lpips_weights: Path | None = None,
                       data_root: Path | None = None, device, run_seed: int | None = None,
                       judge_seed: int | None = None, batch_size: int = 250, lpips_n: int = LPIPS_SAMPLES,
                       sampler: str | None = None, sample_steps: int | None = None,
                       cfg_scale: float | None = None, guidance_interval: str | None = None, ema: bool = True,
                       reference: str = "test", progress: bool = False) -> dict:
    """Sample seeds 0..n-1 of a generator run and score them against `reference`'s real images (test
    reports; train or val choose); merges into the run's `eval_file(run_dir, reference)` (kept keys
    from an earlier call on the same checkpoint) and returns what this call computed
    together with the run's identity. `prc` measures precision and recall in the Inception features
    and, given a judge, in the judge's; with a judge the Inception half is skipped, with a warning,
    where the Inception weights cannot be found. `sampler` / `sample_steps` / `cfg_scale` /
    `guidance_interval` ("lo,hi") replace a diffusion run's own objective.sampler, .sample_steps,
    .cfg_scale and .guidance_interval for this evaluation. `ema=False` samples the
    trained generator where the run also kept its EMA copy (the default); eval.json's "weights" says
    which, and scores of the other are not merged in."""
    run_dir = Path(run_dir)
    inception = fid or kid or inception_score
    _check_request(inception or prc or judge is not None or lpips, n, prc, batch_size, lpips_n)
    _split_name(reference)
    device = torch.device(device)

    # Everything that can fail on input fails here, before sampling and feature passes that take long.
    opened = open_seed(run_dir, device=device, seed=run_seed, task="generate", data_root=data_root,
                       sampling=sampling_overrides(run_dir, sampler=sampler, sample_steps=sample_steps,
                                                   cfg_scale=cfg_scale, guidance_interval=guidance_interval),
                       ema=ema)
    cfg, manifest = opened.config, opened.manifest
    weights = _find_weights(inception_weights, required=inception or judge is None) if inception or prc else None
    inception_net = fidlib.load_inception(weights, device) if weights is not None else None
    lpips_file = find_lpips_weights(lpips_weights) if lpips else None
    lpips_net = load_lpips(lpips_file, device) if lpips else None
    splits = splits_of(cfg.data, data_root)
    n_reference = len(_split(splits, reference)[1])
    the_judge = None
    if judge is not None:
        the_judge = open_judge(Path(judge), device=device, data_root=data_root, run_seed=judge_seed)
        check_judge_fits(the_judge, splits.spec, f"{cfg.preset} ({run_dir})")

    seeds = list(range(n))
    conditional = bool(getattr(opened.objective, "conditional", False))
    labels = opened.objective.labels_for(seeds)
    images, images_per_s = draw_timed(opened.objective, opened.network, seeds,
                                      None if labels is None else labels.to(device), batch_size=batch_size,
                                      progress=progress)
    out = {"preset": cfg.preset, "task": "generate", "dataset": cfg.data.name, "run_seed": opened.seed,
           "step": opened.step, "weights": opened.weights, "params": manifest["params"],
           "over_budget": manifest["over_budget"],
           "steps": cfg.train.steps, "batch_size": cfg.train.batch_size, "images_seen": cfg.train.images_seen,
           "seeds": manifest["seeds"], "sampling_images_per_s": images_per_s,
           "sampling_device": str(device),
           "labels": f"seed % {splits.spec.num_classes}" if conditional else "none (unconditional)",
           # scores of one reference merge whatever their n; each metric records its own counts
           "reference": reference, "reference_images": n_reference, "reference_draw": DRAW_RULE}
    if hasattr(cfg.objective, "sampler"):
        out.update(sampler=cfg.objective.sampler, sample_steps=cfg.objective.sample_steps,
                   cfg_scale=cfg.objective.cfg_scale, guidance_interval=list(cfg.objective.guidance_interval))
    if inception_net is not None:
        out.update(_inception_scores(images, inception_net, weights, splits, cfg, reference, fid=fid, kid=kid, prc=prc,
                                     inception_score=inception_score, device=device, batch_size=batch_size,
                                     progress=progress))
    if the_judge is not None:
        out.update(_judge_scores(the_judge, images, labels, splits, reference, prc=prc, device=device,
                                 batch_size=batch_size,
                                 confusion_png=run_dir / "judge-confusion.png", preset=cfg.preset))
    if lpips:
        out.update(_lpips_scores(images, lpips_net, lpips_file, splits, min(lpips_n, n), device=device,
                                 batch_size=batch_size))
    _merge_eval_json(eval_file(run_dir, reference), out, default_weights=ema)
    return out


def _check_n(n: int) -> None:
    if n < 2:
        raise ConfigError(f"--n must be >= 2 (a covariance needs two images), got {n}")


def _check_request(anything: bool, n: int, prc: bool, batch_size: int, lpips_n: int) -> None:
    if not anything:
        raise ConfigError("a generator run needs at least one of --fid, --kid, --is, --prc, --judge RUN, --lpips")
    _check_n(n)
    if prc and n <= PRC_K:
        raise ConfigError(f"--prc needs --n above {PRC_K} (a radius is the distance to the k-th nearest "
                          f"neighbour, k = {PRC_K}), got {n}")
    if batch_size < 1 or lpips_n < 1:
        raise ConfigError("batch size and the LPIPS sample count must be positive")


def _inception_scores(images: Tensor, net, weights: Path, splits: Splits, cfg, reference: str, *, fid: bool,
                      kid: bool, prc: bool,
                      inception_score: bool, device, batch_size: int, progress: bool) -> dict:
    n = len(images)
    feats, logits = fidlib.inception_features(net, images, device=device, batch_size=batch_size, progress=progress)
    out = {"inception_weights": f"{weights.name} sha256:{fidlib.file_sha256(weights)[:16]}"}
    if fid or kid or prc:
        ref, _, _ = _reference(splits, cfg.data.name, reference, n, weights=weights, net=net, device=device,
                               batch_size=batch_size, val_fraction=cfg.data.val_fraction,
                               split_seed=cfg.data.split_seed, progress=progress)
    # Each metric keeps its own counts: a later call at another n may overwrite some keys only.
    if fid:
        out["fid"] = fidlib.frechet_distance(*fidlib.feature_stats(feats), ref["mu"], ref["sigma"])
        out["fid_n"], out["fid_n_reference"] = n, len(ref["features"])
    if kid:
        real_feats = torch.from_numpy(ref["features"])
        out["kid_mean"], out["kid_std"] = fidlib.kernel_inception_distance(real_feats, feats)
        out["kid_n"], out["kid_n_reference"] = n, len(real_feats)
        out["kid_subset_size"] = min(fidlib.KID_SUBSET_SIZE, len(real_feats), len(feats))
    if inception_score:
        out["is_mean"], out["is_std"] = fidlib.inception_score(logits)
        out["is_n"] = n
    if prc:
        pr = _prc(torch.from_numpy(ref["features"]), feats, device)
        out.update({"precision": pr["precision"], "recall": pr["recall"], "prc_k": pr["k"], "prc_n": n,
                    "prc_n_reference": len(ref["features"])})
    return out


def _judge_scores(j: Judge, images: Tensor, labels: Tensor | None, splits: Splits, reference: str, *, prc: bool,
                  device, batch_size: int, confusion_png: Path, preset: str) -> dict:
    n = len(images)
    real, real_labels, drawn = eval_subset(_split(splits, reference), n)
    # The real-data floor: as many train images as the reference holds (disjoint from it where the
    # reference is train itself), read against the same reference images.
    floor_images = eval_subset(splits.train, len(real), exclude=drawn if reference == "train" else None)[0]
    out = {"judge": j.name, "judge_seed": j.seed, "judge_step": j.step, "judge_n": n,
           "judge_test_accuracy": j.test_accuracy,
           "judge_fid_real_floor_images": draw_record("train" + (" (disjoint from the reference)" if reference ==
                                                                  "train" else ""), len(floor_images),
                                                      len(splits.train[1]))}
    # The judge on the same number of real reference images: the ceiling its sample accuracy is read against.
    out["judge_real_accuracy"] = judge_scores(j, real, real_labels, device=device, batch_size=batch_size)["accuracy"]
    if labels is not None:
        scores = judge_scores(j, images, labels, device=device, batch_size=batch_size)
        out.update({"judge_accuracy": scores["accuracy"], "judge_per_class_accuracy": scores["per_class_accuracy"],
                    "judge_confusion": scores["confusion"]})
        confusion_matrix(scores["confusion"], j.spec.class_names, confusion_png,
                         f"{preset} samples judged by {j.name}: {100 * scores['accuracy']:.1f} % (n={n})")
    else:
        predicted = judge_predictions(j, images, device=device, batch_size=batch_size)
        counts = torch.bincount(predicted, minlength=j.spec.num_classes).double() / len(predicted)
        out["judge_class_fractions"] = counts.tolist()
    # One feature pass per image set, shared by the judge-feature FID, its floor, KID and precision / recall.
    fake_feats = judge_features(j, images, device=device, batch_size=batch_size)
    real_feats = judge_features(j, real, device=device, batch_size=batch_size)
    out["judge_fid"] = _frechet(fake_feats, real_feats)
    out["judge_fid_n_reference"] = len(real)
    # Not a strict floor: the judge trained on the floor's train images, so its features of them sit
    # tighter than of any unseen image, and samples can score below it.
    out["judge_fid_real_floor"] = _frechet(judge_features(j, floor_images, device=device, batch_size=batch_size),
                                           real_feats)
    # KID in the same features: unbiased, so its expectation does not move with n as FID's does (FID's
    # bias grows as n shrinks), and 2,000 samples read on the scale of 10,000. Both sets are divided by
    # the real features' RMS first: the cubic kernel (x.y / d + 1)^3 was made for Inception's features
    # (RMS under 1); on a LeNet's (RMS 3.7) its subset spread drowned the distance (real against real:
    # -1.6 +- 2.1 raw, -0.003 +- 0.003 scaled; benchmarks/results/screens/judge-kid-scale.json).
    scale = float(real_feats.double().pow(2).mean().sqrt()) or 1.0
    out["judge_kid_mean"], out["judge_kid_std"] = fidlib.kernel_inception_distance(real_feats / scale,
                                                                                   fake_feats / scale)
    out["judge_kid_feature_scale"] = scale
    out["judge_kid_subset_size"] = min(fidlib.KID_SUBSET_SIZE, len(real_feats), len(fake_feats))
    out["judge_kid_subsets"] = fidlib.KID_SUBSETS
    if prc:
        pr = _prc(real_feats, fake_feats, device)
        out.update({"judge_precision": pr["precision"], "judge_recall": pr["recall"], "judge_prc_k": pr["k"]})
    return out


def _lpips_scores(images: Tensor, net, weights: Path, splits: Splits, m: int, *, device, batch_size: int) -> dict:
    dist, _ = nearest_lpips(net, images[:m], splits.train[0], device=device, batch_size=batch_size)
    return {"lpips_nearest_mean": float(dist.mean()), "lpips_nearest_std": float(dist.std()) if m > 1 else 0.0,
            "lpips_n": m,
            "lpips_method": f"LPIPS (alex) of samples 0-{m - 1} to the closest of their {LPIPS_CANDIDATES} "
                            f"pixel-L2 nearest images of the {len(splits.train[0])} training images",
            "lpips_weights": f"{weights.name} sha256:{fidlib.file_sha256(weights)[:16]}"}


def _merge_eval_json(path: Path, out: dict, *, default_weights: bool) -> None:
    """`default_weights`: `out` scored the weights a run opens by default (its EMA copy where kept),
    which are what a file written before eval.json named its "weights" scored."""
    merged = out
    if path.exists():
        try:
            before = read_json(path)
        except BudgetVisionError:
            before = {}
        # The same samples: scores add up.
        same = ("run_seed", "step", "weights", "sampler", "sample_steps", "cfg_scale", "guidance_interval",
                "reference")
        if "weights" not in before and default_weights:
            before["weights"] = out["weights"]
        if "sampler" in before and "guidance_interval" not in before:   # written before intervals: every level
            before["guidance_interval"] = [0.0, 0.0]
        if before.get("task") == "generate" and all(before.get(k) == out.get(k) for k in same):
            if "judge" in out:  # one judge's numbers together: no judge_precision left from another judge or n
                before = {k: v for k, v in before.items() if not k.startswith("judge")}
            merged = {**before, **out}   # same checkpoint: an earlier --fid stays beside a later --judge
    write_json(path, merged)


def refuse_generator_request(run_dir: Path, requested: dict) -> None:
    """A classifier run has no generator metrics or sampling: the first of `requested`
    (evaluate_generator's arguments) given, neither None nor False, is refused by its flag."""
    given = [k for k, v in requested.items() if v is not None and v is not False]
    if given:
        flag = given[0].replace("inception_score", "is").replace("_", "-")
        raise ConfigError(f"{run_dir} is a classifier run; --{flag} is for generator runs")


def evaluate_run(run_dir: Path, *, data_root: Path | None, device, ema: bool = True,
                 tta_shift_weight: float | None = None) -> dict:
    """Re-evaluate every seed's latest checkpoint of a classifier run on the test split; writes `eval.json`.
    `ema=False`: the trained weights where the run also kept an EMA copy (the default).
    `tta_shift_weight`: the shifted test-time views' share of the mean instead of the run's own."""
    run_dir = Path(run_dir)
    cfg, manifest = open_run(run_dir)
    if cfg.task != "classify":
        raise BudgetVisionError(f"{run_dir} is a {cfg.task} run; eval here needs a classifier run")
    if tta_shift_weight is not None and not cfg.train.tta_shift:
        raise ConfigError(f"{run_dir} has no shifted test-time views (train.tta_shift 0): "
                          "--tta-shift-weight would weigh nothing")
    views = cfg if tta_shift_weight is None else replace(
        cfg, train=replace(cfg.train, tta_shift_weight=tta_shift_weight))   # checked as a config value is
    splits = splits_of(cfg.data, data_root)
    mean, std = input_stats(cfg, trained_spec(splits.spec, manifest))
    per_seed = []
    for seed, sdir in seed_dirs(run_dir, manifest["seeds"]).items():
        if not (sdir / "checkpoint.pt").exists():
            continue
        opened = open_seed(run_dir, device=device, seed=seed, spec=splits.spec, ema=ema)
        network = opened.network.network if isinstance(opened.network, ViewAveraged) else opened.network
        test = evaluate_classifier(for_evaluation(network, views), *splits.test, mean=mean, std=std, device=device,
                                   num_classes=splits.spec.num_classes, batch_size=max(cfg.train.batch_size, 256))
        per_seed.append({"seed": seed, "step": opened.step, "weights": opened.weights,
                         "test_accuracy": test["accuracy"],
                         "test_loss": test["loss"], "test_accuracy_batch_std": test["batch_accuracy_std"],
                         "test_n": test["n"]})
    if not per_seed:
        raise BudgetVisionError(f"{run_dir} has no checkpoint to evaluate")
    m, sd = mean_std([r["test_accuracy"] for r in per_seed])
    out = {"preset": cfg.preset, "dataset": cfg.data.name, "params": manifest["params"],
           "over_budget": manifest["over_budget"], "test_accuracy": m, "test_accuracy_std": sd,
           "tta_shift_weight": views.train.tta_shift_weight, "per_seed": per_seed}
    write_json(run_dir / "eval.json", out)
    return out


def open_judge(run_dir: Path, *, device, data_root: Path | None = None, run_seed: int | None = None) -> Judge:
    """A classifier run as a judge; a generator run (or anything else) is refused with one line."""
    # The classifier was trained on inputs standardised with its train split's statistics: the
    # same carve (val_fraction, split_seed) reproduces them exactly.
    opened = open_seed(run_dir, device=device, seed=run_seed, task="classify", data_root=data_root,
                       why="a judge must be a classifier run (task classify), e.g. an mnist-lenet run")
    if not callable(getattr(opened.network, "features", None)):
        raise BudgetVisionError(f"judge {run_dir}: model '{opened.config.model.name}' has no features() to compare with")
    mean, std = input_stats(opened.config, opened.spec)
    results = opened.seed_dir / "results.json"
    accuracy = read_json(results).get("test_accuracy") if results.exists() else None
    return Judge(f"{opened.config.preset} ({run_dir})", Path(run_dir), opened.seed, opened.step, opened.network,
                 opened.spec, mean, std, accuracy)
