"""Progress of long stages, one helper for every command: a live tqdm bar on a terminal, and plain
lines ("match: 300,000 of 3,000,000 pairs (10%)") when stderr is a file or a pipe.

A bar redrawn with carriage returns makes a log file unreadable, and the Jobs page reads a job's
progress from its log (curation/jobs.py, ``log_progress``, which parses the lines written here).
"""

from __future__ import annotations

import re
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO, TypeAlias

if TYPE_CHECKING:  # imported where a bar is drawn: a quiet command (a new t in `balance`) never pays for it
    from tqdm import tqdm

LINE_EVERY_S = 5.0  # a plain line at least this often while the count moves...
LINE_EVERY_SHARE = 0.1  # ...and whenever it passes another tenth of the total

# What ``ProgressLines`` prints, for the readers of logs; the label may hold colons (a URI).
LINE = re.compile(r"^(?P<label>.+?): (?P<done>\d[\d,]*) of (?P<total>\d[\d,]*)\b")


def progress_line(label: str, done: int, total: int, unit: str) -> str:
    """One line of progress; the percentage only when there is a total to take it of."""
    share = f" ({done / total:.0%})" if total else ""
    return f"{label}: {done:,} of {total:,} {unit}{share}"


class ProgressLines:
    """tqdm's ``n``, ``total`` and ``update`` for a log: a line every tenth of the way or every few
    seconds, and the last count when it closes; never a carriage return."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        file: TextIO,
        every_s: float = LINE_EVERY_S,
        every_share: float = LINE_EVERY_SHARE,
    ) -> None:
        self.n, self.total, self.desc, self.unit, self.file = 0, total, desc, unit, file
        self.every_s, self.every_share = every_s, every_share
        self._printed: int | None = None
        self._printed_at = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._due():
            self._print()

    def _due(self) -> bool:
        """Whether the count moved far enough (a step of the total) or long enough ago for a line."""
        last = self._printed or 0
        step = max(1, int(self.total * self.every_share)) if self.total else None
        crossed = step is not None and self.n // step > last // step
        return crossed or time.monotonic() - self._printed_at >= self.every_s

    def _print(self) -> None:
        print(progress_line(self.desc, int(self.n), int(self.total or 0), self.unit), file=self.file, flush=True)
        self._printed, self._printed_at = self.n, time.monotonic()

    def close(self) -> None:
        if self._printed != self.n:
            self._print()

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:  # a failed stage says why in its error; a last count would only hide it
            self.close()


class Silent(ProgressLines):
    """Counts, prints nothing (``--quiet``)."""

    def _print(self) -> None:
        self._printed, self._printed_at = self.n, time.monotonic()


Bar: TypeAlias = "tqdm | ProgressLines"


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, file: TextIO | None = None) -> Bar:
    """A bar on a terminal, lines in a log, nothing when disabled (``--quiet``); ``file``: stderr."""
    file = file or sys.stderr
    if not enabled:
        return Silent(total, desc, unit, file)
    if not _is_terminal(file):
        return ProgressLines(total, desc, unit, file)
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit in ("pairs", "B"),
        file=file,
        dynamic_ncols=True,
    )


def _is_terminal(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or bare stream: not a terminal
        return False
