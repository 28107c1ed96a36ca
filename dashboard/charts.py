"""Plotly figures, built from plain arrays (no Streamlit, no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MAX_POINTS = 2000  # a 500k-entry curve is drawn from this many log-spaced ranks
RAW_COLOUR = "steelblue"  # counts before balancing (t = infinity)
T_COLOURS = ("crimson", "darkorange")  # the first and the second t: one colour per t in every chart


def t_colour(index: int) -> str:
    """The colour of the index-th t (0: the page's t, 1: the second t), the same in every chart."""
    return T_COLOURS[index % len(T_COLOURS)]


def log_axis(title: str) -> dict:
    """A log axis with ticks at powers of ten only, labelled 1, 10, 100, 1k, 10k: plotly otherwise labels
    the 2s and 5s between decades too ("5, 2, 1000, 5, 2")."""
    return dict(type="log", title=title, dtick=1, tickformat="~s")


def _log_ranks(n: int) -> np.ndarray:
    """Indices 0..n-1 thinned to at most MAX_POINTS, evenly spaced on a log scale."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.geomspace(1, n, MAX_POINTS).astype(np.int64) - 1)


def _even_ranks(n: int) -> np.ndarray:
    """Indices 0..n-1 thinned to at most MAX_POINTS, evenly spaced, the last one kept."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_POINTS).astype(np.int64))


def _with_t_lines(figure: go.Figure, ts: list[float], x: list) -> go.Figure:
    """Horizontal lines at each t, drawn as traces (shapes take log10 units on a log axis)."""
    for index, t in enumerate(ts):
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[t] * len(x),
                mode="lines",
                name=f"t = {t:g}",
                hoverinfo="name",
                line=dict(color=t_colour(index), dash="solid" if index == 0 else "dash"),
            )
        )
    return figure


def _matched(sorted_counts: np.ndarray) -> np.ndarray:
    """The counts above zero of counts sorted ascending (a view: sorting 500k counts per rerun costs)."""
    return sorted_counts[int(np.searchsorted(sorted_counts, 0, side="right")) :]


def counts_by_rank(sorted_counts: np.ndarray, ts: list[float]) -> go.Figure:
    """Entries by count (given sorted ascending) on log-log axes, with the threshold(s): head above the
    line, tail below."""
    ordered = _matched(sorted_counts)[::-1]
    ranks = _log_ranks(len(ordered))
    figure = go.Figure(
        go.Scatter(x=ranks + 1, y=ordered[ranks], mode="lines", name="matches per entry", line=dict(color=RAW_COLOUR))
    )
    figure.update_layout(
        xaxis=log_axis("entry rank (most matched first)"),
        yaxis=log_axis("matches"),
        margin=dict(t=30, b=10),
        height=360,
        legend=dict(orientation="h", y=1.12),
    )
    return _with_t_lines(figure, ts, [1, max(len(ordered), 1)])


def cumulative_matches(sorted_counts: np.ndarray, ts: list[float]) -> go.Figure:
    """Cumulative matches over entries by count (given sorted ascending), before balancing and capped
    at each t: MetaCLIP's picture of what balancing does. The capped curves are idealised, the sum of
    min(c, t), what each entry keeps through its own p_e alone; pairs kept through other entries add more."""
    ordered = _matched(sorted_counts)
    ranks = _even_ranks(len(ordered))
    figure = go.Figure(
        go.Scatter(x=ranks + 1, y=np.cumsum(ordered)[ranks], name="t = infinity (raw)", line=dict(color=RAW_COLOUR))
    )
    for index, t in enumerate(ts):
        figure.add_trace(
            go.Scatter(
                x=ranks + 1,
                y=np.cumsum(np.minimum(ordered, t))[ranks],
                name=f"t = {t:g}: sum of min(c, t)",
                line=dict(color=t_colour(index)),
            )
        )
    figure.update_layout(
        xaxis_title="entries, rarest first",
        yaxis_title="cumulative matches",
        margin=dict(t=30, b=10),
        height=360,
        legend=dict(orientation="h", y=1.12),
    )
    return figure


def top_entries(counts: np.ndarray, top: int = 40) -> np.ndarray:
    """Ids of the most matched entries, most matched first (a partial sort: 500k entries are many)."""
    if len(counts) <= top:
        return np.argsort(counts)[::-1]
    best = np.argpartition(counts, -top)[-top:]
    return best[np.argsort(counts[best])[::-1]]


def before_after(names: np.ndarray, counts: np.ndarray, kept: np.ndarray, t: float) -> go.Figure:
    """Entries (most matched first): matches before balancing and among the pairs kept at t."""
    figure = go.Figure(
        [
            go.Bar(x=names, y=counts, name="before", marker_color=RAW_COLOUR),
            go.Bar(x=names, y=kept, name=f"kept at t = {t:g}", marker_color=t_colour(0)),
        ]
    )
    figure.update_layout(
        barmode="group",
        yaxis=log_axis("matches"),
        margin=dict(t=30, b=10),
        height=380,
        legend=dict(orientation="h", y=1.12),
    )
    return _with_t_lines(figure, [t], [names[0], names[-1]] if len(names) else [])


def matches_histogram(histogram: pd.DataFrame) -> go.Figure:
    figure = go.Figure(go.Bar(x=histogram["matches"], y=histogram["pairs"]))
    figure.update_layout(
        xaxis_title="entries matched by a pair", yaxis_title="pairs", margin=dict(t=30, b=10), height=320
    )
    return figure


def sources_bars(table: pd.DataFrame) -> go.Figure:
    """Entries per source, matched or not, side by side on a log axis: a source of 86k entries (WordNet)
    beside one of hundreds would otherwise flatten every other bar (and stacked bars mislead on a log axis)."""
    figure = go.Figure(
        [
            go.Bar(x=table["source"], y=table["matched"], name="matched at least once"),
            go.Bar(x=table["source"], y=table["unmatched"], name="never matched"),
        ]
    )
    figure.update_layout(
        barmode="group",
        yaxis=log_axis("entries"),
        margin=dict(t=30, b=10),
        height=320,
        legend=dict(orientation="h", y=1.12),
    )
    return figure


def language_bars(table: pd.DataFrame, t: float) -> go.Figure:
    """Pairs, matched pairs and pairs kept at t per language (rows in the order given), side by side on
    a log axis: a worldwide pool spans languages of billions of pairs and of hundreds."""
    figure = go.Figure(
        [
            go.Bar(x=table["language"], y=table["pairs"], name="pairs", marker_color="lightgray"),
            go.Bar(x=table["language"], y=table["matched_pairs"], name="matched", marker_color=RAW_COLOUR),
            go.Bar(x=table["language"], y=table["kept"], name=f"kept at t = {t:g}", marker_color=t_colour(0)),
        ]
    )
    figure.update_layout(
        barmode="group",
        yaxis=log_axis("pairs"),
        margin=dict(t=30, b=10),
        height=380,
        legend=dict(orientation="h", y=1.12),
    )
    return figure


def language_t_bars(table: pd.DataFrame, t: float, reference: str) -> go.Figure:
    """Each language's t (rows in the order given), with the reference language's t as a line."""
    figure = go.Figure(
        go.Bar(
            x=table["language"],
            y=table["t"],
            name="t of the language",
            marker_color=[t_colour(0) if code == reference else RAW_COLOUR for code in table["language"]],
        )
    )
    figure.update_layout(yaxis=log_axis("t"), margin=dict(t=30, b=10), height=320, legend=dict(orientation="h", y=1.12))
    return _with_t_lines(figure, [t], [table["language"].iloc[0], table["language"].iloc[-1]] if len(table) else [])
