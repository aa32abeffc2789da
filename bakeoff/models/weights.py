"""Where a model's weights are on this machine: the transformers folder that training, merging an adapter
and GGUF export need. The ``weights`` job of :data:`bakeoff.models.refs.REF_KINDS` names the functions below;
nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

from bakeoff.errors import BakeoffError
from bakeoff.models.refs import EmbeddedRef, HFRef, ModelRef, kind_of, scheme_forms

__all__ = ["LocalWeightsError", "embedded_weights", "hf_weights", "local_weights"]


class LocalWeightsError(BakeoffError):
    """A model's weights are not on this machine, or its kind of reference has none bakeoff can load."""


def local_weights(ref: ModelRef, *, quiet: bool = False) -> Path:
    """The folder that holds a model's weights (an embedded model is imported on first use, quietly when
    ``quiet``; a hub id must already be in the Hugging Face cache).

    Raises:
        LocalWeightsError: the weights are not on this machine, or the reference names none (``ollama:``...).
    """
    kind = kind_of(ref)
    if not kind.can("weights"):
        raise LocalWeightsError(
            f"{ref} has no local weights ({kind.what}); training, merging and export need {scheme_forms('weights')}"
        )
    return kind.job("weights")(ref, quiet=quiet)


# -- the weights job of each kind ----------------------------------------------------------------------------
def embedded_weights(ref: EmbeddedRef, *, quiet: bool = False) -> Path:
    from bakeoff.models.embedded import ensure_imported

    return ensure_imported(ref.name, quiet=quiet)


def hf_weights(ref: HFRef, *, quiet: bool = False) -> Path:
    path = Path(ref.path).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.path, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any hub error means "not in the local cache"
        raise LocalWeightsError(
            f"{ref}: no local weights ({type(exc).__name__}). Download them first (for example "
            f"`hf download {ref.path}`) or give a folder (hf:/path/to/model); bakeoff never downloads "
            "weights at run time."
        ) from None
