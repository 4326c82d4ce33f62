"""Benchmark fixture (not product code): the same app in ONE process, uvicorn + ORT + micro-batching.

It serves samo_serve's own FastAPI app and EmotionService over an in-process pipeline with an asyncio
micro-batcher, so the comparison with samo-serve isolates what the Ray Serve split costs.

    python bench/plain_server.py --port 8100
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from samo_serve.api import create_app
from samo_serve.cache import CachedResult
from samo_serve.model_card import load_card
from samo_serve.model_runner import OrtModelRunner
from samo_serve.pipeline import LocalPipeline
from samo_serve.service import EmotionService
from samo_serve.settings import RunnerSettings, Settings
from samo_serve.tokenizer import TextTokenizer


class MicroBatchPipeline:
    """Gathers concurrent classify() calls for up to ``wait_s`` or ``max_texts`` and runs them at once."""

    def __init__(self, inner: LocalPipeline, max_texts: int = 64, wait_s: float = 0.003) -> None:
        self._inner = inner
        self._max_texts = max_texts
        self._wait_s = wait_s
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future[list[CachedResult]]]] | None = None

    async def _loop(self) -> None:
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            count = len(items[0][0])
            deadline = asyncio.get_running_loop().time() + self._wait_s
            while count < self._max_texts:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                items.append(item)
                count += len(item[0])
            texts = [t for texts, _ in items for t in texts]
            try:
                results = await asyncio.to_thread(self._inner.classify_sync, texts)
            except Exception as exc:  # hand the failure to every waiting caller
                for _, fut in items:
                    fut.set_exception(exc)
                continue
            start = 0
            for texts_i, fut in items:
                fut.set_result(results[start : start + len(texts_i)])
                start += len(texts_i)

    async def classify(self, texts: list[str]) -> list[CachedResult]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._loop())
        fut: asyncio.Future[list[CachedResult]] = asyncio.get_running_loop().create_future()
        await self._queue.put((texts, fut))
        return await fut

    async def model_info(self) -> dict[str, object]:
        return await self._inner.model_info()


def build(threads: int) -> object:
    settings = Settings()
    card = load_card(settings.model_dir)
    tokenizer = TextTokenizer(settings.model_dir / card.tokenizer_file, card.max_length)
    runner = OrtModelRunner(
        settings.model_dir / card.onnx_file,
        card.activation,
        RunnerSettings(device="cpu", intra_op_threads=threads),
    )
    pipeline = MicroBatchPipeline(LocalPipeline(tokenizer, runner))
    return create_app(settings, EmotionService(card, pipeline, settings))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    args = parser.parse_args()
    uvicorn.run(build(args.threads), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
