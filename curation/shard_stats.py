"""The match stage's row accounting as a value that adds up.

Each shard's stats are stored in its marker, ``shards/NNNNN.json``; the run's are their sum, stored
under ``rows`` in ``run.json`` (docs/design.md, "The run directory"). The JSON of both is a contract:
runs made before this module must still resume, so the field names and their order stay as they were.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields


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


Decision = tuple[str, str, str | None, str]  # (source, identifier code, metadata language, mapping)


@dataclass(frozen=True)
class LanguageDecisions:
    """How a worldwide run's captions got their languages: captions per decision, where a decision is
    where the code came from (the column, lid.176, the script; curation.languages.SOURCES), the code,
    the metadata language it was matched in (None: none) and how the code reached it (MAPPINGS).
    ``+`` adds them; ``shards/NNNNN.json`` and run.json store them under ``language_decisions``."""

    captions: Mapping[Decision, int] = field(default_factory=dict)  # a dict: results travel between processes

    @classmethod
    def tally(cls, decisions: Iterable[Decision]) -> LanguageDecisions:
        return cls._of(Counter(decisions))

    @classmethod
    def _of(cls, counted: Counter) -> LanguageDecisions:
        return cls(dict(counted))

    def __add__(self, other: LanguageDecisions) -> LanguageDecisions:
        if not isinstance(other, LanguageDecisions):
            return NotImplemented
        total = Counter(self.captions)
        total.update(other.captions)
        return self._of(total)

    @property
    def total(self) -> int:
        return sum(self.captions.values())

    def by_source(self) -> dict[str, int]:
        """Captions per source, most first."""
        totals: Counter = Counter()
        for (source, _, _, _), n in self.captions.items():
            totals[source] += n
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def as_json(self) -> list[dict]:
        """Most captions first, ties in order of source, code and language: one tally, one JSON."""
        ordered = sorted(self.captions.items(), key=lambda item: (-item[1], item[0][0], item[0][1], item[0][2] or ""))
        return [
            {"source": source, "code": code, "language": language, "mapping": mapping, "captions": n}
            for (source, code, language, mapping), n in ordered
        ]

    @classmethod
    def from_json(cls, rows: list[dict]) -> LanguageDecisions:
        total: Counter = Counter()
        for row in rows:
            total[(row["source"], row["code"], row["language"], row["mapping"])] += int(row["captions"])
        return cls._of(total)


@dataclass(frozen=True)
class ShardStats:
    """One matched shard: which it was, how it was matched, its rows, and in a worldwide run how its
    captions got their languages (its marker's content)."""

    shard: int
    path: str
    matcher: str
    rows: RowStats
    languages: LanguageDecisions | None = None

    def as_json(self) -> dict:
        languages = {"language_decisions": self.languages.as_json()} if self.languages is not None else {}
        return {"shard": self.shard, "path": self.path, "matcher": self.matcher, **asdict(self.rows), **languages}

    @classmethod
    def from_json(cls, value: dict) -> ShardStats:
        return cls(
            value["shard"],
            value["path"],
            value["matcher"],
            RowStats(**{f.name: int(value[f.name]) for f in fields(RowStats)}),
            LanguageDecisions.from_json(value["language_decisions"]) if "language_decisions" in value else None,
        )
