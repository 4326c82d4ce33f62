"""`samo-serve run` config handling, checks before start and readiness (no Ray: only the pure parts)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from samo_serve.ops import launcher
from samo_serve.ops.launcher import DEFAULT_CONFIG, load_config, serve_forever, use_direct_ingress
from samo_serve.ops.ports import PortConflict, free_port


def test_load_config_overrides_port_and_keeps_loopback() -> None:
    config = load_config(DEFAULT_CONFIG, port=8123)
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8123}
    assert config["applications"][0]["import_path"] == "deployments.app:build_app"


def test_direct_ingress_puts_the_ingress_replica_on_the_user_port() -> None:
    config = load_config(DEFAULT_CONFIG, port=8123)
    env: dict[str, str] = {}
    direct = use_direct_ingress(config, env)
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == (
        "8123",
        "8124",
    )
    assert direct["http_options"]["port"] != 8123  # Ray's own proxy moves out of the way
    ingress = next(d for d in direct["applications"][0]["deployments"] if d["name"] == "Ingress")
    assert ingress["num_replicas"] == 1
    assert "autoscaling_config" not in ingress
    assert config["http_options"]["port"] == 8123  # the caller's config is not modified


def test_direct_ingress_keeps_a_callers_explicit_mode() -> None:
    env = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}
    use_direct_ingress(load_config(DEFAULT_CONFIG), env)
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "0"


# serve_forever returns 2 before importing or starting Ray (the unit conftest makes ray.init raise)


def test_a_taken_port_is_reported_before_ray_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_forever(load_config(DEFAULT_CONFIG, port=port), metrics_port=free_port()) == 2
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().out


def test_the_readmes_port_8080_collides_with_the_default_metrics_port(capsys: pytest.CaptureFixture[str]) -> None:
    """`samo-serve run --port 8080` used to start, and Ray's Prometheus exporter answered on the HTTP port."""
    port = free_port()
    assert serve_forever(load_config(DEFAULT_CONFIG, port=port), metrics_port=port) == 2
    out = capsys.readouterr().out
    assert out == f"samo-serve: --port and --metrics-port are both port {port}; give each its own\n"


def test_a_port_ray_opens_itself_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_forever(load_config(DEFAULT_CONFIG, port=52365), metrics_port=free_port()) == 2
    assert "--port and Ray's dashboard agent are both port 52365" in capsys.readouterr().out


def test_on_a_cluster_only_the_http_port_is_checked() -> None:
    # the metrics port and Ray's own are the cluster's business: no conflict raised for them
    launcher.preflight(load_config(DEFAULT_CONFIG, port=free_port()), metrics_port=52365, local=False)


def test_single_process_refuses_one_port_twice_but_not_rays_ports() -> None:
    port = free_port()
    with pytest.raises(PortConflict, match=f"--port and --metrics-port are both port {port}"):
        launcher.preflight(load_config(DEFAULT_CONFIG, port=port), metrics_port=port, local=True, ray=False)
    # no Ray is started: only our two ports are planned, none of Ray's fixed ones
    config = load_config(DEFAULT_CONFIG, port=8001)
    assert launcher.planned_ports(config, 52365, {}, ray=False) == {"--port": 8001, "--metrics-port": 52365}


def _answer(monkeypatch: pytest.MonkeyPatch, response: httpx.Response | Exception) -> None:
    def get(url: str, timeout: float) -> httpx.Response:
        assert url == "http://127.0.0.1:8000/readyz"
        if isinstance(response, Exception):
            raise response
        return response

    monkeypatch.setattr(launcher.httpx, "get", get)


@pytest.mark.parametrize(
    "response",
    [
        # what Ray's Prometheus exporter answers on any path when it holds the HTTP port
        httpx.Response(200, text="# HELP ray_node_cpu_count\n# TYPE ray_node_cpu_count gauge\n"),
        httpx.Response(200, json={"some": "other service"}),
        httpx.Response(503, json={"status": "unavailable", "auth": "off"}),
        httpx.ConnectError("refused"),
    ],
    ids=["prometheus-text", "json-without-status", "503", "refused"],
)
def test_not_ready_unless_its_own_readyz_answers(monkeypatch: pytest.MonkeyPatch, response: Any) -> None:
    _answer(monkeypatch, response)
    assert launcher.probe_ready("http://127.0.0.1:8000") is None


def test_ready_banner_says_whether_api_keys_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, httpx.Response(200, json={"status": "ready", "auth": "on"}))
    readyz = launcher.probe_ready("http://127.0.0.1:8000")
    assert readyz == {"status": "ready", "auth": "on"}
    banner = launcher.ready_banner("http://127.0.0.1:8000", readyz, metrics_port=8080)
    assert banner.startswith("samo-serve ready at http://127.0.0.1:8000  (auth: on, docs: ")
    assert "Prometheus: http://127.0.0.1:8080/metrics" in banner
    # a server without the field (older) and a cluster (its Prometheus is the cluster's)
    plain = launcher.ready_banner("http://h:1", {"status": "degraded"}, metrics_port=None)
    assert "auth" not in plain
    assert "Prometheus" not in plain
