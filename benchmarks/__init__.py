"""Benchmarks with targets: each exits non-zero when its target is missed."""
