"""Two runs side by side (docs/design.md, "Comparing runs"): what an edit of the metadata did, or what
one metadata does on two pools.

Everything comes from the runs' own readers: sizes from each seed's preview, head and tail from each
run's keep rule, per-entry sides from ``counting.side_codes`` at each entry's t. Entries are joined by their
text (and language, in worldwide runs), never by id: an id is a position in one list, and an edit that
removes one entry renumbers every entry after it. Pairs are compared only when both runs read the same
pool files, in the same order: the index parts of a run cover the pool row by row in shard order, so
the two runs' per-shard arrays, concatenated, are aligned row by row whatever their shard sizes.

``Comparer`` reads what does not depend on t once (the joined entry tables, the pairs matched in
either run with their keep thresholds); ``Comparer.at(t)`` answers at any t from that, so the
dashboard reads two run directories once. ``compare_runs`` is both in one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curation import counting, worldwide
from curation.keep_rule import KeepRule
from curation.plan import pool_difference
from curation.rundir import CAPTION_LANGUAGE, ENTRY_LANGUAGE, read_parquet
from curation.stages import read_thresholds
from curation.summary import Run
from studio_common.errors import CurationError

TEXT = "entry"
RUNS = ("a", "b")  # the suffixes of each run's columns
Part = tuple[np.ndarray, np.ndarray | None]  # a stretch of pairs: k, and caption languages as slots (worldwide)


@dataclass(frozen=True)
class Side:
    """One run's figures at t: the rows of the side-by-side table."""

    run: str
    seed: int
    worldwide: bool
    pairs: int
    matched_pairs: int
    kept: int  # exact, from the seed's preview
    tail_share: float
    head_entries: int
    tail_entries: int
    unmatched_entries: int
    entries: int  # the metadata's entries (every row of entry_counts.parquet, counted 0 or not)
    reference_language: str | None = None
    languages: dict[str, dict] | None = None  # worldwide: each language's t and pairs kept at it

    def as_json(self) -> dict:
        return asdict(self)


FIGURES = (  # (field, label) of the side-by-side table, in its order
    ("pairs", "pool pairs"),
    ("matched_pairs", "matched pairs"),
    ("kept", "kept at t"),
    ("tail_share", "tail share p(t)"),
    ("head_entries", "head entries"),
    ("tail_entries", "tail entries"),
    ("unmatched_entries", "unmatched entries"),
    ("entries", "metadata entries"),
)


@dataclass(frozen=True)
class PairAgreement:
    """Pairs of one pool as the two runs judge them: matched (t does not matter) and kept at t."""

    pairs: int
    kept_by_both: int
    kept_by_a_only: int
    kept_by_b_only: int
    matched_by_both: int
    matched_by_a_only: int
    matched_by_b_only: int

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Two runs at one t. ``entries`` holds every entry of either run, joined by ``keys``: count_a and
    count_b (NA where the run lacks it), side_a and side_b (head, tail or unmatched at that run's t for
    the entry, a categorical; missing where the run lacks it), most matched first. ``pairs`` is None when the runs read
    different pools, and ``pool_difference`` then says how they differ."""

    t: float
    a: Side
    b: Side
    keys: tuple[str, ...]
    entries: pd.DataFrame
    pairs: PairAgreement | None
    pool_difference: str | None

    @cached_property
    def _where(self) -> dict[str, np.ndarray]:
        """Row masks of ``entries``, made once (numpy, not a pandas filter per question)."""
        in_a, in_b = (self.entries[f"count_{side}"].notna().to_numpy() for side in RUNS)
        codes_a, codes_b = (self.entries[f"side_{side}"].cat.codes.to_numpy() for side in RUNS)
        both = in_a & in_b
        return {
            "only_in_a": in_a & ~in_b,
            "only_in_b": in_b & ~in_a,
            "in_both": both,
            "flips": both & (codes_a != codes_b),
        }

    def sizes(self) -> dict[str, int]:
        """How many entries are only in A, only in B, in both, and change side at t."""
        return {name: int(mask.sum()) for name, mask in self._where.items()}

    def only_in_a(self) -> pd.DataFrame:
        return self.entries[self._where["only_in_a"]]

    def only_in_b(self) -> pd.DataFrame:
        return self.entries[self._where["only_in_b"]]

    def in_both(self) -> pd.DataFrame:
        return self.entries[self._where["in_both"]]

    def flips(self) -> pd.DataFrame:
        """Entries of both runs whose side at t differs (head, tail or unmatched)."""
        return self.entries[self._where["flips"]]

    def as_json(self, top: int | None = None) -> dict:
        """Every figure; the entry lists whole, or their ``top`` most matched."""
        lists = {
            "only_in_a": (self.only_in_a(), ["count_a"]),
            "only_in_b": (self.only_in_b(), ["count_b"]),
            "flips": (self.flips(), ["count_a", "count_b", "side_a", "side_b"]),
        }
        return {
            "t": self.t,
            "a": self.a.as_json(),
            "b": self.b.as_json(),
            "entries": {
                "joined_by": list(self.keys),
                **self.sizes(),
                "listed": top,
                **{
                    f"{name}_entries": _records(frame, [*self.keys, *columns], top)
                    for name, (frame, columns) in lists.items()
                },
            },
            "pairs": None if self.pairs is None else {"same_pool": True, **self.pairs.as_json()},
            "pool_difference": self.pool_difference,
        }

    def lines(self, top: int = 10) -> list[str]:
        """The comparison as a terminal shows it: the figures side by side, the entries only in one run
        and those that change side (``top`` of each), then the pairs when the pool is shared."""
        lines = [f"A  {self.a.run} (seed {self.a.seed})", f"B  {self.b.run} (seed {self.b.seed})", ""]
        lines.append(f"{'at t = ' + format(self.t, 'g'):<20} {'A':>14} {'B':>14} {'B - A':>14}")
        for name, label in FIGURES:
            a, b = getattr(self.a, name), getattr(self.b, name)
            spec = ".4f" if isinstance(a, float) else ","
            difference = format(b - a, "+" + spec) if b != a else "0"
            lines.append(f"{label:<20} {a:>14{spec}} {b:>14{spec}} {difference:>14}")
        if self.a.languages is not None and self.b.languages is not None:
            lines += [
                f"worldwide: p(t) is the reference language's ({self.a.reference_language} in A, "
                f"{self.b.reference_language} in B); every other language's t keeps the same tail share",
                "",
                f"{'language':<10} {'t in A':>12} {'t in B':>12} {'kept in A':>12} {'kept in B':>12}",
            ]
            for code in sorted(set(self.a.languages) | set(self.b.languages)):
                one, two = self.a.languages.get(code, {}), self.b.languages.get(code, {})
                lines.append(
                    f"{code:<10} {_cell(one.get('t'), 'g'):>12} {_cell(two.get('t'), 'g'):>12} "
                    f"{_cell(one.get('kept'), ','):>12} {_cell(two.get('kept'), ','):>12}"
                )
        only_a, only_b, flips = self.only_in_a(), self.only_in_b(), self.flips()
        joined = " and ".join(self.keys)
        lines += [
            "",
            f"entries, joined by {joined}: {len(only_a):,} only in A, {len(only_b):,} only in B, "
            f"{self.sizes()['in_both']:,} in both, of which {len(flips):,} change side at t (head, tail, unmatched)",
        ]
        for title, frame, columns in (
            ("only in A", only_a, ["count_a"]),
            ("only in B", only_b, ["count_b"]),
            ("change side at t", flips, ["count_a", "count_b", "side_a", "side_b"]),
        ):
            if len(frame) and top > 0:
                lines.append(f"{title} ({min(top, len(frame)):,} most matched of {len(frame):,}):")
                lines.append("  " + " ".join(f"{_HEADERS[c]:>10}" for c in columns) + "  entry")
                for row in frame.head(top).itertuples(index=False):
                    cells = " ".join(f"{_cell(getattr(row, c), ','):>10}" for c in columns)
                    lines.append(f"  {cells}  {_name(row, self.keys)}")
        lines.append("")
        if self.pairs is None:
            lines.append(f"pairs: not compared, the runs read different pools ({self.pool_difference})")
        else:
            agreement = self.pairs
            lines += [
                f"pairs (the same pool, {agreement.pairs:,} pairs; row r of A is row r of B):",
                f"  kept by both       {agreement.kept_by_both:>12,}",
                f"  kept by A only     {agreement.kept_by_a_only:>12,}",
                f"  kept by B only     {agreement.kept_by_b_only:>12,}",
                f"  matched by both    {agreement.matched_by_both:>12,}",
                f"  matched by A only  {agreement.matched_by_a_only:>12,}",
                f"  matched by B only  {agreement.matched_by_b_only:>12,}",
            ]
        return lines


_HEADERS = {"count_a": "count A", "count_b": "count B", "side_a": "A", "side_b": "B"}


def _cell(value: object, spec: str) -> str:
    """A table cell: '-' for a missing value, text as it is, numbers by ``spec``."""
    if value is None or pd.isna(value):
        return "-"
    return value if isinstance(value, str) else format(value, spec)


def _name(row: object, keys: tuple[str, ...]) -> str:
    """An entry as the terminal names it: its text, and its language in a worldwide run."""
    text = getattr(row, TEXT)
    return f"{text} ({getattr(row, ENTRY_LANGUAGE)})" if len(keys) > 1 else text


def _records(frame: pd.DataFrame, columns: list[str], top: int | None) -> list[dict]:
    shown = frame[columns] if top is None else frame[columns].head(top)
    return [
        {name: (None if pd.isna(value) else _plain(value)) for name, value in row.items()}
        for row in shown.astype(object).to_dict("records")
    ]


def _plain(value: object) -> object:
    """numpy scalars as Python's, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------------------
# Pairs: both runs' per-shard arrays, aligned row by row
# --------------------------------------------------------------------------------------------------


def _pair_parts(run: Run, seed: int) -> Iterator[Part]:
    """Every pair's k in pool order, shard by shard, with (worldwide) its caption language as a slot of
    the run's languages: only the columns a verdict needs."""
    root = str(run.dir.root)
    for index in run.shard_indices:
        slots = None
        if run.worldwide:
            languages = read_parquet(run.dir.index_part(index), columns=[CAPTION_LANGUAGE]).column(CAPTION_LANGUAGE)
            slots = worldwide.language_slots(languages, run.rule.languages).astype(np.int32)
        yield read_thresholds(root, seed, index), slots


def _cut(part: Part, start: int, stop: int | None = None) -> Part:
    k, slots = part
    return k[start:stop], None if slots is None else slots[start:stop]


def aligned(parts_a: Iterator[Part], parts_b: Iterator[Part]) -> Iterator[tuple[Part, Part]]:
    """Two runs' stretches of pairs cut to equal lengths, in order: when both cover one pool in its order
    (the same files), the i-th stretch of A and of B hold the same rows, whatever the shard sizes."""
    a = (part for part in parts_a if len(part[0]))
    b = (part for part in parts_b if len(part[0]))
    left, right = next(a, None), next(b, None)
    while left is not None and right is not None:
        n = min(len(left[0]), len(right[0]))
        yield _cut(left, 0, n), _cut(right, 0, n)
        left = _cut(left, n) if len(left[0]) > n else next(a, None)
        right = _cut(right, n) if len(right[0]) > n else next(b, None)
    if left is not None or right is not None:
        raise CurationError("the two runs' indexes hold different numbers of pairs of one pool; was one edited?")


@dataclass(frozen=True)
class AlignedPairs:
    """The pairs either run matched, row-aligned (the only ones a run can keep): each run's k, and in
    worldwide runs each pair's caption language as a slot of that run's languages. Unmatched pairs
    (k = inf in both) are only counted."""

    pairs: int
    k_a: np.ndarray
    k_b: np.ndarray
    slots_a: np.ndarray | None
    slots_b: np.ndarray | None

    @classmethod
    def read(cls, a: Run, seed_a: int, b: Run, seed_b: int) -> AlignedPairs:
        pairs, pieces = 0, []
        for (k_a, slots_a), (k_b, slots_b) in aligned(_pair_parts(a, seed_a), _pair_parts(b, seed_b)):
            pairs += len(k_a)
            either = np.isfinite(k_a) | np.isfinite(k_b)
            pieces.append((k_a[either], k_b[either], *(s if s is None else s[either] for s in (slots_a, slots_b))))

        def joined(column: int, dtype: type) -> np.ndarray | None:
            if pieces and pieces[0][column] is None:
                return None
            return np.concatenate([p[column] for p in pieces]) if pieces else np.zeros(0, dtype)

        return cls(pairs, joined(0, np.float64), joined(1, np.float64), joined(2, np.int32), joined(3, np.int32))

    def agreement(self, t: float, rule_a: KeepRule, rule_b: KeepRule) -> PairAgreement:
        """Kept = ``KeepRule.at(t).keeps`` with each pair at its caption language's t (worldwide)."""
        kept = [
            _kept(rule, k, slots, t)
            for rule, k, slots in ((rule_a, self.k_a, self.slots_a), (rule_b, self.k_b, self.slots_b))
        ]
        matched = [np.isfinite(self.k_a), np.isfinite(self.k_b)]
        return PairAgreement(self.pairs, *_venn(*kept), *_venn(*matched))


def _kept(rule: KeepRule, k: np.ndarray, slots: np.ndarray | None, t: float) -> np.ndarray:
    keep = rule.at(float(t))
    return keep.keeps(k, keep.t if slots is None else keep.group_t(slots, rule.languages))


def _venn(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """(both, a only, b only)."""
    both = int(np.count_nonzero(a & b))
    return both, int(np.count_nonzero(a)) - both, int(np.count_nonzero(b)) - both


# --------------------------------------------------------------------------------------------------
# The two runs
# --------------------------------------------------------------------------------------------------


def _opened(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else Run(run)


class Comparer:
    """Two runs, read once: their previews, their entry tables joined by text, and (same pool) the pairs
    either run matched, aligned; ``at(t)`` answers at any t from these."""

    def __init__(
        self, run_a: Run | str | Path, run_b: Run | str | Path, seed_a: int | None = None, seed_b: int | None = None
    ) -> None:
        self.a, self.b = _opened(run_a), _opened(run_b)
        if self.a.worldwide != self.b.worldwide:
            worldwide_one, other = (self.a, self.b) if self.a.worldwide else (self.b, self.a)
            raise CurationError(
                f"{worldwide_one.name} is a worldwide run (entries per language) and {other.name} is not: "
                "compare runs of the same kind"
            )
        self.seed_a, self.seed_b = self.a.checked_seed(seed_a), self.b.checked_seed(seed_b)
        self.previews = self.a.preview(self.seed_a), self.b.preview(self.seed_b)
        self.keys = (TEXT, ENTRY_LANGUAGE) if self.a.worldwide else (TEXT,)
        self.pool_difference = pool_difference(self.a.plan, self.b.plan)

    @cached_property
    def entries(self) -> pd.DataFrame:
        """Every entry of either run, joined by text (and language) in Arrow: entry_id and count of each
        run (NA where it lacks the entry); most matched first (by the larger count), ties in A's metadata
        order, then B's (sorted by numbers: sorting a million strings costs seconds)."""
        tables = []
        for side, run in zip(RUNS, (self.a, self.b)):
            table = run.entry_table.select([*self.keys, "entry_id", "count"])
            tables.append(table.rename_columns([*self.keys, f"entry_id_{side}", f"count_{side}"]))
        joined = tables[0].join(tables[1], keys=list(self.keys), join_type="full outer", coalesce_keys=True)
        filled = {
            name: pc.fill_null(joined[name], -1).to_numpy()
            for name in ("entry_id_a", "entry_id_b", "count_a", "count_b")
        }
        last = np.iinfo(np.int64).max
        order = np.lexsort(
            (
                np.where(filled["entry_id_b"] < 0, last, filled["entry_id_b"]),
                np.where(filled["entry_id_a"] < 0, last, filled["entry_id_a"]),
                -np.maximum(filled["count_a"], filled["count_b"]),
            )
        )
        columns = [*self.keys, "entry_id_a", "entry_id_b", "count_a", "count_b"]
        nullable = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
        return joined.select(columns).take(order).to_pandas(types_mapper=nullable.get)

    @cached_property
    def pairs(self) -> AlignedPairs | None:
        """The pairs either run matched, aligned; None when the runs read different pools."""
        if self.pool_difference is not None:
            return None
        return AlignedPairs.read(self.a, self.seed_a, self.b, self.seed_b)

    def side(self, which: str, t: float) -> Side:
        """Run ``which`` ("a" or "b") at t: every figure from its preview and its keep rule."""
        run, seed, preview = (
            (self.a, self.seed_a, self.previews[0]) if which == "a" else (self.b, self.seed_b, self.previews[1])
        )
        head_tail = run.head_tail(t)
        languages = None
        if run.worldwide:
            per_language = run.rule.at(float(t)).per_language or {}
            kept = preview.sizes_at(t)
            languages = {
                code: {"t": value, "kept": int(kept.get(code, 0))} for code, value in sorted(per_language.items())
            }
        return Side(
            run=run.name,
            seed=seed,
            worldwide=run.worldwide,
            pairs=int(preview.pairs),
            matched_pairs=int(preview.matched_pairs),
            kept=int(preview.size_at(t)),
            tail_share=float(run.tail_share(t)),
            head_entries=head_tail.head_entries,
            tail_entries=head_tail.tail_entries,
            unmatched_entries=head_tail.unmatched_entries,
            entries=head_tail.entries,
            reference_language=run.rule.reference if run.worldwide else None,
            languages=languages,
        )

    def at(self, t: float) -> Comparison:
        """Both runs at t: their figures, each entry's side in each run, and the pairs when shared."""
        columns = {}
        for side, run in zip(RUNS, (self.a, self.b)):
            codes = counting.side_codes(run.counts, run.rule.entry_t(t))  # positions in counting.SIDES
            ids = self.entries[f"entry_id_{side}"].to_numpy("int64", na_value=-1)
            gathered = np.where(ids >= 0, codes[np.maximum(ids, 0)], -1)
            columns[f"side_{side}"] = pd.Categorical.from_codes(gathered, categories=list(counting.SIDES))
        entries = self.entries.assign(**columns)
        pairs = self.pairs
        return Comparison(
            t=float(t),
            a=self.side("a", t),
            b=self.side("b", t),
            keys=self.keys,
            entries=entries,
            pairs=None if pairs is None else pairs.agreement(t, self.a.rule, self.b.rule),
            pool_difference=self.pool_difference,
        )


def compare_runs(
    run_a: Run | str | Path, run_b: Run | str | Path, t: float, seed_a: int | None = None, seed_b: int | None = None
) -> Comparison:
    """Two runs at t (each at its seed: the one given, else its last balance's)."""
    return Comparer(run_a, run_b, seed_a, seed_b).at(t)
