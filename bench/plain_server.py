"""Benchmark fixture (not product code): the same app in ONE process, uvicorn + ORT + micro-batching.

It serves samo_serve's own FastAPI app and EmotionService over the same pipeline as samo-serve's ingress
(samo_serve.core.pipeline: micro-batching, in-process tokenization) with the model in this process and the
same ORT threads, so the comparison isolates what the Ray Serve split costs.

    python bench/plain_server.py --port 8100
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from samo_serve.core.model_card import load_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.http.app import create_app
from samo_serve.observability.metrics import PrometheusFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService
from samo_serve.settings import RunnerSettings, Settings


def build(threads: int) -> FastAPI:
    settings = Settings()
    card = load_card(settings.model_dir)
    tokenizer = TextTokenizer.for_card(card, settings.model_dir)
    runner = OrtModelRunner.for_card(card, settings.model_dir, RunnerSettings(device="cpu", intra_op_threads=threads))
    # The ingress's micro-batching (settings.batching) over the model in this process.
    pipeline = LocalPipeline(tokenizer, runner, settings.batching)
    # The same telemetry work per request as the ingress (texts per cache level, metrics).
    telemetry = Telemetry.from_settings(settings, PrometheusFactory())
    return create_app(settings, EmotionService(card, pipeline, settings, telemetry=telemetry))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (samo-serve's default)")
    args = parser.parse_args()
    uvicorn.run(build(args.threads), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
