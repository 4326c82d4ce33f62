"""Serving must not need torch: a fresh clone serves the shipped ONNX model without the train extra."""

from __future__ import annotations

import subprocess
import sys


def test_serving_modules_do_not_import_torch() -> None:
    code = (
        "import sys, samo_serve.http.app, samo_serve.ops.cli, samo_serve.ops.launcher, samo_serve.modeling.model_eval, "
        "samo_serve.core.model_runner, samo_serve.core.tokenizer\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
