"""Fault drills against a running samo-serve: load with a fault in the middle, counted.

Used by ``bench/fault_suite.py`` (the operator's one command, docs/OPERATIONS.md), the cache bench and
the e2e tests, so that all of them count the same way. Loopback only; every drill is bounded in
requests and time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from samo_serve.loadtest.engine import LoadSpec, OnDone, TextPicker, run_level
from testkit.server_process import descendants

__all__ = [
    "BAD_INPUTS",
    "BadInput",
    "DrillResult",
    "ReplicaKill",
    "at",
    "bad_input_battery",
    "count_log_rows",
    "drive",
    "replica_pids",
    "slow_client_flood",
    "unauthenticated_served",
    "wait_for_log_rows",
]

Progress = OnDone


@dataclass
class DrillResult:
    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    rows_sent: int | None = None
    rows_stored: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def succeeded(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def failed(self) -> int:
        return self.sent - self.succeeded

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sent": self.sent, "succeeded": self.succeeded, "failed": self.failed}
        if self.rows_sent is not None:
            out.update(rows_sent=self.rows_sent, rows_stored=self.rows_stored)
        if self.failed:
            out["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        return {**out, **self.notes}


async def drive(
    url: str,
    texts: list[str],
    n: int,
    concurrency: int,
    on_progress: Progress | None = None,
    headers: dict[str, str] | None = None,
    until: float | None = None,
    unique: bool = False,
    rate: float | None = None,
) -> Counter[int]:
    """``n`` POST /predict at a fixed concurrency, one text each; status -> count (0: no response).

    The load tester's closed loop (samo_serve.loadtest.engine), so drills and load tests count alike.
    Texts are taken in order; past the end of ``texts`` they are made new again (never a cache hit).
    ``on_progress(done)`` runs after each response: where a drill injects its fault. ``until`` (a
    ``time.monotonic()`` deadline) ends the run early: no request starts after it. ``unique`` numbers
    each text so that none is a cache hit, however long the run: load that reaches the model. ``rate``
    (requests/s): an open loop instead (Poisson arrivals, at most ``concurrency`` in flight), so that a
    server that refuses connections is not hammered faster while it is down.
    """
    duration_s = None if until is None else max(0.0, until - time.monotonic())
    spec = LoadSpec(url, concurrency=concurrency, requests=n, duration_s=duration_s, timeout_s=60,
                    headers=headers or {}, rate=rate)  # fmt: skip
    result = await run_level(spec, TextPicker(texts, 0.0, unique=unique), on_done=on_progress)
    statuses: Counter[int] = Counter()
    for status, count in result.statuses.items():
        statuses[int(status) if status.isdigit() else 0] += count  # an error class name: no response
    return statuses


def at(fractions: dict[float, Callable[[], object]], n: int) -> Progress:
    """A progress hook that runs each action (in a thread) once ``fraction * n`` responses are in."""
    # round, not int: 40/300*300 is 39.99…
    pending = sorted(((round(f * n), action) for f, action in fractions.items()), key=lambda p: p[0])

    async def hook(done: int) -> None:
        while pending and done >= pending[0][0]:
            _, action = pending.pop(0)
            await asyncio.to_thread(action)

    return hook


def replica_pids(deployment: str, app: str = "samo", under: int | None = None) -> list[int]:
    """PIDs of a deployment's live replica processes (Ray names them ``ray::ServeReplica:APP:NAME``).

    ``under``: only those below that process (one server's, or one Ray node's, when several run here).
    """
    out = subprocess.run(
        ["pgrep", "-f", f"ray::ServeReplica:{app}:{deployment}"], capture_output=True, text=True
    ).stdout
    pids = {int(p) for p in out.split()}
    return sorted(pids & descendants(under) if under is not None else pids)


class ReplicaKill:
    """SIGKILL one replica of a deployment (as a drill action) and time until Serve has replaced it.

    ``serving_url``: also time until that server answers ``GET /healthz`` with 200 again after the kill
    (``serving_after_s``): for the Ingress, whose replica is the process serving the port.
    """

    def __init__(self, deployment: str, timeout_s: float = 180, serving_url: str | None = None) -> None:
        self.deployment = deployment
        self.timeout_s = timeout_s
        self.serving_url = serving_url
        self.victim: int | None = None
        self.replaced_after_s: float | None = None
        self.serving_after_s: float | None = None
        self._watcher: threading.Thread | None = None

    def __call__(self) -> None:
        before = replica_pids(self.deployment)
        if not before:
            raise RuntimeError(f"no {self.deployment} replica process found")
        self.victim = before[0]
        os.kill(self.victim, signal.SIGKILL)
        killed_at = time.monotonic()

        def watch() -> None:
            serving = self.serving_url is None
            while time.monotonic() - killed_at < self.timeout_s:
                if self.replaced_after_s is None and len(set(replica_pids(self.deployment)) - {self.victim}) >= len(
                    before
                ):
                    self.replaced_after_s = round(time.monotonic() - killed_at, 1)
                # only once a new process runs: the dying one cannot count as serving
                replaced = self.replaced_after_s is not None
                if replaced and not serving and self.serving_url is not None and _answers(self.serving_url):
                    self.serving_after_s = round(time.monotonic() - killed_at, 1)
                    serving = True
                if serving and replaced:
                    return
                time.sleep(0.2)

        self._watcher = threading.Thread(target=watch, daemon=True)
        self._watcher.start()

    def wait(self) -> float | None:
        """Seconds from the kill until the replica count was back (None: not within the timeout)."""
        if self._watcher is not None:
            self._watcher.join()
        return self.replaced_after_s


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class BadInput:
    name: str
    body: bytes | None
    status: int
    code: str
    method: str = "POST"
    path: str = "/predict"
    content_type: str | None = "application/json"


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


#: Bad requests of every kind the contract names; each must get its 4xx and a JSON error code.
BAD_INPUTS: tuple[BadInput, ...] = (
    BadInput("empty body", b"", 400, "INVALID_JSON"),
    BadInput("truncated JSON", b'{"text": "hi"', 400, "INVALID_JSON"),
    BadInput("not JSON at all", b"hello", 400, "INVALID_JSON"),
    BadInput("invalid UTF-8", b'{"text": "\xff\xfe bad"}', 400, "INVALID_JSON"),
    BadInput("trailing garbage", b'{"text": "hi"} x', 400, "INVALID_JSON"),
    BadInput("JSON null", b"null", 422, "VALIDATION_ERROR"),
    BadInput("JSON array", b"[]", 422, "VALIDATION_ERROR"),
    BadInput("JSON string", b'"hi"', 422, "VALIDATION_ERROR"),
    BadInput("missing text", b"{}", 422, "VALIDATION_ERROR"),
    BadInput("text null", _j({"text": None}), 422, "VALIDATION_ERROR"),
    BadInput("text number", _j({"text": 123}), 422, "VALIDATION_ERROR"),
    BadInput("text list", _j({"text": ["a"]}), 422, "VALIDATION_ERROR"),
    BadInput("text object", _j({"text": {"a": 1}}), 422, "VALIDATION_ERROR"),
    BadInput("empty text", _j({"text": ""}), 422, "EMPTY_TEXT"),
    BadInput("whitespace text", _j({"text": " \n\t "}), 422, "EMPTY_TEXT"),
    BadInput("unknown field", _j({"text": "hi", "extra": 1}), 422, "VALIDATION_ERROR"),
    BadInput("threshold above 1", _j({"text": "hi", "threshold": 1.5}), 422, "VALIDATION_ERROR"),
    BadInput("threshold negative", _j({"text": "hi", "threshold": -0.1}), 422, "VALIDATION_ERROR"),
    BadInput("threshold string", _j({"text": "hi", "threshold": "0.5"}), 422, "VALIDATION_ERROR"),
    BadInput("top_k zero", _j({"text": "hi", "top_k": 0}), 422, "VALIDATION_ERROR"),
    BadInput("top_k float", _j({"text": "hi", "top_k": 2.5}), 422, "VALIDATION_ERROR"),
    BadInput("all_scores string", _j({"text": "hi", "all_scores": "yes"}), 422, "VALIDATION_ERROR"),
    BadInput("text over the hard cap", _j({"text": "a" * 100_001}), 413, "TEXT_TOO_LONG"),
    BadInput("body over the byte cap", _j({"text": "a" * 2_000_000}), 413, "BODY_TOO_LARGE"),
    BadInput("text/plain body", b'{"text": "hi"}', 415, "UNSUPPORTED_MEDIA_TYPE", content_type="text/plain"),
    BadInput("form body", b"text=hi", 415, "UNSUPPORTED_MEDIA_TYPE", content_type="application/x-www-form-urlencoded"),
    BadInput("batch empty list", _j({"texts": []}), 422, "VALIDATION_ERROR", path="/predict/batch"),
    BadInput("batch not a list", _j({"texts": "hi"}), 422, "VALIDATION_ERROR", path="/predict/batch"),
    BadInput("batch with a number", _j({"texts": ["ok", 1]}), 422, "VALIDATION_ERROR", path="/predict/batch"),
    BadInput("batch with a blank text", _j({"texts": ["ok", " "]}), 422, "EMPTY_TEXT", path="/predict/batch"),
    BadInput("batch too large", _j({"texts": ["hi"] * 1000}), 413, "BATCH_TOO_LARGE", path="/predict/batch"),
    BadInput("GET on /predict", None, 405, "METHOD_NOT_ALLOWED", method="GET", content_type=None),
    BadInput("unknown route", None, 404, "NOT_FOUND", method="GET", path="/nope", content_type=None),
    BadInput("analytics bad time", None, 422, "VALIDATION_ERROR", "GET", "/analytics/summary?start=yesterday", None),
)


async def bad_input_battery(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Send every :data:`BAD_INPUTS` case: how many got their status and a JSON error with their code."""
    failures = []
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        for case in BAD_INPUTS:
            extra = {"content-type": case.content_type} if case.content_type else {}
            r = await client.request(case.method, case.path, content=case.body, headers=extra)
            try:
                code = r.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if r.status_code != case.status or code != case.code or not r.headers.get("x-request-id"):
                failures.append({"case": case.name, "status": r.status_code, "code": code})
    return {"cases": len(BAD_INPUTS), "as_expected": len(BAD_INPUTS) - len(failures), "failures": failures}


async def slow_client_flood(
    url: str, headers: dict[str, str], connections: int = 300, wait_s: float = 60, probes: int = 10
) -> dict[str, Any]:
    """``connections`` uploads that send their headers and one byte of a 30-byte body, then stall (issue
    30 #5: 262 of these froze ``/predict`` and ``/healthz`` behind Serve's 256 ongoing requests).

    While they stall, ``probes`` of ``GET /healthz`` and of ``POST /predict`` (with ``headers``) run one
    after another. Returns what the stalled uploads were answered (status -> count; 0: closed with no
    answer, -1: no answer within ``wait_s``), the probes' statuses and the slowest probe's seconds.
    """
    host, _, port = httpx.URL(url).netloc.decode().partition(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 30\r\n{head}\r\n{{"
    ).encode()
    opened = asyncio.Event()
    count = 0

    async def stall() -> int:
        nonlocal count
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            await writer.drain()
            count += 1
            if count == connections:
                opened.set()
            line = await asyncio.wait_for(reader.readline(), wait_s)
            return int(line.split()[1]) if line else 0
        except TimeoutError:
            return -1
        finally:
            writer.close()

    stalled = [asyncio.create_task(stall()) for _ in range(connections)]
    await asyncio.wait_for(opened.wait(), 30)
    await asyncio.sleep(0.5)  # the server has read every one of them by now
    probe_statuses: Counter[str] = Counter()
    slowest = 0.0
    async with httpx.AsyncClient(base_url=url, timeout=wait_s) as client:
        for i in range(probes):
            for name, probe in (
                ("healthz", client.build_request("GET", "/healthz")),
                (
                    "predict",
                    client.build_request("POST", "/predict", json={"text": f"flood probe {i}"}, headers=headers),
                ),
            ):
                started = time.monotonic()
                try:
                    probe_statuses[f"{name} {(await client.send(probe)).status_code}"] += 1
                except httpx.HTTPError as exc:
                    probe_statuses[f"{name} {type(exc).__name__}"] += 1
                slowest = max(slowest, time.monotonic() - started)
    answers = Counter(await asyncio.gather(*stalled))
    return {
        "stalled": {str(k): v for k, v in sorted(answers.items())},
        "probes": dict(sorted(probe_statuses.items())),
        "slowest_probe_s": round(slowest, 3),
    }


async def unauthenticated_served(url: str, key: str) -> dict[str, int]:
    """With keys configured: protected routes answered without (or with a wrong) key, and with the key."""
    routes = [("POST", "/predict", {"text": "hi"}), ("POST", "/predict/batch", {"texts": ["a"]}),
              ("GET", "/emotions", None), ("GET", "/stats", None), ("GET", "/analytics/summary", None)]  # fmt: skip
    served_without, refused, served_with = 0, 0, 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for method, path, body in routes:
            for headers in ({}, {"X-API-Key": "samo_000000000000_not-a-key"}, {"Authorization": "ApiKey nope"}):
                r = await client.request(method, path, json=body, headers=headers)
                if r.status_code == 401:
                    refused += 1
                elif r.status_code < 400:
                    served_without += 1
            r = await client.request(method, path, json=body, headers={"X-API-Key": key})
            served_with += r.status_code == 200
    return {"served_without_key": served_without, "refused": refused, "served_with_key": served_with}


async def count_log_rows(database_url: str, start: datetime, end: datetime) -> int:
    """Request-log rows (PostgreSQL) created in [start, end): what a drill compares with what it sent."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM emotion_requests WHERE created_at >= $1 AND created_at < $2", start, end
        )
        return n
    finally:
        await conn.close()


async def wait_for_log_rows(
    database_url: str, start: datetime, end: datetime, expected: int, timeout_s: float = 120
) -> int:
    """Rows in [start, end) once ``expected`` are there (writes are batched and spills replayed) or at timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        n = await count_log_rows(database_url, start, end)
        if n >= expected or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.5)
