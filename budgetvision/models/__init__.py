"""Networks by name. Importing this package registers every classifier."""
from budgetvision.models import classifiers
from budgetvision.models.registry import MODELS, build_model, count_params, model_names, register

__all__ = ["MODELS", "build_model", "classifiers", "count_params", "model_names", "register"]
