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


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512-BF16 or AMX tiles), where oneDNN's bf16
    convolutions beat fp32; elsewhere bf16 is emulated and slower. torch exposes the check only
    privately, so a torch without it reads as no."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def amp_dtype(device: torch.device, *, amp: bool, cpu_amp: bool) -> torch.dtype | None:
    """The autocast dtype of training's forward passes (train.amp, train.cpu_amp): bf16 on CUDA
    when amp is on; on the CPU only when cpu_amp is on too and the CPU has native bf16; else None
    (fp32)."""
    if not amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and cpu_amp and cpu_has_bf16()):
        return torch.bfloat16
    return None


def precision(device: torch.device, train_cfg) -> str:
    """What a run's manifest and results say of its arithmetic: "bf16 autocast" or "fp32"."""
    dtype = amp_dtype(device, amp=train_cfg.amp, cpu_amp=train_cfg.cpu_amp)
    return "fp32" if dtype is None else "bf16 autocast"


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
