"""`samo-serve run` config handling (no Ray: only the pure parts)."""

from __future__ import annotations

from pathlib import Path

from samo_serve.ops.launcher import DEFAULT_CONFIG, load_config, use_direct_ingress


def test_load_config_overrides_port_and_keeps_loopback() -> None:
    config = load_config(DEFAULT_CONFIG, port=8123)
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8123}
    assert config["applications"][0]["import_path"] == "deployments.app:build_app"


def test_direct_ingress_puts_the_ingress_replica_on_the_user_port(tmp_path: Path) -> None:
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


def test_a_taken_port_is_reported_before_ray_starts() -> None:
    import socket

    import pytest

    from samo_serve.ops.launcher import check_port_free, serve_forever

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port} is already in use"):
            check_port_free("127.0.0.1", port)
        # serve_forever returns before importing or starting Ray (the unit conftest forbids ray.init)
        assert serve_forever(load_config(DEFAULT_CONFIG, port=port)) == 2
