#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU config end to end (bench/gpu_check.py says what it checks).
# Needs the fp16 model, which is not in git:
#   samo-serve model export --checkpoint artifacts/ckpt      # writes models/goemotions-minilm/model.fp16.onnx
# Then: scripts/gpu_check.sh [--duration 20] [--levels 16,64] [--out runs/gpu-check]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f models/goemotions-minilm/model.fp16.onnx ]; then
  echo "gpu_check: models/goemotions-minilm/model.fp16.onnx is missing; run 'samo-serve model export' first" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found: no NVIDIA GPU here" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e . 2>&1 | grep -v "^WARNING: Location" || true
exec .venv/bin/python bench/gpu_check.py "$@"
