"""Chat: up to three candidates of a run side by side, each reply streamed; history kept per browser session."""

from pathlib import Path

import streamlit as st

from bakeoff.ui import _common as common
from bakeoff.ui.chat import load_chat_agents, stream_reply
from bakeoff.ui.runs import run_key

MAX_CANDIDATES = 3


@st.cache_resource(show_spinner=False, max_entries=8)
def _agents(run_path: str, names: tuple[str, ...], recipe_stamp: float):
    """Agents are built once per run and selection and shared by every session (models load once)."""
    return load_chat_agents(common.load_run(Path(run_path)), list(names))


st.title("Chat")
runs = [r for r in common.load_runs() if not r.problem and r.candidates]
if not runs:
    common.no_runs_message()
    st.stop()
run = common.pick_run(runs, key="chat_run_picker")
names = run.candidates
chosen = st.multiselect(
    f"Candidates (up to {MAX_CANDIDATES})",
    names,
    default=names[: min(2, len(names))],
    max_selections=MAX_CANDIDATES,
    key=f"chat_candidates_{run_key(run)}",
)
if not chosen:
    st.info("Pick one to three candidates to chat with.")
    st.stop()

selection = (run_key(run), tuple(chosen))
if st.session_state.get("chat_started") != selection:
    st.caption(
        "Starting builds the candidates from this run's `recipe.yaml` (models load, retrieval indexes open); "
        "the first start takes a few seconds."
    )
    if st.button("Start chat", type="primary", key="chat_start"):
        st.session_state["chat_started"] = selection
        st.rerun()
    st.stop()

recipe_file = Path(run.path) / "recipe.yaml"
with st.spinner(f"loading {', '.join(chosen)}…"):
    loaded = _agents(
        str(run.path), tuple(chosen), recipe_file.stat().st_mtime if recipe_file.exists() else 0.0
    )

histories: dict[str, list[dict[str, str]]] = st.session_state.setdefault("chat_histories", {})


def history(name: str) -> list[dict[str, str]]:
    return histories.setdefault(f"{run_key(run)}::{name}", [])


top = st.columns([4, 1])
top[0].caption(
    "Each message goes to every candidate shown; each keeps its own history for this browser session."
)
if top[1].button("Clear history", key="chat_clear", width="stretch"):
    for name in chosen:
        history(name).clear()
    st.rerun()

prompt = st.chat_input("Ask the candidates…", key="chat_input")
cols = st.columns(len(chosen))
for col, name in zip(cols, chosen, strict=True):
    with col:
        st.subheader(name)
        if name in loaded.problems:
            st.warning(f"{name} cannot chat: {loaded.problems[name]}")
            continue
        for message in history(name):
            with st.chat_message(message["role"]):
                st.markdown(message["content"])
        if prompt:
            history(name).append({"role": "user", "content": prompt})
            with st.chat_message("user"):
                st.markdown(prompt)
            with st.chat_message("assistant"):
                reply = st.write_stream(stream_reply(loaded.agents[name], history(name)))
            history(name).append(
                {"role": "assistant", "content": reply if isinstance(reply, str) else str(reply)}
            )
