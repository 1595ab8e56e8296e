"""Atomic writes (temp file + rename) and self-describing checkpoints loaded with weights_only=True."""
from __future__ import annotations

import io
import json
import os
import socket
import tempfile
from pathlib import Path

import torch

from .version import __version__
from .errors import BudgetVisionError

CHECKPOINT_FORMAT = "budgetvision-checkpoint-1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A kill at any moment leaves either the old file or the new one, never a truncated one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp's 0600 would hide shared run folders from a team
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class RunLock:
    """An exclusive lock on a run folder for as long as one process trains it (`with RunLock(dir):`).

    flock on `<run>/.lock`: the operating system releases it when the holder dies, SIGKILL included,
    so a killed run resumes at once, while a second live process refuses with one line naming the
    holder. Where flock does not exist (Windows) runs are not locked."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise BudgetVisionError(f"{self.path.parent} is being trained by {holder}; one process per run "
                                    f"(wait for it, or stop it and resume)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)   # closing releases the flock
            self.fd = None


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BudgetVisionError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BudgetVisionError(f"corrupt file {path}: not valid JSON") from None


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": __version__, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load and validate a checkpoint; a corrupt, truncated or foreign file gets one clear line."""
    path = Path(path)
    if not path.is_file():
        raise BudgetVisionError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign pickles
        raise BudgetVisionError(f"corrupt or foreign checkpoint {path}: {type(e).__name__}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise BudgetVisionError(f"{path} is not a budgetvision checkpoint (format {CHECKPOINT_FORMAT})")
    return state
