"""The bakeoff console: `bakeoff ui` runs this file with Streamlit. It only routes; pages are in views/."""

from __future__ import annotations

import streamlit as st

from bakeoff.ui._common import PAGES, runs_dir

st.set_page_config(page_title="bakeoff", page_icon="🧁", layout="wide")

pages = st.navigation(
    {
        "Results": [
            st.Page(PAGES["runs"], title="Runs", icon=":material/list:", url_path="runs", default=True),
            st.Page(PAGES["compare"], title="Compare", icon=":material/leaderboard:", url_path="compare"),
            st.Page(PAGES["training"], title="Training", icon=":material/show_chart:", url_path="training"),
        ],
        "Try": [
            st.Page(PAGES["chat"], title="Chat", icon=":material/chat:", url_path="chat"),
            st.Page(PAGES["arena"], title="Arena", icon=":material/sports_mma:", url_path="arena"),
        ],
        "Build": [
            st.Page(PAGES["recipes"], title="Recipes", icon=":material/edit_note:", url_path="recipes"),
        ],
    }
)
st.sidebar.caption(f"runs: `{runs_dir()}`")
pages.run()
