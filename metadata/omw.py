"""WordNet lemmas of other languages from the Open Multilingual Wordnet (OMW) tab files, as MetaCLIP 2 uses.

MetaCLIP 2's WordNet source for a language other than English is every lemma name NLTK gives for it
from OMW 1.4 (``ss.lemma_names(lang)`` over ``wn.all_synsets(lang=lang)``). No package ships that data;
the tab files are read here straight from a directory: a checkout of the public omw-data repository
(``wns/``) or NLTK's ``omw-1.4`` folder. Each holds ``<project>/wn-data-<omw code>.tab``: a header
``# name<TAB>lang<TAB>url<TAB>license``, then ``offset-pos<TAB>lang:lemma<TAB>lemma`` lines (also
definitions and examples, which are skipped; some files write the label as plain ``lemma``).

Lemmas are read as NLTK reads them (lines with at least three fields, the value stripped, the label's
language that of the file or none) and normalised as MetaCLIP 2 does: underscores become spaces and every
``+`` goes (the Chinese Open Wordnet marks morphemes with it: ``50周年+的``); case is kept. Entries are
the distinct lemmas in file order (MetaCLIP 2 sorts them; the set is the same). Unlike NLTK we do not
drop the few lemmas whose offset is missing from the English WordNet 3.0, which needs that database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metadata.loading import MetadataError

# Wikipedia code -> OMW code: MetaCLIP 2's 30 languages (its wordnet_to_wiki). MetaCLIP 2 files OMW's
# "als" under Wikipedia "als" (Alemannic); OMW's als is Albanet, an Albanian wordnet, so it is "sq" here.
WIKI_TO_OMW = {
    "ar": "arb",
    "bg": "bul",
    "ca": "cat",
    "da": "dan",
    "el": "ell",
    "es": "spa",
    "eu": "eus",
    "fi": "fin",
    "fr": "fra",
    "gl": "glg",
    "he": "heb",
    "hr": "hrv",
    "id": "ind",
    "is": "isl",
    "it": "ita",
    "ja": "jpn",
    "lt": "lit",
    "ms": "zsm",
    "nl": "nld",
    "nn": "nno",
    "no": "nob",
    "pl": "pol",
    "pt": "por",
    "ro": "ron",
    "sk": "slk",
    "sl": "slv",
    "sq": "als",
    "sv": "swe",
    "th": "tha",
    "zh": "cmn",
}


def omw_code(language: str) -> str:
    """The OMW code of a Wikipedia language code, or a one-line refusal saying why there is none."""
    if language in WIKI_TO_OMW:
        return WIKI_TO_OMW[language]
    if language == "als":
        raise MetadataError(
            "no OMW wordnet for 'als' (Alemannic Wikipedia): OMW's als is Albanet, an Albanian wordnet, "
            "which is --wordnet-language sq (MetaCLIP 2 files it under als)"
        )
    if language == "en":
        raise MetadataError("English WordNet is --wordnet DIR (a WordNet 3.0 database), not --omw")
    raise MetadataError(
        f"no OMW wordnet for language {language!r}; MetaCLIP 2 uses OMW for {', '.join(sorted(WIKI_TO_OMW))}"
    )


@dataclass
class OmwLemmas:
    """A language's lemmas from one tab file, with what the build report records about where they came from."""

    language: str
    code: str
    path: Path
    header: dict[str, str]
    per_line: list[str] = field(default_factory=list)  # one per lemma line, normalised, repeats included
    lines: int = 0
    plus_removed: int = 0  # lemmas that held a "+"
    other_files: list[str] = field(default_factory=list)  # further files for the code, not read

    @property
    def entries(self) -> list[str]:
        return list(dict.fromkeys(name for name in self.per_line if name))

    def notes(self) -> dict:
        return {
            "file": str(self.path),
            "language": self.language,
            "omw_code": self.code,
            "wordnet": self.header.get("name"),
            "url": self.header.get("url"),
            "license": self.header.get("license"),
            "lines": self.lines,
            "lemma_lines": len(self.per_line),
            "distinct_lemmas": len(self.entries),
            "plus_removed": self.plus_removed,
            "other_files_for_the_code": self.other_files,
        }


def normalize_lemma(value: str) -> str:
    """MetaCLIP 2's name for an OMW lemma: NLTK's stored form (stripped, spaces as underscores) with
    underscores as spaces and "+" removed; case kept."""
    return value.strip().replace("_", " ").replace("+", "").strip()


def find_tab(directory: str | Path, code: str) -> tuple[Path, list[Path]]:
    """The ``wn-data-<code>.tab`` under ``directory`` (searched recursively), and any others. With several
    (OMW has two Italian wordnets), the first by path is read, as NLTK gives the plain code to the first
    project folder in name order (``ita/``) and calls the others ``ita_iwn``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MetadataError(f"OMW directory not found: {directory}")
    found = sorted(directory.rglob(f"wn-data-{code}.tab"), key=lambda path: path.relative_to(directory).as_posix())
    if not found:
        raise MetadataError(
            f"no wn-data-{code}.tab under {directory} (expected the omw-data repository's wns/ folder or "
            "NLTK's omw-1.4 folder)"
        )
    return found[0], found[1:]


def parse_header(line: str) -> dict[str, str]:
    fields = line.lstrip("#").strip("\n").split("\t")
    return {key: value.strip() for key, value in zip(("name", "lang", "url", "license"), fields)}


def read_lemmas(lines, code: str, source: str) -> tuple[dict[str, str], list[str], int, int]:
    """(header, normalised lemma per lemma line, lines, lemmas with a "+") of one tab file's lines."""
    header: dict[str, str] = {}
    lemmas: list[str] = []
    count = plus = 0
    for number, line in enumerate(lines, start=1):
        count += 1
        if line.startswith("#"):
            if number == 1:
                header = parse_header(line)
            continue
        fields = line.strip().split("\t")
        if len(fields) < 3:
            if line.strip():
                raise MetadataError(f"OMW {source} line {number}: expected offset-pos, label and value")
            continue
        label = fields[1].split(":")
        if label[-1] != "lemma" or (len(label) > 1 and label[0] != code):
            continue
        plus += "+" in fields[-1]
        lemmas.append(normalize_lemma(fields[-1]))
    return header, lemmas, count, plus


def read_omw(directory: str | Path, language: str) -> OmwLemmas:
    """The lemmas of Wikipedia language ``language`` from the OMW tab files under ``directory``."""
    code = omw_code(language)
    path, others = find_tab(directory, code)
    try:
        with path.open(encoding="utf-8") as handle:
            header, lemmas, lines, plus = read_lemmas(handle, code, str(path))
    except UnicodeDecodeError as error:
        raise MetadataError(f"OMW {path} is not UTF-8 text: {error}") from None
    if header.get("lang") not in (None, code):
        raise MetadataError(f"OMW {path} says its language is {header['lang']!r}, not {code!r}")
    result = OmwLemmas(language, code, path, header, lemmas, lines, plus, [str(p) for p in others])
    if not result.entries:
        raise MetadataError(f"OMW {path} holds no {code} lemmas (empty source)")
    return result
