"""MetaCLIP 2's worldwide rule (docs/design.md, "Worldwide curation"): every entry and every caption
has a language; a caption is matched against its own language's entries only; t is set per language
so that every language keeps the tail share the reference language keeps at its t.

Differences from MetaCLIP 1, all from MetaCLIP 2's curation scripts:
- the caption is stripped (Python's ``str.strip``) before the usual spacing;
- an entry's key gets a space on a side only when the character at that end is not CJK-like (CJK,
  Thai, Lao, Burmese, Khmer, Tibetan) or punctuation, so a Chinese entry matches anywhere in a
  Chinese caption and ``- stock`` matches inside ``-- stock photo``;
- t per language: p = the reference language's tail share at t (``t_to_p``), and every other
  language's t is its counts, sorted, at the index whose cumulative share is nearest p (``p_to_t``,
  the first such index on ties).

Pure: no I/O, no engine.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache

import ahocorasick
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.matching import SPACED_CONTROLS, match_batch, spacing
from studio_common.errors import CurationError

OTHER = "other"  # the metadata's language for captions whose own language has no entries
# Full-width and CJK punctuation that counts as a word boundary, beside string.punctuation.
EXTRA_PUNCTUATION = frozenset("，。、；：？！“”‘’（）【】《》〈〉「」『』～—")
_PUNCTUATION = frozenset(string.punctuation) | EXTRA_PUNCTUATION
# Code-point ranges written without spaces between words: CJK ideographs, radicals and
# compatibility forms; Thai, Lao, Burmese, Khmer, Tibetan.
NO_SPACE_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2CEB0, 0x2EBEF),
    (0xF900, 0xFAFF),
    (0x2E80, 0x2EFF),
    (0x2F00, 0x2FDF),
    (0x2FF0, 0x2FFF),
    (0x0E00, 0x0E7F),
    (0x0E80, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x0F00, 0x0FFF),
)


def is_cjk_or_similar(char: str) -> bool:
    """Whether an entry may meet its neighbours without a space at this end."""
    point = ord(char)
    return char in _PUNCTUATION or any(low <= point <= high for low, high in NO_SPACE_RANGES)


def entry_key(entry: str) -> str:
    """The string an entry must occur as in a spaced caption."""
    left = "" if is_cjk_or_similar(entry[0]) else " "
    right = "" if is_cjk_or_similar(entry[-1]) else " "
    return f"{left}{entry}{right}"


@lru_cache(maxsize=1)
def python_whitespace() -> str:
    """Every character Python's str.strip removes (its definition of whitespace, which is not Arrow's);
    found once per process, when first needed (a scan of every code point takes some 40 ms)."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def strip(texts: pa.Array) -> pa.Array:
    """``str.strip`` of every text, in Arrow (nulls stay null)."""
    return pc.utf8_trim(pc.cast(texts, pa.string()), characters=python_whitespace())


# --------------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------------


def ids_by_language(languages: Sequence[str]) -> dict[str, list[int]]:
    """Entry ids (rows of the metadata) per language, in row order."""
    grouped: dict[str, list[int]] = {}
    for entry_id, language in enumerate(languages):
        if not language:
            raise CurationError(f"entry {entry_id} of the metadata has no language")
        grouped.setdefault(language, []).append(entry_id)
    return grouped


def languages_of(entries: Sequence[str], languages: Sequence[str]) -> dict[str, list[int]]:
    """Entry ids per language; an entry may repeat across languages, never within one."""
    if len(entries) != len(languages):
        raise CurationError(f"the metadata has {len(entries):,} entries but {len(languages):,} languages")
    grouped = ids_by_language(languages)
    for language, ids in grouped.items():
        seen: dict[str, int] = {}
        for entry_id in ids:
            if entries[entry_id] in seen:
                raise CurationError(
                    f"entry {entries[entry_id]!r} appears twice in language {language!r} "
                    f"(ids {seen[entries[entry_id]]} and {entry_id})"
                )
            seen[entries[entry_id]] = entry_id
    return grouped


def build_automata(entries: Sequence[str], languages: Sequence[str]) -> dict[str, ahocorasick.Automaton]:
    """One automaton per language, keys by ``entry_key``, values the entries' ids in the whole list.

    Entries holding a tab, newline or carriage return are left out (spacing removes them from every
    caption), as are empty ones.
    """
    automata = {}
    for language, ids in languages_of(entries, languages).items():
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for entry_id in ids:
            entry = entries[entry_id]
            if entry and not any(control in entry for control in SPACED_CONTROLS):
                automaton.add_word(entry_key(entry), entry_id)
        if len(automaton):
            automaton.make_automaton()
        automata[language] = automaton
    return automata


def match_language(automata: Mapping[str, ahocorasick.Automaton], language: str | None, text: str | None) -> list[int]:
    """The reference for one caption: ascending unique ids of its language's entries it holds."""
    automaton = automata.get(language) if language is not None else None
    if automaton is None or text is None or automaton.kind != ahocorasick.AHOCORASICK:
        return []
    return sorted({entry_id for _, entry_id in automaton.iter(spacing(text.strip()))})


def match_batch_by_language(
    automata: Mapping[str, ahocorasick.Automaton], texts: pa.Array, languages: pa.Array
) -> pa.ListArray:
    """``list<int32>`` of entry ids per caption, each matched against its own language only (a null
    language, or one without entries, matches nothing). One scan per language present."""
    stripped = strip(texts)
    languages = pc.cast(languages, pa.string())
    n = len(stripped)
    pieces, rows = [], []
    for language in pc.unique(languages.drop_null()).to_pylist():
        automaton = automata.get(language)
        if automaton is None or automaton.kind != ahocorasick.AHOCORASICK:
            continue
        where = pc.indices_nonzero(pc.equal(languages, language))
        pieces.append(match_batch(automaton, stripped.take(where)))
        rows.append(where.to_numpy())
    return _scatter(pieces, rows, n)


def _scatter(pieces: list[pa.ListArray], rows: list[np.ndarray], n: int) -> pa.ListArray:
    """Lists computed for subsets of rows put back in row order; rows in no subset get []."""
    lengths = np.zeros(n, dtype=np.int32)
    for piece, where in zip(pieces, rows):
        lengths[where] = pc.list_value_length(piece).to_numpy(zero_copy_only=False)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.zeros(int(offsets[-1]), dtype=np.int32)
    for piece, where in zip(pieces, rows):
        piece_offsets = piece.offsets.to_numpy()
        piece_values = piece.values.to_numpy()
        owner = np.repeat(np.arange(len(where)), np.diff(piece_offsets))  # each value's row in the piece
        values[offsets[where[owner]] + np.arange(len(piece_values)) - piece_offsets[owner]] = piece_values
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(values, type=pa.int32()))


# --------------------------------------------------------------------------------------------------
# t per language
# --------------------------------------------------------------------------------------------------


def t_to_p(counts: np.ndarray, t: float) -> float:
    """The tail share at t: matches of entries counted fewer than t times over all matches (0 when
    nothing matched)."""
    counts = np.asarray(counts)
    total = counts.sum()
    return float(counts[counts < t].sum() / total) if total else 0.0


def p_to_t(counts: np.ndarray, p: float) -> float:
    """The t whose tail share is nearest p: the sorted counts at the first index where the cumulative
    share is nearest p (0 when nothing matched: that language keeps nothing)."""
    ordered = np.sort(np.asarray(counts))
    total = ordered.sum()
    if not total:
        return 0.0
    share = np.cumsum(ordered) / total
    return float(ordered[int(np.abs(share - p).argmin())])


def language_thresholds(
    counts: np.ndarray,
    languages: Sequence[str],
    t: float,
    reference: str = "en",
    overrides: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """t of every language of the metadata for the reference language's t; ``overrides`` fix some."""
    return LanguageCounts.build(counts, languages).thresholds(t, reference, overrides)


class LanguageCounts:
    """Each language's entry counts sorted once, so its t and tail share at any reference t cost a few
    binary searches (the dashboard moves t many times). Same numbers as ``t_to_p`` and ``p_to_t``, which
    stay the plain statement of the rule (tests compare the two)."""

    def __init__(self, counts: np.ndarray, members: Mapping[str, Sequence[int]]) -> None:
        self.members = {language: np.asarray(ids, dtype=np.int64) for language, ids in members.items()}
        counts = np.asarray(counts)
        self.sorted = {language: np.sort(counts[ids]) for language, ids in self.members.items()}
        self.cumulative = {
            language: np.concatenate(([0], np.cumsum(ordered))) for language, ordered in self.sorted.items()
        }
        self.shares = {
            language: cumulative[1:] / cumulative[-1] if cumulative[-1] else cumulative[1:] * 0.0
            for language, cumulative in self.cumulative.items()
        }

    @classmethod
    def build(cls, counts: np.ndarray, languages: Sequence[str]) -> LanguageCounts:
        return cls(counts, ids_by_language(languages))

    @property
    def languages(self) -> list[str]:
        return sorted(self.members)

    def total(self, language: str) -> int:
        return int(self.cumulative[language][-1])

    def tail_matches(self, language: str, t: float) -> int:
        """Matches of the language's entries counted fewer than t times."""
        return int(self.cumulative[language][np.searchsorted(self.sorted[language], t, side="left")])

    def tail_share(self, language: str, t: float) -> float:
        """``t_to_p`` of the language's counts."""
        total = self.total(language)
        return float(self.tail_matches(language, t) / total) if total else 0.0

    def t_for_share(self, language: str, p: float) -> float:
        """``p_to_t`` of the language's counts: the cumulative shares rise, so the nearest to p is the
        first share at or above p or the last below it (taken at its first index, as argmin does)."""
        share, ordered = self.shares[language], self.sorted[language]
        if not self.total(language):
            return 0.0
        above = int(np.searchsorted(share, p, side="left"))
        best = min(above, len(share) - 1)
        if above > 0:
            below = int(np.searchsorted(share, share[above - 1], side="left"))
            if above == len(share) or np.abs(share[below] - p) <= np.abs(share[above] - p):
                best = below
        return float(ordered[best])

    def least_reference_t(self, language: str, reference: str = "en") -> float | None:
        """The smallest whole reference t at which ``language``'s t is above 0; None when no t gives it
        one (it has no matches; or the reference has none, so p stays 0, and it has entries counted 0 times).

        Why a language with matches can get t = 0: its sorted counts start with entries counted 0 times,
        whose cumulative share is 0, so while the reference's tail share p is nearer 0 than the first
        share its matched entries reach, ``p_to_t`` lands on a zero count. p steps up just above each of
        the reference's counts, and a language's t never falls as p grows, so a binary search over those
        steps finds the first that gives the language a t."""
        if not self.total(language):
            return None
        steps = np.unique(np.append(self.sorted[reference] + 1, 1))  # whole t where p(t) may change, from 1
        low, high = 0, len(steps)
        while low < high:
            middle = (low + high) // 2
            if self.t_for_share(language, self.tail_share(reference, float(steps[middle]))) > 0:
                high = middle
            else:
                low = middle + 1
        return float(steps[low]) if low < len(steps) else None

    def thresholds(
        self, t: float, reference: str = "en", overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """t of every language for the reference language's t; ``overrides`` fix some."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.members))
        if unknown:
            raise CurationError(f"--t-language names languages the metadata does not have: {', '.join(unknown)}")
        if reference not in self.members:
            raise CurationError(
                f"the reference language {reference!r} has no entries in the metadata; "
                f"choose one of {', '.join(sorted(self.members))} with --reference-language"
            )
        p = self.tail_share(reference, t)
        thresholds = {
            language: (float(t) if language == reference else self.t_for_share(language, p))
            for language in self.members
        }
        thresholds.update({language: float(value) for language, value in overrides.items()})
        return thresholds


def language_slots(languages: pa.Array | pa.ChunkedArray, names: Sequence[str]) -> np.ndarray:
    """Each pair's caption language as its position in ``names``; len(names) for a pair without one or
    of a language not named (what ``KeepAt.group_t`` reads as no language)."""
    value_set = pa.array(list(names), type=pa.string())
    slots = pc.fill_null(pc.index_in(pc.cast(languages, pa.string()), value_set=value_set), len(names))
    return slots.to_numpy(zero_copy_only=False)


def pair_t(languages: pa.Array, language_t: Mapping[str, float]) -> np.ndarray:
    """Each pair's t: its caption language's (a pair without one, or of a language without a t: 0,
    which keeps nothing)."""
    values = np.array([*language_t.values(), 0.0], dtype=np.float64)
    return values[language_slots(languages, list(language_t))]


Tallies = dict  # language (None: without one) -> [pairs, matched pairs, kept, expected kept]


def tally_languages(
    tallies: Tallies, languages: pa.Array, entry_ids: pa.Array, keep: np.ndarray, expected: np.ndarray
) -> None:
    """Add one batch's pairs, matched pairs, kept and expected kept to each caption language's totals."""
    matched = pc.greater(pc.list_value_length(entry_ids), 0).to_numpy(zero_copy_only=False)
    codes = np.asarray(pc.fill_null(pc.cast(languages, pa.string()), "").to_pylist(), dtype=object)
    for language in set(codes):
        rows = codes == language
        figures = tallies.setdefault(language or None, [0, 0, 0, 0.0])
        figures[0] += int(rows.sum())
        figures[1] += int(matched[rows].sum())
        figures[2] += int(keep[rows].sum())
        figures[3] += float(expected[rows].sum())


def add_tallies(total: Tallies, more: Tallies) -> Tallies:
    for language, figures in more.items():
        summed = total.setdefault(language, [0, 0, 0, 0.0])
        for i, value in enumerate(figures):
            summed[i] += value
    return total


def language_rows(
    counts: np.ndarray, entry_languages: Sequence[str], language_t: Mapping[str, float], tallies: Tallies
) -> list[dict]:
    """Per language of the metadata: its t, its tail share at that t, pairs, matched pairs, kept and
    expected kept; pairs whose language has no entries (and no 'other') last, as language None."""
    languages = np.asarray(entry_languages, dtype=object)
    rows = []
    for language in [*sorted(language_t), *([None] if None in tallies else [])]:
        pairs, matched, kept, expected = tallies.get(language, [0, 0, 0, 0.0])
        known = language is not None
        rows.append(
            {
                "language": language,
                "t": language_t.get(language, 0.0) if known else None,
                "tail_share": t_to_p(counts[languages == language], language_t[language]) if known else None,
                "pairs": pairs,
                "matched_pairs": matched,
                "kept": kept,
                "expected_kept": round(expected, 3),
            }
        )
    return rows


def zero_t_notes(languages: list[str], reference: str, t: float, counts: LanguageCounts) -> list[str]:
    """Why each language whose t is 0 keeps nothing, one line per cause, with the way out: a language
    without matches has no tail share to match; one with matches got 0 from p_to_t because the
    reference's tail share at t is too small, and a larger t gives it a t."""
    notes = []
    unmatched = [language for language in languages if not counts.total(language)]
    matched = [language for language in languages if counts.total(language)]
    if unmatched:
        notes.append(
            f"t is 0 for {', '.join(unmatched)}: nothing of {_them(unmatched)} is kept (no matches to take a "
            "tail share from); fix a language's t with --t-language CODE=T"
        )
    if matched:
        least = {language: counts.least_reference_t(language, reference) for language in matched}
        ways = ", ".join(
            f"{language} from t={value:g}" if value is not None else f"{language}: no t does"
            for language, value in least.items()
        )
        notes.append(
            f"t is 0 for {', '.join(matched)}: nothing of {_them(matched)} is kept though "
            f"{'it has' if len(matched) == 1 else 'they have'} matches: {reference}'s tail share at t={t:g} is "
            f"p = {counts.tail_share(reference, t):.4g}, nearer 0 than the cumulative share of "
            f"{'its' if len(matched) == 1 else 'their'} least counted matched entry, so MetaCLIP 2's p_to_t "
            "lands on an entry counted 0 times; a larger t gives "
            f"{_them(matched)} a t ({ways}), or fix a language's t with --t-language CODE=T"
        )
    return notes


def _them(languages: list[str]) -> str:
    return "it" if len(languages) == 1 else "them"
