"""Benchmarks of llm-sidecar against its floors and its alternatives.

``python -m bench`` runs them all and writes ``docs/benchmarks.md``; ``--smoke``
runs tiny sizes. Kept import-light: ``python -m bench.floor_server`` is timed.
"""
