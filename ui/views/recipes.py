"""Recipes: edit a recipe with live validation, read the schema help for a key, save, and run it."""

from pathlib import Path

import streamlit as st

from bakeoff.recipe.load import RecipeError
from bakeoff.ui import _common as common
from bakeoff.ui.confine import PathRefused
from bakeoff.ui.editor import (
    annotations,
    find_recipes,
    help_for_problem,
    read_saved,
    save_recipe,
    schema_keys,
    validate_text,
)
from bakeoff.ui.launch import follow, launch_run
from bakeoff.ui.trusted_code import UntrustedCode

try:
    from streamlit_ace import st_ace
except ImportError:  # the plain text area works everywhere
    st_ace = None

NEW = "(new recipe)"
TEMPLATE = """\
# What this recipe compares, what it needs, and how to run it.
name: my-recipe
description: Zero-shot vs 3-shot on the sample contract questions.
base_model: embedded:smollm2-135m-instruct
task: qa
eval:
  questions: ../data/contract-qa.jsonl
  limit: 10
candidates:
  - name: zero-shot
    agent: fewshot
  - name: three-shot
    agent: fewshot
    k: 3
    examples: ../data/contract-examples.jsonl
"""


@st.cache_resource(show_spinner=False)
def _schema_keys():
    return schema_keys()


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


st.title("Recipes")
recipes_dir = common.recipes_dir()
runs = common.load_runs()
files = find_recipes(
    [recipes_dir],
    [Path(r.manifest_document.recipe_path) for r in runs if r.manifest_document.recipe_path],
)
options = [_display(p) for p in files] + [NEW]
top_left, top_right = st.columns([3, 2])
source = top_left.selectbox("Recipe file", options, key="recipe_source")

# Load the chosen file into the editor once per choice (edits are kept across reruns until another pick).
if st.session_state.get("recipe_loaded_from") != source:
    if source == NEW:
        text, path_text = TEMPLATE, _display(recipes_dir / "my-recipe.yaml")
    else:
        path_text = source
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            text = f"# cannot read {source}: {exc}\n"
    st.session_state.update(
        recipe_loaded_from=source,
        recipe_text=text,
        recipe_path=path_text,
        recipe_version=st.session_state.get("recipe_version", 0) + 1,
    )
version = st.session_state["recipe_version"]
path_text = top_right.text_input(
    "Save as",
    key="recipe_path",
    help=f"Saved only inside `{_display(recipes_dir)}`, as a .yaml file; a relative path here starts from "
    f"`{Path.cwd()}`. Relative paths inside the recipe resolve against this file's folder.",
)
path = Path(path_text).expanduser()

plain = st_ace is None or st.toggle(
    "Plain text editor", key="recipe_plain", help="Use a plain text box instead of the code editor."
)
editor_key = f"recipe_{'area' if plain else 'ace'}_{version}"
# The editor's latest value is in session state before it is drawn, so its error marks are current.
text = st.session_state.get(editor_key)
if not isinstance(text, str):
    text = st.session_state["recipe_text"]
st.session_state["recipe_text"] = text
result = validate_text(path, text)

left, right = st.columns([3, 2])
with left:
    if plain:
        st.text_area("Recipe YAML", value=text, height=520, key=editor_key, label_visibility="collapsed")
    else:
        st_ace(
            value=text,
            language="yaml",
            theme="chrome",
            keybinding="vscode",
            min_lines=24,
            max_lines=40,
            font_size=13,
            tab_size=2,
            wrap=True,
            show_gutter=True,
            annotations=annotations(result.problems),
            auto_update=True,
            key=editor_key,
        )
        st.caption("Validation runs as you type; the gutter marks lines with problems.")

with right:
    st.subheader("Validation")
    if result.ok:
        r = result.recipe
        summary = (
            f"✓ valid: recipe **{r.name}**, task {r.task}, {len(r.candidates)} candidates ({', '.join(r.names)})"
            if r is not None
            else "✓ no problems found"
        )
        st.success(summary)
    else:
        n = len(result.problems)
        st.error(f"{n} problem{'s' if n != 1 else ''} found")
        st.code("\n".join(result.lines()), language=None, wrap_lines=True)
        keys = _schema_keys()
        for problem in result.problems:
            help_ = help_for_problem(problem, keys)
            if help_ is not None:
                with st.expander(f"help: {help_.path}"):
                    st.markdown(help_.markdown())
    for p in result.not_imported:
        st.info(
            f"line {p.line}: `{p.path}` names Python code; it is imported only when you press Run "
            "(the console never runs a recipe's code while you edit)."
        )

    st.subheader("Key help")
    keys = _schema_keys()
    key = st.selectbox(
        "Recipe key",
        list(keys),
        key="recipe_help_key",
        help="Type to search; the text comes from the schema.",
    )
    st.markdown(keys[key].markdown())

saved_text = read_saved(path)
unsaved = saved_text != text
draft = False
if not result.ok:
    draft = st.checkbox(
        "Save it with its problems (as a draft)",
        key="recipe_save_draft",
        help="A recipe with problems is saved only when you tick this; it cannot run until it validates.",
    )


def _save() -> Path | None:
    """Save the editor's text where *Save as* says; say on the page why not."""
    try:
        return save_recipe(path, text, roots=[recipes_dir], allow_invalid=draft)
    except PathRefused as exc:
        st.error(f"Not saved: {exc}.")
    except RecipeError as exc:
        n = len(exc.problems)
        st.error(
            f"Not saved: the recipe has {n} problem{'s' if n != 1 else ''} (listed above). Fix "
            f"{'them' if n != 1 else 'it'}, or tick “Save it with its problems” to keep a draft."
        )
    except OSError as exc:
        st.error(f"Not saved: {exc.strerror or exc} ({path}).")
    return None


b1, b2, b3 = st.columns([1, 1, 3])
notices = st.container()
if b1.button("Save", key="recipe_save", disabled=not unsaved, width="stretch"):
    with notices:
        saved = _save()
    if saved is not None:
        st.toast(f"saved {_display(saved)}")
        st.rerun()
run_label = "Save and run" if unsaved else "Run"
launch = st.session_state.get("recipe_launch")
running = launch is not None and launch.process.poll() is None
if b2.button(
    run_label,
    key="recipe_run",
    type="primary",
    disabled=not result.ok or running,
    width="stretch",
    help="Starts `bakeoff run` in the background with this console's runs folder.",
):
    with notices:
        target = _save() if unsaved else path
        if target is not None:
            try:
                st.session_state["recipe_launch"] = launch_run(
                    target, common.runs_dir(), writable=[recipes_dir]
                )
            except UntrustedCode as exc:
                st.error(
                    "Not started: this recipe names code the console does not run.\n\n"
                    + "\n".join(f"- {p}" for p in exc.problems)
                )
            except (RecipeError, OSError) as exc:
                st.error(f"cannot start the run: {exc}")
            else:
                st.rerun()
b3.caption(
    ("unsaved changes · " if unsaved else "")
    + (
        "the run button is off until the recipe is valid"
        if not result.ok
        else f"runs go to `{common.runs_dir()}`"
    )
)


def _show_progress() -> None:
    launch = st.session_state.get("recipe_launch")
    st.subheader(f"Run of {launch.recipe_name}")
    progress = follow(launch)
    label = f"{progress.stage}"
    if progress.total:
        label += f" · {progress.answered}/{progress.total} answers"
    st.progress(progress.fraction, text=label)
    if progress.stage in ("complete", "partial"):
        if progress.stage == "partial":
            st.warning(progress.error or "some candidates failed: every one of their answers is an error")
        else:
            st.success(f"Run complete: `{progress.run_path}`. It is listed on the Runs page.")
        if st.button("Open in Compare", key="recipe_open_compare"):
            common.open_page("compare", common.load_run(progress.run_path))
    elif progress.stage == "failed":
        st.error(progress.error or "the run failed")
    with st.expander("output", expanded=progress.stage == "failed"):
        st.code(progress.log_tail or "(no output yet)", language=None)
    if progress.finished and launch.process.poll() is not None and st.session_state.get("recipe_following"):
        st.session_state["recipe_following"] = False
        st.rerun()  # stop polling: redraw the page once without the timer


launch = st.session_state.get("recipe_launch")
if launch is not None:
    if launch.process.poll() is None or not follow(launch).finished:
        st.session_state["recipe_following"] = True
        st.fragment(run_every=2.0)(_show_progress)()  # re-reads the run folder every 2 s while it runs
    else:
        _show_progress()
