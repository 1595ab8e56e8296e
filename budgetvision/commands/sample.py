"""A generator run's figures: `budgetvision sample` (a seeded grid), `interpolate` (latent paths) and
`neighbours` (samples beside their nearest training images)."""
from __future__ import annotations

from pathlib import Path

from ..config import INTERPOLATION_LABELS, INTERPOLATIONS
from ..errors import ConfigError
from ._common import add_common, add_sampling, out_file, sampling


def add(sub) -> None:
    sp = sub.add_parser("sample", help="a non-cherry-picked grid; image k comes from seed k")
    _add_generator(sp, "samples.png")
    sp.add_argument("--seeds", default="0-63", help="e.g. 0-63 or 0,5,9")
    sp.add_argument("--class", dest="label", type=int, default=None, help="class for conditional models")
    sp.add_argument("--nrow", type=int, default=None, help="images per row (default: square)")
    sp.set_defaults(func=run_sample)

    sp = sub.add_parser("interpolate", help="latent interpolations, one row per pair of seeds")
    _add_generator(sp, "interpolations.png")
    sp.add_argument("--pairs", type=int, default=8)
    sp.add_argument("--steps", type=int, default=10)
    sp.add_argument("--mode", choices=INTERPOLATIONS, default=None,
                    help="latent path (default: the recipe's objective.interpolation)")
    sp.add_argument("--labels", choices=INTERPOLATION_LABELS, default=None,
                    help="conditional models: blend the ends' class vectors, or the closer end's label "
                         "(default: the recipe's objective.interpolation_labels)")
    sp.add_argument("--first-seed", type=int, default=0, help="pairs are (s, s+1), (s+2, s+3), ...")
    sp.set_defaults(func=run_interpolate)

    sp = sub.add_parser("neighbours", help="each sample beside its nearest training images")
    _add_generator(sp, "neighbours.png")
    sp.add_argument("--seeds", default="0-7")
    sp.add_argument("--k", type=int, default=5, help="neighbours per sample")
    sp.set_defaults(func=run_neighbours)


def _add_generator(sp, default_out: str) -> None:
    sp.add_argument("run", help="a generator run folder")
    sp.add_argument("--run-seed", type=int, default=None, help="which training seed's checkpoint (default: first)")
    sp.add_argument("--out", default=default_out, help="output PNG")
    add_sampling(sp)
    add_common(sp)


def _open_generator(args):
    from ..data import data_root
    from ..device import resolve_device
    from ..runs import open_generator

    device = resolve_device(args.device)
    cfg, objective, network = open_generator(Path(args.run), device=device, run_seed=args.run_seed,
                                             data_root=data_root(args.data_root), **sampling(args))
    return cfg, objective, network, device


def _out_png(path: str) -> Path:
    return out_file(path, (".png",), "a .png")


def run_sample(args) -> int:
    from ..data import data_root
    from ..setup import shape_spec
    from ..report.plots import sample_grid
    from ..runs import class_labels, parse_seeds, sample

    seeds = parse_seeds(args.seeds)
    if args.nrow is not None and args.nrow < 1:
        raise ConfigError(f"--nrow must be >= 1, got {args.nrow}")
    out = _out_png(args.out)
    cfg, objective, network, device = _open_generator(args)
    classes = shape_spec(cfg, data_root(args.data_root)).num_classes   # a folder data set under the data root
    labels = class_labels(objective, seeds, args.label, classes, device)
    images = sample(objective, network, seeds, labels)
    sample_grid(images, out, nrow=args.nrow or max(1, round(len(seeds) ** 0.5)))
    print(f"{len(seeds)} samples (seeds {args.seeds}) of {cfg.preset} -> {out}")
    return 0


def run_interpolate(args) -> int:
    from ..report.plots import interpolation_grid

    if args.pairs < 1 or args.steps < 2:
        raise ConfigError("interpolate needs --pairs >= 1 and --steps >= 2")
    out = _out_png(args.out)
    cfg, objective, network, _ = _open_generator(args)
    pairs = [(args.first_seed + 2 * i, args.first_seed + 2 * i + 1) for i in range(args.pairs)]
    # Unset, the path and the labels are the recipe's own (objective.interpolation[_labels]).
    mode = args.mode or objective.interpolation
    labels = args.labels or objective.interpolation_labels
    frames = objective.interpolate(pairs, args.steps, mode=mode, label_mode=labels, network=network)
    interpolation_grid(frames.cpu(), out)
    which = f"{mode}" + (f", {labels} labels" if getattr(objective, "conditional", False) else "")
    print(f"{args.pairs} interpolations ({which}) x {args.steps} steps of {cfg.preset} -> {out}")
    return 0


def run_neighbours(args) -> int:
    from ..data import data_root, load_splits
    from ..report.plots import neighbours_figure
    from ..runs import nearest_training_images, parse_seeds, sample

    seeds = parse_seeds(args.seeds)
    if args.k < 1:
        raise ConfigError("--k must be >= 1")
    out = _out_png(args.out)
    cfg, objective, network, _ = _open_generator(args)
    splits = load_splits(cfg.data.name, data_root(args.data_root), val_fraction=cfg.data.val_fraction,
                         seed=cfg.data.split_seed)
    if args.k > len(splits.train[0]):
        raise ConfigError(f"--k {args.k} is more than the {len(splits.train[0]):,} training images of {cfg.data.name}")
    images = sample(objective, network, seeds, None)
    neighbours, dist = nearest_training_images(images, splits.train[0], args.k)
    neighbours_figure(images, neighbours, dist.cpu(), out)
    print(f"{len(seeds)} samples of {cfg.preset} with their {args.k} nearest training images (pixel L2) -> {out}")
    return 0
