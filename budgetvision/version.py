"""The package version, in a module of its own so that every layer can read it, and the checkout's
commit for result files."""
from __future__ import annotations

import subprocess
from pathlib import Path

__version__ = "0.1.0"


def source_commit(repo: Path | None = None) -> str | None:
    """The checkout's commit ("-dirty" with uncommitted changes to tracked files other than the
    measurements in benchmarks/results/, which a comparison rewrites as it runs), or None outside a
    git checkout. `repo`: the checkout (default: this package's)."""
    repo = Path(__file__).resolve().parent.parent if repo is None else Path(repo)
    if not (repo / ".git").exists():
        return None
    try:
        git = ["git", "-C", str(repo)]
        commit = subprocess.run(git + ["rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no", "--", ".",
                                      ":(exclude)benchmarks/results"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")
