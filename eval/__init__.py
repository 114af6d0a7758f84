"""Benchmark evaluation: one task module per benchmark, pure metrics, the runner and reports.

Imports `selfrag`, never the reverse. Never write `from eval import eval`. (Filled in by the evaluation issue.)
"""
