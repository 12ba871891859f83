"""Benchmarks, run on demand (`make bench`), never as timed tests. Figures are ratios measured side
by side in one run; `bench/results.json` keeps them under stable keys."""
