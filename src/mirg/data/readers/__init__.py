"""Readers of published data: each turns one source format into mirg samples
(``mirg convert --format NAME``, docs/data.md "Readers").

* :mod:`~mirg.data.readers.mgrounding`: MGrounding-630k, Migician's training set;
* :mod:`~mirg.data.readers.conversations`: LLaVA / VLM-R1 style conversations and
  VLM-R1's ``problem``/``solution`` grounding records, boxes in a declared profile;
* :mod:`~mirg.data.readers.refcoco`: RefCOCO / RefCOCO+ / RefCOCOg referring expressions
  composed into multi-image samples;
* :mod:`~mirg.data.readers.captions`: COCO caption files joined into samples' captions;
* :mod:`~mirg.data.readers.coco`: COCO-style instance files (``mirg coco``);
* :mod:`~mirg.data.readers.migbench`: MIG-Bench items as samples;
* :mod:`~mirg.data.readers.records`: what they share (streaming JSON lists, JSONL and
  parquet, image sizes from headers, the tally of what was kept and left out).
"""
