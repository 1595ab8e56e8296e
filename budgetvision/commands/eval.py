"""`budgetvision eval` (a classifier's test accuracy; a generator's FID/KID/IS, judge, LPIPS) and
`budgetvision fid-ref` (cached FID reference statistics)."""
from __future__ import annotations

from pathlib import Path

from ._common import SAMPLING_FLAGS, add_common, add_sampling, opt_path, sampling


def add(sub) -> None:
    sp = sub.add_parser("eval", help="classifier: re-evaluate on the test split; generator: FID/KID/IS, judge, LPIPS")
    sp.add_argument("run", help="a run folder")
    sp.add_argument("--fid", action="store_true", help="FID against the test split (standard Inception)")
    sp.add_argument("--kid", action="store_true", help="KID against the test split")
    sp.add_argument("--is", dest="inception_score", action="store_true", help="Inception Score")
    sp.add_argument("--prc", action="store_true", help="improved precision and recall (k=3) against the test "
                    "split, in Inception features and, with --judge, in the judge's")
    sp.add_argument("--n", type=int, default=10_000, help="generated images (and real reference images, a "
                    "class-stratified seeded draw where the split is larger) to compare")
    sp.add_argument("--reference", choices=("train", "val", "test"), default=None, help="the real images FID, KID, precision / "
                    "recall and the judge compare against: test (default) reports, into eval.json; train or val "
                    "choose settings, into eval-train.json / eval-val.json")
    sp.add_argument("--judge", default=None, metavar="RUN", help="a classifier run: its accuracy on "
                    "class-conditional samples and its feature FID")
    sp.add_argument("--lpips", action="store_true", help="LPIPS from samples to their nearest training images")
    sp.add_argument("--inception-weights", default=None, metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    sp.add_argument("--lpips-weights", default=None, metavar="PATH", help="alexnet-owt-7be5be79.pth")
    sp.add_argument("--run-seed", type=int, default=None, help="which training seed's checkpoint (default: first)")
    add_sampling(sp)
    sp.add_argument("--tta-shift-weight", type=float, default=None, metavar="W", help="classifier: the shifted "
                    "test-time views' share of the mean (train.tta_shift_weight; default: the run's). Test-time "
                    "views are not training, so a run can be scored with its preset's current ones")
    sp.add_argument("--no-ema", action="store_true", help="score the trained weights where the run also kept an "
                    "EMA copy (train.ema_decay), which is scored by default")
    add_common(sp)
    sp.set_defaults(func=run)

    sp = sub.add_parser("fid-ref", help="cache FID reference statistics of a data set's split")
    sp.add_argument("dataset")
    sp.add_argument("--split", choices=("train", "val", "test"), default="test")
    sp.add_argument("--n", type=int, default=10_000)
    sp.add_argument("--inception-weights", default=None, metavar="PATH")
    add_common(sp)
    sp.set_defaults(func=run_fid_ref)


# What a classifier run refuses (its other flags, e.g. --n or --run-seed, mean nothing to it either).
_GENERATOR_FLAGS = ("fid", "kid", "inception_score", "prc", "lpips", "judge", "reference", *SAMPLING_FLAGS)


def run(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..errors import ConfigError
    from ..runs import evaluate_run, open_run, refuse_generator_request

    cfg, _ = open_run(Path(args.run))
    if cfg.task == "generate":
        if args.tta_shift_weight is not None:
            raise ConfigError(f"{args.run} is a generator run; --tta-shift-weight is for classifier runs")
        return _eval_generator(args)
    refuse_generator_request(args.run, {f: getattr(args, f) for f in _GENERATOR_FLAGS})
    out = evaluate_run(Path(args.run), data_root=data_root(args.data_root), device=resolve_device(args.device),
                       ema=not args.no_ema, tta_shift_weight=args.tta_shift_weight)
    for r in out["per_seed"]:
        print(f"seed {r['seed']} (step {r['step']}, {r['weights']} weights): "
              f"test accuracy {100 * r['test_accuracy']:.2f} % "
              f"(per-batch ± {100 * r['test_accuracy_batch_std']:.2f} %) on {r['test_n']:,} images")
    print(f"{out['preset']}: test {100 * out['test_accuracy']:.2f} ± {100 * out['test_accuracy_std']:.2f} % "
          f"over {len(out['per_seed'])} seed(s); written to {Path(args.run) / 'eval.json'}")
    return 0


def _eval_generator(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..runs import eval_file, evaluate_generator

    # evaluate_generator refuses a request without a metric, or with --n below 2, before it opens anything.
    out = evaluate_generator(Path(args.run), fid=args.fid, kid=args.kid, inception_score=args.inception_score,
                             prc=args.prc, n=args.n, judge=opt_path(args.judge), lpips=args.lpips,
                             inception_weights=opt_path(args.inception_weights),
                             lpips_weights=opt_path(args.lpips_weights), data_root=data_root(args.data_root),
                             device=resolve_device(args.device), run_seed=args.run_seed,
                             ema=not args.no_ema, reference=args.reference or "test", **sampling(args),
                             progress=not args.no_progress)
    for key, value in out.items():
        if isinstance(value, float):
            print(f"{key}: {value:.6g}")
    if "judge" in out:
        print(f"judge: {out['judge']}")
    print(f"written to {eval_file(Path(args.run), args.reference or 'test')}")
    return 0


def run_fid_ref(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..runs import fid_reference

    out = fid_reference(args.dataset, args.split, n=args.n, data_root=data_root(args.data_root),
                        device=resolve_device(args.device), inception_weights=opt_path(args.inception_weights),
                        progress=not args.no_progress)
    print(f"reference statistics of {args.dataset} {args.split} (n={out['n']:,}) "
          f"{'already cached' if out['cached'] else 'cached'} at {out['path']}")
    return 0
