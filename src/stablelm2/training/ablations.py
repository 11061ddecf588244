"""The appendix ablations at small scale, several seeds per arm: schedules (App. B), batch sizes (App. D), data mixes (App. A).

Each study trains the same small proxy model on the same packed sample with the chapter's engine
(one process per run, runs spread over ``train.n_procs`` worker processes), changing one thing,
and runs every arm with ``train.ablation_seeds`` seeds. Seeds are paired: seed *s* gives every arm
the same initial weights and the same data order (App. A's arms differ in their mix, hence in
their stream), so each finding is decided by a paired one-sided test over seeds
(:meth:`stablelm2.ledger.Ledger.finding`):

* :func:`schedule_study` — cosine, inverse square root (Eq. 2), hyb (Eq. 1) and hyb2, all with the
  same warm-up and linear cool-down to zero: final held-out bits per byte and the average learning
  rate of each (App. B's argument that the gap tracks the average learning rate);
* :func:`batch_study` — the baseline global batch and 2×, 3×, 4× it (the paper's 4M, 8M, 12M, 16M),
  rsqrt schedule, learning rate not rescaled; each larger batch trains until its training loss
  (averaged over the same number of tokens) reaches the same seed's baseline final one: iterations
  and tokens needed (App. D: fewer iterations, more tokens);
* :func:`mixture_study` — the sample's natural mix, more code, no non-English text, more
  non-English text: held-out bits per byte per language group (App. A: more code hurts language;
  each language gains quickly from any in-language data).

**The metric.** Every run is validated a few times (:data:`EVALS`) on the same held-out sequences of
every source (:func:`validation_subset`, chapter 01's one split rule) and its loss is converted to
**bits per byte** of that text (nats ÷ ln 2 ÷ UTF-8 bytes of the predicted tokens), beside the
unigram model of chapter 07 (:mod:`stablelm2.evaluation.bpb`: training-split token counts, add-k
tuned by leave-one-out) on the same tokens: a run has *left the unigram plateau* when its bits per
byte are below the unigram model's.

**The proxy.** The preset's model at width ``train.ablation_d_model``, trained
``train.ablation_steps`` steps of ``train.ablation_batch_tokens`` with the preset's schedule shape
scaled to that length. With ``train.ablation_vocab`` = *K* > 0 its output layer is a *shortlist*
(:class:`Reference`): the *K* most frequent tokens of the training split, plus one class for all
others whose tokens then take their unigram share of that class — a proper distribution over the
whole Arcade100k vocabulary, so its bits per byte compare with the unigram model's directly. The
~100k-way softmax is what a step of a small model spends its time on; the shortlist makes a run
about ten times cheaper (measured on this machine's CPU), which pays for the seeds. Runs are
cached by their identity under ``<chapter>/ablations/``, so a rerun with the same parameters
reads them back.

At preset ``paper`` nothing trains here (1B models on 100B tokens): :func:`paper_plan` prices the
same studies — the same arms, seeds and stopping rules — in GPU-hours with chapter 09's projector.

>>> from stablelm2 import config
>>> from stablelm2.training import ablations
>>> c = ablations.proxy_config(config.load("smoke"), kind="cosine", seed=7)
>>> c.model.d_model, c.train.steps, c.train.global_batch_tokens, c.schedule.kind, c.run.seed
(32, 2, 256, 'cosine', 7)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .. import config as config_lib
from .. import facts as F
from .. import schedule as schedule_lib
from ..config import Config, ConfigError
from ..ledger import Claim, Ledger
from . import checkpoint as ckpt
from . import engine
from . import layout as layout_lib
from .results import History

SCHEDULES = ("cosine", "rsqrt", "hybrid", "hybrid2")
LABELS = {"cosine": "cosine", "rsqrt": "rsqrt (Eq. 2)", "hybrid": "hyb (Eq. 1)", "hybrid2": "hyb2"}
MIXES = ("control", "code ×4", "no non-English", "non-English ×3")
"""App. A's arms (:func:`default_mixes`)."""
EVALS = 5
"""Held-out evaluations per ablation run (every ``steps // EVALS`` steps and at the end): the bits-per-byte curve."""
LN2 = math.log(2.0)


# ------------------------------------------------------------------------------ the proxy run


def enabled(cfg: Config) -> bool:
    """Whether this preset runs the ablations (``train.ablation_steps`` > 0; not at ``paper``)."""
    return cfg.train.ablation_steps > 0


def not_run_message() -> str:
    """The notebook's markdown when the ablations do not run: the paper's scale (App. A: ~1B models,
    ~100B tokens, from ``facts.yaml``) and where the small-scale runs and the plan are."""
    n, tok = F.get("appendix.ablation_model_params"), F.get("appendix.ablation_tokens")
    return (f"**Not run at this preset** (`train.ablation_steps = 0`): the paper's ablations trained "
            f"~{n.value / 1e9:g}B-parameter models on ~{tok.value / 1e9:g}B tokens each ({', '.join(n.source)}, "
            f"{n.confidence}), which this project does not attempt; the `cpu` preset runs them at small scale, "
            "and the plan below prices the same studies at the paper's scale.")


def seeds(cfg: Config) -> list[int]:
    """The seeds every arm runs: ``run.seed``, ``run.seed + 1``, … (``train.ablation_seeds`` of them).

    Raises :class:`ConfigError` for fewer than one seed.
    """
    n = cfg.train.ablation_seeds
    if n < 1:
        raise ConfigError(f"train.ablation_seeds = {n}: every arm needs at least one seed (3 or more for a test)")
    return [cfg.run.seed + i for i in range(n)]


def proxy_config(cfg: Config, *, steps: int | None = None, batch_tokens: int | None = None,
                 kind: str | None = None, cooldown: bool = True, seed: int | None = None) -> Config:
    """``cfg`` shrunk to an ablation run: proxy width, ``steps`` × ``batch_tokens``, schedule scaled, ``seed``.

    Warm-up, horizon T and cool-down keep their share of the preset's run; ``cooldown=False``
    drops the cool-down (App. D's open-ended rsqrt runs); ``train.ablation_peak_lr`` > 0 replaces the
    peak learning rate (the floor ``schedule.min_lr`` keeps its ratio to it); ``train.ablation_micro_batch`` > 0
    sets the micro-batch (the largest divisor of it that also divides the batch's sequences). The run is validated
    :data:`EVALS` times.
    Raises :class:`ConfigError` when ``train.ablation_steps`` is 0 (preset ``paper``).
    """
    t, s, m = cfg.train, cfg.schedule, cfg.model
    n = steps or t.ablation_steps
    if n <= 0:
        raise ConfigError(f"train.ablation_steps = {t.ablation_steps}: the ablations need a positive step count "
                          "(they do not run at preset 'paper', where the paper's were 1B models on 100B tokens)")
    d = cfg.to_dict()
    width = t.ablation_d_model or m.d_model
    d["model"].update(d_model=width, d_ff=max(8, round(m.d_ff * width / m.d_model / 8) * 8))
    warm = max(1, round(n * s.warmup_steps / t.steps))
    cool = round(n * s.cooldown_steps / t.steps) if cooldown else 0
    d["schedule"].update(warmup_steps=warm, cooldown_steps=cool, total_steps=max(n, round(n * s.total_steps / t.steps)),
                         kind=kind or s.kind)
    if t.ablation_peak_lr:  # the proxy's own rate; the floor keeps its ratio to the peak
        d["schedule"].update(peak_lr=t.ablation_peak_lr, min_lr=s.min_lr * t.ablation_peak_lr / s.peak_lr)
    tokens = batch_tokens or t.ablation_batch_tokens
    seqs = tokens // cfg.data.seq_len
    d["train"].update(steps=n, global_batch_tokens=tokens, checkpoint_every=0,
                      micro_batch=math.gcd(t.ablation_micro_batch, seqs) if t.ablation_micro_batch and seqs else t.micro_batch,
                      eval_every=max(1, n // EVALS), n_procs=1, n_nodes=1)  # ablations run on one process
    if seed is not None:
        d["run"]["seed"] = seed
    return config_lib.from_dict(d)


def check(cfg: Config) -> None:
    """Fail early (before any training) if a study's configuration, seeds or batch layout is invalid.

    Raises:
        ConfigError: fewer than one seed, ``train.ablation_steps`` = 0, or ``train.ablation_vocab`` < 0
            (from :func:`seeds`, :func:`proxy_config` or here).
        LayoutError: a batch study's global batch does not divide into the proxy's micro-batches.
    """
    seeds(cfg)
    for kind in SCHEDULES:
        proxy_config(cfg, kind=kind)
    for mult in batch_multiples():
        layout_lib.from_config(proxy_config(cfg, batch_tokens=mult * cfg.train.ablation_batch_tokens,
                                            kind="rsqrt", cooldown=False), n_procs=1)
    if cfg.train.ablation_vocab < 0:
        raise ConfigError(f"train.ablation_vocab = {cfg.train.ablation_vocab}: give a shortlist size > 0, "
                          "or 0 for the full vocabulary")


# ------------------------------------------------------------------------------ unigram model and shortlist


@dataclass
class Reference:
    """The unigram model of the training split and the proxy's output shortlist.

    ``counts``: token → count over the training split of every shipped source (one ``<|endoftext|>``
    per document; :func:`stablelm2.evaluation.bpb.unigram_counts`); ``alpha``: its add-k constant
    (:func:`~stablelm2.evaluation.bpb.unigram_k`); ``vocab``: the vocabulary size V; ``k``: the
    shortlist size (0: the full vocabulary, no shortlist).

    Unigram: ``u(t) = (c(t) + α) / (N + α·V)``. Shortlisted model: the *k* most frequent tokens are
    classes ``0 … k−1`` and every other token is class ``k`` ("other"); a token of class ``k`` has
    probability ``p(other | context) · q(t)`` with ``q(t) = (c(t) + α) / Σ_{s ∉ shortlist} (c(s) + α)``,
    so the model is a normalised distribution over all V tokens and :meth:`tail_nats` is what the
    "other" class adds to a token's loss. Raises ``ValueError`` when ``vocab`` is below the number of
    distinct tokens counted or ``k`` is not in ``[0, vocab)``.
    """

    counts: dict[int, int]
    alpha: float
    vocab: int
    k: int = 0
    lookup: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vocab < len(self.counts):
            raise ValueError(f"vocab = {self.vocab} is below the {len(self.counts)} distinct tokens counted")
        if self.k < 0 or self.k >= self.vocab:
            raise ValueError(f"shortlist k = {self.k} must be in [0, vocab = {self.vocab})")
        self.total = sum(self.counts.values()) + self.alpha * self.vocab
        top = sorted(self.counts, key=lambda t: (-self.counts[t], t))[:self.k]
        self.shortlist = top
        self.lookup = torch.full((self.vocab,), self.k, dtype=torch.long)
        if self.k:
            self.lookup[torch.tensor(top, dtype=torch.long)] = torch.arange(len(top))
        self.tail_total = self.total - sum(self.counts[t] + self.alpha for t in top)

    @property
    def classes(self) -> int:
        """Output classes of the proxy: ``k + 1`` with a shortlist, else V."""
        return self.k + 1 if self.k else self.vocab

    def unigram_nats(self, token: int) -> float:
        """−ln u(token)."""
        return -math.log((self.counts.get(token, 0) + self.alpha) / self.total)

    def tail_nats(self, token: int) -> float:
        """−ln q(token) for a token outside the shortlist, 0 for one inside it (or without a shortlist)."""
        if not self.k or int(self.lookup[token]) < self.k:
            return 0.0
        return -math.log((self.counts.get(token, 0) + self.alpha) / self.tail_total)

    def map_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A packed batch with token ids replaced by shortlist classes (labels ``-100`` kept); unchanged without one."""
        if not self.k:
            return batch
        out = dict(batch)
        out["input_ids"] = self.lookup[batch["input_ids"]]
        lab = batch["labels"]
        out["labels"] = torch.where(lab == engine.IGNORE, lab, self.lookup[lab.clamp(min=0)])
        return out

    def model_factory(self, c: Config) -> torch.nn.Module:
        """The proxy model of ``c`` with :attr:`classes` output (and input) embeddings."""
        from .. import model

        return model.build(dataclasses.replace(c, model=dataclasses.replace(c.model, vocab_size=self.classes)))


_REFERENCES: dict[str, Reference] = {}


def reference(cfg: Config) -> Reference:
    """:class:`Reference` of ``cfg``'s sample with the shortlist ``train.ablation_vocab`` (kept per process:
    the three studies of a chapter share it)."""
    import json

    from .. import tokenizer
    from ..evaluation import bpb

    key = json.dumps([cfg.to_dict()["data"], cfg.model.vocab_size, cfg.train.ablation_vocab], sort_keys=True)
    if key not in _REFERENCES:
        counts = bpb.unigram_counts(cfg)
        vocab = max(cfg.model.vocab_size, max(tokenizer.special_tokens().values()) + 1)
        _REFERENCES[key] = Reference(dict(counts), bpb.unigram_k(counts, vocab), vocab, cfg.train.ablation_vocab)
    return _REFERENCES[key]


def validation_subset(c: Config, seqs: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``seqs`` held-out sequences of every source (one batch each), the same for every run."""
    from .. import data

    if seqs <= 0:
        return {}
    out = {}
    for name, batches in data.validation_sets(c, batches=-(-seqs // c.train.micro_batch)).items():
        rows = [{k: t[i:i + 1] for k, t in b.items()} for b in batches for i in range(len(b["input_ids"]))][:seqs]
        if rows:
            out[name] = [{k: torch.cat([r[k] for r in rows]) for k in rows[0]}]
    return out


def held_out_stats(c: Config, ref: Reference, seqs: int | None = None) -> dict[str, dict[str, float]]:
    """Per source of :func:`validation_subset`: predicted ``tokens``, their UTF-8 ``bytes``, and the nats the
    unigram model (``unigram_nats``) and the shortlist's "other" class (``tail_nats``) give them."""
    from ..evaluation.bpb import _token_bytes

    out = {}
    for name, batches in validation_subset(c, c.train.ablation_val_seqs if seqs is None else seqs).items():
        toks = [int(t) for b in batches for t in b["labels"][:, 1:][b["labels"][:, 1:] != engine.IGNORE].tolist()]
        out[name] = {"tokens": len(toks), "bytes": sum(_token_bytes(t) for t in toks),
                     "unigram_nats": sum(ref.unigram_nats(t) for t in toks), "tail_nats": sum(ref.tail_nats(t) for t in toks)}
    return out


def bits_per_byte(domains: dict[str, float], stats: dict[str, dict[str, float]],
                  names: list[str] | None = None) -> float:
    """Held-out bits per byte over ``names`` (default: every source) from the engine's loss per source.

    ``domains``: mean loss (nats per predicted token, over the proxy's classes) per source, as
    :func:`.engine.evaluate` gives it; each source adds ``loss × tokens + tail_nats`` nats.
    """
    names = [n for n in (names or list(stats)) if n in stats and n in domains]
    nats = sum(domains[n] * stats[n]["tokens"] + stats[n]["tail_nats"] for n in names)
    return nats / LN2 / sum(stats[n]["bytes"] for n in names)


def unigram_bpb(stats: dict[str, dict[str, float]], names: list[str] | None = None) -> float:
    """The unigram model's bits per byte on the same held-out tokens (the floor a run must go below)."""
    names = [n for n in (names or list(stats)) if n in stats]
    return sum(stats[n]["unigram_nats"] for n in names) / LN2 / sum(stats[n]["bytes"] for n in names)


class _Mapped:
    """A training stream whose batches go through :meth:`Reference.map_batch` (same state as the stream)."""

    def __init__(self, loader: Any, ref: Reference):
        self.loader, self.ref = loader, ref

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for b in self.loader:
            yield self.ref.map_batch(b)

    def state_dict(self) -> Any:
        return self.loader.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.loader.load_state_dict(state)


def _shortlist_loader(ref: Reference, where: Path, cfg: Config, rank: int, world: int,
                      weights: dict[str, float] | None) -> _Mapped:
    from ..data import shards

    shards.build(cfg, cfg.train.steps, where, weights=weights)
    return _Mapped(shards.ShardLoader(cfg, where, rank=rank, world_size=world, weights=weights), ref)


def run(c: Config, out: Path, *, ref: Reference | None = None, weights: dict[str, float] | None = None,
        stop: Any = None, tag: str | None = None, val_seqs: int | None = None,
        progress: bool = False) -> History:
    """Train ``c`` on one process into ``out`` unless a finished run with the same identity is there.

    Validation (every ``train.eval_every`` steps and at the end) is on :func:`validation_subset`
    (``train.ablation_val_seqs`` sequences per source; 0: none). ``ref`` with a shortlist trains the
    shortlisted proxy (:class:`Reference`); its losses are then over the proxy's classes.
    """
    val_seqs = c.train.ablation_val_seqs if val_seqs is None else val_seqs
    k = ref.k if ref is not None else 0
    tag = f"{tag or ''} val_seqs={val_seqs}" + (f" shortlist={k}" if k else "")
    ident = engine.run_identity(c, 1, weights=weights, tag=tag)
    path = Path(out) / ckpt.fingerprint(ident)[:12]
    if (path / "history.json").is_file():
        from .metrics import load_history

        return load_history(path)
    hooks: dict[str, Any] = {"val_factory": lambda cc: validation_subset(cc, val_seqs)}
    if k:
        assert ref is not None
        hooks = {"model_factory": ref.model_factory, "loader_factory": partial(_shortlist_loader, ref, path / "shards"),
                 "val_factory": lambda cc: {n: [ref.map_batch(b) for b in bs]
                                            for n, bs in validation_subset(cc, val_seqs).items()}}
    return engine.train(c, path, resume=False, weights=weights, stop=stop, tag=tag, save_model=False,
                        progress=progress, **hooks)


class UntilLoss:
    """App. D's stopping rule: the training loss averaged over ``window`` tokens is at or below ``target``."""

    def __init__(self, target: float, window: int):
        self.target, self.window = target, window

    def __call__(self, history: History) -> bool:
        return smoothed_loss(history, self.window) <= self.target

    def __repr__(self) -> str:
        return f"until smoothed train loss <= {self.target!r} over {self.window} tokens"


def _worker_init() -> None:
    from .. import hardware

    torch.set_num_threads(1)
    hardware.reuse_freed_memory()


_POOLS: dict[int, Any] = {}


def submit(cfg: Config, job: dict[str, Any]) -> Future[History]:
    """:func:`run` of one job (its keyword arguments), as a future of its history.

    With ``train.n_procs`` > 1 the job goes to that many worker processes of one thread each (kept
    for the next study), so both cores work without threads fighting over them; with one process
    it runs here, on one thread, before this returns (its error raised here). A run's numbers do
    not depend on which worker ran it, nor in which order the jobs were submitted.
    """
    if cfg.train.n_procs <= 1:
        prev = torch.get_num_threads()
        torch.set_num_threads(1)  # a small run on a busy machine: 3.3 s on one thread against 23 s on two (measured)
        try:
            done: Future[History] = Future()
            done.set_result(run(**job))
            return done
        finally:
            torch.set_num_threads(prev)
    return _pool(cfg.train.n_procs).submit(_run_job, job)


def run_many(cfg: Config, jobs: list[dict[str, Any]]) -> list[History]:
    """:func:`submit` every job (its keyword arguments); their histories, in order."""
    return results([submit(cfg, job) for job in jobs])


def results(futures: Sequence[Future[History]], *, cancel: Sequence[Future[History]] = ()) -> list[History]:
    """Each future's history, in order; the first failure is raised after every future of ``futures`` and
    ``cancel`` still queued is cancelled (as ``Executor.map`` does), so a failed study leaves the kept workers idle
    for the next rather than training runs nobody reads."""
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in [*futures, *cancel]:
            f.cancel()
        raise


def _pool(workers: int) -> Any:
    import atexit
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_worker_init)
        atexit.register(_POOLS[workers].shutdown)
    return _POOLS[workers]


def _run_job(job: dict[str, Any]) -> History:
    return run(**job)


def _curve(h: History) -> dict[str, list[float]]:
    return {"step": [r["step"] for r in h["steps"]], "loss": [r["loss"] for r in h["steps"]],
            "lr": [r["lr"] for r in h["steps"]], "tokens": [r["tokens"] for r in h["steps"]]}


def _bpb_curve(h: History, stats: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    ev = [e for e in h["evals"] if e.get("domains")]
    return {"step": [e["step"] for e in ev], "tokens": [e["tokens"] for e in ev],
            "bpb": [bits_per_byte(e["domains"], stats) for e in ev]}


def _final_bpb(h: History, stats: dict[str, dict[str, float]], names: list[str] | None = None) -> float:
    return bits_per_byte(h["summary"]["final_domains"], stats, names)


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs)


def _setup(cfg: Config) -> tuple[Reference, dict[str, dict[str, float]], list[int]]:
    ref = reference(cfg)
    return ref, held_out_stats(proxy_config(cfg), ref), seeds(cfg)


def _by_arm(arms: Sequence[Any], seeds_: list[int], hists: list[History]) -> dict[Any, list[History]]:
    """Histories of ``arms × seeds`` jobs (arm-major order) grouped per arm, in seed order."""
    n = len(seeds_)
    return {a: hists[i * n:(i + 1) * n] for i, a in enumerate(arms)}


def _common(hs: list[History], stats: dict[str, dict[str, float]], seeds_: list[int]) -> dict[str, Any]:
    """Per-arm fields every study reports: seeds, final held-out bpb per seed and mean, curves, the unigram floor."""
    final = [_final_bpb(h, stats) for h in hs]
    return {"seeds": list(seeds_), "final_val_bpb_by_seed": final, "final_val_bpb": _mean(final),
            "final_train_loss_by_seed": [h["summary"]["final_loss"] for h in hs],
            "unigram_bpb": unigram_bpb(stats), "below_unigram_by_seed": [b < unigram_bpb(stats) for b in final],
            "curve": _curve(hs[0]), "bpb_curves": [_bpb_curve(h, stats) for h in hs]}


# ------------------------------------------------------------------------------ App. B


def schedule_study(cfg: Config, root: Path, kinds: tuple[str, ...] = SCHEDULES, progress: bool = False) -> list[dict]:
    """Every schedule kind × every seed; one row per kind with the final held-out bits per byte per seed,
    their mean, the average learning rate, the curves and the unigram floor."""
    ref, stats, sd = _setup(cfg)
    cfgs = {kind: [proxy_config(cfg, kind=kind, seed=s) for s in sd] for kind in kinds}
    hists = run_many(cfg, [dict(c=c, out=Path(root) / "appB" / kind, ref=ref, progress=progress)
                           for kind in kinds for c in cfgs[kind]])
    rows = []
    for kind, hs in _by_arm(list(kinds), sd, hists).items():
        c = cfgs[kind][0]
        rows.append({"schedule": kind, "label": LABELS[kind], "average_lr": schedule_lib.average_lr(c),
                     "steps": c.train.steps, "warmup_steps": c.schedule.warmup_steps, "tokens": hs[0]["summary"]["tokens"],
                     **_common(hs, stats, sd)})
    return rows


def per_seed(row: dict[str, Any], key: str) -> list[float]:
    """The per-seed values of ``row[key]``: ``row[key + "_by_seed"]`` when the study ran several seeds
    (one value per seed, in the order of ``row["seeds"]``), else the one run's value."""
    many = row.get(f"{key}_by_seed")
    return [float(x) for x in many] if many is not None else [float(row[key])]


def _seeds(row: dict[str, Any]) -> list[int]:
    return list(row.get("seeds") or [0])


def plateau_runs(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows whose runs must have left the unigram plateau for a study's comparison to mean something, and
    what to call their runs: App. B every schedule; App. D the baseline (the larger batches stop as soon as they
    reach its loss, so their held-out bits per byte say nothing); App. A the control mix (an arm without a
    language ends above the floor on that language by design)."""
    if rows and "multiple" in rows[0]:
        return [r for r in rows if r["multiple"] == 1], "baseline runs"
    if rows and "mix" in rows[0]:
        return [r for r in rows if r["mix"] == MIXES[0]], f"{MIXES[0]}-mix runs"
    return rows, "runs"


def plateau(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a study's runs (:func:`plateau_runs`) end against the unigram floor: ``runs``, ``below`` (how many end
    below it), ``lo``/``hi`` (their range of final held-out bits per byte), ``unigram``, ``left`` (all below),
    ``which`` (what those runs are)."""
    chosen, which = plateau_runs(rows)
    vals = [v for r in chosen for v in per_seed(r, "final_val_bpb")]
    u = rows[0]["unigram_bpb"]
    below = sum(v < u for v in vals)
    return {"runs": len(vals), "below": below, "lo": min(vals), "hi": max(vals), "unigram": u,
            "left": below == len(vals), "which": which}


def plateau_sentence(rows: list[dict[str, Any]]) -> str:
    """One computed sentence: how many runs end below the unigram model's bits per byte, and what that allows."""
    p = plateau(rows)
    head = (f"{p['below']} of {p['runs']} {p['which']} end below the unigram model's {p['unigram']:.3f} bits per byte "
            f"(final held-out {p['lo']:.3f}–{p['hi']:.3f})")
    if p["left"]:
        return head + ": every run has left the unigram plateau, so the comparison is between models that use context"
    return head + (": runs still at or above the unigram plateau have learned little beyond token frequencies, so "
                   "this comparison cannot speak for models that use context")


def baseline_plateau_reason(base: dict[str, Any]) -> str:
    """Why App. D's comparison cannot decide, or ``""``: the target of every larger batch is the same seed's baseline
    loss, so the baseline must still be improving when it ends (its smoothed loss first reaches its final value in
    the second half of its run, ``first_reach_by_seed``) and end below the unigram model's bits per byte in every seed. A target still on the
    unigram plateau is reached by any run that has learned token frequencies, whatever its batch — the iterations
    and tokens to reach it then measure noise on the plateau, not the batch-size effect of App. D."""
    below = base.get("below_unigram_by_seed") or []
    first, its = base.get("first_reach_by_seed") or [], per_seed(base, "iterations")
    if first and any(f <= i / 2 for f, i in zip(first, its, strict=True)):
        return (f"the baseline's own smoothed training loss first reached its final value at iteration "
                f"{', '.join(str(f) for f in first)} of {', '.join(f'{i:.0f}' for i in its)} (per seed): flat over the "
                "second half of its run, so the target is a plateau that a larger batch reaches as soon as it gets there, "
                "and iterations or tokens to it do not measure App. D's batch-size effect")
    if below and all(below):
        return ""
    vals = per_seed(base, "final_val_bpb")
    return (f"the baseline (the target every larger batch must reach) ends below the unigram model's "
            f"{base['unigram_bpb']:.3f} bits per byte in {sum(bool(x) for x in below)} of {len(vals)} seeds "
            f"(final {_fmt_bpb(vals)}), so its loss is a point on the unigram plateau that any run learning token "
            "frequencies reaches: iterations and tokens to it do not measure App. D's batch-size effect")


def _fmt_bpb(vals: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in vals)


def schedule_claims(ledger: Ledger, rows: list[dict]) -> list[Claim]:
    """App. B's findings, each decided by a one-sided paired test over seeds (``ledger.Ledger.finding``)
    of the final held-out bits per byte (fewer than 3 seeds: *inconclusive at this scale*)."""
    by = {r["schedule"]: r for r in rows}
    steps = by["cosine"]["steps"]
    note = plateau_sentence(rows)
    metric = "final held-out bits per byte"
    out = [ledger.finding(
        "pretraining.appB_rsqrt_below_cosine",
        f"App. B / Fig. 4 at reduced scale ({steps} steps of the ablation model): rsqrt ends with higher held-out "
        "bits per byte than cosine", fact="schedule.fig4_finding",
        a=per_seed(by["rsqrt"], "final_val_bpb"), b=per_seed(by["cosine"], "final_val_bpb"), expect="a > b",
        names=("rsqrt", "cosine"), seeds=_seeds(by["cosine"]), metric=metric, note=note)]
    hi, lo = sorted(("hybrid", "hybrid2"), key=lambda k: -by[k]["average_lr"])
    out.append(ledger.finding(
        "pretraining.appB_avg_lr_orders_hyb", f"App. B at reduced scale ({steps} steps): of hyb and hyb2, the one with "
        f"the higher average learning rate ({LABELS[hi]}, {by[hi]['average_lr']:.3g} vs {by[lo]['average_lr']:.3g}) "
        "ends lower", fact="schedule.hyb2_switch_frac",
        a=per_seed(by[hi], "final_val_bpb"), b=per_seed(by[lo], "final_val_bpb"), expect="a < b",
        names=(LABELS[hi], LABELS[lo]), seeds=_seeds(by[hi]), metric=metric, note=note))
    for k in ("cosine", "hyb", "hyb2"):
        ledger.refer(f"schedule.avg_lr_{'hybrid' if k == 'hyb' else 'hybrid2' if k == 'hyb2' else 'cosine'}",
                     "04_lr_schedule", f"the paper's average learning rate of {k} (App. B)")
    return out


# ------------------------------------------------------------------------------ App. D


def batch_multiples() -> list[int]:
    """The paper's batches over its baseline: 4M, 8M, 12M, 16M → 1, 2, 3, 4."""
    base = F.value("appendix.batch_baseline_m")
    return [int(round(b / base)) for b in F.value("appendix.batch_sizes")]


def smoothed_loss(h: History, window_tokens: int) -> float:
    """Mean training loss over the last steps that together hold ``window_tokens`` tokens."""
    steps = h["steps"]
    per = h["layout"]["global_batch_tokens"]
    k = max(1, window_tokens // per)
    if len(steps) < k:
        return float("inf")
    return statistics.fmean(r["loss"] for r in steps[-k:])


def first_passage(h: History, target: float, window_tokens: int) -> int:
    """The first step at which the training loss averaged over ``window_tokens`` tokens (as :func:`smoothed_loss`)
    is at or below ``target``; the run's step count when it never is."""
    steps = h["steps"]
    k = max(1, window_tokens // h["layout"]["global_batch_tokens"])
    for n in range(k, len(steps) + 1):
        if statistics.fmean(r["loss"] for r in steps[n - k:n]) <= target:
            return n
    return len(steps)


def batch_study(cfg: Config, root: Path, multiples: list[int] | None = None, progress: bool = False) -> list[dict]:
    """Each seed's baseline run, then each larger batch with the same seed until it matches that baseline's
    final (smoothed) training loss, for at most as many steps as the baseline."""
    ref, stats, sd = _setup(cfg)
    mults = multiples or batch_multiples()
    b0 = cfg.train.ablation_batch_tokens
    base_cfgs = [proxy_config(cfg, batch_tokens=b0, kind="rsqrt", cooldown=False, seed=s) for s in sd]
    window = min(max(mults), base_cfgs[0].train.steps) * b0  # every run averages its loss over these many tokens
    pending = [submit(cfg, dict(c=c, out=Path(root) / "appD" / "x1", ref=ref, progress=progress)) for c in base_cfgs]
    larger = [m for m in mults if m != 1]
    runs: dict[tuple[int, int], Future[History]] = {}
    targets = []
    for s, base in zip(sd, pending, strict=True):
        # a seed's larger batches start as soon as its baseline is done (no worker waits for the other baselines),
        # the largest first: it has the most work per step
        targets.append(smoothed_loss(results([base], cancel=[*pending, *runs.values()])[0], window))
        until = UntilLoss(targets[-1], window)
        for m in sorted(larger, reverse=True):
            runs[m, s] = submit(cfg, dict(c=proxy_config(cfg, batch_tokens=m * b0, kind="rsqrt", cooldown=False, seed=s),
                                          out=Path(root) / "appD" / f"x{m}", ref=ref, stop=until, tag=repr(until),
                                          progress=progress))
    done = results([*pending, *(runs[m, s] for m in larger for s in sd)])
    grouped = {1: done[:len(sd)], **_by_arm(larger, sd, done[len(sd):])}
    rows = []
    for m in [1, *larger]:
        hs = grouped[m]
        loss = [smoothed_loss(h, window) for h in hs]
        reached = [x <= t for x, t in zip(loss, targets, strict=True)]
        rows.append({"multiple": m, "batch_tokens": m * b0, "reached": all(reached), "reached_by_seed": reached,
                     "iterations_by_seed": [h["summary"]["steps"] for h in hs],
                     "tokens_by_seed": [h["summary"]["tokens"] for h in hs],
                     "loss_by_seed": loss, "target_by_seed": targets,
                     "first_reach_by_seed": [first_passage(h, t, window) for h, t in zip(hs, targets, strict=True)],
                     **_common(hs, stats, sd)})
    for r in rows:
        r["iterations"] = _mean(r["iterations_by_seed"])
        r["tokens"] = _mean(r["tokens_by_seed"])
        r["loss"] = _mean(r["loss_by_seed"])
        r["iteration_speedup"] = rows[0]["iterations"] / r["iterations"]
        r["token_cost"] = r["tokens"] / rows[0]["tokens"]
    return rows


def batch_claims(ledger: Ledger, rows: list[dict]) -> list[Claim]:
    """App. D at reduced scale: the largest batch needs fewer iterations (and more tokens) than the baseline.

    Decided over seeds by a one-sided paired test of iterations to the same seed's baseline loss
    (a seed that did not reach it counts one step more than it ran: a lower bound).
    """
    top = max(rows, key=lambda r: r["multiple"])
    base = rows[0]
    its = per_seed(top, "iterations")
    ok = top.get("reached_by_seed") or [bool(top["reached"])] * len(its)
    missed = sum(not x for x in ok)
    note = (f"{top['iteration_speedup']:.2f}× fewer iterations, {top['token_cost']:.2f}× the tokens"
            + (f"; in {missed} of {len(ok)} seeds the {top['multiple']}× batch did not reach the baseline's loss within "
               f"its {max(its):.0f} steps" if missed else ""))
    why = baseline_plateau_reason(base)
    return [
        ledger.finding("pretraining.appD_fewer_iterations_more_tokens",
                       f"App. D at reduced scale: the {top['multiple']}× batch reaches the baseline's loss in fewer "
                       "iterations", fact="appendix.batch_method",
                       a=[x if r else x + 1 for x, r in zip(its, ok, strict=True)],
                       b=per_seed(base, "iterations"), expect="a < b", names=(f"{top['multiple']}x", "1x"),
                       seeds=_seeds(top), metric="iterations to the baseline's loss",
                       note=note + "; " + plateau_sentence(rows), cannot_decide=why),
        ledger.finding("pretraining.appD_more_tokens",
                       f"App. D at reduced scale: the {top['multiple']}× batch spends more tokens than the baseline "
                       "to reach its loss (the second half of appendix.batch_method)",
                       a=per_seed(top, "tokens"), b=per_seed(base, "tokens"), expect="a > b",
                       names=(f"{top['multiple']}x", "1x"), seeds=_seeds(top),
                       metric="tokens to the baseline's loss", note=plateau_sentence(rows), cannot_decide=why),
        ledger.report_only("pretraining.appD_speedup_16m", "App. D: iteration speed-up of the 16M batch over 4M",
                           fact="appendix.iteration_speedup_16m",
                           why=f"the paper's 1B-model runs; ours at small scale: {top['iteration_speedup']:.2f}×"),
        ledger.report_only("pretraining.appD_token_cost_16m", "App. D: token cost of the 16M batch over 4M",
                           fact="appendix.token_cost_16m",
                           why=f"the paper's 1B-model runs; ours at small scale: {top['token_cost']:.2f}×"),
    ]


# ------------------------------------------------------------------------------ App. A


def default_mixes(cfg: Config) -> dict[str, dict[str, float]]:
    """The sample's natural mix (by size) and three variants: more code, no / more non-English text (:data:`MIXES`)."""
    from .. import data

    base = data.resolve_weights(cfg, None)
    langs = data.sample_sources(cfg)
    non_en = [n for n, s in langs.items() if s["language"] not in ("en", "code")]
    code = [n for n, s in langs.items() if s["language"] == "code"]

    def scaled(names: list[str], factor: float) -> dict[str, float]:
        return {n: w * (factor if n in names else 1.0) for n, w in base.items()}

    return dict(zip(MIXES, (dict(base), scaled(code, 4.0), scaled(non_en, 0.0), scaled(non_en, 3.0)), strict=True))


def groups(cfg: Config) -> dict[str, list[str]]:
    """Validation sources grouped as English, code, and non-English."""
    from .. import data

    langs = data.sample_sources(cfg)
    return {"English": [n for n, s in langs.items() if s["language"] == "en"],
            "code": [n for n, s in langs.items() if s["language"] == "code"],
            "non-English": [n for n, s in langs.items() if s["language"] not in ("en", "code")]}


def mixture_study(cfg: Config, root: Path, mixes: dict[str, dict[str, float]] | None = None,
                  progress: bool = False) -> list[dict]:
    """Every mix × every seed; one row per mix with its shares and the held-out bits per byte per language
    group (per seed and mean) and per source, beside the unigram floor of each group."""
    ref, stats, sd = _setup(cfg)
    mixes = mixes or default_mixes(cfg)
    grp = groups(cfg)
    jobs = [dict(c=proxy_config(cfg, seed=s), out=Path(root) / "appA" / name.replace(" ", "_").replace("×", "x"),
                 weights=w, ref=ref, progress=progress) for name, w in mixes.items() for s in sd]
    rows = []
    for name, hs in _by_arm(list(mixes), sd, run_many(cfg, jobs)).items():
        w = mixes[name]
        total = sum(w.values())
        by_seed = [{g: _final_bpb(h, stats, names) for g, names in grp.items()} for h in hs]
        rows.append({"mix": name, "weights": w,
                     "share": {g: sum(w.get(n, 0.0) for n in names) / total for g, names in grp.items()},
                     "group_bpb_by_seed": by_seed, "group_bpb": {g: _mean([x[g] for x in by_seed]) for g in grp},
                     "group_unigram_bpb": {g: unigram_bpb(stats, names) for g, names in grp.items()},
                     "domains_bpb": {n: _mean([bits_per_byte(h["summary"]["final_domains"], stats, [n]) for h in hs])
                                     for n in stats},
                     **_common(hs, stats, sd)})
    return rows


def mixture_claims(ledger: Ledger, rows: list[dict]) -> list[Claim]:
    """App. A at reduced scale, each finding decided by a paired test over seeds of held-out bits per byte
    (fewer than 3 seeds: inconclusive at this scale)."""
    by = {r["mix"]: r for r in rows}
    ctl, code, none, more = (by[m] for m in MIXES)

    def group(r: dict[str, Any], g: str) -> list[float]:
        many = r.get("group_bpb_by_seed")
        return [float(x[g]) for x in many] if many is not None else [float(r["group_bpb"][g])]

    ne = [group(r, "non-English") for r in (none, ctl, more)]
    gain_any = [a - b for a, b in zip(ne[0], ne[1], strict=True)]
    gain_more = [b - c for b, c in zip(ne[1], ne[2], strict=True)]
    note = plateau_sentence(rows)
    return [
        ledger.finding("pretraining.appA_more_code_hurts_english",
                       f"App. A at reduced scale: more code (share {ctl['share']['code']:.0%} → "
                       f"{code['share']['code']:.0%}) raises the English held-out bits per byte",
                       fact="appendix.ablation_findings", a=group(code, "English"), b=group(ctl, "English"),
                       expect="a > b", names=("code ×4", "control"), seeds=_seeds(ctl),
                       metric="English held-out bits per byte", note=note),
        ledger.finding("pretraining.appA_language_saturates",
                       "App. A at reduced scale: the first share of non-English data lowers the non-English bits per "
                       f"byte more than tripling it ({ctl['share']['non-English']:.0%} → "
                       f"{more['share']['non-English']:.0%})",
                       a=gain_any, b=gain_more, expect="a > b", names=("first share's gain", "tripling's gain"),
                       seeds=_seeds(ctl), metric="drop of the non-English held-out bits per byte", note=note),
    ]


# ------------------------------------------------------------------------------ scope and the paper-scale plan


def proxy_summary(cfg: Config) -> dict[str, Any]:
    """The proxy every ablation trains: width, layers, output classes, parameters, steps, batch, tokens, warm-up,
    peak learning rate, held-out sequences per source, seeds."""
    from .. import model

    c = proxy_config(cfg)
    classes = cfg.train.ablation_vocab + 1 if cfg.train.ablation_vocab else c.model.vocab_size
    net = model.build(dataclasses.replace(c, model=dataclasses.replace(c.model, vocab_size=classes)), device="meta")
    return {"d_model": c.model.d_model, "layers": c.model.n_layers, "output_classes": classes,
            "parameters": sum(p.numel() for p in net.parameters()), "steps": c.train.steps,
            "batch_tokens": c.train.global_batch_tokens, "seq_len": c.data.seq_len,
            "tokens": c.train.steps * c.train.global_batch_tokens, "warmup_steps": c.schedule.warmup_steps,
            "peak_lr": c.schedule.peak_lr, "val_seqs_per_source": c.train.ablation_val_seqs, "seeds": len(seeds(cfg))}


def scope(cfg: Config, claims: list[Claim], studies: dict[str, list[dict[str, Any]]]) -> list[dict[str, str]]:
    """Per finding, computed from the runs: what this scale can show and what it cannot.

    ``studies`` maps the claim-id prefix (``appB``, ``appD``, ``appA``) to that study's rows.
    """
    p = proxy_summary(cfg)
    n_paper, tok_paper = F.value("appendix.ablation_model_params"), F.value("appendix.ablation_tokens")
    out = []
    for c in claims:
        if c.stats is None or "n_seeds" not in c.stats:
            continue
        key = next((k for k in studies if f".{k}_" in c.id), None)
        if key is None:
            continue
        pl = plateau(studies[key])
        s = c.stats
        spread = "" if s.get("ci") is None else (f"; the {s['ci_level']:.0%} interval of the effect, "
                                                 f"[{s['ci'][0]:.3g}, {s['ci'][1]:.3g}], "
                                                 + ("excludes 0" if s["ci"][0] > 0 or s["ci"][1] < 0 else "includes 0"))
        can = (f"the direction of the effect on a {p['parameters'] / 1e6:.2f}M-parameter proxy over {s['n_seeds']} "
               f"paired seeds (effect {s['effect']:.3g} in {s['metric']}{spread}), "
               + (f"after the {p['warmup_steps']}-step warm-up, with every run below the unigram floor"
                  if pl["left"] else f"though only {pl['below']} of {pl['runs']} {pl['which']} left the unigram plateau"))
        cannot = (f"the paper's magnitudes: {p['tokens']:,} tokens per run against ~{tok_paper / 1e9:g}B on "
                  f"~{n_paper / 1e9:g}B-parameter models ({tok_paper / max(p['tokens'], 1):.1e}× more), "
                  f"{p['output_classes']:,} output classes against Arcade100k's 100k"
                  + ("" if s.get("p_value") is not None and s["p_value"] < s["alpha"] else
                     (f"; nor an effect below {s['detectable_effect']:.3g} (what {s['n_seeds']} seeds detect "
                      f"{s['power']:.0%} of the time at this spread; the effect seen would need "
                      + (f"{s['seeds_needed']} seeds)" if s.get("seeds_needed") else "more than 10,000 seeds)")
                      if s.get("detectable_effect") else "; nor a difference smaller than the seed-to-seed spread here"))
                  + (f"; nor this comparison at all: {s['cannot_decide']}" if s.get("cannot_decide") else ""))
        out.append({"finding": c.id, "status": c.status, "can": can, "cannot": cannot})
    return out


def paper_plan(cfg: Config) -> list[dict[str, Any]]:
    """The same three studies at the paper's scale, priced: arms, seeds, runs, tokens, GPU-hours, cost, days.

    The arms and stopping rules are this module's (:data:`SCHEDULES`, :func:`batch_multiples`,
    :data:`MIXES`), the seeds ``train.ablation_seeds``, the model the paper's ~1B-parameter
    ablation model (``appendix.ablation_model_params``; its shape is not published, so FLOPs per
    token are 6·N) trained on ~100B tokens per run (``appendix.ablation_tokens``) at the baseline
    batch ``train.ablation_batch_tokens`` (App. D's 4M). App. D's larger batches stop at the
    baseline's loss; the plan prices each at most the baseline's iterations (m× its tokens), the
    cap the small-scale runs use too. Priced with chapter 09's projector on ``cfg``'s GPUs at the
    paper's throughput (``train.tflops_per_gpu``).
    """
    from ..carbon import projection

    n_params, tokens = F.value("appendix.ablation_model_params"), F.value("appendix.ablation_tokens")
    n_seeds = len(seeds(cfg))
    fpt = 6.0 * n_params
    tf = float(F.value("train.tflops_per_gpu"))
    steps = round(tokens / cfg.train.ablation_batch_tokens)
    studies = [("App. B · schedules", list(SCHEDULES), [tokens] * len(SCHEDULES)),
               ("App. D · batch sizes (upper bound)", [f"{m}× batch" for m in batch_multiples()],
                [m * tokens for m in batch_multiples()]),
               ("App. A · data mixes", list(MIXES), [tokens] * len(MIXES))]
    rows = []
    for name, arms, per_arm in studies:
        total = n_seeds * sum(per_arm)
        proj = projection.plan(cfg, fpt, tokens=total, tflops=tf)
        rows.append({"study": name, "arms": ", ".join(arms), "seeds": n_seeds, "runs": len(arms) * n_seeds,
                     "steps_per_baseline_run": steps, "tokens": total, "gpu_hours": proj.gpu_hours,
                     "cost_usd": proj.cost_usd, "wall_days": proj.wall_days, "gpus": proj.n_gpus,
                     "emissions_t": proj.emissions_t})
    return rows
