"""The data card as one HTML page that opens offline: plotly.js inline, the dashboard's own charts
(readable log axes), and the card's figures as curation/card.py made them, nothing computed again.

It lives beside the charts it draws; `curation card` and the Export page both write it with
``write_card``. Text from the run (entries, paths, URIs) is escaped and never made a link, so the page
references nothing outside itself.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from curation.card import card_figures, card_json, check_target, gather, write_text
from curation.summary import Run
from dashboard import charts

TOP_LANGUAGES = 40  # bars of the languages with most pairs, as the Languages page draws them
PLOT_CONFIG = {"displaylogo": False, "responsive": True}  # no plotly logo linking to its site
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.92rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.7rem; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.figures td:first-child { color: #555; } .note { color: #555; font-size: 0.9rem; }
code { font-size: 0.88rem; word-break: break-all; }
"""


@dataclass(frozen=True)
class WrittenCard:
    html: str  # where the page went (a path or a URI)
    json: str | None
    bytes: int  # the page's size
    seconds: float  # reading the run, rendering and writing
    kept: int
    charts: int


FORMATS = {"tail_share": "{:.4f}", "t": "{:g}", "expected_kept": "{:,.1f}"}  # columns not read as counts


def _cell(value: object, key: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in FORMATS and isinstance(value, int | float):
        return FORMATS[key].format(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def _table(rows: list[dict], columns: dict[str, str], numeric: set[str] = frozenset()) -> str:
    """An HTML table of ``rows``: ``columns`` maps each key to its heading."""
    head = "".join(f'<th class="{"n" if k in numeric else ""}">{html.escape(v)}</th>' for k, v in columns.items())
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if k in numeric else ""}">{html.escape(_cell(row.get(k), k))}</td>' for k in columns
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figures_table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class='n'>{html.escape(v)}</td></tr>" for k, v in pairs)
    return f"<table class='figures'><tbody>{rows}</tbody></table>"


def chart(chart_id: str, figures: dict, counts: np.ndarray) -> go.Figure:
    """The dashboard's chart named ``chart_id``, from the card's figures (and every entry's count)."""
    t = figures["t"]
    if chart_id == "counts_by_rank":
        return charts.counts_by_rank(np.sort(counts), [t])
    if chart_id == "before_after":
        top = figures["top_entries"]
        worldwide = figures["languages"] is not None
        names = np.array([f"{r['entry']} ({r['language']})" if worldwide else r["entry"] for r in top], dtype=object)
        own_t = np.array([r["t"] for r in top]) if worldwide else None
        return charts.before_after(
            names, np.array([r["count"] for r in top]), np.array([r["kept"] for r in top]), t, own_t
        )
    if chart_id == "sources_bars":
        return charts.sources_bars(pd.DataFrame(figures["sources"]))
    if chart_id == "language_bars":
        known = pd.DataFrame([r for r in figures["languages"] if r["language"] is not None])
        shown = known.sort_values(["pairs", "language"], ascending=[False, True]).head(TOP_LANGUAGES)
        return charts.language_bars(shown, t)
    raise ValueError(f"no chart {chart_id!r}")


def render_html(figures: dict, counts: np.ndarray) -> str:
    """The card's page: self-contained (plotly.js inline, no fonts, images or scripts from elsewhere)."""
    at, pool, estimates = figures["at_t"], figures["pool"], figures["estimates"]
    t, seed = figures["t"], figures["seed"]
    expected = (
        f"{at['expected_kept']:,.1f} (exact)"
        if at["expected_kept_exact"]
        else f"{at['expected_kept']:,.0f} ± {at['expected_kept_margin']:,.0f} (from a sample of "
        f"{estimates['sampled_pairs']:,} matched pairs, {estimates['interval']})"
    )
    summary = [
        ("Pool size (pairs)", f"{pool['pairs']:,}"),
        ("Matched pairs", f"{pool['matched_pairs']:,} ({pool['matched_share']:.2%} of the pool)"),
        (f"Curated size at t = {t:g}, seed {seed} (exact)", f"{at['kept']:,} ({at['share_of_pool']:.2%} of the pool)"),
        ("Expected size (mean over seeds)", expected),
        ("Head entries (counted t times or more)", f"{at['head_entries']:,} of {at['matched_entries']:,} matched"),
        ("Tail entries (counted fewer than t times)", f"{at['tail_entries']:,}"),
        ("Entries that match nothing", f"{at['unmatched_entries']:,}"),
        ("Tail share p(t) (the tail's share of all matches)", f"{at['tail_share']:.4f}"),
    ]
    if "reference_language" in figures:
        summary.append(("t is the t of", f"{figures['reference_language']} (every language keeps its tail share)"))
    plots = [
        f"<h3>{html.escape(c['title'])}</h3>"
        + pio.to_html(
            chart(c["id"], figures, counts),
            full_html=False,
            include_plotlyjs=False,
            config=PLOT_CONFIG,
            div_id=f"chart-{c['id']}",
        )
        for c in figures["charts"]
    ]
    top_columns = {"entry": "entry", **({"language": "language"} if figures["languages"] else {})}
    top_columns |= {"count": "matches", "kept": f"kept at t = {t:g}"}
    parts = [
        f"<h1>Data card: {html.escape(Path(figures['run_dir']).name or figures['run_dir'])}</h1>",
        f"<p class='sub'>t = {t:g}, seed {seed}; made {html.escape(figures['provenance']['created'])}</p>",
        "<h2>Sizes and balance</h2>",
        _figures_table(summary),
        "<h2>Charts</h2>",
        *plots,
        "<h2>Most matched entries</h2>",
        _table(figures["top_entries"], top_columns, {"count", "kept"}),
        "<p class='note'>kept: the entry's matches among the pairs kept at t (exact, this seed); a pair is "
        "kept if any of its entries keeps it, so a head entry can keep more than t.</p>",
        "<h2>Per source</h2>",
        _table(
            figures["sources"],
            {
                "source": "source",
                "matched": "entries matched",
                "unmatched": "entries never matched",
                "matches": "matches",
                "kept_matches": "matches kept at t",
            },
            {"matched", "unmatched", "matches", "kept_matches"},
        )
        if figures["sources"] is not None
        else f"<p class='note'>{html.escape(figures['sources_note'])}</p>",
    ]
    if figures["languages"] is not None:
        rows = [{**r, "language": r["language"] or "(not in the metadata)"} for r in figures["languages"]]
        parts += [
            "<h2>Per language</h2>",
            _table(
                rows,
                {
                    "language": "language",
                    "t": "t",
                    "tail_share": "p(t)",
                    "pairs": "pairs",
                    "matched_pairs": "matched",
                    "kept": "kept",
                    "expected_kept": "expected kept",
                },
                {"t", "tail_share", "pairs", "matched_pairs", "kept", "expected_kept"},
            ),
            *(f"<p class='note'>{html.escape(note)}</p>" for note in figures["language_notes"]),
        ]
    parts += ["<h2>Provenance</h2>", _provenance(figures["provenance"])]
    title = html.escape(f"Data card: {figures['run_dir']} at t={t:g}, seed {seed}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{STYLE}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )


def _provenance(provenance: dict) -> str:
    """How the card was made, as text (URIs and paths are shown, never linked)."""
    pool, metadata = provenance["pool"], provenance["metadata"]
    listed = "".join(f"<li><code>{html.escape(p)}</code></li>" for p in pool["first_files"])
    more = pool["files"] - len(pool["first_files"])
    rows = [
        ("pool", f"{pool['spec']} ({pool['files']:,} file{'' if pool['files'] == 1 else 's'}, {pool['rows']:,} rows)"),
        ("metadata", f"{metadata['path']} ({metadata['entries']:,} entries)"),
        ("metadata fingerprint", metadata["fingerprint"]),
        ("pair key", provenance["pair_key"]),
        ("t, seed", f"{provenance['t']:g}, {provenance['seed']}"),
        ("command", provenance["command"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in provenance["versions"].items())),
        ("made", provenance["created"]),
    ]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>" for k, v in rows)
    files = f"<p class='note'>pool files:</p><ul>{listed}</ul>" if listed else ""
    files += f"<p class='note'>and {more:,} more</p>" if more > 0 else ""
    return f"<table class='figures'><tbody>{table}</tbody></table>{files}"


def write_card(
    run_dir: str | Path,
    t: float,
    seed: int | None,
    out: str | Path,
    json_out: str | Path | None,
    command: str,
    progress: bool = False,
) -> WrittenCard:
    """Read the run (local, or in a store: read from a local copy), make the figures, render the page and
    write both (JSON first: a page on disk means its JSON is whole too). ``out`` and ``json_out`` may be
    s3:// or gs:// URIs. ``progress``: a bar while a run in a store is copied."""
    started = time.perf_counter()
    for target in (out, json_out):
        if target is not None:
            check_target(target)  # before the run is read (a run in a store is copied first)
    inputs = gather(Run(run_dir, progress=progress), t, seed, command)
    figures = card_figures(inputs)
    page = render_html(figures, inputs.entries.column("count").to_numpy())
    json_where = write_text(card_json(figures), json_out) if json_out is not None else None
    html_where = write_text(page, out)
    return WrittenCard(
        html_where,
        json_where,
        len(page.encode("utf-8")),
        round(time.perf_counter() - started, 3),
        figures["at_t"]["kept"],
        len(figures["charts"]),
    )
