"""Benchmarks and profilers: in the repo, not in the wheel."""
