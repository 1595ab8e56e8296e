"""Screen test-time views on trained classifier runs, without training: each run's network is
evaluated once per view (the image or its mirror, translated by (dx, dy) pixels with reflected
borders, by the `translated` that `train.tta_shift` uses), and every named mix of those views is
scored on the validation split (the test split chooses nothing). One result file in
benchmarks/results/screens/ holds every run's accuracy per mix.

    python benchmarks/tta_screen.py RUN [RUN ...] --data-root DATA --name STEM

Before scoring, the "airbench" mix is checked against the tool's own `ViewAveraged(flip, shift=1)`
on the first batch, so the screen's baseline is what `budgetvision eval` computes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from budgetvision.data.datasets import splits_of  # noqa: E402
from budgetvision.data.loader import eval_batches  # noqa: E402
from budgetvision.device import device_name  # noqa: E402
from budgetvision.io import write_json  # noqa: E402
from budgetvision.models.layers import ViewAveraged, translated  # noqa: E402
from budgetvision.runs.folder import open_run, open_seed  # noqa: E402
from budgetvision.version import source_commit  # noqa: E402

DIAGONALS = ((1, 1), (-1, -1), (1, -1), (-1, 1))
AXES = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _uniform(offsets) -> dict[tuple[bool, int, int], float]:
    return {(flip, dx, dy): 1.0 for flip in (False, True) for dx, dy in offsets}


# view (mirrored, dx, dy) -> weight; every mix is mirror-symmetric
MIXES = {
    "none": {(False, 0, 0): 1.0},
    "flip": _uniform([(0, 0)]),
    "airbench": {**_uniform([(0, 0)]), **{(f, d, d): 0.5 for f in (False, True) for d in (1, -1)}},
    "uniform-diagonal": _uniform([(0, 0), (1, 1), (-1, -1)]),
    "uniform-5": _uniform([(0, 0), *DIAGONALS]),
    "uniform-axes": _uniform([(0, 0), *AXES]),
    "uniform-9": _uniform([(0, 0), *DIAGONALS, *AXES]),
    "uniform-15": _uniform([(0, 0), *DIAGONALS, *AXES, (2, 2), (-2, -2), (2, 0), (-2, 0), (0, 2), (0, -2)]),
}
VIEWS = sorted({view for mix in MIXES.values() for view in mix})


def mixed(logits: dict, mix: dict) -> torch.Tensor:
    return sum(w * logits[view] for view, w in mix.items()) / sum(mix.values())


@torch.inference_mode()
def screen_run(run: Path, data_root: Path) -> dict:
    splits = splits_of(open_run(run)[0].data, data_root)     # loaded once: open_seed takes its spec
    opened = open_seed(run, device=torch.device("cpu"), data_root=data_root, spec=splits.spec)
    net = opened.network.network if isinstance(opened.network, ViewAveraged) else opened.network
    x, y = splits.val
    if not len(x):
        raise SystemExit(f"{run} trained without a validation split: nothing to screen on")
    logits: dict = {view: [] for view in VIEWS}
    for i, (xb, _) in enumerate(eval_batches(x, y, 1000, mean=opened.spec.mean, std=opened.spec.std,
                                             device="cpu")):
        for flip, dx, dy in VIEWS:
            view = translated(xb, dx, dy)
            logits[(flip, dx, dy)].append(net(view.flip(-1) if flip else view).float())
        if i == 0:
            torch.testing.assert_close(mixed({v: l[0] for v, l in logits.items()}, MIXES["airbench"]),
                                       ViewAveraged(net, flip=True, shift=1)(xb).float())
    logits = {view: torch.cat(parts) for view, parts in logits.items()}
    accuracy = {name: (mixed(logits, mix).argmax(1) == y).double().mean().item() for name, mix in MIXES.items()}
    return {"run": str(run), "preset": opened.config.preset, "seed": opened.seed, "step": opened.step,
            "cpu_amp": opened.config.train.cpu_amp, "batch_size": opened.config.train.batch_size,
            "val_accuracy": accuracy}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="trained classifier run folders")
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--name", required=True, help="result file stem under benchmarks/results/screens/")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "screens",
                   help="folder of the result file")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [screen_run(run, args.data_root) for run in args.runs]
    means = {name: sum(r["val_accuracy"][name] for r in rows) / len(rows) for name in MIXES}
    out = args.out / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {
        "format": "budgetvision-tta-screen-1", "split": "val", "mean_val_accuracy": means, "runs": rows,
        "mixes": {name: [[*view, w] for view, w in mix.items()] for name, mix in MIXES.items()},
        "command": " ".join(["python benchmarks/tta_screen.py", *map(str, args.runs), "--data-root DATA",
                             f"--name {args.name}"]),
        "commit": source_commit(), "device_name": device_name(torch.device("cpu")), "threads": args.threads,
        "torch": torch.__version__})
    for name, value in means.items():
        print(f"{name:18s} " + " ".join(f"{100 * r['val_accuracy'][name]:.2f}" for r in rows)
              + f"   mean {100 * value:.2f} %")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
