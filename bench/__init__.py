"""Benchmarks (run as modules, e.g. ``python -m bench.age_throughput``)."""
