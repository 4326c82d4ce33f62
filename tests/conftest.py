"""Shared test setup: auto-mark by folder, clean SAMO_* environment, paths to the shared data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "goemotions"


def pytest_configure(config: pytest.Config) -> None:
    # The default API keys file lives under XDG_CONFIG_HOME: point it at an empty folder, so no test (nor
    # a server a test starts, which inherits the environment) reads the developer's real keys.
    config_home = tempfile.mkdtemp(prefix="samo-tests-config-")
    os.environ["XDG_CONFIG_HOME"] = config_home
    config.add_cleanup(lambda: shutil.rmtree(config_home, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if folder in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture
def goemotions_dir() -> Path:
    if not (SHARED_DATA / "test.tsv").exists():
        pytest.skip(f"GoEmotions data not found at {SHARED_DATA} (../shared/data/goemotions)")
    return SHARED_DATA
