"""The leaderboard's measurements: every classifier preset, the papers' and ours, trained at the same
budget per data set, one seed per process, each seed's result added to its file in
benchmarks/results/ the moment it finishes (so an interrupted comparison loses at most the seeds in
flight, and the next invocation picks up the rest: finished seeds are skipped, killed ones resumed
from their checkpoints). A SIGTERM to this script (kill, timeout) is passed on to the trainings in
flight, which checkpoint and exit; run the same command to go on.

    python benchmarks/compare.py --data-root DATA --jobs 2            # everything still missing
    python benchmarks/compare.py --data-root DATA --only addnist-digit-sum --seeds 0
    python benchmarks/compare.py --list                                 # what would run, in order

DATA must hold MNIST/ (AddNIST is built from it, or read from addnist/ when the official files are
there) and cifar10-jpeg/ (../shared/data/cifar10-jpeg.tar.gz unpacked: the CIFAR-10 photographs
stand in for CIFAR-100, which these machines cannot download). With --addnist-sample DIR (the
official AddNIST sample), each AddNIST seed is also scored on that sample's test images.

Generators are trained at one budget per data set and scored against the test split by a judge
classifier the tool trained on the same data (`budgetvision eval RUN --judge JUDGE --prc --n N`): its
accuracy on class-conditional samples' labels, the judge-feature FID and its real-data floor, the
judge-feature KID, and improved precision and recall in the judge's features; a grid of seeds 0-63
goes to results/samples/. On MNIST (10,000 x 64, N = 10,000) the judge is the `mnist-lenet` preset
(seed 0, trained here once, or --judge RUN) and a row's value is the judge accuracy (every MNIST
generator compared is class-conditional). On CIFAR-10-JPEG (issue 28: 2,000 steps x batch 64 for every
preset, N = 2,000, the diffusion presets sampled by DPM-Solver++(2M) at 25 steps with their own
guidance) it is the leaderboard's seed-0 `cifar100-speedrun-convnet` run of the 10,000 x 128 table
(or --cifar-judge RUN) and the value is the judge-feature FID (Hughes's SN-DCGAN is
unconditional); with --inception-weights FILE the real FID goes beside it. A judge not given is
looked up in RESULTS/judges/<job>/ (kept beside the rows it read, so any machine reads new rows with
the same judge), then in RUNS/<job>/seed-0/ (the classifier comparison's own run, e.g.
RUNS/cifar100-speedrun-convnet--cifar10-jpeg--10000x128/seed-0/NNNNN-cifar100-speedrun-convnet/), then
in RUNS/judge/<job>/, and trained (or resumed) there when none holds a finished run; a judge found
outside RESULTS/judges/ is copied there (its config, results and checkpoint, about 1 MB) to be
committed with the rows. One judge reads every row of a table: a seed that another judge would read
is refused before it trains (each row names its judge; --redo --only PRESET measures a preset again).

With --jobs N, N trainings run side by side, each on one CPU thread (OMP_NUM_THREADS=1): on the
2-core development machine two processes with torch's default threads slow each other ~10x.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from budgetvision.device import device_name  # noqa: E402
from budgetvision.leaderboard import add_seed, read_result, result_path  # noqa: E402
from budgetvision.presets import MNIST_GENERATOR_STEPS, get_preset  # noqa: E402
from budgetvision.runs import open_run  # noqa: E402
from budgetvision.version import source_commit  # noqa: E402

CIFAR_BUDGET = (3_000, 128)   # steps x batch for every CIFAR preset: a 2-core CPU trains it in minutes
# The budget counts steps; batch is each recipe's choice. Ours also at twice the batch (the same steps,
# twice the images). The papers' own batches are larger still (256, 512, 1,024): at 3,000 steps each would
# take this CPU 2-8x the hours of the 128 rows.
CIFAR_OURS_WIDE = (3_000, 256)
# The real budget: 10,000 steps, every CIFAR classifier at the batch of the 3,000-step table (the papers'
# own 256-1,024 would take this CPU 2-8x the hours), so the table holds one batch rule.
CIFAR_FULL = (10_000, 128)
MNIST_GEN_BUDGET = (MNIST_GENERATOR_STEPS, 64)  # batch 64 is every MNIST recipe's own
# Issue 28's CIFAR-10-JPEG generator comparison: every preset at 2,000 steps x batch 64, the same images
# seen. Batch 64 is this machine's choice, not the papers' (the leaderboard's title lists the presets' own:
# 64-256); 2,000 steps is what a 2-core CPU trains five of in a session.
CIFAR_GEN_BUDGET = (2_000, 64)
# The diffusion presets' samples for the CIFAR rows: DPM-Solver++(2M) at 25 steps, each preset's own
# guidance weight and interval kept. Their own samplers (ancestral, 500-1,000 steps; ours dpmpp2m at 20)
# would take hours per preset for 2,000 images on this CPU. The leaderboard names the swap in the title.
CIFAR_GEN_SAMPLING = ("dpmpp2m", 25)
JUDGE_PRESET = "mnist-lenet"
# Samples a judge reads per generator row (seeds 0..n-1, labels seed % 10): 10,000 on MNIST; 2,000 on
# CIFAR-10-JPEG, where a diffusion preset's sampling is the costly part (judge KID is unbiased at 2,000,
# judge FID is not: compare FIDs only at equal n).
JUDGE_SAMPLES = {"mnist": 10_000, "cifar10-jpeg": 2_000}
# What `eval --judge --prc` writes for a class-conditional generator (an unconditional one has no
# judge accuracy); a row keeps each of these and the real FID where its eval wrote them, but its value.
JUDGE_KEYS = ("judge_accuracy", "judge_fid", "judge_fid_real_floor", "judge_kid_mean", "judge_kid_std",
              "judge_kid_subset_size", "judge_precision", "judge_recall", "sampling_images_per_s")
# How a row's samples were drawn (eval.json's keys, where the generator has a sampler), kept in its seed row.
SAMPLING_KEYS = ("sampler", "sample_steps", "cfg_scale", "guidance_interval")
GENERATOR_EXTRAS = (*JUDGE_KEYS, "fid")


@dataclass(frozen=True)
class Job:
    preset: str
    dataset: str                  # the label in result files and the leaderboard
    dataset_arg: str | None       # --dataset for train (None: the preset's own)
    steps: int
    batch_size: int
    metric: str = "test_accuracy"   # classifiers; class-conditional generators: judge_accuracy
    sampling: tuple[str, int] | None = None   # a diffusion preset's (sampler, steps) for its scores, not its own

    @property
    def args(self) -> list[str]:
        out = ["--preset", self.preset]
        if self.dataset_arg:
            out += ["--dataset", self.dataset_arg]
        cfg = get_preset(self.preset).config.train
        if self.steps != cfg.steps:
            out += ["--steps", str(self.steps)]
        if self.batch_size != cfg.batch_size:
            out += ["--set", f"train.batch_size={self.batch_size}"]
        return out


def _own(preset: str) -> tuple[int, int]:
    t = get_preset(preset).config.train
    return t.steps, t.batch_size


def _diffusion(preset: str) -> bool:
    return hasattr(get_preset(preset).config.objective, "sampler")


# Within a seed, in this order.
CIFAR = ("cifar100-speedrun-convnet", "cifar100-dsc-transformer", "cifar100-bottleneck", "cifar100-dsc-resnet")
CIFAR_GENERATORS = ("cifar100-guided-diffusion", "cifar100-vdiffusion", "cifar100-aw-sngan", "cifar100-sn-dcgan",
                    "cifar100-ddpm")
JOBS = [
    Job("addnist-digit-sum", "addnist", None, *_own("addnist-digit-sum")),
    *[Job(p, "cifar10-jpeg", "folder:cifar10-jpeg", *CIFAR_BUDGET) for p in CIFAR],
    Job(CIFAR[0], "cifar10-jpeg", "folder:cifar10-jpeg", *CIFAR_OURS_WIDE),
    *[Job(p, "cifar10-jpeg", "folder:cifar10-jpeg", *CIFAR_FULL) for p in CIFAR],
    Job("addnist-mobilenet", "addnist", None, *_own("addnist-mobilenet")),
    *[Job(p, "mnist", None, *MNIST_GEN_BUDGET, metric="judge_accuracy")
      for p in ("mnist-projection-gan", "mnist-guided-diffusion", "mnist-ccgan")],
    *[Job(p, "cifar10-jpeg", "folder:cifar10-jpeg", *CIFAR_GEN_BUDGET, metric="judge_fid",
          sampling=CIFAR_GEN_SAMPLING if _diffusion(p) else None) for p in CIFAR_GENERATORS],
]
# Each generator data set's judge: a classifier job whose seed-0 run reads the samples. On CIFAR-10-JPEG,
# the leaderboard's CIFAR classifier: the 10,000 x 128 speedrun row (CIFAR_FULL).
JUDGES = {"mnist": Job(JUDGE_PRESET, "mnist", None, *_own(JUDGE_PRESET)),
          "cifar10-jpeg": Job(CIFAR[0], "cifar10-jpeg", "folder:cifar10-jpeg", *CIFAR_FULL)}


# The budgetvision processes running now. A SIGTERM to this script (`kill`, `timeout`, a batch system)
# reaches only it, so it passes the signal on: each training checkpoints and exits, no queued one
# starts, and the next invocation resumes them. (Ctrl-C reaches the trainings from the terminal.)
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()


def _stop(signum, frame) -> None:
    _STOPPING.set()
    with _CHILDREN_LOCK:
        for child in _CHILDREN:
            child.send_signal(signum)


def budgetvision_cli(args: list[str], data_root: Path, log: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "budgetvision", *args, "--data-root", str(data_root), "--no-progress"]
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        with _CHILDREN_LOCK:
            if _STOPPING.is_set():
                raise RuntimeError(f"{' '.join(args)} not started: stopped by a signal")
            child = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
            _CHILDREN.add(child)
        try:
            returncode = child.wait()
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(child)
    if returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {returncode}); see {log}")


def job_runs(runs: Path, job: Job) -> Path:
    """The folder holding a job's run folders, one `seed-N` each."""
    return runs / f"{job.preset}--{job.dataset}--{job.steps}x{job.batch_size}"


def run_seed(job: Job, seed: int, *, data_root: Path, runs: Path, results: Path, threads: int,
             addnist_sample: Path | None, inception_weights: Path | None = None) -> dict:
    if _STOPPING.is_set():
        raise RuntimeError(f"{job.preset} seed {seed} not started: stopped by a signal")
    if job.metric != "test_accuracy":   # a generator: its table's judge first, before the hours of training
        one_judge(results, job)
    out = job_runs(runs, job) / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    existing = sorted(out.glob("*-" + job.preset))
    t0 = time.perf_counter()
    if existing:   # a killed earlier attempt: continue it from its checkpoint
        budgetvision_cli(["train", "--resume", str(existing[0])], data_root, log, threads)
    else:
        budgetvision_cli(["train", *job.args, "--seed", str(seed), "--out", str(out)], data_root, log, threads)
        existing = sorted(out.glob("*-" + job.preset))
    run_dir = existing[0]
    res = json.loads((run_dir / "results.json").read_text())
    per = res["per_seed"][0]
    if job.metric != "test_accuracy":   # a generator, read by its data set's judge
        sampling = _sampling(job.preset, job.sampling)
        fid = ["--fid", "--inception-weights", str(inception_weights)] if inception_weights else []
        judge_dir = judge(job.dataset)
        n = JUDGE_SAMPLES[job.dataset]
        evaluated = _judged(run_dir, judge_dir, data_root, log, threads, n, [*fid, *sampling])
        scores = {"value": evaluated[job.metric], "judge": judge_record(judge_dir),
                  "extra": {k: evaluated[k] for k in GENERATOR_EXTRAS if k in evaluated and k != job.metric},
                  "judge_n": evaluated["judge_n"],
                  **({"judge_kid_feature_scale": evaluated["judge_kid_feature_scale"]}
                     if "judge_kid_feature_scale" in evaluated else {}),
                  **({"sampling": {k: evaluated[k] for k in SAMPLING_KEYS}} if "sampler" in evaluated else {}),
                  "eval_command": " ".join(["budgetvision eval RUN --judge JUDGE --prc --n", str(n),
                                            *(["--fid --inception-weights WEIGHTS"] if fid else []), *sampling])}
        # Seeds 0-63 (labels seed % 10) of the checkpoint just scored, drawn as it was scored, kept
        # beside the result file: every generator's grid at equal steps, side by side in the README.
        grids = results / "samples"
        grids.mkdir(parents=True, exist_ok=True)
        grid = grids / f"{job.preset}--{job.dataset}--{job.steps}x{job.batch_size}--seed-{seed}.png"
        budgetvision_cli(["sample", str(run_dir), "--seeds", "0-63", "--out", str(grid), *sampling], data_root, log,
                         threads)
    else:
        scores = {"value": per["test_accuracy"], "train_accuracy": per["train_accuracy"],
                  "val_accuracy": per["val_accuracy"], "extra": {}}
        # Test-time views are not training either: a run trained before its preset's view weights
        # changed is scored on test with the preset's (its train and val accuracies stay as trained).
        own, trained = (get_preset(job.preset).config.train.tta_shift_weight,
                        open_run(run_dir)[0].train.tta_shift_weight)
        if own != trained:
            budgetvision_cli(["eval", str(run_dir), "--tta-shift-weight", str(own)], data_root, log, threads)
            scores |= {"value": json.loads((run_dir / "eval.json").read_text())["test_accuracy"],
                       "test_views": {"tta_shift_weight": own, "trained_tta_shift_weight": trained,
                                      "eval_command": f"budgetvision eval RUN --tta-shift-weight {own}"}}
    row = {"seed": seed, **scores, "wall_seconds": per["wall_seconds"],
           "commit": source_commit() or "unknown", "device": per["device"],
           "device_name": device_name(torch.device(per["device"])),
           "threads": threads, "torch": res["versions"]["torch"], "precision": res.get("precision", "fp32"),
           "trained_at": per.get("trained_at", ["not recorded"]),
           "command": "budgetvision train " + " ".join(job.args) + f" --seed {seed}"}
    if job.dataset == "addnist" and addnist_sample is not None:
        row["extra"]["official_sample"] = _score_on_sample(run_dir, addnist_sample, log, threads)
    params = res["params"]
    header = {"preset": job.preset, "origin": get_preset(job.preset).origin, "task": res["task"],
              "dataset": job.dataset, "steps": job.steps, "batch_size": job.batch_size,
              "images_seen": job.steps * job.batch_size, "params": params, "metric": job.metric,
              "command": "budgetvision train " + " ".join(job.args)}   # the leaderboard adds the seeds
    add_seed(result_path(results, job.preset, job.dataset, job.steps, job.batch_size), header, row)
    value = f"{100 * row['value']:.2f} %" if job.metric.endswith("accuracy") else f"{row['value']:.4g}"
    print(f"{job.preset} on {job.dataset} seed {seed}: {job.metric} {value} ({time.perf_counter() - t0:.0f} s)",
          flush=True)
    return row


def judge_record(judge_dir: Path) -> dict:
    """Which classifier read a generator's samples: the leaderboard names it beside the row. The
    checkpoint's hash tells two judges apart that share preset, seed, commit and test accuracy (the
    same commit and seed trained on another CPU is another network: results/screens/judge-reproduction--*)."""
    per = json.loads((judge_dir / "results.json").read_text())["per_seed"][0]
    checkpoint = judge_dir / f"seed-{per['seed']}" / "checkpoint.pt"
    return {"run": f"{json.loads((judge_dir / 'run.json').read_text())['preset']} seed {per['seed']}",
            "test_accuracy": per["test_accuracy"], "commit": (per.get("trained_at") or [None])[-1],
            "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()}


def one_judge(results: Path, job: Job) -> None:
    """Every row of a generator table (a data set at one budget) is read by one judge: refuse a seed
    that another judge would read, as when the classifier table the judge comes from is trained again.
    A table with no judged row yet leaves the judge to be found (or trained) after the generator trains."""
    judged = [(path.name, row) for path in sorted(results.glob(f"*--{job.dataset}--{job.steps}x{job.batch_size}.json"))
              for row in read_result(path)["per_seed"] if "judge" in row]
    if not judged:
        return
    judge_dir = judge(job.dataset)
    mine = judge_record(judge_dir)
    for name, row in judged:   # rows from before judges were hashed: by what they recorded
        if any(row["judge"].get(k, v) != v for k, v in mine.items()):
            table = sorted({n.split("--")[0] for n, _ in judged} | {job.preset})
            raise RuntimeError(f"{job.preset} not started: {name} seed {row['seed']} was read by {row['judge']}, "
                               f"and the judge found now is {mine} ({judge_dir}); pass that run as --judge / "
                               f"--cifar-judge, or measure the table again under this one: --redo --only "
                               f"{' '.join(table)}")


def _score_on_sample(run_dir: Path, sample: Path, log: Path, threads: int) -> float:
    """Test accuracy on the official AddNIST files: a data root whose addnist/ is that sample."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "addnist").symlink_to(sample.resolve(), target_is_directory=True)
        budgetvision_cli(["eval", str(run_dir)], Path(tmp), log, threads)
    return json.loads((run_dir / "eval.json").read_text())["test_accuracy"]


def _sampling(preset: str, instead: tuple[str, int] | None = None) -> list[str]:
    """A diffusion preset's sampler, steps and guidance as eval flags: sampling is not training, so
    a run is scored the way its preset samples now, even where the preset changed them after the
    run trained. `instead` (sampler, steps) replaces the preset's sampler and steps, its guidance
    weight and interval kept."""
    o = get_preset(preset).config.objective
    if not hasattr(o, "sampler"):
        return []
    sampler, steps = instead or (o.sampler, o.sample_steps)
    return ["--sampler", sampler, "--sample-steps", str(steps), "--cfg-scale", str(o.cfg_scale),
            "--guidance-interval", ",".join(str(v) for v in o.guidance_interval)]


def _judged(run_dir: Path, judge_dir: Path, data_root: Path, log: Path, threads: int, n: int,
            sampling: list[str]) -> dict:
    """The judge's scores of the generator's n samples (eval.json's judge_* keys) against the test split."""
    budgetvision_cli(["eval", str(run_dir), "--judge", str(judge_dir), "--prc", "--n", str(n), *sampling],
                     data_root, log, threads)
    return json.loads((run_dir / "eval.json").read_text())


_JUDGE: dict = {}
_JUDGE_LOCK = threading.Lock()


def judge(dataset: str) -> Path:
    """The judge run of a generator data set: the one given (--judge, --cifar-judge), else the seed-0
    run of its JUDGES job: the one kept under --results/judges, else the classifier comparison's own
    run where it is under --runs, otherwise trained (or resumed) once under --runs/judge; a judge
    found under --runs is kept under --results/judges, where the next machine finds it."""
    with _JUDGE_LOCK:
        if dataset not in _JUDGE:
            given, runs, results, data_root, threads = _JUDGE["args"]
            job = JUDGES[dataset]
            if given.get(dataset) is not None:
                _JUDGE[dataset] = given[dataset]
            else:
                kept = results / "judges" / job_runs(runs, job).name
                out = runs / "judge" / job_runs(runs, job).name
                places = (kept, job_runs(runs, job) / "seed-0", out)
                finished = [d for place in places for d in sorted(place.glob(f"*-{job.preset}"))
                            if (d / "results.json").exists()]
                if not finished:
                    out.mkdir(parents=True, exist_ok=True)
                    found = sorted(out.glob(f"*-{job.preset}"))
                    args = ["--resume", str(found[0])] if found else [*job.args, "--seed", "0", "--out", str(out)]
                    budgetvision_cli(["train", *args], data_root, out / "log.txt", threads)
                    finished = sorted(out.glob(f"*-{job.preset}"))
                _JUDGE[dataset] = finished[0] if finished[0].parent == kept else keep_judge(finished[0], kept)
        return _JUDGE[dataset]


# What `eval --judge` opens of a classifier run (its seed-0 weights and the config that builds them)
# and what a row records of it (results.json): the rest of a run folder (plots, logs) stays behind.
# results.json last: it is what marks a judge finished, so a copy cut short is not taken for one.
JUDGE_FILES = ("config.json", "run.json", "seed-0/checkpoint.pt", "seed-0/results.json", "results.json")


def keep_judge(run_dir: Path, kept: Path) -> Path:
    """Copy a finished judge run's JUDGE_FILES to `kept`/<its folder name> (under the result files, so it
    is committed with the rows it reads) and return the copy, which is what reads the samples."""
    copy = kept / run_dir.name
    for name in JUDGE_FILES:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / name, copy / f"{name}.tmp")
        os.replace(copy / f"{name}.tmp", copy / name)
    return copy


def done_seeds(job: Job, results: Path) -> set[int]:
    path = result_path(results, job.preset, job.dataset, job.steps, job.batch_size)
    return set(read_result(path)["seeds"]) if path.exists() else set()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=None, help="holds MNIST/ and cifar10-jpeg/")
    p.add_argument("--addnist-sample", type=Path, default=None, help="official AddNIST sample folder (*.npy)")
    p.add_argument("--judge", type=Path, default=None, help=f"a trained {JUDGE_PRESET} run to judge the MNIST "
                   "generators (default: the one kept under --results/judges, else train one under --runs)")
    p.add_argument("--cifar-judge", type=Path, default=None, help=f"a trained {CIFAR[0]} run on cifar10-jpeg to "
                   "judge the CIFAR generators (default: the one kept under --results/judges, else the comparison's "
                   f"seed-0 run at {CIFAR_FULL[0]} x {CIFAR_FULL[1]}, else train one under --runs)")
    p.add_argument("--inception-weights", type=Path, default=None, help="the FID Inception weights file: "
                   "generator rows also carry the real FID")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds per preset")
    p.add_argument("--only", nargs="+", default=None, metavar="PRESET", help="just these presets")
    p.add_argument("--jobs", type=int, default=1, help="trainings side by side, one thread each")
    p.add_argument("--threads", type=int, default=None, help="torch threads per training "
                   "(default: all cores with --jobs 1, else 1)")
    p.add_argument("--runs", type=Path, default=REPO / "benchmarks" / "runs", help="run folders (not committed)")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results", help="result files")
    p.add_argument("--steps", type=int, default=None, help="every job at this many steps instead "
                   "(a quick check or another budget; results go to their own files)")
    p.add_argument("--list", action="store_true", help="print the queue and exit")
    p.add_argument("--redo", action="store_true", help="with --only: a recipe changed, so drop those presets' "
                   "result files (and run folders) and measure them again")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [j for j in JOBS if args.only is None or j.preset in args.only]
    if args.steps is not None:
        jobs = [replace(j, steps=args.steps) for j in jobs]
    if args.redo and args.only is None:
        p.error("--redo needs --only: it discards those presets' measurements")
    # Every preset's first seed, then our other seeds, then the papers' (a short session measures the
    # comparison first, then the spread of our claims).
    queue = sorted(((j, s) for s in seeds for j in jobs if args.redo or s not in done_seeds(j, args.results)),
                   key=lambda js: (js[1] != seeds[0], get_preset(js[0].preset).origin != "budgetvision",
                                   seeds.index(js[1]), jobs.index(js[0])))
    if args.list or not queue:
        for j, s in queue:
            print(f"{j.preset} on {j.dataset}, {j.steps} x {j.batch_size}, seed {s}")
        print(f"{len(queue)} training(s) to run")
        return 0
    if args.data_root is None:
        p.error("--data-root is required to train")
    if args.redo:   # the old rows stay in git history; the file is rewritten as the new seeds finish
        for j in jobs:
            result_path(args.results, j.preset, j.dataset, j.steps, j.batch_size).unlink(missing_ok=True)
            shutil.rmtree(job_runs(args.runs, j), ignore_errors=True)
    threads = args.threads or (os.cpu_count() if args.jobs == 1 else 1)
    signal.signal(signal.SIGTERM, _stop)
    _JUDGE["args"] = ({"mnist": args.judge, "cifar10-jpeg": args.cifar_judge}, args.runs, args.results,
                      args.data_root, threads)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_seed, j, s, data_root=args.data_root, runs=args.runs, results=args.results,
                               threads=threads, addnist_sample=args.addnist_sample,
                               inception_weights=args.inception_weights) for j, s in queue]
        failed = 0
        for f in futures:
            try:
                f.result()
            except RuntimeError as e:
                if not _STOPPING.is_set():
                    print(f"failed: {e}", file=sys.stderr, flush=True)
                failed += 1
    if _STOPPING.is_set():
        print("stopped by SIGTERM: the trainings in flight wrote checkpoints; run the same command to go on",
              file=sys.stderr, flush=True)
        return 128 + signal.SIGTERM
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
