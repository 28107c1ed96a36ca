"""Matching (docs/design.md, "Matching"): entry E matches a text iff " " + E + " " occurs in the spaced text.

The spaced text is the text padded with one space at each end, with each of , . ; : ? ! ` wrapped in
spaces and tab, newline and carriage return turned into spaces. Every expectation below is derived
from that rule, either by hand or through the naive matcher written in this file.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from conftest import naive_match

from curation import token_matcher
from curation.matchers import MATCHERS, AhoCorasickMatcher, TokenMatcher
from curation.matching import build_automaton, match_text, spacing


def make_matcher(name: str, entries: list[str]):
    return AhoCorasickMatcher(entries) if name == "aho-corasick" else TokenMatcher(token_matcher.build_tables(entries))


@pytest.fixture(params=MATCHERS)
def matcher(request: pytest.FixtureRequest) -> str:
    """Every test that takes this fixture runs once per matcher: the rule is the same for both."""
    return request.param


@pytest.fixture
def match_batch(matcher: str):
    """match_batch(entries, texts) -> entry ids per text, through the matcher under test."""

    def run(entries: list[str], texts: list[str | None]) -> list[list[int]]:
        return make_matcher(matcher, entries).match_batch(pa.array(texts, type=pa.string())).to_pylist()

    return run


@pytest.fixture
def matched_entries(match_batch):
    """The entries (not ids) matched by one text."""

    def run(entries: list[str], text: str | None) -> set[str]:
        return {entries[entry_id] for entry_id in match_batch(entries, [text])[0]}

    return run


@pytest.fixture
def matches(matched_entries):
    def run(entry: str, text: str | None) -> bool:
        return matched_entries([entry], text) == {entry}

    return run


# --- the hard cases of the rule, one test each, through both matchers -------------------------------


def test_trailing_comma_is_split_off(matches):
    assert matches("dog", "a dog, a cat")
    assert matches("dog", "dog,")


@pytest.mark.parametrize("text", ["dog.", "dog;", "dog:", "dog?", "dog!", "`dog`", "a.dog.b", "x,dog,y"])
def test_every_wrapped_character_separates_words(matches, text):
    assert matches("dog", text)


def test_parentheses_do_not_separate_words(matches):
    assert not matches("dog", "(dog)")
    assert not matches("dog", "a (dog) here")


def test_hyphen_does_not_separate_words(matches):
    assert not matches("dog", "dog-friendly")
    assert not matches("dog", "a dog-friendly cafe")


@pytest.mark.parametrize("text", ["dog's bowl", '"dog"', "[dog]", "dogs", "hotdog", "underdog"])
def test_other_punctuation_and_longer_words_do_not_match(matches, text):
    assert not matches("dog", text)


def test_double_space_breaks_a_multi_word_entry(matches):
    assert not matches("hot dog", "hot  dog")
    assert matches("hot dog", "hot dog")


def test_entry_with_wrapped_character_glued_to_letters_never_matches(matches):
    for text in ["U.S.", "the U.S. army", " U.S. ", "U.S.A.", "U . S ."]:
        assert not matches("U.S.", text), text
    assert not matches("e.g", "e.g")
    assert not matches("a,b", "a,b")


def test_entry_made_only_of_a_wrapped_character_matches(matches):
    # " , " occurs in the spaced text of any text holding a comma, glued to letters or not.
    assert matches(",", "a,b")
    assert matches(",", "a, b")
    assert matches(",", ",")
    assert matches(".", "end.")
    assert not matches(",", "no comma here")


def test_entry_of_two_wrapped_characters_needs_spaces_the_rule_cannot_produce(matches):
    # Spacing gives "a ,  . b" for "a,.b": two spaces between the marks, so ", ." is not there.
    assert not matches(", .", "a,.b")
    assert not matches(", .", "a, .b")
    # With the two spaces the rule produces, it is there.
    assert matches(",  .", "a,.b")


def test_entries_with_leading_trailing_or_doubled_spaces(matches):
    # Such entries have empty tokens; the spaced text has them exactly where it has adjacent spaces.
    assert matches(" dog", "a  dog")
    assert not matches(" dog", "a dog")
    assert matches(" dog", " dog")  # the padding space, then the text's own
    assert matches(" dog", "  dog")
    assert matches("dog ", "dog  x")
    assert matches("dog ", "dog ")
    assert not matches("dog ", "dog x")
    assert matches("hot  dog", "hot  dog")
    assert not matches("hot  dog", "hot dog")
    assert matches("dog ,", "dog,")  # " dog , " is in " dog , "
    assert matches(",  b", "a, b")  # "a, b" spaces to " a ,  b "
    assert matches("  ", "x    y")  # four spaces hold " " + "  " + " "
    assert not matches("  ", "x   y")


@pytest.mark.parametrize("entry", ["U.S.", "e.g", "a,b", "dog,", ",dog", "a;b", "x!y", "`a`"])
def test_entries_holding_wrapped_punctuation_match_only_as_the_rule_says(matched_entries, entry):
    texts = [entry, f"a {entry} b", entry.replace(",", " , "), " ".join(spacing(entry).split())]
    for text in texts:
        assert matched_entries([entry], text) == ({entry} if naive_match([entry], text) else set()), repr(text)


def test_overlapping_entries_all_match(matched_entries):
    entries = ["new york", "york city", "new york city", "york", "new", "city", "new city"]
    assert matched_entries(entries, "new york city") == {
        "new york",
        "york city",
        "new york city",
        "york",
        "new",
        "city",
    }


def test_matching_is_case_sensitive(matches, matched_entries):
    assert not matches("dog", "Dog")
    assert not matches("dog", "DOG")
    assert matches("Dog", "Dog")
    assert matched_entries(["dog", "Dog"], "Dog and dog") == {"dog", "Dog"}


@pytest.mark.parametrize("text", ["hot\tdog", "hot\ndog", "hot\rdog", "\thot dog\n", "\rhot dog\r"])
def test_tab_newline_and_carriage_return_act_as_spaces(matches, text):
    assert matches("hot dog", text)


def test_crlf_is_two_spaces(matches):
    # \r\n becomes two spaces, which breaks a two-word entry like any double space.
    assert not matches("hot dog", "hot\r\ndog")
    assert matches("dog", "hot\r\ndog")
    assert matches("hot  dog", "hot\r\ndog")


@pytest.mark.parametrize("separator", ["\u00a0", "\x0b", "\x0c", "\u3000", "\u2009", "_"])
def test_other_whitespace_is_not_a_space(matches, separator):
    assert not matches("hot dog", f"hot{separator}dog")
    assert matches(f"hot{separator}dog", f"a hot{separator}dog")


@pytest.mark.parametrize("entry", ["hot\tdog", "hot\ndog", "hot\rdog", "dog\n", "\n", "\t", "a \r"])
def test_entry_containing_a_control_never_matches(match_batch, entry):
    texts = [entry, f"a {entry} b", "hot dog", "hot\tdog", "hot\ndog", "dog", " ", "\n", "a  "]
    for ids in match_batch([entry, "dog"], texts):
        assert 0 not in ids


def test_entry_counts_once_per_text(match_batch):
    assert match_batch(["dog", "cat"], ["dog dog dog, dog. cat dog", "dog dog dog", "cat cat"]) == [[0, 1], [0], [1]]


@pytest.mark.parametrize("text", [None, ""])
def test_null_and_empty_texts_match_nothing(match_batch, text):
    # Entries that match almost anything (a comma, a single space) still match nothing here.
    assert match_batch(["dog", ",", " ", "  "], [text]) == [[]]


def test_whitespace_only_text_matches_only_what_the_rule_says(matched_entries):
    entries = ["dog", " "]
    # A text of one space is spaced to three spaces, which is exactly " " + " " + " ".
    assert matched_entries(entries, " ") == {" "}
    assert matched_entries(entries, "  dog") == {"dog", " "}
    assert matched_entries(entries, "\t") == {" "}
    # Single spaces between words never hold three spaces in a row.
    assert matched_entries(entries, "a dog b") == {"dog"}


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ("café", "un café, s'il vous plaît"),
        ("naïve", "a naïve approach"),
        ("東京", "東京 タワー"),
        ("東京 タワー", "夜の 東京 タワー!"),
        ("😀", "smile 😀 please"),
        ("🐶 dog", "my 🐶 dog."),
        ("Ünïcödé", "Ünïcödé"),
    ],
)
def test_non_ascii_matches(matches, entry, text):
    assert matches(entry, text)


def test_non_ascii_is_not_normalised(matches):
    # "é" precomposed vs "e" + combining acute are different strings: no normalisation.
    assert not matches("caf\u00e9", "cafe\u0301")
    assert not matches("東京", "東京タワー")
    assert not matches("東京", "東京\u3000タワー")  # an ideographic space is not U+0020


def test_entry_ids_are_ascending_and_unique(match_batch):
    entries = ["zebra", "apple", "mango", "kiwi", "banana"]
    assert match_batch(entries, ["kiwi zebra banana apple kiwi mango zebra"]) == [[0, 1, 2, 3, 4]]


def test_ids_are_positions_in_the_entry_list(match_batch):
    assert match_batch(["a", "b", "c"], ["c", "b", "b a"]) == [[2], [1], [0, 1]]


def test_a_text_with_very_many_matches_is_sorted_and_unique(match_batch):
    # More matches than one row of the token matcher's row sort holds: the wide path.
    entries = [f"w{i}" for i in range(300)]
    text = " ".join(entries[::-1] * 2)
    assert match_batch(entries, ["w1 w0", text, "w5"]) == [[0, 1], list(range(300)), [5]]


# --- entry lists with nothing to find ----------------------------------------------------------------


def test_empty_entry_list(match_batch):
    assert match_batch([], ["a b", None, "", "\n\t", ",", "anything at all, really."]) == [[]] * 6


def test_only_unmatchable_entries(match_batch):
    entries = ["U.S.", "a\nb", "x\ty", "e.g.", "\r"]
    texts = ["U.S.", "a\nb", "a b", "x\ty", "x y", "e.g.", "\r", "\n", " \n ", "plain"]
    assert match_batch(entries, texts) == [[] for _ in texts]


# --- the batch API ---------------------------------------------------------------------------------------


ENTRIES = ["dog", "hot dog", "new york", "york city", "new york city", ",", "U.S.", "café", "😀"]
TEXTS = [
    "a hot dog, in new york city.",
    None,
    "",
    "(dog)",
    "hot  dog",
    "U.S. dog",
    "café 😀!",
    "hot\tdog",
    None,
    "new york city new york city",
]


def test_match_batch_type_is_list_of_int32(matcher):
    result = make_matcher(matcher, ENTRIES).match_batch(pa.array(TEXTS))
    assert result.type == pa.list_(pa.int32())
    assert len(result) == len(TEXTS)
    assert result.null_count == 0


def test_match_batch_with_nulls_equals_match_text_and_naive(matcher):
    result = make_matcher(matcher, ENTRIES).match_batch(pa.array(TEXTS, type=pa.string())).to_pylist()
    automaton = build_automaton(ENTRIES)
    assert result == [match_text(automaton, text) for text in TEXTS]
    assert result == [naive_match(ENTRIES, text) for text in TEXTS]


def test_match_batch_over_chunked_input(matcher):
    chunked = pa.chunked_array([TEXTS[:3], TEXTS[3:4], [], TEXTS[4:]], type=pa.string())
    result = make_matcher(matcher, ENTRIES).match_batch(chunked).to_pylist()
    assert result == [naive_match(ENTRIES, text) for text in TEXTS]


def test_match_batch_over_a_sliced_array(matcher):
    sliced = pa.array(TEXTS)[3:8]
    result = make_matcher(matcher, ENTRIES).match_batch(sliced).to_pylist()
    assert result == [naive_match(ENTRIES, t) for t in TEXTS[3:8]]


@pytest.mark.parametrize("kind", [pa.large_string(), pa.string_view()])
def test_match_batch_over_other_string_types(matcher, kind):
    result = make_matcher(matcher, ENTRIES).match_batch(pa.array(TEXTS, type=kind)).to_pylist()
    assert result == [naive_match(ENTRIES, text) for text in TEXTS]


def test_match_batch_of_no_texts(matcher):
    result = make_matcher(matcher, ENTRIES).match_batch(pa.array([], type=pa.string()))
    assert len(result) == 0
    assert result.type == pa.list_(pa.int32())


def test_match_batch_keeps_texts_apart(match_batch):
    # An entry spanning the end of one text and the start of the next must not be found.
    assert match_batch(["hot dog", "dog hot", "dog  hot", " hot", "dog "], ["hot", "dog", "dog", "hot"]) == [[]] * 4


# --- randomized comparison against the naive matcher (hypothesis goes further: test_matchers.py) ------

ALPHABET = list("abc") + list(",.;:?!`") + list("-()'") + [" ", " ", " ", "\t", "\n", "\r", "é", "😀"]


def random_entry(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.45:
        return "".join(rng.choice("abc") for _ in range(rng.randint(1, 3)))
    if shape < 0.65:
        words = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 2))) for _ in range(rng.randint(2, 3))]
        return " ".join(words)
    # Anything from the alphabet: punctuation, glued marks, leading/trailing spaces, controls.
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4)))


def random_text(rng: random.Random, entries: list[str]) -> str | None:
    if rng.random() < 0.03:
        return None
    parts = []
    for _ in range(rng.randint(0, 8)):
        if rng.random() < 0.4:
            parts.append(rng.choice(entries))
        else:
            parts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))))
        parts.append(rng.choice(["", " ", " ", "  ", ",", ", ", "\t", "."]))
    return "".join(parts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_randomized_against_naive(matcher, seed):
    rng = random.Random(seed)
    entries: list[str] = []
    while len(entries) < 60:
        entry = random_entry(rng)
        # The metadata loader refuses empty and duplicate entries, so neither reaches the matcher.
        if entry and entry not in entries:
            entries.append(entry)
    texts = [random_text(rng, entries) for _ in range(1500)]
    expected = [naive_match(entries, text) for text in texts]
    matching = make_matcher(matcher, entries)

    assert [match_text(build_automaton(entries), text) for text in texts] == expected
    assert matching.match_batch(pa.array(texts, type=pa.string())).to_pylist() == expected
    chunked = pa.chunked_array([texts[:500], texts[500:501], texts[501:]], type=pa.string())
    assert matching.match_batch(chunked).to_pylist() == expected
    # A slice of a larger array, with and without nulls (the slice starts inside the buffers).
    padded = pa.array(["a, b", None, "c"] + texts + ["x"], type=pa.string())
    assert matching.match_batch(padded[3 : 3 + len(texts)]).to_pylist() == expected
    no_nulls = ["" if text is None else text for text in texts]
    padded = pa.array(["a, b", "c"] + no_nulls + ["x"], type=pa.string())
    assert matching.match_batch(padded[2 : 2 + len(texts)]).to_pylist() == expected
    # The test is only worth something if the random data actually produces matches.
    assert sum(len(ids) for ids in expected) > len(texts)


def test_batch_boundaries_with_punctuation_and_multibyte_text(match_batch):
    # A text's padding and the separator between texts sit next to wrapped marks and multi-byte
    # characters here; every text must see exactly its own matches, as the naive rule says.
    entries = ["?", "é", "a ?", "? b", "😀 a", "a", "b"]
    texts = ["a ?", "? b", "é?", "😀 a", "?", "b?", "a", "é", None, "", "😀"]
    expected = [naive_match(entries, text) for text in texts]
    assert match_batch(entries, texts) == expected
    assert any(expected)
