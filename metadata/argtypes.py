"""Command-line plumbing shared by `python -m metadata` and `python -m curation`: a parser whose usage
errors are one line, and argument types that say what they expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

EXIT_USAGE = 2  # bad input: the message says what to change


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def checked(convert: Callable[[str], Any], accept: Callable[[Any], bool], message: str) -> Callable[[str], Any]:
    """An argparse type: convert, check, and on failure say what was expected in one line."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{message}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{message}, got {text!r}")
        return value

    return parse
