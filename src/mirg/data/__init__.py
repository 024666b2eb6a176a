"""Data: one sample schema, the synthetic multi-image world, COCO-style and MIG-Bench
readers, reasoning-trajectory construction and exports for TRL, verl and LLaMA-Factory."""
