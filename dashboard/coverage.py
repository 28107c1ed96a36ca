"""The Coverage page's pure parts: where an n-gram occurs in a caption (by the matching rule, so the page
highlights exactly what an entry would match), the table's filters, and what a selection of n-grams is
known to cover. No Streamlit, no files."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curation.matching import SPACED_CONTROLS, WRAPPED_PUNCTUATION
from curation.worldwide import entry_key, is_cjk_or_similar

_INSERTED = -1  # a space the spacing added: no character of the caption


def spaced_with_origin(caption: str, worldwide: bool = False) -> tuple[str, list[int]]:
    """The caption spaced as matching spaces it (docs/design.md, "Matching": padded, the wrapped
    punctuation in spaces, tab, newline and carriage return as spaces; a worldwide run strips it first),
    and for every character of the result the index of the caption's character it came from
    (_INSERTED for the spaces the rule added)."""
    start = 0
    if worldwide:  # MetaCLIP 2 strips the caption (str.strip) before spacing it
        stripped = caption.strip()
        start = caption.find(stripped) if stripped else len(caption)
        caption = stripped
    spaced, origin = [" "], [_INSERTED]
    for index, char in enumerate(caption, start):
        if char in WRAPPED_PUNCTUATION:
            spaced += [" ", char, " "]
            origin += [_INSERTED, index, _INSERTED]
        else:
            spaced.append(" " if char in SPACED_CONTROLS else char)
            origin.append(index)
    spaced.append(" ")
    origin.append(_INSERTED)
    return "".join(spaced), origin


def occurrences(caption: str | None, ngram: str, worldwide: bool = False) -> list[tuple[int, int]]:
    """Every place the n-gram occurs in the caption as an entry would match it, as [start, end) spans
    of the caption's characters, in order (overlapping ones included). "dog" occurs in "dog," and
    "dog." but not in "hotdog" or "dog-friendly"; matching is case-sensitive."""
    if not caption or not ngram:
        return []
    key = entry_key(ngram) if worldwide else f" {ngram} "
    left = 0 if worldwide and is_cjk_or_similar(ngram[0]) else 1  # the key's leading space, if it has one
    spaced, origin = spaced_with_origin(caption, worldwide)
    spans = []
    found = spaced.find(key)
    while found >= 0:
        inner = [i for i in origin[found + left : found + left + len(ngram)] if i != _INSERTED]
        if inner:
            spans.append((min(inner), max(inner) + 1))
        found = spaced.find(key, found + 1)
    return spans


def merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans sorted, with overlapping ones joined (adjacent ones stay apart)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def highlight(caption: str | None, ngram: str, worldwide: bool = False) -> str:
    """The caption as HTML (escaped) with each occurrence of the n-gram in <mark>: what the page shows
    of an example, so the reader sees the very words an entry would match."""
    caption = caption or ""
    pieces, at = [], 0
    for start, end in merged(occurrences(caption, ngram, worldwide)):
        pieces += [html.escape(caption[at:start]), "<mark>", html.escape(caption[start:end]), "</mark>"]
        at = end
    pieces.append(html.escape(caption[at:]))
    return "".join(pieces)


def filter_rows(table: pd.DataFrame, search: str, sizes: Sequence[int] = ()) -> pd.DataFrame:
    """The rows whose n-gram holds ``search`` (a substring, any case) and whose number of words is
    one of ``sizes`` (all when empty)."""
    keep = np.ones(len(table), dtype=bool)
    if search:
        keep &= table["ngram"].str.lower().str.contains(search.lower(), regex=False).to_numpy(dtype=bool)
    if len(sizes):
        keep &= table["words"].isin(list(sizes)).to_numpy(dtype=bool)
    return table[keep]


@dataclass(frozen=True)
class Covered:
    """How many unmatched pairs a set of n-grams would match: exact, or bounds."""

    low: int
    high: int

    @property
    def exact(self) -> bool:
        return self.low == self.high


def selection_covers(ranks: Sequence[int], unmatched: np.ndarray, covered: np.ndarray) -> Covered:
    """What the n-grams of these ranks (1-based) would match together among the unmatched pairs, from
    the file alone, which holds per n-gram its unmatched pairs and per rank the pairs the top k cover,
    but no per-pair sets. Exactly ``covered[k]`` for the top k. Otherwise bounds: at least the largest
    n-gram's own and at most their sum; and, the selection lying within the top K (K its last rank),
    at most what the top K cover and at least that less the unmatched pairs of the top K's unselected
    n-grams. Both bounds meet for a top-k selection."""
    chosen = np.unique(np.asarray(ranks, dtype=np.int64))
    if len(chosen) == 0:
        return Covered(0, 0)
    own = unmatched[chosen - 1]
    top = int(chosen[-1])
    within = int(covered[top - 1])
    left_out = int(unmatched[:top].sum() - own.sum())
    low = max(int(own.max()), within - left_out)
    high = min(int(own.sum()), within)
    return Covered(low, max(low, high))
