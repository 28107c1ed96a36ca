"""MetaCLIP matching as a walk over a trie of token ids: exact, and with no Python work per match.

Why it is the same rule (docs/design.md, "Matching"). Let T' be the text with tab, newline and
carriage return turned into spaces and each of ``, . ; : ? ! ` `` wrapped in spaces; the spaced text
is s = " " + T' + " ". Split s on the one character U+0020: its tokens are "" (the left padding), then
the tokens of T', then "" (the right padding). Entry E matches iff " " + E + " " occurs in s at some
position i. The space at i ends a token, so E starts a token; E's own spaces are spaces of s, so E's
tokens E.split(" ") are consecutive tokens of s; and the space after E ends E's last token. The run
cannot start at the left padding (a space precedes it) nor end at the right padding (a space follows
it). Conversely such a run of tokens, with the spaces around it, is " " + E + " " in s. So:

    E matches  <=>  E.split(" ") is a run of consecutive tokens of T'.split(" ").

Everything else follows: an entry with a leading, trailing or doubled space has empty tokens, which
T' holds exactly where it has adjacent spaces; an entry holding a wrapped character next to another
character ("U.S.") has a token that T' never has; an entry holding a tab, newline or carriage return
can never match (T' has none); other whitespace (U+00A0, U+3000, ...) is an ordinary byte of a token.

How a batch is matched, all in Arrow and numpy:
1. Split each text on spaces into raw words (Arrow ``split_pattern``), after turning controls into
   spaces. Splitting distributes over the join: T'.split(" ") is the concatenation, over the raw
   words w, of spaced(w).split(" "), where spaced(w) wraps w's wrapped characters in spaces.
2. Dictionary-encode the raw words (Arrow's hash table), cut each *distinct* raw word into its
   tokens and look them up in the metadata's token vocabulary (a hash table in numpy arrays, every
   hit confirmed byte for byte): so the lookup costs per distinct word, not per occurrence.
3. Lay the token ids out in text order, with one boundary token (never in the vocabulary) after each
   text, so no run reaches from one text into the next.
4. Walk the trie level by level for all start positions at once: level one is an array index (a
   first token's node is its token id); deeper levels look up (node, next token) in a hash table
   and touch only positions whose node has children.
5. Sort and deduplicate each text's entry ids in one 2-D row sort.

Pure: no I/O. ``TokenTables`` is plain arrays, so a run stores them once and every worker maps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.arrow_bytes import binary_parts, string_array
from curation.balancing import GOLDEN_GAMMA as _GOLDEN
from curation.balancing import splitmix64 as _mix  # its finaliser spreads every input bit over the word
from curation.matching import SPACED_CONTROLS, WRAPPED_PUNCTUATION

_CONTROL_BYTES = np.frombuffer("".join(SPACED_CONTROLS).encode(), dtype=np.uint8)
_WRAPPED_BYTES = np.frombuffer("".join(WRAPPED_PUNCTUATION).encode(), dtype=np.uint8)
_SPACE = np.uint8(ord(" "))
_EMPTY_SLOT = np.int32(-1)
_WORD = 8  # bytes compared or hashed at a time; byte strings are padded with this many zero bytes
# _LOW_BYTES[n]: a mask of the low n bytes of a little-endian word (all of it from 8 bytes on).
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(_WORD)] + [2**64 - 1], dtype=np.uint64)


# --------------------------------------------------------------------------------------------------
# Hashing and comparing byte strings, vectorised over spans. The tables confirm every hit byte for
# byte, so hash quality only affects speed, never results.
# --------------------------------------------------------------------------------------------------


def padded(data: np.ndarray) -> np.ndarray:
    """The bytes followed by _WORD zero bytes, so a word can be read at any byte of the data."""
    out = np.zeros(len(data) + _WORD, dtype=np.uint8)
    out[: len(data)] = data
    return out


def _words(padded_bytes: np.ndarray) -> np.ndarray:
    """A view whose element j is the little-endian 64-bit word starting at byte j."""
    return np.ndarray(shape=(len(padded_bytes) - _WORD + 1,), dtype="<u8", buffer=padded_bytes, strides=(1,))


def _hash_spans(words: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every span from its length and its first, middle and last eight bytes."""
    lengths = ends - starts
    first = words[starts] & _LOW_BYTES[np.minimum(lengths, _WORD)]
    last = np.where(lengths > _WORD, words[np.where(lengths > _WORD, ends - _WORD, starts)], np.uint64(0))
    long = lengths > 2 * _WORD
    middle = np.where(long, words[np.where(long, starts + lengths // 2 - _WORD // 2, starts)], np.uint64(0))
    with np.errstate(over="ignore"):
        return _mix(first ^ _mix(last ^ _mix(middle + lengths.astype(np.uint64) * _GOLDEN)))


def _spans_equal(
    words: np.ndarray, starts: np.ndarray, other_words: np.ndarray, other_starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Whether each pair of equally long spans holds the same bytes, eight bytes at a time."""
    equal = np.ones(len(starts), dtype=bool)
    pending = np.flatnonzero(lengths > 0)
    offset = 0
    while len(pending):
        remaining = lengths[pending] - offset
        differ = (words[starts[pending] + offset] ^ other_words[other_starts[pending] + offset]) & _LOW_BYTES[
            np.minimum(remaining, _WORD)
        ]
        same = differ == 0
        equal[pending[~same]] = False
        pending = pending[same & (remaining > _WORD)]
        offset += _WORD
    return equal


def _slot_bits(keys: int) -> int:
    """Table size 2**bits, at least four times the keys: with linear probing, a fuller table makes
    long runs of taken slots, and a lookup that misses walks a whole run."""
    return max(4, int(4 * max(keys, 1) - 1).bit_length())


def _first_slots(hashes: np.ndarray, bits: int) -> np.ndarray:
    return (hashes >> np.uint64(64 - bits)).astype(np.int64)


def _place(hashes: np.ndarray, bits: int) -> np.ndarray:
    """Open addressing with linear probing, filled in rounds: the slot of every key.

    In round r each unplaced key tries slot (first + r); among keys that want the same free slot the
    first wins. A key placed in round r found slots first .. first + r - 1 taken, so a lookup that
    probes from the first slot and stops at an empty slot always reaches it.
    """
    size = 1 << bits
    taken = np.zeros(size, dtype=bool)
    slots = np.full(len(hashes), -1, dtype=np.int64)
    waiting = np.arange(len(hashes))
    first = _first_slots(hashes, bits)
    step = 0
    while len(waiting):
        wanted = (first[waiting] + step) & (size - 1)
        free = ~taken[wanted]
        candidates, wanted = waiting[free], wanted[free]
        order = np.argsort(wanted, kind="stable")
        wanted, candidates = wanted[order], candidates[order]
        winner = np.ones(len(wanted), dtype=bool)
        winner[1:] = wanted[1:] != wanted[:-1]
        slots[candidates[winner]] = wanted[winner]
        taken[wanted[winner]] = True
        waiting = waiting[slots[waiting] < 0]
        step += 1
    return slots


# --------------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTables:
    """The metadata as a trie over its token vocabulary, in arrays that can be stored and mapped.

    Nodes 0 .. V-1 are the first tokens themselves (node = token id); deeper nodes follow. The node
    id N = len(terminal) - 1 is a sink: "no token here".
    """

    vocabulary_offsets: np.ndarray  # int64 [V + 1]: token id -> its bytes in vocabulary_bytes
    vocabulary_bytes: np.ndarray  # uint8, followed by 8 zero bytes (see padded)
    vocabulary_slots: np.ndarray  # int32 [2**b]: token id or -1, placed by _hash_spans of its bytes
    vocabulary_slot_hashes: np.ndarray  # uint64 [2**b]: that hash, so most misses need no byte comparison
    terminal: np.ndarray  # int32 [N + 1]: the entry id that ends at a node, or -1
    branching: np.ndarray  # bool [N + 1]: the node has children
    edge_keys: np.ndarray  # uint64 [2**c]: node << 32 | token
    edge_children: np.ndarray  # int32 [2**c]: child node, or -1 for an empty slot
    n_entries: np.ndarray  # int64 [1]: entries in the metadata (entry ids are below it)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary_offsets) - 1

    @property
    def sink(self) -> int:
        return len(self.terminal) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TokenTables:
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})


def build_tables(entries: Sequence[str]) -> TokenTables:
    """The trie of the entries' token sequences; entry ids are positions in ``entries``.

    Entries that can never match are left out. Were an entry repeated, its last id would be the one
    reported, as with the reference automaton (a repeated key keeps its last value there).
    """
    everything = string_array(entries)
    never = pc.or_(
        pc.equal(pc.binary_length(everything), 0),
        pc.match_substring_regex(everything, "[" + "".join(SPACED_CONTROLS) + "]"),
    )
    entry_ids = np.flatnonzero(~never.to_numpy(zero_copy_only=False)).astype(np.int32)
    kept = everything.take(pa.array(entry_ids))
    words = pc.split_pattern(kept, " ")
    lengths = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.cast(pc.list_flatten(words), pa.binary())
    encoded = pc.dictionary_encode(flat)
    tokens = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    vocabulary_bytes, vocabulary_offsets = binary_parts(encoded.dictionary)
    vocabulary_size = len(vocabulary_offsets) - 1

    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    node = tokens[starts[:-1]] if len(lengths) else np.zeros(0, dtype=np.int64)
    edge_keys, edge_children = [], []
    next_node = vocabulary_size
    level = 2
    while True:
        live = np.flatnonzero(lengths >= level)
        if not len(live):
            break
        keys = (node[live].astype(np.uint64) << np.uint64(32)) | tokens[starts[live] + level - 1].astype(np.uint64)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        new = np.ones(len(ordered), dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        children = next_node + np.cumsum(new) - 1
        node[live[order]] = children
        edge_keys.append(ordered[new])
        edge_children.append(children[new])
        next_node += int(new.sum())
        level += 1

    terminal = np.full(next_node + 1, -1, dtype=np.int32)
    terminal[node] = entry_ids  # numpy assigns in order: a repeated node keeps the last id
    all_keys = np.concatenate(edge_keys) if edge_keys else np.zeros(0, dtype=np.uint64)
    all_children = np.concatenate(edge_children) if edge_children else np.zeros(0, dtype=np.int64)
    branching = np.zeros(next_node + 1, dtype=bool)
    branching[(all_keys >> np.uint64(32)).astype(np.int64)] = True

    edge_bits = _slot_bits(len(all_keys))
    edge_slots = _place(_mix(all_keys), edge_bits)
    table_keys = np.zeros(1 << edge_bits, dtype=np.uint64)
    table_children = np.full(1 << edge_bits, _EMPTY_SLOT, dtype=np.int32)
    table_keys[edge_slots] = all_keys
    table_children[edge_slots] = all_children

    vocabulary_bytes = padded(vocabulary_bytes)
    vocabulary_bits = _slot_bits(vocabulary_size)
    token_hashes = _hash_spans(_words(vocabulary_bytes), vocabulary_offsets[:-1], vocabulary_offsets[1:])
    vocabulary_slots = np.full(1 << vocabulary_bits, _EMPTY_SLOT, dtype=np.int32)
    vocabulary_slot_hashes = np.zeros(1 << vocabulary_bits, dtype=np.uint64)
    placed = _place(token_hashes, vocabulary_bits)
    vocabulary_slots[placed] = np.arange(vocabulary_size, dtype=np.int32)
    vocabulary_slot_hashes[placed] = token_hashes
    return TokenTables(
        vocabulary_offsets=vocabulary_offsets,
        vocabulary_bytes=vocabulary_bytes,
        vocabulary_slots=vocabulary_slots,
        vocabulary_slot_hashes=vocabulary_slot_hashes,
        terminal=terminal,
        branching=branching,
        edge_keys=table_keys,
        edge_children=table_children,
        n_entries=np.array([len(entries)], dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------------------


def lookup_tokens(tables: TokenTables, words: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Token ids of byte spans (the sink id for a span that is no token of the metadata)."""
    result = np.full(len(starts), tables.sink, dtype=np.int32)
    if not len(starts) or not tables.vocabulary_size:
        return result
    slots_table, slot_hashes = tables.vocabulary_slots, tables.vocabulary_slot_hashes
    mask = len(slots_table) - 1
    hashes = _hash_spans(words, starts, ends)
    slots = _first_slots(hashes, mask.bit_length())
    vocabulary_words = _words(tables.vocabulary_bytes)
    offsets = tables.vocabulary_offsets
    pending = np.arange(len(starts))
    while len(pending):
        candidate = slots_table[slots[pending]]
        occupied = candidate >= 0
        pending, candidate = pending[occupied], candidate[occupied]
        lengths = ends[pending] - starts[pending]
        # Same hash and length first (cheap), then the bytes themselves.
        check = (slot_hashes[slots[pending]] == hashes[pending]) & (
            lengths == offsets[candidate + 1] - offsets[candidate]
        )
        found = check.copy()
        found[check] = _spans_equal(
            words, starts[pending[check]], vocabulary_words, offsets[candidate[check]], lengths[check]
        )
        result[pending[found]] = candidate[found]
        pending = pending[~found]
        slots[pending] = (slots[pending] + 1) & mask
    return result


def _children(tables: TokenTables, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The child of each (node, token), or -1."""
    keys = (nodes.astype(np.uint64) << np.uint64(32)) | tokens.astype(np.uint64)
    table_keys, table_children = tables.edge_keys, tables.edge_children
    mask = len(table_keys) - 1
    slots = _first_slots(_mix(keys), mask.bit_length())
    result = np.full(len(keys), -1, dtype=np.int64)
    pending = np.arange(len(keys))
    while len(pending):
        child = table_children[slots[pending]]
        occupied = child >= 0
        found = occupied & (table_keys[slots[pending]] == keys[pending])
        result[pending[found]] = child[found]
        pending = pending[occupied & ~found]
        slots[pending] = (slots[pending] + 1) & mask
    return result


# --------------------------------------------------------------------------------------------------
# Matching a batch
# --------------------------------------------------------------------------------------------------


def _without_controls(texts: pa.Array) -> pa.Array:
    """The texts with tab, newline and carriage return turned into spaces (a copy only if needed)."""
    data, offsets = binary_parts(texts)
    controls = (data == _CONTROL_BYTES[0]) | (data == _CONTROL_BYTES[1]) | (data == _CONTROL_BYTES[2])
    if not controls.any():
        return texts
    data = data.copy()
    data[controls] = _SPACE
    return pa.StringArray.from_buffers(len(texts), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))


def _word_tokens(words: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut raw words (no spaces in them) into their tokens: each wrapped character stands alone.

    spaced(w).split(" ") for a word w: a wrapped character at j ends the token before it, is a token,
    and starts the one after it, so a word with k wrapped characters has 2k + 1 tokens (some empty).
    Returns (bytes, token starts, token ends, the index of each word's first token) with all tokens
    in order; word i's tokens are first[i] .. first[i + 1] - 1.
    """
    data, offsets = binary_parts(words)
    wrapped = np.flatnonzero(np.isin(data, _WRAPPED_BYTES))
    word_of = np.searchsorted(offsets, wrapped, side="right") - 1
    per_word = 1 + 2 * np.bincount(word_of, minlength=len(offsets) - 1)
    first = np.zeros(len(per_word) + 1, dtype=np.int64)
    np.cumsum(per_word, out=first[1:])
    total = int(first[-1])
    # Token boundaries: a word's start, then around each wrapped character, then the word's end.
    starts = np.empty(total, dtype=np.int64)
    ends = np.empty(total, dtype=np.int64)
    starts[first[:-1]] = offsets[:-1]
    ends[first[1:] - 1] = offsets[1:]
    # The k-th wrapped character of word i is token first[i] + 2k + 1; rank k from the sorted order.
    rank = np.arange(len(wrapped)) - np.searchsorted(word_of, word_of, side="left")
    at = first[word_of] + 2 * rank + 1
    ends[at - 1] = wrapped
    starts[at] = wrapped
    ends[at] = wrapped + 1
    starts[at + 1] = wrapped + 1
    return data, starts, ends, first


def _token_ids(tables: TokenTables, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Every text's token ids in order, each text followed by the sink; and each text's first token."""
    texts = pc.fill_null(pc.cast(texts, pa.string()), "")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    words = pc.split_pattern(_without_controls(texts), " ")
    word_offsets = _list_offsets(words)  # every text has at least one word: "" splits to [""]
    encoded = pc.dictionary_encode(pc.list_flatten(words))  # measured: strings hash faster than binary
    data, starts, ends, first = _word_tokens(encoded.dictionary)
    distinct_ids = lookup_tokens(tables, _words(padded(data)), starts, ends)
    # Lay each occurrence's tokens out in text order, leaving one sink slot after every text. Most
    # words are one token; the few holding wrapped characters are copied as ranges.
    occurrence = encoded.indices.to_numpy(zero_copy_only=False)
    size = (first[1:] - first[:-1]).astype(np.int32)[occurrence]
    n_texts = len(word_offsets) - 1
    n_tokens = int(size.sum(dtype=np.int64)) + n_texts + 1
    index = np.int32 if n_tokens < 2**31 else np.int64  # half the memory traffic in the common case
    text_of = np.repeat(np.arange(n_texts, dtype=index), np.diff(word_offsets))
    destination = np.cumsum(size, dtype=index) - size + text_of
    tokens_per_text = np.add.reduceat(size, word_offsets[:-1]) if n_texts else np.zeros(0, dtype=np.int32)
    token_ids = np.full(n_tokens, tables.sink, dtype=np.int32)
    single = size == 1
    token_ids[destination[single]] = distinct_ids[first[occurrence[single]]]
    several = ~single
    token_ids[_ranges(destination[several], size[several])] = distinct_ids[
        _ranges(first[occurrence[several]], size[several])
    ]
    text_starts = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(tokens_per_text.astype(np.int64) + 1, out=text_starts[1:])
    return token_ids, text_starts


def _list_offsets(lists: pa.Array) -> np.ndarray:
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    offsets = np.frombuffer(lists.buffers()[1], dtype=np.int32)[lists.offset : lists.offset + len(lists) + 1]
    return offsets.astype(np.int64)


def _walk(tables: TokenTables, token_ids: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start positions and entry ids of every match, one pair of arrays per trie level.

    Positions within a level are ascending. ``token_ids`` ends with the sink, so a run that is
    still alive always has a next position to look at.
    """
    terminal, branching = tables.terminal, tables.branching
    ends_here = terminal[token_ids]
    hit = np.flatnonzero(ends_here >= 0)
    positions, entries = [hit], [ends_here[hit]]
    live = np.flatnonzero(branching[token_ids])
    nodes = token_ids[live]
    depth = 1
    while len(live):
        following = token_ids[live + depth]
        known = following < tables.vocabulary_size
        live, nodes, following = live[known], nodes[known], following[known]
        nodes = _children(tables, nodes, following)
        found = nodes >= 0
        live, nodes = live[found], nodes[found]
        ends_here = terminal[nodes]
        hit = ends_here >= 0
        positions.append(live[hit])
        entries.append(ends_here[hit])
        deeper = branching[nodes]
        live, nodes = live[deeper], nodes[deeper]
        depth += 1
    return positions, entries


ROW_SORT_WIDTH = 16  # texts with up to this many matches are sorted as rows of one 2-D array


def _entry_lists(levels: list[np.ndarray], by_level: list[np.ndarray], n_texts: int) -> pa.ListArray:
    """Ascending unique entry ids per text, as list<int32>, from each trie level's matches.

    ``levels[k]`` holds the texts of level k's matches (non-decreasing: a level is found in text
    order) and ``by_level[k]`` their entry ids. Sorting each text's few ids as a row of a 2-D array
    (padded with a value above every id) is far cheaper than one global sort; a text with more
    matches than a row holds is sorted apart, by a key of (text, entry id).
    """
    level_counts = [np.bincount(texts, minlength=n_texts) for texts in levels]
    counts = np.sum(level_counts, axis=0) if level_counts else np.zeros(n_texts, dtype=np.int64)
    width = int(min(counts.max(initial=1), ROW_SORT_WIDTH)) or 1
    wide = counts > width
    pad = np.iinfo(np.int32).max  # above every entry id
    grid = np.full((n_texts, width), pad, dtype=np.int32)
    filled = np.zeros(n_texts, dtype=np.int64)
    wide_texts, wide_entries = [], []
    for texts, entries, level_count in zip(levels, by_level, level_counts):
        start = np.cumsum(level_count) - level_count
        column = np.arange(len(texts)) - start[texts] + filled[texts]
        filled += level_count
        narrow = ~wide[texts]
        grid[texts[narrow], column[narrow]] = entries[narrow]
        wide_texts.append(texts[~narrow])
        wide_entries.append(entries[~narrow])
    grid.sort(axis=1)
    keep = grid != pad
    keep[:, 1:] &= grid[:, 1:] != grid[:, :-1]
    kept = keep.sum(axis=1)
    narrow_values = grid[keep]
    if wide.any():
        bound = np.int64(max(int(e.max(initial=0)) for e in wide_entries) + 1)
        keys = np.sort(np.concatenate(wide_texts).astype(np.int64) * bound + np.concatenate(wide_entries))
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        kept[wide] = np.bincount(keys // bound, minlength=n_texts)[wide]
    offsets = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(kept, out=offsets[1:])
    if wide.any():
        values = np.empty(int(offsets[-1]), dtype=np.int32)
        values[_ranges(offsets[:-1][~wide], kept[~wide])] = narrow_values
        values[_ranges(offsets[:-1][wide], kept[wide])] = keys % bound
    else:
        values = narrow_values
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of range(start, start + length) for every pair, without a Python loop."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total)


def match_batch(tables: TokenTables, texts: pa.Array) -> pa.ListArray:
    """Entry ids matched by each text of an Arrow string array, as ``list<int32>`` (ascending, unique)."""
    n = len(texts)
    if n == 0:
        return pa.ListArray.from_arrays(pa.array([0], type=pa.int32()), pa.array([], type=pa.int32()))
    token_ids, text_starts = _token_ids(tables, texts)
    positions, entries = _walk(tables, token_ids)
    text_of_token = np.repeat(np.arange(n, dtype=np.int32), np.diff(text_starts))
    return _entry_lists([text_of_token[p] for p in positions], entries, n)
