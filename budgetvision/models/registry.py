"""Name -> builder registry, so configs and tests refer to networks by name only."""
import inspect
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


# ModelConfig fields that only some builders take, under a keyword of the same name: seed 004's
# capacity F and discriminator depth D. The value 1 is every other network's only shape, so it
# passes silently; any other value they refuse, or a sweep over model.depth would train one
# network three times and report three results.
ARCHITECTURE_FIELDS = {"capacity": "seed 004's capacity F", "depth": "seed 004's discriminator depth D"}


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


def count_params(module: nn.Module) -> int:
    """Trainable parameters; `parameters()` yields a shared (tied) tensor only once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
