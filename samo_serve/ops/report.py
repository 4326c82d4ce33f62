"""``samo-serve report``: the /stats document as terminal tables (rich).

The windows table has a row per measure and a column per window (1m, 5m, 1h): eleven measures side by
side needed ~120 columns, and at 80, or piped, rich cut every header to ``win…``, ``req…``, ``cac…``.
Four columns fit 80 with room to spare.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["render_report", "stdout_console"]

PIPED_WIDTH = 80


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or 80 columns when piped (``$COLUMNS`` wins).

    Piped, rich would take the width of whatever terminal stdin has, which the reader of a file never sees.
    """
    console = Console()
    return console if console.is_terminal or os.environ.get("COLUMNS") else Console(width=PIPED_WIDTH)


def _n(value: Any, digits: int = 1, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def _percent(value: float | None, digits: int = 1) -> str:
    return _n(None if value is None else value * 100, digits, " %")


#: the rows of the windows table: a label and how to show it from one window's summary
_MEASURES: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("requests", lambda w: f"{w['requests']:,}"),
    ("texts", lambda w: f"{w['texts']:,}"),
    ("throughput, rps", lambda w: _n(w["throughput_rps"], 2)),
    ("latency p50, ms", lambda w: _n(w["latency_ms"]["p50"])),
    ("latency p95, ms", lambda w: _n(w["latency_ms"]["p95"])),
    ("latency p99, ms", lambda w: _n(w["latency_ms"]["p99"])),
    ("errors", lambda w: _percent(w["error_rate"], 2)),
    ("cache hits", lambda w: _percent(sum(w["cache_hit_rate"].values()))),
    ("batch size", lambda w: _n(w["batch"]["mean_size"])),
    ("batch fill", lambda w: _percent(w["batch"]["fill"])),
)


def _windows_table(stats: dict[str, Any]) -> Table:
    windows: dict[str, dict[str, Any]] = stats["windows"]
    table = Table()
    table.add_column("window", no_wrap=True)
    for name in windows:
        table.add_column(name, justify="right", no_wrap=True)
    for label, show in _MEASURES:
        table.add_row(label, *(show(w) for w in windows.values()))
    return table


def _replicas_table(stats: dict[str, Any]) -> Table:
    table = Table(title="replicas")
    table.add_column("deployment", no_wrap=True)
    table.add_column("running", justify="right", no_wrap=True)
    table.add_column("other states", overflow="fold")  # wraps, never cut
    states = stats.get("deployments") or {}
    for name, n in (stats.get("replicas") or {}).items():
        other = (states.get(name) or {}).get("replica_states", {})
        table.add_row(name, str(n), ", ".join(f"{k} {v}" for k, v in other.items() if k != "RUNNING"))
    memory = stats.get("memory") or {}
    table.caption = f"largest ingress replica RSS: {_n(memory.get('max_replica_rss_mb'), 0, ' MB')}"
    return table


def render_report(stats: dict[str, Any], console: Console | None = None) -> None:
    console = console or stdout_console()
    console.print(
        f"[bold]samo-serve at {escape(str(stats.get('generated_at', '?')))}[/], "
        f"{stats.get('ingress_replicas_reporting', 1)} ingress replica(s) reporting"
    )
    console.print(_windows_table(stats))

    levels = Table(title="cache, last 5 minutes")
    levels.add_column("answered by", no_wrap=True)
    levels.add_column("texts", justify="right", no_wrap=True)
    for level, n in stats["windows"]["5m"]["cache_answers"].items():
        levels.add_row("model" if level == "miss" else level, f"{n:,}")
    console.print(levels, _replicas_table(stats))

    recommendations = stats.get("recommendations") or []
    if not recommendations:
        console.print("[green]No recommendations:[/] nothing above its threshold in the last 5 minutes.")
    for r in recommendations:  # messages are text, not rich markup
        console.print(f"[yellow]{escape(str(r['kind']))}[/]: {escape(str(r['message']))} "
                      f"[dim]({escape(str(r['metric']))} = {r['value']}, threshold {r['threshold']})[/]")  # fmt: skip
