"""``samo-serve k8s render``: the KubeRay RayService manifest, its serveConfigV2 made from a Serve config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from samo_serve.ops.cli.common import config_path, read_serve_config
from samo_serve.ops.cli.errors import user_file
from samo_serve.ops.serve_config import GPU_CONFIG

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    k8s = sub.add_parser("k8s", help="Kubernetes (KubeRay) manifests")
    k8s_sub = k8s.add_subparsers(dest="k8s_command", required=True)
    render = k8s_sub.add_parser("render", help="the RayService manifest, serveConfigV2 from a Serve config")
    render.add_argument("--config", default=None, help=f"a Serve config (default: the shipped {GPU_CONFIG.name})")
    render.add_argument("--image", default=None, help="default: samo-serve:<version>-ray<pinned Ray>")
    render.add_argument("--out", default=None, help="write here instead of stdout (k8s/rayservice.yaml)")
    render.set_defaults(func=_render)


def _render(args: argparse.Namespace) -> int:
    from samo_serve.ops.k8s import render_file

    path = config_path(args.config, GPU_CONFIG)
    read_serve_config(path)  # a missing or broken file is a one-line error
    # The manifest's header names its source as a checkout does: the shipped file lives in site-packages.
    text = render_file(path, args.image, source=args.config or f"configs/{GPU_CONFIG.name}")
    if args.out:
        with user_file(Path(args.out), "output file", "pass --out with a path in a folder you can write"):
            Path(args.out).write_text(text, encoding="utf-8")
        print(f"written {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0
