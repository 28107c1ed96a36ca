"""The access token, asked before anything of the data is drawn when the dashboard is served beyond
loopback (rules in dashboard/access.py). Called at the top of app.py, so every page is behind it."""

from __future__ import annotations

import os

import streamlit as st

from dashboard import access, messages

GRANTED = "access_granted"


def require_access() -> None:
    """Return when this session may see the dashboard; otherwise draw the token form (or say why there
    is none) and stop the script. A session is a browser tab: a reload asks again."""
    address = st.get_option("server.address")
    if not access.token_required(address, os.environ) or st.session_state.get(GRANTED):
        return
    st.title("Curation studio")
    expected = os.environ.get(access.TOKEN_ENV, "")
    if not expected:
        messages.error(access.no_token_message(address))
        st.stop()
    with st.form("access_form"):
        given = st.text_input(
            "Access token",
            type="password",
            key="access_token",
            help=f"The value of {access.TOKEN_ENV} where the dashboard was started.",
        )
        entered = st.form_submit_button("Open the dashboard")
    if entered:
        if access.token_matches(given, expected):
            st.session_state[GRANTED] = True
            st.session_state.pop("access_token", None)
            st.rerun()
        st.error("That is not the access token.")
    st.stop()
