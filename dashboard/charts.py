"""Plotly figures, built from plain arrays (no Streamlit, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MAX_POINTS = 2000  # a 500k-entry curve is drawn from this many log-spaced ranks
RAW_COLOUR = "steelblue"  # counts before balancing (t = infinity)
T_COLOURS = ("crimson", "darkorange")  # the first and the second t: one colour per t in every chart


def t_colour(index: int) -> str:
    """The colour of the index-th t (0: the page's t, 1: the second t), the same in every chart."""
    return T_COLOURS[index % len(T_COLOURS)]


LINEAR_SPAN = 10.0  # bars whose positive values lie within this factor of each other get a linear axis from 0
HOVER_FORMAT = ",.10~g"  # 1,234,567 and 7.5 and 0.001 alike, in hover labels
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def tick_label(value: float) -> str:
    """A tick's label: 1, 20, 500, 1k, 20k, 1M, 5B, 0.01 (B for billions: "G", plotly's SI prefix, is not
    a count's)."""
    for size, suffix in _SUFFIXES:
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


MANTISSAS = ((1,), (1, 2, 5), tuple(range(1, 10)))  # tick sets, coarsest first: decades, then 2s and 5s, then digits


def _ticks_within(low: float, high: float, mantissas: tuple[int, ...]) -> list[float]:
    """m * 10**k for each m of ``mantissas``, within [low, high] (both positive)."""
    first, last = math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1
    values = (float(f"{m}e{k}") for k in range(first, last + 1) for m in mantissas)
    return [v for v in values if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]


def _tick_at_or_beyond(value: float, mantissas: tuple[int, ...], up: bool) -> float:
    """The nearest m * 10**k at or above (``up``) or at or below ``value``."""
    near = _ticks_within(value / 10, value * 10, mantissas)
    return min(v for v in near if v >= value * (1 - 1e-9)) if up else max(v for v in near if v <= value * (1 + 1e-9))


def log_ticks(low: float, high: float, bars: bool = False) -> list[float]:
    """Ticks bracketing [low, high] (both positive): the powers of ten from the one at or below ``low``
    (``low`` itself with ``bars``: their baseline) to the one at or above ``high``; where those are fewer
    than three, or would leave the data less than half the axis, the 2s and 5s instead, then every digit
    (200, 300, 400). The first tick and the last are the axis's ends, so that the data lies between
    labelled ticks: at least two."""
    for mantissas in MANTISSAS:
        bottom = low if bars else _tick_at_or_beyond(low, mantissas, up=False)
        top = _tick_at_or_beyond(high, mantissas, up=True)
        if top <= bottom * (1 + 1e-9):  # one value on a tick: the next tick up closes the range
            top = _tick_at_or_beyond(bottom * 1.001, mantissas, up=True)
        ticks = _ticks_within(bottom, top, mantissas)
        filled = math.log10(high / low) / math.log10(top / bottom)
        if len(ticks) >= 3 and filled >= 0.5:
            break
    return ticks


def _positive(values: Iterable) -> np.ndarray:
    """The finite values above zero among ``values`` (arrays, lists or scalars, flattened)."""
    parts = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    flat = np.concatenate(parts) if parts else np.zeros(0)
    return flat[np.isfinite(flat) & (flat > 0)]


def value_axis(title: str, *values: object, bars: bool = False) -> dict:
    """The axis of counts (or t) spanning ``values``: a log axis whose title says "(log scale)", with
    labelled ticks at every power of ten the values span, the nearest below and above them included (2s
    and 5s, or digits, where the values span few powers: never fewer than two ticks), its range fixed
    from those ticks.

    With ``bars``, bars start at a stated baseline: 1 (or the power of ten below the smallest value
    under 1), named in the title, since a bar on a log axis otherwise starts wherever the axis does.
    Bars whose values lie within a factor of LINEAR_SPAN get a linear axis from 0 instead: a log
    axis over less than a decade shows bars of nearly one length."""
    positive = _positive(values)
    low, high = (float(positive.min()), float(positive.max())) if len(positive) else (1.0, 1.0)
    if bars and len(positive) and high <= LINEAR_SPAN * low:
        return dict(type="linear", title=title, rangemode="tozero", hoverformat=HOVER_FORMAT)
    if bars:
        low = min(1.0, 10.0 ** math.floor(math.log10(low)))  # the baseline
    ticks = log_ticks(low, high, bars=bars)
    # Room beyond the end ticks, so that their labels are drawn whole (Streamlit's charts have narrow margins).
    pad = (0.01 if bars else 0.04) * (math.log10(ticks[-1]) - math.log10(ticks[0]))
    scale = f"log scale, bars from {tick_label(low)}" if bars else "log scale"
    return dict(
        type="log",
        title=f"{title} ({scale})",
        range=[math.log10(ticks[0]) - (0 if bars else pad), math.log10(ticks[-1]) + pad],
        tickmode="array",
        tickvals=ticks,
        ticktext=[tick_label(v) for v in ticks],
        hoverformat=HOVER_FORMAT,
    )


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
        xaxis=value_axis("entry rank (most matched first)", [1, max(len(ordered), 1)]),
        yaxis=value_axis("matches", ordered, ts),
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


def before_after(
    names: np.ndarray, counts: np.ndarray, kept: np.ndarray, t: float, own_t: np.ndarray | None = None
) -> go.Figure:
    """Entries (most matched first): matches before balancing and among the pairs kept at t, on a log axis
    with bars from 1 (see value_axis). Bars stand at positions 0, 1, 2 ... labelled with the names: two
    entries of one text (dog in en and in de, in a worldwide run) would otherwise share one place. In a
    worldwide run (``own_t``: each entry's language's t) each bar gets its own t mark, not the reference's."""
    positions = np.arange(len(names))
    hover = "%{customdata}<br>%{fullData.name}: %{y}<extra></extra>"
    kept_name = f"kept at t = {t:g}" if own_t is None else "kept at its language's t"
    figure = go.Figure(
        [
            go.Bar(x=positions, y=counts, name="before", marker_color=RAW_COLOUR, customdata=names),
            go.Bar(x=positions, y=kept, name=kept_name, marker_color=t_colour(0), customdata=names),
        ]
    )
    figure.update_traces(hovertemplate=hover)
    figure.update_layout(
        barmode="group",
        xaxis=dict(tickmode="array", tickvals=positions, ticktext=[str(name) for name in names]),
        yaxis=value_axis("matches", counts, kept, t if own_t is None else own_t, bars=True),
        margin=dict(t=30, b=10),
        height=380,
        legend=dict(orientation="h", y=1.12),
    )
    if own_t is not None:
        figure.add_trace(
            go.Scatter(
                x=positions,
                y=own_t,
                mode="markers",
                name="its language's t",
                marker=dict(symbol="line-ew-open", size=28, color=t_colour(0), line=dict(width=2)),
                customdata=names,
                hovertemplate="%{customdata}<br>its language's t: %{y:g}<extra></extra>",
            )
        )
        return figure
    return _with_t_lines(figure, [t], [0, len(names) - 1] if len(names) else [])


def matches_histogram(histogram: pd.DataFrame) -> go.Figure:
    figure = go.Figure(go.Bar(x=histogram["matches"], y=histogram["pairs"]))
    figure.update_layout(
        xaxis_title="entries matched by a pair", yaxis_title="pairs", margin=dict(t=30, b=10), height=320
    )
    return figure


def sources_bars(table: pd.DataFrame) -> go.Figure:
    """Entries per source, matched or not, side by side on a log axis (bars from 1; see value_axis): a source
    of 86k entries (WordNet) beside one of hundreds would otherwise flatten every other bar (and stacked bars
    mislead on a log axis)."""
    figure = go.Figure(
        [
            go.Bar(x=table["source"], y=table["matched"], name="matched at least once"),
            go.Bar(x=table["source"], y=table["unmatched"], name="never matched"),
        ]
    )
    figure.update_layout(
        barmode="group",
        yaxis=value_axis("entries", table["matched"], table["unmatched"], bars=True),
        margin=dict(t=30, b=10),
        height=320,
        legend=dict(orientation="h", y=1.12),
    )
    return figure


def language_bars(table: pd.DataFrame, t: float) -> go.Figure:
    """Pairs, matched pairs and pairs kept at t per language (rows in the order given), side by side on
    a log axis (bars from 1; see value_axis): a worldwide pool spans languages of billions of pairs and of
    hundreds."""
    figure = go.Figure(
        [
            go.Bar(x=table["language"], y=table["pairs"], name="pairs", marker_color="lightgray"),
            go.Bar(x=table["language"], y=table["matched_pairs"], name="matched", marker_color=RAW_COLOUR),
            go.Bar(x=table["language"], y=table["kept"], name="kept at its language's t", marker_color=t_colour(0)),
        ]
    )
    figure.update_layout(
        barmode="group",
        yaxis=value_axis("pairs", table["pairs"], table["matched_pairs"], table["kept"], bars=True),
        margin=dict(t=30, b=10),
        height=380,
        legend=dict(orientation="h", y=1.12),
    )
    return figure


def coverage_curve(covered: np.ndarray, unmatched_pairs: int, k: int | None = None) -> go.Figure:
    """Unmatched pairs the top k n-grams of a gaps table would match if added, against k (``covered``
    is the table's cumulative column, rank order), below the ceiling of every unmatched pair read: how
    fast the returns fall. Linear axes from 0, counts with thousands separators; ``k`` is marked."""
    covered = np.asarray(covered, dtype=np.int64)
    ranks = _even_ranks(len(covered))
    share = covered[ranks] / max(unmatched_pairs, 1)
    figure = go.Figure(
        go.Scatter(
            x=ranks + 1,
            y=covered[ranks],
            customdata=share,
            name="covered by the top k",
            line=dict(color=RAW_COLOUR),
            hovertemplate="top %{x:,}: %{y:,} unmatched pairs (%{customdata:.1%})<extra></extra>",
        )
    )
    ends = [1, max(len(covered), 1)]
    figure.add_trace(
        go.Scatter(
            x=ends,
            y=[unmatched_pairs] * 2,
            name=f"all unmatched pairs read ({unmatched_pairs:,})",
            mode="lines",
            line=dict(color="gray", dash="dot"),
            hoverinfo="skip",
        )
    )
    if k is not None and len(covered):
        figure.add_trace(
            go.Scatter(
                x=[k, k],
                y=[0, int(covered[k - 1])],
                name=f"top {k:,}: {int(covered[k - 1]):,}",
                mode="lines",
                line=dict(color=t_colour(0), dash="dash"),
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        xaxis=dict(title="k: the top k n-grams added as entries", tickformat=",d", rangemode="tozero"),
        yaxis=dict(
            title="unmatched pairs they would match",
            tickformat=",d",
            rangemode="tozero",
            range=[0, max(unmatched_pairs, 1) * 1.05],
        ),
        margin=dict(t=30, b=10),
        height=360,
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
    figure.update_layout(
        yaxis=value_axis("t", table["t"], t, bars=True),
        margin=dict(t=30, b=10),
        height=320,
        legend=dict(orientation="h", y=1.12),
    )
    return _with_t_lines(figure, [t], [table["language"].iloc[0], table["language"].iloc[-1]] if len(table) else [])


def counts_scatter(
    count_a: np.ndarray, count_b: np.ndarray, names: np.ndarray, t_a: float | None = None, t_b: float | None = None
) -> go.Figure:
    """Each entry's matches in run A against run B (Compare), on log-log axes spanning both runs alike, with
    the diagonal of equal counts: an entry off it matched more in one run. Every count must be positive
    (a count of 0 has no place on a log axis: the caller leaves those entries out and says how many).
    ``t_a`` and ``t_b``: each run's t as a line (None in a worldwide run, whose t is per language), so
    the quadrants are head and tail in each run. Hover: the entry and both counts."""
    count_a, count_b = np.asarray(count_a, dtype=np.float64), np.asarray(count_b, dtype=np.float64)
    ts = [t for t in (t_a, t_b) if t is not None]
    span = _positive([count_a, count_b, ts])
    ends = [float(span.min()), float(span.max())] if len(span) else [1.0, 10.0]
    figure = go.Figure(
        go.Scattergl(
            x=count_a,
            y=count_b,
            mode="markers",
            name="entries",
            customdata=names,
            marker=dict(color=RAW_COLOUR, size=5, opacity=0.6),
            hovertemplate="%{customdata}<br>matches in A: %{x:,}<br>matches in B: %{y:,}<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=ends, y=ends, mode="lines", name="equal counts", line=dict(color="gray", dash="dot"), hoverinfo="skip"
        )
    )
    for index, (t, which) in enumerate(((t_a, "A"), (t_b, "B"))):
        if t is not None:  # A's t a vertical line (its x), B's a horizontal one (its y); drawn as traces
            x, y = ([t, t], ends) if which == "A" else (ends, [t, t])
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    name=f"t = {t:g} in {which}",
                    hoverinfo="name",
                    line=dict(color=t_colour(0), dash="solid" if index == 0 else "dash"),
                )
            )
    figure.update_layout(
        xaxis=value_axis("matches in A", ends),
        yaxis=value_axis("matches in B", ends),
        margin=dict(t=30, b=10),
        height=460,
        legend=dict(orientation="h", y=1.1),
    )
    return figure
