"""Command-line plumbing shared by `curation-metadata` and `curation`: a parser whose usage
errors are one line, and argument types that say what they expected."""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

EXIT_USAGE = 2  # bad input: the message says what to change


NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # a negative number is a value, not an option


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points to --help, and a mistyped option is named.

    argparse checks required options before unknown ones, so ``--metdata m.json`` would only say
    that ``--metadata`` is missing; the option typed is the one to correct."""

    def parse_known_args(
        self,
        args: Sequence[str] | None = None,  # type: ignore[override]
        namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        self._refuse_unknown_options(extras)  # here, where the options of a command are known
        return namespace, extras

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("the following arguments are required"):
            self._refuse_unknown_options(getattr(self, "_given", []))
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")

    def _refuse_unknown_options(self, given: Sequence[str]) -> None:
        """A one-line error naming the first option given that this parser does not know, whole or
        (``allow_abbrev``) abbreviated, with the closest one it does know."""
        for argument in given:
            if argument == "--":
                return
            name = argument.split("=", 1)[0]
            if name.startswith("-") and len(name) > 1 and not NUMBER.match(name) and not self._knows(name):
                self.exit(
                    EXIT_USAGE,
                    f"error: unrecognized option {name}{self._suggestion(name)} (see `{self.prog} --help`)\n",
                )

    def _knows(self, name: str) -> bool:
        options = self._option_string_actions
        return name in options or (
            self.allow_abbrev and name.startswith("--") and any(option.startswith(name) for option in options)
        )

    def _suggestion(self, name: str) -> str:
        # Compared without their dashes, which every option shares and which would make any two alike.
        options = {option.lstrip("-"): option for option in self._option_string_actions}
        close = difflib.get_close_matches(name.lstrip("-"), list(options), n=1)
        return f" (did you mean {options[close[0]]}?)" if close else ""


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


# The types both command lines use (curation's and metadata's): one definition each.
positive_int = checked(int, lambda v: v >= 1, "expected a positive integer")
non_negative_int = checked(int, lambda v: v >= 0, "expected a whole number >= 0")
finite_number = checked(float, math.isfinite, "expected a number")
positive_number = checked(float, lambda v: math.isfinite(v) and v > 0, "expected a positive number")
