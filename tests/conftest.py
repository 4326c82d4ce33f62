"""Shared test setup: auto-mark by folder, clean SAMO_* environment, paths to the shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "goemotions"


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
