"""`budgetvision selftest`: does this machine run budgetvision? Each check drives one path of the
library briefly on the named device, on the offline digits, through the same functions (and, where a
process boundary is the point, the same command line) a user has: building every preset, training
each kind of model in the device's precision, a run killed and resumed, sampling and evaluating each
generator kind, `bench`, ONNX export and torchrun. A check that fails is recorded with the first line
of its error and the others still run, so one report names everything that is wrong.

The CUDA paths (bf16 autocast, spectral norm under it, compile on CUDA, NCCL, pinned transfers) had
never run when this was written: `--device cuda` is how the first GPU that appears tests them.
"""
from __future__ import annotations

import io
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import api
from .bench import BenchOptions, bench_preset
from .device import cpu_has_bf16, device_name
from .errors import BudgetVisionError
from .io import load_checkpoint
from .objectives import build_objective
from .presets import PRESETS
from .runs import read_metrics
from .setup import param_counts, shape_spec
from .version import __version__

DATASET = "digits"   # scikit-learn's bundled digits: offline, 16x16, trains in seconds
# (preset, steps, overrides) per model kind: tiny batches and few steps prove the path, not the recipe.
# train.amp and train.cpu_amp on: bf16 autocast wherever the device computes bf16 (CUDA, a bf16-native
# CPU), fp32 elsewhere (device.amp_dtype decides).
TRAIN = {
    "classifier": ("cifar100-speedrun-convnet", 40, []),                         # BatchNorm, Muon, whitening stem
    "gan": ("cifar100-aw-sngan", 20, ["train.batch_size=16"]),                   # spectral norm, conditional BN
    "diffusion": ("mnist-guided-diffusion", 20, ["train.batch_size=16", "objective.sample_steps=4"]),
    "pca": ("mnist-pca", 6, ["train.batch_size=128"]),
}
PRECISION = ["train.amp=true", "train.cpu_amp=true"]
# The classifier compiles on CUDA: compile there has never run, and a missing or broken Triton is what
# most often fails on a new GPU machine. Not on the CPU, where it would add ~45 s to a 2-core machine's
# ~2 minutes (the suite's compile tests cover the CPU's inductor).
COMPILE_ON = ("cuda",)
FAST_SAMPLING = {"diffusion": {"sampler": "dpmpp2m", "sample_steps": 8}}   # GAN and PCA sample in one pass
EVAL_N = 100          # samples each generator draws for the judge's scores
# Kill and resume: a SIGKILL after the first checkpoint, then --resume, beside an uninterrupted run.
RESUME = ("mnist-lenet", 120, 10, ["train.batch_size=32", "train.ema_decay=0.9", "data.augment.crop=2"])
# CUDA kernels (atomics in convolution backward) are not deterministic, so a resumed CUDA run parts
# from the uninterrupted one by rounding that training then amplifies; this bound on the weights'
# largest absolute difference is a first guess, not yet measured on a GPU, and the check's detail
# prints the measured value. On the CPU the two runs must be bit-identical.
CUDA_RESUME_ATOL = 1e-2
DDP = ("mnist-lenet", 20, 32, ["train.amp=false"])   # preset, steps, global batch (about), overrides
# torchrun against one process: the same gradients summed in another order (~1e-7 relative a step),
# 1e-5 as tests/test_ddp.py bounds it; CUDA's nondeterministic kernels get the resume check's bound.
# In fp32: bf16 autocast rounds that summation-order difference up (8e-4 in 5 steps on this CPU,
# test_ddp.py), and the other checks train in bf16 already.
DDP_ATOL = {"cpu": 1e-5, "cuda": CUDA_RESUME_ATOL}
SUBPROCESS_TIMEOUT = 300   # seconds: a child that hangs (a collective waiting forever) fails its check


class CheckFailed(BudgetVisionError):
    """A check ran and found something wrong; its message is the row's detail."""


@dataclass
class Context:
    device: torch.device
    work: Path                                            # every file a check writes goes under here
    runs: dict[str, Path] = field(default_factory=dict)   # trained runs by kind, for the later checks

    def run_of(self, kind: str) -> Path:
        if kind not in self.runs:
            raise CheckFailed(f"needs the {kind} run, which its training check did not produce")
        return self.runs[kind]


# ----------------------------------------------------------------------------- the environment

def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def environment(device: torch.device) -> dict:
    """What the report names: versions, the device and what it computes in, threads."""
    cuda = device.type == "cuda"
    out = {"budgetvision": __version__, "python": platform.python_version(), "platform": platform.platform(),
           "torch": torch.__version__,
           "cuda": torch.version.cuda,                       # the CUDA torch was built with (None: a CPU build)
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "cuda_available": torch.cuda.is_available(), "gpus": torch.cuda.device_count(),
           "device": str(device), "device_name": device_name(device), "bf16": bf16_supported(device),
           "threads": torch.get_num_threads()}
    if cuda:
        out["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    try:
        import onnxruntime
        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        out["onnxruntime"] = None
    return out


# ----------------------------------------------------------------------------- checks

def check_presets(ctx: Context) -> str:
    """Every preset's networks, built on the device at its own data set's shape, within its budget."""
    largest = (0, "")
    for name, preset in PRESETS.items():
        cfg = preset.config
        objective = build_objective(cfg, shape_spec(cfg)).to(ctx.device)
        total = param_counts(objective)["total"]
        if total >= cfg.budget.max_params:
            raise CheckFailed(f"{name}: {total:,} parameters, budget < {cfg.budget.max_params:,}")
        largest = max(largest, (total, name))
        del objective
    return f"{len(PRESETS)} presets built on {ctx.device.type}, all within budget (largest {largest[1]} {largest[0]:,})"


def _train(ctx: Context, kind: str) -> str:
    """One run of a model kind on the device, in its precision: every step taken, losses finite."""
    preset, steps, overrides = TRAIN[kind]
    if kind == "classifier":
        overrides = [*overrides, f"train.compile={str(ctx.device.type in COMPILE_ON).lower()}"]
    run = api.train(preset, dataset=DATASET, steps=steps, out=ctx.work / "runs", device=str(ctx.device),
                    progress=False, overrides=[*PRECISION, *overrides, "train.tensorboard=false"])
    res = run.results
    rows = [r for r in read_metrics(run.path / "seed-0" / "metrics.jsonl") if r["kind"] == "train"]
    if not rows or rows[-1]["step"] != steps:
        raise CheckFailed(f"{preset}: the log ends at step {rows[-1]['step'] if rows else 0} of {steps}")
    losses = {k: v for k, v in rows[-1].items() if "loss" in k or k == "within_class_var"}
    if not all(math.isfinite(v) for v in losses.values()) or res["nonfinite_skipped"]:
        raise CheckFailed(f"{preset}: non-finite losses ({res['nonfinite_skipped']} steps skipped; last {losses})")
    ctx.runs[kind] = run.path
    compiled = (", compiled" if run.config.train.compile else ", not compiled") if kind == "classifier" else ""
    what = f"{preset} {steps} steps, {res['precision']}{compiled}"
    shown = ", ".join(f"{k} {v:.3g}" for k, v in losses.items())
    if kind != "classifier":
        return f"{what}: {shown}"
    chance = 1 / shape_spec(run.config).num_classes
    if not res["test_accuracy"] > 2 * chance:   # 40 steps on digits reach ~99 %; twice chance is "it learned"
        raise CheckFailed(f"{what}: test accuracy {100 * res['test_accuracy']:.1f} %, chance {100 * chance:.0f} %")
    return f"{what}: {shown}, test {100 * res['test_accuracy']:.1f} %"


def check_resume(ctx: Context) -> str:
    """A training process SIGKILLed after its first checkpoint and resumed ends where an uninterrupted
    one does: bit-identical on the CPU, within CUDA_RESUME_ATOL on CUDA."""
    preset, steps, every, overrides = RESUME
    straight, killed = ctx.work / "resume-straight", ctx.work / "resume-killed"
    _cli(ctx, _train_args(ctx, straight, preset, steps, every, overrides))
    at = _kill_after(ctx, _train_args(ctx, killed, preset, steps, every, overrides), killed, every + 1, steps)
    (run,) = killed.iterdir()
    resumed_from = load_checkpoint(run / "seed-0" / "checkpoint.pt")["step"]
    _cli(ctx, ["train", "--resume", str(run), "--no-progress", "--device", str(ctx.device)])
    (ref,) = straight.iterdir()
    a, b = load_checkpoint(ref / "seed-0" / "checkpoint.pt"), load_checkpoint(run / "seed-0" / "checkpoint.pt")
    if a["step"] != steps or b["step"] != steps:
        raise CheckFailed(f"final steps {a['step']} (uninterrupted) and {b['step']} (resumed), not {steps}")
    diff = max(_max_diff(a[k], b[k], k) for k in ("objective", "ema", "optimizers"))
    ra, rb = (json.loads((r / "seed-0" / "results.json").read_text()) for r in (ref, run))
    acc = f"test {100 * ra['test_accuracy']:.2f} / {100 * rb['test_accuracy']:.2f} %"
    killed_at = f"SIGKILLed at step {at}, resumed from step {resumed_from}"
    if ctx.device.type == "cpu":
        differing = [k for k in ra if k != "wall_seconds" and ra[k] != rb[k]]
        if diff or differing:
            raise CheckFailed(f"{killed_at}: not identical (weights differ by {diff:.2e}; results {differing})")
        return f"{killed_at}; {steps} steps bit-identical to the uninterrupted run ({acc})"
    if diff > CUDA_RESUME_ATOL:
        raise CheckFailed(f"{killed_at}: weights differ by {diff:.2e} > {CUDA_RESUME_ATOL:g} ({acc})")
    return f"{killed_at}; weights within {diff:.2e} of the uninterrupted run (bound {CUDA_RESUME_ATOL:g}; {acc})"


def check_sample_eval(ctx: Context) -> str:
    """Each generator kind samples with its fast sampler and is scored by the trained classifier."""
    judge = ctx.run_of("classifier")
    parts = []
    for kind in ("gan", "diffusion", "pca"):
        run, sampling = ctx.run_of(kind), FAST_SAMPLING.get(kind, {})
        images = api.sample(run, "0-7", device=str(ctx.device), **sampling)
        if images.dtype != torch.uint8 or images.shape[:2] != (8, 1):
            raise CheckFailed(f"{kind}: samples {tuple(images.shape)} {images.dtype}, expected (8, 1, H, W) uint8")
        out = vars(api.evaluate(run, device=str(ctx.device), judge=judge, n=EVAL_N, **sampling))
        if not (math.isfinite(out["judge_fid"]) and out["sampling_images_per_s"] > 0):
            raise CheckFailed(f"{kind}: judge-feature FID {out['judge_fid']}, {out['sampling_images_per_s']} images/s")
        score = (f"judge accuracy {100 * out['judge_accuracy']:.0f} %" if "judge_accuracy" in out
                 else f"judge FID {out['judge_fid']:.3g}")
        how = f" ({sampling['sampler']}, {sampling['sample_steps']} steps)" if sampling else ""
        parts.append(f"{kind}{how} {out['sampling_images_per_s']:.0f} images/s, {score}")
    return "; ".join(parts)


def check_bench(ctx: Context) -> str:
    """`bench` of one preset: the tool's loop beside the plain PyTorch loop, a few steps each."""
    row = bench_preset("mnist-lenet", dataset=DATASET, overrides=PRECISION,
                       options=BenchOptions(steps=6, window=3, warmup=2), data_root=None, device=ctx.device)
    if not (row["tool_images_per_s"] > 0 and row["plain_images_per_s"] > 0):
        raise CheckFailed(f"rates {row['tool_images_per_s']} and {row['plain_images_per_s']} images/s")
    return (f"mnist-lenet: tool {row['tool_images_per_s']:.0f} images/s, plain loop {row['plain_images_per_s']:.0f} "
            f"({row['ratio']:.2f}x; 6 steps, not a measurement)")


def check_export(ctx: Context) -> str:
    """ONNX export of the classifier and the GAN generator, each checked in onnxruntime (export.py)."""
    from .export import export_onnx

    parts = []
    for kind in ("classifier", "gan"):
        info = export_onnx(ctx.run_of(kind), ctx.work / f"{kind}.onnx")
        key = "max_abs_logit_diff" if kind == "classifier" else "max_abs_image_diff"
        parts.append(f"{kind} opset {info['opset']}, max |diff| {info[key]:.1e} on {info['check_images']}")
    return "; ".join(parts)


def check_torchrun(ctx: Context) -> str:
    """torchrun: two processes on the CPU (Gloo) or one per visible GPU (NCCL) train the run one
    process trains, to DDP_ATOL."""
    preset, steps, batch, overrides = DDP
    procs = torch.cuda.device_count() if ctx.device.type == "cuda" else 2
    overrides = [*overrides, f"train.batch_size={max(1, batch // procs) * procs}"]   # splits evenly
    one, many = ctx.work / "ddp-one", ctx.work / "ddp-many"
    # The one-process run here, in this process (a child costs a start-up): its thread count moves
    # roundings by ~1e-7, far below the bound.
    api.train(preset, dataset=DATASET, steps=steps, out=one, device=str(ctx.device), progress=False,
              overrides=_settings(1000, overrides))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), "-m", "budgetvision",
           *_train_args(ctx, many, preset, steps, 1000, overrides)]
    _child(ctx, cmd, f"torchrun --nproc-per-node {procs}")
    (a_dir,), (b_dir,) = one.iterdir(), many.iterdir()
    a, b = load_checkpoint(a_dir / "seed-0" / "checkpoint.pt"), load_checkpoint(b_dir / "seed-0" / "checkpoint.pt")
    if b.get("world_size") != procs or b["step"] != steps:
        raise CheckFailed(f"the torchrun run ended at step {b['step']} on {b.get('world_size')} process(es)")
    diff, bound = _max_diff(a["objective"], b["objective"], "objective"), DDP_ATOL[ctx.device.type]
    backend = "NCCL" if ctx.device.type == "cuda" and procs > 1 else "Gloo" if procs > 1 else "no group"
    if diff > bound:
        raise CheckFailed(f"{procs} processes ({backend}) part from one by {diff:.2e} > {bound:g}")
    note = " (one visible GPU: NCCL not exercised)" if procs == 1 else ""
    return f"{procs} processes ({backend}), {steps} steps: weights within {diff:.1e} of one process{note}"


# name, function; training first, as the later checks use its runs
CHECKS: list[tuple[str, Callable[[Context], str]]] = [
    ("presets", check_presets),
    ("train-classifier", lambda ctx: _train(ctx, "classifier")),
    ("train-gan", lambda ctx: _train(ctx, "gan")),
    ("train-diffusion", lambda ctx: _train(ctx, "diffusion")),
    ("train-pca", lambda ctx: _train(ctx, "pca")),
    ("resume", check_resume),
    ("sample-eval", check_sample_eval),
    ("bench", check_bench),
    ("onnx-export", check_export),
    ("torchrun", check_torchrun),
]


# ----------------------------------------------------------------------------- child processes

def _child_env(ctx: Context) -> dict:
    """This very package first on the path; one thread a process, so two ranks share two cores and
    a killed and a straight run run the same kernels (the temporary and cache folders are _contained's)."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join([root, os.environ["PYTHONPATH"]]) if os.environ.get("PYTHONPATH") else root
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _settings(every: int, overrides: list[str]) -> list[str]:
    """A logged row every step (the kill watches them), a checkpoint every `every` steps."""
    return ["train.log_every=1", "train.eval_every=1000", "train.tensorboard=false",
            f"train.checkpoint_every={every}", *PRECISION, *overrides]


def _train_args(ctx: Context, out: Path, preset: str, steps: int, every: int, overrides: list[str]) -> list[str]:
    return ["train", "--preset", preset, "--dataset", DATASET, "--steps", str(steps), "--out", str(out),
            "--device", str(ctx.device), "--no-progress", "--set", *_settings(every, overrides)]


def _child(ctx: Context, cmd: list[str], label: str) -> None:
    """Run a child to its end; a failure raises with its last line of stderr (the error, or the
    last line of a traceback)."""
    done = subprocess.run(cmd, env=_child_env(ctx), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
                          cwd=ctx.work)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or [f"exit {done.returncode}"]
        raise CheckFailed(f"{label} (exit {done.returncode}): {lines[-1].strip()}")


def _cli(ctx: Context, args: list[str]) -> None:
    _child(ctx, [sys.executable, "-m", "budgetvision", *args], f"budgetvision {' '.join(args[:3])}")


def _logged_step(root: Path) -> int:
    for path in root.glob("*/seed-0/metrics.jsonl"):
        lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
        return json.loads(lines[-1])["step"] if lines else 0
    return 0


def _kill_after(ctx: Context, args: list[str], root: Path, step: int, steps: int) -> int:
    """Start a training process, SIGKILL it once it has logged `step` (past its first checkpoint), as a
    lost machine would; return the last step it logged."""
    log = ctx.work / "killed.stderr"   # a file, not a pipe: a full pipe would stall the child
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "budgetvision", *args], env=_child_env(ctx), cwd=ctx.work,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    while proc.poll() is None and _logged_step(root) < step and time.monotonic() < deadline:
        time.sleep(0.002)
    if proc.poll() is not None:
        err = [line for line in log.read_text().splitlines() if line.strip()]
        raise CheckFailed(f"the run ended (exit {proc.returncode}) before the kill at step {step}"
                          + (f": {err[-1]}" if err else ""))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = _logged_step(root)
    if not step <= at < steps or list(root.glob("*/seed-0/results.json")):
        raise CheckFailed(f"the kill did not land inside the run (logged step {at} of {steps})")
    return at


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_diff(a, b, where: str) -> float:
    """The largest absolute difference between two nested states' tensors; a structural mismatch raises."""
    if isinstance(a, dict):
        if list(a) != list(b):
            raise CheckFailed(f"{where}: the two states hold different entries")
        return max((_max_diff(a[k], b[k], f"{where}.{k}") for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise CheckFailed(f"{where}: the two states hold different entries")
        return max((_max_diff(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))), default=0.0)
    if isinstance(a, torch.Tensor):
        if a.shape != b.shape:
            raise CheckFailed(f"{where}: shapes {tuple(a.shape)} and {tuple(b.shape)}")
        return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    return 0.0 if a == b else math.inf


# ----------------------------------------------------------------------------- running them

def first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    return text if isinstance(e, BudgetVisionError) else f"{type(e).__name__}: {text}"


def run_checks(device: torch.device, *, out: Path | None = None, checks=None,
               on_row: Callable[[dict], None] | None = None) -> dict:
    """Run every check on `device` in a temporary folder (removed after) or in `out` (kept); return
    {"device", "environment", "checks": [{check, ok, seconds, detail}], "ok", "seconds"}."""
    checks = CHECKS if checks is None else checks
    start = time.perf_counter()
    keep = out is not None
    work = Path(out) if keep else Path(tempfile.mkdtemp(prefix="budgetvision-selftest-"))
    rows = []
    try:
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context(device, work)
        with _contained(work):
            for name, fn in checks:
                rows.append(_one(ctx, name, fn))
                if on_row is not None:
                    on_row(rows[-1])
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"device": str(device), "environment": environment(device), "checks": rows,
            "ok": all(r["ok"] for r in rows), "seconds": time.perf_counter() - start}


def _one(ctx: Context, name: str, fn: Callable[[Context], str]) -> dict:
    """One check, isolated: its output is captured (the report is the table, or JSON), its failure
    becomes its row."""
    t0 = time.perf_counter()
    try:
        with _quiet():
            detail, ok = fn(ctx), True
    except Exception as e:   # any failure is this check's result; Ctrl-C still stops the run
        detail, ok = first_line(e), False
    finally:
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    return {"check": name, "ok": ok, "seconds": round(time.perf_counter() - t0, 2), "detail": detail}


_CONTAINED = {   # variable: folder under the work folder
    "TMPDIR": "tmp",                          # torchrun's logs, onnxruntime's session file, compiler scratch
    "TORCHINDUCTOR_CACHE_DIR": "compile-cache",   # an empty compile cache: compile itself is checked (a
    "TRITON_CACHE_DIR": "compile-cache/triton",   # warm one would skip it), and its files go with the work folder
    "BUDGETVISION_CACHE": "cache",
}


@contextmanager
def _contained(work: Path):
    """Everything the checks and their children write, torch's and onnxruntime's files included, goes
    under `work`: these variables point there for the checks and are put back after."""
    before = {key: os.environ.get(key) for key in _CONTAINED}
    temp_before = tempfile.tempdir
    for key, sub in _CONTAINED.items():
        (work / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(work / sub)
    tempfile.tempdir = os.environ["TMPDIR"]
    try:
        yield
    finally:
        tempfile.tempdir = temp_before
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet():
    """Swallow what a check prints, torch's C++ libraries (the profiler, oneDNN) included: they write
    to the file descriptors, past sys.stdout, and the report is the table or the JSON alone."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def format_header(env: dict) -> str:
    cuda = f"built with CUDA {env['cuda'] or '-'}, cuDNN {env['cudnn'] or '-'}"
    capability = f" (compute capability {env['capability']})" if "capability" in env else ""
    return (f"budgetvision {env['budgetvision']} selftest on {env['device']}: {env['device_name']}{capability}\n"
            f"torch {env['torch']} ({cuda}), python {env['python']}, bf16 {'yes' if env['bf16'] else 'no'}, "
            f"{env['threads']} thread(s), {env['gpus']} GPU(s) visible")


def format_row(row: dict) -> str:
    return f"{row['check']:17} {'ok' if row['ok'] else 'FAIL':4} {row['seconds']:7.1f}s  {row['detail']}"


def format_footer(report: dict) -> str:
    failed = [r["check"] for r in report["checks"] if not r["ok"]]
    n = len(report["checks"])
    verdict = f"all {n} checks passed" if not failed else f"{len(failed)} of {n} checks failed: {', '.join(failed)}"
    return f"{verdict} in {report['seconds']:.0f} s"


def report(device: torch.device, *, as_json: bool = False, out: Path | None = None, progress: bool = True) -> int:
    """`budgetvision selftest`: the table (rows as they finish) or JSON; 0 when every check passed, else 1."""
    if not as_json:
        print(format_header(environment(device)), flush=True)

    def on_row(row: dict) -> None:   # a user watching for minutes sees each row as it ends
        if not as_json:
            print(format_row(row), flush=True)
        elif progress:
            print(format_row(row), file=sys.stderr, flush=True)
    result = run_checks(device, out=out, on_row=on_row)
    print(json.dumps(result, indent=2) if as_json else format_footer(result))
    return 0 if result["ok"] else 1
