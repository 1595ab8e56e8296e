"""Name -> builder registry, so configs and tests refer to networks by name only."""
from collections.abc import Callable

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


def count_params(module: nn.Module) -> int:
    """Trainable parameters; `parameters()` yields a shared (tied) tensor only once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
