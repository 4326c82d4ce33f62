"""Spill files: where log rows go when the database is down and the in-memory queue is full.

One JSON line per row, appended by the writer that owns the file, which holds an exclusive ``flock`` on
it while it is open. Replay claims a file by taking that lock without waiting, so a file that another
live replica is still appending to is never replayed under it, and leftovers of a crashed process are
picked up by whichever replica looks next. Rows have ids and inserts ignore known ids, so replaying a
file twice (a crash between insert and delete) stores nothing twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from samo_serve.storage.files import open_private
from samo_serve.storage.request_log.rows import LogRow, of_user, row_from_json, row_to_json

__all__ = ["Claim", "SpillBusy", "SpillFiles", "erase_user"]

log = logging.getLogger(__name__)


class SpillFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._seq = 0
        self._stem = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"

    def append(self, rows: list[LogRow], rejected: bool = False) -> None:
        """Write rows to this process's current spill file (or to ``rejected/``, never replayed)."""
        if rejected:
            with open_private(self.directory / "rejected" / f"{self._stem}.jsonl") as f:
                f.writelines(row_to_json(r) + "\n" for r in rows)
            return
        if self._file is None:
            self._seq += 1
            self._path = self.directory / f"{self._stem}-{self._seq}.jsonl"
            self._file = open_private(self._path)
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.writelines(row_to_json(r) + "\n" for r in rows)
        self._file.flush()  # in the OS's hands: survives this process dying

    def rotate(self) -> None:
        """Close the current file so that it can be replayed; the next spill starts a new one."""
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None

    def pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.jsonl") if p != self._path or self._file is None)

    @staticmethod
    def claim(path: Path) -> Claim | None:
        """Lock ``path`` for replay and read it; None if another process holds it or it is gone. Blocking."""
        try:
            handle = path.open("r", encoding="utf-8")
        except FileNotFoundError:  # another replica replayed it first
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        if not path.exists():  # replayed and deleted between our open and our lock
            handle.close()
            return None
        rows, bad = [], 0
        for line in handle:
            if not line.strip():
                continue
            try:
                rows.append(row_from_json(line))
            except (ValueError, TypeError, KeyError):
                bad += 1  # a line cut short by a crash
        return Claim(path, handle, rows, bad)


class Claim:
    """A spill file locked for replay. ``done()`` once its rows are stored, else ``release()``."""

    def __init__(self, path: Path, handle: IO[str], rows: list[LogRow], unreadable: int) -> None:
        self.path = path
        self.rows = rows
        self.unreadable = unreadable
        self._handle = handle

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
        self._handle.close()
        log.info("replayed spill file %s (%d rows)", self.path.name, len(self.rows))

    def release(self) -> None:
        self._handle.close()


def _erase_in(path: Path, matches: Callable[[LogRow], bool], wait_s: float) -> int:
    """Rewrite one spill file without the matching rows, under its lock; rows removed. Blocking."""
    deadline = time.monotonic() + wait_s
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return 0
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SpillBusy(f"spill file {path.name} is held by another process") from None
                time.sleep(0.05)
        if not path.exists():
            return 0
        kept, removed = [], 0
        for line in handle:
            try:
                if matches(row_from_json(line)):
                    removed += 1
                    continue
            except (ValueError, TypeError, KeyError):
                pass  # a torn line: left as it is, replay counts it
            kept.append(line)
        if removed:
            fresh = path.with_name(f".{path.name}.erase")
            with open_private(fresh, "w") as out:
                out.write("".join(kept))
            os.replace(fresh, path)  # readers see the old file or the new one, never a half
        return removed


class SpillBusy(Exception):
    """A spill file stayed locked by another live process: erasure could not reach its rows."""


def erase_user(
    spill: SpillFiles, tenant_id: str | None, user_id: str, entry_id: str | None = None, wait_s: float = 5.0
) -> int:
    """Remove a user's rows (one entry's, when given) from every spill file (rejected ones too); rows
    removed. Blocking.

    This process's own open file is closed first. A file another live replica is appending to is
    waited for (up to ``wait_s``), then :class:`SpillBusy`.
    """

    matches = of_user(tenant_id, user_id, entry_id)
    spill.rotate()
    paths = [*spill.pending(), *sorted((spill.directory / "rejected").glob("*.jsonl"))]
    return sum(_erase_in(path, matches, wait_s) for path in paths)
