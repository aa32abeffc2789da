"""What every run document shares: unknown keys kept, unset fields left out of the dump, reading and writing.

Compatibility is the rule. Every field has a default, so an old or partial file loads; every model keeps keys
it does not declare (``extra="allow"``: a newer or another producer's file loads, and its keys are written
back). A document dumps exactly the keys it was given (:meth:`Document.to_dict` leaves unset fields out), in
the order they are declared — the order the writers have always used, so the JSON on disk keeps its layout
byte for byte and an existing run reads back equal. Numbers keep their JSON type (:data:`Number`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from bakeoff.io import write_json_atomic

__all__ = ["Document", "Number", "RunDocument", "finite", "interval_of"]

Number = float | int
"""A JSON number: an int stays an int (``0``, not ``0.0``), so a document dumps back as it was written."""

# Where other producers put an interval around a mean (``ci`` is what bakeoff writes; the first found wins).
_INTERVAL_PAIRS = (("ci_low", "ci_high"), ("ci95_low", "ci95_high"), ("low", "high"), ("lower", "upper"))
_INTERVAL_LISTS = ("ci", "ci95", "interval")


class Document(BaseModel):
    """A part of a run document: unknown keys kept, unset fields left out of :meth:`to_dict`."""

    model_config = ConfigDict(extra="allow")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, with exactly the keys this document was given or assigned."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def of(cls, data: Self | Mapping[str, Any] | None) -> Self:
        """``data`` as this document: itself if it already is one, else validated (``None`` = empty).

        Raises:
            pydantic.ValidationError: ``data`` does not fit (the error names the key path).
        """
        if isinstance(data, cls):
            return data
        return cls.model_validate(dict(data or {}))


class RunDocument(Document):
    """A whole file of a run folder."""

    @classmethod
    def read(cls, path: Path) -> Self:
        """Read and validate a file.

        Raises:
            OSError: unreadable. ValueError: not JSON, or (``pydantic.ValidationError``) not this document.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{Path(path).name} is not a JSON object")
        return cls.model_validate(data)

    def write(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file), as the run store always has (indent 2)."""
        write_json_atomic(Path(path), self.to_dict())


def finite(value: Any) -> float | None:
    """A finite number as a float, else ``None`` (NaN, infinity, a string or a bool count as missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _pair(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = finite(value[0]), finite(value[1])
        if low is not None and high is not None:
            return low, high
    if isinstance(value, Mapping):
        return interval_of(value)
    return None, None


def interval_of(entry: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(low, high)`` from an entry carrying an interval in any spelling in use (``(None, None)``: none)."""
    for low_key, high_key in _INTERVAL_PAIRS:
        low, high = finite(entry.get(low_key)), finite(entry.get(high_key))
        if low is not None and high is not None:
            return low, high
    for key in _INTERVAL_LISTS:
        low, high = _pair(entry.get(key))
        if low is not None:
            return low, high
    return None, None
