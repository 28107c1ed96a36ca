"""The preview of a worldwide run: answers at any reference t, each pair judged at its language's t.

A pair of language L is kept at the reference t iff its threshold k < t_L, where t_L follows from the
reference language's tail share at t (curation/worldwide.py). The preview files hold every matched
pair's k sorted within its language and a uniform sample of matched pairs with their languages, so:
the realised size is one binary search per language (exact), t per language a few binary searches
over counts sorted once, and the estimates are the per-language samples' (curation/preview.py) added.
An entry belongs to one language and so does every entry of a pair, so per-entry figures come from
that language's part alone. Pure: arrays in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation import balancing, counting
from curation.keep_rule import KeepRule
from curation.preview import Estimate, PairSample

BISECTION_STEPS = 200  # halvings of the reference t's interval when searching t for a size (floats: ~60 suffice)


@dataclass(frozen=True)
class LanguagePart:
    """One language's pairs: their sorted thresholds and the sample's pairs of that language."""

    language: str
    thresholds: np.ndarray  # k of the language's matched pairs, ascending (a slice of the memory map)
    sample: PairSample
    pairs: int  # every pair whose caption is in this language, matched or not


@dataclass(frozen=True)
class SampleSize:
    """What pages say about the sample behind the estimates."""

    size: int
    population: int


def sample_subset(
    offsets: np.ndarray, entries: np.ndarray, thresholds: np.ndarray, chosen: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampled pairs where ``chosen`` holds, in CSR form again."""
    sizes = np.diff(offsets)
    kept_sizes = sizes[chosen]
    new_offsets = np.zeros(len(kept_sizes) + 1, dtype=np.int64)
    np.cumsum(kept_sizes, out=new_offsets[1:])
    return new_offsets, entries[np.repeat(chosen, sizes)], thresholds[chosen]


class WorldwidePreview:
    """The interface of curation.preview.BalancePreview, for a run with a t per language; ``t`` is
    always the reference language's."""

    def __init__(self, rule: KeepRule, parts: Sequence[LanguagePart], unassigned_pairs: int) -> None:
        self.rule = rule  # t per language, head and tail, p_e: curation/keep_rule.py
        self.counts = np.asarray(rule.counts, dtype=np.int64)
        self.by_language = rule.by_language
        self.parts = {part.language: part for part in parts}
        self.reference = rule.reference
        self.unassigned_pairs = unassigned_pairs  # pairs whose caption language has no entries
        self.pairs = sum(part.pairs for part in parts) + unassigned_pairs
        self.sorted_counts = np.sort(self.counts)
        self.entry_language = np.empty(len(self.counts), dtype=object)
        for language, ids in self.by_language.members.items():
            self.entry_language[ids] = language
        self._local: dict[str, np.ndarray] = {}

    @classmethod
    def from_parts(
        cls,
        rule: KeepRule,
        languages: Sequence[str],
        thresholds: np.ndarray,
        matched_per_language: Sequence[int],
        pairs_per_language: Sequence[int],
        sample_offsets: np.ndarray,
        sample_entries: np.ndarray,
        sample_thresholds: np.ndarray,
        sample_languages: np.ndarray,
        sample_min_counts: np.ndarray | None = None,
    ) -> WorldwidePreview:
        """From the stored arrays: thresholds sorted within each language, languages in the stored order
        (``pairs_per_language`` one longer: the pairs without a language last); ``sample_min_counts``
        as in ``PairSample.build``."""
        starts = np.concatenate(([0], np.cumsum(matched_per_language)))
        parts = []
        for group, language in enumerate(languages):
            chosen = np.asarray(sample_languages) == group
            offsets, entries, sampled = sample_subset(sample_offsets, sample_entries, sample_thresholds, chosen)
            segment = thresholds[starts[group] : starts[group + 1]]
            parts.append(
                LanguagePart(
                    language,
                    segment,
                    PairSample.build(
                        offsets,
                        entries,
                        sampled,
                        rule.counts,
                        len(segment),
                        None if sample_min_counts is None else sample_min_counts[chosen],
                    ),
                    int(pairs_per_language[group]),
                )
            )
        return cls(rule, parts, int(pairs_per_language[len(languages)]))

    # -- t per language -----------------------------------------------------------------------------

    def language_t(self, t: float) -> dict[str, float]:
        """Every language's t at the reference t."""
        return self.rule.at(float(t)).per_language

    def entry_t(self, t: float) -> np.ndarray:
        """Each entry's language's t."""
        return self.rule.entry_t(t)

    # -- exact ----------------------------------------------------------------------------------------

    @property
    def matched_pairs(self) -> int:
        return sum(len(part.thresholds) for part in self.parts.values())

    @property
    def sample(self) -> SampleSize:
        return SampleSize(sum(part.sample.size for part in self.parts.values()), self.matched_pairs)

    def sizes_at(self, t: float) -> dict[str, int]:
        """Pairs kept per language at the reference t."""
        per_language = self.language_t(float(t))
        return {
            language: balancing.size_at(part.thresholds, per_language.get(language, 0.0))
            for language, part in self.parts.items()
        }

    def size_at(self, t: float) -> int:
        return sum(self.sizes_at(t).values())

    def t_for_size(self, size: int) -> tuple[float, int]:
        """The smallest reference t whose subset holds at least ``size`` pairs (nearest above when no t
        gives exactly that many: other languages' t move in steps), found by bisection: the size never
        falls as t grows."""
        size = max(0, min(int(size), self.matched_pairs))
        low, high = 0.0, float(self.counts.max(initial=0)) + 1.0
        if self.size_at(high) < size:  # a language held below its pairs' thresholds by --t-language
            return high, self.size_at(high)
        if self.size_at(low) >= size:
            # Other languages keep pairs even as t nears 0 (their t is their smallest count there): any t
            # below the reference language's first threshold and smallest count gives that size.
            reference = self.parts.get(self.reference)
            first = float(reference.thresholds[0]) if reference is not None and len(reference.thresholds) else 1.0
            ordered = self.by_language.sorted[self.reference]
            smallest = float(ordered[ordered > 0][0]) if (ordered > 0).any() else 1.0
            t = balancing.simplest_in(0.0, min(first, smallest, 1.0))
            return t, self.size_at(t)
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            if middle in (low, high):
                break
            if self.size_at(middle) >= size:
                high = middle
            else:
                low = middle
        t = balancing.simplest_in(low, high)
        return t, self.size_at(t)

    def t_for_tail_share(self, share: float) -> float:
        """The reference t whose reference-language tail share first reaches ``share``."""
        return self.rule.t_for_tail_share(share)

    def tail_share(self, t: float) -> float:
        """The reference language's tail share at t, which every language's t is set to match."""
        return self.rule.tail_share(t)

    def head_tail(self, t: float) -> counting.HeadTail:
        return self.rule.head_tail(t)

    def entry_probabilities(self, t: float) -> np.ndarray:
        """p_e at the entry's language's t."""
        return self.rule.entry_probabilities(t)

    # -- estimated --------------------------------------------------------------------------------------

    def expected_size_at(self, t: float) -> Estimate:
        """The languages' expected sizes added; their errors added in quadrature (separate samples)."""
        per_language = self.language_t(float(t))
        estimates = [part.sample.expected(per_language.get(language, 0.0)) for language, part in self.parts.items()]
        return Estimate(
            sum(e.value for e in estimates),
            math.sqrt(sum(e.stderr**2 for e in estimates)),
            sum(e.sampled for e in estimates),
            sum(e.population for e in estimates),
        )

    def expected_sizes_at(self, t: float) -> dict[str, Estimate]:
        per_language = self.language_t(float(t))
        return {
            language: part.sample.expected(per_language.get(language, 0.0)) for language, part in self.parts.items()
        }

    def balanced_counts(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Matches per entry among the pairs kept at t, and their standard errors: each entry's from its
        own language's sample, counted over that language's entries only (not all entries per language)."""
        per_language = self.language_t(float(t))
        values, errors = np.zeros(len(self.counts)), np.zeros(len(self.counts))
        for language, part in self.parts.items():
            ids = self.by_language.members[language]
            sample = part.sample
            kept_slots = (sample.pair_thresholds < per_language[language])[sample.flat_rows]
            hits = np.bincount(self._local_slots(language)[kept_slots], minlength=len(ids)).astype(np.float64)
            values[ids], errors[ids] = sample.scaled(hits)
        return values, errors

    def _local_slots(self, language: str) -> np.ndarray:
        """The language's sampled entry slots as positions among its entries (ids ascending)."""
        if language not in self._local:
            self._local[language] = np.searchsorted(
                self.by_language.members[language], self.parts[language].sample.flat_entries
            )
        return self._local[language]

    def kept_counts(self, entry_ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """balanced_counts for a few entries."""
        entry_ids = np.asarray(entry_ids, dtype=np.int64)
        per_language = self.language_t(float(t))
        values, errors = np.zeros(len(entry_ids)), np.zeros(len(entry_ids))
        languages = self.entry_language[entry_ids]
        for language in set(languages):
            where = np.flatnonzero(languages == language)
            part = self.parts[language]
            values[where], errors[where] = part.sample.kept_counts_of(
                entry_ids[where], per_language[language], len(self.counts)
            )
        return values, errors

    # -- per language -----------------------------------------------------------------------------------

    def language_rows(self, t: float) -> list[dict]:
        """Per language of the metadata at the reference t: its t, its tail share at that t, entries,
        pairs, matched pairs, kept (exact) and expected kept (estimated); pairs without a language last,
        as language None. The rows of ``stats --json`` and of the dashboard's Languages page."""
        per_language = self.language_t(float(t))
        kept = self.sizes_at(t)
        expected = self.expected_sizes_at(t)
        rows = []
        for language in sorted(self.by_language.members):
            part = self.parts.get(language)
            estimate = expected.get(language, Estimate(0.0, 0.0, 0, 0))
            rows.append(
                {
                    "language": language,
                    "t": per_language[language],
                    "tail_share": self.by_language.tail_share(language, per_language[language]),
                    "entries": len(self.by_language.members[language]),
                    "matched_entries": int((self.by_language.sorted[language] > 0).sum()),
                    "matches": self.by_language.total(language),
                    "pairs": part.pairs if part else 0,
                    "matched_pairs": len(part.thresholds) if part else 0,
                    "kept": kept.get(language, 0),
                    "expected_kept": estimate.value,
                    "expected_kept_margin": estimate.margin,
                    "expected_kept_exact": estimate.exact,
                }
            )
        if self.unassigned_pairs:
            rows.append(
                {
                    "language": None,
                    "t": None,
                    "tail_share": None,
                    "entries": 0,
                    "matched_entries": 0,
                    "matches": 0,
                    "pairs": self.unassigned_pairs,
                    "matched_pairs": 0,
                    "kept": 0,
                    "expected_kept": 0.0,
                    "expected_kept_margin": 0.0,
                    "expected_kept_exact": True,
                }
            )
        return rows
