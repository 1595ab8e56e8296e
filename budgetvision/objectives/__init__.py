"""Objectives wrap a network and own its training loss: `loss, out = objective(x, y)`."""
from .classification import Classification

__all__ = ["Classification"]
