"""What chapter 08 measures on every format: perplexity and KL to fp32, generation, speed, bounds.

Every engine (:class:`TorchEngine` for the fp32 reference, and the llama.cpp, OpenVINO and MLX
engines) offers ``logits(ids)`` (all positions), ``prefill(ids)`` and ``step(token)`` (last
position, with a KV cache), so the same functions measure them all:

* :func:`heldout_windows` — token windows of held-out sample text (documents on the validation side
  of chapter 01's split, each opened by ``<|endoftext|>``), the same for every format;
* :func:`compare` — perplexity of the windows, and the mean KL divergence of each format's next-token
  distribution from the fp32 model's (llama.cpp's ``--kl-divergence`` measure), plus top-1 agreement;
* :func:`greedy` — greedy generation (each format must load and generate);
* :func:`speed` — prompt-processing and generation tokens/s at fixed lengths (best of ``repeats``);
* :func:`bandwidth_bound` — tokens/s a decoder reading ``bytes_per_token`` could reach at the measured
  memory bandwidth (decoding one token reads every weight once).

>>> from stablelm2.quantization import measure
>>> measure.bandwidth_bound(bytes_per_token=1e9, bandwidth=16e9)
16.0
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import Config


class Engine(Protocol):
    """One format opened for inference; ``vocab`` below is the model's output rows (padding rows included)."""

    backend: str

    def logits(self, ids: list[int]) -> np.ndarray:
        """Float32 logits ``[len(ids), vocab]`` of every position of ``ids``, from an empty cache."""
        ...

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Run ``ids`` from an empty KV cache; float32 logits ``[vocab]`` of the last position."""
        ...

    def step(self, token: int) -> np.ndarray:
        """Append one token to the KV cache; float32 logits ``[vocab]`` of the next position."""
        ...

    def close(self) -> None:
        """Release the model (the engine cannot be used afterwards)."""
        ...


class TorchEngine:
    """The transformers checkpoint in fp32: the reference every format is compared with (GPU if any).

    ``threads`` sets torch's CPU threads (None or 0: torch's default); ``device`` is ``"auto"`` (cuda when
    available, else cpu) or a torch device name.

    Raises:
        ValueError: ``threads`` is negative (checked before the checkpoint is opened).
        CheckpointError: ``path`` is not a StableLM folder (:func:`.checkpoint.check`).
    """

    backend = "torch"

    def __init__(self, path: Path | str, *, threads: int | None = None, device: str = "auto"):
        if threads is not None and threads < 0:
            raise ValueError(f"threads = {threads}; pass a positive thread count, or None/0 for torch's default")
        import torch
        from transformers import AutoModelForCausalLM

        from .checkpoint import check

        check(path)
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(self.device).eval()  # type: ignore[arg-type]
        self._past = None

    def _run(self, ids: list[int], past) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            out = self.model(torch.tensor([ids], device=self.device), cache=past, use_cache=True)
        self._past = out.cache
        return out.logits[0].float().cpu().numpy()

    def logits(self, ids: list[int]) -> np.ndarray:
        """Float32 logits ``[len(ids), vocab]`` of every position of ``ids`` (a fresh KV cache)."""
        return self._run(ids, None)

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Run ``ids`` from a fresh KV cache; float32 logits ``[vocab]`` of the last position."""
        return self._run(ids, None)[-1]

    def step(self, token: int) -> np.ndarray:
        """Append ``token`` to the last call's KV cache; float32 logits ``[vocab]`` of the next position."""
        return self._run([token], self._past)[-1]

    def close(self) -> None:
        """Drop the model (its memory is freed once nothing else holds it)."""
        self.model = None


# ------------------------------------------------------------------------------ held-out text


def heldout_windows(cfg: Config, *, n_tokens: int, window: int) -> list[list[int]]:
    """Windows of ``window`` token ids (``n_tokens`` in all) from held-out sample documents.

    The held-out documents of every sample source under the project's one split rule
    (:mod:`stablelm2.data.split`), in a fixed order, each opened by ``<|endoftext|>``, concatenated and cut
    into ``n_tokens // window`` windows (the remainder is dropped).

    Raises:
        ValueError: ``window`` < 2 or ``n_tokens`` < ``window``, or the held-out sample has fewer than
            ``n_tokens`` tokens (lower ``quant.ppl_tokens`` or raise ``data.val_fraction``).
    """
    from .. import tokenizer
    from ..data import sample, split

    if window < 2 or n_tokens < window:
        raise ValueError(f"need window ≥ 2 and n_tokens ≥ window (got window={window}, n_tokens={n_tokens})")
    stream: list[int] = []
    for name in sample.SAMPLE_SOURCES:
        for text in split.held_out_texts(cfg, name):
            stream += [tokenizer.EOT_ID] + tokenizer.encode(text)
    if len(stream) < n_tokens:
        raise ValueError(f"the held-out sample has {len(stream)} tokens, fewer than the {n_tokens} asked for; "
                         "lower quant.ppl_tokens or raise data.val_fraction")
    return [stream[i:i + window] for i in range(0, n_tokens - window + 1, window)]


# ------------------------------------------------------------------------------ quality


def _log_softmax(x: np.ndarray):
    """Log-probabilities in float64: every sum over ~100k vocabulary terms (the softmax normaliser, the
    KL divergence, the negative log-likelihood) is then taken in double precision. In float32 the
    rounding of those sums (~1e-8 per token) is as large as the KL divergence of near-identical
    formats, which then comes out negative."""
    import torch

    return torch.log_softmax(torch.from_numpy(np.asarray(x, dtype=np.float64)), dim=-1)


def compare(engines: dict[str, Engine], reference: Engine, windows: list[list[int]], *,
            n_vocab: int) -> dict[str, dict[str, float]]:
    """Perplexity of every engine (and the reference) on ``windows``, with KL(ref ‖ format) and top-1 agreement.

    Window by window: the reference's log-probabilities are computed once and compared with each
    engine's. Logits beyond the tokenizer's ``n_vocab`` (the embedding's padding rows) are dropped
    first, so every backend is compared over the same tokens. KL is in nats per token. The engines'
    logits (float32) are widened to float64 before the softmax, and every reduction (normaliser, KL,
    log-likelihood) is accumulated in float64, so a KL divergence is never negative by rounding.
    (The arithmetic runs in torch: a window is ~positions × 100k logits per format.)

    Raises:
        ValueError: ``windows`` is empty, a window has fewer than 2 tokens (nothing to predict), or
            ``n_vocab`` < 1 — before any engine runs.
    """
    import torch

    if not windows:
        raise ValueError("compare needs at least one window of token ids; see heldout_windows")
    short = [i for i, w in enumerate(windows) if len(w) < 2]
    if short:
        raise ValueError(f"window(s) {short[:5]} have fewer than 2 tokens (nothing to predict); "
                         "give every window at least 2 token ids")
    if n_vocab < 1:
        raise ValueError(f"n_vocab = {n_vocab}; pass the tokenizer's vocabulary size (≥ 1)")

    names = ["FP32", *engines]
    acc = {n: {"nll": 0.0, "kl": 0.0, "agree": 0.0} for n in names}
    count = 0
    for w in windows:
        targets = torch.tensor(w[1:])
        rows = torch.arange(len(targets))
        ref = _log_softmax(reference.logits(w)[:-1, :n_vocab])
        ref_top = ref.argmax(-1)
        p = ref.exp().flatten()
        acc["FP32"]["nll"] -= float(ref[rows, targets].sum())
        acc["FP32"]["agree"] += len(targets)
        for name, eng in engines.items():
            lp = _log_softmax(eng.logits(w)[:-1, :n_vocab])
            acc[name]["nll"] -= float(lp[rows, targets].sum())
            acc[name]["kl"] += float(torch.dot(p, (ref - lp).flatten()))  # Σ p·(log p − log q)
            acc[name]["agree"] += float((lp.argmax(-1) == ref_top).sum())
        count += len(targets)
    return {n: {"ppl": math.exp(a["nll"] / count), "nll": a["nll"] / count, "kl": a["kl"] / count,
                "top1_agree": a["agree"] / count, "tokens": count} for n, a in acc.items()}


# ------------------------------------------------------------------------------ generation and speed


def greedy(engine: Engine, prompt: list[int], n: int) -> list[int]:
    """``n`` greedily generated token ids after ``prompt`` (argmax of each step's logits, KV cache kept).

    Raises:
        ValueError: ``prompt`` is empty or ``n`` < 1 (before the engine runs).
    """
    if len(prompt) < 1:
        raise ValueError("greedy needs a non-empty prompt (at least one token id)")
    if n < 1:
        raise ValueError(f"n = {n}; greedy needs at least one token to generate")
    logits = engine.prefill(prompt)
    out = []
    for _ in range(n):
        tok = int(np.argmax(logits))
        out.append(tok)
        logits = engine.step(tok)
    return out


def speed(engine: Engine, prompt: list[int], gen_tokens: int, *, repeats: int = 2) -> dict[str, Any]:
    """Prompt processing (one batch of ``len(prompt)`` tokens) and generation (``gen_tokens`` greedy steps), tokens/s.

    Best of ``repeats`` (other processes only ever slow a run down), after one untimed warm-up; every
    repeat's generation rate is kept in ``tg_all`` (its spread is the run-to-run noise); also the greedily
    generated ids (the same in every repeat). Rates are in tokens per second of wall time; the analogue
    of the paper's throughput (Sec. 5.2, Table 8). Returns ``pp_tok_s``, ``tg_tok_s``, ``tg_all``,
    ``prompt_tokens``, ``gen_tokens``, ``repeats`` and ``generated``.

    Raises:
        ValueError: ``prompt`` is empty, ``gen_tokens`` < 1 or ``repeats`` < 1 (before the engine runs).
    """
    if len(prompt) < 1:
        raise ValueError("speed needs a non-empty prompt (at least one token id)")
    if gen_tokens < 1:
        raise ValueError(f"gen_tokens = {gen_tokens}; speed needs at least one generated token")
    if repeats < 1:
        raise ValueError(f"repeats = {repeats}; speed needs at least one timed repeat (quant.speed_repeats)")
    greedy(engine, prompt[:8], 2)  # warm-up: first-call allocations, page faults of mmapped weights
    pp_best = tg_best = 0.0
    tg_all: list[float] = []
    for _ in range(repeats):
        generated = []
        t0 = time.perf_counter()
        logits = engine.prefill(prompt)
        t1 = time.perf_counter()
        for _ in range(gen_tokens):
            generated.append(int(np.argmax(logits)))
            logits = engine.step(generated[-1])
        t2 = time.perf_counter()
        pp_best = max(pp_best, len(prompt) / (t1 - t0))
        tg_all.append(gen_tokens / (t2 - t1))
        tg_best = max(tg_best, tg_all[-1])
    return {"pp_tok_s": pp_best, "tg_tok_s": tg_best, "tg_all": tg_all, "prompt_tokens": len(prompt),
            "gen_tokens": gen_tokens, "repeats": repeats, "generated": generated}


def bandwidth_bound(*, bytes_per_token: float, bandwidth: float) -> float:
    """Upper bound on decode tokens/s: every weight is read once per token at ``bandwidth`` bytes/s.

    ``bytes_per_token`` is in bytes (e.g. :attr:`.gguf_io.GGUFInfo.bytes_per_token`).

    Raises:
        ValueError: either argument is not a positive finite number.
    """
    if not (0 < bytes_per_token < math.inf and 0 < bandwidth < math.inf):
        raise ValueError(f"bytes_per_token = {bytes_per_token} and bandwidth = {bandwidth} must both be "
                         "positive finite numbers (bytes, bytes/s)")
    return bandwidth / bytes_per_token
