"""The ports ``samo-serve run`` binds (HTTP, metrics, Ray's): pick free ones, check them before Ray starts.

Both checks run before anything starts, so a bad port is a one-line error in a second rather than an
ingress replica retrying until the ready timeout, or a server that answers with the wrong service.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Mapping

__all__ = ["PortConflict", "check_distinct", "check_port_free", "free_port", "ray_fixed_ports"]

#: Ray 2.60's defaults for the ports a local node opens at fixed numbers (``AUTOSCALER_METRIC_PORT``,
#: ``DASHBOARD_METRIC_PORT`` and ``DEFAULT_DASHBOARD_AGENT_LISTEN_PORT`` in Ray's source; a unit test compares
#: them with the installed Ray). Importing Ray to read them would cost seconds before a one-line error.
_AUTOSCALER_METRICS = 44217
_DASHBOARD_METRICS = 44227
_DASHBOARD_AGENT = 52365


class PortConflict(ValueError):
    """Two servers ``samo-serve run`` would start were given the same port."""


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now (the OS picks it), other than those in ``avoid``."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def check_port_free(host: str, port: int, what: str = "--port") -> None:
    """Fail fast when something listens on ``host:port``; ``what`` names the option that chose it.

    Binds as the servers that will take the port do (uvicorn, Prometheus' exporter: ``SO_REUSEADDR``), so
    the TIME-WAIT connections a stopped server leaves behind for a minute do not count as "in use",
    while a listening socket still does (Linux refuses the bind then, ``SO_REUSEADDR`` or not).

    Raises:
        OSError: with a message naming the port and ``what``.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"{host}:{port} is already in use (another samo-serve?); choose one with {what}") from exc


def ray_fixed_ports(env: Mapping[str, str]) -> dict[str, int]:
    """The ports a local Ray opens at fixed numbers, by what opens them (two follow Ray's own env overrides)."""
    autoscaler, dashboard = "AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT"
    return {
        f"Ray's autoscaler metrics ({autoscaler})": int(env.get(autoscaler, _AUTOSCALER_METRICS)),
        f"Ray's dashboard metrics ({dashboard})": int(env.get(dashboard, _DASHBOARD_METRICS)),
        "Ray's dashboard agent": _DASHBOARD_AGENT,
    }


def check_distinct(ports: Mapping[str, int]) -> None:
    """Each server its own port: ``ports`` maps what chose a port (an option, a Ray component) to it.

    Raises:
        PortConflict: naming the first two that share a port.
    """
    seen: dict[int, str] = {}
    for what, port in ports.items():
        if port in seen:
            raise PortConflict(f"{seen[port]} and {what} are both port {port}; give each its own")
        seen[port] = what
