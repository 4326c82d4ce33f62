"""Integration fixtures: private Redis and PostgreSQL servers (real ones, on free ports), and services.

Private servers, not the machine's shared ones, because the fault tests stop and kill them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from samo_serve.core.model_card import ModelCard, load_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.settings import RunnerSettings, Settings, default_model_dir
from samo_serve.storage.request_log.rollups import USER_ROLLUPS
from samo_serve.storage.request_log.store import LogStore, store_for_url
from testkit.local_services import PostgresServer, RedisServer, missing_binaries


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SAMO_"):
            monkeypatch.delenv(name, raising=False)


def _need_binaries() -> None:
    if missing := missing_binaries():
        pytest.fail(f"{', '.join(missing)} not installed: scripts/test.sh installs redis-server and postgresql")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    _need_binaries()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    _need_binaries()
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which the test may stop and start."""
    _need_binaries()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which the test may stop and start."""
    _need_binaries()
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each request-log test runs on PostgreSQL and on the embedded SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'requests.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[LogStore]:
    s = store_for_url(database_url, "", statement_timeout_s=10)
    await s.migrate()
    await _truncate(s)
    yield s
    await s.close()


_TABLES = ("emotion_requests", "emotion_rollup_tenant", *USER_ROLLUPS.values())


async def _truncate(store: LogStore) -> None:
    if store.dialect == "postgresql":
        pool = await store._get_pool()  # type: ignore[attr-defined]
        await pool.execute(f"TRUNCATE {', '.join(_TABLES)}")
    else:
        for table in _TABLES:
            await store._run(lambda c, t=table: c.execute(f"DELETE FROM {t}"))  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def card() -> ModelCard:
    return load_card(default_model_dir())


@pytest.fixture(scope="session")
def pipeline(card: ModelCard) -> LocalPipeline:
    """The shipped model, in-process (one ORT session for the whole run)."""
    model_dir = default_model_dir()
    runner = OrtModelRunner.for_card(card, model_dir, RunnerSettings(device="cpu", intra_op_threads=1))
    return LocalPipeline(TextTokenizer.for_card(card, model_dir), runner)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a data dir of this test's own; keyword args override."""

    def make(**overrides: Any) -> Settings:
        return Settings(**{"data_dir": tmp_path / "data", **overrides})

    return make
