"""The ``bakeoff`` command line.

Start-up must stay fast (``bakeoff --help`` well under half a second): only typer and rich are imported here;
everything heavy (torch, transformers, chromadb, ...) is imported inside the command that needs it.
"""

from __future__ import annotations

import gc
import os
from typing import Annotated

# Never download weights at run time unless the user explicitly turned this off.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer  # noqa: E402

app = typer.Typer(
    name="bakeoff",
    help="Compare few-shot, RAG and fine-tuned candidates declared in one YAML recipe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    allow_outside: Annotated[
        bool,
        typer.Option(
            "--allow-outside",
            help="Let recipe paths point outside the recipe's project root (the nearest folder with .git or "
            "pyproject.toml). Only for recipes you trust.",
        ),
    ] = False,
) -> None:
    """Compare few-shot, RAG and fine-tuned candidates declared in one YAML recipe."""
    if allow_outside:
        os.environ["BAKEOFF_ALLOW_OUTSIDE"] = "1"


from bakeoff.cli import eval as eval_commands  # noqa: E402
from bakeoff.cli import rag, recipe, run, serving, synth, tracking, ui  # noqa: E402

# The command table: every command, in the order `bakeoff --help` lists them, and the one function behind it.
COMMANDS = (
    ("validate", recipe.validate),
    ("schema", recipe.schema),
    ("run", run.run),
    ("runs", run.runs),
    ("show", run.show),
    ("metrics", recipe.metrics),
    ("chat", run.chat),
    ("index", rag.index),
    ("retrieve", rag.retrieve),
    ("ui", ui.ui),
    ("export", serving.export),
    ("score", eval_commands.score),
    ("report", eval_commands.report),
    ("mlflow", tracking.mlflow),
    ("synthesize", synth.synthesize),
    ("leakage", synth.leakage),
)
GROUPS = (("models", serving.models),)  # sub-commands: bakeoff models register|list|remove

for _name, _function in COMMANDS:
    app.command(_name)(_function)
for _name, _group in GROUPS:
    app.add_typer(_group, name=_name)


def main() -> None:
    # What start-up imported lives as long as the process; frozen, it is never traced again by the cycle
    # collector, which otherwise spends ~10% of `bakeoff validate` re-scanning it (and scanning it at exit).
    gc.freeze()
    app()


if __name__ == "__main__":
    main()
