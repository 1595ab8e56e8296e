"""Name -> builder registry, so configs and tests refer to networks by name only."""
import inspect
from collections.abc import Callable

import torch
from torch import nn

from budgetvision.errors import ConfigError

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Decorator: `@register("lenet5")` on a builder taking the `build_model` keywords."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            # Two builders under one name would make configs silently ambiguous.
            raise ValueError(f"model '{name}' is already registered")
        MODELS[name] = builder
        return builder

    return decorator


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, *, in_channels: int, num_classes: int, image_size: int, **options) -> nn.Module:
    """`options` are the builder's own keywords (generators: latent_dim, conditional)."""
    builder = MODELS.get(name)
    if builder is None:
        raise ConfigError(f"unknown model '{name}'; known: {', '.join(model_names())}")
    for key, value in (("in_channels", in_channels), ("num_classes", num_classes),
                       ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"model '{name}': {key} must be a positive integer, got {value!r}")
    return builder(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)


# ModelConfig fields that only some builders take, under a keyword of the same name: Rzayev's
# capacity F and discriminator depth D. The value 1 is every other network's only shape, so it
# passes silently; any other value they refuse, or a sweep over model.depth would train one
# network three times and report three results.
ARCHITECTURE_FIELDS = {"capacity": "Rzayev's capacity F", "depth": "Rzayev's discriminator depth D"}


def build_configured(model_cfg, role: str = "name", *, fields=tuple(ARCHITECTURE_FIELDS), **shape) -> nn.Module:
    """The network a ModelConfig names under `role` ("name", or a GAN's "discriminator"), built with
    `shape` (in_channels, num_classes, image_size and the builder's own keywords) and those of the
    config's architecture `fields` that it takes."""
    name = getattr(model_cfg, role)
    return build_model(name, **shape, **_config_options(model_cfg, f"model.{role}", name, fields))


def _config_options(model_cfg, key: str, name: str, fields) -> dict[str, int]:
    """The ModelConfig `fields` that network `name` (found under config key `key`) receives as
    builder keywords; a field it does not take must be 1, else one ConfigError line."""
    builder = MODELS.get(name)
    if builder is None:
        return {}   # build_model names the unknown model and the known ones
    takes = inspect.signature(builder).parameters
    options = {}
    for field in fields:
        value = getattr(model_cfg, field)
        if field in takes:
            options[field] = value
        elif value != 1:
            takers = [n for n in model_names() if field in inspect.signature(MODELS[n]).parameters]
            raise ConfigError(f"model.{field}={value} ({ARCHITECTURE_FIELDS[field]}) does not apply to "
                              f"{key}={name!r}, which has no {field}; networks with one: {', '.join(takers)}")
    return options


# The budget's rule, in one place: every number a network needs at inference that was learned from
# the training data counts, whether an optimiser trains it (parameters), it is frozen (a parameter
# with requires_grad=False) or it is fitted in closed form (a buffer registered by `register_fitted`:
# a whitening stem's filters). Not counted: the normalisation statistics every paper leaves out
# (below; the input mean and std live in the data loader, not in a network), and the accumulators
# that only training reads (`register_training_state`: PCA's streamed moments, from which its
# counted components are fitted).
NORMALISATION_STATISTICS = {
    # BatchNorm's running moments and its batch counter
    nn.modules.batchnorm._BatchNorm: ("running_mean", "running_var", "num_batches_tracked"),
    # spectral norm's power-iteration vectors: the running estimate of the weight's largest singular
    # value that divides it, a function of the (counted) weight as BatchNorm's variance is of activations
    nn.utils.parametrizations._SpectralNorm: ("_u", "_v"),
}
FITTED = "_budget_fitted"                  # a module's set of buffer names that count
TRAINING_STATE = "_budget_training_state"  # a module's set of buffer names only training reads


def _declare(module: nn.Module, kind: str, name: str, tensor: torch.Tensor, persistent: bool) -> None:
    module.register_buffer(name, tensor, persistent=persistent)
    if kind not in module.__dict__:
        object.__setattr__(module, kind, set())   # a plain attribute, not a submodule or buffer
    module.__dict__[kind].add(name)


def register_fitted(module: nn.Module, name: str, tensor: torch.Tensor, *, persistent: bool = True) -> None:
    """A buffer fitted from the training data (not by an optimiser) that inference needs: it counts."""
    _declare(module, FITTED, name, tensor, persistent)


def register_training_state(module: nn.Module, name: str, tensor: torch.Tensor, *, persistent: bool = True) -> None:
    """A buffer that only training reads (an accumulator the counted tensors are fitted from): it
    does not count, and inference must give the same output whatever it holds."""
    _declare(module, TRAINING_STATE, name, tensor, persistent)


def buffer_roles(module: nn.Module) -> dict[str, str]:
    """Each buffer of `module` (dotted name) -> "fitted" (counted), "normalisation",
    "training state" or "undeclared"; an undeclared buffer is a bug the tests catch."""
    roles = {}
    for prefix, sub in module.named_modules():
        norm = next((names for kind, names in NORMALISATION_STATISTICS.items() if isinstance(sub, kind)), ())
        for name, _ in sub.named_buffers(recurse=False):
            role = ("fitted" if name in sub.__dict__.get(FITTED, ()) else
                    "training state" if name in sub.__dict__.get(TRAINING_STATE, ()) else
                    "normalisation" if name in norm else "undeclared")
            roles[f"{prefix}.{name}" if prefix else name] = role
    return roles


def count_params(module: nn.Module) -> int:
    """The budgeted count: every parameter, trained or frozen, and every fitted buffer. A shared
    (tied) tensor counts once: `parameters()` and `named_buffers()` yield it once."""
    fitted = {n for n, role in buffer_roles(module).items() if role == "fitted"}
    return (sum(p.numel() for p in module.parameters())
            + sum(b.numel() for n, b in module.named_buffers() if n in fitted))
