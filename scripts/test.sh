#!/usr/bin/env bash
# The README's test command: installs what the suite needs into .venv on a fresh machine
# (Python 3.11 + pip), then runs unit, integration and e2e tests. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Integration and e2e tests start private redis-server and PostgreSQL instances on free ports (they stop
# and kill them in fault tests, so never the machine's own): only the binaries are needed (Debian's).
need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
# the dashboard is checked in headless Chromium (tests/e2e/test_observability.py)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
# the drift alerts are checked with `promtool test rules` (tests/unit/test_alerts.py): Debian's prometheus ships it
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch==2.13.0 (the train extra) comes from the CPU wheel on this machine; the serving path never imports it.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[train,dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import samo_serve, deployments, ray, onnxruntime, torch" 

.venv/bin/ruff check samo_serve deployments testkit bench tests
.venv/bin/mypy

export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
