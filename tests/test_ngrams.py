"""The batch n-gram counter of `curation gaps` against the plain one-caption version, on adversarial
captions (every wrapped character, controls, doubled and other spaces, stop-words in any case, marks
and digits), and the cases the rule spells out (docs/design.md, "Coverage gaps")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation import token_matcher
from curation.matchers import TokenMatcher
from curation.ngrams import (
    KEY,
    LANGUAGE_MARK,
    PAIRS,
    UNMATCHED,
    count_grams,
    default_stop_words,
    parse_stop_words,
    reference_grams,
)

STOP = frozenset({"the", "of", "a"})
PIECES = ["dog", "Dog", "hot", "THE", "the", "of", "a", "é", "東京", "2019", "-", "'s", "(x)", "\u00a0", "\u3000",
          ",", ".", ";", ":", "?", "!", "`", "\t", "\n", "\r", "x.y", "a,b"]  # fmt: skip
SEPARATORS = ["", " ", " ", "  ", "\t", "\r\n", ", ", "."]


def texts_from(draw_pieces: list[list[int]]) -> list[str | None]:
    out: list[str | None] = []
    for spec in draw_pieces:
        if spec == [99]:
            out.append(None)
            continue
        out.append("".join(PIECES[i % len(PIECES)] + SEPARATORS[i % len(SEPARATORS)] for i in spec))
    return out


def reference_counts(
    texts: list[str | None], unmatched: np.ndarray, sizes: tuple[int, ...], stop: frozenset[str], languages=None
) -> dict[str, tuple[int, int]]:
    pairs, lonely = Counter(), Counter()
    for row, text in enumerate(texts):
        for gram in reference_grams(text, sizes, stop, worldwide=languages is not None):
            key = gram if languages is None else f"{languages[row] or ''}{LANGUAGE_MARK}{gram}"
            pairs[key] += 1
            lonely[key] += int(unmatched[row])
    return {key: (pairs[key], lonely[key]) for key in pairs}


def as_dict(table: pa.Table) -> dict[str, tuple[int, int]]:
    return {
        key: (count, unmatched)
        for key, count, unmatched in zip(
            table.column(KEY).to_pylist(), table.column(PAIRS).to_pylist(), table.column(UNMATCHED).to_pylist()
        )
    }


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(st.integers(0, 99), max_size=12), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
    st.sampled_from([(1,), (2,), (1, 2), (1, 2, 3)]),
    st.booleans(),
)
def test_batch_counts_equal_the_plain_version(specs, flags, sizes, worldwide) -> None:
    texts = texts_from(specs)
    unmatched = np.array(flags[: len(texts)])
    languages = pa.array([["en", "de", None][i % 3] for i in range(len(texts))]) if worldwide else None
    got = as_dict(count_grams(pa.array(texts, pa.string()), unmatched, sizes, STOP, languages))
    assert got == reference_counts(texts, unmatched, sizes, STOP, None if languages is None else languages.to_pylist())


@settings(max_examples=examples(500), deadline=None)
@given(st.lists(st.lists(st.integers(0, 99), max_size=10), min_size=1, max_size=6), st.sampled_from([(1,), (2, 3)]))
def test_every_ngram_would_match_its_captions_if_added(specs, sizes) -> None:
    """The reason the n-grams are what they are: added as entries, each matches exactly the captions
    it was counted in (MetaCLIP's rule, through the token matcher)."""
    texts = texts_from(specs)
    table = count_grams(pa.array(texts, pa.string()), np.zeros(len(texts), bool), sizes, frozenset())
    grams = table.column(KEY).to_pylist()
    if not grams:
        return
    found = TokenMatcher(token_matcher.build_tables(grams)).match_batch(pa.array(texts, pa.string()))
    holders = Counter(i for ids in found.to_pylist() for i in ids)
    assert [holders[i] for i in range(len(grams))] == table.column(PAIRS).to_pylist()


@pytest.mark.parametrize(
    ("text", "sizes", "expected"),
    [
        ("dog, hot dog.", (1, 2), {"dog", "hot", "hot dog"}),  # punctuation ends a run; it is no n-gram
        ("hot  dog", (2,), set()),  # two spaces: the words are not consecutive pieces
        ("hot\tdog", (2,), {"hot dog"}),  # a tab is one space
        ("hot\r\ndog", (2,), set()),  # two controls, two spaces
        ("The dog of the year", (1, 2), {"dog", "year"}),  # stop-words in any case end or start nothing
        ("bank of america", (3,), {"bank of america"}),  # inside a run they are fine
        ("dog-friendly (dog)", (1,), {"dog-friendly", "(dog)"}),  # as matching sees them
        ("2019 -- !!", (1,), {"2019"}),  # no letter or digit: no word
        ("Dog dog", (1,), {"Dog", "dog"}),  # case is kept, as matching keeps it
        (None, (1,), set()),
    ],
)
def test_the_rule_case_by_case(text, sizes, expected) -> None:
    table = count_grams(pa.array([text], pa.string()), np.array([True]), sizes, STOP)
    assert set(table.column(KEY).to_pylist()) == expected
    assert reference_grams(text, sizes, STOP) == expected


def test_a_caption_counts_an_ngram_once() -> None:
    table = count_grams(pa.array(["dog dog dog", "dog"]), np.array([True, False]), (1,), STOP)
    assert as_dict(table) == {"dog": (2, 1)}


def test_worldwide_captions_are_stripped_and_keyed_by_language() -> None:
    texts = pa.array(["\u3000dog cat\u3000", "dog"])
    table = count_grams(texts, np.array([True, True]), (1,), STOP, pa.array(["en", "de"]))
    expected = {("en", "dog"): (1, 1), ("en", "cat"): (1, 1), ("de", "dog"): (1, 1)}
    assert as_dict(table) == {f"{code}{LANGUAGE_MARK}{gram}": n for (code, gram), n in expected.items()}


def test_the_shipped_stop_words_are_a_plain_list() -> None:
    words = default_stop_words()
    assert {"the", "of", "and", "a"} <= words and "dog" not in words
    assert all(word == word.lower() and " " not in word for word in words)
    assert parse_stop_words("# a comment\nThe\n\n of \n") == {"the", "of"}


COCO_CN = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "multilingual" / "coco-cn_ext.icap2020.txt"
)


def chinese_segmenter():
    pytest.importorskip("rjieba", reason="the segment extra (rjieba) is not installed")
    from metadata.segment import segmenter_for

    return segmenter_for("zh")


def test_chinese_captions_give_words_glued_as_written() -> None:
    segmenter = chinese_segmenter()
    texts = ["一只狗的照片", "New York 中国人 的 照片", "iPhone手机"]
    table = count_grams(pa.array(texts), np.ones(3, bool), (1, 2), frozenset(), pa.array(["zh"] * 3))
    grams = {key.split(LANGUAGE_MARK)[1] for key in table.column(KEY).to_pylist()}
    assert {"一只", "狗", "照片", "一只狗", "中国人", "York 中国", "的 照片", "的照片", "iPhone手机"} <= grams
    assert "一只狗的照片" not in grams  # a clause is no gap: its words are
    expected = set().union(*(reference_grams(t, (1, 2), frozenset(), True, segmenter) for t in texts))
    assert grams == expected


def test_real_chinese_captions_against_the_plain_version() -> None:
    """COCO-CN's human captions (shared data), segmented by rjieba: the batch counts equal the plain ones."""
    segmenter = chinese_segmenter()
    if not COCO_CN.exists():
        pytest.skip("the COCO-CN captions (shared/data/multilingual) are not here")
    lines = COCO_CN.read_text(encoding="utf-8").splitlines()[:1500]
    texts = [line.split("\t", 1)[1] for line in lines if "\t" in line]
    unmatched = np.arange(len(texts)) % 3 == 0
    languages = pa.array(["zh"] * len(texts))
    got = as_dict(count_grams(pa.array(texts), unmatched, (1, 2), STOP, languages))
    pairs, lonely = Counter(), Counter()
    for row, text in enumerate(texts):
        for gram in reference_grams(text, (1, 2), STOP, True, segmenter):
            pairs[gram] += 1
            lonely[gram] += int(unmatched[row])
    assert got == {f"zh{LANGUAGE_MARK}{gram}": (pairs[gram], lonely[gram]) for gram in pairs}
    assert len(got) > 5000  # words and their bigrams, not a clause per caption
