"""`python -m curation run` command lines, built in one place and understood by the CLI."""

from __future__ import annotations

import sys

from curation.cli import build_parser
from curation.commands import RunRequest, curation_command


def test_a_run_requests_arguments_are_what_the_cli_reads() -> None:
    arguments = RunRequest("pool", "m.json", 0.1, 7, "out", workers=2).arguments(quiet=True)
    assert arguments == [
        "run",
        "--pool",
        "pool",
        "--metadata",
        "m.json",
        "--t",
        "0.1",
        "--seed",
        "7",
        "--out",
        "out",
        "--workers",
        "2",
        "--quiet",
    ]
    parsed = build_parser().parse_args(arguments)
    assert (parsed.t, parsed.seed, parsed.workers, parsed.quiet) == (0.1, 7, 2, True)
    assert RunRequest("p", "m", 200, 0, "o").arguments()[-2:] == ["--out", "o"]  # no workers, not quiet: nothing added


def test_the_command_runs_this_interpreter() -> None:
    assert curation_command(["stats", "x"]) == [sys.executable, "-m", "curation", "stats", "x"]
