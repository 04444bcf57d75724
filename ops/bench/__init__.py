"""Benchmarks: each prints JSON figures measured against a baseline in the same run."""
