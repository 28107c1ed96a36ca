"""``stats`` and ``diff``: what an entry list holds, and how two versions differ.

Pure functions over loaded lists (``Metadata``) that return dicts, plus their plain-text rendering, so
the CLI, the dashboard and tests share them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from metadata.loading import Metadata, fingerprint
from metadata.merge import NUMBERS, render_table, source_summary

WRAPPED = ",.;:?!`"  # the characters MetaCLIP's matching pads with spaces


def never_matches(entry: str) -> bool:
    """True when MetaCLIP's matching can never find the entry: the caption's tabs and line ends become
    spaces and every one of , . ; : ? ! ` is padded with spaces, so an entry holding a tab or a line end,
    or one of those characters without a space on both sides (``U.S.``, ``st. petersburg``), never occurs
    in a spaced caption."""
    if "\t" in entry or "\n" in entry or "\r" in entry:
        return True
    padded = f" {entry} "
    return any(ch in WRAPPED and (padded[i - 1] != " " or padded[i + 1] != " ")
               for i, ch in enumerate(padded) if 0 < i < len(padded) - 1)


def _words(entry: str) -> int:
    return len(entry.split())


def stats(metadata: Metadata, examples: int = 5) -> dict:
    """Counts that tell what kind of list this is."""
    entries = metadata.entries
    words = Counter(min(_words(e), 3) for e in entries)
    unmatchable = [e for e in entries if never_matches(e)]
    result = {
        "entries": len(entries),
        "fingerprint": fingerprint(entries),
        "words": {"1": words.get(1, 0), "2": words.get(2, 0), "3+": words.get(3, 0), "0": words.get(0, 0)},
        "with_upper_case": sum(1 for e in entries if e != e.lower()),
        "numbers_0_99": len(set(NUMBERS).intersection(entries)),
        "never_match": len(unmatchable),
        "never_match_examples": unmatchable[:examples],
        "longest": max(entries, key=len) if entries else None,
        "has_sources": metadata.sources is not None,
    }
    if metadata.sources is not None:
        per, overlaps = source_summary(metadata.sources)
        result["sources"] = per
        result["overlaps"] = [{"a": a, "b": b, "shared": n} for (a, b), n in overlaps.items()]
    return result


def render_stats(path: str, metadata: Metadata, result: dict) -> str:
    lines = [f"{path}: {result['entries']:,} entries ({result['fingerprint']})",
             f"words per entry: 1: {result['words']['1']:,}  2: {result['words']['2']:,}  "
             f"3 or more: {result['words']['3+']:,}",
             f"entries with upper case: {result['with_upper_case']:,}; numbers 0-99 present: "
             f"{result['numbers_0_99']}",
             f"entries that can never match (a , . ; : ? ! ` not spaced on both sides, or a tab/line end): "
             f"{result['never_match']:,}" + (f", e.g. {', '.join(map(repr, result['never_match_examples']))}"
                                              if result["never_match"] else "")]
    if metadata.sources is not None:
        lines += ["", render_table(metadata.sources, len(metadata.entries))]
    else:
        lines.append("sources: not recorded (JSON and text files hold entries only; Parquet from "
                     "`python -m metadata build` records them)")
    return "\n".join(lines)


def diff(a: Metadata, b: Metadata, examples: int = 10) -> dict:
    """Entries added in ``b``, removed from ``a``, moved (same entry, other id), and per source."""
    in_a, in_b = set(a.entries), set(b.entries)
    position_a = {entry: i for i, entry in enumerate(a.entries)}
    added = [e for e in b.entries if e not in in_a]
    removed = [e for e in a.entries if e not in in_b]
    moved = sum(1 for i, e in enumerate(b.entries) if e in position_a and position_a[e] != i)
    result: dict = {
        "a": {"entries": len(a.entries), "fingerprint": fingerprint(a.entries)},
        "b": {"entries": len(b.entries), "fingerprint": fingerprint(b.entries)},
        "identical": a.entries == b.entries,
        "added": len(added), "removed": len(removed), "common": len(in_a & in_b), "moved": moved,
        "added_examples": added[:examples], "removed_examples": removed[:examples],
    }
    if b.sources is not None:
        sources_b = dict(zip(b.entries, b.sources))
        result["added_by_source"] = dict(Counter(s for e in added for s in sources_b[e]))
    if a.sources is not None:
        sources_a = dict(zip(a.entries, a.sources))
        result["removed_by_source"] = dict(Counter(s for e in removed for s in sources_a[e]))
    if a.sources is not None and b.sources is not None:
        changed = [e for e in b.entries if e in sources_a and set(sources_a[e]) != set(sources_b[e])]
        result["sources_changed"] = len(changed)
        result["sources_changed_examples"] = [
            {"entry": e, "a": list(sources_a[e]), "b": list(sources_b[e])} for e in changed[:examples]]
        per_a, _ = source_summary(a.sources)
        per_b, _ = source_summary(b.sources)
        result["per_source"] = {name: {"a": per_a.get(name, {}).get("entries", 0),
                                       "b": per_b.get(name, {}).get("entries", 0)}
                                for name in list(dict.fromkeys([*per_a, *per_b]))}
    return result


def _examples(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


def render_diff(path_a: str, path_b: str, result: dict) -> str:
    lines = [f"a: {path_a}: {result['a']['entries']:,} entries ({result['a']['fingerprint']})",
             f"b: {path_b}: {result['b']['entries']:,} entries ({result['b']['fingerprint']})"]
    if result["identical"]:
        lines.append("identical: same entries in the same order (same ids)")
        return "\n".join(lines)
    lines.append(f"added in b: {result['added']:,}; removed from a: {result['removed']:,}; in both: "
                 f"{result['common']:,}, of which {result['moved']:,} changed id")
    if result["added_examples"]:
        lines.append(f"  added, e.g. {_examples(result['added_examples'])}")
    if result["removed_examples"]:
        lines.append(f"  removed, e.g. {_examples(result['removed_examples'])}")
    if "per_source" in result:
        lines.append("")
        width = max([6] + [len(n) for n in result["per_source"]]) + 2
        lines.append(f"{'source':<{width}}{'a':>10}{'b':>10}{'added':>9}{'removed':>9}")
        for name, row in result["per_source"].items():
            lines.append(f"{name:<{width}}{row['a']:>10,}{row['b']:>10,}"
                         f"{result.get('added_by_source', {}).get(name, 0):>9,}"
                         f"{result.get('removed_by_source', {}).get(name, 0):>9,}")
        lines.append(f"entries in both whose sources changed: {result['sources_changed']:,}")
    else:
        for key, label in (("added_by_source", "added by source"), ("removed_by_source", "removed by source")):
            if result.get(key):
                lines.append(f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in result[key].items()))
    return "\n".join(lines)
