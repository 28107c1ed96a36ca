"""Matching (DESIGN.md 1.2): entry E matches a text iff " " + E + " " occurs in the spaced text.

The spaced text is the text padded with one space at each end, with each of , . ; : ? ! ` wrapped in
spaces and tab, newline and carriage return turned into spaces. Every expectation below is derived
from that rule, either by hand or through the naive matcher written in this file.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from curation.matching import build_automaton, match_batch, match_text

WRAPPED = ",.;:?!`"
CONTROLS = "\t\n\r"


def naive_spacing(text: str) -> str:
    """The spacing rule written out character by character, independently of the module."""
    out = [" "]
    for char in text:
        if char in WRAPPED:
            out.append(f" {char} ")
        elif char in CONTROLS:
            out.append(" ")
        else:
            out.append(char)
    out.append(" ")
    return "".join(out)


def naive_match(entries: list[str], text: str | None) -> list[int]:
    """For each entry: does " " + e + " " occur in the spaced text? Null and empty match nothing."""
    if not text:
        return []
    spaced = naive_spacing(text)
    return [entry_id for entry_id, entry in enumerate(entries) if f" {entry} " in spaced]


def matched_entries(entries: list[str], text: str | None) -> set[str]:
    """The entries (not ids) matched by one text through the module under test."""
    automaton = build_automaton(entries)
    return {entries[entry_id] for entry_id in match_text(automaton, text)}


def matches(entry: str, text: str | None) -> bool:
    return matched_entries([entry], text) == {entry}


# --- the hard cases of DESIGN.md 1.2, one test each ------------------------------------------------


def test_trailing_comma_is_split_off():
    assert matches("dog", "a dog, a cat")
    assert matches("dog", "dog,")


@pytest.mark.parametrize("text", ["dog.", "dog;", "dog:", "dog?", "dog!", "`dog`", "a.dog.b", "x,dog,y"])
def test_every_wrapped_character_separates_words(text):
    assert matches("dog", text)


def test_parentheses_do_not_separate_words():
    assert not matches("dog", "(dog)")
    assert not matches("dog", "a (dog) here")


def test_hyphen_does_not_separate_words():
    assert not matches("dog", "dog-friendly")
    assert not matches("dog", "a dog-friendly cafe")


@pytest.mark.parametrize("text", ["dog's bowl", '"dog"', "[dog]", "dogs", "hotdog", "underdog"])
def test_other_punctuation_and_longer_words_do_not_match(text):
    assert not matches("dog", text)


def test_double_space_breaks_a_multi_word_entry():
    assert not matches("hot dog", "hot  dog")
    assert matches("hot dog", "hot dog")


def test_entry_with_wrapped_character_glued_to_letters_never_matches():
    for text in ["U.S.", "the U.S. army", " U.S. ", "U.S.A.", "U . S ."]:
        assert not matches("U.S.", text), text
    assert not matches("e.g", "e.g")
    assert not matches("a,b", "a,b")


def test_entry_made_only_of_a_wrapped_character_matches():
    # " , " occurs in the spaced text of any text holding a comma, glued to letters or not.
    assert matches(",", "a,b")
    assert matches(",", "a, b")
    assert matches(",", ",")
    assert matches(".", "end.")
    assert not matches(",", "no comma here")


def test_entry_of_two_wrapped_characters_needs_spaces_the_rule_cannot_produce():
    # Spacing gives "a ,  . b" for "a,.b": two spaces between the marks, so ", ." is not there.
    assert not matches(", .", "a,.b")
    assert not matches(", .", "a, .b")


def test_overlapping_entries_all_match():
    entries = ["new york", "york city", "new york city", "york", "new", "city", "new city"]
    assert matched_entries(entries, "new york city") == {
        "new york",
        "york city",
        "new york city",
        "york",
        "new",
        "city",
    }


def test_matching_is_case_sensitive():
    assert not matches("dog", "Dog")
    assert not matches("dog", "DOG")
    assert matches("Dog", "Dog")
    assert matched_entries(["dog", "Dog"], "Dog and dog") == {"dog", "Dog"}


@pytest.mark.parametrize("text", ["hot\tdog", "hot\ndog", "hot\rdog", "\thot dog\n", "\rhot dog\r"])
def test_tab_newline_and_carriage_return_act_as_spaces(text):
    assert matches("hot dog", text)


def test_crlf_is_two_spaces():
    # \r\n becomes two spaces, which breaks a two-word entry like any double space.
    assert not matches("hot dog", "hot\r\ndog")
    assert matches("dog", "hot\r\ndog")


@pytest.mark.parametrize("separator", ["\u00a0", "\x0b", "\x0c", "\u3000", "_"])
def test_other_whitespace_is_not_a_space(separator):
    assert not matches("hot dog", f"hot{separator}dog")


@pytest.mark.parametrize("entry", ["hot\tdog", "hot\ndog", "hot\rdog", "dog\n", "\n"])
def test_entry_containing_a_control_never_matches(entry):
    texts = [entry, f"a {entry} b", "hot dog", "hot\tdog", "hot\ndog", "dog", " "]
    automaton = build_automaton([entry, "dog"])
    for text in texts:
        assert 0 not in match_text(automaton, text), repr(text)


def test_entry_counts_once_per_text():
    automaton = build_automaton(["dog", "cat"])
    assert match_text(automaton, "dog dog dog, dog. cat dog") == [0, 1]
    batch = match_batch(automaton, pa.array(["dog dog dog", "cat cat"]))
    assert batch.to_pylist() == [[0], [1]]


@pytest.mark.parametrize("text", [None, ""])
def test_null_and_empty_texts_match_nothing(text):
    # Entries that match almost anything (a comma, a single space) still match nothing here.
    automaton = build_automaton(["dog", ",", " "])
    assert match_text(automaton, text) == []
    assert match_batch(automaton, pa.array([text], type=pa.string())).to_pylist() == [[]]


def test_whitespace_only_text_matches_only_what_the_rule_says():
    entries = ["dog", " "]
    # A text of one space is spaced to three spaces, which is exactly " " + " " + " ".
    assert matched_entries(entries, " ") == {" "}
    assert matched_entries(entries, "  dog") == {"dog", " "}
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
def test_non_ascii_matches(entry, text):
    assert matches(entry, text)
    assert match_batch(build_automaton([entry]), pa.array([text])).to_pylist() == [[0]]


def test_non_ascii_is_not_normalised():
    # "é" precomposed vs "e" + combining acute are different strings: no normalisation.
    assert not matches("caf\u00e9", "cafe\u0301")
    assert not matches("東京", "東京タワー")


def test_entry_ids_are_ascending_and_unique():
    entries = ["zebra", "apple", "mango", "kiwi", "banana"]
    automaton = build_automaton(entries)
    text = "kiwi zebra banana apple kiwi mango zebra"
    assert match_text(automaton, text) == [0, 1, 2, 3, 4]
    assert match_batch(automaton, pa.array([text])).to_pylist() == [[0, 1, 2, 3, 4]]


def test_ids_are_positions_in_the_entry_list():
    entries = ["a", "b", "c"]
    automaton = build_automaton(entries)
    assert match_text(automaton, "c") == [2]
    assert match_text(automaton, "b") == [1]


# --- automata without anything to find ---------------------------------------------------------------


def test_empty_entry_list():
    automaton = build_automaton([])
    assert match_text(automaton, "anything at all, really.") == []
    assert match_text(automaton, "\n") == []
    result = match_batch(automaton, pa.array(["a b", None, "", "\n\t", ","]))
    assert result.to_pylist() == [[], [], [], [], []]


def test_only_unmatchable_entries():
    entries = ["U.S.", "a\nb", "x\ty", "e.g.", "\r"]
    automaton = build_automaton(entries)
    texts = ["U.S.", "a\nb", "a b", "x\ty", "x y", "e.g.", "\r", "\n", " \n ", "plain"]
    for text in texts:
        assert match_text(automaton, text) == [], repr(text)
    assert match_batch(automaton, pa.array(texts)).to_pylist() == [[] for _ in texts]


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


def test_match_batch_type_is_list_of_int32():
    result = match_batch(build_automaton(ENTRIES), pa.array(TEXTS))
    assert result.type == pa.list_(pa.int32())
    assert len(result) == len(TEXTS)
    assert result.null_count == 0


def test_match_batch_with_nulls_equals_match_text_and_naive():
    automaton = build_automaton(ENTRIES)
    result = match_batch(automaton, pa.array(TEXTS, type=pa.string())).to_pylist()
    assert result == [match_text(automaton, text) for text in TEXTS]
    assert result == [naive_match(ENTRIES, text) for text in TEXTS]


def test_match_batch_over_chunked_input():
    automaton = build_automaton(ENTRIES)
    chunked = pa.chunked_array([TEXTS[:3], TEXTS[3:4], [], TEXTS[4:]], type=pa.string())
    result = match_batch(automaton, chunked).to_pylist()
    assert result == [naive_match(ENTRIES, text) for text in TEXTS]


def test_match_batch_over_a_sliced_array():
    automaton = build_automaton(ENTRIES)
    sliced = pa.array(TEXTS)[3:8]
    assert match_batch(automaton, sliced).to_pylist() == [naive_match(ENTRIES, t) for t in TEXTS[3:8]]


def test_match_batch_over_large_strings():
    automaton = build_automaton(ENTRIES)
    result = match_batch(automaton, pa.array(TEXTS, type=pa.large_string())).to_pylist()
    assert result == [naive_match(ENTRIES, text) for text in TEXTS]


def test_match_batch_of_no_texts():
    result = match_batch(build_automaton(ENTRIES), pa.array([], type=pa.string()))
    assert len(result) == 0
    assert result.type == pa.list_(pa.int32())


def test_match_batch_keeps_texts_apart():
    # An entry spanning the end of one text and the start of the next must not be found.
    automaton = build_automaton(["hot dog", "dog hot"])
    assert match_batch(automaton, pa.array(["hot", "dog", "dog", "hot"])).to_pylist() == [[], [], [], []]


# --- randomized comparison against the naive matcher ---------------------------------------------------

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
def test_randomized_against_naive(seed):
    rng = random.Random(seed)
    entries: list[str] = []
    while len(entries) < 60:
        entry = random_entry(rng)
        # The metadata loader refuses empty and duplicate entries, so neither reaches the matcher.
        if entry and entry not in entries:
            entries.append(entry)
    texts = [random_text(rng, entries) for _ in range(1500)]
    expected = [naive_match(entries, text) for text in texts]
    automaton = build_automaton(entries)

    assert [match_text(automaton, text) for text in texts] == expected
    assert match_batch(automaton, pa.array(texts, type=pa.string())).to_pylist() == expected
    chunked = pa.chunked_array([texts[:500], texts[500:501], texts[501:]], type=pa.string())
    assert match_batch(automaton, chunked).to_pylist() == expected
    # A slice of a larger array, with and without nulls (the slice starts inside the buffers).
    padded = pa.array(["a, b", None, "c"] + texts + ["x"], type=pa.string())
    assert match_batch(automaton, padded[3 : 3 + len(texts)]).to_pylist() == expected
    no_nulls = ["" if text is None else text for text in texts]
    padded = pa.array(["a, b", "c"] + no_nulls + ["x"], type=pa.string())
    assert match_batch(automaton, padded[2 : 2 + len(texts)]).to_pylist() == expected
    # The test is only worth something if the random data actually produces matches.
    assert sum(len(ids) for ids in expected) > len(texts)


def test_batch_boundaries_with_punctuation_and_multibyte_text():
    # A text's padding and the separator between texts sit next to wrapped marks and multi-byte
    # characters here; every text must see exactly its own matches, as the naive rule says.
    entries = ["?", "é", "a ?", "? b", "😀 a", "a", "b"]
    texts = ["a ?", "? b", "é?", "😀 a", "?", "b?", "a", "é", None, "", "😀"]
    automaton = build_automaton(entries)
    expected = [naive_match(entries, text) for text in texts]
    assert match_batch(automaton, pa.array(texts)).to_pylist() == expected
    assert any(expected)
