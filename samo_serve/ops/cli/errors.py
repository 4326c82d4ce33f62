"""Failures a user can fix, said in one line: ``samo-serve: <what is wrong>; <what to do>``.

A command raises :class:`CliError` where it knows what went wrong (a missing file, a broken YAML or
JSON file, an invalid ``SAMO_*`` setting, a service that does not answer); :func:`describe` turns
that, and an unreadable file met deeper down, into the line ``main`` prints. Anything else is a bug
and keeps its traceback, as does everything under ``samo-serve -v``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from pydantic import ValidationError

__all__ = ["CliError", "describe", "user_file"]

_REASONS: dict[type[OSError], str] = {
    FileNotFoundError: "does not exist",
    IsADirectoryError: "is a folder, not a file",
    NotADirectoryError: "is not a folder",
    PermissionError: "cannot be opened (permission denied)",
}


class CliError(Exception):
    """What is wrong, what to do about it, and the exit code."""

    def __init__(self, problem: str, remedy: str | None = None, code: int = 1) -> None:
        super().__init__(f"{problem}; {remedy}" if remedy else problem)
        self.code = code


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _detail(exc: Exception) -> str:
    """What is wrong with a file's content, in a few words."""
    if isinstance(exc, ValidationError):  # pydantic: the first field and its problem
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return f"{field}: {first['msg']}" if field else str(first["msg"])
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}" if exc.args else "a key is missing"
    return _first_line(str(exc)) or type(exc).__name__


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}"
    return _first_line(str(exc))


@contextmanager
def user_file(path: Path, what: str, remedy: str, invalid: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Read ``path``, a file or folder the user chose, in this block; its failures become a :class:`CliError`.

    ``what`` names it ("Serve config"), ``remedy`` says what to do. ``invalid``: further exceptions that
    here mean the content is wrong (a model card that does not validate), not a bug.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None:  # a message of our own, raised inside the block reading ``path``
            raise CliError(f"{what} {path}: {exc}", remedy) from exc
        name = Path(os.fsdecode(exc.filename))
        if name != path and path not in name.parents:  # another file: the boundary says which
            raise
        reason = _REASONS.get(type(exc), exc.strerror or "cannot be opened")
        problem = f"{what} {path} {reason}" if name == path else f"{what} {path}: {name} {reason}"
        raise CliError(problem, remedy) from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{what} {path} is not valid YAML ({_yaml_problem(exc)})", remedy) from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"{what} {path} is not UTF-8 text", remedy) from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})", remedy) from exc
    except invalid as exc:
        raise CliError(f"{what} {path} is not usable ({_detail(exc)})", remedy) from exc


def describe(exc: BaseException) -> str | None:
    """The one line for an expected failure, None for a bug (which keeps its traceback)."""
    if isinstance(exc, CliError):
        line = str(exc)
    elif isinstance(exc, OSError) and isinstance(exc, tuple(_REASONS)):  # a file met below the command's checks
        reason = _REASONS.get(type(exc), exc.strerror or "cannot be opened")
        what = f"{exc.filename} {reason}" if exc.filename else _first_line(str(exc))
        line = f"{what}; check the paths given on the command line (samo-serve -v … shows where it was opened)"
    else:
        return None
    return " ".join(line.split())  # one line, whatever the message held
