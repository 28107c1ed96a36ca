"""The n-grams of a batch of captions as matching sees them: MetaCLIP's spacing, cut at spaces.

Why these n-grams (docs/design.md, "Coverage gaps"): an entry E matches a caption iff E cut at " " is
a run of consecutive pieces of the spaced caption cut at " " (``curation/token_matcher.py``). So a run
of n consecutive pieces, joined by single spaces, is exactly a string that would match this caption if
it were added to the metadata. Runs are taken only over *words*: a piece that is empty (two adjacent
spaces), one of the wrapped characters ``, . ; : ? ! ` ``, or holds no letter or digit ends a run, so
"dog ," and "--" are never proposed. A run that starts or ends with a stop-word (compared lower-cased)
is left out as well, so "of the" and "the dog" are not proposed while "bank of america" is. Case is
kept, as matching keeps it: "Dog" and "dog" are different entries.

Each (caption, n-gram) pair counts once, as an entry counts once per pair. Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curation.matching import SPACED_CONTROLS, WRAPPED_PUNCTUATION
from curation.worldwide import strip

KEY, PAIRS, UNMATCHED = "key", "count", "unmatched"
GRAM_SCHEMA = pa.schema([pa.field(KEY, pa.string()), pa.field(PAIRS, pa.int64()), pa.field(UNMATCHED, pa.int64())])
LANGUAGE_MARK = "\t"  # between a worldwide key's language and its n-gram: no piece holds a tab
_WORD = r"[\pL\pN]"  # a piece is a word when it holds a letter or a digit


def default_stop_words() -> frozenset[str]:
    """The stop-words shipped with the studio (``curation/stop_words.txt``), lower-cased."""
    text = resources.files("curation").joinpath("stop_words.txt").read_text(encoding="utf-8")
    return parse_stop_words(text)


def parse_stop_words(text: str) -> frozenset[str]:
    """One word per line; blank lines and lines starting with ``#`` are skipped."""
    words = (line.strip() for line in text.splitlines())
    return frozenset(word.lower() for word in words if word and not word.startswith("#"))


def pieces(texts: pa.Array, worldwide: bool = False) -> pa.ListArray:
    """Each caption spaced as matching spaces it and cut at " " (MetaCLIP 2 strips it first). The
    padding spaces are left out: they only add an empty piece at each end."""
    texts = strip(texts) if worldwide else pc.cast(texts, pa.string())
    for control in SPACED_CONTROLS:  # plain replacements: faster here than one regular expression
        texts = pc.replace_substring(texts, control, " ")
    for wrapped in WRAPPED_PUNCTUATION:
        texts = pc.replace_substring(texts, wrapped, f" {wrapped} ")
    return pc.split_pattern(pc.fill_null(texts, ""), " ")


def count_grams(
    texts: pa.Array,
    unmatched: np.ndarray,
    sizes: Sequence[int],
    stop_words: frozenset[str],
    languages: pa.Array | None = None,
) -> pa.Table:
    """(key, pairs holding it, unmatched pairs holding it) for a batch of captions, one row per distinct
    n-gram (n in ``sizes``); ``unmatched`` says per caption whether its pair matched no entry. In a
    worldwide batch (``languages``: each caption's language) the key is the language, a tab, the n-gram.

    All in Arrow and numpy: the pieces are dictionary-encoded, an n-gram is a number made of its pieces'
    codes, and only the distinct n-grams are spelled out as strings."""
    split = pieces(texts, worldwide=languages is not None)
    flat = split.flatten()
    if len(flat) == 0:
        return GRAM_SCHEMA.empty_table()
    parents = pc.list_parent_indices(split).to_numpy().astype(np.int64)
    encoded = pc.dictionary_encode(flat)
    codes = encoded.indices.to_numpy().astype(np.int64)
    words = encoded.dictionary
    is_word = pc.match_substring_regex(words, _WORD).to_numpy(zero_copy_only=False)
    is_word &= ~pc.is_in(words, pa.array(WRAPPED_PUNCTUATION)).to_numpy(zero_copy_only=False)
    stop = pc.is_in(pc.utf8_lower(words), pa.array(sorted(stop_words), pa.string())).to_numpy(zero_copy_only=False)
    word_at, stop_at = is_word[codes], stop[codes]
    not_words = np.concatenate([[0], np.cumsum(~word_at)])  # pieces before i that are not words
    width = len(words)
    numbers, rows, where, lengths = [], [], [], []
    offset = 0
    for n in sorted(set(sizes)):
        if n < 1 or len(codes) < n:
            continue
        starts = np.arange(len(codes) - n + 1)
        last = starts + n - 1
        valid = (parents[starts] == parents[last]) & (not_words[last + 1] == not_words[starts])
        starts = starts[valid & ~stop_at[starts] & ~stop_at[last]]
        combined = codes[starts]
        for step in range(1, n):  # renumbered densely between steps, so the number stays small
            combined = combined * width + codes[starts + step]
            if step < n - 1:
                combined = np.unique(combined, return_inverse=True)[1].astype(np.int64)
        numbers.append(combined + offset)
        offset += int(combined.max()) + 1 if len(combined) else 0
        rows.append(parents[starts])
        where.append(starts)
        lengths.append(np.full(len(starts), n, np.int64))
    if not numbers or not sum(map(len, numbers)):
        return GRAM_SCHEMA.empty_table()
    number, row, start, length = map(np.concatenate, (numbers, rows, where, lengths))
    if languages is not None:  # the same n-gram in two languages is two keys
        language_codes = pc.dictionary_encode(pc.fill_null(pc.cast(languages, pa.string()), ""))
        language = language_codes.indices.to_numpy().astype(np.int64)[row]
        number = np.unique(number * len(language_codes.dictionary) + language, return_inverse=True)[1]
    gram, uniques = pd.factorize(number)
    distinct = len(uniques)
    # each (caption, n-gram) once: the first position of each pair
    _, once = np.unique(row * distinct + gram, return_index=True)
    gram, row = gram[once], row[once]
    firsts = np.full(distinct, len(once), np.int64)
    np.minimum.at(firsts, gram, np.arange(len(once)))
    at, size = start[once][firsts], length[once][firsts]
    pairs = np.bincount(gram, minlength=distinct)
    unmatched_pairs = np.bincount(gram, weights=unmatched[row], minlength=distinct).astype(np.int64)
    keys = _spell(words, codes, at, size)
    if languages is not None:
        spoken = language_codes.dictionary.take(pa.array(language[once][firsts]))
        keys = pc.binary_join_element_wise(spoken, keys, LANGUAGE_MARK)
    return pa.table({KEY: keys, PAIRS: pairs.astype(np.int64), UNMATCHED: unmatched_pairs}, schema=GRAM_SCHEMA)


def _spell(words: pa.Array, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """The text of the n-gram of ``lengths[i]`` pieces at ``starts[i]``: its pieces joined by spaces."""
    text = words.take(pa.array(codes[starts]))
    for step in range(1, int(lengths.max()) if len(lengths) else 0):
        longer = lengths > step
        more = words.take(pa.array(codes[np.where(longer, starts + step, starts)]))
        text = pc.if_else(pa.array(longer), pc.binary_join_element_wise(text, more, " "), text)
    return text


def reference_grams(
    text: str | None, sizes: Sequence[int], stop_words: frozenset[str], worldwide: bool = False
) -> set[str]:
    """The n-grams of one caption, written plainly: the slow, obvious version the tests hold the batch
    path to."""
    if not text:
        return set()
    if worldwide:
        text = text.strip()
    for control in SPACED_CONTROLS:
        text = text.replace(control, " ")
    for wrapped in WRAPPED_PUNCTUATION:
        text = text.replace(wrapped, f" {wrapped} ")
    tokens = text.split(" ")
    found = set()
    for n in sizes:
        for start in range(len(tokens) - n + 1):
            run = tokens[start : start + n]
            if not all(_is_word(piece) for piece in run):
                continue
            if run[0].lower() in stop_words or run[-1].lower() in stop_words:
                continue
            found.add(" ".join(run))
    return found


def _is_word(piece: str) -> bool:
    return piece not in WRAPPED_PUNCTUATION and any(unicodedata.category(c)[0] in "LN" for c in piece)
