"""`samo-serve run` config handling, checks before start and readiness (no Ray: only the pure parts)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.ops import cli, launcher
from samo_serve.ops.launcher import DEFAULT_CONFIG, load_config, serve_forever, use_direct_ingress
from samo_serve.ops.ports import PortConflict, free_port
from samo_serve.ops.serve_config import deployment, override_deployment, write_serve_config


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


def test_the_shipped_config_is_launched_as_written(caplog: pytest.LogCaptureFixture) -> None:
    """What the default launcher would change in configs/serve.yaml's Ingress, nothing: so it warns of nothing."""
    config = load_config(DEFAULT_CONFIG)
    with caplog.at_level(logging.WARNING, logger=launcher.__name__):
        direct = use_direct_ingress(config, {})
    assert caplog.records == []
    assert deployment(direct, "Ingress") == deployment(config, "Ingress")


SCALED_INGRESS = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 64}


@pytest.mark.parametrize(
    ("fields", "asked"),
    [
        ({"autoscaling_config": SCALED_INGRESS}, "autoscaling_config {min_replicas: 1, max_replicas: 3, "),
        ({"num_replicas": 3}, "num_replicas: 3"),
        ({"num_replicas": "auto"}, "num_replicas: auto"),
    ],
    ids=["autoscaling", "three-replicas", "auto"],
)
def test_direct_ingress_warns_when_it_changes_the_ingress(
    caplog: pytest.LogCaptureFixture, fields: dict[str, Any], asked: str
) -> None:
    config = override_deployment(load_config(DEFAULT_CONFIG, port=8123), "Ingress", **fields)
    with caplog.at_level(logging.WARNING, logger=launcher.__name__):
        direct = use_direct_ingress(config, {})
    ingress = deployment(direct, "Ingress")
    assert ingress["num_replicas"] == 1
    assert "autoscaling_config" not in ingress
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"asks for {asked}" in message  # what the config asked for
    assert "on the Ingress of application 'samo'; it runs num_replicas: 1 instead" in message  # what it got
    assert "from the Ingress replica itself on port 8123, and one port holds one replica" in message  # why
    assert "--classic-proxy" in message  # and how to have several


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve_forever up to Ray: nothing started, and the variables it sets for Ray put back afterwards."""
    names = [*launcher.RAY_ENV_DEFAULTS, *launcher.LOCAL_RAY_ENV_DEFAULTS, "RAY_SERVE_THROUGHPUT_OPTIMIZED"]
    names += ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]
    for name in names:
        value = os.environ.get(name)
        monkeypatch.setenv(name, value or "")  # recorded, so put back (or removed) after the test
        if value is None:
            monkeypatch.delenv(name)
    monkeypatch.setattr(launcher, "start_ray", lambda *args: None)
    monkeypatch.setattr(launcher, "_serve_until_stopped", lambda *args: 0)


@pytest.mark.usefixtures("no_ray")
def test_samo_serve_run_prints_the_ingress_warning_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scaled = override_deployment(load_config(DEFAULT_CONFIG), "Ingress", autoscaling_config=SCALED_INGRESS)
    path = write_serve_config(scaled, tmp_path / "serve.yaml")
    port, metrics_port = free_port(), free_port()
    assert cli.main(["run", "--config", str(path), "--port", str(port), "--metrics-port", str(metrics_port)]) == 0
    out, err = capsys.readouterr()
    (line,) = [line for line in out.splitlines() if "warning" in line]
    assert line.startswith("samo-serve: warning: the Serve config asks for autoscaling_config {min_replicas: 1, ")
    assert (
        f"runs num_replicas: 1 instead: direct ingress serves HTTP from the Ingress replica itself on port {port}"
        in line
    )
    assert "warning" not in err.lower()  # printed once, not also by the logging handler
    assert logging.getLogger(launcher.__name__).propagate  # the CLI's handler is gone again


@pytest.mark.usefixtures("no_ray")
def test_samo_serve_run_of_the_shipped_config_warns_of_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--port", str(free_port()), "--metrics-port", str(free_port())]) == 0
    assert "warning" not in capsys.readouterr().out


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
