"""Bits per byte of held-out text, per domain and language, with bootstrap intervals; the unigram floor.

Accuracy on benchmarks moves only once a model is large and trained long; at this project's
``smoke``/``cpu`` scale it sits at chance. What small-scale practice reports instead (OLMo's
DataDecide, nanochat) is the model's compression of held-out text in **bits per byte**:

    bpb = Σ −log₂ p(token | context) / Σ UTF-8 bytes of those tokens

over held-out documents. Unlike loss (nats per token) it does not depend on the tokenizer, so
domains and languages that tokenize differently compare on one scale. Held-out means the project's
one split rule (:mod:`stablelm2.data.split`): no document scored here was trained on in chapter 05.

* :func:`held_out` — the held-out documents of every shipped source, tokenized, cut into scoring
  windows of ``window`` tokens (each window predicts ``window − 1`` tokens; the first token of a
  document is ``<|endoftext|>``, as in training, so every text token is predicted once);
* :func:`score` — nats per window from a causal LM (a model directory or a loaded model);
* :func:`unigram_score` — the same windows under a unigram model of the training split's tokens
  (additive smoothing, ``k`` tuned by leave-one-out on the training counts, :func:`unigram_k`): about
  what a model reaches by learning token frequencies alone, hence the floor a trained model must beat;
* :func:`table` — per domain, per language and overall: loss, bpb and a 95 % percentile bootstrap
  interval, resampling documents within the group (a document's windows are drawn together);
* :func:`paired` — stage B minus stage A in bpb on the same windows, with a paired bootstrap interval;
* :func:`task_logliks` / :func:`task_table` — the harness tasks' gold-answer log-likelihoods, where
  stage differences show before accuracy moves; :func:`accuracy_verdicts` — accuracy beside its
  chance level, marked undecidable where a 95 % interval does not exclude chance.

Bootstrap: ``n_boot`` resamples (seeded, ``numpy.random.default_rng``); same inputs, same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..config import Config

LN2 = math.log(2.0)
N_BOOT = 1000


class BPBError(ValueError):
    """Bad input for a bits-per-byte evaluation (window, model, groups); the message names the fix."""


@dataclass
class Windows:
    """Held-out scoring windows: ``ids[i]`` (≤ ``window`` token ids) predicts ``ids[i][1:]``.

    ``nbytes[i]`` is the UTF-8 bytes of the predicted tokens; ``source``/``domain``/``language``/``doc``
    say where each window comes from.
    """

    ids: list[list[int]]
    nbytes: np.ndarray
    source: list[str]
    domain: list[str]
    language: list[str]
    doc: list[int]
    window: int

    @property
    def n_tokens(self) -> np.ndarray:
        """Predicted tokens per window (``len(ids[i]) − 1``), int array ``[n_windows]``."""
        return np.array([len(w) - 1 for w in self.ids])


@lru_cache(maxsize=200_000)
def _token_bytes(token: int) -> int:
    from .. import tokenizer

    return len(tokenizer.arcade100k().decode_single_token_bytes(token))


WINDOWS_PER_SOURCE = {"smoke": 2, "cpu": 4}
"""Default scoring windows per source (other presets: all). The LM head and softmax over Arcade100k's
~100k tokens dominate the cost (measured ~0.14 s of one core per 128-token window of the cpu model), so
the number of scored windows is the dial that keeps chapter 07 at seconds; raise it for tighter intervals."""


def held_out(cfg: Config, *, window: int, per_source: int | None = None) -> Windows:
    """The held-out documents of every shipped sample source, as scoring windows of ``window`` tokens.

    ``per_source`` caps the windows taken from each source: documents are visited round-robin (first
    window of each document, then the second, …) so a cap still spreads over the source's documents.
    Raises :class:`BPBError` at ``data.source = 'hub'`` (the paper preset scores the released models
    through the harness only), for ``window < 2`` or ``per_source < 1``, or when no source holds a
    held-out document.
    """
    from .. import tokenizer
    from ..data import sample, split

    if window < 2:
        raise BPBError(f"window = {window}: a scoring window needs at least 2 tokens (one context, one predicted)")
    if per_source is not None and per_source < 1:
        raise BPBError(f"per_source = {per_source}: take at least one window per source (None: all)")
    if cfg.data.source != "local":
        raise BPBError("bits per byte reads the shipped sample's held-out text; data.source must be 'local' "
                       "(smoke/cpu)")
    ids, nbytes, src, dom, lang, doc = [], [], [], [], [], []
    d = 0
    for name, meta in sample.SAMPLE_SOURCES.items():
        per_doc = []
        for text in split.held_out_texts(cfg, name):
            seq = [tokenizer.EOT_ID, *tokenizer.encode(text)]
            per_doc.append([(d, s, seq[s:s + window]) for s in range(0, len(seq) - 1, window - 1)])
            d += 1
        rounds = [ws[r] for r in range(max(map(len, per_doc), default=0)) for ws in per_doc if r < len(ws)]
        for k, _, w in sorted(rounds[:per_source] if per_source else rounds, key=lambda t: t[:2]):  # document order
            ids.append(w)
            nbytes.append(sum(_token_bytes(t) for t in w[1:]))
            src.append(name)
            dom.append(meta["domain"])
            lang.append(meta["language"])
            doc.append(k)
    if not ids:
        raise BPBError("no held-out documents; raise data.val_fraction")
    return Windows(ids, np.array(nbytes, dtype=np.int64), src, dom, lang, doc, window)


def _load(model: Any) -> Any:
    if not isinstance(model, (str, bytes)) and not hasattr(model, "__fspath__"):
        return model
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()


def score(model: Any, windows: Windows, *, batch: int = 8) -> np.ndarray:
    """Negative log-likelihood (nats) of each window's predicted tokens, shape ``[n_windows]``.

    ``model``: a model directory (loaded with ``AutoModelForCausalLM``, fp32, CPU) or a loaded causal LM.
    Raises :class:`BPBError` when the windows are longer than the model's context.
    """
    import torch

    lm = _load(model)
    ctx = getattr(lm.config, "max_position_embeddings", None)
    if ctx is not None and windows.window > ctx:
        raise BPBError(f"scoring windows of {windows.window} tokens exceed the model's context of {ctx}; "
                       "use a smaller window")
    out = np.zeros(len(windows.ids))
    order = np.argsort([-len(w) for w in windows.ids], kind="stable")  # similar lengths batch together
    with torch.inference_mode():
        for lo in range(0, len(order), batch):
            idx = order[lo:lo + batch]
            L = max(len(windows.ids[i]) for i in idx)
            x = torch.zeros((len(idx), L), dtype=torch.long)
            mask = torch.zeros((len(idx), L), dtype=torch.long)
            for r, i in enumerate(idx):
                w = windows.ids[i]
                x[r, :len(w)] = torch.tensor(w)
                mask[r, :len(w)] = 1
            logits = lm(input_ids=x, attention_mask=mask).logits
            labels = torch.full_like(x, -100)
            labels[:, :-1] = torch.where(mask[:, 1:].bool(), x[:, 1:], -100)
            tok_nll = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1),
                                                        ignore_index=-100, reduction="none")
            out[idx] = tok_nll.view(len(idx), L).sum(dim=1).double().numpy()
    return out


def unigram_counts(cfg: Config) -> Counter:
    """Token counts of the training split of every shipped source (one ``<|endoftext|>`` per document)."""
    from .. import tokenizer
    from ..data import sample, sources, split

    specs = sources.sample_specs()
    counts: Counter = Counter()
    for name in sample.SAMPLE_SOURCES:
        spec = specs[name]
        for rec in sample.documents(name):
            if split.is_held_out(rec, spec, cfg):
                continue
            text = split.model_text(rec, spec)
            counts.update(tokenizer.encode(text))
            counts[tokenizer.EOT_ID] += 1
    return counts


K_GRID = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001)
"""Additive-smoothing constants :func:`unigram_k` chooses from."""


def unigram_k(counts: Counter, vocab_size: int) -> float:
    """The additive-smoothing ``k`` of :data:`K_GRID` that maximises the training tokens' leave-one-out likelihood.

    Leaving one occurrence of token ``t`` out gives it ``(c(t) − 1 + k) / (N − 1 + k·V)``, so ``k`` is tuned on the
    training split alone. Add-one (``k = 1``) would put ``(V − V_seen) / (N + V)`` of the mass on tokens
    never seen (16 % for V = 100,352, N ≈ 380k and V_seen ≈ 23k, the sample's training split), a baseline
    any model beats without learning more than frequencies. ``counts``: token id → occurrences
    (:func:`unigram_counts`).

    Raises:
        BPBError: fewer than 2 tokens counted.
    """
    n = sum(counts.values())
    if n < 2:
        raise BPBError(f"a unigram baseline needs at least 2 training tokens, got {n}")

    def loo(k: float) -> float:
        return sum(c * math.log((c - 1 + k) / (n - 1 + k * vocab_size)) for c in counts.values())

    return max(K_GRID, key=loo)


def unigram_score(counts: Counter, windows: Windows, *, vocab_size: int, k: float | None = None) -> np.ndarray:
    """Nats of each window's predicted tokens under the unigram model ``(c(t) + k) / (N + k·V)``.

    ``k``: additive smoothing; default :func:`unigram_k` (tuned by leave-one-out on the training counts).
    Raises :class:`BPBError` when ``vocab_size`` is below the number of distinct tokens counted.
    """
    if vocab_size < len(counts):
        raise BPBError(f"vocab_size = {vocab_size} is smaller than the {len(counts)} distinct tokens counted")
    k = unigram_k(counts, vocab_size) if k is None else k
    total = sum(counts.values()) + k * vocab_size
    return np.array([-sum(math.log((counts.get(t, 0) + k) / total) for t in w[1:]) for w in windows.ids])


def _groups(windows: Windows) -> list[tuple[str, str, np.ndarray]]:
    out = [("all", "all", np.arange(len(windows.ids)))]
    for kind, labels in (("domain", windows.domain), ("language", windows.language)):
        arr = np.array(labels)
        for g in dict.fromkeys(labels):
            out.append((kind, g, np.flatnonzero(arr == g)))
    return out


MIN_DOCS = 5
"""A difference is *decided* only on at least this many held-out documents (windows of one document are
correlated, so they are resampled together and do not count separately)."""


def _clusters(idx: np.ndarray, windows: Windows) -> np.ndarray:
    """``[n_docs, len(idx)]`` 0/1 matrix: which of the group's windows belong to each document."""
    docs = np.array(windows.doc)[idx]
    return (docs[None, :] == np.unique(docs)[:, None]).astype(float)


def _boot(idx: np.ndarray, windows: Windows, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, len(idx)]`` weights: how often each window is drawn when documents are resampled."""
    member = _clusters(idx, windows)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, member.shape[0], size=(n_boot, member.shape[0]))
    counts = np.stack([np.bincount(d, minlength=member.shape[0]) for d in draws])
    return counts @ member


def table(nats: dict[str, np.ndarray], windows: Windows, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per group (all / domain / language) and model: tokens, bytes, loss (nats/token), bpb and its 95 % interval.

    ``nats`` maps a model label (e.g. ``base``, ``unigram``) to :func:`score`'s output on ``windows``.
    Every model is resampled with the same bootstrap indices.
    """
    rows = []
    for kind, group, idx in _groups(windows):
        wt = _boot(idx, windows, n_boot, seed)
        nb, nt = windows.nbytes, windows.n_tokens
        for label, v in nats.items():
            bpb = v[idx].sum() / LN2 / nb[idx].sum()
            boot = (wt @ v[idx]) / LN2 / (wt @ nb[idx])
            rows.append({"kind": kind, "group": group, "model": label, "windows": len(idx),
                         "documents": int(len(set(np.array(windows.doc)[idx]))),
                         "tokens": int(nt[idx].sum()), "bytes": int(nb[idx].sum()),
                         "loss": v[idx].sum() / nt[idx].sum(), "bpb": bpb,
                         "bpb_lo": float(np.quantile(boot, 0.025)), "bpb_hi": float(np.quantile(boot, 0.975))})
    return pd.DataFrame(rows)


def paired(nats: dict[str, np.ndarray], windows: Windows, pairs: list[tuple[str, str]], *,
           n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """bpb(B) − bpb(A) per group for each ``(A, B)`` pair, with a paired 95 % bootstrap interval.

    Documents are resampled (their windows together). ``decided`` is True when the interval excludes 0 and
    the group holds at least :data:`MIN_DOCS` documents (the sign of the difference is then known at this
    sample size); ``p`` is the two-sided bootstrap p-value (twice the smaller tail share, at most 1).
    ``nats`` as :func:`table`.

    Raises:
        BPBError: a pair names a model that ``nats`` does not hold.
    """
    for a, b in pairs:
        if a not in nats or b not in nats:
            raise BPBError(f"pair ({a!r}, {b!r}) names a model not scored; scored: {', '.join(nats)}")
    rows = []
    for kind, group, idx in _groups(windows):
        wt = _boot(idx, windows, n_boot, seed)
        nb = windows.nbytes
        n_docs = int(len(set(np.array(windows.doc)[idx])))
        for a, b in pairs:
            d = (nats[b][idx].sum() - nats[a][idx].sum()) / LN2 / nb[idx].sum()
            boot = (wt @ (nats[b][idx] - nats[a][idx])) / LN2 / (wt @ nb[idx])
            lo, hi = float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))
            p = min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean()))
            rows.append({"kind": kind, "group": group, "from": a, "to": b, "delta_bpb": d, "lo": lo, "hi": hi,
                         "p": p, "documents": n_docs, "decided": bool((lo > 0 or hi < 0) and n_docs >= MIN_DOCS)})
    return pd.DataFrame(rows)


def evaluate(cfg: Config, models: dict[str, Any], *, window: int | None = None, per_source: int | None = None,
             n_boot: int = N_BOOT, batch: int = 8) -> dict[str, Any]:
    """Score every model and the unigram floor on the held-out windows.

    Returns ``{"windows", "nats": {label: [n_windows]}, "table", "paired"}``; ``paired`` compares each
    model with the next one in ``models``' order, and each with the unigram floor. ``window`` defaults
    to ``cfg.data.seq_len`` (the length the models were trained on), ``per_source`` to
    :data:`WINDOWS_PER_SOURCE` of the preset.
    """
    from .. import tokenizer

    win = window or cfg.data.seq_len
    wins = held_out(cfg, window=win, per_source=per_source or WINDOWS_PER_SOURCE.get(cfg.run.preset))
    nats = {label: score(m, wins, batch=batch) for label, m in models.items()}
    vocab = max(cfg.model.vocab_size, max(tokenizer.special_tokens().values()) + 1)
    nats["unigram"] = unigram_score(unigram_counts(cfg), wins, vocab_size=vocab)
    labels = list(models)
    pairs = [(a, b) for a, b in zip(labels, labels[1:], strict=False)] + [("unigram", m) for m in labels]
    return {"windows": wins, "nats": nats, "table": table(nats, wins, n_boot=n_boot, seed=cfg.run.seed),
            "paired": paired(nats, wins, pairs, n_boot=n_boot, seed=cfg.run.seed)}


def describe(pairs: pd.DataFrame) -> list[str]:
    """One sentence per compared pair over all held-out text, computed from :func:`paired`'s rows."""
    out = []
    for r in pairs[pairs["group"] == "all"].to_dict("records"):
        ci = f"{r['delta_bpb']:+.4f} bits per byte (95 % interval [{r['lo']:+.4f}, {r['hi']:+.4f}])"
        if r["from"] == "unigram":
            side = "below" if r["delta_bpb"] < 0 else "above"
            verdict = f"clearly {side} the unigram floor" if r["decided"] else \
                "not distinguishable from the unigram floor"
            out.append(f"* **{r['to']}** vs the unigram floor: {ci} — {verdict}.")
        else:
            verdict = (("lower" if r["delta_bpb"] < 0 else "higher") + " on this held-out text (the interval "
                       "covers the choice of text, not of training seed: one run per stage)") \
                if r["decided"] else "undecided: the interval includes zero"
            out.append(f"* **{r['from']} → {r['to']}**: {ci} — {verdict}.")
    return out


# ------------------------------------------------------------------------------ the harness tasks


def _continuation_nll(lm: Any, ctx: str, cont: str) -> tuple[float, int]:
    """(−log p(cont | ctx) in nats, continuation tokens), split as lm-eval's HFLM does (whole, then context)."""
    import torch

    from .. import tokenizer

    whole = tokenizer.encode(ctx + cont)
    n_ctx = len(tokenizer.encode(ctx))
    n_cont = len(whole) - n_ctx
    if n_ctx == 0 or n_cont <= 0:
        raise BPBError(f"cannot score continuation {cont!r} after context {ctx[:40]!r}: empty context or continuation")
    x = torch.tensor([whole])
    with torch.inference_mode():  # only the positions that predict the continuation go through the LM head
        logits = lm(input_ids=x, logits_to_keep=n_cont + 1).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, x[0, n_ctx:], reduction="sum")
    return float(nll), n_cont


def task_logliks(model_dir: Any, cfg: Config, *, limit: int | None = None) -> pd.DataFrame:
    """Gold-answer negative log-likelihood per document of the offline harness tasks.

    The documents and strings are the tasks' own (:func:`stablelm2.evaluation.tasks.cloze_docs`,
    :func:`~stablelm2.evaluation.tasks.lastword_docs`), paired as lm-eval 0.4 pairs them:
    ``slm2_cloze_mc`` (multiple choice) scores target delimiter ``" "`` + the true choice after its
    context, ``slm2_lastword`` (loglikelihood) its target ``" " + last word`` after the passage.
    Tokens are Arcade100k's (:func:`stablelm2.tokenizer.encode`, the tokenizer saved with every model
    of chapters 05–06). Columns: ``task``, ``doc``, ``nll`` (nats), ``tokens``; ``limit`` documents per task.
    """
    import torch

    from . import tasks

    lm = _load(model_dir)
    threads = torch.get_num_threads()
    docs = {
        "slm2_cloze_mc": [(d["context"], " " + d["choices"][d["label"]]) for d in tasks.cloze_docs(cfg.run.seed)],
        "slm2_lastword": [(" ".join(d["text"].split(" ")[:-1]), " " + d["text"].split(" ")[-1])
                          for d in tasks.lastword_docs()],
    }
    rows = []
    # one short sequence at a time: one thread (measured on the cpu model, 32 documents: 0.8 s on one
    # thread against 10 s on two while other processes share the cores); restored afterwards
    torch.set_num_threads(1)
    try:
        for task, pairs in docs.items():
            for i, (ctx, cont) in enumerate(pairs[:limit] if limit else pairs):
                nll, n = _continuation_nll(lm, ctx, cont)
                rows.append({"task": task, "doc": i, "nll": nll, "tokens": n})
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(rows)


def task_table(logliks: dict[str, pd.DataFrame], *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per task: each stage's mean gold NLL (nats) with a 95 % interval, and each stage minus the previous (paired).

    ``logliks`` maps a stage label to :func:`task_logliks`' output (same documents in the same order).
    Intervals: percentile bootstrap over documents (``n_boot`` resamples, the same for every stage).

    Raises:
        BPBError: the stages scored different numbers of documents of a task.
    """
    labels = list(logliks)
    rows = []
    for task in dict.fromkeys(logliks[labels[0]]["task"]):
        v = {s: logliks[s][logliks[s]["task"] == task]["nll"].to_numpy() for s in labels}
        n = len(v[labels[0]])
        if any(len(x) != n for x in v.values()):
            raise BPBError(f"task {task}: the stages scored different numbers of documents; use the same limit")
        bi = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        for i, s in enumerate(labels):
            boot = v[s][bi].mean(axis=1)
            row = {"task": task, "stage": s, "n": n, "mean_nll": float(v[s].mean()),
                   "lo": float(np.quantile(boot, 0.025)), "hi": float(np.quantile(boot, 0.975))}
            if i:
                prev = labels[i - 1]
                d = v[s] - v[prev]
                db = d[bi].mean(axis=1)
                dlo, dhi = float(np.quantile(db, 0.025)), float(np.quantile(db, 0.975))
                row.update({"vs": prev, "delta": float(d.mean()), "delta_lo": dlo, "delta_hi": dhi,
                            "decided": bool(dlo > 0 or dhi < 0)})
            rows.append(row)
    return pd.DataFrame(rows)


def accuracy_verdicts(stage_tab: pd.DataFrame, chance: dict[str, float]) -> pd.DataFrame:
    """Accuracy rows of a stage table with a 95 % Wilson interval, the chance level and a verdict.

    Verdicts: ``above chance`` / ``below chance`` when the interval excludes the chance level;
    ``undecidable at this scale`` when it does not, or when a task without a chance level has no
    correct answer at all (nothing to compare).
    """
    from scipy.stats import binomtest

    rows = []
    for r in stage_tab.itertuples():
        if not str(r.metric).startswith("acc") or r.value is None or not r.n:
            continue
        n = int(r.n)
        k = int(round(float(r.value) * n))
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        c = chance.get(r.task)
        if c is None:
            verdict = "undecidable at this scale (no correct answer)" if k == 0 else "no chance level"
        elif ci.low > c:
            verdict = "above chance"
        elif ci.high < c:
            verdict = "below chance"
        else:
            verdict = "undecidable at this scale"
        rows.append({"task": r.task, "stage": r.stage, "metric": r.metric, "acc": float(r.value), "n": n,
                     "lo": ci.low, "hi": ci.high, "chance": c, "verdict": verdict})
    return pd.DataFrame(rows)


def plot(tab: pd.DataFrame, *, kind: str = "domain", title: str = "") -> Any:
    """Bars of bpb per group and model with 95 % intervals; the unigram floor as a black line per group."""
    import matplotlib.pyplot as plt

    sub = tab[tab["kind"].isin([kind, "all"])]
    groups = list(dict.fromkeys(sub["group"]))
    models = [m for m in dict.fromkeys(sub["model"]) if m != "unigram"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(models)) / 2 + 2), 3.6))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(groups))
    for j, m in enumerate(models):
        s = sub[sub["model"] == m].set_index("group").loc[groups]
        ax.bar(x + (j - (len(models) - 1) / 2) * width, s["bpb"], width,
               yerr=np.clip([s["bpb"] - s["bpb_lo"], s["bpb_hi"] - s["bpb"]], 0, None),  # float round-off
               capsize=2, label=m)
    if "unigram" in set(sub["model"]):
        u = sub[sub["model"] == "unigram"].set_index("group").loc[groups]
        ax.hlines(u["bpb"], x - 0.45, x + 0.45, color="k", lw=1.5, label="unigram floor")
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylabel("bits per byte (held-out)")
    ax.set_title(title or f"Held-out bits per byte per {kind} (95 % bootstrap intervals)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_deltas(pairs: pd.DataFrame, *, title: str = "") -> Any:
    """Stage-to-stage differences in held-out bpb per group, with paired 95 % intervals (unigram pairs left out)."""
    import matplotlib.pyplot as plt

    sub = pairs[pairs["from"] != "unigram"]
    steps = list(dict.fromkeys(zip(sub["from"], sub["to"], strict=True)))
    groups = list(dict.fromkeys(zip(sub["kind"], sub["group"], strict=True)))  # "code" is a domain and a language
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(groups) * max(1, len(steps)) + 1.4))
    y = np.arange(len(groups))
    h = 0.8 / max(1, len(steps))
    for j, (a, b) in enumerate(steps):
        s = sub[(sub["from"] == a) & (sub["to"] == b)].set_index(["kind", "group"]).loc[groups]
        ax.barh(y + (j - (len(steps) - 1) / 2) * h, s["delta_bpb"], h,
                xerr=[s["delta_bpb"] - s["lo"], s["hi"] - s["delta_bpb"]], capsize=2, label=f"{a} → {b}")
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(y, [g if k == "all" else f"{k}: {g}" for k, g in groups])
    ax.invert_yaxis()
    ax.set_xlabel("change in held-out bits per byte (negative: better)")
    ax.set_title(title or "Stage to stage: held-out bits per byte (paired 95 % bootstrap)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
