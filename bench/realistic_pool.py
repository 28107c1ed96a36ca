"""Generate a benchmark pool that looks like real web alt-text, with a MetaCLIP-like metadata, and check it.

The synthetic pools of generate_pool.py have MetaCLIP's *shape* but not real text. Matching cost depends
on what real alt-texts are made of (lengths, punctuation, casing, vocabulary and, above all, how many
entries each caption matches), so this script grows captions from real alt-texts and measures how close
they stay to them.

    python bench/realistic_pool.py --rows 10000000 --entries 500000 --out /tmp/bench/real10m
        [--seed 0] [--files 8] [--row-group-rows 100000] [--workers 2] [--real-data DIR] [--show 30]

Metadata (OUT/metadata.json, exactly --entries unique strings), in this order:
  1. WordNet head names: the entries of data_samples/metadata.parquet whose sources hold "wordnet";
  2. common English words, wordfreq's English "large" list in frequency order (lower case);
  3. Capitalised variants ("Dog") of the most frequent of those words (--capital-share of the words);
  4. real bigrams: word pairs counted in CC3M and COCO captions, ranked by PMI, with a minimum count;
  5. the numbers "0".."99".
Words that can never match under the engine's spacing rule (holding , . ; : ? ! ` or whitespace) and
wordfreq's placeholders for multi-digit numbers ("00", "a000") are left out.

Captions (OUT/pool/part-XXXXX.parquet: id int64, url string, text string): each row takes one of the
10,000 real alt-texts as its template and replaces about --replace-share of its words (at least one).
- A word wordfreq knows is replaced by a word of the same class: about the same frequency rank (six
  classes per doubling), the same length, and an entry in the same case forms. Within the class a word
  is drawn by wordfreq's frequency mixed with how often the real alt-texts use it. It is written in the
  template word's case pattern, with the punctuation glued to it and the spacing around it.
- A word wordfreq lacks (brand names, compounds such as "T-Shirt", non-English words) is replaced by
  another such word of the templates with the same case, script and length band, or by a new word
  spliced from two of them, so the vocabulary keeps growing a long tail.
- A word repeated in a caption gets the same replacement; the 100 most frequent words, words that form
  a multi-word entry with a neighbour and profane words stay; numbers of two or more digits get new
  trailing digits. Everything else (length, numbers, SKUs, file names, punctuation, non-English text)
  is the template's. Urls keep the template's host and folder and end in a slug and the row id.

Check (OUT/realism.json, and a table on stdout): the first --check-rows generated captions against the
real alt-texts on lengths, tokens, non-ASCII and punctuation shares, distinct texts and tokens, matches
per caption under the project's reference matcher (curation.matching), the share of matches held by the
top 3% of entries, and the speed of the reference per-text loop and of the engine's batch matcher on
both. A second comparison grows captions from a random half of the alt-texts and compares them with the
other half, which the generator has not seen.

Deterministic for a seed and a layout (rows, files, row-group rows, entries, knobs, the real data and
the wordfreq version): each row group has its own seed, so the worker count does not change a byte.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
WORDNET_SOURCE = REPO / "data_samples" / "metadata.parquet"
REFERENCE_FILE = "alt_text_10k.parquet"
CAPTION_FILES = ("real/cc3m_val.parquet", "real/coco_val2017.parquet")

NUMBERS = tuple(str(i) for i in range(100))
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")  # letters, joined by one inner ' ’ or -
TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # letters or digits, as a bigram counter tokenises
UNMATCHABLE = re.compile(r"[,.;:?!`\s]|\d\d")  # spaced-out punctuation; wordfreq's "00" placeholders
WRAPPED = ",.;:?!`"  # the characters the engine wraps in spaces
SPACES = (" ", "\t", "\n", "\r")  # what the engine turns into one space
LEAD = set("\"'“‘«([{¿¡*#")  # punctuation glued before a word in a template
TRAIL = set("\"'”’»)]},.;:?!…*")  # ... and after it
VOWELS = set("aeiouyáéíóúàèìòùâêîôûäëïöüãõåæøœ")
# Words the generator never puts into a caption on its own (templates keep theirs: they are real text).
BLOCKED_PREFIXES = (
    "fuck",
    "shit",
    "cunt",
    "nigg",
    "fagg",
    "porn",
    "slut",
    "whore",
    "bitch",
    "pussy",
    "asshole",
    "retard",
    "masturb",
    "orgasm",
    "blowjob",
    "sex",
    "nude",
    "nudi",
    "boob",
    "penis",
    "vagin",
    "dildo",
    "hentai",
    "erotic",
    "horny",
    "incest",
    "pedo",
    "rapist",
    "milf",
    "jizz",
)
BLOCKED_WORDS = frozenset(
    {
        "anal",
        "anus",
        "cum",
        "cock",
        "cocks",
        "dick",
        "dicks",
        "tit",
        "tits",
        "rape",
        "raped",
        "rapes",
        "raping",
        "fag",
        "fags",
        "nazi",
        "nazis",
        "kkk",
    }
)
LOWER, TITLE, UPPER, OTHER = range(4)  # case patterns of a word
LITERAL, VOCAB, POOL = range(3)  # how a template token is treated
SCHEMA = pa.schema([("id", pa.int64()), ("url", pa.string()), ("text", pa.string())])
ID_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
MASK63 = np.uint64((1 << 63) - 1)


@dataclass(frozen=True)
class Knobs:
    """How captions are grown and the metadata is filled; the defaults are the ones the realism check chose."""

    replace_share: float = 0.5
    template_word_share: float = 0.5
    splice_share: float = 0.5
    splices_per_word: int = 40
    digit_share: float = 0.5
    keep_top: int = 100
    bins_per_octave: int = 6
    capital_share: float = 0.25
    bigram_min_count: int = 2
    bigram_min_pmi: float = 5.0
    bigram_max_share: float = 0.2


KNOB_HELP = {
    "replace_share": "share of a caption's replaceable words that are replaced (at least one per caption)",
    "template_word_share": "within a replacement class, weight given to how often the real alt-texts use a "
    "word; the rest follows wordfreq's frequencies",
    "splice_share": "share of rare-word replacements that are new words spliced from two rare words",
    "splices_per_word": "new words spliced per rare word type of the templates",
    "digit_share": "share of numbers of two or more digits that get new trailing digits",
    "keep_top": "the most frequent words are never replaced: they carry the grammar",
    "bins_per_octave": "frequency classes per doubling of a word's rank",
    "capital_share": "share of the word entries that are Capitalised variants (the rest lower case)",
    "bigram_min_count": "a caption bigram must occur this often",
    "bigram_min_pmi": "... and have at least this PMI (log2) to become an entry",
    "bigram_max_share": "bigrams take at most this share of the entries",
}


def fail(message: str) -> None:
    """Stop with one line on stderr and exit code 2, as the project's commands do on bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------------------------------
# Real data and word lists
# --------------------------------------------------------------------------------------------------


def real_files(real_dir: Path) -> dict[str, Path]:
    """The reference alt-texts and the caption sets, or a one-line error naming what is missing."""
    files = {"reference": real_dir / REFERENCE_FILE} | {name: real_dir / name for name in CAPTION_FILES}
    for path in files.values():
        if not path.is_file():
            fail(f"real data not found: {path} (pass --real-data DIR holding {REFERENCE_FILE} and real/)")
    return files


def read_column(path: Path, column: str) -> list[str]:
    """One string column of a Parquet file, nulls as empty strings."""
    return [value or "" for value in pq.read_table(path, columns=[column]).column(0).to_pylist()]


def file_digest(path: Path) -> str:
    """sha256 of a file, so a report says exactly which real data it was made from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def english_words() -> tuple[list[str], np.ndarray]:
    """wordfreq's English "large" list in frequency order with frequencies, unmatchable words left out."""
    try:
        import wordfreq
    except ImportError:
        fail("wordfreq is not installed: pip install -r bench/requirements.txt")
    freq = wordfreq.get_frequency_dict("en", wordlist="large")
    words = [w for w in wordfreq.top_n_list("en", len(freq) + 1, wordlist="large") if not UNMATCHABLE.search(w)]
    return words, np.asarray([freq[w] for w in words], dtype=np.float64)


def wordnet_heads(path: Path) -> list[str]:
    """WordNet synset names from the committed metadata table, in its order."""
    table = pq.read_table(path, columns=["entry", "sources"]).to_pydict()
    return [e for e, s in zip(table["entry"], table["sources"], strict=True) if "wordnet" in s]


def caption_bigrams(texts: list[str], min_count: int, min_pmi: float) -> list[str]:
    """Word pairs of real captions ranked by PMI = log2(c12 N / (c1 c2)), as MetaCLIP ranks Wikipedia's.

    Tokens are letters or digits joined by an inner ' or -; a pair is two words separated only by spaces
    or tabs, so every bigram is a string that can match a caption. Case is kept.
    """
    unigrams: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for text in texts:
        prev, prev_end = None, -1
        for m in TOKEN.finditer(text):
            token = m.group()
            unigrams[token] += 1
            gap = text[prev_end : m.start()]
            if prev is not None and gap and not gap.strip(" \t") and WORD.fullmatch(prev) and WORD.fullmatch(token):
                pairs[(prev, token)] += 1
            prev, prev_end = token, m.end()
    n = sum(unigrams.values())
    scored = [
        (math.log2(c * n / (unigrams[a] * unigrams[b])), c, f"{a} {b}") for (a, b), c in pairs.items() if c >= min_count
    ]
    scored = [s for s in scored if s[0] >= min_pmi]
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [s[2] for s in scored]


# --------------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------------


def blocked(word: str) -> bool:
    """Whether a word is profane or sexual: such words are not drawn as replacements."""
    low = word.lower()
    return low in BLOCKED_WORDS or low.startswith(BLOCKED_PREFIXES)


def capitalised(word: str) -> str:
    """First character upper-cased, the rest untouched: "dog" -> "Dog", "don't" -> "Don't"."""
    return word[:1].upper() + word[1:]


@dataclass
class Metadata:
    """The entry list and how many of each kind it holds."""

    entries: list[str]
    kinds: dict[str, int]
    notes: dict


def build_metadata(n_entries: int, wordnet: list[str], words: list[str], bigrams: list[str], knobs: Knobs) -> Metadata:
    """Fill exactly n_entries: WordNet, lower-case words, Capitalised words, bigrams, then the numbers.

    Sizes are fixed first (numbers; bigrams up to their share; WordNet up to half the list; words take
    the rest, split by --capital-share, either kind filling what the other cannot), then the list is
    written in the order above. An entry is counted under the first kind that claims it.
    """
    reserved = set(NUMBERS)
    taken: dict[str, None] = {}

    def take(candidates: list[str], limit: int) -> list[str]:
        out = []
        for c in candidates:
            if len(out) >= limit:
                break
            if c and c not in taken and c not in reserved:
                taken[c] = None
                out.append(c)
        return out

    room = n_entries - len(NUMBERS)
    part_wordnet = take(wordnet, min(len(wordnet), room // 2))
    part_bigrams = take(bigrams, int(knobs.bigram_max_share * n_entries))
    room -= len(part_wordnet) + len(part_bigrams)
    lower_pool = [w for w in words if w not in taken and w not in reserved]
    capital_pool = [c for c in dict.fromkeys(capitalised(w) for w in words) if c not in taken and c not in reserved]
    n_capital = min(int(round(knobs.capital_share * room)), len(capital_pool))
    n_lower = min(room - n_capital, len(lower_pool))
    n_capital = min(room - n_lower, len(capital_pool))
    if n_lower + n_capital < room:
        fail(
            f"--entries {n_entries} is more than these sources hold "
            f"({n_entries - room + n_lower + n_capital}); lower --bigram-min-count or --entries"
        )
    part_lower = take(lower_pool, n_lower)
    part_capital = take(capital_pool, n_capital)
    entries = part_wordnet + part_lower + part_capital + part_bigrams + list(NUMBERS)
    assert len(entries) == n_entries and len(set(entries)) == n_entries
    kinds = {
        "wordnet": len(part_wordnet),
        "words_lower": len(part_lower),
        "words_capitalised": len(part_capital),
        "bigrams": len(part_bigrams),
        "numbers": len(NUMBERS),
    }
    return Metadata(entries=entries, kinds=kinds, notes=metadata_notes(wordnet, part_wordnet, words, bigrams, taken))


def metadata_notes(
    wordnet: list[str], part_wordnet: list[str], words: list[str], bigrams: list[str], taken: dict
) -> dict:
    """How the sources overlap and how far down the word list the Capitalised variants reach."""
    word_set = set(words)
    return {
        "wordnet_available": len(wordnet),
        "wordnet_entries_also_wordfreq_words": sum(1 for w in part_wordnet if w in word_set),
        "wordfreq_words_available": len(words),
        "wordfreq_words_not_entries": sum(1 for w in words if w not in taken and w not in NUMBERS),
        "capitalised_variants_cover_top_ranks": capital_cover(words, taken),
        "bigrams_available": len(bigrams),
        "bigrams_already_wordnet": len(set(bigrams) & set(part_wordnet)),
    }


def capital_cover(words: list[str], taken: dict) -> int:
    """How many of the most frequent words have their Capitalised form in the list, counted in order."""
    for rank, w in enumerate(words):
        c = capitalised(w)
        if c != w and c not in taken:
            return rank
    return len(words)


# --------------------------------------------------------------------------------------------------
# Strings as one byte buffer, so captions can be assembled with numpy
# --------------------------------------------------------------------------------------------------


class StringTable:
    """Strings interned once; ``build`` turns them into a UTF-8 buffer with start and length per id."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.strings: list[str] = []

    def add(self, s: str) -> int:
        sid = self.ids.get(s)
        if sid is None:
            sid = self.ids[s] = len(self.strings)
            self.strings.append(s)
        return sid

    def add_block(self, strings: list[str]) -> int:
        """Append strings in order without interning (ids stay contiguous); return the first id."""
        first = len(self.strings)
        self.strings.extend(strings)
        return first

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encoded = [s.encode("utf-8") for s in self.strings]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        starts = np.zeros(len(encoded), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return np.frombuffer(b"".join(encoded), dtype=np.uint8), starts, lengths


def gather(
    buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, pieces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the strings ``pieces`` (ids) into one byte array; return it and each piece's offset."""
    piece_lengths = lengths[pieces]
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(piece_lengths, out=offsets[1:])
    index = np.int32 if max(int(offsets[-1]), len(buffer)) < 2**31 else np.int64  # halves the largest temporary
    source = np.repeat((starts[pieces] - offsets[:-1]).astype(index), piece_lengths)
    source += np.arange(offsets[-1], dtype=index)
    return buffer[source], offsets


# --------------------------------------------------------------------------------------------------
# Templates: real alt-texts cut into tokens
# --------------------------------------------------------------------------------------------------


def case_of(core: str) -> int:
    """LOWER, TITLE ("Dog", also "A"), UPPER ("DOG") or OTHER ("iPhone", "T-Shirt")."""
    if core == core.lower():
        return LOWER
    if core == core[:1].upper() + core[1:].lower():
        return TITLE
    return UPPER if core == core.upper() else OTHER


def with_case(word: str, case: int) -> str:
    """A lower-case word written in a case pattern."""
    return capitalised(word) if case == TITLE else word.upper() if case == UPPER else word


def split_token(token: str) -> tuple[str, str, str]:
    """(glued leading punctuation, core, glued trailing punctuation) of a whitespace-free token."""
    i, j = 0, len(token)
    while i < j and token[i] in LEAD:
        i += 1
    while j > i and token[j - 1] in TRAIL:
        j -= 1
    return token[:i], token[i:j], token[j:]


@dataclass
class Token:
    """One whitespace-separated token of a template, with what the generator needs to replace it."""

    lead: str
    core: str
    trail: str
    space: str  # the whitespace after it
    kind: int = LITERAL
    case: int = LOWER
    rank: int = 0  # VOCAB: 1-based rank in the replacement vocabulary
    pool: int = 0  # POOL: which pool of rare words (case, script, length band)
    slot: int = -1  # replaceable tokens: index of their word in the template (a repeated word shares it)


def tokenize(text: str) -> list[Token]:
    """Cut a text into tokens that keep every character: leading space goes into the first lead."""
    found = list(re.finditer(r"(\S+)(\s*)", text))
    if not found:
        return [Token("", text, "", "")] if text else []
    tokens = []
    for m in found:
        lead, core, trail = split_token(m.group(1))
        tokens.append(Token(lead, core, trail, m.group(2)))
    tokens[0].lead = text[: found[0].start()] + tokens[0].lead
    return tokens


def length_band(word: str) -> int:
    """Coarse length class of a rare word: up to 4, 5-7, 8-10, 11 or more characters."""
    return min((len(word) - 2) // 3, 3) if len(word) > 4 else 0


def pool_of(word: str, case: int) -> int:
    """Pool of a rare word: its case pattern, whether it is ASCII and its length band (32 pools)."""
    return (case * 2 + (not word.isascii())) * 4 + length_band(word)


def classify(tokens: list[Token], rank: dict[str, int], keep_top: int) -> None:
    """Mark each token LITERAL (kept), VOCAB (replace by a word of its class) or POOL (by a rare word)."""
    for t in tokens:
        if not t.core or not WORD.fullmatch(t.core) or blocked(t.core):
            continue  # numbers, SKUs, file names, punctuation; and words the generator would not write
        t.case = case_of(t.core)
        r = rank.get(t.core.lower(), 0) if t.core.isascii() and t.case != OTHER else 0
        if r and r <= keep_top:
            continue
        if r:
            t.kind, t.rank = VOCAB, r
        else:
            t.kind, t.pool = POOL, pool_of(t.core, t.case)


def bare(t: Token, side: str) -> bool:
    """Whether a token's core stands alone on one side once the engine spaces the text out."""
    glued = t.lead if side == "left" else t.trail
    if not glued:
        return True
    edge = glued[-1] if side == "left" else glued[0]
    return edge in WRAPPED or edge.isspace()


def protect_multiword(tokens: list[Token], entries: set[str], longest: int = 3) -> None:
    """Keep tokens that form a multi-word entry with their neighbours, so those matches survive."""
    for i in range(len(tokens)):
        for n in range(2, longest + 1):
            span = tokens[i : i + n]
            if len(span) < n or not bare(span[0], "left") or not bare(span[-1], "right"):
                break
            if not all(s.space in SPACES and not s.trail for s in span[:-1]) or any(s.lead for s in span[1:]):
                break
            if " ".join(s.core for s in span) in entries:
                for s in span:
                    s.kind = LITERAL


def assign_slots(tokens: list[Token]) -> int:
    """Give each replaceable word of a template a slot; the same word twice shares one. Returns the count.

    Real captions repeat words ("Grateful Dead Lyrics ... Grateful Dead Words"); replacing each occurrence
    independently would turn one match into several.
    """
    slots: dict[tuple, int] = {}
    for t in tokens:
        if t.kind != LITERAL:
            key = ("v", t.core.lower()) if t.kind == VOCAB else ("p", t.core)
            t.slot = slots.setdefault(key, len(slots))
    return len(slots)


# --------------------------------------------------------------------------------------------------
# The model: templates, replacement classes and pools, all as flat arrays
# --------------------------------------------------------------------------------------------------


@dataclass
class Model:
    """Everything a worker needs to make a row group; built once and inherited by forked workers."""

    knobs: Knobs
    seed: int
    buffer: np.ndarray  # the string table: UTF-8 bytes, start and length of each string id
    starts: np.ndarray
    lengths: np.ndarray
    empty: int  # string id of ""
    tpl_start: np.ndarray  # per template: first token and token count ...
    tpl_count: np.ndarray
    slot_start: np.ndarray  # ... first slot (global) and slot count
    slot_count: np.ndarray
    kept: np.ndarray  # per token: string id of the token with its space, as in the template
    lead: np.ndarray  # per token: glued leading punctuation
    trail: np.ndarray  # per token: glued trailing punctuation and the space after it
    case: np.ndarray  # per token: LOWER, TITLE or UPPER (vocabulary words are written in it)
    token_vocab: np.ndarray  # per token: True for a vocabulary word
    slot: np.ndarray  # per token: slot within its template, -1 for literal tokens
    slot_vocab: np.ndarray  # per global slot: True for a VOCAB word, False for a POOL word
    slot_group: np.ndarray  # per global slot: replacement class or pool
    vocab_forms: np.ndarray  # string id of vocabulary word w in case c: vocab_forms[c] + w
    class_order: np.ndarray  # vocabulary ids grouped by class
    class_cum: np.ndarray  # cumulative weights along class_order
    class_bounds: np.ndarray  # (classes, 2): range of each class in class_order
    pool_ids: np.ndarray  # string ids of rare words, grouped by pool
    pool_cum: np.ndarray
    pool_bounds: np.ndarray  # (32, 2)
    url_prefix: np.ndarray  # per template: index into url_strings of scheme://host/dir/slug- ...
    url_ext: np.ndarray  # ... and of the image extension
    url_strings: pa.Array


def replacement_vocabulary(words: list[str], freqs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The ASCII words of the word list (letters with inner ' or -), in frequency order, none blocked."""
    keep = [i for i, w in enumerate(words) if w.isascii() and WORD.fullmatch(w) and not blocked(w)]
    return [words[i] for i in keep], freqs[keep]


def vocabulary_classes(
    vocab: list[str], vfreq: np.ndarray, template_counts: np.ndarray, entries: set[str], knobs: Knobs
) -> tuple[np.ndarray, np.ndarray]:
    """Class key and sampling weight of every vocabulary word.

    A class holds words of similar frequency rank and the same length that are entries in the same case
    forms (lower, Capitalised, upper), so a replacement keeps the caption's length and matches exactly
    when the word it replaces did. Within a class a word is drawn by its wordfreq frequency, mixed with
    how often the real alt-texts use it (--template-word-share): alt-texts reuse a narrower vocabulary
    than general English.
    """
    ranks = np.arange(1, len(vocab) + 1)
    octaves = np.arange(0, math.log2(len(vocab) + 2) * knobs.bins_per_octave + 1) / knobs.bins_per_octave
    edges = np.unique(np.concatenate(([knobs.keep_top + 1], np.floor(2.0**octaves)))).astype(np.int64)
    bins = np.searchsorted(edges, ranks, side="right")
    lengths = np.minimum(np.fromiter((len(w) for w in vocab), dtype=np.int64, count=len(vocab)), 20)
    status = np.fromiter(
        ((w in entries) + 2 * (capitalised(w) in entries) + 4 * (w.upper() in entries) for w in vocab),
        dtype=np.int64,
        count=len(vocab),
    )
    keys = (bins * 32 + lengths) * 8 + status
    _, dense = np.unique(keys, return_inverse=True)
    freq_total = np.bincount(dense, weights=vfreq)
    tpl_total = np.bincount(dense, weights=template_counts.astype(np.float64))
    m = knobs.template_word_share
    from_tpl = np.divide(template_counts, tpl_total[dense], out=np.zeros(len(vocab)), where=tpl_total[dense] > 0)
    mix = np.where(tpl_total[dense] > 0, m, 0.0)
    return keys, (1.0 - mix) * vfreq / freq_total[dense] + mix * from_tpl


def grouped(
    keys: np.ndarray, weights: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort values by key for sampling: (key values, dense key per input, grouped values, cum weights, bounds)."""
    uniq, dense = np.unique(keys, return_inverse=True)
    order = np.argsort(dense, kind="stable")
    cum = np.cumsum(weights[order])
    counts = np.bincount(dense, minlength=len(uniq))
    ends = np.cumsum(counts)
    return uniq, dense, values[order], cum, np.stack((ends - counts, ends), axis=1)


def cut_points(word: str) -> tuple[list[int], list[int]]:
    """Where a word may end a splice's head (after a vowel) and start its tail (at a consonant)."""
    heads = [i for i in range(2, len(word)) if word[i - 1].lower() in VOWELS]
    tails = [j for j in range(1, len(word) - 1) if word[j].isalpha() and word[j].lower() not in VOWELS]
    return heads, tails


def splice_words(rng: np.random.Generator, types: list[str], count: int, case: int, banned: set[str]) -> list[str]:
    """New brand-like words: the start of one word up to a vowel, joined to the end of another from a consonant."""
    out: dict[str, None] = {}
    cuts = [cut_points(w) for w in types]
    heads = [i for i, (h, _) in enumerate(cuts) if h]
    tails = [i for i, (_, t) in enumerate(cuts) if t]
    if not heads or not tails:
        return []
    for _ in range(4):  # a few rounds: some draws fall back into a known word or repeat one
        for a, b, u, v in zip(
            rng.choice(heads, count), rng.choice(tails, count), rng.random(count), rng.random(count), strict=True
        ):
            h, t = cuts[a][0], cuts[b][1]
            word = types[a][: h[int(u * len(h))]] + types[b][t[int(v * len(t))] :]
            if case == TITLE:
                word = word[:1] + word[1:].lower()
            if (
                word not in banned
                and word.lower() not in banned
                and case_of(word) == case
                and WORD.fullmatch(word)
                and not blocked(word)
            ):
                out.setdefault(word, None)
        if len(out) >= count:
            break
    return list(out)[:count]


def build_pools(
    rng: np.random.Generator, tokens: list[Token], table: StringTable, banned: set[str], knobs: Knobs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rare words by pool: the templates' own (by how often they occur) and new spliced ones (uniform).

    Splices are made per case and script from all the templates' rare words of that case and script,
    then sorted into pools by length, so a replacement keeps about the length of the word it replaces.
    """
    seen: dict[int, Counter[str]] = {}
    for t in tokens:
        if t.kind == POOL:
            seen.setdefault(t.pool, Counter())[t.core] += 1
    spliced: dict[int, list[str]] = {}
    for case_script in range(8):
        types = sorted({w for pool, c in seen.items() if pool // 4 == case_script for w in c})
        for w in splice_words(rng, types, knobs.splices_per_word * len(types), case_script // 2, banned | set(types)):
            spliced.setdefault(case_script * 4 + length_band(w), []).append(w)
    keys, weights, ids = [], [], []
    for pool in sorted(seen):
        counts, new = seen[pool], spliced.get(pool, [])
        share = knobs.splice_share if new else 0.0
        total = sum(counts.values())
        for w in sorted(counts) + new:
            keys.append(pool)
            weights.append((1.0 - share) * counts[w] / total if w in counts else share / len(new))
            ids.append(table.add(w))
    uniq, _, values, cum, bounds = grouped(np.asarray(keys), np.asarray(weights), np.asarray(ids, dtype=np.int64))
    full = np.zeros((32, 2), dtype=np.int64)  # indexed by pool; pools no template uses stay empty
    full[uniq] = bounds
    return values, cum, full


def url_head(url: str, text: str) -> tuple[str, str]:
    """A real url's scheme://host/dir/ with a slug of its caption, and its image extension (".jpg" by default).

    Rows append their id to the head, so every url is unique; the slug is the template's, computed once,
    because a per-row slug of the new caption cost more than the whole caption.
    """
    path = url.split("?", 1)[0].split("#", 1)[0]
    head, _, name = path.rpartition("/")
    ext = os.path.splitext(name)[1].lower()
    if not re.fullmatch(r"\.(jpe?g|png|gif|webp|tiff?|bmp)", ext):
        ext = ".jpg"
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower())[:48].strip("-") or "image"
    return (head + "/" if "://" in head else "https://img.example.com/") + slug + "-", ext


def read_templates(
    texts: list[str], rank: dict[str, int], entries: set[str], keep_top: int
) -> tuple[list[list[Token]], np.ndarray]:
    """Every alt-text cut into classified tokens with slots, and the number of slots of each."""
    templates = [tokenize(t) for t in texts]
    slot_count = np.zeros(len(templates), dtype=np.int64)
    for i, tokens in enumerate(templates):
        classify(tokens, rank, keep_top)
        protect_multiword(tokens, entries)
        slot_count[i] = assign_slots(tokens)
    return templates, slot_count


def slot_tables(
    templates: list[list[Token]], slot_count: np.ndarray, word_class: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per global slot: whether it holds a vocabulary word and its class or pool; and each template's first slot."""
    slot_start = np.cumsum(slot_count) - slot_count
    is_vocab = np.zeros(int(slot_count.sum()), dtype=bool)
    group = np.zeros(len(is_vocab), dtype=np.int64)
    for first, tokens in zip(slot_start, templates, strict=True):
        for t in tokens:
            if t.slot >= 0:
                is_vocab[first + t.slot] = t.kind == VOCAB
                group[first + t.slot] = word_class[t.rank - 1] if t.kind == VOCAB else t.pool
    return slot_start, is_vocab, group


def build_model(
    texts: list[str], urls: list[str], words: list[str], freqs: np.ndarray, entries: list[str], seed: int, knobs: Knobs
) -> Model:
    """Tokenise the templates and lay out every table the row-group generator samples from."""
    rng = np.random.default_rng([seed, 0])
    entry_set = set(entries)
    vocab, vfreq = replacement_vocabulary(words, freqs)
    templates, slot_count = read_templates(texts, {w: i + 1 for i, w in enumerate(vocab)}, entry_set, knobs.keep_top)
    flat = [t for tokens in templates for t in tokens]
    template_counts = np.bincount([t.rank - 1 for t in flat if t.kind == VOCAB], minlength=len(vocab))
    keys, weights = vocabulary_classes(vocab, vfreq, template_counts, entry_set, knobs)
    _, word_class, class_order, class_cum, class_bounds = grouped(keys, weights, np.arange(len(vocab)))
    slot_start, slot_vocab, slot_group = slot_tables(templates, slot_count, word_class)

    table = StringTable()
    empty = table.add("")
    kept = np.asarray([table.add(t.lead + t.core + t.trail + t.space) for t in flat], dtype=np.int64)
    lead = np.asarray([table.add(t.lead) for t in flat], dtype=np.int64)
    trail = np.asarray([table.add(t.trail + t.space) for t in flat], dtype=np.int64)
    vocab_forms = np.asarray([table.add_block([with_case(w, c) for w in vocab]) for c in (LOWER, TITLE, UPPER)])
    pool_ids, pool_cum, pool_bounds = build_pools(rng, flat, table, set(vocab) | entry_set, knobs)
    buffer, str_starts, str_lengths = table.build()

    url_table = StringTable()
    heads, exts = zip(*(url_head(u, t) for u, t in zip(urls, texts, strict=True)), strict=True)
    tpl_count = np.asarray([len(tokens) for tokens in templates], dtype=np.int64)
    return Model(
        knobs=knobs,
        seed=seed,
        buffer=buffer,
        starts=str_starts,
        lengths=str_lengths,
        empty=empty,
        tpl_start=np.cumsum(tpl_count) - tpl_count,
        tpl_count=tpl_count,
        slot_start=slot_start,
        slot_count=slot_count,
        kept=kept,
        lead=lead,
        trail=trail,
        case=np.asarray([min(t.case, UPPER) for t in flat], dtype=np.int64),
        token_vocab=np.asarray([t.kind == VOCAB for t in flat], dtype=bool),
        slot=np.asarray([t.slot for t in flat], dtype=np.int64),
        slot_vocab=slot_vocab,
        slot_group=slot_group,
        vocab_forms=vocab_forms,
        class_order=class_order,
        class_cum=class_cum,
        class_bounds=class_bounds,
        pool_ids=pool_ids,
        pool_cum=pool_cum,
        pool_bounds=pool_bounds,
        url_prefix=np.asarray([url_table.add(h) for h in heads], dtype=np.int64),
        url_ext=np.asarray([url_table.add(e) for e in exts], dtype=np.int64),
        url_strings=pa.array(url_table.strings, pa.string()),
    )


# --------------------------------------------------------------------------------------------------
# Row groups
# --------------------------------------------------------------------------------------------------


def expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate the ranges [start, start + count): one vectorised step instead of a loop per row."""
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()), dtype=np.int64)


def draw_grouped(rng: np.random.Generator, cum: np.ndarray, bounds: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """One position per draw inside its group's range, in proportion to the group's weights."""
    lo, hi = bounds[groups, 0], bounds[groups, 1]
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    target = base + rng.random(len(groups)) * (cum[hi - 1] - base)
    return np.clip(np.searchsorted(cum, target, side="right"), lo, hi - 1)


def draw_slots(model: Model, rng: np.random.Generator, tpl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row and slot: whether its word is replaced and by what (a vocabulary id or a string id).

    Each slot is replaced with --replace-share, and one slot more in a row that drew none, so a caption
    is never a copy of its template when it has a word to replace. Returns (first row-slot of each row,
    replaced, new word).
    """
    counts = model.slot_count[tpl]
    slots = expand(model.slot_start[tpl], counts)
    first = np.cumsum(counts) - counts
    replace = rng.random(len(slots)) < model.knobs.replace_share
    chosen = np.bincount(np.repeat(np.arange(len(tpl)), counts)[replace], minlength=len(tpl))
    short = np.flatnonzero((chosen == 0) & (counts > 0))
    replace[first[short] + (rng.random(len(short)) * counts[short]).astype(np.int64)] = True
    word = np.full(len(slots), -1, dtype=np.int64)
    swap = np.flatnonzero(replace)
    is_vocab = model.slot_vocab[slots[swap]]
    v, p = swap[is_vocab], swap[~is_vocab]
    word[v] = model.class_order[draw_grouped(rng, model.class_cum, model.class_bounds, model.slot_group[slots[v]])]
    word[p] = model.pool_ids[draw_grouped(rng, model.pool_cum, model.pool_bounds, model.slot_group[slots[p]])]
    return first, replace, word


def mutate_digits(rng: np.random.Generator, data: np.ndarray, text_starts: np.ndarray, share: float) -> None:
    """Give a share of the numbers of two or more digits new trailing digits, in place.

    The first digit stays (the first two for four digits or more: years stay years), so a number keeps
    its length and whether it is one of the entries "10".."99" or not.
    """
    digit = (data >= 48) & (data <= 57)
    if not digit.any():
        return
    text_start = np.zeros(len(data) + 1, dtype=bool)
    text_start[text_starts] = True  # a number never runs on from one text into the next
    before = np.concatenate(([False], digit[:-1])) & ~text_start[:-1]
    after = np.concatenate((digit[1:], [False])) & ~text_start[1:]
    begins, ends = np.flatnonzero(digit & ~before), np.flatnonzero(digit & ~after)
    run_length = ends - begins + 1
    keep = np.where(run_length >= 4, 2, 1)
    selected = (run_length >= 2) & (rng.random(len(begins)) < share)
    where = np.flatnonzero(digit)
    run = np.searchsorted(begins, where, side="right") - 1
    change = selected[run] & (where - begins[run] >= keep[run])
    data[where[change]] = 48 + rng.integers(0, 10, int(change.sum()), dtype=np.uint8)


def assemble_texts(model: Model, rng: np.random.Generator, tpl: np.ndarray) -> pa.Array:
    """The captions of one row group: template tokens, some words replaced, joined back with their spacing."""
    first, replace, word = draw_slots(model, rng, tpl)
    counts = model.tpl_count[tpl]
    tokens = expand(model.tpl_start[tpl], counts)
    pieces = np.full((len(tokens), 3), model.empty, dtype=np.int32)  # lead + word + trail, or the kept token
    pieces[:, 0] = model.kept[tokens]
    local = model.slot[tokens]
    at = np.flatnonzero(local >= 0)
    row_slot = first[np.repeat(np.arange(len(tpl)), counts)[at]] + local[at]
    swapped = replace[row_slot]
    at, row_slot = at[swapped], row_slot[swapped]
    t = tokens[at]
    pieces[at, 0] = model.lead[t]
    pieces[at, 2] = model.trail[t]
    new = word[row_slot]  # a vocabulary id, written in the token's case, or a rare word's string id
    pieces[at, 1] = np.where(model.token_vocab[t], model.vocab_forms[model.case[t]] + new, new)
    data, offsets = gather(model.buffer, model.starts, model.lengths, pieces.ravel())
    text_offsets = offsets[3 * np.concatenate(([0], np.cumsum(counts)))]
    mutate_digits(rng, data, text_offsets[:-1], model.knobs.digit_share)
    return pa.StringArray.from_buffers(len(tpl), pa.py_buffer(text_offsets.astype(np.int32)), pa.py_buffer(data))


def row_ids(start: int, n: int, seed: int) -> np.ndarray:
    """Unique, unordered-looking int64 ids: an odd-multiplier affine bijection modulo 2**63."""
    rows = np.arange(start, start + n, dtype=np.uint64)
    offset = np.uint64(((seed + 1) * 0x2545F4914F6CDD1D) & ((1 << 63) - 1))
    return ((rows * ID_MULTIPLIER + offset) & MASK63).astype(np.int64)


def assemble_urls(model: Model, tpl: np.ndarray, ids: np.ndarray) -> pa.Array:
    """The template's scheme://host/dir/slug-, the row id and an image extension."""
    return pc.binary_join_element_wise(
        model.url_strings.take(pa.array(model.url_prefix[tpl])),
        pa.array(ids).cast(pa.string()),
        model.url_strings.take(pa.array(model.url_ext[tpl])),
        "",
    )


def make_chunk(model: Model, chunk_index: int, start: int, n: int) -> pa.Table:
    """One row group, seeded by (seed, its index), so any worker order gives the same bytes."""
    rng = np.random.default_rng([model.seed, 1, chunk_index])
    tpl = rng.integers(0, len(model.tpl_count), n)
    texts = assemble_texts(model, rng, tpl)
    ids = row_ids(start, n, model.seed)
    return pa.Table.from_arrays([pa.array(ids), assemble_urls(model, tpl, ids), texts], schema=SCHEMA)


# --------------------------------------------------------------------------------------------------
# Files, written by parallel workers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which rows go into which file and row group (the same as generate_pool.py)."""

    rows: int
    files: int
    row_group_rows: int

    def file_tasks(self) -> list[list[tuple[int, int, int]]]:
        """Per file: (chunk index, first row, rows) of each of its row groups."""
        base, rest = divmod(self.rows, self.files)
        out, start, chunk = [], 0, 0
        for f in range(self.files):
            n = base + (1 if f < rest else 0)
            groups = []
            for s in range(0, n, self.row_group_rows):
                groups.append((chunk, start + s, min(self.row_group_rows, n - s)))
                chunk += 1
            out.append(groups)
            start += n
        return out


_MODEL: Model | None = None  # the model of this process (a worker gets it once, at start)
_PROGRESS = None  # where a worker reports each row group written


def init_worker(model: Model | None, progress: Any) -> None:
    """Start a worker with its copy of the model and the progress queue."""
    global _MODEL, _PROGRESS
    _MODEL, _PROGRESS = model, progress


def write_file(task: tuple[Path, list[tuple[int, int, int]], str]) -> int:
    """Write one Parquet file under a temporary name, then rename it into place."""
    path, groups, compression = task
    assert _MODEL is not None
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, SCHEMA, compression=compression, use_dictionary=False) as writer:
        for chunk, start, n in groups:
            writer.write_table(make_chunk(_MODEL, chunk, start, n), row_group_size=n)
            if _PROGRESS is not None:
                _PROGRESS.put(n)
    os.replace(tmp, path)
    return sum(n for _, _, n in groups)


def write_pool(model: Model, layout: Layout, pool_dir: Path, workers: int, compression: str) -> None:
    """Write every file; files are the unit of parallel work, row groups the unit of progress.

    Workers are spawned, not forked, and get only the model (about 30 MB pickled): a forked worker would
    also carry the parent's word lists, metadata and interpreter garbage (about 0.5 GB each).
    """
    tasks = [(pool_dir / f"part-{f:05d}.parquet", groups, compression) for f, groups in enumerate(layout.file_tasks())]
    with tqdm(total=layout.rows, unit="rows", unit_scale=True, desc="pool", file=sys.stderr) as bar:
        if workers <= 1:
            init_worker(model, None)
            for task in tasks:
                bar.update(write_file(task))
            init_worker(None, None)
            return
        ctx = mp.get_context("spawn")
        progress = ctx.SimpleQueue()
        with ctx.Pool(min(workers, len(tasks)), initializer=init_worker, initargs=(model, progress)) as pool:
            pending = pool.map_async(write_file, tasks, chunksize=1)
            done = 0
            while done < layout.rows and not (pending.ready() and progress.empty()):
                if progress.empty():
                    time.sleep(0.05)
                    continue
                n = progress.get()
                done += n
                bar.update(n)
            pending.get()  # raises a worker's error


def write_json(path: Path, value: Any) -> None:
    """Write JSON under a temporary name, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# The realism check
# --------------------------------------------------------------------------------------------------


def first_texts(pool_dir: Path, limit: int) -> list[str]:
    """Texts of the first `limit` rows in file order."""
    texts: list[str] = []
    for path in sorted(pool_dir.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["text"]):
            texts.extend(v or "" for v in batch.column(0).to_pylist())
            if len(texts) >= limit:
                return texts[:limit]
    return texts


def summary(values: np.ndarray) -> dict:
    """Mean, median, p90 and p99 of per-text figures."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
    }


def text_figures(texts: list[str]) -> dict:
    """What a caption looks like, without any metadata."""
    punct = re.compile(r"[,.;:?!`]")
    tokens = [t.split() for t in texts]
    return {
        "texts": len(texts),
        "chars": summary(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))),
        "tokens": summary(np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(texts))),
        "non_ascii_share": sum(not t.isascii() for t in texts) / len(texts),
        "wrapped_punctuation_share": sum(bool(punct.search(t)) for t in texts) / len(texts),
        "distinct_text_share": len(set(texts)) / len(texts),
        "distinct_tokens": len({w for ws in tokens for w in ws}),
    }


def entry_kinds(kinds: dict[str, int]) -> np.ndarray:
    """Kind name of each entry id, from the counts in list order."""
    return np.repeat(np.asarray(list(kinds)), list(kinds.values()))


def match_figures(
    automaton: Any, texts: list[str], n_entries: int, kinds: dict[str, int], head_fraction: float = 0.03
) -> dict:
    """Matches per caption under the reference matcher, the head's share and where matches come from."""
    from curation.matching import match_text

    per_text = np.zeros(len(texts), dtype=np.int64)
    counts = np.zeros(n_entries, dtype=np.int64)
    for i, text in enumerate(texts):
        ids = match_text(automaton, text)
        per_text[i] = len(ids)
        counts[ids] += 1
    matched = per_text > 0
    head = int(math.ceil(head_fraction * n_entries))
    total = int(counts.sum())
    by_kind = entry_kinds(kinds)
    return {
        "matches": summary(per_text),
        "zero_match_share": float(1.0 - matched.mean()),
        "share_8_to_12_matches": float(((per_text >= 8) & (per_text <= 12)).mean()),
        "matches_per_matched_caption": float(per_text[matched].mean()) if matched.any() else 0.0,
        "top_3pct_share": float(np.sort(counts)[-head:].sum() / total) if total else 0.0,
        "distinct_entries_matched": int((counts > 0).sum()),
        "matches_per_caption_by_kind": {k: float(counts[by_kind == k].sum() / len(texts)) for k in kinds},
        "top_entries": [[i, int(counts[i])] for i in np.argsort(-counts, kind="stable")[:15]],
    }


def busy_cpu_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat); 0 where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def paired_rates(run: Callable[[Any], object], real: Any, generated: Any, rounds: int) -> dict:
    """Texts per second of `run` on the real texts and on as many generated ones, taking turns.

    Each round times one pass over the real texts, then one over the generated ones, so changes in the
    machine's speed hit both alike: this machine's speed drifts, and others may use it. Both sides pass
    over the same texts every round (caches warm alike). Medians and the median of the per-round ratios
    are reported, with the CPU time other processes used meanwhile. The collector is frozen first, so the
    timings are of matching, not of sweeps over the generator's own objects.
    """
    gc.collect()
    gc.freeze()
    busy0, own0 = busy_cpu_seconds(), own_cpu_seconds()
    real_rates, gen_rates = [], []
    for _ in range(rounds):
        for texts, rates in ((real, real_rates), (generated, gen_rates)):
            t0 = time.perf_counter()
            run(texts)
            rates.append(len(texts) / (time.perf_counter() - t0))
    other = busy_cpu_seconds() - busy0 - (own_cpu_seconds() - own0)
    gc.unfreeze()
    return {
        "rounds": rounds,
        "real_texts": len(real),
        "generated_texts": len(generated),
        "other_processes_cpu_seconds": round(max(other, 0.0), 1),
        "real": {"texts_per_second": float(np.median(real_rates)), "best": float(max(real_rates))},
        "generated": {"texts_per_second": float(np.median(gen_rates)), "best": float(max(gen_rates))},
        "generated_over_real_median_of_rounds": float(np.median(np.asarray(gen_rates) / real_rates)),
    }


def speeds(automaton: Any, real: list[str], generated: list[str]) -> dict:
    """The reference per-text loop and the engine's batch matcher, on the real and the first generated texts."""
    from curation.matching import match_batch, match_text

    def loop(texts: list[str]) -> None:
        for text in texts:
            match_text(automaton, text)

    generated = generated[: len(real)]
    return {
        "reference_loop": paired_rates(loop, real, generated, rounds=20),
        "match_batch": paired_rates(
            lambda a: match_batch(automaton, a),
            pa.array(real, pa.string()),
            pa.array(generated, pa.string()),
            rounds=20,
        ),
    }


TABLE = [  # (label, path into the figures, size-dependent: compared on equal samples)
    ("characters per text, mean", ("chars", "mean"), False),
    ("characters per text, median", ("chars", "median"), False),
    ("characters per text, p90", ("chars", "p90"), False),
    ("characters per text, p99", ("chars", "p99"), False),
    ("tokens per text, mean", ("tokens", "mean"), False),
    ("tokens per text, median", ("tokens", "median"), False),
    ("share with non-ASCII", ("non_ascii_share",), False),
    ("share with , . ; : ? ! `", ("wrapped_punctuation_share",), False),
    ("distinct-text share *", ("distinct_text_share",), True),
    ("distinct tokens *", ("distinct_tokens",), True),
    ("matches per caption, mean", ("matches", "mean"), False),
    ("matches per caption, median", ("matches", "median"), False),
    ("matches per caption, p90", ("matches", "p90"), False),
    ("share with zero matches", ("zero_match_share",), False),
    ("share with 8 to 12 matches", ("share_8_to_12_matches",), False),
    ("matches per matched caption", ("matches_per_matched_caption",), False),
    ("top 3% entries' share of matches *", ("top_3pct_share",), True),
    ("distinct entries matched *", ("distinct_entries_matched",), True),
    ("reference loop, texts/s (1 core) * †", ("speed", "reference_loop"), True),
    ("Aho-Corasick match_batch, texts/s (1 core) * †", ("speed", "match_batch"), True),
]
SPEED_ROWS = {label: path[1] for label, path, _ in TABLE if path[0] == "speed"}


def lookup(figures: dict, path: tuple[str, ...]) -> float:
    """A figure by its path of keys."""
    for key in path:
        figures = figures[key]
    return float(figures)


def comparison_table(real: dict, generated: dict, generated_equal: dict) -> list[dict]:
    """Rows of real against generated; size-dependent rows use an equal-sized generated sample."""
    rows = []
    for label, path, equal in TABLE:
        if path[0] not in real:
            continue
        r = lookup(real, path)
        g = lookup(generated_equal if equal else generated, path)
        rows.append({"metric": label, "real": r, "generated": g, "ratio": g / r if r else None})
    return rows


def format_table(report: dict) -> str:
    """The table printed at the end (and copied into bench/README.md): real, generated, held-out ratio."""

    def fmt(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"

    figures = report["figures"]
    n_real, n_gen = figures["real"]["texts"], figures["generated"]["texts"]

    def ratio(rows: dict, metric: str) -> str:
        row = rows.get(metric)
        return f"{row['ratio']:.3f}" if row and row["ratio"] is not None else "-"

    held = {row["metric"]: row for row in report.get("held_out", {}).get("table", [])}
    halves = {row["metric"]: row for row in report.get("real_halves", {}).get("table", [])}
    lines = [
        f"| metric | real alt-texts ({n_real:,}) | generated (first {n_gen:,} rows) | generated / real "
        "| held-out: generated / real | yardstick: real half / other half |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["table"]:
        m = row["metric"]
        lines.append(
            f"| {m} | {fmt(row['real'])} | {fmt(row['generated'])} | {row['ratio']:.3f} "
            f"| {ratio(held, m)} | {ratio(halves, m)} |"
        )
    lines.append(
        f"\n* on equal samples: the real texts and the first {min(n_real, n_gen):,} generated ones. "
        "Held-out: captions grown from a random half of the alt-texts, compared with the other half; "
        "the yardstick compares the two real halves with each other.\n"
        "† median over 20 rounds, each timing one pass over the real texts and one over the generated "
        "ones; the ratio is the median of the per-round ratios."
    )
    return "\n".join(lines)


def compare(automaton: Any, metadata: Metadata, real: list[str], generated: list[str], timed: bool) -> dict:
    """Figures of real and generated captions (and of as many generated as real), with their table."""
    figures = {}
    for name, texts in (("real", real), ("generated", generated), ("generated_equal", generated[: len(real)])):
        figures[name] = text_figures(texts) | match_figures(automaton, texts, len(metadata.entries), metadata.kinds)
        figures[name]["top_entries"] = [[metadata.entries[i], c] for i, c in figures[name]["top_entries"]]
    out = {"figures": figures}
    if timed:
        out["speed"] = speeds(automaton, real, generated)
        for name, side in (("real", "real"), ("generated", "generated"), ("generated_equal", "generated")):
            figures[name]["speed"] = {k: v[side]["texts_per_second"] for k, v in out["speed"].items()}
    out["table"] = comparison_table(figures["real"], figures["generated"], figures["generated_equal"])
    for row in out["table"]:  # speeds: the median of per-round ratios is steadier than a ratio of medians
        if row["metric"] in SPEED_ROWS:
            row["ratio"] = out["speed"][SPEED_ROWS[row["metric"]]]["generated_over_real_median_of_rounds"]
    return out


def held_out_texts(
    real_texts: list[str],
    real_urls: list[str],
    words: list[str],
    freqs: np.ndarray,
    metadata: Metadata,
    seed: int,
    knobs: Knobs,
    rows: int,
) -> tuple[list[str], list[str], list[str]]:
    """Captions grown from a random half of the alt-texts, the other half to compare them with, and the first.

    The main check compares the pool with the very texts it was grown from; this one shows the
    agreement does not depend on having seen the texts it is compared with. How much the two real halves
    differ from each other is the yardstick for its differences.
    """
    order = np.random.default_rng([seed, 4]).permutation(len(real_texts))
    half = len(order) // 2
    seen, unseen = order[:half], order[half:]
    model = build_model(
        [real_texts[i] for i in seen], [real_urls[i] for i in seen], words, freqs, metadata.entries, seed, knobs
    )
    rng = np.random.default_rng([seed, 3])
    texts = assemble_texts(model, rng, rng.integers(0, half, rows)).to_pylist()
    return texts, [real_texts[i] for i in unseen], [real_texts[i] for i in seen]


def realism(
    pool_dir: Path,
    real_texts: list[str],
    held_out: tuple[list[str], list[str], list[str]] | None,
    metadata: Metadata,
    check_rows: int,
) -> dict:
    """Compare generated captions with the real alt-texts; the match figures use the project's matcher."""
    sys.path.insert(0, str(REPO))
    from curation.matching import build_automaton

    t0 = time.perf_counter()
    automaton = build_automaton(metadata.entries)
    out = {"automaton_build_seconds": time.perf_counter() - t0}
    out |= compare(automaton, metadata, real_texts, first_texts(pool_dir, check_rows), timed=True)
    if held_out is not None:
        generated, unseen, seen = held_out
        out["held_out"] = compare(automaton, metadata, unseen, generated, timed=False)
        out["real_halves"] = compare(automaton, metadata, unseen, seen, timed=False)
    return out


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(
        description="\n\n".join(doc[:2]),
        epilog="\n\n".join(doc[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, required=True, help="captions to generate")
    p.add_argument("--entries", type=int, default=500_000, help="metadata entries (default 500,000)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="with the layout, fixes every byte (default 0)")
    p.add_argument(
        "--files", type=int, default=8, help="Parquet files; a file is the unit of parallel work (default 8)"
    )
    p.add_argument("--row-group-rows", type=int, default=100_000, help="rows per row group (default 100,000)")
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes writing files in parallel (default 2)",
    )
    p.add_argument("--compression", default="snappy", help="Parquet compression (default snappy)")
    p.add_argument(
        "--real-data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help=f"directory with {REFERENCE_FILE} and real/ (default: ../shared/data from the repository)",
    )
    p.add_argument(
        "--check-rows", type=int, default=50_000, help="generated rows compared with the real alt-texts (0: no check)"
    )
    p.add_argument(
        "--no-held-out-check",
        dest="held_out_check",
        action="store_false",
        help="skip the second check (captions grown from half the alt-texts against the other half)",
    )
    p.add_argument("--show", type=int, default=0, help="print this many real and generated captions side by side")
    p.add_argument("--overwrite", action="store_true", help="replace an existing pool in --out")
    knobs = p.add_argument_group("generator knobs")
    for name, default in asdict(Knobs()).items():
        knobs.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=default,
            help=f"{KNOB_HELP[name]} (default {default})",
        )
    args = p.parse_args(argv)
    if args.rows < 1 or args.files < 1 or args.row_group_rows < 1 or args.workers < 1:
        p.error("--rows, --files, --row-group-rows and --workers must be positive")
    if args.entries < 1000:
        p.error("--entries must be at least 1000")
    if not 0.0 <= args.replace_share <= 1.0 or not 0.0 <= args.splice_share <= 1.0:
        p.error("--replace-share and --splice-share must be between 0 and 1")
    args.files = min(args.files, args.rows)
    return args


def prepare_out(out: Path, overwrite: bool) -> Path:
    """The pool directory, emptied of an old pool only when asked."""
    pool_dir = out / "pool"
    old = list(pool_dir.glob("part-*.parquet")) + list(pool_dir.glob("part-*.parquet.tmp"))
    if old and not overwrite:
        fail(f"{pool_dir} already holds a pool; pass --overwrite to replace it")
    for path in old:
        path.unlink()
    pool_dir.mkdir(parents=True, exist_ok=True)
    return pool_dir


def show_samples(real: list[str], pool_dir: Path, n: int, seed: int) -> None:
    """Random real and generated captions, for reading by eye."""
    rng = np.random.default_rng([seed, 2])
    generated = first_texts(pool_dir, max(n * 100, 10_000))
    print(f"\n{n} real alt-texts:")
    for i in rng.choice(len(real), size=min(n, len(real)), replace=False):
        print("  ", repr(real[i])[1:-1][:160])
    print(f"\n{n} generated captions:")
    for i in rng.choice(len(generated), size=min(n, len(generated)), replace=False):
        print("  ", repr(generated[i])[1:-1][:160])


def make_metadata(files: dict[str, Path], n_entries: int, knobs: Knobs) -> tuple[Metadata, list[str], np.ndarray]:
    """The metadata from its four sources, and the word list the captions draw from."""
    words, freqs = english_words()
    captions = [t for name in CAPTION_FILES for t in read_column(files[name], "text")]
    bigrams = caption_bigrams(captions, knobs.bigram_min_count, knobs.bigram_min_pmi)
    return build_metadata(n_entries, wordnet_heads(WORDNET_SOURCE), words, bigrams, knobs), words, freqs


def base_report(
    args: argparse.Namespace, knobs: Knobs, files: dict[str, Path], metadata: Metadata, model: Model
) -> dict:
    """Parameters, sources (with digests), the metadata's composition and the templates' figures."""
    return {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "parameters": {
            "rows": args.rows,
            "entries": args.entries,
            "seed": args.seed,
            "files": args.files,
            "row_group_rows": args.row_group_rows,
            "workers": args.workers,
            "compression": args.compression,
            "check_rows": args.check_rows,
            "knobs": asdict(knobs),
        },
        "sources": {
            "wordfreq": importlib.metadata.version("wordfreq"),
            "wordnet": str(WORDNET_SOURCE.relative_to(REPO)),
            **{name: {"path": str(path), "sha256": file_digest(path)} for name, path in files.items()},
        },
        "metadata": {"kinds": metadata.kinds, **metadata.notes},
        "templates": {
            "texts": len(model.tpl_count),
            "tokens": int(model.tpl_count.sum()),
            "replaceable_tokens": int((model.slot >= 0).sum()),
            "slots": int(model.slot_count.sum()),
            "templates_without_replaceable_words": int((model.slot_count == 0).sum()),
            "rare_words_in_pools": int(len(model.pool_ids)),
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(**{name: getattr(args, name) for name in asdict(Knobs())})
    files = real_files(args.real_data)
    if not WORDNET_SOURCE.is_file():
        fail(f"WordNet source not found: {WORDNET_SOURCE}")
    pool_dir = prepare_out(args.out, args.overwrite)

    t0, busy0, own0 = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
    metadata, words, freqs = make_metadata(files, args.entries, knobs)
    write_json(args.out / "metadata.json", metadata.entries)
    real_texts, real_urls = read_column(files["reference"], "text"), read_column(files["reference"], "url")
    model = build_model(real_texts, real_urls, words, freqs, metadata.entries, args.seed, knobs)
    t_model = time.perf_counter() - t0
    write_pool(model, Layout(args.rows, args.files, args.row_group_rows), pool_dir, args.workers, args.compression)
    t_pool = time.perf_counter() - t0 - t_model
    report = base_report(args, knobs, files, metadata, model)
    report["timing_seconds"] = {
        "metadata_and_model": round(t_model, 2),
        "pool": round(t_pool, 2),
        "other_processes_cpu": round(max(0.0, busy_cpu_seconds() - busy0 - (own_cpu_seconds() - own0)), 1),
    }
    del model  # the check builds its own automaton; free the generator's tables first
    if args.check_rows > 0:
        t1 = time.perf_counter()
        held_out = (
            held_out_texts(real_texts, real_urls, words, freqs, metadata, args.seed, knobs, args.check_rows)
            if args.held_out_check
            else None
        )
        report["realism"] = realism(pool_dir, real_texts, held_out, metadata, args.check_rows)
        report["timing_seconds"]["check"] = round(time.perf_counter() - t1, 2)
    write_json(args.out / "realism.json", report)
    print(json.dumps({"metadata": metadata.kinds, "timing_seconds": report["timing_seconds"]}))
    if "realism" in report:
        print(format_table(report["realism"]))
    if args.show:
        show_samples(real_texts, pool_dir, args.show, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
