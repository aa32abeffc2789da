"""METEOR (NLTK's implementation) on a WordNet that is already on the machine.

NLTK downloads its WordNet at first use, which bakeoff, running offline, never does. Debian ships the same
WordNet 3.0 database as the package ``wordnet-base`` (``/usr/share/wordnet``), in the format NLTK's
``WordNetCorpusReader`` reads; ``make test`` installs it the way it installs chromium. Where WordNet is looked
for, first match wins (:func:`wordnet_candidates`):

1. ``BAKEOFF_WORDNET``: a folder holding ``index.noun``, ``data.noun``, ... (when set, nothing else is tried);
2. ``corpora/wordnet`` under each ``NLTK_DATA`` folder, ``~/nltk_data`` and ``/usr/share/nltk_data`` (where
   ``nltk.download("wordnet")`` on a connected machine puts it);
3. ``/usr/share/wordnet`` (Debian/Ubuntu ``apt-get install wordnet-base``).

Without one, naming ``meteor`` in a recipe is a validation error that names the package
(:meth:`Meteor.unavailable`), never a failure half-way through a run. Debian's package lacks the small
``lexnames`` table NLTK's reader opens first (the 45 lexicographer file names of WordNet 3.0, printed in
``man 5 lexnames``); the reader here supplies it when the folder has none, and skips NLTK's mapping onto
the downloaded WordNet (which opens that one's ``index.sense``, absent here).

Light on purpose: NLTK is imported when METEOR first scores.
"""

from __future__ import annotations

import io
import os
import re
from functools import cache, cached_property
from pathlib import Path

from bakeoff.eval.metrics import Metric, MetricResult

__all__ = ["DEBIAN_WORDNET", "WORDNET_ENV", "Meteor", "find_wordnet", "wordnet_candidates", "wordnet_reader"]

WORDNET_ENV = "BAKEOFF_WORDNET"
DEBIAN_WORDNET = Path("/usr/share/wordnet")
NLTK_DATA_DIRS = ("~/nltk_data", "/usr/share/nltk_data")

# What a folder must hold to be read as WordNet (NLTK opens these; `lexnames` is supplied when absent).
_REQUIRED = tuple(f"{kind}.{pos}" for pos in ("noun", "verb", "adj", "adv") for kind in ("index", "data")) + (
    "noun.exc",
    "verb.exc",
    "adj.exc",
    "adv.exc",
)

# WordNet 3.0's lexicographer files in file-number order (lexnames(5WN)); the category is the name's prefix.
_LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
LEXNAMES_TEXT = "".join(
    f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES)
)

INSTALL_HINT = (
    "install Debian's WordNet (`apt-get install wordnet-base`, which `make test` does) or point "
    f"{WORDNET_ENV} at a WordNet 3.0 folder (index.noun, data.noun, ...)"
)


def wordnet_candidates() -> list[Path]:
    """The folders searched for WordNet, in order (only ``BAKEOFF_WORDNET`` when it is set)."""
    explicit = os.environ.get(WORDNET_ENV)
    if explicit:
        return [Path(explicit).expanduser()]
    roots = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p] + list(NLTK_DATA_DIRS)
    return [Path(r).expanduser() / "corpora" / "wordnet" for r in roots] + [DEBIAN_WORDNET]


def _missing(folder: Path) -> list[str]:
    return [name for name in _REQUIRED if not (folder / name).is_file()]


def find_wordnet() -> tuple[Path | None, str]:
    """The first folder of :func:`wordnet_candidates` that holds WordNet, else ``None`` and why not."""
    candidates = wordnet_candidates()
    for folder in candidates:
        if not _missing(folder):
            return folder, ""
    if os.environ.get(WORDNET_ENV):
        folder = candidates[0]
        what = "does not exist" if not folder.is_dir() else f"lacks {', '.join(_missing(folder)[:3])}"
        return None, f"{WORDNET_ENV}={folder} {what}; {INSTALL_HINT}"
    searched = ", ".join(str(c) for c in candidates)
    return None, f"METEOR needs WordNet and none was found (searched {searched}); {INSTALL_HINT}"


@cache
def wordnet_reader(folder: Path):
    """NLTK's ``WordNetCorpusReader`` over ``folder`` (one per folder and process; loading takes a second).

    The folder is added to ``nltk.data.path``, which is how NLTK's path guard is told to trust it.
    """
    import warnings

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    real = str(folder.resolve())
    if real not in nltk.data.path:
        nltk.data.path.append(real)

    class _Reader(WordNetCorpusReader):
        def open(self, file):
            if file == "lexnames" and not (folder / "lexnames").is_file():
                return io.StringIO(LEXNAMES_TEXT)
            return super().open(file)

        def map_wn(self, version="wordnet"):
            # NLTK maps the loaded WordNet onto the one `nltk.download` installs (for multilingual data) by
            # opening that one's index.sense; this *is* the English WordNet, and there is nothing to map to.
            return None

    with warnings.catch_warnings():
        # English-only is what METEOR uses; the reader warns that Open Multilingual WordNet is absent.
        warnings.filterwarnings("ignore", "The multilingual functions", UserWarning)
        return _Reader(real, None)


_TOKEN = re.compile(r"\w+|[^\w\s]")


class Meteor(Metric):
    """METEOR (NLTK ``meteor_score``): unigram matches by surface form, Porter stem and WordNet synonym,
    with a fragmentation penalty; alpha 0.9, beta 3, gamma 0.5, lower-cased, word and punctuation tokens."""

    name = "meteor"
    task = "qa"
    description = "METEOR (NLTK): exact, stem and WordNet-synonym unigram matches, 0-1"

    @classmethod
    def unavailable(cls) -> str | None:
        _, why = find_wordnet()
        return why or None

    @cached_property
    def _wordnet(self):
        folder, why = find_wordnet()
        if folder is None:
            raise ValueError(why)
        return wordnet_reader(folder)

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        if not response.strip():
            return MetricResult(0.0, "empty response")
        from nltk.translate.meteor_score import meteor_score

        value = meteor_score([_TOKEN.findall(reference)], _TOKEN.findall(response), wordnet=self._wordnet)
        return MetricResult(float(value))
