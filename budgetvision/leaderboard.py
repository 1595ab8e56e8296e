"""The leaderboard: the papers' presets and budgetvision's side by side, read from result files.

A result file (`benchmarks/results/*.json`, written by `benchmarks/compare.py`) holds one preset
trained at one budget (data set, steps, batch size) and every seed measured so far, each with the
commit, device and command that produced it. The leaderboard groups files by data set and step budget
into tables of one batch rule: every row at its own preset's batch (the budget counts steps), or every
row at one batch chosen for this machine, never a mix; where diffusion rows sampled otherwise than their
presets do, the title says so and names their own samplers. It prints mean ± std over seeds, the command
that reproduces a row (its seeds as the file holds them) and, for generators, the judge that read it. The README's results section is this module's
Markdown (`budgetvision leaderboard --markdown`), never hand-written.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from .config import apply_overrides
from .data.datasets import DataSpec
from .data.shapes import KNOWN
from .errors import BudgetVisionError
from .io import write_json
from .objectives import build_objective
from .presets import PRESETS
from .runs import mean_std
from .setup import param_counts

RESULT_FORMAT = "budgetvision-result-1"
REPO_RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
DATASET_TITLES = {   # what a table's data set is, where its label alone would mislead
    "addnist": "AddNIST rebuilt from MNIST by its published construction (not the official files)",
    "cifar10-jpeg": "CIFAR-10-JPEG (CIFAR-10 at JPEG quality 75, standing in for CIFAR-100)",
}


@dataclass(frozen=True)
class Metric:
    label: str                  # column heading
    higher_is_better: bool
    percent: bool               # stored as a fraction, shown as a percentage


METRICS = {
    "test_accuracy": Metric("test accuracy", higher_is_better=True, percent=True),
    # a class-conditional generator's samples, read by a judge classifier as their labels
    "judge_accuracy": Metric("judge accuracy", higher_is_better=True, percent=True),
    # a generator's samples against real test images in a judge classifier's penultimate features
    "judge_fid": Metric("judge-feature FID", higher_is_better=False, percent=False),
}


SAMPLER_NAMES = {"ddpm": "ancestral", "ddim": "DDIM", "dpmpp2m": "DPM-Solver++(2M)"}
# An ancestral sampler of this many steps or more is hours per preset for a generator row's samples on a
# CPU: mnist-guided-diffusion (508k params, 28 x 28) draws 8.3 images/s at 25 DPM-Solver++(2M) steps on
# one core (benchmarks/results/speed/), ~250 network calls per second; 500-1,000 calls per image make
# 2,000 images 1-2 h at MNIST's size, more at CIFAR's.
HOURS_ON_CPU_STEPS = 500


def default_results_dir() -> Path:
    """The repository's committed results when run from a checkout, else ./benchmarks/results."""
    return REPO_RESULTS if REPO_RESULTS.is_dir() else Path("benchmarks") / "results"


def result_path(folder: Path, preset: str, dataset: str, steps: int, batch_size: int) -> Path:
    return Path(folder) / f"{preset}--{dataset}--{steps}x{batch_size}.json"


def add_seed(path: Path, header: dict, seed_row: dict) -> dict:
    """Add (or replace) one seed's row in a result file, creating it from `header` if needed, and
    rewrite the summary fields. Atomic, so a kill mid-write leaves the previous file intact."""
    path = Path(path)
    record = read_result(path) if path.exists() else {"format": RESULT_FORMAT, **header, "per_seed": []}
    for key in ("preset", "dataset", "steps", "batch_size", "metric"):
        if record[key] != header[key]:
            raise BudgetVisionError(f"{path} holds {key}={record[key]!r}, not {header[key]!r}")
    record.update(header)
    record["per_seed"] = sorted([r for r in record["per_seed"] if r["seed"] != seed_row["seed"]] + [seed_row],
                                key=lambda r: r["seed"])
    values = [r["value"] for r in record["per_seed"]]
    record["seeds"] = [r["seed"] for r in record["per_seed"]]
    record["mean"], record["std"] = mean_std(values)
    record["wall_seconds"] = sum(r["wall_seconds"] for r in record["per_seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return record


def read_result(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BudgetVisionError(f"cannot read result file {path}: {e}") from None
    if record.get("format") != RESULT_FORMAT:
        raise BudgetVisionError(f"{path} is not a budgetvision result file (format {record.get('format')!r})")
    if record.get("metric") not in METRICS:
        raise BudgetVisionError(f"{path}: unknown metric {record.get('metric')!r}")
    return record


def load_rows(folder: Path | None = None) -> list[dict]:
    """One row per result file with at least one seed, grouped by (task, data set, step budget) and
    best first within a group. Batch size is each recipe's own choice (the budget counts steps), so
    every row carries its batch and the images it saw."""
    folder = Path(folder) if folder is not None else default_results_dir()
    if not folder.is_dir():
        raise BudgetVisionError(f"no results folder at {folder} (benchmarks/compare.py writes it)")
    rows = []
    for path in sorted(folder.glob("*.json")):
        r = read_result(path)
        if not r["per_seed"]:
            continue
        values = [s["value"] for s in r["per_seed"]]
        mean, std = mean_std(values)
        preset = PRESETS.get(r["preset"])
        own = preset.config.objective if preset else None
        rows.append({
            "preset": r["preset"], "origin": r["origin"], "task": r["task"], "dataset": r["dataset"],
            "steps": r["steps"], "batch_size": r["batch_size"], "images_seen": r["steps"] * r["batch_size"],
            "own_batch_size": preset.config.train.batch_size if preset else r["batch_size"],
            "judges": sorted({_judge_text(s["judge"]) for s in r["per_seed"] if "judge" in s}),
            # a diffusion row's samplers as its seeds drew their samples, and its preset's own
            "samplings": sorted({_sampler_text(s["sampling"]["sampler"], s["sampling"]["sample_steps"])
                                 for s in r["per_seed"] if "sampling" in s}),
            "own_sampling": _sampler_text(own.sampler, own.sample_steps) if hasattr(own, "sampler") else None,
            "own_ancestral_steps": own.sample_steps if getattr(own, "sampler", None) == "ddpm" else 0,
            "own_guidance": all(hasattr(own, "cfg_scale") and s["sampling"]["cfg_scale"] == own.cfg_scale and
                                list(s["sampling"]["guidance_interval"]) == list(own.guidance_interval)
                                for s in r["per_seed"] if "sampling" in s),
            "on_cpu": all(s["device"] == "cpu" for s in r["per_seed"]),
            "params": counted_params(r), "metric": r["metric"], "mean": mean, "std": std,
            "seeds": [s["seed"] for s in r["per_seed"]], "values": values,
            "extra": _extra(r["per_seed"]),
            "command": _command(r["per_seed"]),
            "commits": sorted({c for s in r["per_seed"] for c in s.get("trained_at", [s["commit"]]) + [s["commit"]]}),
            "devices": sorted({s["device_name"] for s in r["per_seed"]}),
            # runs from before results.json recorded it all trained in fp32 (no CUDA run had been kept)
            "precisions": sorted({s.get("precision", "fp32") for s in r["per_seed"]}),
            "wall_seconds": sum(s["wall_seconds"] for s in r["per_seed"]), "file": path.name,
        })
    sign = {name: (-1 if m.higher_is_better else 1) for name, m in METRICS.items()}
    rows.sort(key=lambda r: (r["task"], r["dataset"], r["steps"], sign[r["metric"]] * r["mean"]))
    return rows


def _command(per_seed: list[dict]) -> str:
    """The command that reproduces a row's seeds: the first seed's with --seeds N where the seeds run
    on from it (`train --seeds N` trains seeds first .. first + N - 1), else each seed's own."""
    seeds = [s["seed"] for s in per_seed]
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        return "; ".join(s["command"] for s in per_seed)
    first = per_seed[0]["command"]
    if len(seeds) == 1:
        return first
    base = first.removesuffix(f" --seed {seeds[0]}")
    return base + (f" --seed {seeds[0]}" if seeds[0] else "") + f" --seeds {len(seeds)}"


def _sampler_text(sampler: str, steps: int) -> str:
    return f"{SAMPLER_NAMES.get(sampler, sampler)} {steps:,} steps"


def _judge_text(judge: dict) -> str:
    accuracy = f"{100 * judge['test_accuracy']:.2f} % test" if judge.get("test_accuracy") is not None else "-"
    weights = f", checkpoint {judge['checkpoint_sha256'][:12]}" if "checkpoint_sha256" in judge else ""
    return f"{judge['run']} ({accuracy}, commit {judge.get('commit') or 'not recorded'}{weights})"


# A folder data set's shape is known only by loading it, and the leaderboard prints in a clone without
# the data: the folder data sets the committed results trained on, as (channels, size, classes).
FOLDER_SHAPES = {"cifar10-jpeg": (3, 32, 10)}   # CIFAR-10's 60,000 images as JPEG files


def counted_params(record: dict) -> int:
    """A result's parameter count under the budget rule of today (models/registry.py count_params): its
    preset with its command's --set overrides, built at its data set's shape. A result file records the
    count of the day it was measured, and the rule has grown since (fitted tensors count: issue 26); the
    network is the same, so the row shows the count that applies. A preset, shape or override the
    leaderboard cannot build keeps the recorded count."""
    shape = KNOWN.get(record["dataset"], FOLDER_SHAPES.get(record["dataset"]))
    if record["preset"] not in PRESETS or shape is None:
        return record["params"]
    overrides, taking = [], False
    for token in shlex.split(record["command"]):
        if token.startswith("--"):
            taking = token == "--set"
        elif taking:
            overrides.append(token)
    channels, size, classes = shape
    spec = DataSpec(name=record["dataset"], channels=channels, image_size=size, num_classes=classes,
                    mean=(0.5,) * channels, std=(0.5,) * channels, class_names=tuple(map(str, range(classes))))
    try:
        cfg = apply_overrides(PRESETS[record["preset"]].config, overrides)
        return param_counts(build_objective(cfg, spec))["total"]
    except BudgetVisionError:
        return record["params"]


def _extra(per_seed: list[dict]) -> dict:
    """Secondary measurements every seed carries (e.g. AddNIST's official sample), as mean ± std."""
    keys = set.intersection(*(set(s.get("extra", {})) for s in per_seed)) if per_seed else set()
    return {k: mean_std([s["extra"][k] for s in per_seed]) for k in sorted(keys)}


def _value(row: dict) -> str:
    m = METRICS[row["metric"]]
    scale = 100 if m.percent else 1
    unit = " %" if m.percent else ""
    spread = f" ± {scale * row['std']:.2f}" if len(row["seeds"]) > 1 else ""
    return f"{scale * row['mean']:.2f}{spread}{unit}"


def _extra_text(row: dict) -> str:
    """Fractions as percentages; FIDs (distances) as they are and KIDs to 3 digits with their std over
    subsets (its mean over seeds) and the subsets' size, each ± its std over seeds where there are
    several; rates (`*_images_per_s`) per second, the mean alone (a speed's spread across seeds is
    the machine's, not the recipe's)."""
    several = len(row["seeds"]) > 1
    extra = row["extra"]

    def one(key: str, mean: float, std: float) -> str | None:
        name = key.replace("_", " ")
        if key.endswith("_images_per_s"):
            rate = f"{mean:,.0f}" if mean >= 10 else f"{mean:.2g}"   # a diffusion row on a CPU: a few a second
            return f"{key[:-len('_images_per_s')].replace('_', ' ')} {rate} images/s"
        if "fid" in key:
            return f"{name} {mean:.2f}" + (f" ± {std:.2f}" if several else "")
        if key.endswith("_kid_mean"):   # KID: 3 significant digits, its spread over subsets beside it
            base = key[:-len("_mean")]
            text = f"{base.replace('_', ' ')} {mean:.3g}" + (f" ± {std:.2g}" if several else "")
            if f"{base}_std" in extra and f"{base}_subset_size" in extra:
                text += (f" (std {extra[f'{base}_std'][0]:.2g} over subsets of "
                         f"{round(extra[f'{base}_subset_size'][0]):,})")
            return text
        if key.endswith(("_kid_std", "_kid_subset_size")):   # read out beside its KID
            return None if key.rsplit("_kid_", 1)[0] + "_kid_mean" in extra else f"{name} {mean:.3g}"
        return f"{name} {100 * mean:.1f}" + (f" ± {100 * std:.1f}" if several else "") + " %"
    return "; ".join(t for k, (m, s) in extra.items() if (t := one(k, m, s)) is not None)


def _device_text(row: dict) -> str:
    """The devices a row's seeds trained on, and their precision where it was not fp32 throughout."""
    precision = "" if row["precisions"] == ["fp32"] else f" ({', '.join(row['precisions'])})"
    return ", ".join(row["devices"]) + precision


def tables(rows: list[dict]):
    """(title, rows) per table: one data set and step budget, one batch rule. Where every row trained
    at its own preset's batch, that is the rule; else each batch size is a table of its own."""
    seen = []
    for r in rows:
        key = (r["task"], r["dataset"], r["steps"])
        if key not in seen:
            seen.append(key)
    for task, dataset, steps in seen:
        group = [r for r in rows if (r["task"], r["dataset"], r["steps"]) == (task, dataset, steps)]
        name = f"{DATASET_TITLES.get(dataset, dataset)}, {steps:,} steps"
        if all(r["batch_size"] == r["own_batch_size"] for r in group):
            yield f"{name}, each preset at its own batch{_sampling_note(group)}", group
            continue
        for batch in sorted({r["batch_size"] for r in group}):
            table = [r for r in group if r["batch_size"] == batch]
            moved = sorted({f"{r['preset']} {r['own_batch_size']:,}" for r in table if r["own_batch_size"] != batch})
            own = f" (chosen for this machine; the presets' own batches: {', '.join(moved)})" if moved else ""
            yield f"{name}, batch {batch:,} for every row{own}{_sampling_note(table)}", table


def _sampling_note(table: list[dict]) -> str:
    """Where a table's diffusion rows sampled otherwise than their presets do, as the batch rule's
    note does for batches: the sampler they used and their own, and why where the own is hours."""
    diffusion = [r for r in table if r["samplings"]]
    moved = [r for r in diffusion if r["samplings"] != [r["own_sampling"]]]
    if not moved:
        return ""
    used = sorted({s for r in diffusion for s in r["samplings"]})
    own = ", ".join(sorted(f"{r['preset']} {r['own_sampling'] or '(preset gone)'}" for r in moved))
    slow = sorted({r["own_ancestral_steps"] for r in moved if r["own_ancestral_steps"] >= HOURS_ON_CPU_STEPS})
    why = ""
    if slow and all(r["on_cpu"] for r in diffusion):
        span = f"{slow[0]:,}" if len(slow) == 1 else f"{slow[0]:,}- to {slow[-1]:,}"
        why = f": their own {span}-step ancestral samplers are hours per preset on this CPU"
    guidance = ", each with its preset's own guidance" if all(r["own_guidance"] for r in diffusion) else ""
    if len(used) == 1:
        return (f", diffusion rows sampled by {used[0]}{guidance} (chosen for this machine; the presets' own "
                f"samplers: {own}{why})")
    each = ", ".join(sorted(f"{r['preset']} {' / '.join(r['samplings'])}" for r in diffusion))
    return f", diffusion rows sampled by {each}{guidance} (the presets' own samplers: {own}{why})"


def _judge_column(table: list[dict]) -> dict[str, str]:
    """Each generator row's judge; a row read by another judge than most of its table says so."""
    named = {r["preset"]: " / ".join(r["judges"]) for r in table}
    usual = max(set(named.values()), key=list(named.values()).count) if named else ""
    return {preset: judge + ("" if judge == usual else " (another judge than the rest of this table)")
            for preset, judge in named.items()}


def format_text(rows: list[dict]) -> str:
    out = []
    for title, table in tables(rows):
        out.append(f"{title}: {METRICS[table[0]['metric']].label}, mean ± std over seeds")
        judges = _judge_column(table)
        for r in table:
            extra = f"  [{_extra_text(r)}]" if r["extra"] else ""
            judge = f"  judge: {judges[r['preset']]}" if r["judges"] else ""
            out.append(f"  {r['preset']:28} {r['origin']:12} {r['params']:>8,} params  batch {r['batch_size']:>4} "
                       f"({r['images_seen']:>9,} images)  {_value(r):>16}  {len(r['seeds'])} seed(s){extra}{judge}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def format_markdown(rows: list[dict]) -> str:
    out = []
    for title, table in tables(rows):
        judged = any(r["judges"] for r in table)
        judges = _judge_column(table)
        out.append(f"**{title}**:\n")
        out.append(f"| preset | origin | params | batch | images seen | {METRICS[table[0]['metric']].label} | seeds "
                   f"| also |{' judge |' if judged else ''} device | command |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |" + (" --- |" if judged else "") +
                   " --- | --- |")
        for r in table:
            out.append(f"| {r['preset']} | {r['origin']} | {r['params']:,} | {r['batch_size']} | {r['images_seen']:,} | "
                       f"{_value(r)} | {len(r['seeds'])} | {_extra_text(r) or '-'} |"
                       + (f" {judges[r['preset']] or '-'} |" if judged else "") +
                       f" {_device_text(r)} | `{r['command']}` |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def samples_markdown(rows: list[dict], samples: Path, link_base: str) -> str:
    """A grid per generator row, as compare.py draws them (seeds 0-63 of the checkpoint the row scores,
    labels seed mod 10), one table per leaderboard table, each row's lowest seed that has a grid: the
    choice is fixed in advance, so no grid is picked for its looks. `link_base`: the samples folder as
    the page that shows them links it."""
    out = []
    for title, table in tables(rows):
        shown = []
        for r in table:
            grids = [samples / f"{Path(r['file']).stem}--seed-{s}.png" for s in sorted(r["seeds"])]
            grid = next((g for g in grids if g.exists()), None)
            if r["task"] == "generate" and grid is not None:
                shown.append((f"{r['preset']} ({r['origin']}, seed {grid.stem.rsplit('-', 1)[1]})",
                              f"![]({link_base}/{grid.name})"))
        if shown:
            out.append(f"**{title}**:\n")
            out.append("| " + " | ".join(h for h, _ in shown) + " |")
            out.append("|" + " --- |" * len(shown))
            out.append("| " + " | ".join(g for _, g in shown) + " |\n")
    if not out:
        return "No generator row has a sample grid yet (benchmarks/compare.py draws one per seed it scores).\n"
    return ("Samples of the generator rows above: seeds 0-63 (label = seed mod 10) of the checkpoint each row "
            "scores, drawn as it was scored, from each row's lowest seed (`benchmarks/results/samples/`).\n\n"
            + "\n".join(out).rstrip() + "\n")


def readme_section(rows: list[dict]) -> str:
    """The README's results section: the Markdown tables and where their numbers come from."""
    return ("Every row is a result file in `benchmarks/results/` (its commit, device and per-seed values "
            "inside), written by `python benchmarks/compare.py --data-root DATA` (DATA holding `MNIST/` and the "
            "unpacked `cifar10-jpeg/`); `budgetvision leaderboard` prints the same. "
            "CIFAR-10-JPEG stands in for CIFAR-100, which these machines cannot download: the CIFAR-100 "
            "presets train on it with a 10-class head. Params are counted from each row's preset under the "
            "budget rule of today (the file keeps the count of its day).\n\n" + format_markdown(rows))
