"""Benchmark evaluation: pure metrics (`eval.metrics`), model-based scorers that may be unavailable offline
(`eval.components`), one scoring module per benchmark (`eval.tasks`, registry `get_task`), and paired statistics for
comparing runs (`eval.stats`).

Imports `selfrag`, never the reverse. Never write `from eval import eval`.
"""
