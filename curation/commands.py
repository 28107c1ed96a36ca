"""Command lines of ``python -m curation``, built in one place for everything that starts one in the
background (the Jobs page, the dashboard's sample run), so they cannot drift from the CLI."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def curation_command(arguments: Sequence[str]) -> list[str]:
    """``python -m curation ARGUMENTS`` with this interpreter (the one that has the dependencies)."""
    return [sys.executable, "-m", "curation", *arguments]


def run_arguments(
    pool: str, metadata: str, t: float, seed: int, out: str, workers: int | None = None, quiet: bool = False
) -> list[str]:
    """The arguments of ``run`` for one request; t as ``repr`` of a float, so it survives exactly."""
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
    if workers:
        arguments += ["--workers", str(int(workers))]
    if quiet:
        arguments.append("--quiet")
    return arguments
