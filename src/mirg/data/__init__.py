"""Data: one sample schema, the synthetic multi-image world, readers (COCO-style, MIG-Bench,
and published data in ``readers/``: MGrounding-630k, LLaVA / VLM-R1, RefCOCO, COCO
captions), reasoning-trajectory construction and exports for TRL, verl and LLaMA-Factory."""
