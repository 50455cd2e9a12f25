"""Benchmarks (``make perf``): each ``perf_*.py`` module prints ratios measured in the same run."""
