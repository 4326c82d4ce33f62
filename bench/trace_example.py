"""Where a slow request's time went: one traced request to `samo-serve run` under load, as a span tree.

    python bench/trace_example.py [--concurrency 32] [--seconds 6]

Starts `samo-serve run` (Ray) with tracing on (sample ratio 0: only requests that send a sampled W3C
``traceparent`` are traced) exporting to a real OTLP/HTTP receiver here (testkit.otlp_receiver), puts it
under closed-loop load of new texts (wrk, or the Python engine), and meanwhile sends one traced request:
an 8-sentence journal entry (a document read sentence by sentence). Prints that request's trace as a
tree of spans with start offsets and durations, the way a trace viewer draws it (docs/METRICS.md, "Traces").
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from loadgen import Proc, bench_texts, closed_loop, write_bodies  # noqa: E402

from samo_serve.ops.ports import free_port  # noqa: E402
from testkit.otlp_receiver import OtlpReceiver, ReceivedSpan  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

ENTRY = (
    "Woke up late and missed the bus again. The meeting went badly and my manager was short with me. "
    "At lunch I sat alone and felt invisible. Then my sister called out of nowhere. We laughed about "
    "the summer we got lost in Lisbon. I am still annoyed about work. But I feel lighter than this morning. "
    "Thank you, sis."
)


def tree(spans: list[ReceivedSpan]) -> list[str]:
    """The spans as an indented tree: offset from the root's start and duration, in ms; key attributes."""
    by_parent: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        by_parent.setdefault(s.parent_span_id, []).append(s)
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    t0 = min(s.start_ns for s in roots)
    lines: list[str] = []

    def walk(span: ReceivedSpan, depth: int) -> None:
        keep = {k: v for k, v in span.attributes.items() if k.startswith("samo.") and k != "samo.request_id"}
        lines.append(
            f"{(span.start_ns - t0) / 1e6:8.1f} ms {(span.end_ns - span.start_ns) / 1e6:8.1f} ms  "
            f"{'  ' * depth}{span.name} [{span.resource.get('samo.process')}] {keep or ''}"
        )
        for child in sorted(by_parent.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_ns):
        walk(root, 0)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="samo-trace-"))
    trace_id = secrets.token_hex(16)
    with OtlpReceiver() as receiver:
        port, metrics_port = free_port(), free_port()
        env = {
            "SAMO_TRACING__ENABLED": "true",
            "SAMO_TRACING__OTLP_ENDPOINT": receiver.url,
            "SAMO_TRACING__SAMPLE_RATIO": "0",
            "SAMO_CACHE__L1_ENABLED": "false",
            "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "PATH": os.environ["PATH"],
        }
        server = Proc(samo_serve_command(port, metrics_port), f"http://127.0.0.1:{port}", env, tmp / "server.log")
        try:
            server.wait_ready()
            bodies = write_bodies(tmp / "bodies.jsonl", bench_texts())
            load = threading.Thread(
                target=closed_loop, args=(server.url, bodies, args.concurrency, args.seconds, "load"), daemon=True
            )
            load.start()
            threading.Event().wait(args.seconds / 2)  # the queues are full by now
            headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            r = httpx.post(f"{server.url}/predict", json={"text": ENTRY}, headers=headers, timeout=60)
            print(f"traced request: HTTP {r.status_code}, latency_ms {r.json().get('latency_ms')}, "
                  f"segments {r.json().get('segment_count')}, under c={args.concurrency}")  # fmt: skip
            load.join()
            spans = receiver.wait_for(
                lambda got: {"model.ort", "log.write"} <= {s.name for s in got if s.trace_id == trace_id}, timeout_s=30
            )
        finally:
            server.stop()
    print(f"trace {trace_id}:")
    print("\n".join(tree([s for s in spans if s.trace_id == trace_id])))


if __name__ == "__main__":
    main()
