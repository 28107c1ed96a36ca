"""Generate a large synthetic image-text pool and a MetaCLIP-style metadata for benchmarks.

Real pools cannot ship with the project and small samples hide scaling problems, so this script makes
pools of any size whose *shape* resembles what the MetaCLIP paper reports for raw web alt-texts:

- about half of the texts match no entry; matched texts carry about 3.5 matches on average;
- a Zipf-like head: about 3% of the entries hold about 94% of all matches;
- about 20% of the entries can never match (at paper scale 114k of 500k entries matched nothing);
- text lengths follow a log-normal close to real alt-texts (mean ~58 characters, median ~48).

How it stays controllable: entries are pseudo-words built from one syllable alphabet (plus bigrams of
such words and the numbers "0".."99"); everything else in a text ("filler") is built so that it can
never equal an entry under the engine's spacing rules (pseudo-words that always contain a letter the
entry alphabet lacks, numbers >= 100, file names, SKUs, separators). So the matches of a text are
exactly the entries placed into it, plus the components of placed bigrams that are entries too.

Usage:
    python bench/generate_pool.py --rows 1000000 --entries 500000 --out DIR [--seed 0] [--files 8]
        [--row-group-rows 100000] [--workers 2] [--shape-rows 50000]

Writes DIR/metadata.json, DIR/pool/part-XXXXX.parquet (id int64, url string, text string) and
DIR/generation.json (parameters, design figures, realised shape measured with a reference matcher).
Output is deterministic for a given seed and layout (rows, files, row-group-rows, entries, knobs).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

# Entry words use only these letters; every filler word contains at least one FILLER_CONSONANT, so a
# filler word can never equal an entry word, whatever its case.
ENTRY_CONSONANTS = "bdfgklmnprstv"
FILLER_CONSONANTS = "chjqwxyz"
VOWELS = "aeiou"
CODAS = ("", "n", "r", "l", "s", "m")
CODA_WEIGHTS = (0.70, 0.06, 0.06, 0.06, 0.06, 0.06)
NUMBER_ENTRIES = tuple(str(i) for i in range(100))
# Characters the engine wraps in spaces (see docs/design.md, "Matching").
WRAPPED = ",.;:?!`"

TEXT_LENGTH_BINS = 4096  # length histogram resolution (characters) for an exact median over all rows
MASK63 = np.uint64((1 << 63) - 1)
ID_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd, so row -> id is a bijection modulo 2**63


@dataclass(frozen=True)
class Knobs:
    """Shape targets and texture settings; the defaults follow the MetaCLIP paper and real alt-texts."""

    match_share: float = 0.5  # share of texts that get at least one entry
    matches_per_matched: float = 3.5  # target mean matches per matched text
    head_fraction: float = 0.03  # the "head" is this share of all entries ...
    head_share: float = 0.94  # ... and should hold this share of all matches
    dead_share: float = 0.20  # entries that are never placed in any text
    bigram_share: float = 0.15  # share of non-number entries that are two words
    bigram_entry_component_share: float = 0.5  # chance that a bigram word is itself a unigram entry
    capital_share: float = 0.15  # share of unigram entries written Capitalized
    zipf_offset: float = 30.0  # Zipf-Mandelbrot offset: flattens the very top of the head
    median_chars: float = 48.0  # log-normal text length: median ...
    sigma_log_chars: float = 0.6  # ... and spread of log(length), fitted on real alt-texts
    max_chars: int = 2000
    null_share: float = 0.0  # share of null texts (the engine must skip them)


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


def syllable_table(consonants: str) -> tuple[np.ndarray, np.ndarray]:
    """All consonant-vowel(-coda) syllables of an alphabet, with sampling weights favouring open ones."""
    syllables, weights = [], []
    for c in consonants:
        for v in VOWELS:
            for coda, w in zip(CODAS, CODA_WEIGHTS, strict=True):
                syllables.append(c + v + coda)
                weights.append(w)
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(syllables, dtype=object), w / w.sum()


def join_pieces(pieces: np.ndarray, ids: np.ndarray, counts: np.ndarray, sep: str = "") -> pa.Array:
    """Concatenate pieces[ids] in consecutive groups of `counts`, all in Arrow (no Python loop)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = pa.array(pieces, pa.string()).take(pa.array(ids))
    return pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), flat), sep)


def pseudo_words(
    rng: np.random.Generator,
    count: int,
    consonants: str,
    syllable_count_probs: dict[int, float],
    forced_consonants: str | None = None,
) -> list[str]:
    """Unique pseudo-words; with forced_consonants, one syllable of each word comes from that alphabet."""
    syl, w = syllable_table(consonants)
    forced = syllable_table(forced_consonants) if forced_consonants else None
    lengths_choice = np.asarray(list(syllable_count_probs))
    lengths_p = np.asarray(list(syllable_count_probs.values()), dtype=np.float64)
    words: dict[str, None] = {}
    while len(words) < count:
        need = int((count - len(words)) * 1.3) + 1000
        n_syl = rng.choice(lengths_choice, size=need, p=lengths_p / lengths_p.sum())
        ids = rng.choice(len(syl), size=int(n_syl.sum()), p=w)
        pieces = syl
        if forced is not None:
            starts = np.concatenate(([0], np.cumsum(n_syl)[:-1]))
            pos = starts + (rng.random(need) * n_syl).astype(np.int64)
            ids[pos] = len(syl) + rng.choice(len(forced[0]), size=need, p=forced[1])
            pieces = np.concatenate((syl, forced[0]))
        for word in join_pieces(pieces, ids, n_syl).to_pylist():
            words.setdefault(word, None)
    return list(words)[:count]


def capitalize_some(rng: np.random.Generator, words: list[str], share: float) -> list[str]:
    """Write a random share of the words Capitalized, as proper nouns and titles are."""
    flags = rng.random(len(words)) < share
    return [w.capitalize() if f else w for w, f in zip(words, flags, strict=True)]


@dataclass
class Entries:
    """The metadata plus what the generator needs to know about it."""

    strings: list[str]
    bigram_ids: np.ndarray  # entry ids of the bigrams
    bigram_components: np.ndarray  # (n_bigrams, 2) entry id of each word, or -1 when not an entry
    component_words: set[str]  # every word used inside an entry (for the disjointness check)


def build_entries(rng: np.random.Generator, n_entries: int, knobs: Knobs) -> Entries:
    """Unigrams (some Capitalized), bigrams of words (some of which are entries), then "0".."99"."""
    n_rest = n_entries - len(NUMBER_ENTRIES)
    n_bi = int(round(knobs.bigram_share * n_rest))
    n_uni = n_rest - n_bi
    n_extra = max(1000, n_bi // 2)  # words that occur only inside bigrams
    words = pseudo_words(rng, n_uni + n_extra, ENTRY_CONSONANTS, {1: 0.06, 2: 0.42, 3: 0.40, 4: 0.12})
    unigrams = capitalize_some(rng, words[:n_uni], knobs.capital_share)
    extra = words[n_uni:]

    bigrams: dict[str, tuple[int, int]] = {}
    while len(bigrams) < n_bi:
        need = (n_bi - len(bigrams)) * 2 + 100
        from_entries = rng.random((need, 2)) < knobs.bigram_entry_component_share
        uni_pick = rng.integers(0, n_uni, size=(need, 2))
        extra_pick = rng.integers(0, len(extra), size=(need, 2))
        for row in range(need):
            parts, comp = [], []
            for col in range(2):
                if from_entries[row, col]:
                    parts.append(unigrams[uni_pick[row, col]])
                    comp.append(int(uni_pick[row, col]))
                else:
                    parts.append(extra[extra_pick[row, col]])
                    comp.append(-1)
            bigrams.setdefault(" ".join(parts), (comp[0], comp[1]))
            if len(bigrams) == n_bi:
                break
    strings = unigrams + list(bigrams) + list(NUMBER_ENTRIES)
    return Entries(
        strings=strings,
        bigram_ids=np.arange(n_uni, n_uni + n_bi, dtype=np.int64),
        bigram_components=np.asarray(list(bigrams.values()), dtype=np.int64).reshape(-1, 2),
        component_words=set(words),
    )


@dataclass
class Fillers:
    """Tokens that never match: their strings, sampling probabilities and whether punctuation may follow."""

    strings: list[str]
    probs: np.ndarray
    takes_suffix: np.ndarray


def build_fillers(rng: np.random.Generator, n_words: int) -> Fillers:
    """Pseudo-words outside the entry alphabet (Zipf-weighted), numbers >= 100, file names, SKUs."""
    words = pseudo_words(
        rng,
        n_words,
        ENTRY_CONSONANTS + FILLER_CONSONANTS,
        {1: 0.15, 2: 0.45, 3: 0.30, 4: 0.10},
        forced_consonants=FILLER_CONSONANTS,
    )
    words = capitalize_some(rng, words, 0.2)
    numbers = [str(n) for n in np.unique(rng.integers(100, 100_000, size=20_000))]
    numbers += [str(y) for y in range(1950, 2031)]
    prefixes = ("IMG_", "DSC_", "DSCN", "photo_", "image-", "P", "Screenshot_")
    suffixes = (".jpg", ".JPG", ".png", ".jpeg", ".webp")
    files = [
        f"{prefixes[p]}{n:04d}{suffixes[s]}"
        for p, n, s in zip(
            rng.integers(0, len(prefixes), 20_000),
            rng.integers(0, 10_000, 20_000),
            rng.integers(0, len(suffixes), 20_000),
            strict=True,
        )
    ]
    letters = np.asarray(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
    skus = [
        f"{a}{b}-{n}" if k else f"{a}{b}{n}{c}"
        for a, b, c, n, k in zip(
            rng.choice(letters, 20_000),
            rng.choice(letters, 20_000),
            rng.choice(letters, 20_000),
            rng.integers(100, 99_999, 20_000),
            rng.random(20_000) < 0.5,
            strict=True,
        )
    ]
    separators = ["-", "|", "&", "/", "–", "·", "+", "x"]
    classes = [(words, 0.80, 1.0), (numbers, 0.07, 0.5), (files, 0.03, 0.0), (skus, 0.03, 0.0), (separators, 0.07, 1.0)]
    strings: list[str] = []
    probs: list[np.ndarray] = []
    for items, share, zipf in classes:
        items = list(dict.fromkeys(items))
        weights = (np.arange(len(items)) + 10.0) ** -zipf
        strings += items
        probs.append(share * weights / weights.sum())
    takes_suffix = np.ones(len(strings), dtype=bool)
    takes_suffix[len(strings) - len(separators) :] = False
    return Fillers(strings=strings, probs=np.concatenate(probs), takes_suffix=takes_suffix)


def check_disjoint(entries: Entries, fillers: Fillers) -> None:
    """Guarantee by construction-check that no filler token, once spaced, contains an entry word."""
    forbidden = entries.component_words | {e.lower() for e in entries.strings} | set(NUMBER_ENTRIES)
    forbidden |= {e for e in entries.strings if " " not in e}
    for token in fillers.strings:
        for piece in spaced(token).split():
            if piece in forbidden or piece.lower() in forbidden:
                raise AssertionError(f"filler token {token!r} could match entry word {piece!r}")


# --------------------------------------------------------------------------------------------------
# Match distribution over entries
# --------------------------------------------------------------------------------------------------


@dataclass
class EntryLaw:
    """How often each entry is placed (direct) and how often it matches (direct + via bigrams)."""

    direct: np.ndarray  # probability of each entry per placement draw
    effective: np.ndarray  # expected matches per placement draw (includes bigram components)
    dead: np.ndarray  # bool mask of entries never placed
    zipf_exponent: float


def induced(direct: np.ndarray, entries: Entries) -> np.ndarray:
    """Add to each entry the rate at which it rides along inside a placed bigram."""
    eff = direct.copy()
    for col in range(2):
        comp = entries.bigram_components[:, col]
        ok = comp >= 0
        np.add.at(eff, comp[ok], direct[entries.bigram_ids[ok]])
    return eff


def top_share(rates: np.ndarray, top: int) -> float:
    """Share of the total held by the `top` largest rates."""
    top = min(top, len(rates))
    return float(np.partition(rates, len(rates) - top)[len(rates) - top :].sum() / rates.sum())


def build_law(rng: np.random.Generator, entries: Entries, knobs: Knobs) -> EntryLaw:
    """Zipf-Mandelbrot over live entries (short words ranked first), exponent fitted to the head share."""
    n = len(entries.strings)
    is_component = np.zeros(n, dtype=bool)
    comps = entries.bigram_components.ravel()
    is_component[comps[comps >= 0]] = True
    can_die = ~is_component  # a dead word must not ride along in a live bigram
    can_die[n - len(NUMBER_ENTRIES) :] = False
    candidates = np.flatnonzero(can_die)
    n_dead = min(int(round(knobs.dead_share * n)), len(candidates))
    dead = np.zeros(n, dtype=bool)
    dead[rng.choice(candidates, size=n_dead, replace=False)] = True

    live = np.flatnonzero(~dead)
    lengths = np.fromiter((len(e) for e in entries.strings), dtype=np.float64, count=n)
    order = live[np.argsort(lengths[live] + rng.normal(0.0, 2.5, size=len(live)), kind="stable")]
    ranks = np.arange(1, len(order) + 1, dtype=np.float64)
    head = int(math.ceil(knobs.head_fraction * n))

    def law(s: float) -> tuple[np.ndarray, np.ndarray]:
        direct = np.zeros(n)
        direct[order] = (ranks + knobs.zipf_offset) ** -s
        direct /= direct.sum()
        return direct, induced(direct, entries)

    lo, hi = 0.3, 4.0
    for _ in range(50):  # head share grows with the exponent: bisect
        mid = (lo + hi) / 2
        if top_share(law(mid)[1], head) < knobs.head_share:
            lo = mid
        else:
            hi = mid
    direct, effective = law(hi)
    return EntryLaw(direct=direct, effective=effective, dead=dead, zipf_exponent=hi)


# --------------------------------------------------------------------------------------------------
# The model shared by chunk workers
# --------------------------------------------------------------------------------------------------


@dataclass
class Model:
    """Everything a worker needs to make a chunk: token table, samplers and texture tables."""

    knobs: Knobs
    seed: int
    n_entries: int
    tokens: pa.Array  # entries first, then fillers
    token_chars: np.ndarray
    takes_suffix: np.ndarray  # separators such as "|" get no punctuation after them
    entry_cdf: np.ndarray
    filler_cdf: np.ndarray
    filler_cost: float  # mean characters a filler adds (token, space, suffix)
    extra_per_text: float  # mean extra placements beyond the first, per matched text
    suffixes: pa.Array
    suffix_mid_cdf: np.ndarray
    suffix_last_cdf: np.ndarray
    sites: pa.Array
    dirs: pa.Array
    exts: pa.Array


SUFFIXES = ("", ",", ".", ":", ";", "!", "?", "\n", "'s")
SUFFIX_MID_P = (0.885, 0.06, 0.01, 0.015, 0.005, 0.003, 0.002, 0.005, 0.015)
SUFFIX_LAST_P = (0.84, 0.0, 0.12, 0.0, 0.0, 0.025, 0.01, 0.0, 0.005)


def cdf(p: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """Normalised cumulative distribution for inverse-CDF sampling with searchsorted."""
    c = np.cumsum(np.asarray(p, dtype=np.float64))
    return c / c[-1]


def url_tables(rng: np.random.Generator) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Host names, directories and extensions to assemble plausible image URLs."""
    names = pseudo_words(rng, 3000, ENTRY_CONSONANTS + FILLER_CONSONANTS, {2: 0.5, 3: 0.5})
    hosts = ("", "img.", "cdn.", "images.", "static.", "i0.", "media.")
    tlds = (".com", ".net", ".org", ".co.uk", ".de", ".com.br", ".fr", ".io")
    sites = [
        f"{hosts[h]}{n}{tlds[t]}"
        for n, h, t in zip(names, rng.integers(0, len(hosts), 3000), rng.integers(0, len(tlds), 3000), strict=True)
    ]
    plain = ["images", "p", "media/catalog/product", "uploads", "thumbs/300x300", "photos/large"]
    dated = [f"wp-content/uploads/{y}/{m:02d}" for y in range(2010, 2025) for m in range(1, 13)]
    dirs = plain * (len(dated) // len(plain)) + dated  # about half of the URLs are WordPress-like
    exts = [".jpg", ".jpg", ".jpg", ".png", ".jpeg", ".webp", ".JPG"]
    return pa.array(sites), pa.array(dirs), pa.array(exts)


def placements_for_target(law: EntryLaw, knobs: Knobs) -> float:
    """Mean extra placements per matched text (beyond the first) that yield the target matches.

    A placement yields 1 match plus its bigram words that are entries, minus what is lost when the
    token gets a possessive "'s" (then it no longer matches) or repeats an entry already in the text.
    """
    kills = SUFFIXES.index("'s")
    per_placement = float(law.effective.sum()) * (1.0 - SUFFIX_MID_P[kills])
    collision = float(np.square(law.direct).sum())  # chance two placements pick the same entry
    spread = math.exp(knobs.sigma_log_chars**2)  # E[w^2] of the log-normal length weight (mean 1)
    extra = max(knobs.matches_per_matched / per_placement - 1.0, 0.0)
    for _ in range(20):  # fixed point: more placements -> more repeats to make up for
        pairs = 2.0 * extra + extra**2 * spread  # E[m(m-1)] for m = 1 + Poisson(extra * w)
        extra = max((knobs.matches_per_matched + collision * pairs / 2.0) / per_placement - 1.0, 0.0)
    return extra


def build_model(n_entries: int, seed: int, knobs: Knobs) -> tuple[Model, Entries, EntryLaw]:
    """Make vocabulary, laws and texture tables; all random choices come from the seed."""
    rng = np.random.default_rng([seed, 0])
    entries = build_entries(rng, n_entries, knobs)
    fillers = build_fillers(rng, 300_000)
    check_disjoint(entries, fillers)
    law = build_law(rng, entries, knobs)

    all_tokens = entries.strings + fillers.strings
    chars = np.fromiter((len(t) for t in all_tokens), dtype=np.int64, count=len(all_tokens))
    suffix_chars = np.fromiter((len(s) for s in SUFFIXES), dtype=np.float64)
    mean_suffix = float(suffix_chars @ np.asarray(SUFFIX_MID_P))
    filler_cost = float(chars[n_entries:] @ fillers.probs) + 1.0 + mean_suffix
    extra = placements_for_target(law, knobs)
    sites, dirs, exts = url_tables(rng)
    model = Model(
        knobs=knobs,
        seed=seed,
        n_entries=n_entries,
        tokens=pa.array(all_tokens, pa.string()),
        token_chars=chars,
        takes_suffix=np.concatenate((np.ones(n_entries, bool), fillers.takes_suffix)),
        entry_cdf=cdf(law.direct),
        filler_cdf=cdf(fillers.probs),
        filler_cost=filler_cost,
        extra_per_text=extra,
        suffixes=pa.array(SUFFIXES),
        suffix_mid_cdf=cdf(SUFFIX_MID_P),
        suffix_last_cdf=cdf(SUFFIX_LAST_P),
        sites=sites,
        dirs=dirs,
        exts=exts,
    )
    return model, entries, law


# --------------------------------------------------------------------------------------------------
# Chunks
# --------------------------------------------------------------------------------------------------


def draw(rng: np.random.Generator, cdf_: np.ndarray, size: int) -> np.ndarray:
    """Inverse-CDF sampling: fast for large categorical laws."""
    idx = np.searchsorted(cdf_, rng.random(size), side="right")
    return np.minimum(idx, len(cdf_) - 1)


def row_ids(start: int, n: int, seed: int) -> np.ndarray:
    """Unique, unordered-looking int64 ids: an odd-multiplier affine bijection modulo 2**63."""
    rows = np.arange(start, start + n, dtype=np.uint64)
    offset = np.uint64(((seed + 1) * 0x2545F4914F6CDD1D) & ((1 << 63) - 1))
    return ((rows * ID_MULTIPLIER + offset) & MASK63).astype(np.int64)


def plan_tokens(model: Model, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Choose token ids per text (entries and fillers, shuffled within each text) and text sizes."""
    k = model.knobs
    target = np.minimum(rng.lognormal(math.log(k.median_chars), k.sigma_log_chars, n), k.max_chars)
    matched = rng.random(n) < k.match_share
    # More characters leave room for more entries: extra placements scale with the target length.
    mean_target = k.median_chars * math.exp(k.sigma_log_chars**2 / 2)
    n_entry = np.where(matched, 1 + rng.poisson(model.extra_per_text * target / mean_target), 0)
    entry_ids = draw(rng, model.entry_cdf, int(n_entry.sum()))
    entry_owner = np.repeat(np.arange(n), n_entry)
    entry_chars = np.bincount(entry_owner, weights=model.token_chars[entry_ids] + 1.0, minlength=n)
    n_fill = np.rint((target + 1.0 - entry_chars) / model.filler_cost)
    n_fill = np.clip(n_fill, np.where(matched, 0, 1), 400).astype(np.int64)
    filler_ids = model.n_entries + draw(rng, model.filler_cdf, int(n_fill.sum()))
    owner = np.concatenate((entry_owner, np.repeat(np.arange(n), n_fill)))
    tokens = np.concatenate((entry_ids, filler_ids))
    key = (owner.astype(np.uint64) << np.uint64(32)) | rng.integers(0, 1 << 32, len(owner), np.uint64)
    order = np.argsort(key, kind="stable")
    counts = n_entry + n_fill
    stats = {"matched_planned": int(matched.sum()), "entries_placed": int(n_entry.sum()), "tokens": int(counts.sum())}
    return tokens[order], counts, stats


def render_texts(model: Model, rng: np.random.Generator, tokens: np.ndarray, counts: np.ndarray) -> pa.Array:
    """Turn token ids into strings: attach punctuation suffixes, join each text's tokens with spaces."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    suffix = draw(rng, model.suffix_mid_cdf, len(tokens))
    suffix[offsets[1:] - 1] = draw(rng, model.suffix_last_cdf, len(counts))
    suffix[~model.takes_suffix[tokens]] = 0
    words = pc.binary_join_element_wise(model.tokens.take(pa.array(tokens)), model.suffixes.take(pa.array(suffix)), "")
    texts = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), words), " ")
    if model.knobs.null_share > 0:
        texts = pc.if_else(pa.array(rng.random(len(counts)) < model.knobs.null_share), None, texts)
    return texts.cast(pa.string())


def render_urls(model: Model, rng: np.random.Generator, ids: np.ndarray) -> pa.Array:
    """https://host/dir/<id><ext>: unique, plausible and cheap to build."""
    n = len(ids)
    pick = lambda table: table.take(pa.array(rng.integers(0, len(table), n)))  # noqa: E731
    return pc.binary_join_element_wise(
        "https://", pick(model.sites), "/", pick(model.dirs), "/", pa.array(ids).cast(pa.string()), pick(model.exts), ""
    )


SCHEMA = pa.schema([("id", pa.int64()), ("url", pa.string()), ("text", pa.string())])


def make_chunk(model: Model, chunk_index: int, start: int, n: int) -> tuple[pa.Table, dict]:
    """One row group of the pool, seeded by its index so any worker order gives the same bytes."""
    rng = np.random.default_rng([model.seed, 1, chunk_index])
    tokens, counts, stats = plan_tokens(model, rng, n)
    texts = render_texts(model, rng, tokens, counts)
    ids = row_ids(start, n, model.seed)
    table = pa.Table.from_arrays([pa.array(ids), render_urls(model, rng, ids), texts], schema=SCHEMA)
    lengths = pc.fill_null(pc.utf8_length(texts), 0).to_numpy()
    stats["chars_sum"] = int(lengths.sum())
    stats["length_hist"] = np.bincount(np.minimum(lengths, TEXT_LENGTH_BINS - 1), minlength=TEXT_LENGTH_BINS)
    return table, stats


# Set in the parent before forking, so workers inherit the model without pickling it per task.
_MODEL: Model | None = None


def _worker_chunk(task: tuple[int, int, int]) -> tuple[int, pa.Table, dict]:
    assert _MODEL is not None
    table, stats = make_chunk(_MODEL, *task)
    return task[0], table, stats


@dataclass(frozen=True)
class Layout:
    """Which rows go into which file and row group."""

    rows: int
    files: int
    row_group_rows: int

    def file_rows(self) -> list[int]:
        base, rest = divmod(self.rows, self.files)
        return [base + (1 if i < rest else 0) for i in range(self.files)]

    def tasks(self) -> list[tuple[int, int, int, int]]:
        """(file index, chunk index, first row, rows) for every row group, in write order."""
        out, start, chunk = [], 0, 0
        for f, n in enumerate(self.file_rows()):
            for s in range(0, n, self.row_group_rows):
                out.append((f, chunk, start + s, min(self.row_group_rows, n - s)))
                chunk += 1
            start += n
        return out


def generate_chunks(model: Model, layout: Layout, workers: int) -> Iterator[tuple[int, pa.Table, dict]]:
    """Yield (file, table, stats) in write order, keeping only a few chunks in flight (bounded memory)."""
    global _MODEL
    tasks = layout.tasks()
    if workers <= 1:
        for f, chunk, start, n in tasks:
            yield (f, *make_chunk(model, chunk, start, n))
        return
    _MODEL = model
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        pending: deque = deque()
        queue = iter(tasks)
        for f, chunk, start, n in queue:
            pending.append((f, pool.apply_async(_worker_chunk, ((chunk, start, n),))))
            if len(pending) >= 2 * workers:
                break
        while pending:
            f, res = pending.popleft()
            _, table, stats = res.get()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt[0], pool.apply_async(_worker_chunk, ((nxt[1], nxt[2], nxt[3]),))))
            yield f, table, stats
    _MODEL = None


def write_pool(model: Model, layout: Layout, pool_dir: Path, workers: int, compression: str) -> dict:
    """Write the Parquet files chunk by chunk; return aggregated realised figures."""
    pool_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[int, pq.ParquetWriter] = {}
    totals = {"matched_planned": 0, "entries_placed": 0, "tokens": 0, "chars_sum": 0}
    hist = np.zeros(TEXT_LENGTH_BINS, dtype=np.int64)
    with tqdm(total=layout.rows, unit="rows", unit_scale=True, desc="pool", file=sys.stderr) as bar:
        for f, table, stats in generate_chunks(model, layout, workers):
            if f not in writers:
                for old in [k for k in writers]:  # files are written in order: close finished ones
                    writers.pop(old).close()
                writers[f] = pq.ParquetWriter(pool_dir / f"part-{f:05d}.parquet", SCHEMA, compression=compression)
            writers[f].write_table(table, row_group_size=layout.row_group_rows)
            hist += stats.pop("length_hist")
            for key, value in stats.items():
                totals[key] += value
            bar.update(table.num_rows)
    for w in writers.values():
        w.close()
    return summarise_realised(layout, totals, hist, pool_dir)


def summarise_realised(layout: Layout, totals: dict, hist: np.ndarray, pool_dir: Path) -> dict:
    """Realised figures that need no matching: sizes, lengths, planned matched share."""
    cum = np.cumsum(hist)
    quantile = lambda q: int(np.searchsorted(cum, q * cum[-1]))  # noqa: E731
    return {
        "rows": layout.rows,
        "files": len(list(pool_dir.glob("part-*.parquet"))),
        "bytes_on_disk": sum(p.stat().st_size for p in pool_dir.glob("part-*.parquet")),
        "text_chars_mean": totals["chars_sum"] / layout.rows,
        "text_chars_median": quantile(0.5),
        "text_chars_p10": quantile(0.1),
        "text_chars_p90": quantile(0.9),
        "text_chars_p99": quantile(0.99),
        "tokens_per_text_mean": totals["tokens"] / layout.rows,
        "planned_matched_share": totals["matched_planned"] / layout.rows,
        "entries_placed_per_planned_matched_text": totals["entries_placed"] / max(totals["matched_planned"], 1),
    }


# --------------------------------------------------------------------------------------------------
# Shape measurement with a plain reference matcher
# --------------------------------------------------------------------------------------------------


def spaced(text: str) -> str:
    """The engine's spacing: pad, wrap , . ; : ? ! ` in spaces, tab/newline/CR to space.

    A chain of str.replace, measured about twice as fast here as str.translate with a mapping table.
    """
    text = f" {text} "
    for mark in WRAPPED:
        text = text.replace(mark, f" {mark} ")
    for control in "\t\n\r":
        text = text.replace(control, " ")
    return text


def build_automaton(entries: list[str]):
    """Aho-Corasick automaton over " E " keys; the value is the entry id."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for entry_id, entry in enumerate(entries):
        automaton.add_word(f" {entry} ", entry_id)
    automaton.make_automaton()
    return automaton


def reference_match(automaton, text: str | None) -> set[int]:
    """Entry ids a text matches, each once; null or empty text matches nothing."""
    if not text:
        return set()
    return {entry_id for _, entry_id in automaton.iter(spaced(text))}


def read_texts(pool_dir: Path, limit: int | None) -> list[str | None]:
    """Texts of the first `limit` rows in file order (all rows when limit is None)."""
    texts: list[str | None] = []
    for path in sorted(pool_dir.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["text"]):
            texts.extend(batch.column(0).to_pylist())
            if limit is not None and len(texts) >= limit:
                return texts[:limit]
    return texts


def measure_shape(
    pool_dir: Path,
    entries: list[str],
    sample_rows: int = 50_000,
    head_fraction: float = 0.03,
    design_head: np.ndarray | None = None,
) -> dict:
    """Match a sample with the reference matcher and report the shape figures of the paper.

    The sample's own top-3% share is biased upwards on small samples (fewer distinct entries match
    than the head holds), so when the generator's head entries are known their share is reported too:
    that estimate does not depend on the sample size.
    """
    automaton = build_automaton(entries)
    texts = read_texts(pool_dir, sample_rows)
    counts = np.zeros(len(entries), dtype=np.int64)
    per_text = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        ids = reference_match(automaton, text)
        per_text[i] = len(ids)
        if ids:
            counts[list(ids)] += 1
    matched = per_text > 0
    total = int(counts.sum())
    head = int(math.ceil(head_fraction * len(entries)))
    hist = np.bincount(np.minimum(per_text[matched], 10), minlength=11)[1:]
    extra = {}
    if design_head is not None and total:
        extra["design_head_share_of_sample_matches"] = float(counts[design_head].sum() / total)
    return {
        "sample_rows": len(texts),
        "matched_share": float(matched.mean()) if len(texts) else 0.0,
        "mean_matches_per_matched_text": float(per_text[matched].mean()) if matched.any() else 0.0,
        "matches_total": total,
        "head_entries": head,
        "head_share_ranked_on_sample": top_share(counts.astype(np.float64), head) if total else 0.0,
        "zero_match_entries": int((counts == 0).sum()),
        "zero_match_entry_share": float((counts == 0).mean()),
        **extra,
        "matched_texts_by_match_count_1_to_10plus": [int(x) for x in hist],
        "top_entries": [[entries[i], int(counts[i])] for i in np.argsort(-counts, kind="stable")[:10]],
    }


PAPER_RAW_ROWS = 3_200_000_000  # the paper's raw pool: ~1.6B matched pairs at about half matched


def design_figures(model: Model, law: EntryLaw, rows: int, knobs: Knobs) -> dict:
    """What the law implies at full scale: expected head share and zero-match entries (Poisson)."""
    per_row = knobs.match_share * (1.0 + model.extra_per_text)  # placements per row
    rates = law.effective * per_row
    head = int(math.ceil(knobs.head_fraction * len(rates)))

    def zero_at(r: float) -> int:
        return int(round(float(np.exp(-r * rates).sum())))

    scales = sorted({rows, 10 * rows, PAPER_RAW_ROWS})
    return {
        "zipf_exponent": law.zipf_exponent,
        "zipf_offset": knobs.zipf_offset,
        "dead_entries": int(law.dead.sum()),
        "expected_head_share_of_matches": top_share(rates, head),
        "target_matches_per_matched_text": knobs.matches_per_matched,
        "placements_per_matched_text": 1.0 + model.extra_per_text,
        "expected_zero_match_entries": {str(r): zero_at(r) for r in scales},
        "expected_entries_over_t20000": {str(r): int((rates * r > 20_000).sum()) for r in scales},
    }


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--entries", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--row-group-rows", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--compression", default="snappy")
    p.add_argument("--shape-rows", type=int, default=50_000, help="rows to match for the shape report (0: skip)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing pool in --out")
    for field, default in asdict(Knobs()).items():
        p.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.entries < 200:
        p.error("--entries must be at least 200 (the last 100 are the numbers 0..99)")
    if args.rows < 1 or args.files < 1 or args.row_group_rows < 1:
        p.error("--rows, --files and --row-group-rows must be positive")
    args.files = min(args.files, args.rows)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(**{f: getattr(args, f) for f in asdict(Knobs())})
    pool_dir = args.out / "pool"
    if any(pool_dir.glob("part-*.parquet")):
        if not args.overwrite:
            sys.exit(f"{pool_dir} already holds a pool; pass --overwrite to replace it")
        for old in pool_dir.glob("part-*.parquet"):
            old.unlink()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    model, entries, law = build_model(args.entries, args.seed, knobs)
    (args.out / "metadata.json").write_text(json.dumps(entries.strings, ensure_ascii=False))
    t_model = time.perf_counter() - t0
    layout = Layout(args.rows, args.files, args.row_group_rows)
    realised = write_pool(model, layout, pool_dir, args.workers, args.compression)
    t_total = time.perf_counter() - t0

    report = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "parameters": {
            "rows": args.rows,
            "entries": args.entries,
            "seed": args.seed,
            "files": args.files,
            "row_group_rows": args.row_group_rows,
            "workers": args.workers,
            "compression": args.compression,
            "knobs": asdict(knobs),
        },
        "design": design_figures(model, law, args.rows, knobs),
        "realised": realised,
        "timing_seconds": {"vocabulary_and_metadata": round(t_model, 2), "total_generation": round(t_total, 2)},
    }
    if args.shape_rows > 0:
        t1 = time.perf_counter()
        head = int(math.ceil(knobs.head_fraction * args.entries))
        design_head = np.argsort(-law.effective, kind="stable")[:head]
        report["shape_on_sample"] = measure_shape(
            pool_dir, entries.strings, args.shape_rows, knobs.head_fraction, design_head
        )
        report["timing_seconds"]["shape_measurement"] = round(time.perf_counter() - t1, 2)
    (args.out / "generation.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(
        json.dumps(
            {k: report[k] for k in ("design", "realised", "timing_seconds")}
            | {"shape_on_sample": report.get("shape_on_sample")},
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
