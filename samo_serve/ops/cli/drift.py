"""``samo-serve drift report``: each tenant's drift from the model's reference, from a running service."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from samo_serve.ops.cli.common import DEFAULT_URL, add_api_key, get, request, require_ok

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]

_KEY = "a key with the analytics scope (admin: any tenant)"


def register(sub: Subparsers) -> None:
    drift = sub.add_parser("drift", help="the drift watch: emotion mix and confidence against the model's reference")
    drift_sub = drift.add_subparsers(dest="drift_command", required=True)
    report = drift_sub.add_parser(
        "report", help="per tenant and model version: the distances and the labels that moved most"
    )
    report.add_argument("--url", default=DEFAULT_URL)
    add_api_key(report)
    report.add_argument("--tenant", default=None, help="admin keys: one tenant (default: every tenant)")
    report.add_argument("--hours", type=int, default=None, help="the window (default: the server's drift.window_hours)")
    report.add_argument("--json", action="store_true", help="print GET /analytics/drift as it came")
    report.set_defaults(func=_report)
    pin = drift_sub.add_parser("pin", help="make a window of a tenant's texts its reference (a new normal)")
    pin.add_argument("--url", default=DEFAULT_URL)
    add_api_key(pin)
    pin.add_argument("--start", default=None, help="ISO-8601 (default: end - 24 h)")
    pin.add_argument("--end", default=None, help="ISO-8601 (default: now)")
    pin.add_argument("--tenant", default=None, help="admin keys: the tenant (a tenant's key pins its own)")
    pin.add_argument("--unpin", action="store_true", help="drop the tenant's pinned references: the card's again")
    pin.set_defaults(func=_pin)


def _pin(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("tenant", args.tenant), ("start", args.start), ("end", args.end)) if v is not None}
    path = "/analytics/drift/pin"
    response = request("DELETE" if args.unpin else "POST", args.url, path, args.api_key, 60, params)
    require_ok(response, args.url, path, _KEY)
    print(json.dumps(response.json(), indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("tenant", args.tenant), ("hours", args.hours)) if v is not None}
    response = get(args.url, "/analytics/drift", args.api_key, params=params)
    require_ok(response, args.url, "/analytics/drift", _KEY)
    report: dict[str, Any] = response.json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print(report)
    return 0


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    from samo_serve.ops.report import stdout_console

    limits = report["thresholds"]
    table = Table(title=f"drift {report['start'][:16]} .. {report['end'][:16]} UTC "
                        f"(limits: mix JS {limits['mix_js']}, confidence PSI {limits['confidence_psi']})")  # fmt: skip
    for column in ("tenant", "model", "texts", "mix JS", "PSI", "", "moved most: share now / reference"):
        table.add_column(column, overflow="fold")
    for tenant, versions in report["tenants"].items():
        for version, e in versions.items():
            short = version.rsplit("-", 1)[-1]  # the version's hash: the name is the card's
            if not e["judged"]:
                table.add_row(tenant or '""', short, str(e["texts"]), "-", "-", "not judged", "")
                continue
            moved = "\n".join(f"{m['label']} {m['share']:.2f} / {m['reference']:.2f}" for m in e["moved"][:3])
            flag = "[red]drifted[/red]" if e.get("drifted") else "ok"
            row = (f"{e['mix_js']:.3f}", f"{e['confidence_psi']:.3f}", flag, moved)
            table.add_row(tenant or '""', short, str(e["texts"]), *row)
    stdout_console().print(table)
