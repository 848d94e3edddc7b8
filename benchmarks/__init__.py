"""Benchmark suite for ``ImageUrlFeaturizer``: ``python -m benchmarks.run`` (``--smoke`` for a quick check).

Modules: :mod:`benchmarks.corpus` (deterministic image corpus and wide Parquet
table), :mod:`benchmarks.server` (loopback HTTP server with per-request
latency), :mod:`benchmarks.measure` (process-tree CPU time and worker RSS),
:mod:`benchmarks.contenders` (row UDF, featurizer, no-Spark ceiling,
pass-through floor) and :mod:`benchmarks.run` (scenarios, checks, report).
"""
