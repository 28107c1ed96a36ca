"""Languages: a worldwide run (MetaCLIP 2) language by language at the reference language's t."""

import streamlit as st

from dashboard import charts, data

TOP_LANGUAGES = 40  # bars drawn for the languages with most pairs; the table holds them all

st.title("Languages")
root, token, seed, t = data.page_context()
rows = data.language_rows(str(root), seed, token, t)
if rows is None:
    st.info(
        "This run's metadata has no languages (MetaCLIP 1: one list, one t). Metadata in Parquet with "
        "'entry' and 'language' columns (`curation-metadata merge-languages`) makes a worldwide run, "
        "matched and balanced per language; this page then shows each language."
    )
    st.stop()
preview = data.preview(str(root), seed, token)
reference = preview.reference

left, right = st.columns([1, 3])
data.t_input(left, f"t of the reference language ({reference})", "t")
right.caption(
    f"Each language's t keeps the tail share {reference} keeps at its t: p = {preview.tail_share(t):.4f} "
    f"of its matches go to entries matched fewer than t times (MetaCLIP 2's t_to_p and p_to_t). "
    + (
        f"Fixed by the run: {', '.join(f'{k}={v:g}' for k, v in preview.overrides.items())}. "
        if preview.overrides
        else ""
    )
    + "A language whose t comes out 0 keeps nothing."
)

known = rows[rows["language"].notna()]
columns = st.columns(4)
columns[0].metric("Languages in the metadata", f"{len(known):,}")
columns[1].metric("Languages with matched pairs", f"{int((known['matched_pairs'] > 0).sum()):,}")
columns[2].metric("Kept pairs", f"{int(rows['kept'].sum()):,}", help="Exact: every language at its own t.")
columns[3].metric(
    "Pairs without a language",
    f"{int(rows.loc[rows['language'].isna(), 'pairs'].sum()):,}",
    help="Captions whose language has no entries, in metadata without an 'other' list: matched against nothing.",
)

by_size = known.sort_values(["pairs", "language"], ascending=[False, True])
shown = by_size.head(TOP_LANGUAGES)
st.subheader("Pairs per language")
st.plotly_chart(charts.language_bars(shown, t))
st.subheader("t per language")
st.plotly_chart(charts.language_t_bars(shown[shown["t"] > 0], t, reference))
if len(by_size) > TOP_LANGUAGES:
    st.caption(f"The {TOP_LANGUAGES} languages with most pairs of {len(by_size):,}; the table below holds them all.")
zero = known[(known["t"] == 0) & (known["matched_pairs"] > 0)]
if len(zero):
    st.warning(
        f"{len(zero)} languages have t = 0 and keep nothing: {', '.join(zero['language'].head(20))}"
        + (" ..." if len(zero) > 20 else "")
        + ". Fix one with `--t-language CODE=T` on `curation "
        "balance`."
    )

table = rows.assign(
    language=rows["language"].fillna("(none)"),
    kept_share=rows["kept"] / rows["matched_pairs"].where(rows["matched_pairs"] > 0),
)
exact = bool(rows["expected_kept_exact"].all())
columns_shown = [
    "language",
    "pairs",
    "matched_pairs",
    "entries",
    "matched_entries",
    "matches",
    "t",
    "tail_share",
    "kept",
    "kept_share",
    "expected_kept",
] + ([] if exact else ["expected_kept_margin"])
st.dataframe(
    table[columns_shown],
    hide_index=True,
    column_config={
        "tail_share": st.column_config.NumberColumn("tail share p", format="%.4f"),
        "kept_share": st.column_config.NumberColumn("kept / matched", format="percent"),
        "t": st.column_config.NumberColumn("t", format="%g"),
        "expected_kept": st.column_config.NumberColumn("expected kept", format="%.1f"),
        "expected_kept_margin": st.column_config.NumberColumn("±", format="%.0f"),
        **data.thousands(["pairs", "matched_pairs", "entries", "matched_entries", "matches", "kept"]),
    },
)
st.caption("Kept is exact (this seed's draw); expected kept is its mean over seeds. " + data.estimate_note(preview))
