"""Where a replica's own log records go: straight to the process's real stderr, at once.

Ray Serve, in the throughput-optimized mode ``samo-serve run`` uses, replaces a replica's ``sys.stderr``
with a stream that turns every line into an INFO record of its ``ray.serve`` logger, held in a
1,000-record memory buffer before it reaches a file. A record of ours (no handler of its own) would go to
the root logger's last-resort handler, whose stream is that ``sys.stderr``: an unhandled error's
traceback became ~30 INFO records, one per line, seen only after ~1,000 more. With this, records of
``samo_serve`` and ``deployments`` at WARNING and above are written whole, with their level and traceback,
to the file descriptor Ray itself captures (the worker's ``.err`` log, streamed to the driver's console).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["LOGGERS", "log_to_stderr"]

LOGGERS = ("samo_serve", "deployments")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours (so a second call replaces it rather than adding another)."""


def log_to_stderr(stream: TextIO | None = None, level: int = logging.WARNING) -> None:
    """Send our loggers' records to ``stream`` (default: the real stderr, whatever ``sys.stderr`` is now)."""
    handler = _Handler(stream or sys.__stderr__)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False  # not a second time, line by line, through Ray's stderr stream
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
