"""``samo-serve loadtest``: how much load a deployment holds, measured from outside over HTTP."""

from samo_serve.loadtest.engine import LevelResult, LoadSpec, run_level
from samo_serve.loadtest.summary import summarize_level

__all__ = ["LevelResult", "LoadSpec", "run_level", "summarize_level"]
