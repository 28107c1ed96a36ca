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
import pyarrow as pa
import pyarrow.compute as pc

from curation.matching import SPACED_CONTROLS, WRAPPED_PUNCTUATION
from curation.worldwide import strip
from metadata.loading import MetadataError
from metadata.segment import Segmenter, segmenter_for, spec_for

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


def segment(split: pa.ListArray, languages: pa.Array) -> tuple[pa.ListArray, np.ndarray | None]:
    """The pieces of captions in a language written without spaces (Chinese, Japanese, Thai, Lao) cut
    into words where they hold its script, by the segmenter ``curation-metadata`` counts Wikipedia with
    (``metadata/segment.py``), so that such a language's gaps are words rather than clauses.

    Returns the pieces and, per piece of the flattened result, whether it is glued to the one before
    (a word cut out of the same piece; None when nothing was cut): an n-gram joins glued words without
    a space, as the caption writes them. Without the optional segmenters
    (``pip install 'curation-studio[segment]'``) nothing is cut."""
    codes = pc.fill_null(pc.cast(languages, pa.string()), "")
    parts, glued, taken = [], [], []
    for code in pc.unique(codes).to_pylist():
        segmenter = _segmenter(code)
        if segmenter is None:
            continue
        rows = np.flatnonzero(pc.equal(codes, code).to_numpy(zero_copy_only=False))
        lists = split.take(pa.array(rows))
        flat = lists.flatten()
        hits = pc.fill_null(pc.match_substring_regex(flat, segmenter.spec.script), False).to_pylist()
        words, owners, glue = [], [], []
        for token, hit, owner in zip(flat.to_pylist(), hits, pc.list_parent_indices(lists).to_pylist()):
            cut = (" ".join(segmenter.cut(token)).split() or [""]) if hit else [token]  # no word holds a space
            words += cut
            owners += [owner] * len(cut)
            glue += [False] + [True] * (len(cut) - 1)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(np.asarray(owners, np.int64), minlength=len(rows)))])
        parts.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(words, pa.string())))
        glued.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(glue, pa.bool_())))
        taken.append(rows)
    if not parts:
        return split, None
    rest = np.setdiff1d(np.arange(len(split)), np.concatenate(taken))
    back = pa.array(np.argsort(np.concatenate([rest, *taken])))
    kept = split.take(pa.array(rest)).cast(parts[0].type)
    joined = pa.concat_arrays([kept, *parts]).take(back)
    plain = pc.list_value_length(kept).to_numpy(zero_copy_only=False)
    unglued = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(plain)]), pa.int32()), pa.array(np.zeros(int(plain.sum()), bool))
    )
    glue_flags = pa.concat_arrays([unglued, *glued]).take(back).flatten()
    return joined, glue_flags.to_numpy(zero_copy_only=False)


def _segmenter(code: str) -> Segmenter | None:
    """The language's segmenter, None when it has none or it is not installed."""
    if spec_for(code) is None:
        return None
    try:
        return segmenter_for(code)
    except MetadataError:
        return None


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
    glued = None
    if languages is not None:
        split, glued = segment(split, languages)
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
            if glued is not None:  # "中国人" glued and "中国 人" apart are two n-grams
                combined = combined * 2 + glued[starts + step]
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
    import pandas as pd  # here, not at the top: every `curation` command imports this module

    gram, uniques = pd.factorize(number)  # a hash table: faster here than np.unique's sort
    distinct = len(uniques)
    # each (caption, n-gram) once: the first position of each pair
    _, once = np.unique(row * distinct + gram, return_index=True)
    gram, row = gram[once], row[once]
    firsts = np.full(distinct, len(once), np.int64)
    np.minimum.at(firsts, gram, np.arange(len(once)))
    at, size = start[once][firsts], length[once][firsts]
    pairs = np.bincount(gram, minlength=distinct)
    unmatched_pairs = np.bincount(gram, weights=unmatched[row], minlength=distinct).astype(np.int64)
    keys = _spell(words, codes, at, size, glued)
    if languages is not None:
        spoken = language_codes.dictionary.take(pa.array(language[once][firsts]))
        keys = pc.binary_join_element_wise(spoken, keys, LANGUAGE_MARK)
    if glued is not None:  # glued words may spell a word the segmenter kept whole: count each caption once
        spelled = pc.dictionary_encode(keys)
        if len(spelled.dictionary) < len(keys):
            same = spelled.indices.to_numpy().astype(np.int64)[gram]
            _, once = np.unique(row * len(spelled.dictionary) + same, return_index=True)
            flags = unmatched[row[once]]
            pairs = np.bincount(same[once], minlength=len(spelled.dictionary))
            unmatched_pairs = np.bincount(same[once], weights=flags, minlength=len(pairs)).astype(np.int64)
            keys = spelled.dictionary
    return pa.table({KEY: keys, PAIRS: pairs.astype(np.int64), UNMATCHED: unmatched_pairs}, schema=GRAM_SCHEMA)


def _spell(
    words: pa.Array, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, glued: np.ndarray | None = None
) -> pa.Array:
    """The text of the n-gram of ``lengths[i]`` pieces at ``starts[i]``: its pieces joined by spaces, or
    by nothing before a glued piece."""
    text = words.take(pa.array(codes[starts]))
    for step in range(1, int(lengths.max()) if len(lengths) else 0):
        longer = lengths > step
        following = np.where(longer, starts + step, starts)
        more = words.take(pa.array(codes[following]))
        space = " " if glued is None else pa.array(np.where(glued[following], "", " "))
        text = pc.if_else(pa.array(longer), pc.binary_join_element_wise(text, space, more, ""), text)
    return text


def reference_grams(
    text: str | None,
    sizes: Sequence[int],
    stop_words: frozenset[str],
    worldwide: bool = False,
    segmenter: Segmenter | None = None,
) -> set[str]:
    """The n-grams of one caption, written plainly: the slow, obvious version the tests hold the batch
    path to (``segmenter``: the caption's language's, in a worldwide run)."""
    if not text:
        return set()
    if worldwide:
        text = text.strip()
    for control in SPACED_CONTROLS:
        text = text.replace(control, " ")
    for wrapped in WRAPPED_PUNCTUATION:
        text = text.replace(wrapped, f" {wrapped} ")
    tokens, glued = [], []
    for piece in text.split(" "):
        holds_script = (
            segmenter is not None and pc.match_substring_regex(pa.array([piece]), segmenter.spec.script)[0].as_py()
        )
        words = (" ".join(segmenter.cut(piece)).split() or [""]) if holds_script else [piece]
        tokens += words
        glued += [False] + [True] * (len(words) - 1)
    found = set()
    for n in sizes:
        for start in range(len(tokens) - n + 1):
            run = tokens[start : start + n]
            if not all(_is_word(piece) for piece in run):
                continue
            if run[0].lower() in stop_words or run[-1].lower() in stop_words:
                continue
            gram = run[0]
            for offset, word in enumerate(run[1:], start + 1):
                gram += ("" if glued[offset] else " ") + word
            found.add(gram)
    return found


def _is_word(piece: str) -> bool:
    return piece not in WRAPPED_PUNCTUATION and any(unicodedata.category(c)[0] in "LN" for c in piece)
