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
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _naming(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp's 0600 would hide shared run folders from a team
        os.replace(tmp, path)              # replaces a link itself, never its target
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _naming(e, path) from None
        raise


def _naming(e: OSError, path: Path) -> OSError:
    """The error with the file it was writing, for the one line a full disk gets."""
    return e if e.filename else OSError(e.errno, e.strerror or str(e), str(path))


def open_run_file(path: Path, flags: int) -> int:
    """os.open of a file the tool writes inside a run, never through a symbolic link: a link planted
    there (`ln -sf ~/victim RUN/.lock`) would have the tool truncate or append to its target."""
    path = Path(path)
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_umask())
    except OSError:
        if path.is_symlink():   # ELOOP on Linux, EMLINK / EFTYPE elsewhere
            raise BudgetVisionError(f"refusing to write to {path}: it is a symbolic link") from None
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
        fd = open_run_file(self.path, os.O_RDWR | os.O_CREAT)
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
            try:
                os.ftruncate(self.fd, 0)   # no stale holder named; a run that refused input is left as it was
            finally:
                os.close(self.fd)          # closing releases the flock
            self.fd = None


def make_folder(path: Path, what: str = "output") -> Path:
    """Create a folder (and its parents); a refusal is one line that names it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BudgetVisionError(f"cannot create {what} folder {path}: {e.strerror}") from None
    return path


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path, keys: tuple[str, ...] | None = None) -> dict:
    """A JSON file; with `keys`, an object that has each of them (else one line naming the first missing)."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BudgetVisionError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BudgetVisionError(f"corrupt file {path}: not valid JSON") from None
    if keys is not None:
        if not isinstance(obj, dict):
            raise BudgetVisionError(f"corrupt file {path}: not a JSON object")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise BudgetVisionError(f"corrupt file {path}: no {missing[0]!r}")
    return obj


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


def _log_row(line: bytes) -> dict | None:
    """One metrics.jsonl row, or None where the line is not one (damaged, foreign, cut short)."""
    try:
        row = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(row, dict) and isinstance(row.get("kind"), str) and isinstance(row.get("step"), int)
    return row if ok else None


def read_log(path: Path) -> list[dict]:
    """A run's JSON-lines log (metrics.jsonl) as rows; a damaged line is skipped, never a crash after
    all the training (`repair_log` says what a resume dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    return [row for line in path.read_bytes().splitlines() if (row := _log_row(line)) is not None]


def repair_log(path: Path, offset: int) -> str | None:
    """Cut a log back to a checkpoint's position `offset`, keeping its whole valid rows: the rows of
    steps after the checkpoint go (they will be logged again). A log that is missing, shorter than
    `offset` or has damaged lines is rewritten from what is valid; the return value says what was
    dropped (None when the log was intact)."""
    path = Path(path)
    fd = open_run_file(path, os.O_RDWR | os.O_CREAT)
    with os.fdopen(fd, "r+b") as f:
        data = f.read()
        head = data[:offset]
        lines = head.splitlines(keepends=True)
        if len(data) >= offset and all(l.endswith(b"\n") and _log_row(l) is not None for l in lines):
            f.truncate(offset)
            return None
    kept = [l.rstrip(b"\n") + b"\n" for l in lines if _log_row(l) is not None]
    atomic_write_bytes(path, b"".join(kept))
    problems = [f"{len(lines) - len(kept)} damaged line(s) dropped"] if len(kept) < len(lines) else []
    if len(data) < offset:
        problems.insert(0, f"{'empty or missing' if not data else f'{offset - len(data):,} bytes short'} "
                           f"of the checkpoint's {offset:,}")
    return f"{path} was {', '.join(problems)}; kept its {len(kept)} valid row(s) and continued"
