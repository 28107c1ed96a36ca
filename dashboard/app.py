"""Curation studio: `curation-dashboard` (dashboard/launch.py) opens on the bundled sample run."""

from pathlib import Path

import streamlit as st

from dashboard import data
from dashboard.gate import require_access
from studio_common.errors import CurationError

st.set_page_config(page_title="Curation studio", page_icon=":material/balance:", layout="wide")
require_access()  # served beyond loopback: nothing below runs before the access token
data.init_state()


def _open_typed() -> None:
    st.session_state.run_dir = st.session_state.run_dir_input.strip()


def _open_recent() -> None:
    if st.session_state.recent_choice:
        st.session_state.run_dir = st.session_state.run_dir_input = st.session_state.recent_choice


with st.sidebar:
    st.session_state.setdefault("run_dir_input", st.session_state.run_dir)
    st.text_input(
        "Run directory",
        key="run_dir_input",
        on_change=_open_typed,
        help="The output of `curation run`, a local path or s3://bucket/prefix "
        "(read from a local copy); press Enter to open it.",
    )
    recent = data.recent_runs()
    if recent:
        st.selectbox(
            "Recent runs",
            [""] + recent,
            key="recent_choice",
            on_change=_open_recent,
            format_func=lambda p: p or "choose a recent run",
        )
    if Path(st.session_state.run_dir) == data.SAMPLE_RUN and not (data.SAMPLE_RUN / "run.json").exists():
        with st.spinner("Curating the bundled sample (30,000 pairs) for the first start..."):
            try:
                data.make_sample_run()
            except CurationError as error:
                st.error(f"could not curate the sample: {error}")
    try:
        root = data.check_run_dir(st.session_state.run_dir)
    except CurationError:
        root = None
    if root is not None:
        data.remember_run(st.session_state.run_dir)
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
        st.Page("views/balance.py", title="Balance", icon=":material/balance:"),
        st.Page("views/languages.py", title="Languages", icon=":material/language:"),
        st.Page("views/samples.py", title="Samples", icon=":material/image:"),
        st.Page("views/export.py", title="Export", icon=":material/download:"),
        st.Page("views/jobs.py", title="Jobs", icon=":material/play_circle:"),
    ]
)
pages.run()
