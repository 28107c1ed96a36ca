"""Command lines of ``python -m curation``, built in one place for everything that starts one in the
background (the Jobs page, the dashboard's sample run), so they cannot drift from the CLI."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from studio_common.errors import CurationError


def curation_command(arguments: Sequence[str]) -> list[str]:
    """``python -m curation ARGUMENTS`` with this interpreter (the one that has the dependencies)."""
    return [sys.executable, "-m", "curation", *arguments]


def column_names(text: str) -> list[str]:
    """Column names as typed in a form, separated by commas ("alt, title"); nothing typed is none."""
    return [name.strip() for name in text.split(",")] if text.strip() else []


def check_text_columns(names: Sequence[str]) -> None:
    """Names the run takes as its text columns: each one said, once, without a comma (the CLI's
    separator), so a job is refused here rather than failing once started."""
    if any(not name.strip() or "," in name for name in names):
        raise CurationError(f"text columns must be column names separated by commas, got {','.join(names)!r}")
    if len(set(names)) != len(names):
        raise CurationError(f"text columns name a column twice: {','.join(names)}")


@dataclass(frozen=True)
class RunRequest:
    """One ``curation run`` as a job asks for it, and as the job's record keeps it so that Resume repeats
    every option: the one place that lists a background run's options."""

    pool: str
    metadata: str
    t: float
    seed: int
    out: str
    workers: int | None = None
    language_column: str | None = None  # worldwide runs: each pair's caption language
    text_columns: tuple[str, ...] = ()  # one is --text-column; several are MetaCLIP 2's texts per image

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> RunRequest:
        """The request a job's record holds (older records lack the newer options)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in record.items() if key in known}
        return cls(**{**values, "text_columns": tuple(values.get("text_columns") or ())})

    def record(self) -> dict:
        """The request as JSON keeps it."""
        return {**asdict(self), "text_columns": list(self.text_columns)}

    def arguments(self, quiet: bool = False) -> list[str]:
        """The arguments of ``run``; t as ``repr`` of a float, so it survives exactly."""
        arguments = ["run", "--pool", self.pool, "--metadata", self.metadata, "--t", repr(float(self.t))]
        arguments += ["--seed", str(int(self.seed)), "--out", self.out]
        if self.language_column:
            arguments += ["--language-column", self.language_column]
        if len(self.text_columns) == 1:
            arguments += ["--text-column", self.text_columns[0]]
        elif self.text_columns:
            arguments += ["--text-columns", ",".join(self.text_columns)]
        if self.workers:
            arguments += ["--workers", str(int(self.workers))]
        if quiet:
            arguments.append("--quiet")
        return arguments
