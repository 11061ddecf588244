"""Chapter 01 · the pre-training data: sources, the mixture loader, packing, the shipped sample.

* :mod:`.sources` — the paper's sources as data (Hub ids, domains, licences), Table 1 (unknown, or a
  reader-filled file, validated), token arithmetic for Fig. 1;
* :mod:`.sample` — the small multilingual, multi-domain corpus shipped for ``smoke``/``cpu``;
* :mod:`.treatments` — CulturaX's OSCAR filter, FanFics' n-gram perplexity selection, Restruct-v1;
* :mod:`.mixture` — one resumable document stream per source (Hub streaming or local, same code);
* :mod:`.packing` — Arcade100k tokenization, packing, seeded mixing, :func:`packed_loader`,
  :func:`validation_sets`, shards with a manifest and :func:`batch_at`.

>>> from stablelm2 import config
>>> from stablelm2.data import packed_loader, sample_sources
>>> cfg = config.load("smoke")
>>> sorted(sample_sources(cfg))[:3]
['academic_en', 'books_en', 'code']
>>> loader = packed_loader(cfg)
>>> batch = next(loader)
>>> state = loader.state_dict(); again = next(loader)
>>> loader.load_state_dict(state); bool((next(loader)["input_ids"] == again["input_ids"]).all())
True
"""

from __future__ import annotations

from .packing import (
    PackedLoader,
    batch_at,
    batch_digest,
    pack_shards,
    packed_loader,
    resolve_weights,
    sample_sources,
    validation_sets,
)

__all__ = ["PackedLoader", "batch_at", "batch_digest", "pack_shards", "packed_loader", "resolve_weights", "sample_sources",
           "validation_sets"]
