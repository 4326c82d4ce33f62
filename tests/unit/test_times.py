"""The one parser of caller times: ISO-8601 to aware UTC, everything outside the accepted range a ValueError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samo_serve.core.times import EARLIEST, LATEST, parse_utc

OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@given(moment=st.datetimes(), zone=st.none() | OFFSETS, sep=st.sampled_from(["T", " "]))
def test_any_iso_time_parses_to_utc_inside_the_range_or_is_a_value_error(
    moment: datetime, zone: timezone | None, sep: str
) -> None:
    text = moment.replace(tzinfo=zone).isoformat(sep=sep)
    try:
        got = parse_utc(text)
    except ValueError:
        naive_utc = moment if zone is None else moment - zone.utcoffset(None)  # type: ignore[operator]
        assert not EARLIEST.replace(tzinfo=None) <= naive_utc < LATEST.replace(tzinfo=None)
    else:
        assert got.tzinfo == UTC
        assert EARLIEST <= got < LATEST
        assert got == moment.replace(tzinfo=zone or UTC)


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_value_error(text: str) -> None:
    try:
        got = parse_utc(text)
    except ValueError:
        return
    assert got.tzinfo == UTC
    assert EARLIEST <= got < LATEST


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T08:30:00Z", datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ("2026-03-01T08:30:00z", datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        (" 2026-03-01 09:30+01:00 ", datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),  # no zone: UTC
        ("1900-01-01T00:00:00Z", EARLIEST),
    ],
)
def test_examples(text: str, expected: datetime) -> None:
    assert parse_utc(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "ISO-8601"),
        ("z", "ISO-8601"),
        ("yesterday", "ISO-8601"),
        ("0001-01-01T00:00:00+01:00", "outside"),
        ("9999-12-31T23:59:59-01:00", "outside"),
        ("1899-12-31T23:59:59Z", "outside"),
    ],
)
def test_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_utc(text)
