"""The budget rules: parameters strictly below the cap, optimisation steps at most the cap."""
from __future__ import annotations

from .config import BudgetConfig
from .errors import BudgetError


def budget_excess(params: int, steps: int, budget: BudgetConfig) -> list[str]:
    """What exceeds the budget, in words; empty when within it."""
    excess = []
    if params >= budget.max_params:
        excess.append(f"{params:,} parameters is {params - budget.max_params + 1:,} over the limit "
                      f"(must be < {budget.max_params:,})")
    if steps > budget.max_steps:
        excess.append(f"{steps:,} steps is {steps - budget.max_steps:,} over the limit "
                      f"(must be <= {budget.max_steps:,})")
    return excess


def budget_line(counts: dict[str, int], steps: int, budget: BudgetConfig) -> str:
    """'86,562 parameters (budget < 100,000), 3,000 steps (budget <= 10,000)', with each network's share
    after the total where a run trains several: the line train prints as it starts (and --dry-run)."""
    parts = "".join(f", {k} {v:,}" for k, v in counts.items() if k != "total" and len(counts) > 2)
    return (f"{counts['total']:,} parameters{parts} (budget < {budget.max_params:,}), "
            f"{steps:,} steps (budget <= {budget.max_steps:,})")


def enforce_budget(params: int, steps: int, budget: BudgetConfig, *, allow_over: bool) -> bool:
    """Raise BudgetError when over budget without an explicit override; return over_budget."""
    excess = budget_excess(params, steps, budget)
    if excess and not allow_over:
        raise BudgetError("over budget: " + "; ".join(excess) + " (pass --over-budget to run anyway; results will say so)")
    return bool(excess)


# The task's rules. A config's own budget section can only tighten them: a run folder's config.json
# is a file its user can edit, and an edit there must not let a resumed run exceed them.
RULES = {"classify": BudgetConfig(max_params=100_000, max_steps=10_000),
         "generate": BudgetConfig(max_params=1_000_000, max_steps=50_000)}


def budget_of(cfg) -> BudgetConfig:
    """The budget a run is held to: its task's rule, or its config's where that is tighter."""
    rule = RULES[cfg.task]
    return BudgetConfig(max_params=min(rule.max_params, cfg.budget.max_params),
                        max_steps=min(rule.max_steps, cfg.budget.max_steps))
