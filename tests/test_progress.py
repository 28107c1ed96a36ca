"""Progress (curation/progress.py): a tqdm bar on a terminal, plain lines in a log that the Jobs page
can read back (curation/jobs.py, ``log_progress``)."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from curation.jobs import log_progress
from studio_common.progress import LINE, ProgressLines, progress_bar

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines_of(total: int, steps: list[int], desc: str = "match", unit: str = "pairs") -> list[str]:
    """What a log receives for these updates when only the share of the total decides (no clock)."""
    log = io.StringIO()
    with ProgressLines(total, desc, unit, log, every_s=math.inf) as bar:
        for step in steps:
            bar.update(step)
    assert "\r" not in log.getvalue()
    return log.getvalue().splitlines()


def test_a_log_gets_a_line_per_tenth_and_the_last_count() -> None:
    lines = lines_of(3_000_000, [100_000] * 30)
    assert len(lines) == 10
    assert lines[2] == "match: 900,000 of 3,000,000 pairs (30%)"
    assert lines[-1] == "match: 3,000,000 of 3,000,000 pairs (100%)"


def test_a_count_short_of_the_total_is_the_last_line() -> None:
    lines = lines_of(1000, [30, 30])
    assert lines == ["match: 60 of 1,000 pairs (6%)"]


def test_no_total_gives_lines_without_a_share() -> None:
    assert lines_of(0, [0]) == ["match: 0 of 0 pairs"]


def test_a_failed_stage_prints_no_last_count() -> None:
    log = io.StringIO()
    with pytest.raises(RuntimeError):
        with ProgressLines(100, "match", "pairs", log, every_s=math.inf) as bar:
            bar.update(5)
            raise RuntimeError("a stage failed")
    assert log.getvalue() == ""


def test_the_helper_draws_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    terminal, log = Terminal(), io.StringIO()
    with progress_bar(10, "export", "shards", file=terminal) as bar:
        assert isinstance(bar, tqdm)
        bar.update(10)
    assert "\r" in terminal.getvalue()
    with progress_bar(10, "export", "shards", file=log) as bar:
        assert isinstance(bar, ProgressLines)
        bar.update(10)
    assert log.getvalue().splitlines()[-1] == "export: 10 of 10 shards (100%)"


def test_quiet_writes_nothing(capsys: pytest.CaptureFixture) -> None:
    for stream in (Terminal(), io.StringIO()):
        with progress_bar(10, "export", "shards", enabled=False, file=stream) as bar:
            bar.update(10)
        assert stream.getvalue() == ""
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("desc", ["export", "balance (t=200, seed 0)", "copy s3://bucket/runs/a"])
def test_the_jobs_page_reads_the_lines_back(tmp_path: Path, desc: str) -> None:
    job = tmp_path / "job-1"
    job.mkdir()
    lines = lines_of(4_000_000, [1_000_000, 500_000], desc, "B")
    (job / "log.txt").write_text("using text column 'caption'\n" + "\n".join(lines) + "\n")
    progress, stage = log_progress(tmp_path, "job-1")
    assert progress == pytest.approx(1_500_000 / 4_000_000)
    assert stage == f"{desc}: 1,500,000 of 4,000,000"
    assert LINE.match(lines[-1])["label"] == desc


def test_a_log_without_progress_lines_is_starting(tmp_path: Path) -> None:
    (tmp_path / "job-2").mkdir()
    (tmp_path / "job-2" / "log.txt").write_text("using text column 'caption'\n")
    assert log_progress(tmp_path, "job-2") == (0.0, "starting")


@pytest.mark.slow
def test_a_run_with_two_workers_logs_plain_lines_as_shards_land(tmp_path: Path, pool: Path, metadata: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "curation",
            "run",
            "--pool",
            pool,
            "--metadata",
            metadata,
            "--t",
            "40",
            "--out",
            tmp_path / "out",
            "--workers",
            "2",
            "--shard-rows",
            "500",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    matched = [LINE.match(line) for line in result.stderr.splitlines() if line.startswith("match:")]
    done = [int(found["done"].replace(",", "")) for found in matched]
    assert len(done) > 1 and done == sorted(done)  # more than one line: not one report when all are done
    assert done[-1] == int(matched[-1]["total"].replace(",", ""))
