"""What one prediction request is, as every route hands it to the service (samo_serve.service): the
texts and options, who asked, and each text's own person, time and journal entry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from samo_serve.core.postprocess import PredictOptions

__all__ = ["Charge", "PredictCall", "RequestContext", "TextEntry", "repeated_entry", "who"]

#: takes ``cost`` tokens (segments) from the caller's rate-limit bucket; raises RateLimited when it is empty
Charge = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TextEntry:
    """One text's own person, time and journal entry id, where a batch gives them per text (None: the
    request's)."""

    user_id: str | None = None
    occurred_at: datetime | None = None
    entry_id: str | None = None


@dataclass(frozen=True, slots=True)
class PredictCall:
    """One prediction request as every wire format hands it over: the texts, the caller's options, how
    errors name each text (``text``, ``texts[3]``, ``INPUT[3]``; default: ``text`` or ``texts[i]``), and
    each text's own :class:`TextEntry` where the wire format carries one per text."""

    texts: list[str]
    options: PredictOptions
    fields: Sequence[str] | None = None
    entries: Sequence[TextEntry | None] | None = None

    def field(self, i: int) -> str:
        if self.fields is not None:
            return self.fields[i]
        return "text" if len(self.texts) == 1 else f"texts[{i}]"


@dataclass(frozen=True)
class RequestContext:
    """Who asked: what the request log records besides the prediction."""

    request_id: str = ""
    api_key_id: str | None = None
    #: the key's tenant ("" with no keys configured): its rows, its caches, its users
    tenant_id: str = ""
    #: the person who wrote the texts (the caller's id, unique within the tenant)
    user_id: str | None = None
    #: when the texts were written (None: now)
    occurred_at: datetime | None = None
    #: the journal entry the (one) text is: its row replaces the entry's earlier one
    entry_id: str | None = None


def who(entry: TextEntry | None, context: RequestContext) -> tuple[str | None, datetime | None, str | None]:
    """A text's person, time and entry id: its own where it has them, else the request's. An entry id is
    the request's only without a :class:`TextEntry` (``/predict``'s one text); a text of a batch has its
    own or none."""
    if entry is None:
        return context.user_id, context.occurred_at, context.entry_id
    user_id = entry.user_id if entry.user_id is not None else context.user_id
    occurred_at = entry.occurred_at if entry.occurred_at is not None else context.occurred_at
    return user_id, occurred_at, entry.entry_id


def repeated_entry(entries: Sequence[TextEntry | None]) -> int | None:
    """The index of the first text whose entry id an earlier text of the same request has (None: none):
    which of the two would be the entry? Every route refuses such a request."""
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry is not None and entry.entry_id is not None:
            if entry.entry_id in seen:
                return i
            seen.add(entry.entry_id)
    return None
