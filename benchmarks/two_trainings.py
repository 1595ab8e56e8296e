"""Two trainings on one machine: each one's images/s while both run, with a thread count chosen for
each (--threads, as budgetvision's default was: torch's own count, every core) and with none (the
default now: the cores shared, budgetvision.device.set_threads). The second starts once the first
has trained a few steps, so the first must give cores back mid-run.

    python benchmarks/two_trainings.py --preset addnist-mobilenet [--steps 120] [--data-root DATA]

Writes benchmarks/results/screens/two-trainings--<preset>--<device>.json: per setting, each
training's median images/s over the logged windows in which both were training, beside the same
preset trained alone at the chosen count.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from budgetvision.bench import _slug  # noqa: E402
from budgetvision.device import _TORCH_OWN, device_name  # noqa: E402
from budgetvision.io import write_json  # noqa: E402
from budgetvision.version import source_commit  # noqa: E402

LOG_EVERY = 10


def start(preset: str, steps: int, out: Path, data_root: Path | None, threads: int | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "budgetvision", "train", "--preset", preset, "--steps", str(steps), "--out", str(out),
           "--no-progress", "--set", f"train.log_every={LOG_EVERY}", f"train.eval_every={steps}",
           f"train.checkpoint_every={steps}"]
    cmd += ["--data-root", str(data_root)] if data_root else []
    cmd += ["--threads", str(threads)] if threads else []
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    log = open(out.parent / f"{out.name}.log", "w")   # noqa: SIM115 - the process's, closed with it
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def rows(out: Path) -> list[dict]:
    found = sorted(out.glob("*/seed-*/metrics.jsonl"))
    if not found:
        return []
    return [r for r in map(json.loads, found[0].read_text().splitlines()) if r["kind"] == "train"]


def logged_at(out: Path, proc: subprocess.Popen, stopped_ok: bool = False) -> list[tuple[float, dict]]:
    """Each train row with the wall time it appeared, polled while the process runs."""
    seen: list[tuple[float, dict]] = []
    while proc.poll() is None:
        new = rows(out)[len(seen):]
        seen += [(time.time(), r) for r in new]
        time.sleep(0.2)
    if proc.returncode != 0 and not (stopped_ok and proc.returncode == 128 + 15):
        raise RuntimeError(f"training failed (exit {proc.returncode}): see {out.parent / (out.name + '.log')}")
    return seen + [(time.time(), r) for r in rows(out)[len(seen):]]


def together(preset: str, steps: int, data_root: Path | None, threads: int | None, tmp: Path) -> dict:
    """Both trainings' median images/s over the windows logged while the other was training too: the
    first (given ten times the steps) trains alone for a few windows, the second then trains its
    steps, and the first is stopped when the second ends."""
    outs = [tmp / f"{threads}-a", tmp / f"{threads}-b"]
    logs: dict[int, list] = {}
    first = start(preset, 10 * steps, outs[0], data_root, threads)
    watch = threading.Thread(target=lambda: logs.__setitem__(0, logged_at(outs[0], first, stopped_ok=True)))
    watch.start()
    while len(rows(outs[0])) < 3:
        time.sleep(0.2)
    logs[1] = logged_at(outs[1], start(preset, steps, outs[1], data_root, threads))
    first.terminate()   # SIGTERM: it checkpoints and exits
    watch.join()
    t0, t1 = logs[1][0][0], logs[1][-1][0]   # the second's first window holds its start-up
    both = [[r["images_per_s"] for t, r in logs[0] if t0 < t <= t1], [r["images_per_s"] for _, r in logs[1][1:]]]
    return {"first_images_per_s": statistics.median(both[0]), "second_images_per_s": statistics.median(both[1]),
            "windows": [len(b) for b in both]}


def alone(preset: str, steps: int, data_root: Path | None, threads: int, tmp: Path) -> float:
    out = tmp / f"alone-{threads}"
    proc = start(preset, steps, out, data_root, threads)
    logs = logged_at(out, proc)
    return statistics.median(r["images_per_s"] for _, r in logs[1:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="addnist-mobilenet")
    p.add_argument("--steps", type=int, default=120, help="steps per training (logged every 10)")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "screens")
    args = p.parse_args()
    cores = _TORCH_OWN
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = {f"alone, every core (--threads {cores})": {"images_per_s": alone(
                        args.preset, args.steps, args.data_root, cores, tmp)},
                    f"two, each --threads {cores} (the old default)": together(
                        args.preset, args.steps, args.data_root, cores, tmp),
                    "two, no --threads (shared: the default now)": together(
                        args.preset, args.steps, args.data_root, None, tmp)}
    device = device_name(torch.device("cpu"))
    record = {"format": "budgetvision-screen-1", "preset": args.preset, "steps": args.steps,
              "torch_threads_alone": cores, "settings": settings,
              "command": f"python benchmarks/two_trainings.py --preset {args.preset} --steps {args.steps}",
              "commit": source_commit() or "unknown", "device_name": device, "torch": torch.__version__}
    path = args.results / f"two-trainings--{args.preset}--{_slug(device)}.json"
    write_json(path, record)
    print(json.dumps(record, indent=1))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
