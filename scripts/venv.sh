#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and make sure it holds the project.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$top/.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[budgetvision] creating virtual environment in $venv" >&2
  "$py" -m venv "$venv"
fi
stamp="$venv/.budgetvision-installed"
want="$(sha256sum "$top/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[budgetvision] installing the project and its dependencies (first run only)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$top[test]" >&2
  echo "$want" > "$stamp"
fi
