"""Arena: vote blind between two candidates' answers to the same question; Bradley–Terry leaderboard."""

import random
import secrets
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from bakeoff.ui import _common as common
from bakeoff.ui.arena import VOTES_FILE, Matchup, leaderboard, next_matchup, read_votes, record_vote
from bakeoff.ui.confine import PathRefused
from bakeoff.ui.runs import run_key

VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}


@st.cache_data(show_spinner=False, max_entries=50)
def _leaderboard(path: str, stamp: tuple, candidates: tuple[str, ...], failed: tuple[str, ...] = ()):
    return leaderboard(read_votes(Path(path)), candidates=candidates, failed=failed, n_boot=1000, seed=0)


st.title("Arena")
runs = [r for r in common.load_runs() if not r.problem and len(r.candidates) >= 2]
if not runs:
    if common.load_runs():
        st.info("The arena needs a run with at least two candidates that answered.")
    else:
        common.no_runs_message()
    st.stop()
run = common.pick_run(runs, key="arena_run_picker")
answers = common.load_answers(run)
key = run_key(run)

session = st.session_state.setdefault("arena_session", secrets.token_hex(4))
rng = st.session_state.setdefault("arena_rng", random.Random(secrets.randbits(64)))
matchups: dict[str, Matchup | None] = st.session_state.setdefault("arena_matchups", {})


def _new_matchup() -> None:
    matchups[key] = next_matchup(answers, read_votes(run.path), rng=rng)


def _vote(vote: str) -> None:
    m = matchups.get(key)
    if m is None:
        return
    try:
        record_vote(run.path, m, vote, session=session)
    except PathRefused as exc:
        st.session_state["arena_refused"] = f"vote not recorded: {exc}"
        return
    st.session_state["arena_last"] = (key, m, vote)
    _new_matchup()


if matchups.get(key) is None:
    _new_matchup()
m = matchups.get(key)

st.caption(
    "Two candidates answered the same question; their names are hidden until you vote. "
    f"Votes are saved to `{VOTES_FILE}` in the run folder."
)
if m is None:
    st.info("No question has answers from two candidates in this run.")
else:
    with st.container(border=True):
        st.markdown(f"**Question** ({m.question_id})")
        st.write(m.question)
        with st.expander("reference answer"):
            st.write(m.reference or "(none)")
    a_col, b_col = st.columns(2)
    with a_col.container(border=True):
        st.markdown("**Answer A**")
        st.write(m.answer_a or "(empty answer)")
    with b_col.container(border=True):
        st.markdown("**Answer B**")
        st.write(m.answer_b or "(empty answer)")
    buttons = st.columns(5)
    for col, (vote, label) in zip(buttons, VOTE_LABELS.items(), strict=False):
        col.button(label, key=f"arena_vote_{vote}", on_click=_vote, args=(vote,), width="stretch")
    buttons[4].button("Skip", key="arena_skip", on_click=_new_matchup, width="stretch")

refused = st.session_state.pop("arena_refused", None)
if refused:
    st.error(refused)
last = st.session_state.get("arena_last")
if last and last[0] == key:
    _, prev, vote = last
    st.success(
        f"Recorded “{VOTE_LABELS[vote]}” on {prev.question_id}: A was **{prev.a}**, B was **{prev.b}**."
    )

st.subheader("Leaderboard")
votes_path = Path(run.path) / VOTES_FILE
stamp = (votes_path.stat().st_mtime_ns, votes_path.stat().st_size) if votes_path.exists() else None
failed = tuple(run.scores_document.failed_candidates()) if run.scores_document else ()
rows = _leaderboard(str(run.path), stamp, tuple(run.candidates), failed)
n_votes = sum(1 for _ in read_votes(run.path)) if stamp else 0
if not any(r["votes"] for r in rows):
    st.info("No votes yet. Each vote moves the leaderboard; a few dozen give stable intervals.")
else:
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "rank": st.column_config.NumberColumn("rank"),
            "elo": st.column_config.NumberColumn("score (Elo)", format="%d"),
            "ci_low": st.column_config.NumberColumn("95% low", format="%d"),
            "ci_high": st.column_config.NumberColumn("95% high", format="%d"),
            "both_bad": st.column_config.NumberColumn("both bad"),
        },
    )
    ranked = pd.DataFrame([r for r in rows if r["elo"] is not None])
    order = list(ranked["candidate"])
    y = alt.Y("candidate:N", sort=order, title=None)
    chart = alt.layer(
        alt.Chart(ranked)
        .mark_rule()
        .encode(x=alt.X("ci_low:Q", title="Elo", scale=alt.Scale(zero=False)), x2="ci_high:Q", y=y),
        alt.Chart(ranked)
        .mark_point(filled=True, size=90)
        .encode(x="elo:Q", y=y, tooltip=["candidate", "elo", "ci_low", "ci_high", "votes"]),
    ).properties(height=40 + 35 * len(ranked))
    st.altair_chart(chart)
    st.caption(
        f"{n_votes} vote(s). Bradley–Terry scores on the Elo scale (1000 = average candidate; +400 means "
        "10:1 odds of winning) with 95% bootstrap intervals; a tie counts half a win each, "
        "“both bad” votes are kept but not ranked."
    )
