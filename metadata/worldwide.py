"""Worldwide entry lists (MetaCLIP 2): one table holding every language's entries, each row tagged with
its language code, built by concatenating per-language lists.

A worldwide run matches a caption only against the entries of its own language, so an entry may repeat
across languages (with another id each time) but never within one. Ids are rows: the inputs in the
order given, each in its own order, so the same command always gives the same ids.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metadata.loading import MetadataError, fingerprint, read_raw

# Wikipedia-style codes: en, de, zh, zh-yue, be-tarask, zh_classical, and MetaCLIP 2's catch-all "other".
# Lower case only: the engine compares codes exactly, so "DE" would silently match no caption.
CODE = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
CODE_HINT = "lower-case letters and digits joined by - or _, e.g. en, de, zh-yue, other"


def check_code(code: str) -> str:
    """The code itself, or a MetadataError saying what a language code looks like."""
    if not CODE.fullmatch(code):
        raise MetadataError(f"language code {code!r} is not a Wikipedia-style code ({CODE_HINT})")
    return code


def language_code(text: str) -> str:
    """argparse type for one language code (the error is one line through the parser)."""
    try:
        return check_code(text)
    except MetadataError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class Input:
    """One list to merge: its path and the language to give all its rows (None: keep the file's own
    ``language`` column)."""

    path: str
    code: str | None


def parse_input(spec: str) -> Input:
    """``CODE=PATH``, or ``PATH`` alone for a Parquet file with a ``language`` column. The text before the
    first ``=`` is the code; a path that itself holds ``=`` is given as ``./path`` (or after ``CODE=``)."""
    code, sep, path = spec.partition("=")
    if not sep or "/" in code or "\\" in code:
        return Input(spec, None)
    if not CODE.fullmatch(code):
        raise argparse.ArgumentTypeError(
            f"{spec!r} is not CODE=PATH: {code!r} is not a language code ({CODE_HINT}); "
            f"a path containing '=' is written ./PATH"
        )
    if not path:
        raise argparse.ArgumentTypeError(f"{spec!r} names no file after {code}=")
    return Input(path, code)


@dataclass
class LanguageReport:
    """What the merge did with one language's rows: offered, dropped (empty, repeated), kept."""

    offered: int = 0
    empty: int = 0
    repeated: int = 0


@dataclass
class Worldwide:
    entries: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    sources: list[tuple[str, ...]] | None = None
    reports: dict[str, LanguageReport] = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)

    def info(self) -> dict:
        """What went into the list, for the Parquet file metadata."""
        return {
            "entries": len(self.entries),
            "fingerprint": fingerprint(self.entries, self.languages),
            "languages": language_counts(self.languages),
            "inputs": self.inputs,
            "dropped": {
                code: {"empty": r.empty, "repeated": r.repeated}
                for code, r in self.reports.items()
                if r.empty or r.repeated
            },
        }


def merge_languages(inputs: Sequence[Input], drop_invalid: bool = False) -> Worldwide:
    """Concatenate the lists, tagging rows with their language; refuse (or with ``drop_invalid`` drop)
    empty entries and entries repeated within a language, naming both ids of a repeat."""
    if not inputs:
        raise MetadataError("no input lists given")
    merged = Worldwide()
    all_sources: list[tuple[str, ...]] = []
    any_sources = False
    # language -> entry -> id: plain ints in one dict per language, as a worldwide list has millions of rows
    ids: dict[str, dict[str, int]] = defaultdict(dict)
    starts: list[tuple[int, str]] = []  # the first id of each input, to say where an earlier id came from
    for given in inputs:
        starts.append((len(merged.entries), given.path))
        raw = read_raw(given.path)
        if given.code is None and raw.languages is None:
            name = Path(given.path).name
            raise MetadataError(f"{given.path} has no language column; give its language as CODE=PATH (e.g. de={name})")
        languages = [given.code] * len(raw.entries) if given.code is not None else raw.languages
        sources = raw.sources if raw.sources is not None else [()] * len(raw.entries)
        any_sources = any_sources or raw.sources is not None
        kept = 0
        for row, (entry, language, owners) in enumerate(zip(raw.entries, languages, sources)):
            report = merged.reports.setdefault(language, LanguageReport())
            report.offered += 1
            new_id = len(merged.entries)
            if not entry.strip():
                if drop_invalid:
                    report.empty += 1
                    continue
                raise MetadataError(
                    f"{given.path} entry {row} is empty or only whitespace (it would be id "
                    f"{new_id}, language {language!r}; use --drop-invalid-entries to skip it)"
                )
            seen = ids[language]
            if entry in seen:
                if drop_invalid:
                    report.repeated += 1
                    continue
                at = seen[entry]
                raise MetadataError(
                    f"entry {entry!r} is given twice in language {language!r}: id {at} "
                    f"({_origin(starts, at)}) and id {new_id} ({given.path} entry {row}); "
                    "use --drop-invalid-entries to keep only the first"
                )
            seen[entry] = new_id
            merged.entries.append(entry)
            merged.languages.append(language)
            all_sources.append(tuple(owners))
            kept += 1
        merged.inputs.append(
            {
                "path": str(given.path),
                "language": given.code,  # None: the file's column
                "offered": len(raw.entries),
                "kept": kept,
            }
        )
    merged.sources = all_sources if any_sources else None
    return merged


def _origin(starts: Sequence[tuple[int, str]], at: int) -> str:
    """The file and row of an id, when nothing was dropped (a refusal stops at the first problem)."""
    start, path = next((start, path) for start, path in reversed(starts) if start <= at)
    return f"{path} entry {at - start}"


# --- the per-language table ----------------------------------------------------------------------------------


def language_counts(languages: Sequence[str]) -> dict[str, int]:
    """Entries per language, languages in first-seen order (the order of the list's rows)."""
    return dict(Counter(languages))


def shared_counts(entries: Sequence[str], languages: Sequence[str]) -> dict[str, int]:
    """Per language, its entries that some other language lists too (the same string, another id)."""
    spoken: dict[str, set[str]] = defaultdict(set)
    for entry, language in zip(entries, languages):
        spoken[entry].add(language)
    shared: Counter[str] = Counter(language for entry, language in zip(entries, languages) if len(spoken[entry]) > 1)
    return {language: shared.get(language, 0) for language in language_counts(languages)}


def language_summary(entries: Sequence[str], languages: Sequence[str]) -> dict[str, dict[str, int]]:
    """{language: {"entries", "in_other_languages"}}, for stats and the merge's table."""
    shared = shared_counts(entries, languages)
    return {
        language: {"entries": count, "in_other_languages": shared[language]}
        for language, count in language_counts(languages).items()
    }


def render_language_table(
    entries: Sequence[str], languages: Sequence[str], reports: dict[str, LanguageReport] | None = None
) -> str:
    """Plain text: entries per language, their share, how many other languages list too, and (after a
    merge) what each language was offered and what was dropped."""
    summary = language_summary(entries, languages)
    names = list(summary) + [name for name in reports or {} if name not in summary]
    width = max([len("language")] + [len(n) for n in names]) + 2
    header = f"{'language':<{width}}{'entries':>10}{'share':>8}{'in other languages':>20}"
    if reports is not None:
        header += f"{'offered':>10}{'empty':>8}{'repeats':>9}"
    lines = [header]
    total = len(entries)
    for name in names:
        row = summary.get(name, {"entries": 0, "in_other_languages": 0})
        line = (
            f"{name:<{width}}{row['entries']:>10,}{row['entries'] / max(total, 1):>8.1%}"
            f"{row['in_other_languages']:>20,}"
        )
        if reports is not None and name in reports:
            r = reports[name]
            line += f"{r.offered:>10,}{r.empty:>8,}{r.repeated:>9,}"
        lines.append(line)
    lines.append(f"{'total':<{width}}{total:>10,}   ({len(summary)} languages)")
    return "\n".join(lines)
