"""The token matcher against its reference (pyahocorasick, MetaCLIP's own method) and the naive rule.

Hypothesis generates entries and captions from an adversarial alphabet: spaces (single, doubled,
leading, trailing), every wrapped punctuation mark, tab / newline / carriage return, a non-breaking
space and an ideographic space (whitespace that is *not* a separator), multi-byte characters, entries
that are prefixes or suffixes of each other, 1-6 tokens. Both matchers must agree exactly.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pyarrow as pa
import pytest
from conftest import naive_match
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation import matchers, token_matcher
from curation.matching import build_automaton
from curation.matching import match_batch as reference_batch
from studio_common.errors import CurationError

PIECES = [
    "a",
    "b",
    "ab",
    "ba",
    "A",
    "é",
    "東",
    "😀",
    "\u00a0",
    "\u3000",
    "-",
    "'",
    "(",
    ")",
    ",",
    ".",
    ";",
    ":",
    "?",
    "!",
    "`",
    "\t",
    "\n",
    "\r",
]
SEPARATORS = ["", " ", " ", "  ", "   ", ",", ", ", " ,", ".", "\t", "\n", "\r\n", "\u00a0"]

# Cases are decoded from a few byte strings rather than drawn piece by piece: hypothesis spends most
# of its time per draw, and four draws per case keep 10,000 cases affordable. It still mutates and
# shrinks the bytes (shorter, smaller bytes: a simpler case, ending in "a" and single spaces).
ENTRY_END = 250  # a byte from here on ends an entry
SPACE_FROM = 160  # bytes 160-249 are spaces inside an entry: leading, trailing and doubled ones too
TEXT_END, NULL_TEXT, EMPTY_TEXT = 255, 254, 253  # in the texts' bytes


def decode_entries(data: bytes) -> list[str]:
    """At most 6 raw entries: pieces of the alphabet and spaces, split at ENTRY_END bytes."""
    raw = [
        "".join(PIECES[b % len(PIECES)] if b < SPACE_FROM else " " for b in chunk)
        for chunk in bytes(b if b < ENTRY_END else ENTRY_END for b in data).split(bytes([ENTRY_END]))
    ]
    return [entry for entry in raw if entry][:6]


def decode_texts(data: bytes, parts: list[str]) -> list[str | None]:
    """At most 10 captions glued from parts (entries, pieces, separators), with null and empty ones."""
    texts: list[str | None] = []
    current: list[str] = []
    for b in data:
        if b in (NULL_TEXT, EMPTY_TEXT):
            texts.append(None if b == NULL_TEXT else "")
        elif b == TEXT_END:
            texts.append("".join(current))
            current = []
        else:
            current.append(parts[b % len(parts)])
    if current or not texts:
        texts.append("".join(current))
    return texts[:10]


@st.composite
def entry_lists(draw: st.DrawFn) -> list[str]:
    """Unique, non-empty entries, with prefixes and suffixes of each other (tokens and characters)."""
    base = decode_entries(draw(st.binary(min_size=1, max_size=60)))
    cuts = draw(st.binary(min_size=2 * len(base), max_size=2 * len(base)))
    derived = []
    for i, entry in enumerate(base):
        tokens = entry.split(" ")
        cut = cuts[2 * i] % (len(tokens) + 1)
        derived += [" ".join(tokens[:cut]), " ".join(tokens[cut:])]
        chars = cuts[2 * i + 1] % (len(entry) + 1)
        derived += [entry[:chars], entry[chars:]]
    entries = list(dict.fromkeys(e for e in base + derived if e)) or ["a"]
    random.Random(draw(st.integers(0, 2**32 - 1))).shuffle(entries)  # any order: ids are positions
    return entries


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[str], list[str | None]]:
    """Entries, and captions glued together from entries, pieces and separators in any order."""
    entries = draw(entry_lists())
    return entries, decode_texts(draw(st.binary(min_size=1, max_size=110)), entries + PIECES + SEPARATORS)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 10,000 examples: about 100 s on a busy 2-core machine
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # max_examples: the profile's (conftest.py)
@given(cases())
def test_token_matcher_equals_the_reference_and_the_rule(case: tuple[list[str], list[str | None]]) -> None:
    entries, texts = case
    array = pa.array(texts, type=pa.string())
    expected = reference_batch(build_automaton(entries), array).to_pylist()
    assert expected == [naive_match(entries, text) for text in texts]
    assert token_matcher.match_batch(token_matcher.build_tables(entries), array).to_pylist() == expected


def test_the_matcher_property_runs_the_profiles_examples_and_ci_gives_it_10000() -> None:
    """The property above has no example count of its own: it runs the loaded profile's (conftest.py),
    "ci" unless HYPOTHESIS_PROFILE or --hypothesis-profile says otherwise, and "ci" gives it 10,000."""
    own = test_token_matcher_equals_the_reference_and_the_rule._hypothesis_internal_use_settings
    assert own.max_examples == settings.default.max_examples
    assert settings.get_profile("ci").max_examples >= 10_000


# --------------------------------------------------------------------------------------------------
# The lookups confirm every hit, so even a hash that sends everything to one slot stays exact
# --------------------------------------------------------------------------------------------------


ENTRIES = [
    "dog",
    "hot dog",
    "hot",
    "new york",
    "new york city",
    "york city",
    " dog",
    "dog ",
    ",",
    "U.S.",
    "café",
    "東京 タワー",
    "a  b",
    "hot dog bun",
    "dog bun",
]
TEXTS = [
    "a hot dog, in new york city.",
    None,
    "",
    "hot dog bun",
    "hot  dog",
    "a  b",
    "café!",
    "東京 タワー",
    "dog  bun",
    " dog ",
    "new york city new york",
]


def test_every_token_hashing_to_one_slot_still_matches_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = [naive_match(ENTRIES, text) for text in TEXTS]
    assert any(expected)

    def constant(data, starts, ends):  # every span collides
        return np.full(len(starts), np.uint64(7), dtype=np.uint64)

    monkeypatch.setattr(token_matcher, "_hash_spans", constant)
    tables = token_matcher.build_tables(ENTRIES)
    assert token_matcher.match_batch(tables, pa.array(TEXTS)).to_pylist() == expected


def test_every_trie_edge_hashing_to_one_slot_still_matches_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = [naive_match(ENTRIES, text) for text in TEXTS]
    monkeypatch.setattr(token_matcher, "_mix", lambda x: np.zeros(len(x), dtype=np.uint64))
    tables = token_matcher.build_tables(ENTRIES)
    assert token_matcher.match_batch(tables, pa.array(TEXTS)).to_pylist() == expected


def test_a_repeated_entry_reports_its_last_id_as_the_reference_does() -> None:
    entries = ["dog", "cat", "dog"]
    texts = pa.array(["a dog", "a cat"])
    expected = reference_batch(build_automaton(entries), texts).to_pylist()
    assert expected == [[2], [1]]
    assert token_matcher.match_batch(token_matcher.build_tables(entries), texts).to_pylist() == expected


def test_tables_hold_each_entry_once_in_the_trie() -> None:
    tables = token_matcher.build_tables(["new york", "new york city", "new", "york", "U.S.", "a\tb"])
    ends = tables.terminal[tables.terminal >= 0]
    assert sorted(ends.tolist()) == [0, 1, 2, 3, 4]  # "a\tb" can never match: it is left out
    assert tables.vocabulary_size == 4  # new, york, city, U.S.
    assert int(tables.n_entries[0]) == 6


# --------------------------------------------------------------------------------------------------
# The tables in a run directory: built once, mapped by every worker
# --------------------------------------------------------------------------------------------------


def test_stored_tables_are_mapped_and_match_like_fresh_ones(tmp_path) -> None:
    built_s = matchers.ensure_tables(tmp_path, ENTRIES, "fp-1")
    assert built_s > 0
    assert matchers.ensure_tables(tmp_path, ENTRIES, "fp-1") == 0.0  # already there: not rebuilt
    described = json.loads((matchers.tables_dir(tmp_path) / "tables.json").read_text())
    assert described["metadata_fingerprint"] == "fp-1" and described["entries"] == len(ENTRIES)
    loaded = matchers.load_tables(tmp_path, "fp-1")
    assert isinstance(np.load(matchers.tables_dir(tmp_path) / "terminal.npy", mmap_mode="r"), np.memmap)
    assert not loaded.terminal.flags.writeable  # read-only pages of the file, shared between processes
    fresh = token_matcher.build_tables(ENTRIES)
    for name, array in fresh.arrays().items():
        assert np.array_equal(array, loaded.arrays()[name]), name
    texts = pa.array(TEXTS)
    assert matchers.TokenMatcher(loaded).match_batch(texts).equals(token_matcher.match_batch(fresh, texts))
    assert not [p for p in matchers.tables_dir(tmp_path).parent.iterdir() if p.name.startswith(".")]


def test_tables_of_other_metadata_are_refused_then_replaced(tmp_path) -> None:
    matchers.ensure_tables(tmp_path, ENTRIES, "fp-1")
    with pytest.raises(CurationError, match="belong to other metadata"):
        matchers.load_tables(tmp_path, "fp-2")
    assert matchers.ensure_tables(tmp_path, ["cat"], "fp-2") > 0
    assert matchers.TokenMatcher(matchers.load_tables(tmp_path, "fp-2")).match_batch(
        pa.array(["a cat", "a dog"])
    ).to_pylist() == [[0], []]


def test_missing_tables_say_what_to_do(tmp_path) -> None:
    with pytest.raises(CurationError, match="run the match again"):
        matchers.load_tables(tmp_path, "fp-1")


# --------------------------------------------------------------------------------------------------
# One signature for every matcher, so that no caller asks which one it holds
# --------------------------------------------------------------------------------------------------


def test_every_matcher_takes_texts_and_languages_and_says_whether_it_reads_them() -> None:
    import inspect
    from pathlib import Path

    entries = ["dog", "hot dog", "chien"]
    texts = pa.array(["a hot dog", "un chien", None], type=pa.string())
    one_language = [matchers.TokenMatcher(token_matcher.build_tables(entries)), matchers.AhoCorasickMatcher(entries)]
    per_language = matchers.WorldwideMatcher(entries, ["en", "en", "fr"])
    for matcher in [*one_language, per_language]:
        assert list(inspect.signature(matcher.match_batch).parameters) == ["texts", "languages"]
    for matcher in one_language:
        assert matcher.languages is None
        assert matcher.match_batch(texts).to_pylist() == [[0, 1], [2], []]
        assert matcher.match_batch(texts, pa.array(["fr", "en", None])).to_pylist() == [[0, 1], [2], []]
    assert per_language.languages == {"en", "fr"}
    assert per_language.match_batch(texts, pa.array(["en", "en", None])).to_pylist() == [[0, 1], [], []]
    with pytest.raises(ValueError, match="pass the languages"):
        per_language.match_batch(texts)
    # ... and nothing outside the matchers' and previews' own modules asks for their types
    root = Path(__file__).resolve().parents[1]
    own = {"matchers.py", "preview.py", "worldwide_preview.py"}
    asking = [
        path.relative_to(root).as_posix()
        for path in [*root.glob("curation/**/*.py"), *root.glob("dashboard/**/*.py")]
        if path.name not in own and re.search(r"isinstance\([^)]*(Matcher|Preview)\b", path.read_text())
    ]
    assert asking == []
