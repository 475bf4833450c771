"""Benchmarks: speed measured side by side in one run, printed as tables and ratios."""
