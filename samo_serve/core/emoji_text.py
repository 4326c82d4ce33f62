"""Emoji -> their names before tokenization: the tokenizer maps most emoji to ``[UNK]``.

``😡😡😡`` reads as ``enraged face enraged face enraged face``: words the model knows. The names come from
the ``emoji`` package (Unicode's CLDR short names). Cache keys are taken of the text the model reads, and
offsets found in it map back to the original text through :meth:`Demojized.original`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property

import emoji

__all__ = ["Demojized", "demojize", "demojize_mapped"]


# Every emoji starts with one of these characters (ASCII keycap bases such as "1" need U+FE0F or
# U+20E3 after them): ``isdisjoint`` answers "no emoji here" in ~2 us for a non-ASCII sentence (a regex
# class of the same characters took ~20 us)
_FIRST_CHARS = frozenset(e[0] for e in emoji.EMOJI_DATA if not e[0].isascii()) | {"\ufe0f", "\u20e3"}


@dataclass(frozen=True)
class Demojized:
    """``text`` (what the model reads) and the emoji replaced in ``source`` to make it."""

    source: str
    text: str
    #: per replaced emoji: (start in text, end in text, start in source, end in source), in order
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``source`` that ``text[start:end]`` came from (a cut emoji name widens to the emoji)."""
        return self._map(start, at_end=False), self._map(end, at_end=True)

    def _map(self, pos: int, at_end: bool) -> int:
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return pos
        new_start, new_end, old_start, old_end = self.spans[i]
        if pos >= new_end:
            return old_end + (pos - new_end)
        if pos == new_start:
            return old_start
        return old_end if at_end else old_start

    @cached_property
    def _starts(self) -> list[int]:
        return [s[0] for s in self.spans]


def demojize(text: str) -> str:
    """``text`` with each emoji replaced by its name; a text with no emoji is returned as is (same object)."""
    return demojize_mapped(text).text


def demojize_mapped(text: str) -> Demojized:
    """:func:`demojize` with the map from the new text's offsets back to ``text``'s."""
    if text.isascii() or _FIRST_CHARS.isdisjoint(text):
        return Demojized(text, text)
    found = emoji.emoji_list(text)
    if not found:
        return Demojized(text, text)
    parts: list[str] = []
    spans: list[tuple[int, int, int, int]] = []
    length = last = 0
    for item in found:
        start, end = item["match_start"], item["match_end"]
        parts.append(text[last:start])
        length += start - last
        name = " " + _name(item["emoji"]) + " "
        parts.append(name)
        spans.append((length, length + len(name), start, end))
        length += len(name)
        last = end
    parts.append(text[last:])
    return Demojized(text, "".join(parts), spans)


def _name(e: str) -> str:
    data = emoji.EMOJI_DATA.get(e)
    name = data["en"] if data else emoji.demojize(e)
    return str(name).strip(":").replace("_", " ")
