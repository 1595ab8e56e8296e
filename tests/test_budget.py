import pytest

from budgetvision.budget import budget_excess, enforce_budget
from budgetvision.config import BudgetConfig
from budgetvision.errors import BudgetError

B = BudgetConfig(max_params=100_000, max_steps=10_000)


def test_within_budget():
    assert budget_excess(99_999, 10_000, B) == []
    assert enforce_budget(99_999, 10_000, B, allow_over=False) is False


def test_excess_is_named():
    with pytest.raises(BudgetError) as e:
        enforce_budget(100_000, 10_001, B, allow_over=False)
    msg = str(e.value)
    assert "100,000 parameters is 1 over" in msg and "10,001 steps is 1 over" in msg and "\n" not in msg


def test_override_marks_over_budget():
    assert enforce_budget(150_000, 10, B, allow_over=True) is True
