"""The one base of every error bakeoff raises on purpose.

A :class:`BakeoffError` is a condition its message explains and says how to fix (a bad recipe, a model that
cannot be reached, a run that cannot be found); the command line prints it on one line with no traceback.
Anything else that escapes is a bug and keeps its traceback. Leaf module: imports nothing from bakeoff.
"""

from __future__ import annotations

__all__ = ["BakeoffError"]


class BakeoffError(Exception):
    """Base class of bakeoff's domain errors; each package subclasses it for its own conditions."""
