"""MetaCLIP substring matching: the spacing rule and an Aho-Corasick automaton over the entries.

Semantics (DESIGN.md section 1.2): the text is padded with one space at each end, each of
``, . ; : ? ! ` `` is wrapped in spaces, tab/newline/carriage return become spaces, and entry E
matches iff ``" " + E + " "`` occurs in that spaced text. Case-sensitive, once per pair, and a null
or empty text matches nothing. Everything here is pure: no I/O, no engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WRAPPED_PUNCTUATION = (",", ".", ";", ":", "?", "!", "`")
SPACED_CONTROLS = ("\t", "\n", "\r")


def spacing(text: str) -> str:
    """The reference spacing of one text, exactly as MetaCLIP's curation script does it."""
    spaced = f" {text} "
    for punct in WRAPPED_PUNCTUATION:
        spaced = spaced.replace(punct, f" {punct} ")
    for control in SPACED_CONTROLS:
        spaced = spaced.replace(control, " ")
    return spaced


def spacing_batch(texts: pa.Array) -> pa.Array:
    """Spacing of a whole Arrow string array in C++ (without the two padding spaces); null stays null."""
    spaced = texts
    for punct in WRAPPED_PUNCTUATION:
        spaced = pc.replace_substring(spaced, punct, f" {punct} ")
    for control in SPACED_CONTROLS:
        spaced = pc.replace_substring(spaced, control, " ")
    return spaced


def build_automaton(entries: Sequence[str]) -> ahocorasick.Automaton:
    """An automaton whose keys are the padded entries and whose values are the entry ids.

    Entries holding a tab, newline or carriage return are left out: spacing removes those characters
    from every text, so such an entry can never match, and keeping it out means no key can ever
    reach across the boundary of two texts.
    """
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for entry_id, entry in enumerate(entries):
        if entry and not any(control in entry for control in SPACED_CONTROLS):
            automaton.add_word(f" {entry} ", entry_id)
    if len(automaton) == 0:
        # An automaton with no keys cannot be searched; a sentinel that no spaced text contains
        # (spacing turns every newline into a space) keeps the batch code free of special cases.
        automaton.add_word("\n", 0)
    automaton.make_automaton()
    return automaton


def match_text(automaton: ahocorasick.Automaton, text: str | None) -> list[int]:
    """The reference matcher for one text: ascending unique entry ids."""
    if not text:
        return []
    return sorted({entry_id for _, entry_id in automaton.iter(spacing(text))})


def match_batch(automaton: ahocorasick.Automaton, texts: pa.Array) -> pa.ListArray:
    """Entry ids matched by each text of an Arrow string array, as ``list<int32>`` (ascending, unique).

    The spacing runs vectorised in Arrow; the per-text loop keeps only the automaton scan and a set
    in Python, which measured faster than scanning one joined string and mapping hits back to texts.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    spaced = spacing_batch(texts).to_pylist()
    scan = automaton.iter
    sizes = np.zeros(len(spaced), dtype=np.int64)
    matched: list[int] = []
    for row, text in enumerate(spaced):
        if text:
            found = {entry_id for _, entry_id in scan(f" {text} ")}
            if found:
                sizes[row] = len(found)
                matched.extend(sorted(found))
    offsets = np.zeros(len(spaced) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    values = pa.array(np.asarray(matched, dtype=np.int32), type=pa.int32())
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)
