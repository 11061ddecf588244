"""Read one source as a resumable stream of documents — from the Hub or from a local file, same code.

:class:`DocumentStream` opens a source with ``datasets.load_dataset(..., streaming=True)``: a Hub
dataset at preset ``paper`` (``hub_id``/``config``), a local JSON-lines file at ``smoke``/``cpu``
(``load_dataset("json", data_files=...)``). Everything after that is shared: the paper's
treatment (OSCAR filter, perplexity selection, Restruct templates), the project's one train/held-out
split (:mod:`.split`, decided on the raw record before the treatment), the per-epoch document cap
(training side only), cycling into a new epoch when the source runs out, and a cursor
``(epoch, index)`` that :meth:`state` saves and :meth:`restore` resumes exactly (the raw stream is
re-opened and ``skip``-ped to the same record).

>>> from stablelm2 import config
>>> from stablelm2.data import mixture, sources
>>> cfg = config.load("smoke")
>>> stream = mixture.DocumentStream(sources.sample_specs()["wiki_en"], cfg, split="train")
>>> next(stream)[:14]
'Byte pair enco'
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from . import sample, treatments
from . import split as split_rule
from .sources import SourceError, StreamSpec, check_spec


def open_dataset(spec: StreamSpec, cfg: Any):
    """A streaming ``datasets.IterableDataset`` of the source's raw records (Hub or local file).

    Records are dicts as the source stores them (untreated, both splits). A local file shipped with the
    package is first checked against the sample manifest (:func:`.sample.verify`).

    Raises:
        SourceError: the spec names a Hub dataset but ``cfg.run.offline`` is set.
        SampleError: a shipped sample file is missing or differs from its manifest sha256.
    """
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


class DocumentStream:
    """The documents of one source and split, epoch after epoch; ``state()``/``restore()`` resume exactly.

    Iterating yields each document's text (``str``) after the source's treatment (§2.2: OSCAR filter,
    FanFics perplexity selection, Restruct-v1 templates). ``split`` is ``"train"`` or ``"val"``
    (:mod:`.split`); ``cycle=False`` stops after one epoch instead of starting the next. The training
    side reads at most ``cfg.data.max_docs_per_source`` raw records per epoch (0: all).

    Raises:
        SourceError: an invalid spec (:func:`.sources.check_spec`) or a split other than
            ``"train"``/``"val"``; while iterating, an epoch that gives no document of the split or a
            record without the spec's ``text_field``.
    """

    def __init__(self, spec: StreamSpec, cfg: Any, split: str = "train", *, cycle: bool = True):
        check_spec(spec)
        if split not in ("train", "val"):
            raise SourceError(f"split = {split!r}; use 'train' or 'val'")
        self.spec, self.cfg, self.split, self.cycle = spec, cfg, split, cycle
        self.cap = cfg.data.max_docs_per_source or None
        self.epoch, self.index = 0, 0
        self.threshold = cfg.data.val_fraction
        self._selected: set[int] | None = None
        self._it: Iterator[tuple[int, str]] | None = None
        self._yielded_this_epoch = 0
        if spec.hub_id is None:
            self._calibrate_local()

    # -- the split is the project's one rule (:mod:`.split`): decided on the raw record, before any
    #    treatment; a local file holds out at least its lowest-hash document
    def _calibrate_local(self) -> None:
        self.threshold = split_rule.threshold(self.spec, self.cfg)

    def _raw(self, skip: int) -> Iterator[dict[str, Any]]:
        ds = open_dataset(self.spec, self.cfg)
        if self.cap and self.split == "train":  # the cap bounds training reads; held-out text is never capped
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
        """(record index, text) of this split's records, after the treatment filters.

        The split is decided first, on the raw record (:func:`.split.raw_document`), then the treatment.
        """
        for i, record in enumerate(raw, start):
            held = split_rule.hash_fraction(split_rule.raw_document(record, self.spec)) < self.threshold
            if held != (self.split == "val"):
                continue
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
        """The cursor ``{"epoch", "index"}``: epochs completed, and the raw-record index to read next.

        ``index`` counts the source's raw records (both splits, before any filter) within the epoch.
        """
        return {"epoch": self.epoch, "index": self.index}

    def restore(self, state: dict[str, int]) -> None:
        """Resume at a cursor from :meth:`state`: the next read re-opens the raw stream and skips to it."""
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._it = None
        self._yielded_this_epoch = 1  # resuming mid-epoch: the epoch already gave documents
