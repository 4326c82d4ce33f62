"""What several commands share: the shipped Serve configs, settings, the service's URL and API key."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samo_serve.ops.cli.errors import CliError, user_file
from samo_serve.ops.serve_config import load_serve_config

if TYPE_CHECKING:
    import httpx

    from samo_serve.settings import Settings

    #: what each command group's ``register`` adds its parser to
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["DEFAULT_URL", "add_api_key", "config_path", "get", "load_settings", "read_serve_config"]

DEFAULT_URL = "http://127.0.0.1:8000"
CONFIG_REMEDY = "pass --config with a Serve config (samo-serve ships configs/serve.yaml and configs/serve-gpu.yaml)"


def config_path(given: str | None, default: Path) -> Path:
    """``--config`` as given, else ``default``: a shipped config (package data, found from any cwd)."""
    return Path(given) if given else default


def read_serve_config(path: Path) -> dict[str, Any]:
    """The Serve config at ``path``; a :class:`CliError` when it is missing, broken or not a Serve config."""
    with user_file(path, "Serve config", CONFIG_REMEDY):
        config = load_serve_config(path)
    apps = config.get("applications") if isinstance(config, dict) else None
    if not isinstance(apps, list) or not apps:
        raise CliError(f"{path} is not a Serve config (it has no applications: list)", CONFIG_REMEDY)
    return config


def load_settings(**args: Any) -> Settings:
    """:class:`Settings` from ``args`` and the ``SAMO_*`` environment; a :class:`CliError` saying which is invalid."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from samo_serve.settings import Settings

    where = "docs/CONFIGURATION.md lists them"
    try:
        return Settings(**args)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        if not field:  # a rule across fields
            raise CliError(
                f"invalid settings ({error['msg']})", f"fix the SAMO_* variables or args: ({where})"
            ) from exc
        env = "SAMO_" + "__".join(str(part).upper() for part in error["loc"])
        problem = f"invalid setting {field} = {repr(error.get('input'))[:60]} ({error['msg']})"
        raise CliError(problem, f"fix {env} or {field} in the config's args: ({where})") from exc
    except SettingsError as exc:  # an env value that does not parse (JSON for lists and sections)
        raise CliError(f"invalid SAMO_* environment ({exc})", f"fix that variable ({where})") from exc


WRONG_URL = "pass --url with the address of a samo-serve (samo-serve run starts one)"


def add_api_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", default=os.environ.get("SAMO_API_KEY"), help="default: $SAMO_API_KEY")


def request(
    method: str,
    url: str,
    path: str,
    api_key: str | None = None,
    timeout_s: float = 30,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """``method`` ``url`` + ``path`` of a running samo-serve; a :class:`CliError` (exit 2) when nothing answers."""
    import httpx

    send = getattr(httpx, method.lower())  # httpx.get, httpx.post, httpx.delete
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        response: httpx.Response = send(url.rstrip("/") + path, headers=headers, timeout=timeout_s, params=params)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CliError(
            f"cannot reach {url} ({str(exc) or type(exc).__name__})",
            "start the service (samo-serve run) or pass --url with its address",
            code=2,
        ) from exc
    return response


def get(
    url: str, path: str, api_key: str | None = None, timeout_s: float = 30, params: dict[str, Any] | None = None
) -> httpx.Response:
    """GET ``url`` + ``path`` of a running samo-serve (:func:`request`)."""
    return request("GET", url, path, api_key, timeout_s, params)


def error_message(response: httpx.Response) -> str:
    """samo-serve's own error message (``{"error": {"message": …}}``) as `` (…)``, not another server's HTML page."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f" ({message})"


def require_ok(response: httpx.Response, url: str, path: str, key: str, key_remedy: str = "") -> None:
    """A :class:`CliError` (exit 2) unless ``response`` is a 200: a 401/403 names the ``key`` it needs."""
    where = f"{url.rstrip('/')}{path} answered {response.status_code}"
    if response.status_code in (401, 403):
        raise CliError(f"{where}: it needs {key}", f"pass --api-key KEY or set SAMO_API_KEY{key_remedy}", code=2)
    if response.status_code != 200:
        raise CliError(f"{where}{error_message(response)}", WRONG_URL, code=2)
