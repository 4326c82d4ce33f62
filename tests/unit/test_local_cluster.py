"""Process-tree helpers of the local multi-node cluster (the cluster itself: tests/e2e/test_multi_node.py)."""

from __future__ import annotations

import subprocess
import time

from testkit.local_cluster import _kill_all
from testkit.server_process import descendants


def test_descendants_finds_grandchildren_and_kill_all_ends_them() -> None:
    # sh -> (sh -> sleep) and sh -> sleep: a child and two grandchildren
    proc = subprocess.Popen(["sh", "-c", "sh -c 'sleep 60' & sleep 60 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(found := descendants(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(found) >= 3, found
        assert proc.pid not in found
        _kill_all(found)
        proc.wait(10)
        assert not descendants(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_descendants_of_a_leaf_is_empty() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert descendants(proc.pid) == set()
    finally:
        proc.kill()
        proc.wait()
