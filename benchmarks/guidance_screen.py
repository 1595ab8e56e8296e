"""Screen how a trained class-conditional diffusion run samples: guidance weight, guidance interval and
sampler, each setting scored by a judge on the same seeds, written to one result file in
benchmarks/results/screens/ as each setting finishes (an interrupted screen keeps what it measured,
and the next invocation skips the settings already in the file).

    python benchmarks/guidance_screen.py RUN --judge JUDGE --data-root DATA --n 2000 \\
        --settings 0.5 1@0.5,5 2@0.5,5

Every setting is scored against the train split (or --reference val): a screen chooses, and the test
split never does, so --reference test is refused. A setting is W (guidance weight W at every level) or W@LO,HI (guidance only where sigma/alpha lies in
(LO, HI]; Kynkaanniemi et al. 2024). Each is `budgetvision eval RUN --judge JUDGE --prc --n N
--reference train --cfg-scale W --guidance-interval LO,HI` with the run's own sampler and steps unless --sampler /
--sample-steps say otherwise. Sampling is not training: the run and its checkpoint stay as they are.

A file holds one run's screen: guidance--PRESET--seed-S--nN--REFERENCE.json by default, or --name STEM. It
records the run (preset, model, params, seed, run id); a screen of another run (an earlier checkpoint's
copy, or a variant's run whose folder has the same name) under the same name is refused, so that rows
of two runs never share a file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from budgetvision.device import device_name  # noqa: E402
from budgetvision.io import read_json, write_json  # noqa: E402
from budgetvision.runs import open_run  # noqa: E402
from budgetvision.runs.evaluate import eval_file  # noqa: E402
from budgetvision.version import source_commit  # noqa: E402
from compare import JUDGE_KEYS, budgetvision_cli  # noqa: E402

KEYS = (*JUDGE_KEYS, "step", "weights", "sampler", "sample_steps", "cfg_scale",
        "guidance_interval")


def parse_setting(text: str) -> tuple[float, str]:
    """'2@0.5,5' -> (2.0, '0.5,5'); '0.5' -> (0.5, '0,0') (every level)."""
    w, _, interval = text.partition("@")
    lo, hi = (float(v) for v in (interval or "0,0").split(","))
    return float(w), f"{lo:g},{hi:g}"


CHOOSING = ("train", "val")   # the references a screen may score against; test only reports


def screened(run_dir: Path) -> dict:
    """The run a screen reads, as its file records it: folder names repeat across --out folders (a
    screened variant's first run and the preset's are both 00001-PRESET), run ids do not."""
    cfg, manifest = open_run(run_dir)
    return {"preset": cfg.preset, "model": cfg.model.name, "params": manifest["params"],
            "seed": manifest["seeds"][0], "run_id": manifest.get("run_id")}   # None: a run from before run ids


def screen_path(results: Path, run_dir: Path, n: int, reference: str, name: str | None = None) -> Path:
    if name is None:
        manifest = read_json(run_dir / "run.json")
        name = f"guidance--{manifest['preset']}--seed-{manifest['seeds'][0]}--n{n}--{reference}"
    return results / "screens" / f"{name}.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a class-conditional diffusion run")
    p.add_argument("--judge", type=Path, required=True, help="a trained mnist-lenet run")
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--n", type=int, default=2000, help="samples per setting (seeds 0..n-1)")
    p.add_argument("--reference", default="train", help="the real images settings are scored against: train "
                   "(default) or val; test is refused")
    p.add_argument("--settings", nargs="+", required=True, metavar="W[@LO,HI]")
    p.add_argument("--sampler", default=None, help="instead of the run's objective.sampler")
    p.add_argument("--sample-steps", type=int, default=None, help="instead of the run's objective.sample_steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--name", default=None, metavar="STEM", help="the result file's name under screens/ "
                   "(default guidance--PRESET--seed-S--nN)")
    args = p.parse_args()
    if args.reference not in CHOOSING:
        print(f"guidance_screen: --reference {args.reference} refused: a screen chooses a setting, and the test "
              f"split never chooses; score against {' or '.join(CHOOSING)}", file=sys.stderr)
        return 2

    path = screen_path(args.results, args.run, args.n, args.reference, args.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    judge_acc = read_json(args.judge / "results.json")["per_seed"][0]["test_accuracy"]
    run = screened(args.run)
    screen = read_json(path) if path.exists() else {
        "format": "budgetvision-screen-1", "run": args.run.name, "screened": run, "n": args.n,
        "reference": args.reference, "judge": f"{args.judge.name} ({100 * judge_acc:.2f} % test)", "rows": []}
    held = screen.get("screened", {}).get("run_id", run["run_id"])   # files from before runs were recorded: by name
    if (screen["run"], held, screen["n"], screen.get("reference", "test")) != \
            (args.run.name, run["run_id"], args.n, args.reference):
        p.error(f"{path} holds a screen of run {screen['run']} at n {screen['n']} against "
                f"{screen.get('reference', 'test')} (run id {held}): name another file with --name")
    fixed = [*(["--sampler", args.sampler] if args.sampler else []),
             *(["--sample-steps", str(args.sample_steps)] if args.sample_steps else [])]
    done = {r["command"] for r in screen["rows"]}
    log = REPO / "benchmarks" / "runs" / "screens" / path.with_suffix(".log").name   # not committed
    log.parent.mkdir(parents=True, exist_ok=True)
    for text in args.settings:
        w, interval = parse_setting(text)
        flags = ["--prc", "--n", str(args.n), "--reference", args.reference, "--cfg-scale", f"{w:g}", "--guidance-interval", interval, *fixed]
        command = " ".join(["budgetvision eval RUN --judge JUDGE", *flags])
        if command in done:
            continue
        budgetvision_cli(["eval", str(args.run), "--judge", str(args.judge), *flags], args.data_root, log,
                         args.threads)
        out = read_json(eval_file(args.run, args.reference))
        row = {k: out[k] for k in KEYS}
        row.update(command=command,
                   commit=source_commit() or "unknown", device_name=device_name(torch.device("cpu")),
                   threads=args.threads, torch=torch.__version__)
        screen["rows"].append(row)
        done.add(command)
        write_json(path, screen)
        print(f"w {w} on ({interval}]: judge accuracy {100 * row['judge_accuracy']:.2f} %, "
              f"FID {row['judge_fid']:.2f} (reference {row['judge_fid_real_floor']:.2f}), "
              f"precision {row['judge_precision']:.3f}, recall {row['judge_recall']:.3f}, "
              f"{row['sampling_images_per_s']:.1f} images/s", flush=True)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
