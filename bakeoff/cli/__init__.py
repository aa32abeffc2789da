"""The ``bakeoff`` command line: one module per group of commands, each a thin layer over the packages below.

May import every ``bakeoff`` package; start-up imports only typer and rich (heavy imports live inside commands).
"""
