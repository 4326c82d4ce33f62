"""What a load test leaves in ``--out``: results.json (for the capacity planner), report.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_outputs"]


def _load_axis(levels: list[dict[str, Any]]) -> tuple[list[float], str]:
    if all(level["mode"] == "open" for level in levels):
        return [level["rate"] for level in levels], "offered load (requests/s, open loop)"
    return [level["concurrency"] for level in levels], "concurrent clients (closed loop)"


def _plots(run: dict[str, Any], latencies: list[list[float]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    levels = run["levels"]
    x, xlabel = _load_axis(levels)
    written = []
    panels = [
        ("throughput.png", "throughput (successful requests/s)", [lv["throughput_rps"] for lv in levels], None),
        ("p95.png", "p95 latency (ms)", [lv["latency_ms"]["p95"] or np.nan for lv in levels], run["p95_target_ms"]),
        ("success.png", "success rate (%)", [lv["success_rate"] * 100 for lv in levels], 99.0),
    ]
    for name, ylabel, y, target in panels:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        ax.plot(x, y, marker="o", color="#3b6fd8")
        if target is not None:
            ax.axhline(target, color="#c62828", linestyle="--", linewidth=1, label=f"target {target:g}")
        if run.get("stress", {}).get("degradation_at") is not None:
            ax.axvline(run["stress"]["degradation_at"], color="#e08a00", linestyle=":", label="degradation point")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} vs load — {run['url']}", fontsize=9)
        if len(x) > 2 and min(x) > 0 and max(x) / min(x) >= 8:
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        written.append(name)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for level, lat in zip(levels, latencies, strict=True):
        if lat:
            label = f"c={level['concurrency']}" if level["mode"] == "closed" else f"{level['rate']:g} rps"
            ax.hist(np.asarray(lat) * 1000, bins=40, alpha=0.5, label=label)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title("latency histogram per level", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency_histogram.png")
    plt.close(fig)
    written.append("latency_histogram.png")
    return written


def _markdown(run: dict[str, Any], plots: list[str]) -> str:
    lines = [
        f"# Load test of {run['url']}",
        "",
        f"{run['started_at']} · corpus: {run['corpus']} · repeat ratio {run['repeat_ratio']} · "
        f"batch {run['batch']} · {run['bound']}"
        + (f" · {run['sentences_per_text']}-sentence entries" if run.get("sentences_per_text", 1) > 1 else ""),
        "",
        "| load | sent | success | rps | texts/s | p50 ms | p95 ms | p99 ms | min | mean | max | verdicts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in run["levels"]:
        load = f"c={lv['concurrency']}" if lv["mode"] == "closed" else f"{lv['rate']:g} req/s"
        ms = lv["latency_ms"]
        verdicts = ", ".join(f"{k}: {'pass' if v else 'FAIL'}" for k, v in lv["verdicts"].items())
        cells = [load, lv["sent"], f"{lv['success_rate']:.2%}", lv["throughput_rps"], lv["texts_per_s"],
                 ms["p50"], ms["p95"], ms["p99"], ms["min"], ms["mean"], ms["max"], verdicts]  # fmt: skip
        lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    codes = sorted({code for lv in run["levels"] for code in lv["statuses"]})
    lines += ["", "Responses by status: " + "; ".join(
        f"{code}: {sum(lv['statuses'].get(code, 0) for lv in run['levels'])}" for code in codes)]  # fmt: skip
    if stress := run.get("stress"):
        lines += [
            "",
            "## Stress",
            "",
            f"Stopped at the first level with success < 95 % or p95 > {run['p95_target_ms']:g} ms.",
            f"Degradation point: {stress['degradation_at'] or 'not reached'}. "
            f"Maximum sustainable load: {stress['max_sustainable']} "
            f"({stress['max_sustainable_rps']} requests/s).",
        ]
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_outputs(run: dict[str, Any], latencies: list[list[float]], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    raw = {**run, "latencies_ms": [[round(v * 1000, 3) for v in lat] for lat in latencies]}
    (out / "results.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    plots = _plots(run, latencies, out)
    (out / "report.md").write_text(_markdown(run, plots), encoding="utf-8")
    return [out / "results.json", out / "report.md", *(out / p for p in plots)]
