"""Words of languages written without spaces, for Wikipedia counts (MetaCLIP 2's "no-space languages").

Chinese, Japanese, Thai and Lao run their words together, so ``metadata.wikitext`` makes a whole clause
one token. For such a language each token holding the language's own script is cut into words by a
segmenter; tokens in other scripts (a Latin name in a Chinese article) stay as they are. Segmenters are
MetaCLIP 2's where they run offline (MeCab with IPAdic for Japanese, thai-segmenter, LaoNLP); for Chinese
MetaCLIP 2 runs CKIP's BERT model on a GPU with downloaded weights, so rjieba is used: it gives jieba's
words (identical on 4,712 real captions) 14 to 30 times faster. A segmenter is loaded once per process.

Counts record their language and segmenter (``counts.json``), and ``counts_language`` refuses counts whose
segmentation is not the one this code gives their language, so lists never mix segmentations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as distributions
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from metadata.loading import MetadataError

BREAK_MARK = "\x00"  # metadata.wikitext's mark between tokens that must not form a bigram

# MetaCLIP 2's languages written without spaces between words (Wikipedia codes, "_" as in dump names).
NO_SPACE_LANGUAGES = frozenset({"bo", "dz", "ja", "km", "lo", "my", "ryu", "th", "zh", "zh_classical", "zh_yue"})

# Why the others cannot be segmented here, for the refusal.
UNSEGMENTABLE = {
    "bo": "botok, MetaCLIP 2's segmenter for Tibetan, downloads its dictionaries from GitHub at first use",
    "dz": "botok, MetaCLIP 2's segmenter for Dzongkha, downloads its dictionaries from GitHub at first use",
    "km": "MetaCLIP 2 segments Khmer with a CRF model of its own that it does not publish",
    "my": "MetaCLIP 2 segments Burmese with a CRF model that it downloads at run time; no package ships one",
}


@dataclass(frozen=True)
class SegmenterSpec:
    """A segmenter: its name, the distributions whose versions are recorded, the RE2 class of the
    characters it segments (a token with one of them is cut), and how to load it."""

    name: str
    distributions: tuple[str, ...]
    script: str
    load: Callable[[], Callable[[str], list[str]]]


def _load_rjieba() -> Callable[[str], list[str]]:
    import rjieba

    return lambda text: rjieba.cut(text, True)  # True: HMM for unknown words, as jieba's default


def _load_mecab() -> Callable[[str], list[str]]:
    import ipadic
    import MeCab

    tagger = MeCab.Tagger(ipadic.MECAB_ARGS + " -Owakati")  # MetaCLIP 2's options: words split by spaces
    return lambda text: tagger.parse(text).split()


def _load_thai_segmenter() -> Callable[[str], list[str]]:
    from thai_segmenter import tokenize

    return tokenize


def _load_laonlp() -> Callable[[str], list[str]]:
    from laonlp.tokenize import word_tokenize

    return word_tokenize


HAN = r"\p{Han}\p{Bopomofo}"
ZH = SegmenterSpec("rjieba", ("rjieba",), f"[{HAN}]", _load_rjieba)
KANA = r"\p{Hiragana}\p{Katakana}\x{30FC}"  # with the prolonged sound mark, of no script of its own
JA = SegmenterSpec("mecab-ipadic-wakati", ("mecab-python3", "ipadic"), f"[{HAN}{KANA}]", _load_mecab)
TH = SegmenterSpec("thai-segmenter", ("thai-segmenter",), r"\p{Thai}", _load_thai_segmenter)
LO = SegmenterSpec("laonlp", ("laonlp",), r"\p{Lao}", _load_laonlp)
SEGMENTERS = {"zh": ZH, "zh_classical": ZH, "zh_yue": ZH, "ja": JA, "ryu": JA, "th": TH, "lo": LO}

DUMP_NAME = re.compile(r"([a-z][a-z0-9_]*?)wiki-")  # enwiki-20240601-..., zh_yuewiki-latest-...


def normalize_language(code: str) -> str:
    """Wikipedia codes as dump names spell them: ``zh-yue`` and ``zh_yue`` are one language."""
    return code.replace("-", "_")


def language_of_dump(path: str | Path) -> str | None:
    """The language code in a Wikipedia dump's file name (``jawiki-...`` -> ``ja``), else None."""
    found = DUMP_NAME.match(Path(path).name)
    return found.group(1) if found else None


def spec_for(language: str | None) -> SegmenterSpec | None:
    """The segmenter this code gives ``language`` (None: written with spaces, or unknown)."""
    return None if language is None else SEGMENTERS.get(normalize_language(language))


def needs_segmenting(language: str | None) -> bool:
    return language is not None and normalize_language(language) in NO_SPACE_LANGUAGES


def describe(spec: SegmenterSpec) -> dict:
    """What counts.json says about a segmenter: its name and the versions of its distributions."""
    try:
        packages = {name: distributions.version(name) for name in spec.distributions}
    except distributions.PackageNotFoundError as error:
        raise MetadataError(
            f"the {spec.name} segmenter needs {' and '.join(spec.distributions)}, and {error.name} is not "
            "installed: pip install 'curation-studio[segment]' (or -r requirements-segment.txt)"
        ) from None
    return {"name": spec.name, "packages": packages}


def require_spec(language: str | None) -> SegmenterSpec | None:
    """The segmenter ``language`` gets (None: written with spaces, or unknown), refusing a language
    written without spaces that has no offline segmenter: its counts would hold whole clauses."""
    spec = spec_for(language)
    if spec is None and needs_segmenting(language):
        raise MetadataError(
            f"no offline word segmenter for language {language!r}, which is written without spaces "
            f"({UNSEGMENTABLE[normalize_language(language)]}); its counts would hold whole clauses, not "
            "words: add a segmenter in metadata/segment.py, or give --language if the dump is of another language"
        )
    return spec


@dataclass
class Segmenter:
    """A loaded segmenter for one language."""

    language: str
    spec: SegmenterSpec
    cut: Callable[[str], list[str]]


_LOADED: dict[str, Segmenter] = {}


def segmenter_for(language: str | None) -> Segmenter | None:
    """The segmenter for ``language``, loaded once per process (``require_spec`` says which)."""
    spec = require_spec(language)
    if spec is None or language is None:
        return None
    code = normalize_language(language)
    if code not in _LOADED:
        describe(spec)  # a missing distribution, said plainly
        try:
            cut = spec.load()
        except ImportError as error:
            raise MetadataError(f"the {spec.name} segmenter could not be loaded: {error}") from None
        _LOADED[code] = Segmenter(code, spec, cut)
    return _LOADED[code]


# A segmented word is a token only if it begins and ends with a letter, digit, mark or underscore, as every
# token of metadata.wikitext does; anything else (a lone hyphen or apostrophe, "-b") becomes a break.
WORD_SHAPE = r"^[\pL\pN\pM_](?:.*[\pL\pN\pM_])?$"


def segment_tokens(tokens: pa.Array, segmenter: Segmenter) -> pa.Array:
    """``tokens`` (with break marks) where every token holding the segmenter's script is replaced by its
    words, which follow each other with no break; the other tokens are kept as they are. As MetaCLIP 2,
    blank words are dropped, and a word that is punctuation or begins with it breaks the bigram chain."""
    hits = pc.fill_null(pc.match_substring_regex(tokens, segmenter.spec.script), False)
    if len(tokens) == 0 or not pc.any(hits).as_py():
        return tokens
    out: list[str] = []
    cut = segmenter.cut
    for token, hit in zip(tokens.to_pylist(), hits.to_pylist()):
        if hit:
            out += cut(token)
        else:
            out.append(token)
    words = pc.utf8_trim_whitespace(pa.array(out, pa.string()))
    words = words.filter(pc.not_equal(words, ""))
    keep = pc.or_(pc.match_substring_regex(words, WORD_SHAPE), pc.equal(words, BREAK_MARK))
    return pc.if_else(keep, words, pa.scalar(BREAK_MARK, pa.string()))


def join_bigrams(bigrams: list[str], spec: SegmenterSpec) -> list[str]:
    """Bigrams "w1 w2" of a no-space language as such languages write them: without the space where a
    word of the language's script meets the other (MetaCLIP 2's merge drops it, so that the entry matches
    as a substring). Two words of other scripts keep their space ("New York" in a Chinese article), as
    an entry "NewYork" could never match."""
    if not bigrams:
        return []
    array = pa.array(bigrams, pa.string())
    junction = pc.match_substring_regex(array, f"{spec.script} | {spec.script}")
    return pc.if_else(junction, pc.replace_substring(array, " ", ""), array).to_pylist()


def counts_language(record: dict, where: str) -> str | None:
    """The language of the counts described by ``record`` (counts.json), None when unknown, after checking
    that they were segmented as this code segments that language: counts of other segmentations (or of
    none) never mix into a list. Counts made before languages were recorded are taken to be of the
    language their dump's name says, unsegmented."""
    language = record["language"] if "language" in record else language_of_dump(record.get("dump") or "")
    expected = spec_for(language)
    recorded = (record.get("segmenter") or {}).get("name")
    if recorded is None and needs_segmenting(language):
        raise MetadataError(
            f"{where} holds counts of {language!r} text that were not segmented into words (whole clauses): "
            f"count the dump again with `count-wikipedia DUMP --language {language}`"
        )
    if (expected.name if expected else None) != recorded:
        now = f"this code segments it with {expected.name}" if expected else "this code does not segment it"
        raise MetadataError(
            f"{where} holds counts of {language!r} segmented by {recorded or 'no segmenter'}, but {now}: "
            "count the dump again"
        )
    return language


def check_entry_language(language: str | None, entry_language: str | None, where: str) -> str | None:
    """The language a list built from counts of ``language`` is of, refusing an ``--entry-language`` that
    contradicts the counts (or that needs words the unsegmented counts do not hold)."""
    if entry_language is None:
        return language
    if language is None:
        if needs_segmenting(entry_language):
            raise MetadataError(
                f"--entry-language {entry_language} is written without spaces, but {where} holds unsegmented "
                f"counts of an unknown language: count the dump again with `count-wikipedia DUMP "
                f"--language {entry_language}`"
            )
        return entry_language
    if normalize_language(language) != normalize_language(entry_language):
        raise MetadataError(
            f"--entry-language {entry_language} contradicts {where}, which holds counts of language {language!r}"
        )
    return language
