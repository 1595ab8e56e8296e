"""Every command in the README and the pages under docs/ runs as written: each line of their plain
code blocks that starts with `budgetvision` or `./bv` is run through the command line, in order (the
README first, then docs/ pages by path), in one fresh folder, on the offline `digits` with tiny
settings. A flag that went away, a preset that refuses what the line asks (a sweep without a
validation split) or a placeholder that names no kind of run fails here. A block that should not run
here (it needs data or hours this test cannot have) is marked with a language (```sh, ```text), as
```python blocks are: only plain blocks run. Lines of other programs (`./test`, `python benchmarks/...`,
`tensorboard`, `torchrun`) do not run either.

Tiny settings only shrink a line: the data set becomes digits, step, seed, trial, sample and sampler
step counts become a few, torch.compile is off, `bench --all` sees two presets, and the FID
Inception and LPIPS AlexNet are randomly initialised networks where the tool looks for the real
weights. `runs/<...>` placeholders are runs trained first (a classifier judge, a class-conditional
GAN, a guided diffusion model); `runs/NNNNN-<preset>` is the run of that preset an earlier line
made. The torchrun lines are torch's launcher, not this command line (tests/test_ddp.py runs them)."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from budgetvision import leaderboard, presets
from budgetvision.cli import main
from budgetvision.evaluation import fid as fidlib
from test_generative_eval import alexnet_weights, inception_weights  # noqa: F401  (fixtures: random weights)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DIGIT_PIXELS = 16 * 16   # pca-vs-gan's largest component count on digits (the README's is MNIST's 784)
# flag -> its tiny value, on the commands where the flag means that (interpolate's --steps are frames,
# sample's --seeds are image seeds: kept)
TINY = {"--steps": ("2", {"train", "sweep", "lr-find", "bench", "demo", "synthetic-mix"}),
        "--seeds": ("1", {"train"}), "--n": ("10", {"eval", "fid-ref", "pca-vs-gan"}),
        "--trials": ("2", {"sweep"}), "--sample-steps": ("2", {"eval", "sample"}), "--judge-n": ("10", {"sweep"})}
# what a line gets where it does not say (a preset's own steps are thousands; eval draws 10,000 samples)
ADDED = {"train": ["--steps", "2"], "sweep": ["--steps", "2", "--judge-n", "10"],
         "lr-find": ["--steps", "2", "--range-steps", "3"], "demo": ["--steps", "2"],
         "bench": ["--steps", "2", "--warmup", "0", "--window", "1", "--samples", "2"],
         "synthetic-mix": ["--steps", "2", "--total", "200"], "pca-vs-gan": ["--n", "10"], "fid-ref": ["--n", "10"]}
WITH_DATASET = {"train", "sweep", "lr-find", "bench"}   # these take --dataset; a line without it gets digits
# compilation takes seconds that 2 steps do not need (train.compile is speed, not the recipe)
WITH_SET = {"train", "sweep", "lr-find", "bench"}
GENERATOR_EVAL = {"--fid", "--kid", "--is", "--prc", "--judge", "--lpips"}   # eval flags that draw samples
PLACEHOLDERS = {"classifier": ("<mnist-lenet-run>", "<j>", "<a>"), "gan": ("<run>", "<gen-run>", "<g>", "<b>"),
                "diffusion": ("<diffusion-run>",)}


def documents() -> list[Path]:
    """The README, then every page under docs/ by path: a later line may use a run an earlier one made."""
    return [README, *sorted((REPO / "docs").rglob("*.md"))]


def commands(path: Path) -> list[str]:
    """Each command line of a page's plain code blocks (continuation lines joined)."""
    lines = []
    for lang, body in re.findall(r"```([^\n]*)\n(.*?)```", path.read_text(), re.S):
        if lang.strip():   # ```python, ```sh and the like: not run here
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.split(" ", 1)[0] in ("budgetvision", "./bv"):
                lines.append(line)
    return lines


def readme_commands() -> list[tuple[str, str]]:
    """(page, command line) for every page, the README first."""
    return [(str(path.relative_to(REPO)), line) for path in documents() for line in commands(path)]


def _command(args: list[str]) -> str:
    words = [a for a in args if not a.startswith("-")]
    return words[1] if words[0] == "experiment" else words[0]


def _one(arg: str, flag: str, command: str, runs: dict[str, Path], cwd: Path) -> str:
    """One argument, shrunk, its placeholder replaced by a real run."""
    if flag in TINY and command in TINY[flag][1]:
        return TINY[flag][0]
    if flag == "--dataset" or (command == "fid-ref" and arg == "cifar100"):
        return "digits"
    if flag == "--components":
        return ",".join(dict.fromkeys(str(min(int(c), DIGIT_PIXELS)) for c in arg.split(",")))
    for role, names in PLACEHOLDERS.items():
        for name in names:
            arg = arg.replace(f"runs/{name}", str(runs[role]))
    made = re.fullmatch(r"runs/\d{5}-([a-z0-9-]+)", arg)
    if made:   # the run of that preset an earlier line made (its number depends on what ran before)
        arg = str(next((cwd / "runs").glob(f"*-{made[1]}"), arg))
    return arg


def tiny(line: str, runs: dict[str, Path], cwd: Path) -> list[str]:
    """The line's arguments with tiny settings and real runs in place of placeholders."""
    args = shlex.split(line, comments=True)[1:]
    command = _command(args)
    out = [_one(arg, args[i - 1] if i else "", command, runs, cwd) for i, arg in enumerate(args)]
    if "--resume" in args or "--report" in args:   # a run's or a study's own settings
        return out + ["--no-progress"] * ("--resume" in args)
    added = ADDED.get(command, []) + (["--n", "10"] if command == "eval" and GENERATOR_EVAL & set(args) else [])
    out += [x for flag, value in zip(added[::2], added[1::2]) if flag not in args for x in (flag, value)]
    if command in WITH_DATASET and "--dataset" not in args:
        out += ["--dataset", "digits"]
    if command in WITH_SET:
        preset = presets.PRESETS.get(args[args.index("--preset") + 1]) if "--preset" in args else None
        sampled = preset is not None and hasattr(preset.config.objective, "sample_steps")
        # a diffusion preset draws its grid with its recipe's sampler: hundreds of steps a sample
        out += ["--set", "train.compile=false", *(["objective.sample_steps=2"] if sampled else [])]
    return out + ["--no-progress"] * (command not in ("presets", "leaderboard", "report"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A classifier (the judge), a class-conditional GAN and a guided diffusion model on digits,
    a few steps each; the diffusion model samples in 2 steps, so its recipe's sampler is cheap too."""
    out = tmp_path_factory.mktemp("readme-runs")
    trained = {"classifier": ["mnist-lenet", "--steps", "30"], "gan": ["mnist-ccgan", "--steps", "2"],
               "diffusion": ["mnist-guided-diffusion", "--steps", "2", "--set", "objective.sample_steps=2"]}
    for role, (preset, *rest) in trained.items():
        assert main(["train", "--preset", preset, "--dataset", "digits", *rest, "--out", str(out / role),
                     "--no-progress"]) == 0
    return {role: next((out / role).iterdir()) for role in trained}


def test_every_readme_command_runs_as_written(runs, inception_weights, alexnet_weights, tmp_path,  # noqa: F811
                                             monkeypatch):
    lines = readme_commands()
    assert len(lines) >= 35 and any("sweep --preset" in line for _, line in lines)
    # the front page's own: the offline demo, a machine check and the short tour
    front = {line.split("#")[0].split()[1] for page, line in lines if page == "README.md"}
    assert front >= {"demo", "selftest", "train", "eval", "sample", "report", "leaderboard"}, front
    assert {page for page, _ in lines} >= {"README.md", "docs/usage.md", "docs/speed.md",
                                         "docs/distributed-and-sweeps.md"}
    # the tool's first place to look for the Inception and LPIPS (AlexNet) weights: torch's hub cache
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / fidlib.INCEPTION_FILE).symlink_to(inception_weights)
    (hub / alexnet_weights.name).symlink_to(alexnet_weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # bench writes its rows into the checkout's results folder: a copy of it, never the committed files
    monkeypatch.setattr(leaderboard, "REPO_RESULTS", Path(shutil.copytree(leaderboard.REPO_RESULTS,
                                                                           tmp_path / "results")))
    failed = []
    for page, line in lines:
        args = tiny(line, runs, work)
        torch.manual_seed(0)
        with monkeypatch.context() as patch:
            if "--all" in args:   # bench --all on two of the presets: every one would take minutes
                patch.setattr(presets, "PRESETS", {n: presets.PRESETS[n] for n in ("mnist-lenet", "mnist-ccgan")})
            if main(args) != 0:
                failed.append(f"{page}: {line.strip()}  (ran: {shlex.join(args)})")
    assert not failed, "README and docs/ commands that fail:\n" + "\n".join(failed)
