"""Networks by name. Importing this package registers every network: classifiers, GANs, U-Nets, PCA."""
from budgetvision.models import classifiers
from budgetvision.models import gan  # noqa: F401  (registers the GAN generators and discriminators)
from budgetvision.models import pca  # noqa: F401  (registers per-class PCA)
from budgetvision.models import unet  # noqa: F401  (registers the diffusion U-Nets)
from budgetvision.models.registry import MODELS, build_model, count_params, model_names, register

__all__ = ["MODELS", "build_model", "classifiers", "count_params", "model_names", "register"]
