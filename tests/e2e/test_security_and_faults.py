"""Through real Ray Serve over HTTP: API keys, Redis-backed rate limits, the bad-input battery, headers,
one of two model replicas and then the Ingress replica SIGKILLed under load."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from samo_serve.http.api_keys import KeyStore
from samo_serve.ops.launcher import DEFAULT_CONFIG
from testkit.drills import (
    BAD_INPUTS,
    ReplicaKill,
    at,
    bad_input_battery,
    drive,
    slow_client_flood,
    unauthenticated_served,
)
from testkit.local_services import RedisServer, missing_binaries

from .conftest import Server, run_server

HEADER_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    store = KeyStore(path)
    # admin: the drill reads /stats too, which only admin keys may
    return path, store.create("e2e", scopes=("admin",)), store.create("e2e-tiny", tier="tiny")


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, str, str]) -> Iterator[Server]:
    if missing := missing_binaries():
        pytest.fail(f"{', '.join(missing)} not installed: scripts/test.sh installs redis-server and postgresql")
    redis = RedisServer().start()
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] == "EmotionModel":  # two replicas, so that one can be killed
            deployment.pop("autoscaling_config", None)
            deployment["num_replicas"] = 2
    config_path = tmp_path_factory.mktemp("config") / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    tiers = {"default": {"per_second": 100000, "burst": 100000}, "tiny": {"per_second": 0.5, "burst": 3}}
    env = {
        "SAMO_API_KEYS_FILE": str(keys[0]),
        "SAMO_REDIS_URL": redis.url,
        "SAMO_RATE_LIMITS__ENABLED": "true",
        "SAMO_RATE_LIMITS__TIERS": json.dumps(tiers),
        "SAMO_LIMITS__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    try:
        yield from run_server(tmp_path_factory, env, ("--config", str(config_path)))
    finally:
        redis.stop()


async def test_bad_input_battery(guarded_server: Server, keys: tuple[Path, str, str]) -> None:
    result = await bad_input_battery(guarded_server.url, headers={"X-API-Key": keys[1]})
    assert result["failures"] == []
    assert result["as_expected"] == len(BAD_INPUTS) >= 30


async def test_no_request_served_without_a_key(guarded_server: Server, keys: tuple[Path, str, str]) -> None:
    result = await unauthenticated_served(guarded_server.url, keys[1])
    assert result["served_without_key"] == 0
    assert result["served_with_key"] == 5
    with httpx.Client(base_url=guarded_server.url, timeout=60) as client:
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 200, path


def test_rate_limit_through_serve(guarded_server: Server, keys: tuple[Path, str, str]) -> None:
    with httpx.Client(base_url=guarded_server.url, timeout=60, headers={"X-API-Key": keys[2]}) as client:
        statuses = [client.post("/predict", json={"text": f"rate {i}"}) for i in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert statuses[0].headers["x-ratelimit-remaining"] == "2"
    for r in statuses:
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-request-id"]


async def test_slow_uploads_cannot_starve_the_service(guarded_server: Server, keys: tuple[Path, str, str]) -> None:
    """300 uploads stall after one byte of their body (issue 30 #5: 262 froze /predict and /healthz, since
    Serve's 256 ongoing requests filled before the app's own bound). Now a request waiting for its body
    holds no in-flight slot and Serve's bound is above the connection cap: each stalled upload gets its 408
    BODY_TIMEOUT, and probes and predictions are answered meanwhile."""
    result = await slow_client_flood(guarded_server.url, {"X-API-Key": keys[1]}, connections=300)
    print(f"\nslow-client flood: {result}")
    assert result["stalled"] == {"408": 300}, result
    assert result["probes"] == {"healthz 200": 10, "predict 200": 10}, result


async def test_idle_connections_are_closed_and_capped(guarded_server: Server) -> None:
    """Issue 30 #9: ~20,100 connections that never sent a request were held for good, until the ingress had
    no file descriptor left. Through Serve's direct ingress now: past limits.max_connections (1,024) a new
    connection is answered 503 TOO_MANY_CONNECTIONS at once; the others get 408 HEADER_TIMEOUT after
    limits.header_timeout_s; then the service answers as before."""
    host, port = "127.0.0.1", int(guarded_server.url.rsplit(":", 1)[1])
    opened = [await asyncio.open_connection(host, port) for _ in range(1100)]

    async def first_line(reader: asyncio.StreamReader) -> str:
        try:
            line = await asyncio.wait_for(reader.readline(), 4 * HEADER_TIMEOUT_S + 10)
        except TimeoutError:
            return "no answer"
        return line.decode().split(" ", 2)[1] if line else "closed"

    answers = Counter(await asyncio.gather(*(first_line(reader) for reader, _ in opened)))
    for _, writer in opened:
        writer.close()
    print(f"\n1,100 idle connections: {dict(answers)}")
    assert set(answers) == {"408", "503"}, answers
    assert answers["503"] >= 1100 - 1024, answers
    async with httpx.AsyncClient(base_url=guarded_server.url, timeout=30) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_model_replica_killed_under_load(guarded_server: Server, keys: tuple[Path, str, str]) -> None:
    n = 400
    kill = ReplicaKill("EmotionModel")
    texts = [f"replica drill {i}: so happy and a bit nervous" for i in range(n)]
    statuses = await drive(guarded_server.url, texts, n, 8, at({0.3: kill}, n), headers={"X-API-Key": keys[1]})
    assert kill.victim is not None
    assert statuses[200] >= 0.99 * n, statuses
    assert kill.wait() is not None  # Serve brought the replica back


async def test_ingress_replica_killed_under_load(guarded_server: Server, keys: tuple[Path, str, str]) -> None:
    """The Ingress replica is the process that serves the port (direct ingress): SIGKILLed under open-loop
    load, Serve's new replica serves on the same port again (issue 30 #4: it took ~155 s, or never once
    the port was blocked, because the successor could not bind past the dead one's TIME_WAIT sockets).

    The bound here is loose for a loaded CI machine; bench/fault_suite.py reports the figure (the goal is
    10 s, docs/PERFORMANCE.md)."""
    rate, seconds = 40, 30
    n = rate * seconds
    kill = ReplicaKill("Ingress", timeout_s=90, serving_url=guarded_server.url)
    texts = [f"ingress drill {i}: tired but hopeful" for i in range(50)]
    deadline = time.monotonic() + seconds
    statuses = await drive(
        guarded_server.url, texts, n, 16, at({0.15: kill}, n), {"X-API-Key": keys[1]}, until=deadline, rate=rate
    )
    assert kill.victim is not None
    replaced = kill.wait()
    serving = kill.serving_after_s
    print(f"\ningress killed at {rate} requests/s: replaced after {replaced} s, serving after {serving} s; {statuses}")
    assert replaced is not None, "Serve did not start a new Ingress replica"
    assert kill.serving_after_s is not None, "the port never served again"
    assert kill.serving_after_s < 60, kill.serving_after_s
    assert statuses[200] > 0, statuses
    assert set(statuses) <= {200, 0, 502, 503}, statuses  # no 4xx/500 from the kill
    with httpx.Client(base_url=guarded_server.url, timeout=60, headers={"X-API-Key": keys[1]}) as client:
        after = client.post("/predict", json={"text": "back on my feet"})
    assert after.status_code == 200, after.text
