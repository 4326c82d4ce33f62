"""``samo-serve run``: serve a Serve config (the shipped one by default) on a local Ray or a running cluster."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from samo_serve.ops.cli.common import config_path, load_settings, read_serve_config
from samo_serve.ops.cli.errors import CliError, user_file
from samo_serve.ops.serve_config import DEFAULT_CONFIG, override_http
from samo_serve.settings import DEFAULT_METRICS_PORT, READY_TIMEOUT_S

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]

_OUR_APP = "deployments.app:"  # applications built by build_app read samo-serve's Settings from their args
_MODEL_REMEDY = (
    "set SAMO_MODEL_DIR (or model_dir in the config's args:) to a folder with card.json and the ONNX file; "
    "samo-serve model export writes one"
)


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="serve the embedded default on a local Ray (blocks; Ctrl-C stops)")
    run.add_argument("--config", default=None, help="a Serve config (default: the shipped serve.yaml)")
    run.add_argument("--port", type=int, default=None, help="HTTP port (default: the config's, 8000)")
    run.add_argument("--host", default=None, help="bind address (default: the config's, 127.0.0.1)")
    run.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_S, help="seconds to wait for /readyz")
    run.add_argument(
        "--classic-proxy",
        action="store_true",
        help="serve through Ray's HTTP proxy instead of directly from the ingress replica (slower; see docs)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help="Ray's Prometheus endpoint (ray_serve_*, ray_samo_*)",
    )
    run.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of the local Ray (default: cores)")
    run.add_argument(
        "--num-gpus", type=int, default=None, help="logical GPUs of the local Ray (default: the GPUs it detects)"
    )
    run.add_argument(
        "--single-process",
        action="store_true",
        help="serve in this one process without Ray (small machines: no replicas or autoscaling; see docs)",
    )
    run.add_argument(
        "--address",
        default=None,
        help="deploy on a running Ray cluster (auto, HOST:PORT) through its HTTP proxy instead of a local Ray",
    )
    run.set_defaults(func=_run)


def _check_local(config: dict[str, Any]) -> None:
    """Fail in a second, not after Ray started: the settings and model the local replicas will read.

    A local Ray's replicas inherit this process's environment, so its ``SAMO_*`` variables and each
    application's ``args:`` make the same :class:`Settings` here as there.
    """
    from samo_serve.core.model_card import load_card

    for app in config["applications"]:
        if not str(app.get("import_path", "")).startswith(_OUR_APP):
            continue
        settings = load_settings(**(app.get("args") or {}))
        with user_file(settings.model_dir, "model folder", _MODEL_REMEDY, invalid=(ValueError,)):
            load_card(settings.model_dir, verify=False)  # the replicas verify the checksum


def _our_args(config: dict[str, Any]) -> dict[str, Any]:
    """The settings ``args:`` of the config's samo-serve application (the one a single process serves)."""
    for app in config["applications"]:
        if str(app.get("import_path", "")).startswith(_OUR_APP):
            return dict(app.get("args") or {})
    raise CliError("the Serve config has no samo-serve application (deployments.app:...)", "pass the shipped config")


def _run_single_process(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from samo_serve.ops.launcher import preflight
    from samo_serve.ops.ports import PortConflict
    from samo_serve.ops.single_process import serve_single_process

    if args.address is not None or args.classic_proxy:
        raise CliError("--single-process runs without Ray", "leave out --address and --classic-proxy")
    config = override_http(config, port=args.port, host=args.host)
    try:
        preflight(config, args.metrics_port, local=True, ray=False)
    except (PortConflict, OSError) as exc:
        print(f"samo-serve: {exc}", flush=True)
        return 2
    http = config["http_options"]
    return serve_single_process(load_settings(**_our_args(config)), http["host"], int(http["port"]), args.metrics_port)


class _PrintWarning(logging.Handler):
    """A warning of the launcher as a line of ``samo-serve run``'s own output, with its banner (stdout)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"samo-serve: warning: {record.getMessage()}", flush=True)


@contextmanager
def _launcher_warnings_printed() -> Iterator[None]:
    """While it lasts, what the launcher logs at WARNING (e.g. a config it had to change) is printed, once."""
    logger = logging.getLogger("samo_serve.ops.launcher")
    handler, propagate = _PrintWarning(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # not a second time by the root logger's handler (stderr)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _run(args: argparse.Namespace) -> int:
    from samo_serve.ops.launcher import serve_forever

    config = read_serve_config(config_path(args.config, DEFAULT_CONFIG))
    if args.single_process:
        _check_local(config)
        return _run_single_process(args, config)
    if args.address is None:  # a cluster's replicas read the cluster's environment, not ours
        _check_local(config)
    with _launcher_warnings_printed():
        return serve_forever(
            override_http(config, port=args.port, host=args.host),
            ready_timeout_s=args.ready_timeout,
            direct_ingress=not args.classic_proxy,
            metrics_port=args.metrics_port,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            address=args.address,
        )
