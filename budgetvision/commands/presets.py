"""`budgetvision presets`: every preset with its parameters against its budget."""
from __future__ import annotations

import json


def add(sub) -> None:
    sp = sub.add_parser("presets", help="every preset with its parameters against its budget")
    sp.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    sp.add_argument("--markdown", action="store_true", help="a Markdown table with the papers' counts")
    sp.set_defaults(func=run)


def run(args) -> int:
    rows = _rows()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        _print_markdown(rows)
    else:
        _print_table(rows)
    return 0


def _rows() -> list[dict]:
    from ..setup import config_params
    from ..presets import PRESETS

    rows = []
    for p in PRESETS.values():
        c = p.config
        rows.append({"name": p.name, "task": c.task, "dataset": c.data.name, "model": c.model.name,
                     "params": config_params(c)["total"], "paper_params": p.paper_params,
                     "param_budget": c.budget.max_params, "step_budget": c.budget.max_steps,
                     "steps": c.train.steps, "batch_size": c.train.batch_size,
                     "origin": p.origin, "source": p.source, "paper_result": p.paper_result})
    return rows


def _print_markdown(rows: list[dict]) -> None:
    print("| preset | origin | task | data set | ours: params | paper: params | difference | paper's result | source |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        paper = r["paper_params"]
        diff = f"{r['params'] - paper:+,} ({100 * (r['params'] - paper) / paper:+.3f} %)" if paper else "-"
        print(f"| {r['name']} | {r['origin']} | {r['task']} | {r['dataset']} | {r['params']:,} | "
              f"{f'{paper:,}' if paper else '-'} | {diff} | {r['paper_result']} | {r['source']} |")


def _print_table(rows: list[dict]) -> None:
    head = f"{'preset':26} {'origin':12} {'task':9} {'dataset':9} {'params':>8} {'paper':>8} {'budget':>16}  source"
    print(head)
    print("-" * len(head))
    for r in rows:
        paper = f"{r['paper_params']:,}" if r["paper_params"] else "-"
        budget = f"<{r['param_budget'] // 1000}k, {r['step_budget'] // 1000}k st"
        print(f"{r['name']:26} {r['origin']:12} {r['task']:9} {r['dataset']:9} {r['params']:>8,} {paper:>8} "
              f"{budget:>16}  {r['source']}")
