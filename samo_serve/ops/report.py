"""``samo-serve report``: the /stats document as terminal tables (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["render_report"]


def _n(value: Any, digits: int = 1, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def render_report(stats: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    windows = Table(title=f"samo-serve at {stats.get('generated_at', '?')} "
                          f"({stats.get('ingress_replicas_reporting', 1)} ingress replica(s))")  # fmt: skip
    for column in ("window", "requests", "texts", "rps", "p50 ms", "p95 ms", "p99 ms", "errors", "cache hits",
                   "batch size", "batch fill"):  # fmt: skip
        windows.add_column(column, justify="left" if column == "window" else "right")
    for name, w in stats["windows"].items():
        hits = sum(w["cache_hit_rate"].values())
        windows.add_row(
            name, f"{w['requests']:,}", f"{w['texts']:,}", _n(w["throughput_rps"], 2),
            _n(w["latency_ms"]["p50"]), _n(w["latency_ms"]["p95"]), _n(w["latency_ms"]["p99"]),
            _n(w["error_rate"] * 100, 2, " %"), _n(hits * 100, 1, " %"),
            _n(w["batch"]["mean_size"]), _n(None if w["batch"]["fill"] is None else w["batch"]["fill"] * 100, 1, " %"),
        )  # fmt: skip
    console.print(windows)

    five = stats["windows"]["5m"]
    levels = Table(title="cache, last 5 minutes")
    levels.add_column("answered by")
    levels.add_column("texts", justify="right")
    for level, n in five["cache_answers"].items():
        levels.add_row("model" if level == "miss" else level, f"{n:,}")
    replicas = Table(title="replicas")
    replicas.add_column("deployment")
    replicas.add_column("running", justify="right")
    replicas.add_column("other states")
    states = stats.get("deployments") or {}
    for name, n in (stats.get("replicas") or {}).items():
        other = (states.get(name) or {}).get("replica_states", {})
        replicas.add_row(name, str(n), ", ".join(f"{k} {v}" for k, v in other.items() if k != "RUNNING"))
    memory = stats.get("memory") or {}
    replicas.caption = f"largest ingress replica RSS: {_n(memory.get('max_replica_rss_mb'), 0, ' MB')}"
    console.print(levels, replicas)

    recommendations = stats.get("recommendations") or []
    if not recommendations:
        console.print("[green]No recommendations:[/] nothing above its threshold in the last 5 minutes.")
    for r in recommendations:
        console.print(f"[yellow]{r['kind']}[/]: {r['message']} [dim]({r['metric']} = {r['value']}, "
                      f"threshold {r['threshold']})[/]")  # fmt: skip
