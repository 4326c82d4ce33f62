"""The one parser of the times callers send (``occurred_at``, analytics ``start``/``end``): ISO-8601, UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["EARLIEST", "LATEST", "parse_utc", "utc_iso"]

#: the times accepted, in UTC: wide enough for any journal, narrow enough that a bucket (a week, a day
#: either side, a zone's offset) never leaves what ``datetime`` and the databases hold
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def parse_utc(value: str) -> datetime:
    """An aware UTC time from ISO-8601 text (no zone = UTC; ``Z`` allowed).

    Raises:
        ValueError: not ISO-8601, or outside [EARLIEST, LATEST) (its message says which, for a 422).
    """
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an ISO-8601 time, e.g. 2026-03-01T08:30:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    outside = ValueError(f"outside the times accepted ({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC)")
    if not EARLIEST <= moment < LATEST:  # compared before converting: 0001-01-01T00:00+01:00 has no UTC datetime
        raise outside
    return moment.astimezone(UTC)


def utc_iso(moment: datetime) -> str:
    """A time as every analytics answer writes it: ISO-8601 in UTC with ``Z`` (``2026-03-01T00:00:00Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
