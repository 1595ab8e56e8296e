"""`budgetvision train`: train a preset into a new run folder, or resume a killed one."""
from __future__ import annotations

from ..errors import ConfigError
from ._common import DEFAULT_OUT, add_common, add_recipe, resolve, say


def add(sub) -> None:
    sp = sub.add_parser("train", help="train a preset; writes runs/<NNNNN>-<preset>/")
    add_recipe(sp)
    sp.add_argument("--seeds", type=int, default=None, help="independent seeds to run (default 1; mean ± std "
                    "reported)")
    sp.add_argument("--out", default=str(DEFAULT_OUT), help="folder for run folders")
    sp.add_argument("--dry-run", action="store_true", help="print the resolved config and budget check only")
    sp.add_argument("--over-budget", action="store_true", help="run even if over budget (recorded in results)")
    sp.add_argument("--resume", metavar="RUN", help="continue a killed run from its checkpoints (reading "
                    "its data where it trained, unless --data-root says otherwise)")
    add_common(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from .. import api

    if args.resume is not None:
        _refuse_with_resume(args)
        resumed = api.resume(args.resume, data_root=args.data_root, device=args.device,
                             progress=not args.no_progress)
        say(resumed.summary)
        say(f"run folder: {resumed.path}")
        return 0
    if args.preset is None:
        raise ConfigError("train needs --preset NAME (or --resume RUN); see 'budgetvision presets'")
    cfg = resolve(args)
    seeds = 1 if args.seeds is None else args.seeds
    if args.dry_run:
        return _dry_run(args, cfg, api.seeds_of(cfg, seeds))
    trained = api.train(cfg, seeds=seeds, out=args.out, data_root=args.data_root, device=args.device,
                        over_budget=args.over_budget, progress=not args.no_progress, verbose=True)
    say(trained.summary)
    return 0


def _dry_run(args, cfg, seeds: list[int]) -> int:
    import torch

    from ..budget import budget_line, budget_of, enforce_budget
    from ..data import data_root
    from ..setup import config_params

    counts = config_params(cfg, data_root(args.data_root))
    budget = budget_of(cfg)
    over = enforce_budget(counts["total"], cfg.train.steps, budget, allow_over=args.over_budget)
    print(cfg.to_json())
    print(f"{budget_line(counts, cfg.train.steps, budget)}; batch {cfg.train.batch_size}; "
          f"images seen per seed: {cfg.train.images_seen:,}; seeds: {seeds}; CPU threads: {torch.get_num_threads()}"
          + ("; OVER BUDGET (override given)" if over else "; within budget"))
    return 0


# A resumed run is its folder's config, seeds and budget status: these would be silently ignored.
_NOT_WITH_RESUME = (("preset", "--preset"), ("dataset", "--dataset"), ("steps", "--steps"), ("seed", "--seed"),
                    ("set", "--set"), ("seeds", "--seeds"), ("dry_run", "--dry-run"), ("over_budget", "--over-budget"))


def _refuse_with_resume(args) -> None:
    given = [flag for attr, flag in _NOT_WITH_RESUME if getattr(args, attr) not in (None, False, [])]
    if given:
        raise ConfigError(f"--resume continues a run as its folder records it; {', '.join(given)} cannot be "
                          f"given with it (start a new run instead)")
