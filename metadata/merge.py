"""Merging sources into one entry list, keeping every source of every entry.

Order is stable: sources in the order given (the build uses wordnet, wiki_unigram, wiki_bigram,
wiki_title, extra, numbers), each source's entries in its own order (file order for WordNet, most
frequent or most viewed first for Wikipedia, file order for extra entries). An entry takes the
position of its first appearance and lists all its sources, so ids never depend on a set's hashing.

Dropped, and counted per source: empty (or whitespace-only) entries and entries made only of
punctuation (MetaCLIP dropped single punctuation characters; "--" or "..." are no better), and repeats
inside a source. A budget keeps a source's first N entries after that cleaning; the rest are counted as
over budget and do not get the source's name.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from metadata.loading import MetadataError

NUMBERS = [str(number) for number in range(100)]
SOURCE_ORDER = ("wordnet", "wiki_unigram", "wiki_bigram", "wiki_title", "extra", "numbers")
_ASCII_PUNCTUATION = set(string.punctuation)


def is_punctuation_only(entry: str) -> bool:
    """True for entries with no character other than whitespace, ASCII punctuation and symbols, and
    Unicode punctuation (an emoji or a letter keeps the entry)."""
    return all(ch.isspace() or ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P") for ch in entry)


@dataclass
class Source:
    """One source's entries in its own order, with notes for the build report."""

    name: str
    entries: list[str]
    notes: dict = field(default_factory=dict)


@dataclass
class SourceReport:
    name: str
    offered: int = 0
    empty: int = 0
    punctuation: int = 0
    repeated: int = 0
    over_budget: int = 0
    kept: int = 0  # entries that carry this source
    new: int = 0  # of them, entries no earlier source had (their position is this source's)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Merged:
    entries: list[str]
    sources: list[tuple[str, ...]]
    reports: list[SourceReport]

    def as_dict(self) -> dict:
        return {"entries": len(self.entries), "sources": [r.as_dict() for r in self.reports]}


def clean(entries: Sequence[str], report: SourceReport) -> list[str]:
    """Entries without empties, punctuation-only entries and in-source repeats, order kept."""
    seen: set[str] = set()
    kept: list[str] = []
    for entry in entries:
        report.offered += 1
        if not entry.strip():
            report.empty += 1
        elif is_punctuation_only(entry):
            report.punctuation += 1
        elif entry in seen:
            report.repeated += 1
        else:
            seen.add(entry)
            kept.append(entry)
    return kept


def parse_budgets(items: Sequence[str]) -> dict[str, int]:
    """``SOURCE=N`` strings into a dict; bad syntax is a MetadataError."""
    budgets: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise MetadataError(f"budget {item!r} is not SOURCE=N (e.g. wiki_title=50000)")
        budgets[name.strip()] = int(value)
    return budgets


def merge(sources: Sequence[Source], budgets: Mapping[str, int] | None = None) -> Merged:
    """One list, first appearance wins the position, every source recorded (see the module docstring)."""
    budgets = dict(budgets or {})
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise MetadataError(f"a source is given twice: {', '.join(names)}")
    unknown = sorted(set(budgets) - set(names))
    if unknown:
        raise MetadataError(
            f"budget for a source that is not part of this build: {', '.join(unknown)} "
            f"(sources: {', '.join(names) or 'none'})"
        )
    position: dict[str, int] = {}
    entries: list[str] = []
    owners: list[list[str]] = []
    reports: list[SourceReport] = []
    for source in sources:
        report = SourceReport(source.name)
        kept = clean(source.entries, report)
        budget = budgets.get(source.name)
        if budget is not None and len(kept) > budget:
            report.over_budget = len(kept) - budget
            kept = kept[:budget]
        report.kept = len(kept)
        for entry in kept:
            at = position.get(entry)
            if at is None:
                position[entry] = len(entries)
                entries.append(entry)
                owners.append([source.name])
                report.new += 1
            else:
                owners[at].append(source.name)
        reports.append(report)
    return Merged(entries, [tuple(o) for o in owners], reports)


# --- the per-source table (the paper's Table 1, with overlaps) ---------------------------------------------


def source_summary(sources: Sequence[Sequence[str]]) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """Per source: entries that carry it, entries only it has, entries whose position it gave (it is
    their first source); and for each pair of sources the entries they share.

    Returns ({source: {"entries", "only", "first"}}, {(a, b): shared}), sources in first-seen order."""
    per: dict[str, dict[str, int]] = {}
    overlaps: dict[tuple[str, str], int] = {}
    for owners in sources:
        for name in owners:
            row = per.setdefault(name, {"entries": 0, "only": 0, "first": 0})
            row["entries"] += 1
        if owners:
            per[owners[0]]["first"] += 1
            if len(owners) == 1:
                per[owners[0]]["only"] += 1
        for a, b in combinations(owners, 2):
            overlaps[(a, b)] = overlaps.get((a, b), 0) + 1
    order = {name: i for i, name in enumerate(per)}
    normalised: dict[tuple[str, str], int] = {}
    for (a, b), count in overlaps.items():
        key = (a, b) if order[a] <= order[b] else (b, a)
        normalised[key] = normalised.get(key, 0) + count
    return per, normalised


def render_table(sources: Sequence[Sequence[str]], total: int, reports: Sequence[SourceReport] | None = None) -> str:
    """Plain-text table: entries per source, how many only it has, overlaps with every other source."""
    per, overlaps = source_summary(sources)
    names = [r.name for r in reports] if reports else []
    names += [name for name in per if name not in names]
    width = max([len("source")] + [len(n) for n in names]) + 2
    lines = []
    header = f"{'source':<{width}}{'entries':>10}{'only here':>11}{'listed first':>14}"
    if reports:
        header += f"{'offered':>11}{'dropped':>9}{'repeats':>9}{'over budget':>13}"
    lines.append(header)
    by_name = {r.name: r for r in reports or []}
    for name in names:
        row = per.get(name, {"entries": 0, "only": 0, "first": 0})
        line = f"{name:<{width}}{row['entries']:>10,}{row['only']:>11,}{row['first']:>14,}"
        if name in by_name:
            r = by_name[name]
            line += f"{r.offered:>11,}{r.empty + r.punctuation:>9,}{r.repeated:>9,}{r.over_budget:>13,}"
        lines.append(line)
    lines.append(f"{'total':<{width}}{total:>10,}")
    if len(names) > 1:
        lines.append("")
        lines.append("overlaps (entries in both sources):")
        cell = max(8, max(len(n) for n in names) + 1)
        lines.append(" " * width + "".join(f"{n:>{cell}}" for n in names))
        for a in names:
            cells = []
            for b in names:
                if a == b:
                    count = per.get(a, {}).get("entries", 0)
                else:
                    count = overlaps.get((a, b), overlaps.get((b, a), 0))
                cells.append(f"{count:>{cell},}")
            lines.append(f"{a:<{width}}" + "".join(cells))
    return "\n".join(lines)
