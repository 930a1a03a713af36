"""Facts every room reads: the tracking plan, raw table contracts, mart shapes, model kinds.

Written once here and derived everywhere else. This package imports nothing of the project
(only the standard library and PyYAML), so `orchestration`, `ml`, `expectations`, the tests
and the benchmarks may all import it without an import running the wrong way.
"""
