"""``stats`` and ``diff``: what an entry list holds, and how two versions differ.

Pure functions over loaded lists (``Metadata``) that return dicts, plus their plain-text rendering, so
the CLI and the tests share them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from metadata.loading import Metadata, fingerprint
from metadata.merge import NUMBERS, render_table, source_summary
from metadata.worldwide import language_counts, language_summary, render_language_table

WRAPPED = ",.;:?!`"  # the characters MetaCLIP's matching pads with spaces


def never_matches(entry: str) -> bool:
    """True when MetaCLIP's matching can never find the entry: the caption's tabs and line ends become
    spaces and every one of , . ; : ? ! ` is padded with spaces, so an entry holding a tab or a line end,
    or one of those characters without a space on both sides (``U.S.``, ``st. petersburg``), never occurs
    in a spaced caption."""
    if "\t" in entry or "\n" in entry or "\r" in entry:
        return True
    padded = f" {entry} "
    return any(
        ch in WRAPPED and (padded[i - 1] != " " or padded[i + 1] != " ")
        for i, ch in enumerate(padded)
        if 0 < i < len(padded) - 1
    )


def _words(entry: str) -> int:
    return len(entry.split())


def stats(metadata: Metadata, examples: int = 5) -> dict:
    """Counts that tell what kind of list this is."""
    entries = metadata.entries
    words = Counter(min(_words(e), 3) for e in entries)
    unmatchable = [e for e in entries if never_matches(e)]
    result = {
        "entries": len(entries),
        "fingerprint": fingerprint(entries, metadata.languages),
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
    if metadata.languages is not None:
        result["languages"] = language_summary(entries, metadata.languages)
    return result


def render_stats(path: str, metadata: Metadata, result: dict) -> str:
    lines = [
        f"{path}: {result['entries']:,} entries ({result['fingerprint']})",
        f"words per entry: 1: {result['words']['1']:,}  2: {result['words']['2']:,}  "
        f"3 or more: {result['words']['3+']:,}",
        f"entries with upper case: {result['with_upper_case']:,}; numbers 0-99 present: {result['numbers_0_99']}",
        f"entries that can never match (a , . ; : ? ! ` not spaced on both sides, or a tab/line end): "
        f"{result['never_match']:,}"
        + (f", e.g. {', '.join(map(repr, result['never_match_examples']))}" if result["never_match"] else ""),
    ]
    if metadata.sources is not None:
        lines += ["", render_table(metadata.sources, len(metadata.entries))]
    else:
        lines.append(
            "sources: not recorded (JSON and text files hold entries only; Parquet from "
            "`curation-metadata build` records them)"
        )
    if metadata.languages is not None:
        lines += ["", render_language_table(metadata.entries, metadata.languages)]
    return "\n".join(lines)


def _keys(metadata: Metadata, by_language: bool) -> list:
    """What identifies an entry in a diff: its text, or (text, language) when both lists are worldwide,
    since there the same text may be several entries, one per language."""
    if by_language and metadata.languages is not None:
        return list(zip(metadata.entries, metadata.languages))
    return list(metadata.entries)


def _example(key: str | tuple[str, str]) -> str | list[str]:
    return list(key) if isinstance(key, tuple) else key


def diff(a: Metadata, b: Metadata, examples: int = 10) -> dict:
    """Entries added in ``b``, removed from ``a``, moved (same entry, other id), per source, and per
    language when a list has languages (both worldwide: an entry is its text and its language)."""
    by_language = a.languages is not None and b.languages is not None
    keys_a, keys_b = _keys(a, by_language), _keys(b, by_language)
    in_a, in_b = set(keys_a), set(keys_b)
    position_a = {key: i for i, key in enumerate(keys_a)}
    added_rows = [i for i, key in enumerate(keys_b) if key not in in_a]
    removed_rows = [i for i, key in enumerate(keys_a) if key not in in_b]
    moved = sum(1 for i, key in enumerate(keys_b) if key in position_a and position_a[key] != i)
    result: dict = {
        "a": {"entries": len(a.entries), "fingerprint": fingerprint(a.entries, a.languages)},
        "b": {"entries": len(b.entries), "fingerprint": fingerprint(b.entries, b.languages)},
        "identical": keys_a == keys_b and a.languages == b.languages,
        "added": len(added_rows),
        "removed": len(removed_rows),
        "common": len(in_a & in_b),
        "moved": moved,
        "added_examples": [_example(keys_b[i]) for i in added_rows[:examples]],
        "removed_examples": [_example(keys_a[i]) for i in removed_rows[:examples]],
    }
    if b.sources is not None:
        result["added_by_source"] = dict(Counter(s for i in added_rows for s in b.sources[i]))
    if a.sources is not None:
        result["removed_by_source"] = dict(Counter(s for i in removed_rows for s in a.sources[i]))
    if a.sources is not None and b.sources is not None:
        sources_a = dict(zip(keys_a, a.sources))
        changed = [
            (key, owners)
            for key, owners in zip(keys_b, b.sources)
            if key in sources_a and set(sources_a[key]) != set(owners)
        ]
        result["sources_changed"] = len(changed)
        result["sources_changed_examples"] = [
            {"entry": _example(key), "a": list(sources_a[key]), "b": list(owners)} for key, owners in changed[:examples]
        ]
        per_a, _ = source_summary(a.sources)
        per_b, _ = source_summary(b.sources)
        result["per_source"] = {
            name: {"a": per_a.get(name, {}).get("entries", 0), "b": per_b.get(name, {}).get("entries", 0)}
            for name in list(dict.fromkeys([*per_a, *per_b]))
        }
    if a.languages is not None or b.languages is not None:
        result["per_language"] = _per_language(a, b, added_rows, removed_rows)
    return result


def _per_language(a: Metadata, b: Metadata, added_rows: list[int], removed_rows: list[int]) -> dict:
    """Entries, added and removed per language (a list without languages counts as none of them)."""
    count_a = language_counts(a.languages or [])
    count_b = language_counts(b.languages or [])
    added = Counter(b.languages[i] for i in added_rows) if b.languages is not None else Counter()
    removed = Counter(a.languages[i] for i in removed_rows) if a.languages is not None else Counter()
    return {
        name: {
            "a": count_a.get(name, 0),
            "b": count_b.get(name, 0),
            "added": added.get(name, 0),
            "removed": removed.get(name, 0),
        }
        for name in dict.fromkeys([*count_a, *count_b])
    }


def _rows_table(title: str, rows: dict[str, dict[str, int]]) -> list[str]:
    """The per-source and per-language tables of a diff: a, b, added, removed."""
    width = max([len(title)] + [len(n) for n in rows]) + 2
    lines = [f"{title:<{width}}{'a':>10}{'b':>10}{'added':>9}{'removed':>9}"]
    lines += [
        f"{name:<{width}}{row['a']:>10,}{row['b']:>10,}{row['added']:>9,}{row['removed']:>9,}"
        for name, row in rows.items()
    ]
    return lines


def _examples(values: Sequence[str | list[str]]) -> str:
    return ", ".join(f"{v[0]!r} ({v[1]})" if isinstance(v, list) else repr(v) for v in values)


def render_diff(path_a: str, path_b: str, result: dict) -> str:
    lines = [
        f"a: {path_a}: {result['a']['entries']:,} entries ({result['a']['fingerprint']})",
        f"b: {path_b}: {result['b']['entries']:,} entries ({result['b']['fingerprint']})",
    ]
    if result["identical"]:
        lines.append("identical: same entries in the same order (same ids)")
        return "\n".join(lines)
    lines.append(
        f"added in b: {result['added']:,}; removed from a: {result['removed']:,}; in both: "
        f"{result['common']:,}, of which {result['moved']:,} changed id"
    )
    if result["added_examples"]:
        lines.append(f"  added, e.g. {_examples(result['added_examples'])}")
    if result["removed_examples"]:
        lines.append(f"  removed, e.g. {_examples(result['removed_examples'])}")
    if "per_source" in result:
        lines.append("")
        rows = {
            name: {
                **row,
                "added": result.get("added_by_source", {}).get(name, 0),
                "removed": result.get("removed_by_source", {}).get(name, 0),
            }
            for name, row in result["per_source"].items()
        }
        lines += _rows_table("source", rows)
        lines.append(f"entries in both whose sources changed: {result['sources_changed']:,}")
    else:
        for key, label in (("added_by_source", "added by source"), ("removed_by_source", "removed by source")):
            if result.get(key):
                lines.append(f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in result[key].items()))
    if "per_language" in result:
        lines += [""] + _rows_table("language", result["per_language"])
    return "\n".join(lines)
