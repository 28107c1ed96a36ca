"""Coverage: what the captions say that no metadata entry covers. The n-grams `curation gaps` found
(RUN_DIR/gaps/), how many unmatched pairs the top k would match if added (exact: the file's `covered`),
their example captions with the words an entry would match marked, and the chosen ones saved as extra
entries for `curation-metadata build --extra`."""

import hashlib
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from curation.export import NAME_MAX, check_name
from curation.gaps import (
    DEFAULT_MIN_COUNT,
    DEFAULT_TOP,
    GAPS_FOLDER,
    RANKINGS,
    Gaps,
    GapsRequest,
    extra_entries,
    find_gaps,
    with_summary,
)
from curation.ngrams import default_stop_words
from curation.rundir import atomic_file, atomic_write_table
from curation.runner import Execution
from dashboard import access, charts, coverage, data, messages
from studio_common import storage
from studio_common.errors import CurationError

DEFAULT_K = 100  # the slider's first position (or every n-gram, when the file holds fewer)
STAGES = ("count n-grams", "reduce", "cover")  # find_gaps' stages, in order: one progress bar for all three

st.title("Coverage")
current = data.current_run()
if current is None:
    st.stop()
root, token, seed = current
spec = st.session_state.run_dir  # as opened: an s3:// or gs:// URI for a run the dashboard reads from a copy
remote = storage.is_uri(spec)
plan = data.plan(str(root), token)
command = f"curation gaps {shlex.quote(spec.rstrip('/') if remote else str(root))}"


def _choices(key: str, options: list) -> list:
    """A multiselect's options, its remembered choice kept to what this file offers (another file may
    hold other sizes or languages, and Streamlit refuses a choice that is not an option)."""
    if key in st.session_state:
        st.session_state[key] = [value for value in st.session_state[key] if value in options]
    return options


def _progress_bar() -> tuple[DeltaGenerator, Callable[[str, int], Callable[[int], None]]]:
    """``bar(what, total)`` for find_gaps: one st.progress across its three stages."""
    bar = st.progress(0.0, text="Finding gaps...")

    def stage(what: str, total: int) -> Callable[[int], None]:
        done = 0
        index = STAGES.index(what) if what in STAGES else 0

        def step(count: int) -> None:
            nonlocal done
            done += count
            share = (index + min(done / max(total, 1), 1.0)) / len(STAGES)
            bar.progress(share, text=f"Finding gaps: {what} ({done:,} of {total:,})")

        step(0)
        return step

    return bar, stage


def _find(request: GapsRequest) -> Gaps:
    """Both passes of `curation gaps` in this process (worker processes as a run's), written where the
    command writes them: RUN_DIR/gaps/gaps.parquet, whole or not at all."""
    data.pool_token(root)  # the captions come from the pool, which must lie under the data roots
    bar, stage = _progress_bar()
    target = root / GAPS_FOLDER / data.DEFAULT_GAPS
    try:
        with Execution(progress=False).start() as engine:
            found = find_gaps(request, root, engine, stage)
    finally:
        bar.empty()
    try:
        atomic_write_table(target, with_summary(found))
    except OSError as error:
        raise CurationError(f"cannot write {target}: {error.strerror or error}") from None
    return found


def find_form() -> None:
    """The settings of `curation gaps` most worth changing, and Find gaps; for a run in object storage
    (the dashboard reads a local copy, never writes it) the command instead."""
    if remote:
        st.caption("This run lives in object storage and the dashboard only reads its copy: find its gaps with")
        st.code(command, language="bash")
        return
    with st.form("coverage_find", border=False):
        columns = st.columns(5)
        sizes = columns[0].multiselect(
            "n-gram sizes", [1, 2, 3, 4], default=[1, 2], key="coverage_find_n", help="`--n`: words per n-gram."
        )
        top = columns[1].number_input(
            "Top", min_value=1, value=DEFAULT_TOP, step=100, key="coverage_find_top", help="`--top`: n-grams kept."
        )
        min_count = columns[2].number_input(
            "Min count",
            min_value=1,
            value=DEFAULT_MIN_COUNT,
            key="coverage_find_min_count",
            help="`--min-count`: leave out n-grams held by fewer pairs (by the ranking's count).",
        )
        rank_by = columns[3].radio(
            "Rank by",
            RANKINGS,
            key="coverage_find_rank_by",
            help="`--rank-by`: pairs holding the n-gram, or unmatched pairs holding it.",
        )
        only_unmatched = columns[4].checkbox(
            "Only unmatched captions",
            key="coverage_find_only_unmatched",
            help="`--only-unmatched`: count in the captions of pairs that matched nothing only.",
        )
        language = None
        if plan.worldwide:
            language = st.selectbox(
                "Caption language",
                [None, *(plan.languages or ())],
                key="coverage_find_language",
                format_func=lambda code: "all languages" if code is None else code,
                help="`--language`: an extra-entries file is one language's, so choose one to save them.",
            )
        submitted = st.form_submit_button("Find gaps", type="primary", key="coverage_find_submit")
    if not submitted:
        return
    if not sizes:
        messages.error("choose at least one n-gram size")
        return
    request = GapsRequest(
        str(root),
        tuple(sorted(sizes)),
        int(top),
        int(min_count),
        bool(only_unmatched),
        rank_by,
        default_stop_words(),
        "default",
        language,
    )
    try:
        found = _find(request)
    except CurationError as error:
        messages.error(error)
        return
    st.session_state.coverage_found = (
        f"Found {found.table.num_rows:,} n-grams in {found.summary['seconds']:g} s and wrote "
        f"{root / GAPS_FOLDER / data.DEFAULT_GAPS}"
    )
    st.session_state.pop("coverage_file", None)  # show the file just written
    st.rerun()


files = data.gaps_files(root)
if not files:
    st.markdown(
        "Which words of the captions does no metadata entry cover? `curation gaps` counts the n-grams of "
        "the pool's captions, cut as matching cuts them, that are not entries; ranks them; then matches the "
        "chosen ones against the unmatched captions with the run's own rule, so the pairs the top k would "
        "match if added are exact. This page shows what it found: the n-grams, how much each top k covers, "
        "example captions, and the chosen n-grams as extra entries for `curation-metadata build --extra`."
    )
    st.markdown("This run has no gaps yet. On the command line (any option of `--help`):")
    st.code(command, language="bash")
    if remote:
        st.caption("This run lives in object storage and the dashboard only reads its copy: run the command.")
    else:
        st.markdown("Or here, with the settings most worth changing (the rest as the command's defaults):")
        find_form()
    st.stop()

found_message = st.session_state.pop("coverage_found", None)
if found_message:
    messages.success(found_message)
names = [path.name for path in files]
if st.session_state.get("coverage_file") not in names:
    st.session_state.coverage_file = names[0]
if len(files) > 1:
    st.selectbox("Gaps file", names, key="coverage_file", help=f"The Parquet tables under {root / GAPS_FOLDER}.")
path = root / GAPS_FOLDER / st.session_state.coverage_file
try:
    version = data.gaps_version(path)
    gaps = data.gaps(str(path), version)
except (CurationError, OSError) as error:
    messages.error(error if isinstance(error, CurationError) else f"cannot read {path}: {error.strerror or error}")
    st.stop()
summary, table = gaps.summary, gaps.table
unmatched_read = int(summary.get("unmatched_pairs_read", 0))
rows = table.num_rows
shown_settings = [
    f"n = {', '.join(map(str, summary.get('n', [])))}",
    f"top {summary.get('top', rows):,}",
    f"held by at least {summary.get('min_count', 1):,} pairs",
    f"ranked by {summary.get('rank_by', 'count')}",
    f"stop-words: {summary.get('stop_words', 'default')}",
]
if summary.get("only_unmatched"):
    shown_settings.append("unmatched captions only")
if summary.get("language"):
    shown_settings.append(f"captions in {summary['language']}")
st.caption(
    messages.plain(f"{path.name}: " + " · ".join(shown_settings) + f" · found in {summary.get('seconds', 0):g} s")
)

columns = st.columns(4)
columns[0].metric("Pairs read", f"{summary.get('pairs_read', 0):,}")
columns[1].metric(
    "Unmatched pairs",
    f"{unmatched_read:,}",
    help="Pairs read that match no entry (null or empty texts included): the pairs a new entry could bring in.",
)
columns[2].metric(
    "Gaps found",
    f"{summary.get('gaps', 0):,}",
    help=f"n-grams held by at least {summary.get('min_count', 1):,} pairs that are no entry; the file keeps "
    f"the top {rows:,}.",
)
columns[3].metric(
    "Covered by the chosen",
    f"{summary.get('unmatched_covered', 0):,}",
    help=f"Unmatched pairs that all {rows:,} n-grams of the file would match if added as entries (matched "
    "with the run's own rule: exact).",
)
columns[3].caption(f"{summary.get('unmatched_covered', 0) / max(unmatched_read, 1):.1%} of the unmatched pairs")
if not summary.get("would_match", True):
    messages.info(
        "In a worldwide run an n-gram's key can meet its neighbours without spaces (CJK, punctuation): "
        "the table's `covered` is what the run's rule matches; `unmatched` is the counting's, so bounds "
        "for a selection are approximate."
    )
with st.expander("Find gaps again (overwrites gaps.parquet)" if not remote else "Find gaps again"):
    find_form()
if rows == 0:
    messages.info("No n-gram passed the settings: lower the min count, or count other n-gram sizes.")
    st.stop()

frame = table.drop_columns(["examples"]).to_pandas()
covered = frame["covered"].to_numpy()
unmatched = frame["unmatched"].to_numpy()

st.subheader("How much the top k would cover")
if rows > 1:
    st.session_state.setdefault("coverage_k", min(DEFAULT_K, rows))
    st.session_state.coverage_k = min(st.session_state.coverage_k, rows)  # another file may have fewer rows
    k = st.slider(
        "Top k",
        min_value=1,
        max_value=rows,
        key="coverage_k",
        help="The first k n-grams of the table, by rank, added to the metadata.",
    )
else:
    k = 1
left, right = st.columns([1, 3])
left.metric(
    f"Covered by the top {k:,}",
    f"{int(covered[k - 1]):,}",
    help="The file's `covered` at rank k: the unmatched captions matched against these n-grams with the "
    "run's own rule. Exact.",
)
left.caption(f"{covered[k - 1] / max(unmatched_read, 1):.1%} of the {unmatched_read:,} unmatched pairs read")
right.plotly_chart(charts.coverage_curve(covered, unmatched_read, k))

st.subheader("N-grams")
left, middle, right = st.columns([3, 1, 1])
search = left.text_input("Search n-grams (substring, any case)", key="coverage_search")


words = _choices("coverage_words", sorted(int(n) for n in frame["words"].unique()))
sizes = middle.multiselect("Words (n)", words, key="coverage_words", placeholder="any")
shown = coverage.filter_rows(frame, search.strip(), sizes)
if "language" in frame.columns:
    codes = _choices("coverage_languages", sorted(frame["language"].unique()))
    languages = right.multiselect("Language", codes, key="coverage_languages", placeholder="any")
    if languages:
        shown = shown[shown["language"].isin(languages)]
# The selection is of rows of this very table: a new search is a new table, and starts unselected.
filters = f"{path.name}\n{version}\n{search.strip()}\n{sizes}\n{st.session_state.get('coverage_languages')}"
event = st.dataframe(
    shown,
    hide_index=True,
    column_config=data.thousands(["rank", "count", "unmatched", "covered"]),
    on_select="rerun",
    selection_mode="multi-row",
    key="coverage_rows_" + hashlib.sha256(filters.encode()).hexdigest()[:12],
)
st.caption(
    f"{len(shown):,} of {rows:,} n-grams. count: pairs holding the n-gram; unmatched: those that match no "
    "entry; covered: unmatched pairs the n-grams up to this rank would match together. Select rows to see "
    "what they would cover and to save them."
)
selected = shown.iloc[[row for row in event.selection.rows if row < len(shown)]]
ranks = selected["rank"].tolist()
if ranks:
    known = coverage.selection_covers(ranks, unmatched, covered)
    own = unmatched[np.asarray(ranks) - 1]
    top_k = sorted(ranks) == list(range(1, len(ranks) + 1))
    if known.exact:
        lead = f"The selected n-grams (the top {len(ranks):,})" if top_k else f"The {len(ranks):,} selected n-grams"
        messages.info(
            f"{lead} would match exactly {known.low:,} unmatched pairs "
            f"({known.low / max(unmatched_read, 1):.1%} of them)."
        )
    else:
        low, high = (f"{value / max(unmatched_read, 1):.1%}" for value in (known.low, known.high))
        messages.info(
            f"The {len(ranks):,} selected n-grams would match at least {known.low:,} and at most {known.high:,} "
            f"unmatched pairs ({low if low == high else f'{low} to {high}'} of them). "
            f"The most any one holds is {int(own.max()):,} and together they hold {int(own.sum()):,}; the file "
            "holds no per-pair sets, so pairs holding several cannot be told apart. A selection of the top k "
            "(ranks 1 to k) has an exact figure."
        )

st.subheader("Examples")
if ranks:
    ngrams = dict(zip(selected["rank"], selected["ngram"]))
    rank = (
        st.selectbox("Examples of", ranks, key="coverage_example", format_func=lambda r: f"{ngrams[r]} (#{r})")
        if len(ranks) > 1
        else ranks[0]
    )
elif len(shown):
    rank = int(shown["rank"].iloc[0])
else:
    rank = None
if rank is None:
    messages.info("No n-gram holds that text.")
else:
    ngram = frame["ngram"].iloc[rank - 1]
    examples = table.column("examples")[rank - 1].as_py() or []
    st.caption(messages.plain(f"Unmatched captions holding {ngram!r}, as matching would find it if it were an entry:"))
    for caption in examples:
        st.html("<p>" + coverage.highlight(caption, ngram, worldwide=plan.worldwide) + "</p>")
    if not examples:
        st.caption("No example: no unmatched pair holds it (or the gaps were found with --examples 0).")

st.subheader("Save as extra entries")
chosen_ranks = ranks or list(range(1, k + 1))
what = f"the {len(ranks):,} selected n-grams" if ranks else f"the top {k:,} n-grams"
default_name = f"extra-{len(ranks)}-selected" if ranks else f"extra-top{k}"
typed = st.text_input(
    f"File name (no extension; letters, digits, '.', '_', '-'; at most {NAME_MAX} characters)",
    key="coverage_name",
    placeholder=default_name,
    help=f"Empty: {default_name}. Written as NAME.txt under {data.EXPORT_DIR} (set CURATION_EXPORT_DIR to change it).",
)
name = typed.strip() or default_name
chosen = table.take(pa.array(np.asarray(sorted(chosen_ranks)) - 1))
try:
    text = extra_entries(chosen)
except CurationError as error:  # several languages (a worldwide run), or an n-gram that is no line
    hint = " Filter the table to one language and select its n-grams." if "language" in frame.columns else ""
    messages.warning(f"{error}.{hint}" if hint else error)
    st.stop()
st.caption(f"Saves {what}, one per line in rank order: the file `curation-metadata build --extra` reads.")


def _target() -> Path | None:
    try:
        return data.EXPORT_DIR / (check_name(name) + ".txt")
    except CurationError:
        return None


left, right = st.columns(2)
if left.button("Save as extra entries", key="coverage_save", type="primary"):
    st.session_state.pop("coverage_saved", None)
    try:
        target = data.EXPORT_DIR / (check_name(name) + ".txt")
        access.check_export(target, data.ROOTS)  # a symlink left in the export folder may point out of it
        with atomic_file(target) as temporary:
            temporary.write_text(text, encoding="utf-8")
        st.session_state.coverage_saved = (str(target), text)
    except CurationError as error:
        messages.error(error)
    except OSError as error:
        messages.error(f"cannot write {name}.txt: {error.strerror or error}")
right.download_button(
    "Download the entries",
    text,
    file_name=f"{name if _target() else default_name}.txt",
    mime="text/plain",
    key="coverage_download",
)
saved = st.session_state.get("coverage_saved")
if saved and saved[0] == str(_target()) and saved[1] == text:  # what the form names now, as written
    messages.success(f"Wrote {text.count(chr(10)):,} entries to {saved[0]}")
    st.markdown("Next, build a metadata with them (your sources as before, in place of `...`), and run with it:")
    st.code(
        f"curation-metadata build ... --extra {shlex.quote(saved[0])} --out metadata-with-extra.json\n"
        f"curation run --pool POOL --metadata metadata-with-extra.json --t T --out NEW_RUN",
        language="bash",
    )
