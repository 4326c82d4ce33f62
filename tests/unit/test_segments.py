"""Segmentation, emoji naming with offsets back to the original text, and aggregation (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samo_serve.core.emoji_text import demojize, demojize_mapped
from samo_serve.core.segments import AGGREGATIONS, Segment, aggregate, has_content, plan_text, split_text
from samo_serve.core.tokenizer import TextTokenizer

ENTRY = (
    "I went to work today. Dr. Smith was late again, e.g. by an hour! It made me so angry... "
    "Then my sister called.\nI cried. Thank you, J. K., for everything."
)


def texts(text: str, segments: list[Segment]) -> list[str]:
    return [text[s.start : s.end] for s in segments]


# ------------------------------------------------------------------------------------------ sentences


def test_a_text_that_fits_is_one_segment_the_whole_text(tokenizer: TextTokenizer) -> None:
    for text in ("I am happy", "  padded, with spaces  ", "Two. Sentences that fit!", "한국어 텍스트"):
        assert split_text(text, tokenizer) == [Segment(0, len(text))]


def test_sentences_keep_abbreviations_initials_and_line_breaks(tokenizer: TextTokenizer) -> None:
    entry = (ENTRY + " ") * 2
    assert not tokenizer.fits(entry)
    got = texts(entry, split_text(entry, tokenizer))
    assert got[:6] == [
        "I went to work today.",
        "Dr. Smith was late again, e.g. by an hour!",
        "It made me so angry...",
        "Then my sister called.",
        "I cried.",
        "Thank you, J. K., for everything.",
    ]
    assert got[6:] == got[:6]


def test_did_i_and_said_no_end_sentences(tokenizer: TextTokenizer) -> None:
    text = "Nobody believed it, but neither did I. " * 8 + "I said no. Then I left and never looked back at all."
    got = texts(text, split_text(text, tokenizer))
    assert got[0] == "Nobody believed it, but neither did I."
    assert got[-2:] == ["I said no.", "Then I left and never looked back at all."]


def test_punctuation_only_sentences_are_dropped(tokenizer: TextTokenizer) -> None:
    text = "This is a fairly long sentence about my day at the office. !!! ... " * 6
    got = texts(text, split_text(text, tokenizer))
    assert got == ["This is a fairly long sentence about my day at the office."] * 6


def test_a_sentence_longer_than_the_window_becomes_overlapping_windows(tokenizer: TextTokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(400))  # no sentence boundary at all
    segments = split_text(text, tokenizer)
    assert len(segments) > 3
    assert segments[0].start == 0
    assert segments[-1].end == len(text)  # read to its end
    for a, b in zip(segments, segments[1:], strict=False):
        assert b.start < a.end  # overlap: a phrase cut at one edge is whole in the neighbour
        assert b.start > a.start
    for piece in texts(text, segments):
        assert tokenizer.fits(piece)
        assert piece == piece.strip()
        assert piece.split()[0].startswith("word")  # cut between words


def test_fifty_thousand_characters_without_a_boundary_are_windowed(tokenizer: TextTokenizer) -> None:
    text = ("lorem ipsum dolor sit amet " * 2000)[:50_000]
    segments = split_text(text, tokenizer)
    assert segments[-1].end == len(text.rstrip())
    assert all(tokenizer.fits(p) for p in texts(text, segments))


def test_one_word_longer_than_the_window_is_cut_inside_and_fits(tokenizer: TextTokenizer) -> None:
    word = "-".join("ab" for _ in range(200))  # punctuation splits it into 399 tokens, no whitespace
    segments = split_text(word, tokenizer)
    assert len(segments) > 1
    assert segments[-1].end == len(word)
    assert all(tokenizer.fits(p) for p in texts(word, segments))


def test_max_segments_stops_the_split(tokenizer: TextTokenizer) -> None:
    text = "I am sad today. " * 50
    assert len(split_text(text, tokenizer)) == 50
    assert len(split_text(text, tokenizer, max_segments=7)) == 7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        (" \t\n", False),
        ("?!...", False),
        ("\u200b\u00a0", False),
        ("a", True),
        ("😡", True),
        (":((", True),
        ("(:)", True),
        (";-)", True),
        ("... :/", True),
        (": (", False),
        ("(...)", False),
        ("::", False),
    ],
    ids=[
        "empty",
        "whitespace",
        "punctuation",
        "format-and-nbsp",
        "letter",
        "emoji",
        "sad-emoticon",
        "smile-backwards",
        "wink-with-nose",
        "emoticon-after-dots",
        "spaced-colon-paren",
        "parenthesised-dots",
        "colons",
    ],
)
def test_has_content(text: str, expected: bool) -> None:
    assert has_content(text) is expected


# ------------------------------------------------------------------------------ hostile Unicode, offsets

HOSTILE = [
    "😡😡😡 I am so angry at him! 👨‍👩‍👧 family time was ruined. 🙏🏽 thanks anyway.",
    "مرحبا بالعالم. أنا سعيد جدا اليوم! هذا نص طويل باللغة العربية مع جمل كثيرة.",
    "e\u0301cole, cafe\u0301 et re\u0301sume\u0301. " * 8,
    "\u202eThis is reversed. \u202c日本語の文です。次の文！ 한국어 문장입니다. Mixed scripts: Ελληνικά. ",
    "Keycaps 1️⃣ 2️⃣ and flags 🇫🇷🇯🇵. Zero\u200bwidth joiners\u200d here. " * 4,
]


def _as_read(text: str, name_emoji: bool) -> str:
    return demojize(text) if name_emoji else text


@pytest.mark.parametrize("name_emoji", [True, False], ids=["named", "as-is"])
@pytest.mark.parametrize("text", HOSTILE, ids=["emoji", "arabic", "combining", "rtl-cjk-mixed", "keycaps-flags"])
def test_offsets_slice_the_original_text(tokenizer: TextTokenizer, text: str, name_emoji: bool) -> None:
    text = (text + " ") * 6  # past the window either way (an emoji is one [UNK] token when not named)
    plan = plan_text(text, tokenizer, max_segments=1000, name_emoji=name_emoji)
    assert plan.spans is not None
    for span, read in zip(plan.spans, plan.texts, strict=True):
        piece = text[span.start : span.end]
        assert piece
        assert piece == piece.strip()
        assert _as_read(piece, name_emoji).strip() == read.strip()  # the model read exactly that piece
        assert tokenizer.fits(read)


alphabet = st.sampled_from(
    list("ab .!?\n") + ["😡", "👍🏽", "🇫🇷", "é", "e\u0301", "مر", "日本", "한", "\u202e", "\u200d", "…", "1️⃣"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(alphabet, min_size=1, max_size=300).map("".join), st.booleans())
def test_offsets_property(tokenizer: TextTokenizer, text: str, name_emoji: bool) -> None:
    plan = plan_text(text, tokenizer, max_segments=10_000, name_emoji=name_emoji)
    if plan.spans is None:
        assert plan.texts == [_as_read(text, name_emoji)]
        return
    previous = -1
    for span, read in zip(plan.spans, plan.texts, strict=True):
        assert 0 <= span.start < span.end <= len(text)
        assert span.start > previous  # in order
        previous = span.start
        assert _as_read(text[span.start : span.end], name_emoji).strip() == read.strip()
        assert tokenizer.fits(read)


# ------------------------------------------------------------------------------------------------ emoji


def test_demojize_names_emoji_and_leaves_other_text_alone() -> None:
    plain = "no emoji here, only café’s “quotes” — and digits 123"
    assert demojize(plain) is plain
    assert demojize("😡😡😡").split() == ["enraged", "face"] * 3
    named = demojize_mapped("so mad 😡 and 👍🏽 ok")
    assert "enraged face" in named.text
    assert "thumbs up medium skin tone" in named.text
    start = named.text.index("enraged")
    assert named.original(start, start + len("enraged face")) == (7, 8)  # the emoji, whole
    end = named.text.index(" ok") + 3
    assert named.original(0, end) == (0, len("so mad 😡 and 👍🏽 ok"))


def test_emoji_change_the_cache_text_only_where_there_are_emoji(tokenizer: TextTokenizer) -> None:
    assert plan_text("I love it", tokenizer, 10, name_emoji=True).texts == ["I love it"]
    assert plan_text("I love it 😍", tokenizer, 10, name_emoji=True).texts[0].split()[-1] == "heart-eyes"
    assert plan_text("I love it 😍", tokenizer, 10).texts == ["I love it 😍"]  # off by default (docs/MODEL.md)


# ------------------------------------------------------------------------------------------ aggregation


def test_every_aggregation_returns_one_segment_unchanged() -> None:
    row = np.array([[0.1, 0.9, 0.5]], dtype=np.float32)
    for method in AGGREGATIONS:
        np.testing.assert_array_equal(aggregate(row, np.array([10]), method), row[0])


def test_aggregations_on_two_segments() -> None:
    scores = np.array([[0.2, 0.8], [0.6, 0.0]], dtype=np.float32)
    lengths = np.array([30, 10])
    expected = {
        "max": [0.6, 0.8],
        "mean": [0.4, 0.4],
        "length_mean": [(0.2 * 30 + 0.6 * 10) / 40, 0.8 * 30 / 40],
        "top2_mean": [0.4, 0.4],
        "noisy_or": [1 - 0.8 * 0.4, 0.8],
    }
    assert set(expected) == set(AGGREGATIONS)
    for method, want in expected.items():
        got = aggregate(scores, lengths, method)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=method)


def test_top2_mean_ignores_all_but_the_two_strongest() -> None:
    scores = np.array([[0.9], [0.1], [0.7], [0.0]], dtype=np.float32)
    np.testing.assert_allclose(aggregate(scores, np.ones(4), "top2_mean"), [0.8], rtol=1e-6)


@pytest.mark.parametrize(
    ("scores", "lengths", "method", "match"),
    [
        (np.zeros((2, 3)), np.ones(2), "median", "unknown aggregation"),
        (np.zeros((0, 3)), np.ones(0), "max", "n >= 1"),
        (np.zeros((2, 3)), np.ones(3), "max", "n >= 1"),
    ],
    ids=["unknown-method", "no-segments", "lengths-mismatch"],
)
def test_aggregate_refuses(scores: np.ndarray, lengths: np.ndarray, method: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        aggregate(scores, lengths, method)
