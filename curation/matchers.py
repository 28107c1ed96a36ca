"""The two matchers behind one interface, and where the token matcher's tables live in a run.

- ``tokens`` (the default): the token-trie matcher of curation.token_matcher. Its tables are built
  once per run by the driver and stored in the run directory as .npy files; every worker process
  (local or Ray) maps them read-only instead of rebuilding or unpickling anything.
- ``aho-corasick``: MetaCLIP's own method on pyahocorasick (curation.matching), kept as the
  reference; each worker process builds its automaton from the metadata file.

Both give identical results (tests/test_matchers.py compares them on generated adversarial input), so
a run may be resumed with either.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from curation import matching, token_matcher, worldwide
from curation.rundir import RunDir, atomic_directory, atomic_write_json
from studio_common.errors import CurationError

MATCHERS = ("tokens", "aho-corasick")
WORLDWIDE = "worldwide"  # what a run records as its matcher when the metadata has languages
DEFAULT_MATCHER = "tokens"
TABLES_FORMAT = 3


class Matcher(Protocol):
    """One signature for every matcher, so callers never ask which one they hold."""

    # The metadata's languages when captions are matched per language (MetaCLIP 2), else None: then
    # a caller passes each caption's language, found among these (curation/languages.py).
    languages: frozenset[str] | None

    def match_batch(self, texts: pa.Array, languages: pa.Array | None = None) -> pa.ListArray:
        """Ascending unique entry ids of every text, as list<int32>; ``languages``: each caption's
        language, read only by a per-language matcher."""
        ...


class TokenMatcher:
    languages = None

    def __init__(self, tables: token_matcher.TokenTables) -> None:
        self.tables = tables

    def match_batch(self, texts: pa.Array, languages: pa.Array | None = None) -> pa.ListArray:
        return token_matcher.match_batch(self.tables, texts)


class AhoCorasickMatcher:
    languages = None

    def __init__(self, entries: list[str]) -> None:
        self.automaton = matching.build_automaton(entries)

    def match_batch(self, texts: pa.Array, languages: pa.Array | None = None) -> pa.ListArray:
        return matching.match_batch(self.automaton, texts)


class WorldwideMatcher:
    """MetaCLIP 2's rule (curation.worldwide): one automaton per language of the metadata; a caption
    is matched against its own language's entries only."""

    def __init__(self, entries: list[str], languages: list[str]) -> None:
        self.automata = worldwide.build_automata(entries, languages)
        self.languages: frozenset[str] | None = frozenset(self.automata)

    def match_batch(self, texts: pa.Array, languages: pa.Array | None = None) -> pa.ListArray:
        if languages is None:
            raise ValueError("worldwide metadata matches each caption in its language: pass the languages")
        return worldwide.match_batch_by_language(self.automata, texts, languages)


# --------------------------------------------------------------------------------------------------
# The token tables in a run directory: RUN/matcher/tokens/{tables.json, NAME.npy}
# --------------------------------------------------------------------------------------------------


def tables_dir(root: Path) -> Path:
    return RunDir(root).matcher_tables


def _description(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "tables.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_tables(root: Path, entries: list[str], metadata_fingerprint: str) -> float:
    """Build and store the token tables of this metadata unless the run already holds them.

    Returns the seconds spent building (0 when they were there). The directory appears whole: it is
    written under a temporary name and renamed into place, with ``tables.json`` written last inside it.
    """
    target = tables_dir(root)
    described = _description(target)
    if (
        described is not None
        and described.get("metadata_fingerprint") == metadata_fingerprint
        and described.get("format") == TABLES_FORMAT
    ):
        return 0.0
    started = time.perf_counter()
    tables = token_matcher.build_tables(entries)
    built = time.perf_counter() - started
    with atomic_directory(target) as staging:  # replaces tables of other metadata: never mix the two
        for name, array in tables.arrays().items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        atomic_write_json(
            staging / "tables.json",
            {
                "format": TABLES_FORMAT,
                "metadata_fingerprint": metadata_fingerprint,
                "entries": len(entries),
                "vocabulary": tables.vocabulary_size,
                "nodes": len(tables.terminal) - 1,
                "build_s": round(built, 3),
            },
        )
    return built


def load_tables(root: Path, metadata_fingerprint: str) -> token_matcher.TokenTables:
    """The run's token tables, memory-mapped (pages are shared by every process on the machine)."""
    directory = tables_dir(root)
    described = _description(directory)
    if described is None:
        raise CurationError(f"{directory} holds no matcher tables; run the match again to rebuild them")
    if described.get("metadata_fingerprint") != metadata_fingerprint:
        raise CurationError(
            f"the matcher tables in {directory} belong to other metadata; remove that folder and run the match again"
        )
    if described.get("format") != TABLES_FORMAT:
        raise CurationError(
            f"the matcher tables in {directory} were made by another version of the studio; "
            "run the match again to rebuild them"
        )
    arrays = {}
    for name in token_matcher.TokenTables.__dataclass_fields__:
        try:
            arrays[name] = np.load(directory / f"{name}.npy", mmap_mode="r").view(np.ndarray)
        except (OSError, ValueError) as error:
            raise CurationError(
                f"cannot read matcher table {directory / name}.npy: {error}; remove that folder and run the match again"
            ) from None
    return token_matcher.TokenTables.from_arrays(arrays)
