"""Curation studio: `curation-dashboard` (dashboard/launch.py) opens on the bundled sample run."""

from pathlib import Path

import streamlit as st

from dashboard import data, messages
from dashboard.gate import require_access
from studio_common.errors import CurationError

st.set_page_config(page_title="Curation studio", page_icon=":material/balance:", layout="wide")
require_access()  # served beyond loopback: nothing below runs before the access token
data.init_state()


data.follow_url()  # a link or a reload names the run in the URL ("Open this run" while a job runs)


def _open_typed() -> None:
    """The form's submit (Enter in the box, or Open): an action of the user, never a value the browser
    echoes from before the server changed the box."""
    st.session_state.run_dir = st.session_state.run_dir_input.strip()


def _open_recent() -> None:
    if st.session_state.recent_choice:
        st.session_state.run_dir = st.session_state.recent_choice


with st.sidebar:
    # The box shows the open run: written here, before it is drawn, whenever something else opened a run
    # (Open this run, Recent runs, a link). It opens a run only when its form is submitted: a request that
    # the browser sent before it drew the new value (a fragment's timer fires every few seconds) still
    # carries the old path, and as an on_change of the box that old path would open the old run again.
    if st.session_state.get("run_dir_input") != st.session_state.run_dir:
        st.session_state.run_dir_input = st.session_state.run_dir
    with st.form("open_run", border=False, enter_to_submit=True):
        st.text_input(
            "Run directory",
            key="run_dir_input",
            help="The output of `curation run`, a local path, s3://bucket/prefix or gs://bucket/prefix "
            "(read from a local copy); press Enter to open it.",
        )
        st.form_submit_button("Open", on_click=_open_typed)
    recent_slot = st.container()  # filled once the open run is known to be one (it joins the list)
    if Path(st.session_state.run_dir) == data.SAMPLE_RUN and not (data.SAMPLE_RUN / "run.json").exists():
        with st.spinner("Curating the bundled sample (30,000 pairs) for the first start..."):
            try:
                data.make_sample_run()
            except CurationError as error:
                messages.error(f"could not curate the sample: {error}")
    try:
        root = data.check_run_dir(st.session_state.run_dir)
    except CurationError:
        root = None
    if root is not None:
        data.remember_run(st.session_state.run_dir)
        data.show_run_in_url()
    recent = data.recent_runs()
    if recent:
        recent_slot.selectbox(
            "Recent runs",
            [""] + recent,
            key="recent_choice",
            on_change=_open_recent,
            format_func=lambda p: p or "choose a recent run",
            help="The runs opened in this browser tab, latest first, then the runs in the runs folder.",
        )
    if root is not None:
        token = data.run_token(root)
        available = data.seeds(str(root), token)
        run_seed = data.record(str(root), token).get("parameters", {}).get("seed")
        if st.session_state.seed not in available:
            st.session_state.seed = run_seed if run_seed in available else available[0]
        st.selectbox(
            "Seed",
            available,
            key="seed",
            help="Seeds with keep thresholds in this run; `curation balance RUN --seed S` adds one.",
        )
        rows = data.record(str(root), token).get("rows", {})
        st.caption(f"{rows.get('in', 0):,} pairs, {rows.get('matched', 0):,} matched")

pages = st.navigation(
    [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/entries.py", title="Entries", icon=":material/list:"),
        st.Page("views/coverage.py", title="Coverage", icon=":material/travel_explore:"),
        st.Page("views/balance.py", title="Balance", icon=":material/balance:"),
        st.Page("views/languages.py", title="Languages", icon=":material/language:"),
        st.Page("views/samples.py", title="Samples", icon=":material/image:"),
        st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("views/export.py", title="Export", icon=":material/download:"),
        st.Page("views/jobs.py", title="Jobs", icon=":material/play_circle:"),
    ]
)
if st.session_state.pop("opened_run", False):  # "Open this run" handled on another page (a second click sent
    st.switch_page("views/overview.py")  # before the page changed): no Jobs fragment draws to switch, so here
pages.run()
