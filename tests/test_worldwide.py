"""MetaCLIP 2's worldwide rule: entry keys with CJK-aware spaces, captions stripped and matched only
against their own language, and t per language from the reference language's tail share. The batch
matcher is compared with a per-caption automaton and with a naive substring test on generated
adversarial input; t per language with the formula, and shown to grow with the reference t."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.matching import spacing
from curation.worldwide import (
    OTHER,
    LanguageCounts,
    build_automata,
    entry_key,
    is_cjk_or_similar,
    language_thresholds,
    match_batch_by_language,
    match_language,
    p_to_t,
    strip,
    t_to_p,
)
from studio_common.errors import CurationError


def naive(entries: list[str], languages: list[str], language: str | None, text: str | None) -> list[int]:
    """Obviously correct: every entry of the caption's language whose key occurs in the spaced,
    stripped caption."""
    if text is None or language is None:
        return []
    spaced = spacing(text.strip())
    return [
        i
        for i, (entry, lang) in enumerate(zip(entries, languages))
        if lang == language
        and entry
        and "\t" not in entry
        and "\n" not in entry
        and "\r" not in entry
        and entry_key(entry) in spaced
    ]


def test_keys_get_spaces_only_beside_letters_that_need_them() -> None:
    assert entry_key("dog") == " dog "
    assert entry_key("狗") == "狗"
    assert entry_key("猫 cat") == "猫 cat "
    assert entry_key("- stock") == "- stock "
    assert entry_key("แมว") == "แมว"  # Thai
    assert entry_key("《书》") == "《书》"
    assert is_cjk_or_similar("，") and is_cjk_or_similar("!") and not is_cjk_or_similar("é")


def test_matching_follows_the_examples_of_metaclip_2() -> None:
    entries = ["狗", "dog", "- stock", "hot dog", "dog"]
    languages = ["zh", "en", "en", "en", "de"]
    automata = build_automata(entries, languages)
    assert match_language(automata, "zh", "一只狗在草地上") == [0]  # anywhere in a Chinese caption
    assert match_language(automata, "en", "a hotdog") == []  # Latin entries still need boundaries
    assert match_language(automata, "en", "-- stock photo") == [2]
    assert match_language(automata, "en", "hot dog, grilled") == [1, 3]
    assert match_language(automata, "de", "  dog\x1c") == [4]  # stripped as str.strip does
    assert match_language(automata, "fr", "dog") == []  # a language without entries matches nothing
    assert match_language(automata, None, "dog") == []


def test_scripts_at_entry_ends() -> None:
    """Cyrillic and kana are not in MetaCLIP 2's no-space ranges, so their entries need boundaries as
    Latin ones do; kanji do not; full-width brackets and hyphens count as punctuation (no space)."""
    entries = ["собака", "いぬ", "犬", "（犬）", "-пёс", "[photo]"]
    languages = ["ru", "ja", "ja", "ja", "ru", "en"]
    automata = build_automata(entries, languages)
    assert match_language(automata, "ru", "большая собака, фото") == [0]
    assert match_language(automata, "ru", "собаками") == []  # no boundary after the entry
    assert match_language(automata, "ja", "かわいいいぬ") == []  # kana: a space needed on both sides
    assert match_language(automata, "ja", "かわいい いぬ です") == [1]
    assert match_language(automata, "ja", "かわいい犬です") == [2]  # kanji: anywhere
    assert match_language(automata, "ja", "写真（犬）") == [2, 3]
    assert match_language(automata, "ru", "серый-пёс") == [4]  # "-" starts the key: no space before it
    assert match_language(automata, "en", "a[photo]b") == [5]


def test_an_entry_may_repeat_across_languages_but_not_within_one() -> None:
    build_automata(["dog", "dog"], ["en", "de"])
    with pytest.raises(CurationError, match="appears twice in language 'en'"):
        build_automata(["dog", "dog"], ["en", "en"])
    with pytest.raises(CurationError, match="has no language"):
        build_automata(["dog"], [""])


WHITESPACE = ["\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000"]


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(WHITESPACE + list("ab ,.-")), max_size=12), max_size=20))
def test_arrow_strip_is_python_strip(texts: list[str]) -> None:
    assert strip(pa.array(texts)).to_pylist() == [t.strip() for t in texts]


PIECES = [
    "a",
    "b",
    " ",
    ",",
    ".",
    "-",
    "狗",
    "猫",
    "草",
    "แ",
    "ม",
    "，",
    "。",
    "《",
    "》",
    "é",
    "!",
    "с",
    "о",
    "ё",
    "い",
    "ぬ",
    "犬",
    "ー",
    "（",
    "）",
    "[",
    "]",
    *WHITESPACE,
]  # Cyrillic, Japanese kana/kanji
LANGUAGES = ["en", "zh", "th", "ru", "ja", OTHER]
words = st.text(alphabet=st.sampled_from(PIECES), min_size=1, max_size=4)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.tuples(words, st.sampled_from(LANGUAGES)), max_size=25, unique=True),
    st.lists(
        st.tuples(
            st.none() | st.text(alphabet=st.sampled_from(PIECES), max_size=24),
            st.none() | st.sampled_from([*LANGUAGES, "fr"]),
        ),
        max_size=30,
    ),
)
def test_the_batch_matcher_equals_the_naive_rule(
    metadata: list[tuple[str, str]], captions: list[tuple[str | None, str | None]]
) -> None:
    entries, languages = [e for e, _ in metadata], [lang for _, lang in metadata]
    automata = build_automata(entries, languages)
    texts, caption_languages = [t for t, _ in captions], [lang for _, lang in captions]
    batch = match_batch_by_language(
        automata, pa.array(texts, pa.string()), pa.array(caption_languages, pa.string())
    ).to_pylist()
    for text, language, found in zip(texts, caption_languages, batch):
        expected = naive(entries, languages, language, text)
        assert found == expected == match_language(automata, language, text), (text, language)


def test_t_to_p_and_p_to_t_follow_the_formula() -> None:
    counts = np.array([0, 1, 5, 5, 10, 100])
    assert t_to_p(counts, 5) == pytest.approx(1 / 121)  # counts below t, over all
    assert t_to_p(counts, 6) == pytest.approx(11 / 121)
    # cumulative shares of the sorted counts: 0, 1, 6, 11, 21, 121 over 121; nearest 0.05 is 6/121
    assert p_to_t(counts, 0.05) == 5
    assert p_to_t(counts, 1.0) == 100
    assert p_to_t(np.array([0, 0, 3]), 0.0) == 0  # the first index on ties: t 0 keeps nothing
    assert p_to_t(np.zeros(4, dtype=np.int64), 0.5) == 0 and t_to_p(np.zeros(3), 5) == 0.0


def test_language_thresholds_take_the_reference_tail_share() -> None:
    counts = np.array([1, 10, 100, 1000, 2, 20, 200, 2000, 7])
    languages = ["en"] * 4 + ["de"] * 4 + ["xx"]
    thresholds = language_thresholds(counts, languages, 100)
    p = 11 / 1111
    assert thresholds["en"] == 100
    assert thresholds["de"] == p_to_t(counts[4:8], p)
    assert thresholds["xx"] == 7
    assert language_thresholds(counts, languages, 100, overrides={"de": 50})["de"] == 50
    with pytest.raises(CurationError, match="reference language 'ja'"):
        language_thresholds(counts, languages, 100, reference="ja")
    with pytest.raises(CurationError, match="does not have: fr"):
        language_thresholds(counts, languages, 100, overrides={"fr": 3})


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=30),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=30),
    st.floats(0, 20_000, allow_nan=False),
    st.floats(0, 20_000, allow_nan=False),
)
def test_every_language_t_grows_with_the_reference_t(
    reference: list[int], other: list[int], t1: float, t2: float
) -> None:
    """So the curated subsets stay nested as the reference t grows, in every language."""
    low, high = sorted((t1, t2))
    counts = np.array(reference + other)
    languages = ["en"] * len(reference) + ["de"] * len(other)
    assert language_thresholds(counts, languages, low)["de"] <= language_thresholds(counts, languages, high)["de"]


@settings(max_examples=examples(400), deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=0, max_size=25),
    st.lists(st.integers(0, 50), min_size=0, max_size=25),
    st.floats(0, 60, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
)
def test_sorted_counts_answer_as_the_formula_does(reference: list[int], other: list[int], t: float, p: float) -> None:
    """LanguageCounts (binary searches over counts sorted once) against t_to_p and p_to_t literally;
    small counts make ties, zero counts and repeated cumulative shares common."""
    counts = np.array(reference + other, dtype=np.int64)
    languages = ["en"] * len(reference) + ["de"] * len(other)
    if not languages:
        return
    fast = LanguageCounts.build(counts, languages)
    for language, members in (("en", counts[: len(reference)]), ("de", counts[len(reference) :])):
        if language not in fast.members:
            continue
        assert fast.tail_share(language, t) == t_to_p(members, t)
        assert fast.t_for_share(language, p) == p_to_t(members, p)
        assert fast.t_for_share(language, t_to_p(members, t)) == p_to_t(members, t_to_p(members, t))
    if "en" in fast.members:
        expected = {
            language: (
                float(t)
                if language == "en"
                else p_to_t(counts[np.array(languages) == language], t_to_p(counts[: len(reference)], t))
            )
            for language in set(languages)
        }
        assert fast.thresholds(t) == expected


@settings(max_examples=examples(400), deadline=None)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=20),
    st.lists(st.integers(0, 60), min_size=1, max_size=20),
)
def test_the_least_reference_t_for_a_language_is_the_first_that_gives_it_one(
    reference: list[int], other: list[int]
) -> None:
    """Against a walk over every whole t with t_to_p and p_to_t written literally: the first reference t
    at which the language's t is above 0 (None when no t up to past every count does)."""
    counts = np.array(reference + other, dtype=np.int64)
    fast = LanguageCounts.build(counts, ["en"] * len(reference) + ["de"] * len(other))
    members, ref = np.array(other), np.array(reference)
    walked = next((t for t in range(1, max(reference) + 2) if p_to_t(members, t_to_p(ref, t)) > 0), None)
    assert fast.least_reference_t("de", "en") == walked


def test_a_language_with_matches_gets_t_0_while_the_reference_share_is_small() -> None:
    """MetaCLIP 2's p_to_t lands on an entry counted 0 times when p is nearer 0 than the first share the
    language's matched entries reach: here p = 1/81 at t = 5 against de's 1/1 (one matched entry)."""
    counts = np.array([40, 40, 1, 10, 0])
    fast = LanguageCounts.build(counts, ["en", "en", "en", "de", "de"])
    assert fast.thresholds(5)["de"] == 0 and fast.total("de") == 10
    assert fast.least_reference_t("de") == 41 and fast.thresholds(41)["de"] == 10 and fast.thresholds(40)["de"] == 0
    assert LanguageCounts.build(np.array([3, 0]), ["en", "de"]).least_reference_t("de") is None  # no matches
