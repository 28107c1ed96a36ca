"""Balance: move t and see the balanced subset at once (sizes come from the stored keep thresholds)."""

import math

import streamlit as st

from dashboard import charts, data, messages

st.title("Balance")
current = data.current_run()
if current is None:
    st.stop()
root, token, seed = current
preview = data.preview(str(root), seed, token)
entries = data.entries(str(root), token)
counts = preview.counts


def _set_t(value: float) -> None:
    """A solved t, raised to the smallest t the boxes take (t for a tiny target size can be smaller)."""
    st.session_state.t = max(float(value), data.MIN_T)


def _from_slider() -> None:
    st.session_state.t = float(f"{10**st.session_state.t_log:.4g}")


def _solve_size() -> None:
    t, _ = preview.t_for_size(int(st.session_state.target_size))
    _set_t(t)


def _solve_share() -> None:
    _set_t(preview.t_for_tail_share(float(st.session_state.target_share)))


largest = max(float(counts.max()) if len(counts) else 1.0, 10.0)
left, right = st.columns([1, 2])
data.t_input(left, "t", "t")
slider_top = round(math.log10(largest) + 0.5, 2)
# The slider follows the session's t on every run (a widget of its own, like the t box: see data.t_input).
st.session_state.t_log = min(max(math.log10(st.session_state.t), 0.0), slider_top)
right.slider(
    "t on a log scale (10^x)", min_value=0.0, max_value=slider_top, step=0.01, key="t_log", on_change=_from_slider
)
t = data.current_t()
if t is None:
    st.stop()
worldwide = bool(data.languages(str(root), seed, token))
if worldwide:
    st.caption(
        f"A worldwide run: t is {preview.rule.reference}'s; every language keeps its pairs at its own t "
        "(see Languages), and sizes and head/tail here add all languages up, each at its t."
    )


def figures(t: float) -> dict[str, str]:
    kept = preview.size_at(t)
    head_tail = preview.head_tail(t)
    return {
        "Kept pairs": f"{kept:,}",
        "Expected": data.estimate_text(data.expected_size(str(root), seed, token, t)),
        "Share of pool": f"{kept / max(preview.pairs, 1):.2%}",
        "Head entries": f"{head_tail.head_entries:,}",
        "Tail share p(t)": f"{head_tail.tail_share:.4f}",
    }


HELP = {
    "Kept pairs": "Exact: the pairs whose keep threshold is below t, for this seed: the subset you get. It differs "
    "from Expected by chance, as one draw differs from the average; another seed draws again.",
    "Expected": "The size balancing gives on average over seeds: the sum over matched pairs of P = 1 - prod(1 - p_e). "
    "Kept pairs is one seed's draw around it. " + data.estimate_note(preview),
    "Share of pool": "Kept pairs over all pairs of the pool, matched or not.",
    "Head entries": "Entries matched at least t times: they keep about t of their pairs (all of them at exactly t).",
    "Tail share p(t)": "The share of all matches held by entries matched fewer than t times (MetaCLIP 2's knob).",
}
for column, (label, value) in zip(st.columns(5), figures(t).items()):
    column.metric(label, value, help=HELP[label])
with st.expander("Find t", expanded=False):
    a, b = st.columns(2)
    a.number_input(
        "Target subset size",
        min_value=0,
        max_value=preview.matched_pairs,
        value=min(preview.matched_pairs, max(preview.matched_pairs // 2, 0)),
        key="target_size",
    )
    a.button("t for this size", on_click=_solve_size)
    b.number_input(
        "Target tail share p(t)", min_value=0.0, max_value=1.0, value=0.06, step=0.01, format="%.3f", key="target_share"
    )
    b.button("t for this tail share", on_click=_solve_share)

compare = st.toggle("Compare with a second t", key="compare")
ts = [t]
if compare:
    data.t_input(st.container(), "Second t", "t2")
    ts.append(float(st.session_state.t2))
    st.dataframe({f"t = {value:g}": figures(value) for value in ts})

left, right = st.columns(2)
with left:
    st.subheader("Entries by count")
    st.plotly_chart(charts.counts_by_rank(preview.sorted_counts, ts))
with right:
    st.subheader("Cumulative matches")
    st.plotly_chart(charts.cumulative_matches(preview.sorted_counts, ts))
    st.caption(
        "The curves at t are idealised: each entry counts min(c, t), what it keeps through its own p_e "
        "alone. Pairs kept through another of their entries add more (below)."
    )
st.subheader("Most matched entries, before and after balancing")
top = charts.top_entries(counts)
kept_top = preview.kept_counts(top, t)[0]
own_t = data.entry_t(str(root), seed, token, t)  # each entry's language's t in a worldwide run
names = entries["entry"].to_numpy()[top]
if worldwide:  # dog in en and in de are two entries, each judged at its language's t
    names = [f"{name} ({language})" for name, language in zip(names, entries["language"].to_numpy()[top])]
st.plotly_chart(charts.before_after(names, counts[top], kept_top, t, own_t[top] if worldwide else None))
first = int(top[0]) if len(top) else None
if first is not None and counts[first] > (own_t[first] if worldwide else t):  # a head entry: why it keeps more
    about = "" if preview.sample.size >= preview.sample.population else "about "
    at = data.t_label(str(root), seed, token, t, entries["language"].iat[first] if worldwide else None)
    st.caption(
        messages.plain(
            f"Why an entry can keep far more than t: a pair is kept if any of its entries keeps it "
            f"(P = 1 - prod(1 - p_e)). {entries['entry'].iat[first]!r} alone has p_e = "
            f"{preview.entry_probabilities(t)[first]:.3f} at {at}, yet keeps {about}{kept_top[0]:,.0f} of "
            f"its {int(counts[first]):,} matches: most of its pairs also match rarer entries, which keep them."
        )
    )
st.caption("Kept matches per entry: " + data.estimate_note(preview).lower())
