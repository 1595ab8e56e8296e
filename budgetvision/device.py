"""Where a run computes: the device, and the versions and hardware written beside every result."""
from __future__ import annotations

import platform

import torch

from .version import __version__
from .errors import BudgetVisionError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BudgetVisionError(f"device '{name}' requested but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BudgetVisionError(f"unknown device '{name}' (use auto, cpu or cuda)") from None


def versions(device: torch.device) -> dict:
    out = {"budgetvision": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import torchvision
        out["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    out["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return out
