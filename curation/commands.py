"""Command lines of ``python -m curation``, built in one place for everything that starts one in the
background (the Jobs page, the dashboard's sample run), so they cannot drift from the CLI."""

from __future__ import annotations

import sys
from collections.abc import Sequence

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


def run_arguments(
    pool: str,
    metadata: str,
    t: float,
    seed: int,
    out: str,
    workers: int | None = None,
    quiet: bool = False,
    language_column: str | None = None,
    text_columns: Sequence[str] = (),
) -> list[str]:
    """The arguments of ``run`` for one request; t as ``repr`` of a float, so it survives exactly. One
    text column is ``--text-column``, several are ``--text-columns`` (MetaCLIP 2's texts per image)."""
    arguments = [
        "run",
        "--pool",
        pool,
        "--metadata",
        metadata,
        "--t",
        repr(float(t)),
        "--seed",
        str(int(seed)),
        "--out",
        out,
    ]
    if language_column:
        arguments += ["--language-column", language_column]
    if len(text_columns) == 1:
        arguments += ["--text-column", text_columns[0]]
    elif text_columns:
        arguments += ["--text-columns", ",".join(text_columns)]
    if workers:
        arguments += ["--workers", str(int(workers))]
    if quiet:
        arguments.append("--quiet")
    return arguments
