"""The documents a run writes, as pydantic models: ``scores.json`` (:mod:`.scores`) and ``manifest.json``
(:mod:`.manifest`), on the shared base in :mod:`.base`. A leaf: imports only ``bakeoff.io`` and pydantic.
"""
