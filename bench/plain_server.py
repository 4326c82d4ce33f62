"""Benchmark fixture (not product code): the same app in ONE process, uvicorn + ORT + micro-batching.

It serves samo_serve's own FastAPI app and EmotionService over an in-process pipeline with the same
micro-batcher and ORT threads as samo-serve, so the comparison isolates what the Ray Serve split costs.

    python bench/plain_server.py --port 8100
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from samo_serve.core.batching import flatten, unflatten
from samo_serve.core.micro_batcher import MicroBatcher
from samo_serve.core.model_card import load_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import RunnerSettings, Settings
from samo_serve.storage.cache import CachedResult


class MicroBatchPipeline:
    """The same timer-free micro-batcher samo-serve's ingress uses, over the in-process pipeline."""

    def __init__(self, inner: LocalPipeline, max_texts: int = 64) -> None:
        self._inner = inner
        self._batcher: MicroBatcher[list[str], list[CachedResult]] = MicroBatcher(self._run, max_texts)

    async def _run(self, calls: list[list[str]]) -> list[list[CachedResult]]:
        texts, sizes = flatten(calls)
        return unflatten(await asyncio.to_thread(self._inner.classify_sync, texts), sizes)

    async def classify(self, texts: list[str]) -> list[CachedResult]:
        return await self._batcher.submit(texts)

    async def model_info(self) -> dict[str, object]:
        return await self._inner.model_info()


def build(threads: int) -> object:
    settings = Settings()
    card = load_card(settings.model_dir)
    tokenizer = TextTokenizer.for_card(card, settings.model_dir)
    runner = OrtModelRunner.for_card(card, settings.model_dir, RunnerSettings(device="cpu", intra_op_threads=threads))
    pipeline = MicroBatchPipeline(LocalPipeline(tokenizer, runner))
    return create_app(settings, EmotionService(card, pipeline, settings))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (samo-serve's default)")
    args = parser.parse_args()
    uvicorn.run(build(args.threads), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
