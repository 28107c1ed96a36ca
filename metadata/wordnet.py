"""WordNet synset names, read straight from a WordNet 3.0 database directory (no NLTK, no download).

MetaCLIP's first source is "every WordNet synset", named as NLTK names synsets: the synset's first
lemma, lower-cased, with an adjective's syntactic marker such as ``(a)``, ``(p)`` or ``(ip)`` removed.
We turn underscores into spaces and keep the whole lemma: MetaCLIP's script cuts each name at its first
dot, which turns "st. petersburg" into "st" and ".45 caliber" into an empty string. Parsing the four
``data.*`` files directly takes a fraction of a second; NLTK needs seconds and refuses Debian's layout.

The data file format (wndb(5WN)): header lines start with two spaces; every other line is
``offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt ... | gloss`` with ``w_cnt`` in
hexadecimal and an adjective's marker glued to its word (``out_of_reach(p)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from metadata.loading import MetadataError

PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")  # the files, in the order their names are listed
SYNSET_TYPES = {"noun": {"n"}, "verb": {"v"}, "adj": {"a", "s"}, "adv": {"r"}}
MARKER = re.compile(r"\((?:a|p|ip)\)$")


@dataclass
class WordnetNames:
    """Distinct synset names in file order, with the figures that explain how many there are."""

    entries: list[str]
    per_synset: list[str] = field(default_factory=list)  # one name per synset, repeats included
    synsets: dict[str, int] = field(default_factory=dict)  # synsets read per data file
    markers_stripped: int = 0  # first lemmas that carried an (a)/(p)/(ip) marker
    dotted: list[str] = field(default_factory=list)  # names with a dot, which MetaCLIP would cut

    @property
    def synset_count(self) -> int:
        return sum(self.synsets.values())

    def metaclip_count(self) -> int:
        """How many distinct non-empty names MetaCLIP's cut-at-the-first-dot would give."""
        return len({name.split(".", 1)[0] for name in self.entries} - {""})


def synset_name(lemma: str) -> str:
    """NLTK's name for a synset whose first lemma is ``lemma``, as an entry: marker removed, lower case,
    underscores as spaces, nothing cut."""
    return MARKER.sub("", lemma).lower().replace("_", " ")


def parse_synset_line(line: str) -> tuple[str, str]:
    """(synset type, first lemma) of one data line; ValueError says what is wrong with it."""
    fields = line.split(" ", 5)
    if len(fields) < 6:
        raise ValueError("too few fields")
    offset, lex_filenum, synset_type, word_count, first = fields[:5]
    if len(offset) != 8 or not offset.isdigit():
        raise ValueError(f"offset {offset!r} is not 8 digits")
    if not lex_filenum.isdigit():
        raise ValueError(f"lexicographer file number {lex_filenum!r} is not a number")
    try:
        words = int(word_count, 16)
    except ValueError:
        raise ValueError(f"word count {word_count!r} is not hexadecimal") from None
    if words < 1:
        raise ValueError("a synset needs at least one word")
    if not first:
        raise ValueError("empty first lemma")
    return synset_type, first


def names_from_lines(lines: Iterable[str], part_of_speech: str, source: str = "data") -> tuple[list[str], int, int]:
    """First lemmas' names of the synsets in one data file's lines: (names in order, synsets, markers).

    Raises MetadataError naming the line of the first malformed synset: a broken database is refused,
    not half read."""
    names: list[str] = []
    synsets = markers = 0
    allowed = SYNSET_TYPES[part_of_speech]
    for number, line in enumerate(lines, start=1):
        if line.startswith("  ") or not line.strip():
            continue  # licence header, or the blank end of the file
        try:
            synset_type, lemma = parse_synset_line(line.rstrip("\n"))
            if synset_type not in allowed:
                raise ValueError(f"synset type {synset_type!r} does not belong in data.{part_of_speech}")
        except ValueError as error:
            raise MetadataError(f"wordnet {source} line {number}: malformed synset line ({error})") from None
        synsets += 1
        markers += bool(MARKER.search(lemma))
        names.append(synset_name(lemma))
    return names, synsets, markers


def read_wordnet(directory: str | Path) -> WordnetNames:
    """Every synset's name from ``data.noun``, ``data.verb``, ``data.adj`` and ``data.adv`` in
    ``directory`` (Debian's /usr/share/wordnet or NLTK's wordnet folder), first occurrence kept."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MetadataError(f"wordnet directory not found: {directory}")
    missing = [f"data.{pos}" for pos in PARTS_OF_SPEECH if not (directory / f"data.{pos}").is_file()]
    if missing:
        raise MetadataError(
            f"wordnet directory {directory} lacks {', '.join(missing)} "
            "(expected a WordNet 3.0 database, e.g. /usr/share/wordnet from wordnet-base)"
        )
    result = WordnetNames(entries=[])
    seen: set[str] = set()
    for pos in PARTS_OF_SPEECH:
        path = directory / f"data.{pos}"
        try:
            with path.open(encoding="utf-8") as handle:
                names, synsets, markers = names_from_lines(handle, pos, str(path))
        except UnicodeDecodeError as error:
            raise MetadataError(f"wordnet {path} is not UTF-8 text: {error}") from None
        result.synsets[pos] = synsets
        result.markers_stripped += markers
        result.per_synset += names
        for name in names:
            if name not in seen:
                seen.add(name)
                result.entries.append(name)
    if not result.entries:
        raise MetadataError(f"wordnet directory {directory} holds no synsets (empty data files)")
    result.dotted = [name for name in result.entries if "." in name]
    return result
