"""Does judge-feature KID resolve anything? For each judge: KID of 2,000 stratified test images
against 2,000 train images (same distribution: the answer is 0) and against those train images
blurred by noise (a real difference), on the judge's raw features and on features divided by the
real set's RMS, as `eval --judge` now does. Writes benchmarks/results/screens/judge-kid-scale.json.

    python benchmarks/judge_kid_scale.py --data-root DATA mnist=RUN folder:cifar10-jpeg=RUN
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from budgetvision.data.datasets import eval_subset, load_splits  # noqa: E402
from budgetvision.device import device_name  # noqa: E402
from budgetvision.evaluation import fid as fidlib  # noqa: E402
from budgetvision.evaluation.judge import judge_features  # noqa: E402
from budgetvision.io import write_json  # noqa: E402
from budgetvision.runs.evaluate import open_judge  # noqa: E402
from budgetvision.version import source_commit  # noqa: E402

N = 2000
NOISE = 40   # uint8 levels of uniform noise over 0.7x the image: a difference every judge should see


def measure(dataset: str, run: Path, data_root: Path) -> dict:
    judge = open_judge(run, device="cpu", data_root=data_root)
    splits = load_splits(dataset, data_root, download=False)
    real = eval_subset(splits.test, N)[0]
    train = eval_subset(splits.train, N)[0]
    gen = torch.Generator().manual_seed(0)
    noisy = (train.float() * 0.7 + NOISE * torch.rand(train.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    feats = {k: judge_features(judge, x, device="cpu") for k, x in
             (("test", real), ("train", train), ("noisy train", noisy))}
    scale = float(feats["test"].double().pow(2).mean().sqrt())
    out = {"judge": str(run), "feature_dim": feats["test"].shape[1], "real_feature_rms": scale}
    for name in ("train", "noisy train"):
        raw = fidlib.kernel_inception_distance(feats["test"], feats[name])
        scaled = fidlib.kernel_inception_distance(feats["test"] / scale, feats[name] / scale)
        out[f"test vs {name}"] = {"kid_raw": raw, "kid_scaled": scaled}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("judges", nargs="+", help="DATASET=RUN: a classifier run that judges that data set")
    ap.add_argument("--data-root", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = {d: measure(d, Path(r), args.data_root) for d, r in (j.split("=", 1) for j in args.judges)}
    write_json(REPO / "benchmarks/results/screens/judge-kid-scale.json",
               {"what": __doc__.splitlines()[0], "n": N, "noise": NOISE, "kid": "(mean, std) over 100 subsets of 1,000",
                "command": "python benchmarks/judge_kid_scale.py --data-root DATA " +
                           " ".join(f"{d}=RUN" for d in rows),
                "commit": source_commit(), "device": device_name(torch.device("cpu")), "judges": rows})
    for d, r in rows.items():
        print(d, {k: v for k, v in r.items() if k.startswith("test vs")})


if __name__ == "__main__":
    main()
