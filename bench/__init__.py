"""Micro-benchmarks, runnable as modules: ``python -m bench.<name>``."""
