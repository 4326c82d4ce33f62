"""Two versions of samo-serve served at once, load alternating between them: what a change did to throughput.

    git worktree add ../base <commit>          # the version to compare against
    python bench/ab_versions.py --base-root ../base [--rounds 4] [--duration 8] [--concurrency 32]
    python bench/ab_versions.py --b-env RAY_SERVE_CONTROL_LOOP_INTERVAL_S=0.5    # a setting, same checkout
    python bench/ab_versions.py --a-env SAMO_MODEL_DIR=goemotions-minilm --b-env SAMO_MODEL_DIR=/tmp/other

A is the checkout at ``--base-root``, run with this venv's packages and its own source first on
PYTHONPATH; B is this checkout. Both are up for the whole run (each ``samo-serve run`` with its own local
Ray), and each round sends the same closed-loop load to one and then the other, the order swapped every
round, so drift on a noisy machine falls on both. Every request carries a new text and L1 is off: every
request is classified. With ``--hits``, the request path without the model instead: 256 texts repeated,
L1 on and a warm-up that answers them all, so every counted request is an L1 hit (HTTP, validation,
cache, rendering, a log row, metrics). Prints each round and the median B/A ratio of requests/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, alternate, bench_texts, save_report, write_bodies  # noqa: E402

from samo_serve.ops.ports import free_port  # noqa: E402


def _cli_module(root: Path) -> str:
    # The CLI moved from samo_serve/cli.py to samo_serve/ops/cli/ with the package layout.
    return "samo_serve.cli" if (root / "samo_serve" / "cli.py").exists() else "samo_serve.ops.cli"


def _server(
    name: str,
    root: Path,
    tmp: Path,
    extra_env: dict[str, str] | None = None,
    single_process: bool = False,
    hits: bool = False,
) -> Proc:
    port, metrics_port = free_port(), free_port()
    # -P: no current directory on sys.path, so each server imports the samo_serve of its own PYTHONPATH
    cmd = [
        sys.executable,
        "-P",
        "-m",
        _cli_module(root),
        "run",
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        *(["--single-process"] if single_process else []),
    ]
    env = {
        "SAMO_CACHE__L1_ENABLED": "true" if hits else "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")])),
        "XDG_CONFIG_HOME": str(tmp / f"{name}-config"),  # no API keys of the developer's
        "XDG_DATA_HOME": str(tmp / f"{name}-data"),
        **(extra_env or {}),
    }
    # cwd too: local Ray puts the driver's working directory on its workers' sys.path, so replicas
    # started from another checkout's directory would run that checkout's code
    return Proc(cmd, f"http://127.0.0.1:{port}", env, tmp / f"{name}.log", cwd=root)


def _served(url: str) -> str:
    """What the server says of itself: the model version (both must serve the same model) and its HTTP
    routes (which differ between versions: proof that each server runs its own checkout)."""
    info = httpx.get(f"{url}/readyz", timeout=10).json()
    paths = httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    return f"{info.get('model', {}).get('version', '?')}, {len(paths)} routes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-root", type=Path, default=None, help="checkout of the version to compare against")
    parser.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of B only (repeatable): A/B a setting on the same checkout")  # fmt: skip
    parser.add_argument("--a-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of A only (repeatable), e.g. SAMO_MODEL_DIR to A/B two models")  # fmt: skip
    parser.add_argument("--single-process", action="store_true", help="both servers without Ray")
    parser.add_argument("--hits", action="store_true", help="L1 hits (256 texts repeated), not uncached texts")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round per server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE.parent / "runs" / "ab_versions.json")
    args = parser.parse_args()
    base = (args.base_root or HERE.parent).resolve()
    if args.base_root is None and not args.b_env:
        parser.error("give --base-root (another version) or --b-env (another setting), or both")
    if not (base / "samo_serve").is_dir():
        raise SystemExit(f"skipped: no samo_serve/ under {base} (make one with `git worktree add`)")

    tmp = Path(tempfile.mkdtemp(prefix="samo-ab-"))
    texts = bench_texts()[:256] if args.hits else bench_texts()
    bodies = write_bodies(tmp / "single.jsonl", texts)
    a_env, b_env = (dict(item.split("=", 1) for item in items) for items in (args.a_env, args.b_env))
    one, hits = args.single_process, args.hits
    servers = {
        "A (base)": _server("a", base, tmp, a_env, one, hits),
        "B (this)": _server("b", HERE.parent, tmp, b_env, one, hits),
    }
    try:
        for srv in servers.values():
            srv.wait_ready()
        for name, srv in servers.items():
            print(f"{name}: {_served(srv.url)}", flush=True)
        urls = {name: srv.url for name, srv in servers.items()}
        warm_up_s = 5.0 if hits else 0.0
        results = alternate(urls, bodies, args.rounds, args.duration, args.concurrency, warm_up_s=warm_up_s)
    finally:
        for srv in servers.values():
            srv.stop()

    a, b = (results[name] for name in servers)
    per_round = [round(y.rps / x.rps, 3) for x, y in zip(a, b, strict=True) if x.rps]
    report: dict[str, object] = {
        "rounds": {name: [res.row() for res in rows] for name, rows in results.items()},
        "ratios": {
            f"B/A rps c={args.concurrency}, per round": per_round,
            "B/A median": statistics.median(per_round) if per_round else None,
            "A median rps": statistics.median(x.rps for x in a),
            "B median rps": statistics.median(y.rps for y in b),
            "errors A/B": [sum(x.errors for x in a), sum(y.errors for y in b)],
        },
    }
    save_report(report, args.out)


if __name__ == "__main__":
    main()
