"""Which tar shards a spec names: brace ranges as webdataset writes them ('shards/{00000..00099}.tar'),
comma lists ('{train,val}'), then globs, on local disk or in object storage.

``expand_braces`` is pure (the shell's brace expansion, as webdataset's readers apply it to a URL), so
it is tested on its own; ``input_shards`` is the one place that asks a disk or a store which files
exist and how large they are.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from studio_common import storage
from studio_common.errors import CurationError

MAX_EXPANDED = 10_000_000  # names one spec may expand to: a typo such as {0..99999999999} stops here
_NUMBERS = re.compile(r"([+-]?\d+)\.\.([+-]?\d+)(?:\.\.([+-]?\d+))?")
_LETTERS = re.compile(r"([A-Za-z])\.\.([A-Za-z])(?:\.\.([+-]?\d+))?")
READ_BUFFER = 1 << 20


@dataclass(frozen=True)
class InputShard:
    path: str  # a local path or a URI
    size: int  # bytes, for the progress bar and the summary


def expand_braces(pattern: str) -> list[str]:
    """Every name a brace pattern stands for, in the shell's order (the leftmost brace varies slowest).
    ``{a..b}`` and ``{a..b..step}`` count up or down, zero-padded to the wider end when an end is
    written with a leading zero (``{00000..00099}``); ``{x..z}`` runs over letters; ``{a,b}`` lists
    alternatives, which may hold braces themselves. A brace that is none of these stays as written."""
    names = _expand(pattern)
    if len(names) > MAX_EXPANDED:
        raise CurationError(f"{pattern!r} names {len(names):,} shards, more than {MAX_EXPANDED:,}: check the range")
    return names


def _expand(pattern: str) -> list[str]:
    for opening in (i for i, char in enumerate(pattern) if char == "{"):
        closing = _matching_brace(pattern, opening)
        if closing is None:
            continue
        alternatives = _alternatives(pattern[opening + 1 : closing])
        if alternatives is None:
            continue
        head, tails = pattern[:opening], _expand(pattern[closing + 1 :])
        return [head + name + tail for alternative in alternatives for name in _expand(alternative) for tail in tails]
    return [pattern]


def _matching_brace(pattern: str, opening: int) -> int | None:
    depth = 0
    for i in range(opening, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[i], 0)
        if depth == 0:
            return i
    return None


def _alternatives(inner: str) -> list[str] | None:
    """What a brace's content expands to (before its own braces are), or None when it is no expression."""
    if numbers := _NUMBERS.fullmatch(inner):
        return _number_range(*numbers.groups())
    if letters := _LETTERS.fullmatch(inner):
        first, last, step = letters.groups()
        return [chr(code) for code in _steps(ord(first), ord(last), step)]
    parts, depth, start = [], 0, 0
    for i, char in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    return [*parts, inner[start:]] if parts else None


def _number_range(first: str, last: str, step: str | None) -> list[str]:
    def padded(end: str) -> bool:
        digits = end.lstrip("+-")
        return len(digits) > 1 and digits.startswith("0")

    width = max(len(first), len(last)) if padded(first) or padded(last) else 0
    return [f"{n:0{width}d}" for n in _steps(int(first), int(last), step)]


def _steps(first: int, last: int, step: str | None) -> range:
    size = abs(int(step)) if step else 1
    size = size or 1
    return range(first, last + 1, size) if first <= last else range(first, last - 1, -size)


def _has_glob(name: str) -> bool:
    return glob.has_magic(name)


def input_shards(spec: str) -> list[InputShard]:
    """The tar shards a spec names, braces expanded then globs listed (sorted), each once, in order;
    a named shard that does not exist, or a glob that matches nothing, is refused in one line."""
    found: dict[str, int] = {}
    for name in expand_braces(spec):
        for path, size in _listed(name) if _has_glob(name) else [(name, _size(name))]:
            found.setdefault(path, size)
    if not found:
        raise CurationError(f"no input shards in {spec!r}")
    return [InputShard(path, size) for path, size in found.items()]


def _listed(pattern: str) -> list[tuple[str, int]]:
    if storage.is_uri(pattern):
        files = storage.glob_files(pattern)
    else:
        files = [(path, os.path.getsize(path)) for path in sorted(glob.glob(pattern)) if os.path.isfile(path)]
    if not files:
        raise CurationError(f"no input shards match {pattern}")
    return files


def _size(path: str) -> int:
    if storage.is_uri(path):
        return storage.file_size(path, "input shard")
    try:
        return os.path.getsize(path)
    except OSError:
        raise CurationError(f"input shard not found: {path}") from None


def open_shard(path: str) -> BinaryIO:
    """A shard read front to back, buffered: a local file, or one streamed request to its store."""
    if storage.is_uri(path):
        return storage.open_stream(path, READ_BUFFER)
    return open(path, "rb", buffering=READ_BUFFER)
