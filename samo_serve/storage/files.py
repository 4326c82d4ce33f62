"""The files that hold people's data (the request log, its spill files, the hash key, API keys): owner-only,
created so, never widened afterwards by a umask.

Directories this creates are 0700 and files 0600. A directory that already exists is left as it is (the
operator's choice, and possibly shared, like ``/tmp``); a file of ours that exists with wider bits (an older
version's) is narrowed to 0600.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "create_private", "open_private", "private_dir"]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory: created 0700 if missing (parents it lacks get the system's default)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def _narrow(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, PermissionError):
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            path.chmod(PRIVATE_FILE)


def create_private(path: Path, *companions: Path) -> None:
    """``path`` created empty (0600) if missing, else narrowed, without holding a descriptor on it after:
    for a SQLite file, whose locks in this process closing any descriptor of it would drop. ``companions``
    (its ``-wal``/``-shm``, which SQLite creates with the database's own mode) are narrowed if present."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        _narrow(path)
    for companion in companions:
        _narrow(companion)


def open_private(path: Path, mode: str = "a") -> IO[str]:
    """``open(path, mode, encoding="utf-8")`` of a text file created 0600 (an existing one narrowed)."""
    private_dir(path.parent)
    flags = {"a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}[mode]
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
