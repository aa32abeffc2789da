"""A toy bakeoff metric plugin: the share of the reference's words that the answer contains."""

import re

from bakeoff.eval.metrics import Metric, MetricResult


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3}


class KeywordRecall(Metric):
    """Share of the reference's words (3+ characters, any case) found in the answer."""

    name = "keyword_recall"
    task = "qa"
    description = "share of the reference's words found in the answer (toy plugin)"

    def score(self, *, response: str, reference: str) -> MetricResult:
        wanted = _words(reference)
        if not wanted:
            return MetricResult(None, "the reference has no words of 3+ characters")
        return MetricResult(len(wanted & _words(response)) / len(wanted))
