"""`samo-serve run --single-process`: the whole service in one process, no Ray, over real HTTP with a real
Redis (L2) and a real PostgreSQL (request log); SIGTERM drains the log and exits 0."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from samo_serve.ops.ports import free_port
from testkit.drills import wait_for_log_rows
from testkit.local_services import PostgresServer, RedisServer

from .conftest import Server, ray_processes


def test_single_process_serves_caches_logs_and_stops_cleanly(
    tmp_path_factory: pytest.TempPathFactory, services: tuple[RedisServer, PostgresServer]
) -> None:
    redis, postgres = services
    before = ray_processes()
    folder = tmp_path_factory.mktemp("single")
    env = {
        "SAMO_DATA_DIR": str(folder / "data"),
        "SAMO_REDIS_URL": redis.url,
        "SAMO_DATABASE_URL": postgres.url,
        # a long flush interval: the rows below are still queued when SIGTERM comes, and must be written
        "SAMO_REQUEST_LOG__FLUSH_INTERVAL_MS": "60000",
    }
    srv = Server(free_port(), folder / "samo-serve.log", env, ("--single-process",))
    start = datetime.now(UTC) - timedelta(seconds=1)
    try:
        srv.wait_ready()
        assert ray_processes() == before, "--single-process must not start Ray"
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            ready = client.get("/readyz").json()
            assert ready["status"] == "ready"
            assert ready["dependencies"]["redis"]["state"] == "up"
            assert ready["dependencies"]["database"]["dialect"] == "postgresql"

            first = client.post("/predict", json={"text": "Thank you so much, this made my day!"})
            assert first.status_code == 200, first.text
            assert first.json()["cache"] == "miss"
            assert first.json()["primary"]["label"] == "gratitude"
            again = client.post("/predict", json={"text": "Thank you so much, this made my day!"})
            assert again.json()["cache"] == "l1"
            assert again.json()["emotions"] == first.json()["emotions"]

            texts = [f"single-process text {i}: I am so nervous about tomorrow" for i in range(40)]
            batch = client.post("/predict/batch", json={"texts": texts})
            assert batch.status_code == 200, batch.text
            assert len(batch.json()["results"]) == 40

            bad = client.post("/predict", json={"text": ""})
            assert bad.status_code == 422
            assert "error" in bad.json()

        # the same samo_* metrics as the Ray service, on its own Prometheus port (no ray_ prefix: no Ray)
        metrics = httpx.get(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).text
        assert 'samo_requests_total{route="/predict",status="200"} 2.0' in metrics
        assert "samo_batch_size_bucket" in metrics
        assert "ray_samo_" not in metrics
    finally:
        code = srv.stop()
    assert code == 0, srv.tail()
    assert "samo-serve stopped (SIGTERM)" in srv.tail()
    # 42 rows were queued (1 miss + 1 L1 hit + 40), none written before the stop: the drain wrote them
    end = datetime.now(UTC) + timedelta(seconds=1)
    assert asyncio.run(wait_for_log_rows(postgres.url, start, end, 42, timeout_s=5)) == 42
