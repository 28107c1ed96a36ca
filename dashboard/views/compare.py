"""Compare: the open run (A) beside another run (B) at t: what an edit of the metadata did, or what one
metadata does on two pools (curation/compare.py; `curation compare` on the command line)."""

import numpy as np
import pandas as pd
import streamlit as st

from curation import compare
from dashboard import charts, data, messages
from studio_common.errors import CurationError

SCATTER_POINTS = 20_000  # the most matched entries drawn; plotly in a browser slows beyond that
TABLE_ROWS = 10_000  # rows sent to each table; `curation compare --json` lists every entry

st.title("Compare")
root, token, seed, _ = data.page_context()


def _typed() -> None:
    st.session_state.compare_b = st.session_state.compare_b_box.strip()


def _picked() -> None:
    if st.session_state.compare_recent:
        st.session_state.compare_b = st.session_state.compare_recent


# Run B is a plain session key, edited through its own box (set from it on every run): Streamlit drops a
# widget's state on pages that do not draw it, and B must stay chosen while the user looks elsewhere.
st.session_state.compare_b = st.session_state.get("compare_b", "")
st.session_state.compare_b_box = st.session_state.compare_b
left, right = st.columns([3, 2])
left.text_input(
    "Run B",
    key="compare_b_box",
    on_change=_typed,
    help="The run to compare the open run (A, in the sidebar) with: another metadata on the same pool, or the "
    "same metadata on another pool; a local path or s3://bucket/prefix. Press Enter to compare.",
)
right.selectbox(
    "Recent runs",
    [""] + data.recent_runs(),
    key="compare_recent",
    on_change=_picked,
    format_func=lambda p: p or "choose a recent run as B",
)
st.caption(messages.plain(f"A is the open run: {root} (seed {seed})."))
if not st.session_state.compare_b:
    st.info("Choose run B above: a run directory typed or picked from the recent runs.")
    st.stop()
try:
    root_b = data.check_run_dir(st.session_state.compare_b)  # the sidebar's checks, the data roots among them
except CurationError as error:
    messages.error(error)
    st.stop()
token_b = data.run_token(root_b)
seeds_b = data.seeds(str(root_b), token_b)
recorded = data.record(str(root_b), token_b).get("parameters", {}).get("seed")
a, b = st.columns([1, 1])
data.t_input(a, "t", "t")
seed_b = b.selectbox(
    "Seed of B",
    seeds_b,
    index=seeds_b.index(recorded) if recorded in seeds_b else 0,
    key=f"compare_seed_b:{root_b}",  # one choice per run B: another B starts at its own seed
    help="Seeds with keep thresholds in run B; A's seed is the sidebar's.",
)
t = data.current_t()
if t is None:
    st.stop()
try:
    data.ensure_preview(root_b, int(seed_b))
    comparison = data.comparison(str(root), token, seed, str(root_b), token_b, int(seed_b), t)
except CurationError as error:
    messages.error(error)
    st.stop()
st.caption(messages.plain(f"B: {root_b} (seed {seed_b})."))

FIGURES_ALL = compare.FIGURES  # (field, label): every figure, for the table
FIGURES = {  # label: (field, help): the metrics
    "Kept pairs": ("kept", "Exact: pairs whose keep threshold is below t, for the run's seed."),
    "Matched pairs": ("matched_pairs", "Pairs matching at least one entry."),
    "Tail share p(t)": (
        "tail_share",
        "The share of matches held by entries matched fewer than t times (a worldwide run: its reference language's).",
    ),
    "Head entries": ("head_entries", "Entries matched at least t times (each at its language's t, worldwide)."),
    "Metadata entries": ("entries", "Entries of the run's metadata, matched or not."),
}


def _shown(value: float, sign: str = "") -> str:
    return f"{value:{sign}.4f}" if isinstance(value, float) else f"{value:{sign},}"


for name, side, other in (("A", comparison.a, None), ("B", comparison.b, comparison.a)):
    for column, (label, (field, tip)) in zip(st.columns(len(FIGURES)), FIGURES.items()):
        value = getattr(side, field)
        delta = None
        if other is not None and value != getattr(other, field):
            delta = _shown(value - getattr(other, field), "+")
        column.metric(f"{label} ({name})", _shown(value), delta=delta, delta_color="off", help=tip)
with st.expander("Every figure side by side"):
    rows = [(label, getattr(comparison.a, field), getattr(comparison.b, field)) for field, label in FIGURES_ALL]
    st.dataframe(
        pd.DataFrame(
            {
                "figure": [label for label, _, _ in rows],
                "A": [_shown(x) for _, x, _ in rows],
                "B": [_shown(y) for _, _, y in rows],
                "B - A": [_shown(y - x, "+") if y != x else "0" for _, x, y in rows],
            }
        ),
        hide_index=True,
    )
if comparison.a.languages is not None and comparison.b.languages is not None:
    st.subheader("Per language")
    codes = sorted(set(comparison.a.languages) | set(comparison.b.languages))
    st.dataframe(
        pd.DataFrame(
            {
                "language": codes,
                "t in A": [comparison.a.languages.get(c, {}).get("t") for c in codes],
                "t in B": [comparison.b.languages.get(c, {}).get("t") for c in codes],
                "kept in A": [comparison.a.languages.get(c, {}).get("kept") for c in codes],
                "kept in B": [comparison.b.languages.get(c, {}).get("kept") for c in codes],
            }
        ),
        hide_index=True,
        column_config=data.thousands(["t in A", "t in B", "kept in A", "kept in B"]),
        placeholder="–",
    )
    st.caption(
        f"p(t) of a worldwide run is its reference language's ({comparison.a.reference_language} in A, "
        f"{comparison.b.reference_language} in B); every other language's t keeps the same tail share."
    )

st.subheader("Entries")
keys = list(comparison.keys)
only_a, only_b, both, flips = comparison.only_in_a(), comparison.only_in_b(), comparison.in_both(), comparison.flips()
ENTRY_HELP = "Entries are joined by their text" + (" and language" if len(keys) > 1 else "") + ", never by id."
columns = st.columns(4)
columns[0].metric("Only in A", f"{len(only_a):,}", help=ENTRY_HELP)
columns[1].metric("Only in B", f"{len(only_b):,}", help=ENTRY_HELP)
columns[2].metric("In both", f"{len(both):,}", help=ENTRY_HELP)
columns[3].metric(
    "Change side at t",
    f"{len(flips):,}",
    help="Entries of both runs that are head in one and tail (or unmatched) in the other at t, each run's "
    "entry at its own t: tail 0 < c < t, head c >= t.",
)

positive = both[(both["count_a"] > 0) & (both["count_b"] > 0)]
left_out = len(both) - len(positive)
drawn = positive.head(SCATTER_POINTS)  # most matched first (the larger of the two counts)
names = drawn["entry"].to_numpy(dtype=object)
if len(keys) > 1:
    names = np.array([f"{e} ({lang})" for e, lang in zip(drawn["entry"], drawn["language"])], dtype=object)
one_t = comparison.a.languages is None
st.plotly_chart(
    charts.counts_scatter(
        drawn["count_a"].to_numpy("float64"),
        drawn["count_b"].to_numpy("float64"),
        names,
        t if one_t else None,
        t if one_t else None,
    )
)
shown = f"{len(drawn):,} entries" + (
    f" (the {SCATTER_POINTS:,} most matched of {len(positive):,})" if len(positive) > len(drawn) else ""
)
zero = (
    f"{left_out:,} entries counted 0 in A or in B are left out: a count of 0 has no place on a log axis."
    if left_out
    else "No entry of both runs is counted 0 in either."
)
per_language = "" if one_t else " Each language has its own t in a worldwide run: no t line is drawn."
st.caption(messages.plain(f"Matches of each entry in both runs: {shown}. {zero}{per_language}"))


def _table(frame: pd.DataFrame, columns: list[str], empty: str) -> None:
    if not len(frame):
        messages.info(empty)
        return
    st.dataframe(
        frame[keys + columns].head(TABLE_ROWS),
        hide_index=True,
        column_config={
            "count_a": st.column_config.NumberColumn("count in A", format="localized"),
            "count_b": st.column_config.NumberColumn("count in B", format="localized"),
            "side_a": st.column_config.TextColumn("in A at t"),
            "side_b": st.column_config.TextColumn("in B at t"),
        },
    )
    if len(frame) > TABLE_ROWS:
        st.caption(f"The {TABLE_ROWS:,} most matched of {len(frame):,}; `curation compare --json` lists every one.")


tabs = st.tabs([f"Only in A ({len(only_a):,})", f"Only in B ({len(only_b):,})", f"Change side ({len(flips):,})"])
with tabs[0]:
    _table(only_a, ["count_a"], "Every entry of A is in B.")
with tabs[1]:
    _table(only_b, ["count_b"], "Every entry of B is in A.")
with tabs[2]:
    _table(flips, ["count_a", "count_b", "side_a", "side_b"], "No entry of both runs changes side at t.")

st.subheader("Pairs")
pairs = comparison.pairs
if pairs is None:
    messages.info(
        f"The runs read different pools ({comparison.pool_difference}): pairs are compared only when both "
        "runs read the same pool files, where row r of one run is row r of the other."
    )
    st.stop()
PAIRS = {
    "Kept by both": (pairs.kept_by_both, "Pairs of the pool both runs keep at t."),
    "Kept by A only": (pairs.kept_by_a_only, "Pairs A keeps at t and B drops (or never matched)."),
    "Kept by B only": (pairs.kept_by_b_only, "Pairs B keeps at t and A drops (or never matched)."),
    "Matched by A only": (pairs.matched_by_a_only, "Pairs only A's metadata matches (t does not matter)."),
    "Matched by B only": (pairs.matched_by_b_only, "Pairs only B's metadata matches (t does not matter)."),
}
for column, (label, (value, tip)) in zip(st.columns(len(PAIRS)), PAIRS.items()):
    column.metric(label, f"{value:,}", help=tip)
st.caption(
    f"The same pool, {pairs.pairs:,} pairs: each run's pairs in shard order line up row by row with the "
    f"other's, whatever their shard sizes; {pairs.matched_by_both:,} pairs are matched by both."
)
