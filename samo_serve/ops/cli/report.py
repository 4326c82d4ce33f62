"""``samo-serve report``: the /stats summary of a running service as terminal tables."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from samo_serve.ops.cli.common import DEFAULT_URL, WRONG_URL, add_api_key, get, require_ok
from samo_serve.ops.cli.errors import CliError

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="the /stats summary of a running service as terminal tables")
    report.add_argument("--url", default=DEFAULT_URL)
    add_api_key(report)
    report.add_argument("--json", action="store_true", help="print /stats as it came")
    report.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from samo_serve.ops.report import render_report, stdout_console

    url = args.url.rstrip("/")
    response = get(url, "/stats", args.api_key)
    require_ok(
        response, url, "/stats", "a valid API key with the admin scope", " (samo-serve keys create --scope admin)"
    )
    try:
        stats = response.json()
    except ValueError:
        stats = None
    if not isinstance(stats, dict) or not isinstance(stats.get("windows"), dict):
        raise CliError(f"{url}/stats did not answer samo-serve's /stats document", WRONG_URL, code=2)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    render_report(stats, stdout_console())
    return 0
