"""The load generator: closed loop (fixed concurrency) or open loop (fixed arrival rate), bounded.

The one Python request loop of the project: ``samo-serve loadtest``, the bench scripts and the fault
drills (testkit.drills) all send their load through :func:`run_level`.

Closed loops hide overload (clients wait instead of arriving), so ``rate`` runs an open loop: requests
start on a Poisson schedule whatever the server does, and latency counts from the scheduled start.
Every outcome is recorded, one per request sent (an HTTP status, or the transport error's class name),
so a drill can count what was lost; nothing a server or network does raises out of here.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["LevelResult", "LoadSpec", "OnDone", "TextPicker", "run_level"]

#: Awaited after each response with the number of requests done so far: where a drill injects its fault.
OnDone = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class LoadSpec:
    url: str
    concurrency: int = 8  # closed loop: clients; open loop: most requests in flight
    rate: float | None = None  # open loop: requests per second
    requests: int | None = None
    duration_s: float | None = None  # no request starts after this many seconds
    batch: int = 1  # > 1: POST /predict/batch with this many texts
    api_key: str | None = None
    timeout_s: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with every request


@dataclass
class LevelResult:
    spec: LoadSpec
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "429", …, or an error class name
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def succeeded(self) -> int:
        return self.statuses.get("200", 0)


class TextPicker:
    """Fresh texts from the corpus in order, with a share of repeats of texts already sent (cache hits).

    ``unique`` tags and numbers every fresh text (``text #3f9a1c-7``; the tag is this picker's own), so no
    request repeats one sent before, in this run or an earlier one against the same server's caches: load
    that reaches the model, however long it runs.
    """

    def __init__(self, corpus: list[str], repeat_ratio: float, seed: int = 0, unique: bool = False) -> None:
        if not 0.0 <= repeat_ratio <= 1.0:
            raise ValueError("repeat_ratio must be in [0, 1]")
        if not corpus:
            raise ValueError("the corpus is empty")
        self.corpus = corpus
        self.repeat_ratio = repeat_ratio
        self.unique = unique
        self._tag = uuid.uuid4().hex[:6]
        self._rng = random.Random(seed)
        self._next = 0
        self._sent: list[str] = []

    def __call__(self) -> str:
        if self._sent and self._rng.random() < self.repeat_ratio:
            return self._rng.choice(self._sent)
        text = self.corpus[self._next % len(self.corpus)]
        if self.unique:
            text = f"{text} #{self._tag}-{self._next}"
        elif self._next >= len(self.corpus):  # the corpus ran out: make it new again
            text = f"{text} ({self._next // len(self.corpus)})"
        self._next += 1
        if self.repeat_ratio:  # only repeats need the history (a long drill would keep millions)
            self._sent.append(text)
        return text


async def _one(client: httpx.AsyncClient, spec: LoadSpec, pick: Callable[[], str]) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        if spec.batch > 1:
            r = await client.post("/predict/batch", json={"texts": [pick() for _ in range(spec.batch)]})
        else:
            r = await client.post("/predict", json={"text": pick()})
        return str(r.status_code), time.perf_counter() - started
    except httpx.HTTPError as exc:  # timeouts, refused or dropped connections
        return type(exc).__name__, time.perf_counter() - started


async def run_level(
    spec: LoadSpec,
    pick: Callable[[], str],
    on_done: OnDone | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LevelResult:
    """One load level, bounded by ``spec.requests`` and/or ``spec.duration_s`` (at least one is required).

    ``transport``: httpx's, for an in-process app (default: the network).
    """
    if spec.requests is None and spec.duration_s is None:
        raise ValueError("bound the run: give requests or duration_s")
    result = LevelResult(spec)
    headers = {**spec.headers, **({"X-API-Key": spec.api_key} if spec.api_key else {})}
    limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
    deadline = time.perf_counter() + spec.duration_s if spec.duration_s is not None else float("inf")
    budget = spec.requests if spec.requests is not None else 10**12

    async def record(status: str, latency: float) -> None:
        result.statuses[status] += 1
        if status == "200":
            result.latencies_s.append(latency)
        if on_done is not None:
            await on_done(result.sent)

    started = time.perf_counter()
    client = httpx.AsyncClient(
        base_url=spec.url, headers=headers, timeout=spec.timeout_s, limits=limits, transport=transport
    )
    async with client:
        if spec.rate is None:
            issued = 0

            async def worker() -> None:
                nonlocal issued
                while issued < budget and time.perf_counter() < deadline:
                    issued += 1
                    await record(*await _one(client, spec, pick))

            await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        else:
            slots = asyncio.Semaphore(spec.concurrency)
            rng = random.Random(1)
            tasks = []
            next_at = time.perf_counter()

            async def scheduled(at: float) -> None:
                async with slots:
                    status, _ = await _one(client, spec, pick)
                await record(status, time.perf_counter() - at)  # from the arrival: queueing included

            for _ in range(budget):
                next_at += rng.expovariate(spec.rate)
                if next_at > deadline:
                    break
                if (delay := next_at - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(scheduled(next_at)))
            await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - started
    return result
