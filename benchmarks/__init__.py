"""Benchmarks, run from a checkout by `make bench-*`; not installed (setup.py)."""
