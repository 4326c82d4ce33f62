"""The request path without the model: samo-serve answering L1 hits against bare servers, all up, alternating.

    python bench/request_path.py [--rounds 4] [--duration 8] [--no-ray] [--out runs/request_path.json]

Servers (each started by this bench, all up at once, wrk c=32, rounds alternating, ``POST /predict`` with
a small JSON body):

- ``bare ASGI``, ``bare Starlette``, ``bare FastAPI``: ``bench/peers/bare_servers.py`` on uvicorn
  (httptools, uvloop), reading the body and answering a fixed JSON of a samo-serve answer's size;
- ``bare Serve``: the same bare FastAPI app as a Serve deployment, served the way ``samo-serve run``
  serves (its launcher: local Ray, throughput-optimized mode, the replica's own port);
- ``samo one process``: ``samo-serve run --single-process``, ``samo Ray``: ``samo-serve run``; both with
  the shipped settings and 256 texts they answered during the warm-up, so every counted request is an
  L1 hit: HTTP, guard, validation, cache lookup, rendering, a log row and metrics, and no model.

Prints each round, the log rows each samo-serve stored and spilled (every hit queues one) and, last,
the issue's two ratios: one process / bare Starlette (target >= 0.5) and
Ray / bare Serve (target >= 0.8), with the medians of every server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from loadgen import Proc, alternate, bench_texts, generator, save_report, write_bodies  # noqa: E402

from samo_serve.ops.ports import free_port  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

BARE_SERVE_CONFIG = """\
proxy_location: HeadOnly
http_options: {{host: 127.0.0.1, port: {port}}}
applications:
  - name: bare
    route_prefix: /
    import_path: bare_servers:serve_app
    logging_config: {{enable_access_log: false}}  # as configs/serve.yaml serves samo-serve
"""


def _log_rows(url: str) -> dict[str, object]:
    import httpx

    stats = httpx.get(f"{url}/stats", timeout=10).json()
    counters = ((stats.get("replica") or {}).get("request_log") or {}).get("rows") or {}
    return {k: counters.get(k) for k in ("queued", "written", "spilled", "replayed", "dropped", "pending")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round per server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-ray", action="store_true", help="leave out samo-serve (Ray) and the bare Serve app")
    parser.add_argument("--only", nargs="*", default=None, help="server names to start (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "request_path.json")
    args = parser.parse_args()
    if generator() != "wrk":
        sys.exit("this bench needs wrk (apt-get install -y wrk): a Python client cannot drive these servers")

    tmp = Path(tempfile.mkdtemp(prefix="samo-bench-"))
    bodies = write_bodies(tmp / "repeated.jsonl", bench_texts()[:256])
    peers = HERE / "peers"
    py = sys.executable
    servers: dict[str, tuple[list[str], Path]] = {}
    for kind, name in (("asgi", "bare ASGI"), ("starlette", "bare Starlette"), ("fastapi", "bare FastAPI")):
        servers[name] = ([py, str(peers / "bare_servers.py"), kind, "--port", str(free_port())], ROOT)
    servers["samo one process"] = (samo_serve_command(free_port(), free_port(), "--single-process"), ROOT)
    if not args.no_ray:
        servers["samo Ray"] = (samo_serve_command(free_port(), free_port()), ROOT)
        config = tmp / "bare-serve.yaml"
        config.write_text(BARE_SERVE_CONFIG.format(port=free_port()))
        port = int(config.read_text().split("port: ")[1].split("}")[0])
        # run from bench/peers: a local Ray puts the driver's directory on its replicas' sys.path
        servers["bare Serve"] = ([*samo_serve_command(port, free_port()), "--config", str(config)], peers)
    if args.only:
        servers = {n: s for n, s in servers.items() if n in args.only}

    procs: dict[str, Proc] = {}
    try:
        for name, (cmd, cwd) in servers.items():
            port = int(cmd[cmd.index("--port") + 1])
            env = {"SAMO_DATA_DIR": str(tmp / f"data-{len(procs)}")}
            procs[name] = Proc(cmd, f"http://127.0.0.1:{port}", env, tmp / f"server-{len(procs)}.log", cwd=cwd)
        for proc in procs.values():
            proc.wait_ready()
        urls = {n: p.url for n, p in procs.items()}
        results = alternate(urls, bodies, args.rounds, args.duration, args.concurrency, warm_up_s=3)
        log_rows = {n: _log_rows(u) for n, u in urls.items() if n.startswith("samo")}
    finally:
        for proc in procs.values():
            proc.stop()

    medians = {name: statistics.median(r.rps for r in rows) for name, rows in results.items()}
    report: dict[str, object] = {f"{name} rps (median)": round(rps, 1) for name, rps in medians.items()}
    report["errors"] = {name: sum(r.errors for r in rows) for name, rows in results.items()}
    if "samo one process" in medians and "bare Starlette" in medians:
        report["one process / bare Starlette (target >= 0.5)"] = round(
            medians["samo one process"] / medians["bare Starlette"], 3
        )
    if "samo Ray" in medians and "bare Serve" in medians:
        report["Ray / bare Serve (target >= 0.8)"] = round(medians["samo Ray"] / medians["bare Serve"], 3)
    if "bare Serve" in medians and "bare Starlette" in medians:
        report["bare Serve / bare Starlette (Ray's own share)"] = round(
            medians["bare Serve"] / medians["bare Starlette"], 3
        )
    # every hit queues a log row: how many the writer stored and how many it had to spill to disk
    report["log rows (the answering replica's writer)"] = log_rows
    report["rounds"] = {name: [r.row() for r in rows] for name, rows in results.items()}
    save_report(report, args.out)


if __name__ == "__main__":
    main()
