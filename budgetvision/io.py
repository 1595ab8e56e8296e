"""Atomic writes (temp file + rename) and self-describing checkpoints loaded with weights_only=True."""
from __future__ import annotations

import io
import json
import os
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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
