"""Every name a samo_serve module lists in ``__all__`` exists (importing never needs Ray or a GPU)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import samo_serve

# Every module of the product, subpackages included, and the packages whose __init__ is a module of its own
# (samo_serve.settings); training needs torch: imported where it is installed.
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(samo_serve.__path__, "samo_serve.")
    if (not info.ispkg or info.name == "samo_serve.settings")
    and not info.name.startswith("samo_serve.modeling.training.")
    and not info.name.endswith(".__main__")  # importing it runs the command
)
CORE = [
    "samo_serve.http.app",
    "samo_serve.core.batching",
    "samo_serve.storage.cache",
    "samo_serve.errors",
    "samo_serve.core.gpu",
    "samo_serve.core.model_runner",
    "samo_serve.core.pipeline",
    "samo_serve.core.postprocess",
    "samo_serve.http.schemas",
    "samo_serve.service",
    "samo_serve.settings",
    "samo_serve.core.tokenizer",
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
