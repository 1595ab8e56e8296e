"""What several commands share: flag groups (device and threads, a recipe, a diffusion run's sampling),
how they read back, and one-process printing. Light at import: `--help` loads no torch."""
from __future__ import annotations

from pathlib import Path

from ..config import SAMPLERS
from ..errors import BudgetVisionError, ConfigError

DEFAULT_OUT = Path("runs")

# The diffusion sampling flags (add_sampling) as argparse stores them.
SAMPLING_FLAGS = ("sampler", "sample_steps", "cfg_scale", "guidance_interval")


def add_common(sp, data: bool = True) -> None:
    """--device, --data-root (where the command reads a data set), --no-progress, --threads: every
    command that computes; main() sets the threads of any command that has --threads."""
    sp.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    if data:
        sp.add_argument("--data-root", default=None,
                        help="data folder (else $BUDGETVISION_DATA, else the user cache)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar (status lines instead)")
    sp.add_argument("--threads", type=int, default=None, metavar="N",
                    help="CPU threads for torch (default: $OMP_NUM_THREADS, else torch's own count shared "
                         "evenly with this machine's other budgetvision processes, re-shared as they start "
                         "and end)")


def add_sampling(sp) -> None:
    """How a diffusion run samples, for one command: nothing it learned changes."""
    sp.add_argument("--sampler", choices=SAMPLERS, default=None, help="diffusion: sample with this instead of "
                    "the run's objective.sampler (dpmpp2m: DPM-Solver++(2M), second order, ~25 steps)")
    sp.add_argument("--sample-steps", type=int, default=None, metavar="N", help="diffusion: sampler steps "
                    "(network calls per image; twice that under guidance) instead of the run's")
    sp.add_argument("--cfg-scale", type=float, default=None, metavar="W", help="diffusion: classifier-free "
                    "guidance weight instead of the run's objective.cfg_scale (0: conditional only)")
    sp.add_argument("--guidance-interval", default=None, metavar="LO,HI", help="diffusion: guide only at "
                    "noise levels sigma/alpha in (LO, HI] (0: no limit on that side) instead of the run's "
                    "objective.guidance_interval")


def add_recipe(sp) -> None:
    """A preset and what changes it: --preset, --dataset, --steps, --seed, --set (read by `resolve`)."""
    sp.add_argument("--preset", help="a preset name (budgetvision presets)")
    sp.add_argument("--dataset", help="run the preset on another data set: addnist, cifar100, digits, "
                                      "mnist or folder:PATH")
    sp.add_argument("--steps", type=int, help="optimisation steps (train.steps)")
    sp.add_argument("--seed", type=int, help="first seed (train.seed)")
    sp.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. optim.lr=1e-3 train.batch_size=128")


def resolve(args):
    """The RunConfig that add_recipe's flags name."""
    from ..api import resolve

    return resolve(args.preset, dataset=args.dataset, steps=args.steps, seed=args.seed, overrides=list(args.set))


def sampling(args) -> dict:
    """The diffusion sampling flags given (--sampler, --sample-steps, --cfg-scale, --guidance-interval)."""
    return {f: getattr(args, f) for f in SAMPLING_FLAGS if getattr(args, f, None) is not None}


def opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def out_file(path: str, suffixes: tuple[str, ...], kind: str) -> Path:
    """--out as a file of `kind` (e.g. "a .png") in a folder that exists."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"--out must name {kind} file, got {path!r}")
    if not out.parent.is_dir():
        raise BudgetVisionError(f"output folder {out.parent} does not exist")
    return out


def say(line: str, file=None) -> None:
    """Print, from one process: under torchrun rank 0 speaks for the group (another rank's refusal
    reaches rank 0 and is printed there)."""
    from ..distributed import is_main

    if is_main():
        print(line, file=file)
