"""The ``samo-serve`` command line: a module per command group, each adding its parser and handler.

Examples::

    samo-serve run                                  # embedded default on http://127.0.0.1:8000
    samo-serve model info                           # print the shipped model card
    samo-serve model eval --split test --data ../shared/data/goemotions
    samo-serve model train --data ../shared/data/goemotions --out artifacts/ckpt   # needs [train]
    samo-serve model export --checkpoint artifacts/ckpt --data ../shared/data/goemotions
    samo-serve keys create --name mobile-app --file keys.json    # prints the key once
    samo-serve report --url http://127.0.0.1:8000                # /stats as tables
    samo-serve loadtest --concurrency 1,8,32 --requests 500 --out runs/lt   # report.md + plots
    samo-serve plan --target-rps 400 --p95-ms 300 --from runs/lt/results.json --out runs/plan.yaml
    samo-serve k8s render --out k8s/rayservice.yaml              # the RayService of configs/serve-gpu.yaml
    samo-serve log rebuild-rollups                               # analytics rollups from the raw log rows
    samo-serve drift report --api-key KEY                        # each tenant's drift from the reference

A mistake the user can fix (a missing file, an invalid setting, a service that does not answer) ends
in one line on stderr, ``samo-serve: <what is wrong>; <what to do>``; ``-v`` shows its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from samo_serve.ops.cli import drift, k8s, keys, loadtest, log, model, plan, report, run
from samo_serve.ops.cli.errors import describe

__all__ = ["main"]

_GROUPS = (run, model, loadtest, plan, k8s, report, drift, keys, log)  # the order `samo-serve --help` lists them


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samo-serve", description="Emotion detection on Ray Serve")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more, and show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("samo-serve: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `samo-serve report | head`: the reader left; say nothing more to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        line = None if args.verbose else describe(exc)
        if line is None:  # a bug: its traceback is what helps
            raise
        print(f"samo-serve: {line}", file=sys.stderr)
        return int(getattr(exc, "code", 1))
    return code
