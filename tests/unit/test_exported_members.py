"""Every name a samo_serve module lists in ``__all__`` exists (importing never needs Ray or a GPU)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import samo_serve

MODULES = sorted(info.name for info in pkgutil.iter_modules(samo_serve.__path__, "samo_serve.") if not info.ispkg)
CORE = [
    "samo_serve.api",
    "samo_serve.batching",
    "samo_serve.cache",
    "samo_serve.errors",
    "samo_serve.gpu",
    "samo_serve.model_runner",
    "samo_serve.pipeline",
    "samo_serve.postprocess",
    "samo_serve.schemas",
    "samo_serve.service",
    "samo_serve.settings",
    "samo_serve.tokenizer",
]


def test_core_modules_are_discovered() -> None:
    assert set(CORE) <= set(MODULES)


@pytest.mark.parametrize("name", CORE, ids=CORE)
def test_core_modules_declare_all(name: str) -> None:
    assert isinstance(getattr(importlib.import_module(name), "__all__", None), list)


@pytest.mark.parametrize("name", MODULES, ids=MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return  # no public-API declaration to check (e.g. evaluation, goemotions, model_card)
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    missing = [member for member in exported if not hasattr(module, member)]
    assert not missing, f"{name}.__all__ names missing members: {missing}"
    assert all(isinstance(member, str) for member in exported)
