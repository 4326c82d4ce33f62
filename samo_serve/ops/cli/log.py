"""``samo-serve log``: the request log's maintenance.

    samo-serve log rebuild-rollups     # recompute the hourly/daily rollups from the raw rows
    samo-serve log maintain            # create partitions ahead and apply request_log.retention_days now

``rebuild-rollups`` is for rows loaded from outside the service (a plain SQL ``INSERT INTO
emotion_requests``): every hour and day that has raw rows is recomputed from them, in one transaction;
hours whose raw rows retention already dropped keep their rollups. It uses the settings' database
(SAMO_DATABASE_URL), with no statement timeout unless ``--timeout SECONDS`` (not the request path's
``request_log.statement_timeout_s``: minutes at millions of rows), prints each step with its time as it
finishes (stderr), then refreshes the planner's statistics of the tables it rewrote (``ANALYZE``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from samo_serve.settings import Settings
from samo_serve.storage.request_log import RequestLog

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("log", help="request-log maintenance: rebuild rollups, apply retention")
    actions = parser.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild-rollups", help="recompute the analytics rollups from the raw rows")
    rebuild.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per statement (default: none)")
    rebuild.set_defaults(func=_rebuild)
    maintain = actions.add_parser("maintain", help="create partitions ahead and apply retention now")
    maintain.set_defaults(func=_maintain)


def _print_step(step: str, seconds: float) -> None:
    print(f"samo-serve: {step}: {seconds:.1f} s", file=sys.stderr, flush=True)


async def _with_log(work: str, timeout_s: float | None = None) -> dict[str, object]:
    settings = Settings()
    log = RequestLog.from_settings(settings)
    started = time.perf_counter()
    try:
        if work == "rebuild":
            await log.rebuild_rollups(timeout_s, _print_step)
            done: dict[str, object] = {"rebuilt": True}
        else:
            done = dict(await log.store.maintain(settings.request_log.retention_days, datetime.now(UTC)))
    finally:
        await log.store.close()
    return {**done, "dialect": log.store.dialect, "seconds": round(time.perf_counter() - started, 2)}


def _rebuild(args: argparse.Namespace) -> int:
    if args.timeout is not None and args.timeout <= 0:
        print("samo-serve: --timeout must be > 0 seconds (leave it out for none)", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(_with_log("rebuild", args.timeout))))
    return 0


def _maintain(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(_with_log("maintain"))))
    return 0
