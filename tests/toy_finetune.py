"""A stand-in for the fine-tune agent (tests only): its settings carry the `register:` mixin, it is
`Registrable`, and prepare() copies a finished fine-tune (adapter and any exports) from another run into this
run's folder, in the fine-tune agent's layout."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field

from bakeoff.agents.base import Agent, AgentSettings, Registrable
from bakeoff.core import Answer
from bakeoff.serving.settings import OllamaRegistrationMixin


class ToyFinetuneSettings(AgentSettings, OllamaRegistrationMixin):
    """Pretends to fine-tune: copies `training/<name>/` (and `exports/<name>/`) from `source_run`."""

    source_run: Path = Field(..., description="Run folder holding training/<name>/adapter to copy.")


class ToyFinetuneAgent(Agent, Registrable):
    settings_model = ToyFinetuneSettings
    settings: ToyFinetuneSettings

    def prepare(self) -> None:
        for part in ("training", "exports"):
            src = self.settings.source_run / part / self.name
            if src.is_dir() and self.ctx.run_dir is not None:
                shutil.copytree(src, self.ctx.run_dir / part / self.name, dirs_exist_ok=True)

    def registration(self):
        return self.settings.ollama_registration

    def answer(self, questions):
        return [Answer(question_id=q.id, text="toy answer") for q in questions]
