"""The recipe keys of serving on a fine-tuned candidate: ``register: {ollama: NAME, quantize: q4_k_m}`` and
``serve: {forms: [f16, q8_0]}``.

Light on purpose (pydantic only): the agents' settings import it while a recipe is validated; doing the
registration is :mod:`bakeoff.serving.register`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OllamaRegistration", "OllamaRegistrationMixin", "ServedFormName", "ServedForms", "ServedFormsMixin"]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9][A-Za-z0-9._\-]*)?$"


class OllamaRegistration(BaseModel):
    """Register a fine-tuned candidate's model in Ollama after training."""

    model_config = ConfigDict(extra="forbid")

    ollama: str = Field(
        ...,
        pattern=_NAME_PATTERN,
        max_length=200,
        description="Name of the model in Ollama, e.g. `contract-lora` or `team/contract-lora:q4` "
        "(chat with it afterwards: `ollama run NAME`).",
    )
    quantize: Literal["f16", "q8_0", "q4_k_m"] = Field(
        "q4_k_m",
        description="GGUF type uploaded to Ollama, quantized locally with llama.cpp: `q4_k_m` (smallest), "
        "`q8_0` (near-lossless) or `f16` (unquantized).",
    )
    replace: bool = Field(
        False, description="Replace an existing Ollama model of the same name (otherwise that is an error)."
    )


class OllamaRegistrationMixin(BaseModel):
    """Adds the ``register:`` key to a candidate's settings (the fine-tune agent's settings inherit this)."""

    ollama_registration: OllamaRegistration | None = Field(
        None,
        alias="register",
        description="Register the trained model in Ollama after training, e.g. `{ollama: contract-lora, "
        "quantize: q4_k_m}`. Needs an Ollama server (recipe `ollama_host`, else OLLAMA_HOST); a failure is "
        "noted in the run, and `bakeoff models register RUN CANDIDATE --name NAME` can retry it.",
    )


ServedFormName = Literal["f16", "q8_0", "q4_k_m"]


class ServedForms(BaseModel):
    """Evaluate the forms a fine-tune is deployed in (GGUF exports) as candidates of their own in the same run."""

    model_config = ConfigDict(extra="forbid")

    forms: list[ServedFormName] = Field(
        ...,
        min_length=1,
        description="GGUF types to export (merge → llama.cpp convert → quantize; cached by content hash) and "
        "evaluate as candidates `NAME@FORM`, answered in-process by llama.cpp — and, when the recipe names an "
        "`ollama_host`, also as `NAME@ollama-FORM` through that Ollama server: `f16` (unquantized), `q8_0`, "
        "`q4_k_m`.",
    )
    tolerance: float = Field(
        0.1,
        ge=0.0,
        description="A question's headline value 'moved' when a served form's value differs from the "
        "training-time model's by more than this (reported as the share of moved answers).",
    )
    ollama_template: str | None = Field(
        None,
        min_length=1,
        description="A Go template sent to Ollama instead of the one derived from the model's chat template — "
        "to check a template you ship by hand (e.g. a Modelfile's); leave unset normally.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> ServedForms:
        repeated = sorted({f for f in self.forms if self.forms.count(f) > 1})
        if repeated:
            raise ValueError(f"serve.forms lists {', '.join(repeated)} more than once; name each form once")
        return self


class ServedFormsMixin(BaseModel):
    """Adds the ``serve:`` key to a candidate's settings (the fine-tune agent's settings inherit this)."""

    serve: ServedForms | None = Field(
        None,
        description="Evaluate the served model too, e.g. `{forms: [f16, q8_0]}`: each GGUF form answers as "
        "candidate `NAME@FORM`, and scores.json reports its agreement with this candidate (identical answers, "
        "answers whose headline moved), the paired difference with its interval and test, and a diagnosis when "
        "a form fails outright (template/EOS mismatch).",
    )
