"""The writing systems of captions: letters counted per script, for the language decisions that a script
settles better than a statistical identifier (docs/design.md, "Caption languages").

lid.176 reads short Chinese captions as Japanese, Wu or English; but Han text without kana is not
Japanese, Hangul is Korean and Thai script is Thai whatever the model says. Counting a caption's letters
per script is one table lookup per character, done for a whole batch at once in numpy.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

# Code point ranges (inclusive) of each script's letters and marks, by Unicode block. Only letters and
# combining marks count (categories L* and M*): digits, punctuation and symbols of every block say
# nothing about a caption's language.
SCRIPT_RANGES: Mapping[str, tuple[tuple[int, int], ...]] = MappingProxyType(
    {
        "latin": ((0x0041, 0x02AF), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF), (0xAB30, 0xAB6F),
                  (0xFF21, 0xFF5A)),
        "greek": ((0x0370, 0x03FF), (0x1F00, 0x1FFF)),
        "cyrillic": ((0x0400, 0x052F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)),
        "armenian": ((0x0530, 0x058F),),
        "hebrew": ((0x0590, 0x05FF), (0xFB1D, 0xFB4F)),
        "arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
        "thaana": ((0x0780, 0x07BF),),
        "devanagari": ((0x0900, 0x097F), (0xA8E0, 0xA8FF)),
        "bengali": ((0x0980, 0x09FF),),
        "gurmukhi": ((0x0A00, 0x0A7F),),
        "gujarati": ((0x0A80, 0x0AFF),),
        "oriya": ((0x0B00, 0x0B7F),),
        "tamil": ((0x0B80, 0x0BFF),),
        "telugu": ((0x0C00, 0x0C7F),),
        "kannada": ((0x0C80, 0x0CFF),),
        "malayalam": ((0x0D00, 0x0D7F),),
        "sinhala": ((0x0D80, 0x0DFF),),
        "thai": ((0x0E00, 0x0E7F),),
        "lao": ((0x0E80, 0x0EFF),),
        "tibetan": ((0x0F00, 0x0FFF),),
        "myanmar": ((0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F)),
        "georgian": ((0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F)),
        "hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDC)),
        "ethiopic": ((0x1200, 0x139F), (0x2D80, 0x2DDF)),
        "khmer": ((0x1780, 0x17FF), (0x19E0, 0x19FF)),
        "kana": ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x1B000, 0x1B16F)),
        "han": ((0x2E80, 0x2FDF), (0x3005, 0x3005), (0x3100, 0x312F), (0x31A0, 0x31BF), (0x3400, 0x4DBF),
                (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF)),
    }
)  # fmt: skip
SCRIPTS: tuple[str, ...] = tuple(SCRIPT_RANGES)
NO_SCRIPT = len(SCRIPTS)  # the column of characters of no listed script (and of texts without letters)
TABLE_SIZE = 0x32400  # code points past the last listed range belong to no script


@dataclass(frozen=True)
class ScriptLanguages:
    """The lid.176 languages written in a script, and the one a caption in it is taken to be when the
    identifier names a language not written in it (or when it is the script's only language, without
    asking the identifier at all)."""

    languages: frozenset[str]
    default: str

    @property
    def decides_alone(self) -> bool:
        return len(self.languages) == 1


def _written_in(default: str, *others: str) -> ScriptLanguages:
    return ScriptLanguages(frozenset((default, *others)), default)


# Scripts that settle a caption's language, with the lid.176 labels of the languages written in them.
# Latin, Cyrillic, Arabic and Devanagari are shared by too many languages: the identifier decides those.
# Han is decided in ``decide`` (with kana: Japanese); Hangul captions are Korean, and so on.
DECIDING_SCRIPTS: Mapping[str, ScriptLanguages] = MappingProxyType(
    {
        "han": _written_in("zh", "wuu", "yue"),
        "hangul": _written_in("ko"),
        "thai": _written_in("th"),
        "lao": _written_in("lo"),
        "khmer": _written_in("km"),
        "myanmar": _written_in("my"),
        "tibetan": _written_in("bo"),
        "georgian": _written_in("ka", "xmf"),
        "armenian": _written_in("hy"),
        "greek": _written_in("el"),
        "hebrew": _written_in("he", "yi"),
        "thaana": _written_in("dv"),
        "sinhala": _written_in("si"),
        "gurmukhi": _written_in("pa"),
        "gujarati": _written_in("gu"),
        "oriya": _written_in("or"),
        "tamil": _written_in("ta"),
        "telugu": _written_in("te"),
        "kannada": _written_in("kn"),
        "malayalam": _written_in("ml"),
        "bengali": _written_in("bn", "as", "bpy"),
        "ethiopic": _written_in("am"),
    }
)
JAPANESE = "ja"
_HAN, _KANA = SCRIPTS.index("han"), SCRIPTS.index("kana")


@functools.lru_cache(maxsize=1)
def script_table() -> np.ndarray:
    """Script column of every code point below TABLE_SIZE (NO_SCRIPT for non-letters); built once per
    process from the ranges and Unicode's categories (about 0.1 s)."""
    table = np.full(TABLE_SIZE, NO_SCRIPT, dtype=np.uint8)
    for column, ranges in enumerate(SCRIPT_RANGES.values()):
        for start, stop in ranges:
            table[start : stop + 1] = column
    letter = np.fromiter(
        (unicodedata.category(chr(cp))[0] in "LM" for cp in range(TABLE_SIZE)), dtype=bool, count=TABLE_SIZE
    )
    table[~letter] = NO_SCRIPT
    table.flags.writeable = False
    return table


def letter_counts(texts: Sequence[str]) -> np.ndarray:
    """Letters per script of each text: an array of len(texts) rows and len(SCRIPTS) + 1 columns (the
    last one counts letters of no listed script)."""
    counts = np.zeros((len(texts), NO_SCRIPT + 1), dtype=np.int64)
    if not texts:
        return counts
    code_points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    table = script_table()
    script = np.where(code_points < TABLE_SIZE, table[np.minimum(code_points, TABLE_SIZE - 1)], NO_SCRIPT)
    cell = np.repeat(np.arange(len(texts), dtype=np.int64) * (NO_SCRIPT + 1), lengths) + script
    counts += np.bincount(cell, minlength=counts.size).reshape(counts.shape)
    return counts


def dominant_scripts(counts: np.ndarray) -> list[str | None]:
    """Each text's script with most letters, Han and kana counted together as Han (Japanese mixes them);
    None for a text without letters of a listed script. Ties go to the script listed first."""
    grouped = counts[:, :NO_SCRIPT].copy()
    grouped[:, _HAN] += grouped[:, _KANA]
    grouped[:, _KANA] = 0
    best = grouped.argmax(axis=1)
    present = grouped[np.arange(len(grouped)), best] > 0
    return [SCRIPTS[b] if p else None for b, p in zip(best.tolist(), present.tolist())]


def decide(script: str | None, kana: int, identified: str | None) -> str | None:
    """The language a caption's script settles, given what the identifier said (None: not asked), or
    None when the script leaves the identifier's answer standing (or has no say).

    Han with any kana is Japanese; Han without kana is Chinese (lid.176's Chinese varieties stand); a
    script of one language is that language; a script of several keeps the identifier's answer when it
    is one of them, else takes the script's main language."""
    if script is None:
        return None
    if script == "han" and kana:
        return JAPANESE
    written = DECIDING_SCRIPTS.get(script)
    if written is None:
        return None
    if identified is not None and identified in written.languages:
        return None
    return written.default


def needs_identifier(script: str | None, kana: int) -> bool:
    """Whether the identifier's answer can matter for a caption of this dominant script."""
    if script == "han" and kana:
        return False
    written = DECIDING_SCRIPTS.get(script) if script is not None else None
    return written is None or not written.decides_alone
