"""``samo-serve loadtest``: how much load a running deployment holds, as bounded runs per level."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from samo_serve.ops.cli.common import DEFAULT_URL, add_api_key, get
from samo_serve.ops.cli.errors import CliError, user_file

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]


def _numbers(kind: Callable[[str], float]) -> Callable[[str], list[float]]:
    def parse(text: str) -> list[float]:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 1,8,32: {text!r}") from None

    return parse


def register(sub: Subparsers) -> None:
    lt = sub.add_parser("loadtest", help="measure how much load a running deployment holds (bounded runs)")
    lt.add_argument("--url", default=DEFAULT_URL)
    lt.add_argument("--concurrency", type=_numbers(int), default="1,8,32,64", help="closed-loop levels, e.g. 1,8,32,64")
    lt.add_argument(
        "--rate", type=_numbers(float), default=None, help="open loop instead: arrival rates in requests/s, e.g. 50,100"
    )
    bound = lt.add_mutually_exclusive_group()
    bound.add_argument("--requests", type=int, default=None, help="requests per level (default 200)")
    bound.add_argument("--duration", type=float, default=None, help="seconds per level")
    lt.add_argument(
        "--corpus", default=None, help="texts: .txt (one per line), .tsv (GoEmotions) or .jsonl; long ones: documents"
    )
    lt.add_argument("--repeat-ratio", type=float, default=0.0, help="share of repeated texts (0..1): cache hits")
    lt.add_argument("--batch", type=int, default=1, help="texts per request (/predict/batch when > 1)")
    lt.add_argument(
        "--entries", type=int, default=1, metavar="N", help="send documents: each text is N corpus texts as sentences"
    )
    add_api_key(lt)
    lt.add_argument("--stress", action="store_true", help="ramp concurrency 1,2,4,… until it degrades")
    lt.add_argument("--p95-target-ms", type=float, default=500.0)
    lt.add_argument("--out", default=None, help="folder for report.md, PNG plots and results.json")
    lt.set_defaults(func=_loadtest)


def _loadtest(args: argparse.Namespace) -> int:
    from samo_serve.loadtest.corpus import load_corpus
    from samo_serve.loadtest.runner import run_loadtest

    if args.entries < 1:
        raise CliError(f"--entries {args.entries}: an entry needs at least one sentence", "pass --entries 1 or more")
    corpus = Path(args.corpus) if args.corpus else None
    if corpus is not None:  # read it now: a broken corpus is a one-line error, not a failed run
        remedy = 'pass --corpus with a .txt (a text per line), .tsv (GoEmotions) or .jsonl ({"text": …}) file'
        with user_file(corpus, "corpus", remedy, invalid=(ValueError, KeyError, TypeError)):
            load_corpus(corpus)
    get(args.url, "/healthz")  # answers without a key; nothing answering is an error, not a run of failures
    run = run_loadtest(
        args.url,
        concurrency=[int(c) for c in args.concurrency],
        rate=args.rate,
        requests=args.requests,
        duration_s=args.duration,
        corpus=corpus,
        repeat_ratio=args.repeat_ratio,
        batch=args.batch,
        entries=args.entries,
        api_key=args.api_key,
        stress=args.stress,
        p95_target_ms=args.p95_target_ms,
        out=Path(args.out) if args.out else None,
    )
    if stress := run.get("stress"):
        print(
            f"degradation point: {stress['degradation_at'] or 'not reached'}; "
            f"max sustainable: {stress['max_sustainable']} ({stress['max_sustainable_rps']} rps)"
        )
    return 0
