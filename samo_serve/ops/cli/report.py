"""``samo-serve report``: the /stats summary of a running service as terminal tables."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from samo_serve.ops.cli.common import DEFAULT_URL, add_api_key, get
from samo_serve.ops.cli.errors import CliError

if TYPE_CHECKING:
    import httpx

    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]

_WRONG_URL = "pass --url with the address of a samo-serve (samo-serve run starts one)"


def register(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="the /stats summary of a running service as terminal tables")
    report.add_argument("--url", default=DEFAULT_URL)
    add_api_key(report)
    report.add_argument("--json", action="store_true", help="print /stats as it came")
    report.set_defaults(func=_report)


def _message(response: httpx.Response) -> str:
    """samo-serve's own error message (``{"error": {"message": …}}``), not another server's HTML page."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f" ({message})"


def _report(args: argparse.Namespace) -> int:
    from samo_serve.ops.report import render_report, stdout_console

    url = args.url.rstrip("/")
    response = get(url, "/stats", args.api_key)
    if response.status_code in (401, 403):
        raise CliError(
            f"{url}/stats answered {response.status_code}: it needs a valid API key with the admin scope",
            "pass --api-key KEY or set SAMO_API_KEY (samo-serve keys create --scope admin)",
            code=2,
        )
    if response.status_code != 200:
        raise CliError(f"{url}/stats answered {response.status_code}{_message(response)}", _WRONG_URL, code=2)
    try:
        stats = response.json()
    except ValueError:
        stats = None
    if not isinstance(stats, dict) or not isinstance(stats.get("windows"), dict):
        raise CliError(f"{url}/stats did not answer samo-serve's /stats document", _WRONG_URL, code=2)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    render_report(stats, stdout_console())
    return 0
