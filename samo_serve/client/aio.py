"""The asyncio client: the same methods as :class:`samo_serve.client.Client`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from samo_serve.client._base import (
    DEFAULT_URL,
    Retry,
    batch_items,
    chunked,
    client_headers,
    entry_fields,
    max_batch_from_openapi,
    options,
    readiness,
    time_range,
    transport_error,
)
from samo_serve.client.errors import SamoClientError, error_from_response
from samo_serve.client.types import (
    EmotionCount,
    JournalEntry,
    Label,
    Prediction,
    Readiness,
    Summary,
    TimelineBucket,
    UserSummary,
)

__all__ = ["AsyncClient"]


class AsyncClient:
    """samo-serve from asyncio: ``await AsyncClient("http://127.0.0.1:8000").predict("thank you!")``.

    Args:
        base_url: where ``samo-serve run`` listens.
        api_key: sent as ``X-API-Key`` when the server has keys (``samo-serve keys create``).
        timeout: seconds for each of connect, read, write (or an ``httpx.Timeout``).
        retry: when to try again on 429, 503 and failed connections (:class:`Retry`).
        max_batch_texts: texts per ``/predict/batch`` call; None learns the server's limit from its
            OpenAPI spec on the first :meth:`predict_batch`.
        transport: an ``httpx`` transport (tests pass ``httpx.MockTransport``).
        headers: extra headers for every request.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: Retry | None = None,
        max_batch_texts: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry = retry or Retry()
        self._max_batch_texts = max_batch_texts
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=client_headers(api_key, headers), transport=transport
        )

    async def predict(
        self,
        text: str,
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        all_scores: bool = False,
        segments: bool = False,
        user_id: str | None = None,
        occurred_at: datetime | str | None = None,
        entry_id: str | None = None,
    ) -> Prediction:
        """The emotions of one text (``POST /predict``).

        A text longer than the model's window is read as a document, sentence by sentence: its answer
        has ``segment_count``, ``ekman`` and ``sentiment``; ``segments=True`` also returns each
        :class:`Segment` (for any text, one that fits being one segment). ``user_id`` and ``occurred_at``
        record whose text it is and when it was written (the person's analytics read them back);
        ``entry_id`` names the journal entry: sent again, it replaces the entry (an edit).
        """
        body = {"text": text, **options(threshold, top_k, all_scores, segments)}
        body.update(entry_fields(user_id, occurred_at, entry_id))
        return Prediction.from_json(await self._call("POST", "/predict", json=body))

    async def predict_batch(
        self,
        texts: Iterable[str | JournalEntry],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        all_scores: bool = False,
        segments: bool = False,
        user_id: str | None = None,
        occurred_at: datetime | str | None = None,
    ) -> list[Prediction]:
        """The emotions of each text, in order; any number of texts, sent ``max_batch_texts`` at a time.

        Chunks go one after another (each counts against a rate limit by its texts); an error in one
        raises, and the chunks before it are not returned. ``segments`` as in :meth:`predict`. A
        :class:`JournalEntry` carries its own person, time and entry id; ``user_id`` / ``occurred_at``
        apply to the texts that give none (a journal import: ``JournalEntry(text, entry_id=..., occurred_at=...)``
        with the person's ``user_id``).
        """
        items = batch_items(list(texts))
        if not items:
            return []
        asked = {**options(threshold, top_k, all_scores, segments), **entry_fields(user_id, occurred_at)}
        out: list[Prediction] = []
        for chunk in chunked(items, await self.max_batch_texts()):
            data = await self._call("POST", "/predict/batch", json={"texts": chunk, **asked})
            out.extend(Prediction.from_json(r) for r in data["results"])
        return out

    async def emotions(self) -> list[Label]:
        """The label set with Ekman and sentiment groups and tuned thresholds (``GET /emotions``)."""
        return [Label.from_json(e) for e in (await self._call("GET", "/emotions"))["emotions"]]

    async def analytics_summary(
        self, start: datetime | str | None = None, end: datetime | str | None = None
    ) -> Summary:
        """Requests, texts, cache hit rate and processing-time percentiles in [start, end) (default: 24 h)."""
        return Summary.from_json(await self._call("GET", "/analytics/summary", params=time_range(start, end)))

    async def analytics_emotions(
        self, start: datetime | str | None = None, end: datetime | str | None = None
    ) -> list[EmotionCount]:
        """Texts per primary emotion in [start, end) (default: the last 24 h), most frequent first."""
        data = await self._call("GET", "/analytics/emotions", params=time_range(start, end))
        return [EmotionCount.from_json(row) for row in data["emotions"]]

    async def user_summary(
        self, user_id: str, start: datetime | str | None = None, end: datetime | str | None = None
    ) -> UserSummary:
        """A person's texts and emotion mix over [start, end) (default: the last 24 h)."""
        path = f"/analytics/users/{quote(user_id, safe='')}/summary"
        return UserSummary.from_json(await self._call("GET", path, params=time_range(start, end)))

    async def user_timeline(
        self,
        user_id: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        bucket: str = "day",
    ) -> list[TimelineBucket]:
        """A person's emotions per ``bucket`` (``hour``, ``day``, ``week``) of [start, end), UTC."""
        path = f"/analytics/users/{quote(user_id, safe='')}/timeline"
        data = await self._call("GET", path, params={**time_range(start, end), "bucket": bucket})
        return [TimelineBucket.from_json(b) for b in data["buckets"]]

    async def delete_user(self, user_id: str) -> int:
        """Erase a person's rows and all kept from them (``DELETE /users/{user_id}``); rows deleted."""
        data = await self._call("DELETE", f"/users/{quote(user_id, safe='')}")
        return int(data["deleted"])

    async def delete_entry(self, user_id: str, entry_id: str) -> int:
        """Erase one journal entry of a person; rows deleted (0: no such entry)."""
        data = await self._call("DELETE", f"/users/{quote(user_id, safe='')}/entries/{quote(entry_id, safe='')}")
        return int(data["deleted"])

    async def ready(self) -> Readiness:
        """``GET /readyz`` once, no retries: a 503 (model not answering) is ``ready=False``, not an error."""
        return readiness(await self._send("GET", "/readyz"))

    async def max_batch_texts(self) -> int:
        """The server's ``limits.max_batch_texts`` (asked once), or the value given to the constructor."""
        if self._max_batch_texts is None:
            self._max_batch_texts = max_batch_from_openapi(await self._call("GET", "/openapi.json"))
        return self._max_batch_texts

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a 2xx answer, retried per :attr:`retry`; raises the last error."""
        attempt = 1
        while True:
            try:
                response = await self._send(method, path, **kwargs)
                if response.is_success:
                    return response.json()
                error: SamoClientError = error_from_response(response.status_code, response.content, response.headers)
            except SamoClientError as exc:
                error = exc
            delay = self.retry.delay(attempt, error)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
