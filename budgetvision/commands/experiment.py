"""`budgetvision experiment`: experiments that combine runs, `synthetic-mix` and `pca-vs-gan`."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ._common import add_common


def add(sub) -> None:
    sp = sub.add_parser("experiment", help="experiments that combine runs (Rzayev)")
    # type(sp): the command line's own parser, whose errors are one line
    exp = sp.add_subparsers(dest="experiment", required=True, parser_class=type(sp), metavar="EXPERIMENT")
    sp = exp.add_parser("synthetic-mix", help="classifier trained on real + generated images at real fractions")
    sp.add_argument("--generator", required=True, help="a class-conditional generator run")
    sp.add_argument("--real-fractions", default="0,0.1,0.25,0.5,1")
    sp.add_argument("--class-override", default=None, help="CLASS:FRACTION[,...], e.g. 0:0.4")
    sp.add_argument("--classifier", default="mnist-lenet", help="classifier preset trained on each mix")
    sp.add_argument("--steps", type=int, default=None, help="classifier steps (default: 5 epochs of the mix)")
    sp.add_argument("--lr", type=float, default=None, help="classifier learning rate (default: the paper's 0.001)")
    sp.add_argument("--batch-size", type=int, default=None, help="classifier batch (default: the paper's 32)")
    sp.add_argument("--total", type=int, default=None, help="images per mix (default: the real train size)")
    sp.add_argument("--out", default=None, help="folder (default: runs/synthetic-mix-<generator run>)")
    add_common(sp)
    sp.set_defaults(func=run_synthetic_mix)

    sp = exp.add_parser("pca-vs-gan", help="judge score of per-class PCA against components, the GAN as a line")
    sp.add_argument("--gan", required=True, help="a generator run (its data set is used)")
    sp.add_argument("--judge", required=True, help="a classifier run on the same data set, e.g. mnist-lenet")
    sp.add_argument("--components", default="1,2,4,8,16,32,64,128,256,512,784")
    sp.add_argument("--n", type=int, default=1000, help="samples (and test images reconstructed) per score")
    sp.add_argument("--mode", choices=("sample", "reconstruct", "both"), default="both",
                    help="score PCA's samples from k components, its reconstructions of real test images "
                         "through k components, or both (Rzayev's text reads either way)")
    sp.add_argument("--out", default=None, help="folder (default: runs/pca-vs-gan-<gan run>)")
    add_common(sp)
    sp.set_defaults(func=run_pca_vs_gan)


def run_synthetic_mix(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..experiments.synthetic_mix import parse_fractions, parse_overrides, run_synthetic_mix

    fractions, overrides = parse_fractions(args.real_fractions), parse_overrides(args.class_override)
    if args.total is not None and args.total < 1:
        raise ConfigError("--total must be >= 1")
    out = Path(args.out) if args.out else Path("runs") / f"synthetic-mix-{Path(args.generator).name}"
    summary = run_synthetic_mix(Path(args.generator), fractions=fractions, overrides=overrides,
                                classifier=args.classifier, steps=args.steps, total=args.total, out=out,
                                device=resolve_device(args.device), data_root=data_root(args.data_root),
                                progress=not args.no_progress, lr=args.lr, batch_size=args.batch_size)
    for r in summary["rows"]:
        print(f"real fraction {r['real_fraction']:g}: {r['real_images']:,} real + {r['generated_images']:,} "
              f"generated -> test accuracy {100 * r['test_accuracy']:.2f} %")
    print(f"curve and confusion matrices in {out}")
    return 0


def run_pca_vs_gan(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..experiments.pca_vs_gan import parse_components, run_pca_vs_gan

    out = Path(args.out) if args.out else Path("runs") / f"pca-vs-gan-{Path(args.gan).name}"
    summary = run_pca_vs_gan(Path(args.gan), Path(args.judge), components=parse_components(args.components),
                             n=args.n, out=out, device=resolve_device(args.device),
                             data_root=data_root(args.data_root), mode=args.mode)
    gan = summary["gan_scores"]
    if gan["judge_accuracy"] is not None:
        print(f"{summary['gan_preset']}: judge accuracy {100 * gan['judge_accuracy']:.2f} %, "
              f"judge-feature FID {gan['judge_fid']:.3f}  [judge: {summary['judge']}]")
    for key, what in (("pca", "samples"), ("pca_reconstruct", "test images reconstructed")):
        for r in summary[key]:
            print(f"PCA {r['components']:>4} components, {what}: judge accuracy {100 * r['judge_accuracy']:.2f} %, "
                  f"judge-feature FID {r['judge_fid']:.3f}")
    print(f"curve: {out / 'pca-vs-gan.png'}")
    return 0
