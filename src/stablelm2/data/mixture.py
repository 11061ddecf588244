"""Read one source as a resumable stream of documents — from the Hub or from a local file, same code.

:class:`DocumentStream` opens a source with ``datasets.load_dataset(..., streaming=True)``: a Hub
dataset at preset ``paper`` (``hub_id``/``config``), a local JSON-lines file at ``smoke``/``cpu``
(``load_dataset("json", data_files=...)``). Everything after that is shared: the paper's
treatment (OSCAR filter, perplexity selection, Restruct templates), the train/validation split by
content hash, the per-epoch document cap, cycling into a new epoch when the source runs out, and a
cursor ``(epoch, index)`` that :meth:`state` saves and :meth:`restore` resumes exactly (the raw stream
is re-opened and ``skip``-ped to the same record).

>>> from stablelm2 import config
>>> from stablelm2.data import mixture, sources
>>> cfg = config.load("smoke")
>>> stream = mixture.DocumentStream(sources.sample_specs()["wiki_en"], cfg, split="train")
>>> next(stream)[:14]
'Byte pair enco'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from . import sample, treatments
from .sources import SourceError, StreamSpec, check_spec


def open_dataset(spec: StreamSpec, cfg: Any):
    """A streaming ``datasets.IterableDataset`` of the source's raw records (Hub or local file)."""
    import datasets

    if spec.hub_id is None:
        if cfg.data.source == "local" and spec.data_files:
            for name, meta in sample.SAMPLE_SOURCES.items():  # shipped files are checked against the manifest
                if spec.data_files.endswith(meta["file"]):
                    sample.verify(name)
        return datasets.load_dataset("json", data_files=spec.data_files, split="train", streaming=True)
    if cfg.run.offline:
        raise SourceError(f"source {spec.name!r} streams from the Hub ({spec.hub_id}) but the run is offline; "
                          "use data.source = 'local' (the shipped sample) or the paper preset")
    return datasets.load_dataset(spec.hub_id, name=spec.config, data_files=spec.data_files, split=spec.split,
                                 streaming=True)


@lru_cache(maxsize=1)
def _reference_lm() -> treatments.NGramLM:
    """Reference model for the FanFics perplexity selection: trained on the shipped wiki + books text."""
    texts = [d["text"] for name in ("wiki_en", "books_en") for d in sample.documents(name)]
    return treatments.NGramLM(order=3).fit(texts)


def _hash_fraction(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


class DocumentStream:
    """The documents of one source and split, epoch after epoch; ``state()``/``restore()`` resume exactly."""

    def __init__(self, spec: StreamSpec, cfg: Any, split: str = "train", *, cycle: bool = True):
        check_spec(spec)
        if split not in ("train", "val"):
            raise SourceError(f"split = {split!r}; use 'train' or 'val'")
        self.spec, self.cfg, self.split, self.cycle = spec, cfg, split, cycle
        self.cap = cfg.data.max_docs_per_source or None
        self.epoch, self.index = 0, 0
        self.threshold = cfg.data.val_fraction
        self._selected: set[int] | None = None
        self._it: Iterator[dict[str, Any]] | None = None
        self._yielded_this_epoch = 0
        if spec.hub_id is None:
            self._calibrate_local()

    # -- the split: a document is held out when its content hash falls below the threshold; a small
    #    local source holds out at least its lowest-hash document, so every source can be validated on
    def _calibrate_local(self) -> None:
        texts = [t for _, t in self._texts(self._raw(0))]
        if len(texts) < 2:
            raise SourceError(f"source {self.spec.name!r} has {len(texts)} document(s); it needs at least 2 "
                              "(one to train on, one to validate on)")
        lowest = sorted(_hash_fraction(t) for t in texts)
        self.threshold = max(self.threshold, lowest[0] + 1e-12)
        if lowest[1] < self.threshold and lowest[-1] < self.threshold:
            raise SourceError(f"every document of {self.spec.name!r} fell in the validation split; lower "
                              "data.val_fraction")

    def _raw(self, skip: int) -> Iterator[dict[str, Any]]:
        ds = open_dataset(self.spec, self.cfg)
        if self.cap:
            ds = ds.take(self.cap)
        if skip:
            ds = ds.skip(skip)
        return iter(ds)

    def _text(self, record: dict[str, Any]) -> str:
        if self.spec.treatment == "restruct":
            return treatments.restructure(record)
        if self.spec.text_field not in record:
            raise SourceError(f"source {self.spec.name!r}: records have no field {self.spec.text_field!r} "
                              f"(fields: {', '.join(record)}); fix the source's text_field")
        return str(record[self.spec.text_field])

    def _texts(self, raw: Iterator[dict[str, Any]], start: int = 0) -> Iterator[tuple[int, str]]:
        """(record index, text) after the treatment filters; the split is applied by the caller."""
        for i, record in enumerate(raw, start):
            if self.spec.treatment == "oscar_only" and not treatments.keep_oscar(record):
                continue
            if self._selected is not None and i not in self._selected:
                continue
            yield i, self._text(record)

    def _select_fanfics(self) -> None:
        from .. import facts

        texts = list(self._texts(self._raw(0)))
        keep = min(int(facts.value("data.fanfics_n_docs")), len(texts))
        chosen = treatments.lowest_perplexity([t for _, t in texts], keep, _reference_lm())
        self._selected = {texts[j][0] for j in chosen}

    def __iter__(self) -> DocumentStream:
        return self

    def __next__(self) -> str:
        if self.spec.treatment == "lowest_perplexity" and self._selected is None:
            self._select_fanfics()
        while True:
            if self._it is None:
                self._it = self._texts_with_index(self.index)
            for i, text in self._it:
                self.index = i + 1
                if (_hash_fraction(text) < self.threshold) == (self.split == "val"):
                    self._yielded_this_epoch += 1
                    return text
            if self._yielded_this_epoch == 0:
                raise SourceError(f"source {self.spec.name!r} gave no {self.split} documents; check its files "
                                  "and filters")
            if not self.cycle:
                raise StopIteration
            self.epoch, self.index, self._it, self._yielded_this_epoch = self.epoch + 1, 0, None, 0

    def _texts_with_index(self, start: int) -> Iterator[tuple[int, str]]:
        return self._texts(self._raw(start), start)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._it = None
        self._yielded_this_epoch = 1  # resuming mid-epoch: the epoch already gave documents
