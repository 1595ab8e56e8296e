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


def enforce_budget(params: int, steps: int, budget: BudgetConfig, *, allow_over: bool) -> bool:
    """Raise BudgetError when over budget without an explicit override; return over_budget."""
    excess = budget_excess(params, steps, budget)
    if excess and not allow_over:
        raise BudgetError("over budget: " + "; ".join(excess) + " (pass --over-budget to run anyway; results will say so)")
    return bool(excess)
