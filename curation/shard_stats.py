"""The match stage's row accounting as a value that adds up.

Each shard's stats are stored in its marker, ``shards/NNNNN.json``; the run's are their sum, stored
under ``rows`` in ``run.json`` (docs/design.md, "The run directory"). The JSON of both is a contract:
runs made before this module must still resume, so the field names and their order stay as they were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class RowStats:
    """How the rows of a batch, a shard or a run split up; ``+`` adds them field by field."""

    rows: int = 0
    matched: int = 0
    unmatched: int = 0
    null_or_empty_text: int = 0
    matches: int = 0

    def __add__(self, other: RowStats) -> RowStats:
        if not isinstance(other, RowStats):
            return NotImplemented
        return RowStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def accounted(self) -> bool:
        """Every row is matched, unmatched or without text: what a run checks before trusting its counts."""
        return self.matched + self.unmatched + self.null_or_empty_text == self.rows

    def as_run_rows(self) -> dict:
        """The ``rows`` of run.json, where the rows read are called ``in``."""
        values = asdict(self)
        return {"in": values.pop("rows"), **values}


@dataclass(frozen=True)
class ShardStats:
    """One matched shard: which it was, how it was matched, and its rows (its marker's content)."""

    shard: int
    path: str
    matcher: str
    rows: RowStats

    def as_json(self) -> dict:
        return {"shard": self.shard, "path": self.path, "matcher": self.matcher, **asdict(self.rows)}

    @classmethod
    def from_json(cls, value: dict) -> ShardStats:
        return cls(
            value["shard"],
            value["path"],
            value["matcher"],
            RowStats(**{f.name: int(value[f.name]) for f in fields(RowStats)}),
        )
