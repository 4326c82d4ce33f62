"""This process's resident memory, for health checks and /stats (Linux /proc; getrusage elsewhere)."""

from __future__ import annotations

import os
import resource
import sys

__all__ = ["MemoryLimitExceeded", "check_memory", "rss_mb"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryLimitExceeded(RuntimeError):
    """Raised by a replica's check_health so that Serve replaces the replica."""


def rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return round(int(f.read().split()[1]) * _PAGE / 2**20, 1)
    except OSError:  # not Linux: the peak, not the current value
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)


def check_memory(max_rss_mb: int | None) -> None:
    if max_rss_mb is not None and (now := rss_mb()) > max_rss_mb:
        raise MemoryLimitExceeded(f"resident memory {now:.0f} MB is over limits.max_rss_mb={max_rss_mb}")
