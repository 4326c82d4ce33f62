"""``samo-serve log``: the request log's maintenance.

    samo-serve log rebuild-rollups     # recompute the hourly/daily rollups from the raw rows
    samo-serve log maintain            # create partitions ahead and apply request_log.retention_days now

``rebuild-rollups`` is for rows loaded from outside the service (a plain SQL ``INSERT INTO
emotion_requests``): every hour and day that has raw rows is recomputed from them; hours whose raw rows
retention already dropped keep their rollups. It uses the settings' database (SAMO_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    rebuild.set_defaults(func=_rebuild)
    maintain = actions.add_parser("maintain", help="create partitions ahead and apply retention now")
    maintain.set_defaults(func=_maintain)


async def _with_log(work: str) -> dict[str, object]:
    settings = Settings()
    log = RequestLog.from_settings(settings)
    started = time.perf_counter()
    try:
        if work == "rebuild":
            await log.rebuild_rollups()
            done: dict[str, object] = {"rebuilt": True}
        else:
            done = dict(await log.store.maintain(settings.request_log.retention_days, datetime.now(UTC)))
    finally:
        await log.store.close()
    return {**done, "dialect": log.store.dialect, "seconds": round(time.perf_counter() - started, 2)}


def _rebuild(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(_with_log("rebuild"))))
    return 0


def _maintain(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(_with_log("maintain"))))
    return 0
