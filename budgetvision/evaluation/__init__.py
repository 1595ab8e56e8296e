"""Evaluation: pure functions of tensors and models."""
from .classification import evaluate_classifier

__all__ = ["evaluate_classifier"]
