"""Evaluation: scoring CLI, benchmark runs, inference and reports."""
