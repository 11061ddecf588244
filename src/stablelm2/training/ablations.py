"""The appendix ablations at small scale: schedules (App. B), batch sizes (App. D), data mixes (App. A).

Each study trains the same small proxy model on the same packed sample with the chapter's engine
(one process, in this Python process), changing one thing:

* :func:`schedule_study` — cosine, inverse square root (Eq. 2), hyb (Eq. 1) and hyb2, all with the
  same warm-up and linear cool-down to zero: final validation loss and the average learning rate
  of each (App. B's argument that the gap tracks the average learning rate);
* :func:`batch_study` — the baseline global batch and 2×, 3×, 4× it (the paper's 4M, 8M, 12M, 16M),
  rsqrt schedule, learning rate not rescaled; each larger batch trains until its training loss
  (averaged over the same number of tokens) reaches the baseline's final one: iterations and tokens
  needed (App. D: fewer iterations, more tokens);
* :func:`mixture_study` — the sample's natural mix, more code, no non-English text, more
  non-English text: validation loss per domain and language (App. A: more code hurts language;
  each language gains quickly from any in-language data).

The proxy is the preset's model, at width ``train.ablation_d_model`` when that is set (the paper
ablated 1B models on 100B tokens), trained ``train.ablation_steps`` steps of ``train.ablation_batch_tokens`` with the
preset's schedule shape scaled to that length. Runs are cached by their identity under
``<chapter>/ablations/``, so a rerun with the same parameters reads them back.

>>> from stablelm2 import config
>>> from stablelm2.training import ablations
>>> c = ablations.proxy_config(config.load("smoke"), kind="cosine")
>>> c.model.d_model, c.train.steps, c.train.global_batch_tokens, c.schedule.kind
(32, 2, 256, 'cosine')
"""

from __future__ import annotations

import statistics
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

SCHEDULES = ("cosine", "rsqrt", "hybrid", "hybrid2")
LABELS = {"cosine": "cosine", "rsqrt": "rsqrt (Eq. 2)", "hybrid": "hyb (Eq. 1)", "hybrid2": "hyb2"}


# ------------------------------------------------------------------------------ the proxy run


def enabled(cfg: Config) -> bool:
    """Whether this preset runs the ablations (``train.ablation_steps`` > 0; not at ``paper``)."""
    return cfg.train.ablation_steps > 0


def not_run_message() -> str:
    n, tok = F.get("appendix.ablation_model_params"), F.get("appendix.ablation_tokens")
    return (f"**Not run at this preset** (`train.ablation_steps = 0`): the paper's ablations trained "
            f"~{n.value / 1e9:g}B-parameter models on ~{tok.value / 1e9:g}B tokens each ({', '.join(n.source)}, "
            f"{n.confidence}), which this project does not attempt; the `cpu` preset runs them at small scale.")


def proxy_config(cfg: Config, *, steps: int | None = None, batch_tokens: int | None = None,
                 kind: str | None = None, cooldown: bool = True) -> Config:
    """``cfg`` shrunk to an ablation run: proxy width, ``steps`` × ``batch_tokens``, schedule scaled.

    Warm-up, horizon T and cool-down keep their share of the preset's run; ``cooldown=False``
    drops the cool-down (App. D's open-ended rsqrt runs).
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
    d["train"].update(steps=n, global_batch_tokens=batch_tokens or t.ablation_batch_tokens, checkpoint_every=0,
                      eval_every=0, n_procs=1, n_nodes=1)  # ablations run on one process
    return config_lib.from_dict(d)


def check(cfg: Config) -> None:
    """Fail early (before any training) if a study's configuration or batch layout is invalid."""
    for kind in SCHEDULES:
        proxy_config(cfg, kind=kind)
    for mult in batch_multiples():
        layout_lib.from_config(proxy_config(cfg, batch_tokens=mult * cfg.train.ablation_batch_tokens,
                                            kind="rsqrt", cooldown=False), n_procs=1)


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


def run(c: Config, out: Path, *, weights: dict[str, float] | None = None, stop: Any = None,
        tag: str | None = None, val_seqs: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train ``c`` on one process into ``out`` unless a finished run with the same identity is there.

    The final validation loss is measured on :func:`validation_subset` (``train.ablation_val_seqs``
    sequences per source; 0: none, as App. D compares training losses).
    """
    val_seqs = c.train.ablation_val_seqs if val_seqs is None else val_seqs
    tag = f"{tag or ''} val_seqs={val_seqs}"
    ident = engine.run_identity(c, 1, weights=weights, tag=tag)
    path = Path(out) / ckpt.fingerprint(ident)[:12]
    hist_file = path / "history.json"
    if hist_file.is_file():
        from .metrics import load_history

        return load_history(path)
    return engine.train(c, path, resume=False, weights=weights, stop=stop, tag=tag, save_model=False,
                        progress=progress,
                        val_factory=lambda cc: validation_subset(cc, val_seqs))


class UntilLoss:
    """App. D's stopping rule: the training loss averaged over ``window`` tokens is at or below ``target``."""

    def __init__(self, target: float, window: int):
        self.target, self.window = target, window

    def __call__(self, history: dict[str, Any]) -> bool:
        return smoothed_loss(history, self.window) <= self.target

    def __repr__(self) -> str:
        return f"until smoothed train loss <= {self.target!r} over {self.window} tokens"


def _one_thread() -> None:
    torch.set_num_threads(1)


_POOLS: dict[int, Any] = {}


def run_many(cfg: Config, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`run` for every job (its keyword arguments), in order.

    With ``train.n_procs`` > 1 the jobs go to that many worker processes of one thread each (kept
    for the next study), so both cores work without threads fighting over them; with one
    process they run here. A run's numbers do not depend on which worker ran it.
    """
    if cfg.train.n_procs <= 1:
        return [run(**job) for job in jobs]
    import atexit
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if cfg.train.n_procs not in _POOLS:
        _POOLS[cfg.train.n_procs] = ProcessPoolExecutor(cfg.train.n_procs, mp_context=multiprocessing.get_context("spawn"),
                                                        initializer=_one_thread)
        atexit.register(_POOLS[cfg.train.n_procs].shutdown)
    pool = _POOLS[cfg.train.n_procs]
    return list(pool.map(_run_job, jobs))


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    return run(**job)


def _curve(h: dict[str, Any]) -> dict[str, list[float]]:
    return {"step": [r["step"] for r in h["steps"]], "loss": [r["loss"] for r in h["steps"]],
            "lr": [r["lr"] for r in h["steps"]], "tokens": [r["tokens"] for r in h["steps"]]}


# ------------------------------------------------------------------------------ App. B


def schedule_study(cfg: Config, root: Path, kinds: tuple[str, ...] = SCHEDULES, progress: bool = False) -> list[dict]:
    """One run per schedule kind; rows with the final validation loss and the average learning rate."""
    rows = []
    cfgs = [proxy_config(cfg, kind=kind) for kind in kinds]
    hists = run_many(cfg, [dict(c=c, out=Path(root) / "appB" / kind, progress=progress) for kind, c in zip(kinds, cfgs,
                                                                                                          strict=True)])
    for kind, c, h in zip(kinds, cfgs, hists, strict=True):
        rows.append({"schedule": kind, "label": LABELS[kind], "final_val_loss": h["summary"]["final_val_loss"],
                     "final_train_loss": h["summary"]["final_loss"], "average_lr": schedule_lib.average_lr(c),
                     "steps": c.train.steps, "tokens": h["summary"]["tokens"], "curve": _curve(h)})
    return rows


def per_seed(row: dict[str, Any], key: str) -> list[float]:
    """The per-seed values of ``row[key]``: ``row[key + "_by_seed"]`` when the study ran several seeds
    (one value per seed, in the order of ``row["seeds"]``), else the one run's value."""
    many = row.get(f"{key}_by_seed")
    return [float(x) for x in many] if many is not None else [float(row[key])]


def _seeds(row: dict[str, Any]) -> list[int]:
    return list(row.get("seeds") or [0])


def schedule_claims(ledger: Ledger, rows: list[dict]) -> list[Claim]:
    """App. B's findings, each decided by a one-sided test over seeds (``ledger.Ledger.finding``).

    One seed per schedule (today's study) is *inconclusive at this scale*, whatever the losses.
    """
    by = {r["schedule"]: r for r in rows}
    steps = by["cosine"]["steps"]
    out = [ledger.finding(
        "pretraining.appB_rsqrt_below_cosine",
        f"App. B / Fig. 4 at reduced scale ({steps} steps of the ablation model): rsqrt ends with a higher "
        "validation loss than cosine", fact="schedule.fig4_finding",
        a=per_seed(by["rsqrt"], "final_val_loss"), b=per_seed(by["cosine"], "final_val_loss"), expect="a > b",
        names=("rsqrt", "cosine"), seeds=_seeds(by["cosine"]), metric="final validation loss")]
    hi, lo = sorted(("hybrid", "hybrid2"), key=lambda k: -by[k]["average_lr"])
    out.append(ledger.finding(
        "pretraining.appB_avg_lr_orders_hyb", f"App. B at reduced scale ({steps} steps): of hyb and hyb2, the one with "
        f"the higher average learning rate ({LABELS[hi]}, {by[hi]['average_lr']:.3g} vs {by[lo]['average_lr']:.3g}) "
        "ends lower", fact="schedule.hyb2_switch_frac",
        a=per_seed(by[hi], "final_val_loss"), b=per_seed(by[lo], "final_val_loss"), expect="a < b",
        names=(LABELS[hi], LABELS[lo]), seeds=_seeds(by[hi]), metric="final validation loss"))
    for k in ("cosine", "hyb", "hyb2"):
        ledger.refer(f"schedule.avg_lr_{'hybrid' if k == 'hyb' else 'hybrid2' if k == 'hyb2' else 'cosine'}",
                     "04_lr_schedule", f"the paper's average learning rate of {k} (App. B)")
    return out


# ------------------------------------------------------------------------------ App. D


def batch_multiples() -> list[int]:
    """The paper's batches over its baseline: 4M, 8M, 12M, 16M → 1, 2, 3, 4."""
    base = F.value("appendix.batch_baseline_m")
    return [int(round(b / base)) for b in F.value("appendix.batch_sizes")]


def smoothed_loss(h: dict[str, Any], window_tokens: int) -> float:
    """Mean training loss over the last steps that together hold ``window_tokens`` tokens."""
    steps = h["steps"]
    per = h["layout"]["global_batch_tokens"]
    k = max(1, window_tokens // per)
    if len(steps) < k:
        return float("inf")
    return statistics.fmean(r["loss"] for r in steps[-k:])


def batch_study(cfg: Config, root: Path, multiples: list[int] | None = None, progress: bool = False) -> list[dict]:
    """Baseline run, then each larger batch until it matches the baseline's final (smoothed) loss."""
    mults = multiples or batch_multiples()
    b0 = cfg.train.ablation_batch_tokens
    base_cfg = proxy_config(cfg, batch_tokens=b0, kind="rsqrt", cooldown=False)
    window = min(max(mults), base_cfg.train.steps) * b0  # every run averages its loss over these many tokens
    base = run_many(cfg, [dict(c=base_cfg, out=Path(root) / "appD" / "x1", val_seqs=0, progress=progress)])[0]
    target = smoothed_loss(base, window)
    rows = [{"multiple": 1, "batch_tokens": b0, "reached": True, "iterations": base["summary"]["steps"],
             "tokens": base["summary"]["tokens"], "loss": target, "curve": _curve(base)}]
    larger = [m for m in mults if m != 1]
    until = UntilLoss(target, window)
    hists = run_many(cfg, [dict(c=proxy_config(cfg, batch_tokens=m * b0, kind="rsqrt", cooldown=False),
                                out=Path(root) / "appD" / f"x{m}", stop=until, tag=repr(until), val_seqs=0,
                                progress=progress) for m in larger])
    for m, h in zip(larger, hists, strict=True):
        reached = smoothed_loss(h, window) <= target
        rows.append({"multiple": m, "batch_tokens": m * b0, "reached": reached, "iterations": h["summary"]["steps"],
                     "tokens": h["summary"]["tokens"], "loss": smoothed_loss(h, window), "curve": _curve(h)})
    for r in rows:
        r["iteration_speedup"] = rows[0]["iterations"] / r["iterations"]
        r["token_cost"] = r["tokens"] / rows[0]["tokens"]
    return rows


def batch_claims(ledger: Ledger, rows: list[dict]) -> list[Claim]:
    """App. D at reduced scale: the largest batch needs fewer iterations (and more tokens) than the baseline.

    Decided over seeds by a one-sided test of iterations to the baseline's loss (one seed: inconclusive).
    """
    top = max(rows, key=lambda r: r["multiple"])
    base = rows[0]
    reached = bool(top["reached"])
    note = "" if reached else f"the {top['multiple']}× batch did not reach the baseline's loss within {top['iterations']} steps"
    return [
        ledger.finding("pretraining.appD_fewer_iterations_more_tokens",
                       f"App. D at reduced scale: the {top['multiple']}× batch reaches the baseline's loss in fewer "
                       "iterations", fact="appendix.batch_method",
                       # not reached: the larger batch needed more than the steps it ran (a lower bound)
                       a=per_seed(top, "iterations") if reached else [x + 1 for x in per_seed(top, "iterations")],
                       b=per_seed(base, "iterations"), expect="a < b", names=(f"{top['multiple']}x", "1x"),
                       seeds=_seeds(top), metric="iterations to the baseline's loss",
                       note=(f"{top['iteration_speedup']:.2f}× fewer iterations, {top['token_cost']:.2f}× the tokens"
                             + (f"; {note}" if note else ""))),
        ledger.report_only("pretraining.appD_speedup_16m", "App. D: iteration speed-up of the 16M batch over 4M",
                           fact="appendix.iteration_speedup_16m",
                           why=f"the paper's 1B-model runs; ours at small scale: {top['iteration_speedup']:.2f}×"),
        ledger.report_only("pretraining.appD_token_cost_16m", "App. D: token cost of the 16M batch over 4M",
                           fact="appendix.token_cost_16m",
                           why=f"the paper's 1B-model runs; ours at small scale: {top['token_cost']:.2f}×"),
    ]


# ------------------------------------------------------------------------------ App. A


def default_mixes(cfg: Config) -> dict[str, dict[str, float]]:
    """The sample's natural mix (by size) and three variants: more code, no / more non-English text."""
    from .. import data

    base = data.resolve_weights(cfg, None)
    langs = data.sample_sources(cfg)
    non_en = [n for n, s in langs.items() if s["language"] not in ("en", "code")]
    code = [n for n, s in langs.items() if s["language"] == "code"]

    def scaled(names: list[str], factor: float) -> dict[str, float]:
        return {n: w * (factor if n in names else 1.0) for n, w in base.items()}

    return {"control": dict(base), "code ×4": scaled(code, 4.0), "no non-English": scaled(non_en, 0.0),
            "non-English ×3": scaled(non_en, 3.0)}


def groups(cfg: Config) -> dict[str, list[str]]:
    """Validation sources grouped as English, code, and non-English."""
    from .. import data

    langs = data.sample_sources(cfg)
    return {"English": [n for n, s in langs.items() if s["language"] == "en"],
            "code": [n for n, s in langs.items() if s["language"] == "code"],
            "non-English": [n for n, s in langs.items() if s["language"] not in ("en", "code")]}


def mixture_study(cfg: Config, root: Path, mixes: dict[str, dict[str, float]] | None = None,
                  progress: bool = False) -> list[dict]:
    """One run per mix; rows with its shares and the validation loss per source and per group."""
    mixes = mixes or default_mixes(cfg)
    grp = groups(cfg)
    c = proxy_config(cfg)
    rows = []
    hists = run_many(cfg, [dict(c=c, out=Path(root) / "appA" / name.replace(" ", "_").replace("×", "x"), weights=w,
                                progress=progress) for name, w in mixes.items()])
    for (name, w), h in zip(mixes.items(), hists, strict=True):
        dom = h["summary"]["final_domains"]
        total = sum(w.values())
        rows.append({"mix": name, "weights": w,
                     "share": {g: sum(w.get(n, 0.0) for n in names) / total for g, names in grp.items()},
                     "val_loss": h["summary"]["final_val_loss"], "domains": dom,
                     "group_loss": {g: statistics.fmean(dom[n] for n in names if n in dom) for g, names in grp.items()}})
    return rows


def mixture_claims(ledger: Ledger, rows: list[dict]) -> list[Claim]:
    """App. A at reduced scale, each finding decided over seeds (one seed: inconclusive at this scale)."""
    by = {r["mix"]: r for r in rows}
    ctl, code, none, more = by["control"], by["code ×4"], by["no non-English"], by["non-English ×3"]

    def group(r: dict[str, Any], g: str) -> list[float]:
        many = r.get("group_loss_by_seed")
        return [float(x[g]) for x in many] if many is not None else [float(r["group_loss"][g])]

    ne = [group(r, "non-English") for r in (none, ctl, more)]
    gain_any = [a - b for a, b in zip(ne[0], ne[1], strict=True)]
    gain_more = [b - c for b, c in zip(ne[1], ne[2], strict=True)]
    return [
        ledger.finding("pretraining.appA_more_code_hurts_english",
                       f"App. A at reduced scale: more code (share {ctl['share']['code']:.0%} → "
                       f"{code['share']['code']:.0%}) raises the English validation loss",
                       fact="appendix.ablation_findings", a=group(code, "English"), b=group(ctl, "English"),
                       expect="a > b", names=("code ×4", "control"), seeds=_seeds(ctl),
                       metric="English validation loss"),
        ledger.finding("pretraining.appA_language_saturates",
                       "App. A at reduced scale: the first share of non-English data lowers the non-English loss more "
                       f"than tripling it ({ctl['share']['non-English']:.0%} → {more['share']['non-English']:.0%})",
                       a=gain_any, b=gain_more, expect="a > b", names=("first share's gain", "tripling's gain"),
                       seeds=_seeds(ctl), metric="drop of the non-English validation loss"),
    ]
