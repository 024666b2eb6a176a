"""Entry points that outside engines call into: verl's reward.

Modules here import only what their engine needs (``verl`` pulls the pure core alone), so
they load inside an engine's own environment, whose pinned versions differ from ours.
"""
