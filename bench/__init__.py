"""bakeoff's benchmarks: each module compares bakeoff with the hand-written way in one process.

``python -m bench`` (or ``make bench``) runs them all and rewrites ``docs/benchmarks.md``;
``python -m bench.bench_training --toy`` runs one at toy size.
"""
