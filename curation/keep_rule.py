"""Which pairs a run keeps at a t (docs/design.md, "The keep rule"): the one place that turns a t into
each language's t, each entry's keep probability p_e and each pair's verdict k < t.

A MetaCLIP run is the one-language case of a worldwide (MetaCLIP 2) run: every pair is judged at t
itself. In a worldwide run t is the reference language's, every other language gets the t whose tail
share matches it (``worldwide.LanguageCounts``) unless the run fixed it, and a pair is judged at its
caption language's t (0, which keeps nothing, for a pair without one or of a language without entries).

``KeepRule`` holds what a run's t depends on (global counts, the languages of the entries, the
reference language, the fixed t per language); ``KeepRule.at(t)`` gives a ``KeepAt``: small, frozen and
picklable, so a stage's config carries it to any worker. Readers build the rule from the run's own
files (``KeepRule.of_run``), the balance from the counts and its command line (``from_table``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation import balancing, counting, worldwide
from curation.rundir import ENTRY_LANGUAGE, RunDir, numbers, read_parquet
from studio_common.errors import CurationError

DEFAULT_REFERENCE = "en"
ALL = "*"  # the one group of a one-language run (a language code is never "*")


@dataclass(frozen=True)
class KeepAt:
    """The rule at one t: the t asked for, and in a worldwide run every language's t."""

    t: float
    language_t: tuple[tuple[str, float], ...] = ()  # sorted by language; empty: one t for every pair

    @property
    def worldwide(self) -> bool:
        return bool(self.language_t)

    @property
    def per_language(self) -> dict[str, float] | None:
        """Every language's t (a worldwide run), else None."""
        return dict(self.language_t) if self.language_t else None

    def of_language(self, language: str | None) -> float:
        """The t a pair of this caption language is judged at (t itself in a one-language run)."""
        if not self.language_t:
            return self.t
        return dict(self.language_t).get(language, 0.0) if language is not None else 0.0

    def pair_t(self, languages: pa.Array | pa.ChunkedArray | None = None) -> float | np.ndarray:
        """t for each pair of a batch, from its caption languages (ignored in a one-language run)."""
        if not self.language_t:
            return self.t
        if languages is None:
            raise ValueError("a worldwide run judges each pair at its caption language's t: pass the languages")
        if isinstance(languages, pa.ChunkedArray):
            languages = languages.combine_chunks()
        return worldwide.pair_t(languages, dict(self.language_t))

    def group_t(self, groups: np.ndarray, names: Sequence[str]) -> float | np.ndarray:
        """t for pairs given as positions in ``names`` (the preview's language groups; a position past
        the end: no language)."""
        if not self.language_t:
            return self.t
        values = np.array([self.of_language(name) for name in names] + [0.0], dtype=np.float64)
        return values[np.minimum(np.asarray(groups, dtype=np.int64), len(names))]

    def keeps(self, thresholds: np.ndarray, t: float | np.ndarray | None = None) -> np.ndarray:
        """Pairs kept: k < their t (``t`` from ``pair_t`` or ``group_t``; this rule's t when omitted)."""
        return balancing.kept_mask(thresholds, self.t if t is None else t)

    def drops(self, thresholds: np.ndarray, t: float | np.ndarray | None = None) -> np.ndarray:
        """Matched pairs (finite k) that are not kept."""
        thresholds = np.asarray(thresholds)
        return ~self.keeps(thresholds, t) & np.isfinite(thresholds)


class KeepRule:
    """A run's keep rule for any t: its global entry counts and, in a worldwide run, each entry's
    language, the reference language and the t fixed for some languages. A one-language run is one
    group (``ALL``) holding every entry, so every answer below has one code path."""

    def __init__(
        self,
        counts: np.ndarray,
        entry_languages: Sequence[str] | None = None,
        reference: str | None = None,
        overrides: Mapping[str, float] | None = None,
    ) -> None:
        self.counts = np.asarray(counts)
        self.worldwide = entry_languages is not None
        self.overrides = {language: float(value) for language, value in (overrides or {}).items()}
        if not self.worldwide and self.overrides:
            raise CurationError("--t-language applies to worldwide runs only (metadata with a 'language' column)")
        self.reference = (reference or DEFAULT_REFERENCE) if self.worldwide else ALL
        self.by_language = (
            worldwide.LanguageCounts.build(self.counts, entry_languages)
            if self.worldwide
            else worldwide.LanguageCounts(self.counts, {ALL: np.arange(len(self.counts))})
        )
        self.at = lru_cache(maxsize=256)(self._at)
        self.at(1.0)  # an unknown reference language or fixed language fails here, not on first use

    @classmethod
    def from_table(cls, entry_table: pa.Table, parameters: Mapping | None = None) -> KeepRule:
        """From an entry_counts table and a run record's parameters (reference_language, t_language)."""
        parameters = parameters or {}
        worldwide = ENTRY_LANGUAGE in entry_table.column_names
        return cls(
            numbers(entry_table.column("count")),
            entry_table.column(ENTRY_LANGUAGE).to_pylist() if worldwide else None,
            parameters.get("reference_language") if worldwide else None,
            parameters.get("t_language"),
        )

    @classmethod
    def of_run(cls, run: RunDir | str | Path) -> KeepRule:
        """The rule a run was balanced with: its entry counts and its record's parameters."""
        run = run if isinstance(run, RunDir) else RunDir(Path(run))
        parameters = json.loads(run.run_json.read_text()).get("parameters", {}) if run.run_json.exists() else {}
        return cls.from_table(read_parquet(run.entry_counts), parameters)

    @property
    def languages(self) -> list[str]:
        """The metadata's languages (none in a one-language run)."""
        return self.by_language.languages if self.worldwide else []

    @property
    def parameters(self) -> dict:
        """What a run record keeps of the rule beside t: the reference language and the fixed t."""
        return {"reference_language": self.reference, "t_language": dict(self.overrides)} if self.worldwide else {}

    def _at(self, t: float) -> KeepAt:
        if not self.worldwide:
            return KeepAt(float(t))
        per_language = self.by_language.thresholds(float(t), self.reference, self.overrides)
        return KeepAt(float(t), tuple(sorted(per_language.items())))

    def _group_t(self, t: float) -> dict[str, float]:
        at = self.at(float(t))
        return at.per_language if at.worldwide else {ALL: at.t}

    def entry_t(self, t: float) -> float | np.ndarray:
        """The t each entry is judged at: t itself, or each entry's language's t."""
        if not self.worldwide:
            return float(t)
        group_t = self._group_t(t)
        values = np.zeros(len(self.counts))
        for language, ids in self.by_language.members.items():
            values[ids] = group_t[language]
        return values

    def entry_probabilities(self, t: float) -> np.ndarray:
        """p_e = t_e / max(c_e, t_e) for every entry, t_e its language's t: 1 for an entry of the tail
        (and an unmatched one), 0 where its language's t is 0 and it matched."""
        entry_t = np.broadcast_to(np.asarray(self.entry_t(t), dtype=np.float64), self.counts.shape)
        bound = np.maximum(self.counts.astype(np.float64), entry_t)
        return np.divide(entry_t, bound, out=np.ones(len(self.counts)), where=bound > 0)

    def pair_probabilities(
        self, entry_ids: pa.ListArray | pa.ChunkedArray, t: float, languages: pa.Array | None = None
    ) -> np.ndarray:
        """P per pair at t: 1 - the product of (1 - p_e) over its entries (MetaCLIP's expected keep)."""
        return balancing.keep_probabilities(entry_ids, self.counts, self.at(float(t)).pair_t(languages))

    def thresholds(self, entry_ids: pa.ListArray, pair_keys: np.ndarray, seed: int) -> np.ndarray:
        """Each pair's keep threshold k: it is kept at t iff k < t (its language's t)."""
        return balancing.keep_thresholds(entry_ids, pair_keys, self.counts, seed)

    def tail_share(self, t: float) -> float:
        """p(t): the share of matches held by entries counted fewer than t times; in a worldwide run the
        reference language's, which every other language's t is set to match."""
        return self.by_language.tail_share(self.reference, float(t))

    def t_for_tail_share(self, share: float) -> float:
        """The (reference) t whose tail share first reaches ``share``."""
        return counting.t_for_tail_share(self.counts[self.by_language.members[self.reference]], share)

    def head_tail(self, t: float) -> counting.HeadTail:
        """Entries and matches split at t: each language's at its own t, added up."""
        group_t = self._group_t(t)
        parts = [
            counting.head_tail_sorted(self.by_language.sorted[language], self.by_language.cumulative[language], value)
            for language, value in group_t.items()
        ]
        summed = {name: sum(getattr(part, name) for part in parts) for name in _SUMMED}
        share = summed["tail_matches"] / summed["matches"] if summed["matches"] else 0.0
        return counting.HeadTail(t=float(t), tail_share=share, **summed)


_SUMMED = (
    "entries",
    "matched_entries",
    "unmatched_entries",
    "head_entries",
    "tail_entries",
    "matches",
    "head_matches",
    "tail_matches",
)
