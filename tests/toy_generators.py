"""A toy backend for fast pipeline tests: an extractive "model" that answers synthesis prompts by copying the
sentence it was asked about, and labelling prompts with the first label word in the text. The real model is
exercised by the tests that need its behaviour (tests/test_synth_dask.py, tests/test_synthesizer.py)."""

from __future__ import annotations

import json
import re

from bakeoff.core import Generation


class ExtractiveGenerator:
    """Copies the focus sentence into ``{"question", "answer"}``; ``broken`` sentences (by substring) get a
    non-JSON reply, ``failing`` ones a backend error."""

    name = "toy:extractive"

    def __init__(self, broken: tuple[str, ...] = (), failing: tuple[str, ...] = ()) -> None:
        self.broken = broken
        self.failing = failing
        self.calls = 0
        self.prompts = 0

    def generate(self, conversations, settings, progress=None):
        self.calls += 1
        self.prompts += len(conversations)
        outs = []
        for convo in conversations:
            user = convo[-1]["content"]
            if convo[0]["content"].startswith("Classify"):
                labels = re.search(r"one of: (.*?)\. Reply", convo[0]["content"]).group(1).split(", ")
                found = [lab for lab in labels if lab in user.lower()]
                outs.append(Generation(json.dumps({"label": found[0]}) if found else "no idea"))
                continue
            match = re.search(r'part of the text: "(.*)"$', user, re.S)
            focus = match.group(1) if match else user.rsplit("Text:\n", 1)[-1].split("\n\n")[0]
            if any(s in focus for s in self.failing):
                outs.append(Generation("", error="RuntimeError: server on fire"))
            elif any(s in focus for s in self.broken):
                outs.append(Generation("Sure! Here is a question about the text", truncated=True))
            else:
                words = focus.split()
                reply = {"question": f"What does the text say about {' '.join(words[1:5])}?", "answer": focus}
                outs.append(Generation(json.dumps(reply), completion_tokens=len(words)))
        return outs

    def stream(self, conversation, settings):
        yield self.generate([conversation], settings)[0].text
