"""How much the judge-feature FID's real floor moves with which train images it reads: the first n of
the train split (what eval read before its subsets were seeded class-stratified draws) against
`eval_draw`'s n, both against the whole test split, in one judge's features. Eval only; one file in
benchmarks/results/screens/.

    python benchmarks/floor_draw.py JUDGE --data-root DATA --dataset mnist --n 10000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from budgetvision.data import load_splits  # noqa: E402
from budgetvision.data.datasets import DRAW_RULE, eval_subset  # noqa: E402
from budgetvision.device import device_name  # noqa: E402
from budgetvision.evaluation.fid import feature_stats, frechet_distance  # noqa: E402
from budgetvision.evaluation.judge import judge_features  # noqa: E402
from budgetvision.io import write_json  # noqa: E402
from budgetvision.runs import open_judge  # noqa: E402
from budgetvision.version import source_commit  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("judge", type=Path, help="a trained classifier run")
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--val-fraction", type=float, default=0.0, help="the generators' carve (0: all of train)")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    torch.set_num_threads(1)
    judge = open_judge(args.judge, device="cpu", data_root=args.data_root)
    splits = load_splits(args.dataset, args.data_root, val_fraction=args.val_fraction)
    test = feature_stats(judge_features(judge, splits.test[0], device="cpu"))
    floors = {how: frechet_distance(*feature_stats(judge_features(judge, x, device="cpu")), *test)
              for how, x in (("first_n", splits.train[0][:args.n]), ("drawn", eval_subset(splits.train, args.n)[0]))}
    out = args.results / "screens" / f"floor-draw--{args.dataset}--n{args.n}.json"
    write_json(out, {
        "format": "budgetvision-screen-1", "dataset": args.dataset, "n": args.n, "reference": "test (whole split)",
        "judge": f"{judge.name}, seed {judge.seed} ({100 * judge.test_accuracy:.2f} % test)",
        "floor_first_n": floors["first_n"], "floor_drawn": floors["drawn"], "draw": DRAW_RULE,
        "first_n_class_counts": torch.bincount(splits.train[1][:args.n], minlength=splits.spec.num_classes).tolist(),
        "command": f"python benchmarks/floor_draw.py JUDGE --data-root DATA --dataset {args.dataset} --n {args.n}",
        "commit": source_commit() or "unknown", "device_name": device_name(torch.device("cpu")), "threads": 1,
        "torch": torch.__version__})
    print(f"floor: first {args.n} train images {floors['first_n']:.4f}, drawn {floors['drawn']:.4f}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
