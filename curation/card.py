"""A data card of a run at (t, seed), as MetaCLIP published one with each release: what the pool held,
what was kept, how the entries split into head and tail, and how the card was made.

Every number comes from the code `curation stats` runs (``Run.report``: the preview and the keep rule)
or from the per-entry table `stats --write-entry-counts` writes (``Run.entry_table_at``); nothing here
computes a size or a tail share again. ``gather`` reads the run, ``card_figures`` turns what it read
into the card's JSON (pure), and the HTML page is rendered apart from both (dashboard/card.py), so the
JSON and the page cannot disagree.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.plan import Plan
from curation.rundir import ENTRY_LANGUAGE, atomic_file
from curation.summary import Run
from curation.worldwide import zero_t_notes
from studio_common import storage
from studio_common.errors import CurationError

CARD_FORMAT = 1
TOP_ENTRIES = 20  # rows of the most-matched table, and bars of its chart
LISTED_FILES = 20  # pool files named in the provenance (a pool may have thousands; all are counted)
PACKAGES = ("curation-studio", "pyarrow", "numpy", "plotly")
NO_SOURCES = (
    "The run's metadata records no sources: a Parquet metadata with 'entry' and 'sources' columns "
    "(as `curation-metadata build` writes), or one beside the list the run read, gives a table per source."
)


@dataclass(frozen=True)
class CardInputs:
    """What a card is made from, read once from the run (``gather``)."""

    run_dir: str
    report: dict  # Run.report at [t]: what `curation stats --t T --json` prints
    entries: pa.Table  # Run.entry_table_at(t, seed): entry, count, p_e, kept (and language)
    entry_t: np.ndarray | float  # the t each entry is judged at (the keep rule's)
    plan: Plan
    sources: pa.Table | None  # entry (and language), sources: the metadata's Parquet form, if it has one
    command: str
    versions: dict[str, str]
    created: str
    language_notes: tuple[str, ...] = ()  # why a language whose t is 0 keeps nothing (stats' notes)


def versions() -> dict[str, str]:
    """The versions a reader needs to reproduce the card."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def metadata_sources(plan: Plan) -> pa.Table | None:
    """entry (language), sources from the metadata's Parquet form (``PlanMetadata.parquet_form``, as the
    Overview page reads it), when it has a sources column; else None."""
    candidate = plan.metadata.parquet_form()
    if candidate is None:
        return None
    source = storage.open_input(candidate) if storage.is_uri(candidate) else candidate
    try:
        schema = pq.read_schema(source)
    except (OSError, CurationError):
        return None  # the card says the run has no sources; it does not fail for want of them
    if "entry" not in schema.names or "sources" not in schema.names:
        return None
    columns = ["entry", "sources"] + (["language"] if "language" in schema.names else [])
    return pq.read_table(storage.open_input(candidate) if storage.is_uri(candidate) else candidate, columns=columns)


def gather(run: Run, t: float, seed: int | None, command: str) -> CardInputs:
    """Read what the card shows: the stats report at t, the entry table at t and the metadata's sources.
    A run without matches or without thresholds for the seed fails here, with stats' own messages."""
    report = run.report([t], seed=seed, top=TOP_ENTRIES)
    nothing = [row["language"] for row in report["at_t"][0].get("languages", []) if row["t"] == 0]
    notes = zero_t_notes(nothing, run.rule.reference, t, run.rule.by_language) if nothing else []
    return CardInputs(
        run_dir=run.name,
        report=report,
        entries=run.entry_table_at(t, report["seed"]),
        entry_t=run.rule.entry_t(t),
        plan=run.plan,
        sources=metadata_sources(run.plan),
        command=command,
        versions=versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        language_notes=tuple(notes),
    )


def _top_entries(inputs: CardInputs) -> list[dict]:
    """stats' most matched entries, each with its matches kept at t (and, worldwide, its language and t)."""
    kept = inputs.entries.column("kept").to_numpy()
    languages = (
        inputs.entries.column(ENTRY_LANGUAGE).to_pylist() if ENTRY_LANGUAGE in inputs.entries.column_names else None
    )
    entry_t = np.broadcast_to(np.asarray(inputs.entry_t, dtype=np.float64), kept.shape)
    rows = []
    for row in inputs.report["top_entries"]:
        i = row["entry_id"]
        rows.append(
            {
                **row,
                **({"language": languages[i]} if languages is not None else {}),
                "kept": int(kept[i]),
                "t": float(entry_t[i]),
            }
        )
    return rows


def _source_rows(entries: pa.Table, sources: pa.Table) -> list[dict]:
    """Per source: entries matched and never matched, their matches, and the matches kept at t. An entry
    of several sources counts in each; one the sources table lacks, under 'unknown'."""
    keyed = "language" in sources.column_names and ENTRY_LANGUAGE in entries.column_names
    names = sources.column("entry").to_pylist()
    keys = list(zip(names, sources.column("language").to_pylist())) if keyed else names
    of_entry = dict(zip(keys, sources.column("sources").to_pylist()))
    entry_keys = entries.column("entry").to_pylist()
    if keyed:
        entry_keys = list(zip(entry_keys, entries.column(ENTRY_LANGUAGE).to_pylist()))
    tally: dict[str, list[int]] = {}
    for key, count, kept in zip(entry_keys, entries.column("count").to_pylist(), entries.column("kept").to_pylist()):
        for source in of_entry.get(key) or ["unknown"]:
            row = tally.setdefault(source, [0, 0, 0, 0])
            row[0 if count > 0 else 1] += 1
            row[2] += int(count)
            row[3] += int(kept)
    return [
        {"source": source, "matched": m, "unmatched": u, "matches": n, "kept_matches": k}
        for source, (m, u, n, k) in sorted(tally.items())
    ]


def card_figures(inputs: CardInputs) -> dict:
    """The card as JSON: a pure function of what ``gather`` read. ``at_t`` is stats' row at t as it is
    (kept, expected, head/tail, tail share, per language), so the card and `stats --json` agree by
    construction; ``charts`` names the charts the page draws, in order."""
    report, plan = inputs.report, inputs.plan
    (at_t,) = report["at_t"]
    worldwide = "languages" in at_t
    pairs, matched = report["pairs"], report["matched_pairs"]
    sources = _source_rows(inputs.entries, inputs.sources) if inputs.sources is not None else None
    charts = [
        {"id": "counts_by_rank", "title": "Entries by count, before balancing, with t"},
        {"id": "before_after", "title": "Most matched entries: matches before balancing and kept at t"},
    ]
    if sources:
        charts.append({"id": "sources_bars", "title": "Entries per source, matched or not"})
    if worldwide:
        charts.append({"id": "language_bars", "title": "Pairs, matched and kept per language"})
    return {
        "card_format": CARD_FORMAT,
        "run_dir": inputs.run_dir,
        "t": at_t["t"],
        "seed": report["seed"],
        **{k: report[k] for k in ("reference_language", "t_language") if k in report},
        "pool": {"pairs": pairs, "matched_pairs": matched, "matched_share": matched / pairs if pairs else 0.0},
        "at_t": at_t,
        "estimates": report["estimates"],
        "top_entries": _top_entries(inputs),
        "sources": sources,
        "sources_note": None if sources is not None else NO_SOURCES,
        "languages": at_t.get("languages"),
        "language_notes": list(inputs.language_notes),
        "charts": charts,
        "provenance": {
            "pool": {
                "spec": plan.pool,
                "files": len(plan.files),
                "rows": plan.rows,
                "first_files": [f["path"] for f in plan.files[:LISTED_FILES]],
            },
            "metadata": plan.metadata.as_json(),
            "pair_key": plan.pair_key,
            "t": at_t["t"],
            "seed": report["seed"],
            "command": inputs.command,
            "versions": inputs.versions,
            "created": inputs.created,
        },
    }


def check_target(target: str | Path) -> None:
    """Refuse, before the run is read, a place a card cannot be written: a URI other than s3:// or gs://."""
    if storage.is_uri(str(target)) and not str(target).startswith(("s3://", "gs://")):
        raise CurationError(f"a card is written to a local path, s3:// or gs://, not {target}")


def write_text(text: str, target: str | Path) -> str:
    """``text`` to a local path (appearing whole, by rename) or to an s3:// or gs:// URI (made locally,
    then uploaded: an object appears whole too). Returns where it went."""
    if storage.is_uri(str(target)):
        with tempfile.TemporaryDirectory(prefix="card-") as scratch:
            local = Path(scratch) / storage.name_of(str(target))
            local.write_text(text, encoding="utf-8")
            storage.upload(local, str(target))
        return str(target)
    path = Path(target)
    if path.is_dir():
        raise CurationError(f"{target} is a directory; name the card's file, such as {path / 'card.html'}")
    with atomic_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return str(path)


def card_json(figures: dict) -> str:
    return json.dumps(figures, indent=2, ensure_ascii=False) + "\n"
