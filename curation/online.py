"""Online balancing: a fresh balanced subset every epoch, drawn while training reads the pairs.

MetaCLIP 2 trains with online balancing: instead of one curated subset, each epoch keeps a pair with its
probability P = 1 - prod over its entries of (1 - p_e), p_e = t / max(c_e, t), drawn anew. Here an epoch's
draw is the run's own keep rule with the seed of that epoch (``epoch_seed``): a pair is kept in epoch e
iff its keep threshold under that seed is below its t (its language's in a worldwide run). So:

- the chance of being kept in any epoch is exactly P (the threshold's draws are independent per entry);
- the draw is a hash of (seed, epoch, pair key, entry): every worker, every split of the stream and
  every restart decides the same pair the same way, with no state to share;
- epoch 0 at the run's seed *is* the run's curated subset at t (the same thresholds), and every later
  epoch is an independent draw with the same P.

Pure Python and numpy: the sampler takes pair keys and entry ids (a run's index or an exported manifest
with ``pair_key`` and ``entry_ids`` columns gives both), never a framework's types; the README shows it
inside a PyTorch IterableDataset and a webdataset pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.balancing import splitmix64
from curation.keep_rule import KeepAt, KeepRule
from curation.rundir import RunDir, read_json, read_parquet
from studio_common.errors import CurationError

EPOCH_SALT = 0x45504F4348  # makes an epoch's seed independent of the run's seeds that are plain integers


def epoch_seed(seed: int, epoch: int) -> int:
    """The keep draw's seed in ``epoch``: the run's seed itself in epoch 0, else a splitmix64 mix of the
    seed and the epoch (a 64-bit integer that no small plain seed collides with in practice)."""
    if epoch < 0 or int(epoch) != epoch:
        raise CurationError(f"an epoch is a whole number from 0, got {epoch!r}")
    if epoch == 0:
        return int(seed)
    mixed = splitmix64(np.array([(int(seed) ^ EPOCH_SALT) % 2**64], dtype=np.uint64))[0]
    return int(splitmix64(np.array([mixed ^ np.uint64(int(epoch))], dtype=np.uint64))[0])


class OnlineBalancer:
    """A run's keep rule at t, asked epoch by epoch. Build it once per worker (``from_run``); it holds
    the entry counts (and languages) only, a few MB for 500k entries."""

    def __init__(self, rule: KeepRule, t: float, seed: int = 0) -> None:
        if not t > 0:
            raise CurationError(f"t must be a positive number, got {t}")
        self.rule, self.t, self.seed = rule, float(t), int(seed)
        self.at: KeepAt = rule.at(self.t)

    @classmethod
    def from_run(cls, run: str | Path, t: float, seed: int | None = None) -> OnlineBalancer:
        """The balancer of a matched run directory (a path, or an s3:// or gs:// URI), at t; ``seed``
        defaults to the run's, so that epoch 0 is the run's curated subset at t."""
        directory = RunDir.open(str(run))
        if not directory.fetch(directory.entry_counts):
            raise CurationError(
                f"{run} is not a matched run directory (no entry_counts.parquet): run `curation run` first"
            )
        record = read_json(directory.run_json) if directory.fetch(directory.run_json) else {}
        rule = KeepRule.from_table(read_parquet(directory.entry_counts), record.get("parameters", {}))
        return cls(rule, t, record.get("parameters", {}).get("seed", 0) if seed is None else seed)

    def probabilities(self, entry_ids: pa.ListArray | Sequence[Sequence[int]], languages: pa.Array | None = None):
        """P of each pair: its chance to be kept in any one epoch."""
        self._check_languages(languages)
        return self.rule.pair_probabilities(_lists(entry_ids), self.t, _strings(languages))

    def keeps(
        self,
        pair_keys: np.ndarray | Sequence[int],
        entry_ids: pa.ListArray | Sequence[Sequence[int]],
        epoch: int,
        languages: pa.Array | Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """Which of these pairs epoch ``epoch`` keeps (a boolean per pair, in order)."""
        self._check_languages(languages)
        keys = np.asarray(pair_keys, dtype=np.uint64)
        thresholds = self.rule.thresholds(_lists(entry_ids), keys, epoch_seed(self.seed, epoch))
        return self.at.keeps(thresholds, self.at.pair_t(_strings(languages)))

    def _check_languages(self, languages: object) -> None:
        if self.rule.worldwide and languages is None:
            raise CurationError(
                "this run is worldwide: each pair is judged at its caption language's t, so pass the pairs' "
                "languages (the run's caption_language column)"
            )

    def keep(self, pair_key: int, entry_ids: Sequence[int], epoch: int, language: str | None = None) -> bool:
        """One sample's answer, for a loader that sees one sample at a time."""
        return bool(self.keeps([pair_key], [list(entry_ids)], epoch, None if language is None else [language])[0])


def _lists(entry_ids: pa.ListArray | pa.ChunkedArray | Sequence[Sequence[int]]) -> pa.ListArray:
    if isinstance(entry_ids, pa.ChunkedArray):
        return entry_ids.combine_chunks()
    if isinstance(entry_ids, pa.Array):
        return entry_ids
    return pa.array([list(ids) for ids in entry_ids], type=pa.list_(pa.int32()))


def _strings(languages: pa.Array | Sequence[str | None] | None) -> pa.Array | None:
    if languages is None or isinstance(languages, pa.Array | pa.ChunkedArray):
        return languages
    return pa.array(list(languages), type=pa.string())
