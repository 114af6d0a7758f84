"""Benchmark evaluation: pure metrics (`eval.metrics`), model-based scorers that may be unavailable offline
(`eval.components`), one scoring module per benchmark (`eval.tasks`, registry `get_task`), paired statistics for
comparing runs (`eval.stats`), the non-Self-RAG baselines (`eval.baselines`), the files of an evaluate run and their
comparison (`eval.runs`), and threshold / reward-weight sweeps over a saved run (`eval.sweeps`).

Imports `selfrag`, never the reverse. Never write `from eval import eval`.
"""
