"""A finished run directory as a Python object: sizes at any t, the t for a target size or tail
share, per-pair keep probabilities and balanced entry counts, all without re-matching.

    >>> run = Run("runs/sample")
    >>> run.size_at(500), run.expected_size_at(500), run.t_for_size(10_000)

Answers that a binary search gives come from the seed's preview files (memory-mapped, built on first
use for runs made without them); answers that need every pair stream the run shard by shard. Either
way nothing proportional to the pool is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation import balancing, counting, preview_files, worldwide
from curation.browse import every_batch
from curation.keep_rule import KeepRule
from curation.pairs import PairReader
from curation.preview import INTERVAL, BalancePreview
from curation.rundir import (
    CAPTION_LANGUAGE,
    ENTRY_IDS,
    ENTRY_LANGUAGE,
    PAIR_KEY,
    RunDir,
    atomic_parquet_writer,
    read_json,
    read_parquet,
)
from curation.runner import Execution, build_preview
from curation.stages import read_thresholds
from curation.worldwide_preview import WorldwidePreview
from studio_common import storage
from studio_common.errors import CurationError


def existing_run(spec: str | Path) -> RunDir:
    """A run directory that has been matched (on disk or in a store), or a one-line error. Checked
    from a reader's copy: a writer may be at work in the run's own copy."""
    run = RunDir.open(spec, reading=True)
    if not run.source and run.root.exists() and not run.root.is_dir():
        raise CurationError(f"{spec} is a file, not a run directory")
    if not run.source and not run.root.is_dir():
        raise CurationError(f"run directory not found: {spec}")
    if not run.fetch(run.plan_json) or not run.fetch(run.entry_counts):
        raise CurationError(f"{spec} is not a run directory (no entry_counts.parquet); make one with `curation run`")
    return run


class Run:
    """Read access to one run directory; everything is computed from its files on demand.

    A run in object storage is read from a local copy (curation/mirror.py, ``read_copy``); ``name``
    stays the URI it was given as.
    """

    def __init__(self, root: str | Path, progress: bool = False) -> None:
        self.name = str(root)
        if storage.is_uri(self.name):
            root = RunDir.read_copy(self.name, progress=progress)
        self.dir = existing_run(root)
        self.record = read_json(self.dir.run_json) if self.dir.run_json.exists() else {}
        self.plan = self.dir.plan()
        self._previews: dict[int, BalancePreview | WorldwidePreview] = {}

    @property
    def shard_indices(self) -> list[int]:
        return self.plan.shard_indices

    @property
    def seed(self) -> int | None:
        return self.record.get("parameters", {}).get("seed")

    @property
    def t(self) -> float | None:
        return self.record.get("parameters", {}).get("t")

    @cached_property
    def entry_table(self) -> pa.Table:
        return read_parquet(self.dir.entry_counts)

    @cached_property
    def counts(self) -> np.ndarray:
        return self.entry_table.column("count").to_numpy()

    @cached_property
    def rule(self) -> KeepRule:
        """The run's keep rule, as its last balance recorded it (reference language, fixed t)."""
        return KeepRule.from_table(self.entry_table, self.record.get("parameters"))

    @property
    def entries(self) -> list[str]:
        return self.entry_table.column("entry").to_pylist()

    def checked_seed(self, seed: int | None) -> int:
        """The seed a question is answered for (the one given, else the run's last), or a one-line error
        when the run has no complete keep thresholds for it."""
        chosen = self.seed if seed is None else seed
        if chosen is None:
            raise CurationError(
                f"{self.name} has no keep thresholds yet; run `curation balance` with --t and --seed first"
            )
        if chosen not in self.dir.complete_seeds(self.plan):  # the plan read once, not at every question
            raise CurationError(
                f"{self.name} has no keep thresholds for seed {chosen}; "
                f"run `curation balance {self.name} --t T --seed {chosen}` first"
            )
        return chosen

    def preview(self, seed: int | None = None, execution: Execution | None = None) -> BalancePreview | WorldwidePreview:
        """The seed's preview (exact sizes, estimates from its sample); built first if the run has none."""
        chosen = self.checked_seed(seed)
        if chosen not in self._previews:
            if not preview_files.is_complete(self.dir, chosen):
                execution = execution or Execution(progress=False)
                with execution.start() as engine:
                    build_preview(str(self.dir.root), chosen, execution, engine)
            self._previews[chosen] = preview_files.open_preview(self.dir, chosen)
        return self._previews[chosen]

    def sorted_thresholds(self, seed: int | None = None) -> np.ndarray:
        """Every matched pair's k, ascending (unmatched pairs, at +inf, are left out), memory-mapped. A
        worldwide run has no such order: each pair is judged at its language's t."""
        if self.worldwide:
            raise CurationError(
                f"{self.name} is a worldwide run: its thresholds are sorted per caption language (each judged at "
                "its language's t); ask size_at, t_for_size or languages_at instead"
            )
        return self.preview(seed).thresholds

    def pairs(self, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Every pair of the pool, matched or not, with the ids of the entries it matched (``entry_ids``,
        rows of the metadata) and its pair key: a table per shard, in the run's order. ``columns``: the
        pool's columns wanted (default: all of them)."""
        names = PairReader(self.dir, self.plan).pool_schema.names
        wanted = list(dict.fromkeys([*(names if columns is None else columns), ENTRY_IDS, PAIR_KEY]))
        for _, table in every_batch(self.dir.root, wanted):
            yield table

    def _entry_id_parts(self) -> Iterator[pa.ChunkedArray]:
        for index in self.shard_indices:
            yield read_parquet(self.dir.index_part(index), columns=[ENTRY_IDS]).column(ENTRY_IDS)

    def size_at(self, t: float, seed: int | None = None) -> int:
        return self.preview(seed).size_at(t)

    def expected_size_at(self, t: float) -> float:
        """Sum over matched pairs of P at t (each pair at its language's t in a worldwide run): what the
        subset size is on average over seeds (exact: a pass over every pair's entry list;
        ``preview().expected_size_at`` estimates it at once)."""
        return float(
            sum(
                balancing.keep_probabilities(ids, self.counts, self._pair_t(index, t)).sum()
                for index, ids in zip(self.shard_indices, self._entry_id_parts())
            )
        )

    def languages_at(self, t: float, seed: int | None = None) -> list[dict]:
        """A worldwide run at a reference t: per language its t, tail share, pairs, matched, kept and
        expected kept, exact, from one pass over every shard's entry lists, languages and thresholds."""
        chosen = self.checked_seed(seed)
        if not self.rule.worldwide:
            raise CurationError(f"{self.name} is not a worldwide run (its metadata has no languages)")
        keep = self.rule.at(t)
        tallies: worldwide.Tallies = {}
        for index in self.shard_indices:
            table = read_parquet(self.dir.index_part(index), columns=[ENTRY_IDS, CAPTION_LANGUAGE])
            ids, languages = table.column(ENTRY_IDS).combine_chunks(), table.column(CAPTION_LANGUAGE).combine_chunks()
            pair_t = keep.pair_t(languages)
            kept = keep.keeps(read_thresholds(str(self.dir.root), chosen, index), pair_t)
            expected = balancing.keep_probabilities(ids, self.counts, pair_t)
            worldwide.tally_languages(tallies, languages, ids, kept, expected)
        return worldwide.language_rows(
            self.counts, self.entry_table.column(ENTRY_LANGUAGE).to_pylist(), keep.per_language, tallies
        )

    def t_for_size(self, size: int, seed: int | None = None) -> tuple[float, int]:
        return self.preview(seed).t_for_size(size)

    def tail_share(self, t: float) -> float:
        """p(t); a worldwide run's: its reference language's, which every language's t matches."""
        return self.rule.tail_share(t)

    def t_for_tail_share(self, share: float) -> float:
        return self.rule.t_for_tail_share(share)

    def head_tail(self, t: float) -> counting.HeadTail:
        """Entries split at t; in a worldwide run each language's at its t, added up."""
        return self.rule.head_tail(t)

    @property
    def worldwide(self) -> bool:
        return ENTRY_LANGUAGE in self.entry_table.column_names

    def _pair_t(self, index: int, t: float) -> float | np.ndarray:
        """t for the shard's pairs: t itself, or in a worldwide run each pair's language's t."""
        keep = self.rule.at(t)
        if not keep.worldwide:
            return keep.t
        languages = read_parquet(self.dir.index_part(index), columns=[CAPTION_LANGUAGE]).column(CAPTION_LANGUAGE)
        return keep.pair_t(languages)

    def balanced_counts(self, t: float, seed: int | None = None) -> np.ndarray:
        """Matches per entry among the pairs kept at t."""
        chosen = self.checked_seed(seed)
        total = np.zeros(len(self.counts), dtype=np.int64)
        for index, ids in zip(self.shard_indices, self._entry_id_parts()):
            thresholds = read_thresholds(str(self.dir.root), chosen, index)
            total += balancing.balanced_counts(ids, thresholds, self._pair_t(index, t), len(self.counts))
        return total

    def keep_probabilities(self, t: float) -> Iterator[pa.Table]:
        """(id column if any, pair_key, P) for every pair, shard by shard: weights for online balancing."""
        id_column = self.plan.columns.id
        columns = ([id_column] if id_column else []) + [PAIR_KEY, ENTRY_IDS]
        pairs = PairReader(self.dir, self.plan)
        for index in self.shard_indices:
            table = pairs.table(index, columns)
            probabilities = balancing.keep_probabilities(table.column(ENTRY_IDS), self.counts, self._pair_t(index, t))
            yield table.drop_columns([ENTRY_IDS]).append_column("P", pa.array(probabilities))

    def write_keep_probabilities(self, path: str | Path, t: float) -> int:
        """P at t for every pair into one Parquet file (written atomically); returns the rows written."""
        tables = self.keep_probabilities(t)
        first = next(tables, None)
        if first is None:
            return 0
        rows = 0
        with atomic_parquet_writer(Path(path), first.schema) as writer:
            for table in chain([first], tables):
                writer.write_table(table)
                rows += table.num_rows
        return rows

    def entry_table_at(self, t: float, seed: int | None = None) -> pa.Table:
        """entry_id, entry, count, p_e and kept (matches among the pairs kept at t) for every entry; in
        a worldwide run p_e is at the entry's language's t."""
        if self.worldwide:
            probabilities = self.preview(seed).entry_probabilities(t)
        else:
            probabilities = balancing.entry_keep_probabilities(self.counts, t)
        return self.entry_table.append_column("p_e", pa.array(probabilities)).append_column(
            "kept", pa.array(self.balanced_counts(t, seed))
        )

    def report(
        self,
        ts: Sequence[float],
        sizes: Sequence[int] = (),
        shares: Sequence[float] = (),
        seed: int | None = None,
        top: int = 10,
        execution: Execution | None = None,
    ) -> dict:
        """What `curation stats` prints: sizes at each t, t for each size and tail share.

        Realised sizes, head/tail and every t are exact; the expected size is estimated from the
        preview's uniform sample of matched pairs (exact when the sample holds them all), with its
        standard error."""
        preview = self.preview(seed, execution)
        pairs = preview.pairs
        at_t = []
        for t in ts:
            kept = preview.size_at(t)
            head_tail = {k: v for k, v in preview.head_tail(t).as_dict().items() if k != "t"}
            expected = preview.expected_size_at(t)
            at_t.append(
                {
                    "t": t,
                    "kept": kept,
                    "share_of_pool": kept / pairs if pairs else 0.0,
                    "expected_kept": expected.value,
                    "expected_kept_stderr": expected.stderr,
                    "expected_kept_margin": expected.margin,
                    "expected_kept_exact": expected.exact,
                    **head_tail,
                    **({"languages": preview.language_rows(t)} if preview.rule.worldwide else {}),
                }
            )
        for_size = []
        for size in sizes:
            t, realised = preview.t_for_size(size)
            for_size.append({"target_size": size, "t": t, "size": realised})
        for_share = []
        for share in shares:  # a worldwide run's: the reference language's tail share
            t = preview.t_for_tail_share(share)
            for_share.append({"tail_share": share, "t": t, "realised_tail_share": preview.tail_share(t)})
        order = [int(i) for i in np.argsort(self.counts)[::-1][:top] if self.counts[i] > 0]
        entries = self.entry_table.column("entry")
        return {
            "run_dir": self.name,
            "seed": self.checked_seed(seed),
            **preview.rule.parameters,
            "pairs": pairs,
            "matched_pairs": preview.matched_pairs,
            "estimates": {
                "sampled_pairs": preview.sample.size,
                "matched_pairs": preview.matched_pairs,
                "interval": f"±{INTERVAL:g} standard errors",
                "exact": preview.sample.size >= preview.matched_pairs,
            },
            "at_t": at_t,
            "t_for_size": for_size,
            "t_for_tail_share": for_share,
            "top_entries": [{"entry_id": i, "entry": entries[i].as_py(), "count": int(self.counts[i])} for i in order],
        }
