"""The recipe keys of serving: ``register: {ollama: NAME, quantize: q4_k_m}`` on a fine-tuned candidate.

Light on purpose (pydantic only): the agents' settings import it while a recipe is validated; doing the
registration is :mod:`bakeoff.serving.register`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OllamaRegistration", "OllamaRegistrationMixin"]

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
