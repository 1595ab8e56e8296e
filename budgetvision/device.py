"""Where a run computes: the device, and the versions and hardware written beside every result."""
from __future__ import annotations

import atexit
import json
import os
import platform
import time
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


# ----------------------------------------------------------------------------- CPU threads
# OpenMP threads spin while they wait for each other, so two processes that each take every core slow
# each other down about tenfold (measured on a 2-core EPYC). A process whose threads nobody chose
# (no --threads, no $OMP_NUM_THREADS) therefore shares the cores with the other budgetvision
# processes of this user on this machine: each one writes its pid and thread count into a folder,
# and the unchosen ones split what the chosen ones leave, re-reading the folder as they train
# (`rebalance_threads`), so the first of two trainings gives back half its cores when the second
# starts and takes them again when it ends.
_TORCH_OWN = torch.get_num_threads()   # torch's own choice for this machine, before anyone set it
_REBALANCE_SECONDS = 5.0


class _ThreadShare:
    def __init__(self, folder: Path, cores: int, auto: bool):
        self.folder, self.cores, self.auto = folder, cores, auto
        self.file = folder / str(os.getpid())
        self.next_check = 0.0

    def announce(self, threads: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"threads": threads, "auto": self.auto}))
        tmp.replace(self.file)

    def leave(self) -> None:
        self.file.unlink(missing_ok=True)

    def others(self) -> list[dict]:
        """The live budgetvision processes beside this one; files of dead ones are removed."""
        out = []
        for f in self.folder.glob("[0-9]*"):
            if f == self.file or not f.name.isdigit():
                continue
            try:
                os.kill(int(f.name), 0)
                out.append(json.loads(f.read_text()))
            except ProcessLookupError:
                f.unlink(missing_ok=True)
            except (OSError, ValueError):   # alive but not ours to signal, or a file half-written
                continue
        return out

    def fair(self) -> int:
        return fair_share(self.cores, self.others())


def fair_share(cores: int, others: list[dict]) -> int:
    """Threads for a process whose count nobody chose, beside `others` (each {"threads", "auto"}):
    the cores the chosen counts leave, split evenly among the unchosen processes, this one included;
    never fewer than one."""
    chosen = sum(o["threads"] for o in others if not o["auto"])
    unchosen = 1 + sum(1 for o in others if o["auto"])
    return max(1, (cores - chosen) // unchosen)


_SHARE: _ThreadShare | None = None


def _share_folder() -> Path:
    from .data.datasets import cache_dir
    return cache_dir() / "threads" / platform.node()


def set_threads(threads: int | None) -> int:
    """torch's CPU threads for this process: `threads` where given (or $OMP_NUM_THREADS), else a fair
    share of torch's own count beside this machine's other budgetvision processes (above). Returns
    the count in use."""
    global _SHARE
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    auto = threads is None and "OMP_NUM_THREADS" not in os.environ
    if threads is not None:
        torch.set_num_threads(threads)
    if _SHARE is None:
        _SHARE = _ThreadShare(_share_folder(), _TORCH_OWN, auto)
        atexit.register(_SHARE.leave)
    _SHARE.auto = auto
    try:
        if auto:
            _SHARE.announce(torch.get_num_threads())   # seen by the others before this one counts them
            torch.set_num_threads(_SHARE.fair())
        _SHARE.announce(torch.get_num_threads())
    except OSError:   # a read-only cache: torch's own count, as before
        pass
    return torch.get_num_threads()


def rebalance_threads() -> tuple[int, int] | None:
    """Re-take this process's fair share when its count is unchosen, at most every few seconds;
    (before, after) where it changed, else None. The training loop calls it every step."""
    if _SHARE is None or not _SHARE.auto or time.monotonic() < _SHARE.next_check:
        return None
    _SHARE.next_check = time.monotonic() + _REBALANCE_SECONDS
    before = torch.get_num_threads()
    try:
        after = _SHARE.fair()
    except OSError:
        return None
    if after == before:
        return None
    torch.set_num_threads(after)
    _SHARE.announce(after)
    return before, after


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
