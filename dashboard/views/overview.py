"""Overview: how the pool covers the metadata."""

import streamlit as st

from dashboard import charts, data, messages

st.title("Overview")
current = data.current_run()
if current is None:
    st.stop()
root, token, seed = current
record = data.record(str(root), token)
rows = record.get("rows", {})
total = rows.get("in", 0) or 1

columns = st.columns(4)
columns[0].metric("Pool rows", f"{rows.get('in', 0):,}")
share = f"{rows.get('matched', 0) / total:.1%}"
columns[1].metric(  # the share in a caption: a delta would draw an arrow, as if for a change
    "Matched",
    f"{rows.get('matched', 0):,}",
    help=f"Pairs whose text matches at least one entry: {share} of the pool's {rows.get('in', 0):,} pairs.",
)
columns[1].caption(f"{share} of the pool")
unmatched, empty = rows.get("unmatched", 0), rows.get("null_or_empty_text", 0)
columns[2].metric(
    "Unmatched (with text)",
    f"{unmatched:,}",
    help="Pairs whose text matches no entry; pairs with null or empty text are counted apart.",
)
columns[3].metric("Null or empty text", f"{empty:,}", help="Pairs with no text: they match nothing.")

entries = data.entries(str(root), token)
counts = entries["count"].to_numpy()
columns = st.columns(4)
columns[0].metric("Metadata entries", f"{len(counts):,}")
columns[1].metric("Entries with a match", f"{int((counts > 0).sum()):,}")
columns[2].metric("Entries with none", f"{int((counts == 0).sum()):,}")
columns[3].metric("Matches per matched pair", f"{rows.get('matches', 0) / max(rows.get('matched', 0), 1):.2f}")

left, right = st.columns(2)
with left:
    st.subheader("Matches per pair")
    st.plotly_chart(charts.matches_histogram(data.matches_per_text(str(root), seed, token)))
    st.caption(
        f"The bar at 0 holds every pair that matches nothing: {unmatched:,} unmatched with text plus "
        f"{empty:,} with null or empty text, {unmatched + empty:,} in all."
    )
with right:
    st.subheader("Coverage by source")
    sources = data.sources(str(root), token)
    if sources is None:
        st.info(
            "The metadata of this run has no sources. A Parquet metadata (entry, sources) beside the "
            "list, as `curation-metadata build` writes, shows coverage per source here."
        )
    else:
        merged = entries.merge(sources, on="entry", how="left").explode("sources")
        merged["sources"] = merged["sources"].fillna("unknown")
        table = (
            merged.groupby("sources")
            .agg(
                matched=("count", lambda c: int((c > 0).sum())),
                unmatched=("count", lambda c: int((c == 0).sum())),
                matches=("count", "sum"),
            )
            .reset_index()
        )
        table = table.rename(columns={"sources": "source"})
        st.plotly_chart(charts.sources_bars(table))
        st.dataframe(table, hide_index=True, column_config=data.thousands(["matched", "unmatched", "matches"]))

st.caption(
    messages.plain(
        f"Run directory {root} · metadata {record.get('metadata', {}).get('path', '?')} "
        f"({record.get('metadata', {}).get('fingerprint', '')[:19]}…) · pair key: {record.get('pair_key', '?')}"
    )
)
