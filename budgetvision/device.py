"""Where a run computes: the device, and the versions and hardware written beside every result."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .version import __version__
from .errors import BudgetVisionError, ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BudgetVisionError(f"device '{name}' requested but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BudgetVisionError(f"unknown device '{name}' (use auto, cpu or cuda)") from None


def set_threads(threads: int | None) -> int:
    """torch's CPU threads for this process: `threads`, else torch's own choice (which follows
    $OMP_NUM_THREADS). Returns the count in use."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and core count (platform.processor() is empty on Linux)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine() or "cpu"
    return f"{model}, {os.cpu_count()} cores"


def versions(device: torch.device) -> dict:
    out = {"budgetvision": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import torchvision
        out["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    out["device_name"] = device_name(device)
    return out
