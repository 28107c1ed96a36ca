"""Languages: a worldwide run (MetaCLIP 2) language by language at the reference language's t."""

import pandas as pd
import streamlit as st

from curation import languages
from curation.shard_stats import LanguageDecisions
from curation.worldwide import zero_t_notes
from dashboard import charts, data, messages

TOP_LANGUAGES = 40  # bars drawn for the languages with most pairs; the table holds them all
NOT_IN_METADATA = "(not in the metadata)"  # the table's row of pairs whose caption language has no entries
IDENTIFIED_BY = {
    languages.LID176_SCRIPTS: "fastText's lid.176 with the decisions scripts settle",
    languages.LID176: "fastText's lid.176 alone",
}
SOURCE_WORDS = {
    languages.FROM_COLUMN: "the pool's column",
    languages.FROM_IDENTIFIER: "lid.176's answer",
    languages.FROM_SCRIPT: "settled by the script",
    languages.NO_TEXT: "no text to identify",
}
MAPPING_WORDS = {
    languages.SAME: "its own list",
    languages.OVERRIDDEN: "the run's language map",
    languages.FALLBACK: "a related language's list",
    languages.TO_OTHER: "the 'other' list",
    languages.NOWHERE: "no list: matches nothing",
}

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
reference = preview.rule.reference

left, right = st.columns([1, 3])
data.t_input(left, f"t of the reference language ({reference})", "t")
right.caption(
    messages.plain(
        f"Each language's t keeps the tail share {reference} keeps at its t: p = {preview.tail_share(t):.4f} "
        f"of its matches go to entries matched fewer than t times (MetaCLIP 2's t_to_p and p_to_t). "
        + (
            f"Fixed by the run: {', '.join(f'{k}={v:g}' for k, v in preview.rule.overrides.items())}. "
            if preview.rule.overrides
            else ""
        )
        + "A language whose t comes out 0 keeps nothing."
    )
)

known = rows[rows["language"].notna()]
columns = st.columns(4)
columns[0].metric("Languages in the metadata", f"{len(known):,}")
columns[1].metric("Languages with matched pairs", f"{int((known['matched_pairs'] > 0).sum()):,}")
columns[2].metric("Kept pairs", f"{int(rows['kept'].sum()):,}", help="Exact: every language at its own t.")
record = data.record(str(root), token)
language_column = record.get("columns", {}).get("language")
found_by = (
    f"as the pool's {language_column!r} column gives it"
    if language_column
    else "as identified from the text by "
    + IDENTIFIED_BY.get(record.get("columns", {}).get("language_identifier"), "lid.176")
)
columns[3].metric(
    "Pairs in no metadata language",
    f"{int(rows.loc[rows['language'].isna(), 'pairs'].sum()):,}",
    help=messages.plain(
        f"Captions whose language ({found_by}) has no entries in this run's metadata; a caption without "
        "a language (no code, or no text to identify) counts here too. The metadata has no 'other' list to "
        "match them against, so they match nothing and are never kept."
    ),
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
for note in zero_t_notes(zero["language"].head(20).tolist(), reference, t, preview.rule.by_language):
    messages.warning(note + (f" ({len(zero) - 20:,} more languages too)" if len(zero) > 20 else ""))

table = rows.assign(
    language=rows["language"].fillna(NOT_IN_METADATA),
    kept_share=rows["kept"] / rows["matched_pairs"].where(rows["matched_pairs"] > 0),
)
exact = bool(rows["expected_kept_exact"].all())


def _count(label: str, tip: str | None = None) -> st.column_config.NumberColumn:
    """A count with thousands separators and no decimals."""
    return st.column_config.NumberColumn(label, help=tip, format="localized", step=1)


# Every column with a header in words, a fixed number of decimals (Streamlit takes them from the step:
# "percent" alone shows 100% beside 50.25%) and thousands separators; "–" where there is no value (the
# row of pairs in no metadata language has no t; a language with no matched pairs, no kept share).
COLUMNS = {
    "language": st.column_config.TextColumn("language"),
    "pairs": _count("pairs"),
    "matched_pairs": _count("matched pairs", "Pairs matching at least one entry of their language."),
    "entries": _count("entries", "Entries of the language in the metadata."),
    "matched_entries": _count("matched entries", "Entries matched at least once."),
    "matches": _count("matches", "Matches of the language's entries (a pair can match several)."),
    "t": st.column_config.NumberColumn("t", format="localized", help="The language's own t."),
    "tail_share": st.column_config.NumberColumn(
        "tail share p",
        format="%.4f",
        help="The share of the language's matches held by entries matched fewer than its t times.",
    ),
    "kept": _count("kept", "Pairs kept at the language's t, for this seed (exact)."),
    "kept_share": st.column_config.NumberColumn(
        "kept / matched", format="percent", step=0.001, help="Kept over matched pairs (– for none matched)."
    ),
    "expected_kept": st.column_config.NumberColumn(
        "expected kept", format="localized", step=0.1, help="The mean of kept over seeds."
    ),
    "expected_kept_margin": st.column_config.NumberColumn(
        "± expected kept", format="localized", step=1, help="Two standard errors of the estimate (about 95%)."
    ),
}
shown_columns = list(COLUMNS) if not exact else [c for c in COLUMNS if c != "expected_kept_margin"]
st.dataframe(table[shown_columns], hide_index=True, column_config=COLUMNS, placeholder="–")
st.caption(
    "Kept is exact (this seed's draw); expected kept is its mean over seeds. "
    + data.estimate_note(preview)
    + (
        f" The row {NOT_IN_METADATA} holds the pairs whose caption language has no entries in the metadata: "
        "they match nothing."
        if rows["language"].isna().any()
        else ""
    )
)

st.subheader("How captions got their languages")
if "language_decisions" not in record:
    st.info(
        "This run was matched before the studio recorded how each caption's language was decided; "
        "a new run (another --out) records it."
    )
    st.stop()
decisions = LanguageDecisions.from_json(record["language_decisions"])
total = max(decisions.total, 1)
by_source = decisions.by_source()
for column, (source, captions) in zip(st.columns(max(len(by_source), 1)), by_source.items()):
    column.metric(SOURCE_WORDS.get(source, source), f"{captions:,}", help=f"{captions / total:.2%} of the captions")
how = pd.DataFrame(decisions.as_json())
if len(how):
    how = how.assign(
        source=how["source"].map(lambda s: SOURCE_WORDS.get(s, s)),
        code=how["code"].replace("", "(none)"),
        language=how["language"].fillna(NOT_IN_METADATA),
        mapping=how["mapping"].map(lambda m: MAPPING_WORDS.get(m, m)),
        share=how["captions"] / total,
    )
st.dataframe(
    how,
    hide_index=True,
    column_config={
        "source": st.column_config.TextColumn("decided by"),
        "code": st.column_config.TextColumn("code", help="The column's or the identifier's language code."),
        "language": st.column_config.TextColumn("matched in", help="The metadata language the caption is matched in."),
        "mapping": st.column_config.TextColumn("through"),
        "captions": _count("captions"),
        "share": st.column_config.NumberColumn("share", format="percent", step=0.001),
    },
)
st.caption(
    messages.plain(
        "Every caption of the run, by how its language was decided: the pool's language column when the run "
        "has one; otherwise lid.176, except where the caption's script settles it (Han with kana is Japanese, "
        "Han without kana Chinese, Hangul Korean, Thai script Thai, ...). A code the metadata has no list for "
        "falls back to a related language's list (Wu and Cantonese to Chinese), then to 'other', else the "
        "caption matches nothing; a run's --language-map decides before all of these."
    )
)
