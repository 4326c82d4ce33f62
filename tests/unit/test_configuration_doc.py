"""docs/CONFIGURATION.md agrees with the Settings model (samo_serve/settings/).

The doc's table has a row per setting, or per few settings of one section: the key column names them
(``section.field``, more fields of that section after it as ``field``, each separated by `` / `` or ``, ``,
an env name in parentheses where it helps), the default column states their defaults in the same order
(``true``/``false``, ``none``, a number, or a literal in backticks). Checked here:

- every leaf of the model (sections walked down to their fields) has a row, once;
- every setting the doc names (table keys, ``SAMO_*`` names, ``section.field`` in backticks) exists;
- every stated default is the model's; only defaults computed where the server runs are prose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from samo_serve.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"
HEADER = "| key | default | meaning |"
#: defaults that depend on the machine or the install (a path under $HOME, the package's folder): prose
COMPUTED = {"model_dir", "data_dir", "api_keys_file"}
PROSE = object()


def _leaves(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every field of ``model`` and of its sections, dotted, with its default as JSON."""
    dumped = model.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.update(_leaves(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = dumped[name]
    return out


def _sections(model: BaseModel, prefix: str = "") -> set[str]:
    found = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found |= {f"{prefix}{name}", *_sections(value, f"{prefix}{name}.")}
    return found


def env_name(key: str) -> str:
    return "SAMO_" + "__".join(key.split(".")).upper()


DEFAULT = Settings.model_construct()  # the model's defaults, whatever SAMO_* the shell running the tests has
DEFAULTS = _leaves(DEFAULT)
SECTIONS = _sections(DEFAULT)
TEXT = DOC.read_text(encoding="utf-8")


def _rows() -> list[tuple[list[str], list[str], str]]:
    """(keys, env names, defaults) of each row of the settings table; keys fully dotted."""
    lines = TEXT.splitlines()
    start = lines.index(HEADER) + 2  # past the header and its --- line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        key_cell, default_cell, _meaning = (cell.strip() for cell in line.strip().strip("|").split(" | ", 2))
        names = re.findall(r"`([^`]+)`", key_cell)
        env = [n for n in names if n.startswith("SAMO_")]
        keys = [n for n in names if not n.startswith("SAMO_")]
        parent = keys[0].rpartition(".")[0]
        keys = [keys[0], *(k if "." in k else f"{parent}.{k}" if parent else k for k in keys[1:])]
        separator = ", " if re.search(r"`\s*,\s*`", key_cell) else " / "
        defaults = default_cell.split(separator) if len(keys) > 1 else [default_cell]
        assert len(defaults) == len(keys), f"{line}: one default per key, separated by {separator!r}"
        rows.append((keys, env, [d.strip() for d in defaults]))
    return rows


ROWS = _rows()


def _parse(text: str) -> Any:
    """A default as the doc states it; PROSE for a description (a computed default)."""
    if text in ("true", "false"):
        return text == "true"
    if text == "none":
        return None
    if re.fullmatch(r"-?\d[\d,]*(\.\d+)?", text):
        return float(text.replace(",", ""))
    if literal := re.fullmatch(r"`([^`]*)`", text):
        try:
            return json.loads(literal[1])
        except ValueError:
            return literal[1]
    return PROSE


def test_the_table_is_found_and_the_model_walked() -> None:
    assert len(ROWS) > 20
    assert {"runner.device", "rate_limits.anonymous.per_second", "observability.recommendations.p95_target_ms"} <= set(
        DEFAULTS
    )


def test_every_setting_is_documented_once() -> None:
    keys = [key for row_keys, env, _ in ROWS for key in row_keys]
    documented = set(keys) | {key for _, env, _ in ROWS for key in DEFAULTS if env_name(key) in env}
    missing = sorted(set(DEFAULTS) - documented)
    assert not missing, f"docs/CONFIGURATION.md has no row for {missing} (a line each, from settings's #: comments)"
    twice = sorted({key for key in keys if keys.count(key) > 1})
    assert not twice, f"documented in more than one row: {twice}"


def test_every_documented_key_is_a_setting() -> None:
    unknown = sorted({key for keys, _, _ in ROWS for key in keys} - set(DEFAULTS))
    assert not unknown, f"docs/CONFIGURATION.md documents settings the model does not have: {unknown}"


def test_env_names_in_the_key_column_are_the_rows_own() -> None:
    for keys, env, _ in ROWS:
        assert set(env) <= {env_name(key) for key in keys}, (keys, env)


def test_every_env_name_and_dotted_setting_in_the_doc_exists() -> None:
    known_env = {env_name(key) for key in DEFAULTS | dict.fromkeys(SECTIONS)}
    env = set(re.findall(r"\bSAMO_[A-Z][A-Z0-9_]*", TEXT))
    assert env, "the doc names SAMO_* variables"
    assert not sorted(env - known_env), f"SAMO_* variables that are no setting: {sorted(env - known_env)}"
    top_sections = {s for s in SECTIONS if "." not in s}
    dotted = {name for name in re.findall(r"`([a-z_]+(?:\.[a-z0-9_]+)+)`", TEXT) if name.split(".")[0] in top_sections}
    unknown = sorted(dotted - set(DEFAULTS) - SECTIONS)
    assert not unknown, f"docs/CONFIGURATION.md names settings the model does not have: {unknown}"


@pytest.mark.parametrize(
    ("key", "stated"),
    [(key, stated) for keys, _, defaults in ROWS for key, stated in zip(keys, defaults, strict=True)],
    ids=[key for keys, _, _ in ROWS for key in keys],
)
def test_stated_defaults_are_the_models(key: str, stated: str) -> None:
    if key not in DEFAULTS:
        pytest.skip("not a setting (test_every_documented_key_is_a_setting fails)")
    doc, model = _parse(stated), DEFAULTS[key]
    if key in COMPUTED:
        field = Settings.model_fields[key]
        assert field.default_factory is not None, f"{key} has a fixed default: state it"
        return
    assert doc is not PROSE, f"{key}: state the default as true/false, none, a number or a `literal`: {stated!r}"
    if isinstance(doc, bool) or doc is None:
        assert model is doc, (key, stated, model)
    elif isinstance(doc, float):
        assert isinstance(model, int | float), (key, stated, model)
        assert not isinstance(model, bool), (key, stated, model)
        assert float(model) == doc, f"{key}: the doc says {stated}, settings {model}"
    else:
        assert model == doc, f"{key}: the doc says {stated}, settings {model!r}"
