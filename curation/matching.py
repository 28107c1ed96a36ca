"""MetaCLIP substring matching: the spacing rule and an Aho-Corasick automaton over the entries.

Semantics (DESIGN.md section 1.2): the text is padded with one space at each end, each of
``, . ; : ? ! ` `` is wrapped in spaces, tab/newline/carriage return become spaces, and entry E
matches iff ``" " + E + " "`` occurs in that spaced text. Case-sensitive, once per pair, and a null
or empty text matches nothing. Everything here is pure: no I/O, no engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

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


_WRAP = np.zeros(256, dtype=np.uint8)
_WRAP[np.frombuffer("".join(WRAPPED_PUNCTUATION).encode(), dtype=np.uint8)] = 1
_BYTE_MAP = np.arange(256, dtype=np.uint8)
_BYTE_MAP[np.frombuffer("".join(SPACED_CONTROLS).encode(), dtype=np.uint8)] = ord(" ")
_SPACE = ord(" ")


def spacing_batch(texts: pa.Array) -> pa.Array:
    """The spacing of every text of an Arrow string array at once, padding included.

    Works on the UTF-8 bytes: the characters involved are ASCII and never occur inside a multi-byte
    sequence, so a byte-level rewrite in numpy gives exactly the per-text ``spacing``. Null and empty
    texts come out empty rather than as two spaces: neither can hold a key, so matching is the same.
    """
    texts = pc.cast(texts, pa.string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count:
        texts = pc.fill_null(texts, "")  # a null slot's bytes are not guaranteed to be empty
    n = len(texts)
    if n == 0:
        return pa.array([], type=pa.string())
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[texts.offset : texts.offset + n + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]] if data_buffer is not None \
        else np.zeros(0, dtype=np.uint8)
    offsets -= offsets[0]
    # Every byte is repeated 1 + lead + trail times, then the repeats are overwritten with spaces:
    # a wrapped character gets a space on both sides, a text's first byte one more before it (the
    # padding), its last byte one more after it.
    nonempty = offsets[:-1] < offsets[1:]
    wrap = _WRAP[data]
    lead = wrap.copy()
    lead[offsets[:-1][nonempty]] += 1
    trail = wrap.copy()
    trail[offsets[1:][nonempty] - 1] += 1
    widths = 1 + lead + trail
    spaced = np.repeat(_BYTE_MAP[data], widths)
    running = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(widths, out=running[1:])
    for extra in (1, 2):
        spaced[running[:-1][lead >= extra] + (extra - 1)] = _SPACE
        spaced[running[1:][trail >= extra] - extra] = _SPACE
    new_offsets = running[offsets]
    if new_offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(new_offsets.astype(np.int32)), pa.py_buffer(spaced))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(new_offsets), pa.py_buffer(spaced))


def build_automaton(entries: Sequence[str]) -> ahocorasick.Automaton:
    """An automaton whose keys are the padded entries and whose values are the entry ids.

    Entries holding a tab, newline or carriage return are left out: spacing removes those characters
    from every text, so such an entry can never match.
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

    Spacing runs vectorised over the bytes; Python keeps only the automaton scan and a set per text,
    which measured faster than scanning one joined string and mapping the hits back to texts.
    """
    scan = automaton.iter
    found = [sorted({entry_id for _, entry_id in scan(text)}) for text in spacing_batch(texts).to_pylist()]
    offsets = np.zeros(len(found) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, found), dtype=np.int32, count=len(found)), out=offsets[1:])
    values = np.fromiter(chain.from_iterable(found), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(values, type=pa.int32()))
