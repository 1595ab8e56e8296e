"""budgetvision: the best image models under hard parameter and step budgets."""

__version__ = "0.1.0"
