#!/usr/bin/env bash
# The README's run command: installs the serving dependencies into .venv (no torch) and serves the
# shipped model on http://127.0.0.1:8000 through a local Ray. Extra args go to `samo-serve run`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e . 2>&1 | grep -v "^WARNING: Location" || true
exec .venv/bin/samo-serve run "$@"
