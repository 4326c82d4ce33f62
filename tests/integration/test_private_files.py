"""Files of people's data are owner-only (0600) in owner-only directories (0700), created so: a real
SQLite log with its -wal/-shm, the hash key, spill and rejected files, an erasure's rewrite, the keys file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from samo_serve.http.api_keys import KeyStore
from samo_serve.settings import Settings
from samo_serve.storage.request_log import RequestLog

from .helpers import make_row


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.fixture
def loose_umask() -> object:
    old = os.umask(0o022)  # the usual default: what a plain open() would leave world-readable
    yield
    os.umask(old)


@pytest.mark.usefixtures("loose_umask")
async def test_everything_under_the_data_dir_is_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    log = RequestLog.from_settings(Settings(data_dir=data))
    await log.start()
    log.record([make_row(tenant="t", user=f"u{i % 2}") for i in range(20)])
    await log.stop()  # flushed: the SQLite file, its -wal and -shm, the hash key
    log.writer.spill.append([make_row(tenant="t", user="u1"), make_row(tenant="t", user="u0")])
    log.writer.spill.append([make_row()], rejected=True)
    log.writer.spill.rotate()
    log = RequestLog.from_settings(Settings(data_dir=data))
    await log.erase_user("t", "u1")  # rewrites the spill file without u1's row
    await log.store.insert([make_row()])  # open and written: its -wal and -shm exist (the last close removes them)
    KeyStore(data / "keys" / "api-keys.json").create("app")

    modes = _modes(data)
    await log.store.close()
    names = set(modes)
    assert {"requests.sqlite3", "requests.sqlite3-wal", "requests.sqlite3-shm", "request-log.key"} <= names
    assert any(n.startswith("spill/") and n.endswith(".jsonl") for n in names), names
    assert any(n.startswith("spill/rejected/") for n in names), names
    assert "keys/api-keys.json" in names
    for name, mode in modes.items():
        expected = 0o700 if (data / name).is_dir() else 0o600
        assert mode == expected, f"{name}: {mode:o}"


@pytest.mark.usefixtures("loose_umask")
async def test_an_older_world_readable_log_is_narrowed_and_a_shared_dir_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # an existing directory (the operator's, maybe shared like /tmp): not ours to change
    db = tmp_path / "requests.sqlite3"
    log = RequestLog.from_settings(Settings(data_dir=tmp_path))
    await log.store.migrate()
    await log.store.close()
    db.chmod(0o644)  # as an older version left it
    log = RequestLog.from_settings(Settings(data_dir=tmp_path))
    await log.store.migrate()
    await log.store.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
