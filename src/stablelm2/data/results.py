"""Chapter 01 · The shape of the chapter's ``metrics.json`` numbers (Sec. 2, Table 1, Fig. 1).

:class:`DataMixMetrics` is a ``TypedDict`` (a plain dict at run time, checked by the type checker);
:func:`metrics` builds each part of it from what the chapter's cells compute, the notebook logs what it
returns, and the tests read the keys from the same class. Shares are fractions 0–1; tokens are
Arcade100k tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

import pandas as pd


class DataMixMetrics(TypedDict, total=False):
    """Chapter 01's numbers in ``metrics.json``; a part is there once its cell ran (most need the shipped sample)."""

    table1_known: bool
    """Whether Table 1's sampling weights are known (a reader-filled ``table1_path``)."""
    domain_split: dict[str, float]
    """Domain → share of the sampling weight (Fig. 1), rounded to 4 places."""
    language_split: dict[str, float]
    """Language → share of the sampling weight, rounded to 4 places."""
    sample_tokens: dict[str, int]
    """Source → tokens in the shipped sample."""
    sample_purity: dict[str, float]
    """Multilingual source → share of its characters in its own language (py3langid), rounded to 4 places."""
    sample_stopword_purity: dict[str, float]
    """The same share judged by function words, rounded to 4 places."""
    min_multilingual_purity: float
    """Lowest ``sample_purity`` of the ``multilingual_*`` files, rounded to 4 places."""
    sample_shared_documents: int
    """Documents shared across or within the sample's files (a count)."""
    purity_before: dict[str, float]
    """Multilingual source → its purity as shipped before cleaning."""
    perplexity_kept_sources: list[str]
    """Sources the n-gram perplexity selection keeps, sorted."""
    max_share_error: float
    """Largest |observed share − sampling weight| over the sources of the drawn sequences."""
    resume_exact: bool
    """Whether a loader restored from its state gives the next batch exactly."""
    same_seed_same_batch: bool
    """Whether a fresh loader with the same seed gives the same first batch."""
    first_batch_sha256: str
    """SHA-256 of the first batch (:func:`.packing.batch_digest`)."""
    shard_steps: int
    """Steps packed into shards."""
    shard_hashes: list[str]
    """Each shard's SHA-256, first 16 hex digits."""
    batch_at_exact: bool
    """Whether :func:`.packing.batch_at` reads the same batch from the shards as by replaying the stream."""
    validation_sources: list[str]
    """Sources with a validation set, sorted."""


def metrics(*, table1_known: bool | None = None, domain_shares: Mapping[str, float] | None = None,
            language_shares: Mapping[str, float] | None = None, mix: Iterable[Mapping[str, Any]] | None = None,
            purity: pd.DataFrame | None = None, before_after: pd.DataFrame | None = None,
            perplexity: pd.DataFrame | None = None, observed_shares: pd.DataFrame | None = None,
            resume_exact: bool | None = None, same_seed_same_batch: bool | None = None,
            first_batch_sha256: str | None = None, shards: Mapping[str, Any] | None = None,
            shard_steps: int | None = None, batch_at_exact: bool | None = None,
            validation: Iterable[str] | None = None) -> DataMixMetrics:
    """The parts of chapter 01's numbers given (a part left ``None`` is left out).

    ``domain_shares``/``language_shares``: :func:`.plan.split_by` of the active mix; ``mix``: its rows
    (``sample_tokens`` from those with ``tokens``); ``purity``: :func:`.quality.sample_report` as a frame
    indexed by source; ``before_after``: the cleaning manifest's ``purity_before`` column by source;
    ``perplexity``: :func:`.plan.perplexity_ranking` as a frame; ``observed_shares``:
    :func:`.plan.observed_shares` as a frame; ``shards``: the manifest of :func:`.packing.pack_shards`;
    ``validation``: the source names of :func:`.packing.validation_sets`. The four loader checks are
    given together (``ValueError`` otherwise), as are the three shard ones.
    """
    _together("observed_shares, resume_exact, same_seed_same_batch, first_batch_sha256",
              observed_shares, resume_exact, same_seed_same_batch, first_batch_sha256)
    _together("shards, shard_steps, batch_at_exact", shards, shard_steps, batch_at_exact)
    out: DataMixMetrics = {}
    if table1_known is not None:
        out["table1_known"] = table1_known
    if domain_shares is not None:
        out["domain_split"] = {k: round(v, 4) for k, v in domain_shares.items()}
    if language_shares is not None:
        out["language_split"] = {k: round(v, 4) for k, v in language_shares.items()}
    if mix is not None:
        out["sample_tokens"] = {r["source"]: r["tokens"] for r in mix if "tokens" in r}
    if purity is not None:
        multi = purity[purity.index.str.startswith("multilingual_")]
        out["sample_purity"] = {k: round(float(v), 4) for k, v in purity["purity"].dropna().items()}
        out["sample_stopword_purity"] = {k: round(float(v), 4) for k, v in purity["stopword_purity"].dropna().items()}
        out["min_multilingual_purity"] = round(float(multi["purity"].min()), 4)
        out["sample_shared_documents"] = int(purity["duplicates_across"].sum() + purity["duplicates_within"].sum())
    if before_after is not None:
        out["purity_before"] = {k: float(v) for k, v in before_after["purity_before"].items()}
    if perplexity is not None:
        out["perplexity_kept_sources"] = sorted(set(perplexity[perplexity.kept]["source"]))
    if observed_shares is not None and resume_exact is not None and same_seed_same_batch is not None \
            and first_batch_sha256 is not None:
        out["max_share_error"] = float(observed_shares["abs_error"].max())
        out["resume_exact"], out["same_seed_same_batch"] = resume_exact, same_seed_same_batch
        out["first_batch_sha256"] = first_batch_sha256
    if shards is not None and shard_steps is not None and batch_at_exact is not None:
        out["shard_steps"] = shard_steps
        out["shard_hashes"] = [s["sha256"][:16] for s in shards["shards"]]
        out["batch_at_exact"] = batch_at_exact
    if validation is not None:
        out["validation_sources"] = sorted(validation)
    return out


def _together(names: str, *parts: object) -> None:
    """Refuse a part given without the others it is logged with."""
    if len({p is None for p in parts}) > 1:
        raise ValueError(f"metrics: give {names} together (one cell computes them), or none of them")

