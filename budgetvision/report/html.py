"""One self-contained HTML file (figures embedded) for one run, or several side by side."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..io import atomic_write_bytes, read_json
from ..presets import PRESETS

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.over{color:#b00;font-weight:bold}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figcaption{font-size:.85em;color:#555}
img{max-width:100%;border:1px solid #eee}pre{background:#f8f8f8;padding:.6em;overflow-x:auto;font-size:.8em}
"""

FIGURES = (  # (file under the run folder, caption)
    ("training.png", "training graph"),
    ("confusion.png", "test confusion matrix"),
    ("interpolations.png", "latent interpolations"),
    ("neighbours.png", "samples beside their nearest training images"),
    ("judge-confusion.png", "judge confusion on class-conditional samples"),
)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "") + " %"


def _headline(results: dict, evaluation: dict) -> str:
    """The paper-comparable number of a run: test accuracy, or FID / KID / judge scores."""
    if results["task"] == "classify":
        return _pct(results["test_accuracy"], results["test_accuracy_std"])
    parts = []
    for key, label in (("fid", "FID"), ("kid_mean", "KID"), ("is_mean", "IS"), ("judge_accuracy", "judge acc"),
                       ("judge_fid", "judge-feature FID"), ("judge_fid_real_floor", "its real-data floor"),
                       ("lpips_nearest_mean", "LPIPS to nearest")):
        if key in evaluation:
            value = evaluation[key]
            parts.append(f"{label} {_pct(value) if key == 'judge_accuracy' else f'{value:.4g}'}")
    return ", ".join(parts) or "not evaluated (budgetvision eval RUN --fid ...)"


def _row(cells, header=False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


# What a page reads from results.json, checked once: a damaged file is one line, not a KeyError.
RESULT_KEYS = ("preset", "task", "dataset", "params", "param_budget", "step_budget", "steps", "batch_size",
               "images_seen", "seeds", "over_budget", "wall_seconds", "device")
CLASSIFIER_KEYS = ("train_accuracy", "train_accuracy_std", "test_accuracy", "test_accuracy_std",
                   "test_accuracy_batch_std")


def _load(run_dir: Path) -> tuple[dict, dict, dict]:
    results = read_json(run_dir / "results.json", keys=RESULT_KEYS)
    if results["task"] == "classify":
        read_json(run_dir / "results.json", keys=CLASSIFIER_KEYS)
    config = read_json(run_dir / "config.json", keys=())
    evaluation = read_json(run_dir / "eval.json", keys=()) if (run_dir / "eval.json").exists() else {}
    return results, config, evaluation


def run_section(run_dir: Path) -> str:
    results, config, evaluation = _load(run_dir)
    preset = PRESETS.get(results["preset"])
    out = [f'<h2 id="{html.escape(run_dir.name)}">{html.escape(run_dir.name)}: {html.escape(results["preset"])} '
           f'on {html.escape(results["dataset"])}</h2>']
    if preset is not None and preset.config.data.name != results["dataset"]:
        out.append(f"<p>{html.escape(preset.source)}, moved from {html.escape(preset.config.data.name)} to "
                   f"{html.escape(results['dataset'])}: not comparable with the paper's numbers.</p>")
    elif preset is not None:
        out.append(f"<p>Reproduces {html.escape(preset.source)}. Paper: {html.escape(preset.paper_result)}"
                   + (f", {preset.paper_params:,} parameters" if preset.paper_params else "") + ".</p>")
    over = '<span class="over">OVER BUDGET (explicit override)</span>' if results["over_budget"] else "within budget"
    counts = results.get("param_counts", {"total": results["params"]})
    rows = [_row(["budget", "value", "limit"], header=True)]
    for role, n in counts.items():
        limit = f"&lt; {results['param_budget']:,}" if role == "total" else ""
        rows.append(_row([f"parameters ({role})", f"{n:,}", limit]))
    rows += [_row(["optimisation steps", f"{results['steps']:,}", f"&le; {results['step_budget']:,}"]),
             _row(["batch size", results["batch_size"], ""]),
             _row(["images seen per seed", f"{results['images_seen']:,}", ""]),
             _row(["seeds", ", ".join(map(str, results["seeds"])), ""]),
             _row(["status", over, ""])]
    out.append("<table>" + "".join(rows) + "</table>")
    for warning in results.get("warnings", []):
        out.append(f'<p class="over">warning: {html.escape(warning)}</p>')

    metrics = [_row(["metric", "value"], header=True)]
    if results["task"] == "classify":
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            value = (_pct(results[key], results[key + "_std"]) if results.get(key) is not None
                     else "none: trained on the whole training split (data.val_fraction = 0)")
            metrics.append(_row([key.replace("_", " ") + " (mean ± std over seeds)", value]))
        metrics.append(_row(["test accuracy, per-batch spread (the papers' ±)",
                             f"± {100 * results['test_accuracy_batch_std']:.2f} %"]))
    for key, value in (evaluation.items() if results["task"] == "generate" else ()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.append(_row([html.escape(key), f"{value:.6g}"]))
    metrics.append(_row(["wall time (all seeds)", f"{results['wall_seconds']:.0f} s on {html.escape(results['device'])}"]))
    out.append("<table>" + "".join(metrics) + "</table>")

    figures = [_img(run_dir / name, caption) for name, caption in FIGURES if (run_dir / name).exists()]
    for sample in results.get("samples", [])[:1]:
        if Path(sample).exists():
            figures.insert(1, _img(Path(sample), "64 non-cherry-picked samples, seeds 0-63"))
    out.append("".join(figures))
    out.append("<details><summary>resolved config</summary><pre>"
               f"{html.escape(json.dumps(config, indent=2))}</pre></details>")
    versions = results.get("versions", {})
    out.append("<p><small>" + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</small></p>")
    return "\n".join(out)


def comparison_table(run_dirs: list[Path]) -> str:
    rows = [_row(["run", "preset", "data set", "params", "steps", "batch", "images seen", "seeds", "result",
                  "paper"], header=True)]
    for run_dir in run_dirs:
        results, _, evaluation = _load(run_dir)
        preset = PRESETS.get(results["preset"])
        over = ' <span class="over">over budget</span>' if results["over_budget"] else ""
        rows.append(_row([f'<a href="#{html.escape(run_dir.name)}">{html.escape(run_dir.name)}</a>',
                          html.escape(results["preset"]), html.escape(results["dataset"]),
                          f"{results['params']:,}{over}", f"{results['steps']:,}", results["batch_size"],
                          f"{results['images_seen']:,}", len(results["seeds"]),
                          html.escape(_headline(results, evaluation)),
                          html.escape(preset.paper_result)
                          if preset and preset.config.data.name == results["dataset"] else "-"]))
    return "<table>" + "".join(rows) + "</table>"


def write_report(run_dirs: list[Path], out: Path) -> Path:
    run_dirs = [Path(r) for r in run_dirs]
    title = "budgetvision report: " + ", ".join(r.name for r in run_dirs)
    body = [comparison_table(run_dirs)] + [run_section(r) for r in run_dirs]
    return _write_page(title, body, out)


def write_sweep_report(summary: dict, folder: Path, out: Path) -> Path:
    """A study's page: every trial (best first) with its parameters and fate, the study's plots from
    `folder`, then the finished trials' runs as in a report of those runs."""
    rows = [_row(["trial", "state", summary["metric"], "parameters", "notes", "run"], header=True)]
    for t in sorted(summary["trials"], key=lambda t: (t["value"] is None, -(t["value"] or 0))):
        notes = ([f"pruned at step {t['pruned_at']}"] if t["pruned_at"] is not None else []) + (
            ['<span class="over">over budget</span>'] if t["over_budget"] else []) + (
            [html.escape(t["failed"])] if t["failed"] else [])
        run = Path(t["run_dir"]).name if t["run_dir"] else ""
        rows.append(_row([t["number"], t["state"], "-" if t["value"] is None else _pct(t["value"]),
                          html.escape(", ".join(f"{k}={v}" for k, v in t["params"].items())), "; ".join(notes),
                          f'<a href="#{html.escape(run)}">{html.escape(run)}</a>' if run else ""]))
    runs = [Path(t["run_dir"]) for t in sorted(summary["trials"], key=lambda t: -(t["value"] or 0))
            if t["state"] == "COMPLETE" and t["run_dir"] and (Path(t["run_dir"]) / "results.json").exists()]
    body = ["<table>" + "".join(rows) + "</table>",
            "".join(_img(folder / p, p.removesuffix(".png")) for p in summary["plots"] if (folder / p).exists())]
    if runs:
        body += [comparison_table(runs)] + [run_section(r) for r in runs]
    return _write_page(f"budgetvision sweep: study {summary['study']} ({summary['preset']})", body, out)


def _write_page(title: str, body: list[str], out: Path) -> Path:
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>")
    atomic_write_bytes(Path(out), page.encode())
    return Path(out)
