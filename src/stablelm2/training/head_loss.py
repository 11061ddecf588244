"""The LM head fused with the next-token cross-entropy, in vocabulary chunks (chapter 05's engine).

With a 100,352-token vocabulary and a narrow model, the output head is most of a small model's work:
at the ``cpu`` preset (d = 128, 512 tokens per micro-batch) the ``[tokens, vocabulary]`` logits are
205 MB in fp32, written by the head, read and rewritten by ``log_softmax``, and again by its
backward — memory traffic, not arithmetic, sets the step time. :func:`token_loss` never holds them:
it multiplies the hidden states by the head ``C`` vocabulary rows at a time (a chunk of at most
16 MB), keeps each token's log-sum-exp, and in backward recomputes each chunk's
logits to form ``softmax − one-hot`` and both gradients from it. That costs one more head matmul
(4 instead of 3) and saves every pass over the full logits.

The numbers are the same objective as :func:`stablelm2.training.engine.token_loss` (per-token loss
in fp32, summed in float64, transformers' ``-100`` convention), equal up to fp32 rounding (the
tests hold both to 1e-5 relative). Under ``torch.autocast`` the head's matmuls run in the autocast
dtype and the log-sum-exp and softmax in fp32 (the released training config's cross-entropy in
full precision, FACTS.md §3; the paper's training layout is Sec. 2.4).

>>> import torch
>>> from stablelm2.training import head_loss
>>> h, w = torch.randn(2, 8, 16), torch.randn(1000, 16)
>>> labels = torch.randint(0, 1000, (2, 8))
>>> s, n = head_loss.token_loss(h, w, labels)
>>> s.dtype, int(n)
(torch.float64, 14)
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100
CHUNK_ELEMENTS = 2**22
"""Logits held at once (fp32: 16 MB); the vocabulary chunk is this over the tokens, at least 256 rows. Measured
on the 2-core machine (head + loss of 512 tokens, d = 128, forward and backward, under load): 1 thread
2.7 s at 2²⁰ and 2²² against 3.65 s for full logits; 2 threads 15.2 s at 2²⁰, 6.4 s at 2²² against
4.0 s — every chunk is a few parallel regions, and two threads on a loaded machine wait for each
other at each one, so fewer, larger chunks."""


def chunk_rows(n_tokens: int, vocab: int) -> int:
    """Vocabulary rows per chunk for ``n_tokens`` tokens: about :data:`CHUNK_ELEMENTS` logits, a multiple of 64."""
    rows = max(256, (CHUNK_ELEMENTS // max(n_tokens, 1)) // 64 * 64)
    return min(rows, vocab)


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    kind = h.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype


class _LinearCrossEntropy(torch.autograd.Function):
    """Per-token cross-entropy of ``h @ weightᵀ`` against ``targets`` (0 where ignored), chunked over the vocabulary."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype):
        with torch.autocast(h.device.type, enabled=False):
            valid = targets != IGNORE
            idx = targets.clamp(min=0)
            hc = h.to(dtype)
            rows = chunk_rows(h.shape[0], weight.shape[0])
            parts = []
            for v0 in range(0, weight.shape[0], rows):
                logits = (hc @ weight[v0:v0 + rows].to(dtype).t()).float()
                parts.append(torch.logsumexp(logits, dim=-1))
            lse = torch.logsumexp(torch.stack(parts, dim=1), dim=1)
            target_logit = (hc * weight[idx].to(dtype)).sum(-1).float()
            per_token = torch.where(valid, lse - target_logit, 0.0)
        ctx.save_for_backward(h, weight, idx, valid, lse)
        ctx.dtype = dtype
        return per_token

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight, idx, valid, lse = ctx.saved_tensors
        dtype = ctx.dtype
        with torch.autocast(h.device.type, enabled=False):
            g = torch.where(valid, grad.float(), 0.0)[:, None]  # dloss/dlogit = g·(softmax − one-hot)
            hc = h.to(dtype)
            grad_h = torch.zeros(h.shape, dtype=torch.float32, device=h.device)
            grad_w = torch.empty(weight.shape, dtype=torch.float32, device=h.device)
            rows = chunk_rows(h.shape[0], weight.shape[0])
            for v0 in range(0, weight.shape[0], rows):
                w = weight[v0:v0 + rows].to(dtype)
                p = (hc @ w.t()).float().sub_(lse[:, None]).exp_().mul_(g).to(dtype)
                if dtype == torch.float32:
                    grad_h.addmm_(p, w)
                    torch.mm(p.t(), hc, out=grad_w[v0:v0 + rows])
                else:
                    grad_h.add_((p @ w).float())
                    grad_w[v0:v0 + rows] = (p.t() @ hc).float()
            grad_h.sub_(g * weight[idx].float())
            grad_w.index_add_(0, idx, -(g * h.float()))
        return grad_h.to(h.dtype), grad_w.to(weight.dtype), None, None


def per_token_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row of ``h @ weight.T`` (``h`` [N, d], ``weight`` [V, d]) against ``targets`` [N].

    Returns [N] fp32, 0 where ``targets`` is ``-100``. Raises ValueError on mismatched shapes or a
    target outside the vocabulary.
    """
    if h.ndim != 2 or weight.ndim != 2 or h.shape[1] != weight.shape[1] or targets.shape != h.shape[:1]:
        raise ValueError(f"per_token_loss needs h [N, d], weight [V, d], targets [N]; got {tuple(h.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(targets.shape)}")
    if targets.numel() and int(targets.max()) >= weight.shape[0]:
        raise ValueError(f"a target id {int(targets.max())} is outside the vocabulary of {weight.shape[0]} rows")
    return _LinearCrossEntropy.apply(h, weight, targets, _compute_dtype(h))


def token_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy of the head ``weight`` [V, d] on ``hidden`` [B, S, d], and the target count.

    ``labels`` [B, S] follows transformers' convention (same positions as ``input_ids``, shifted here,
    ``-100`` where no loss is taken). The per-token loss is fp32 and the sum float64, as
    :func:`stablelm2.training.engine.token_loss` computes it from full logits.
    """
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = labels[:, 1:]
    targets = targets.reshape(-1)
    per = per_token_loss(hidden.reshape(-1, hidden.shape[-1]), weight, targets)
    return per.double().sum(), (targets != IGNORE).sum()


FUSED = True
"""Whether :class:`LossModule` fuses the head with the loss (False: the model's logits, then the engine's
``token_loss`` — the reference the tests hold the fused path to)."""


class LossModule(torch.nn.Module):
    """What the engine trains: a causal LM whose forward returns ``(summed loss float64, target count)``.

    Holds the LM's body as ``model`` and its head as ``lm_head`` (the names of transformers'
    ``*ForCausalLM``, so a state dict taken through it has the LM's own keys); with ``fused`` (default
    :data:`FUSED`) the head is applied by :func:`token_loss`, otherwise through the LM's own forward and
    full logits. An LM without that layout (or with a head bias) always takes the logits path.
    """

    def __init__(self, lm: torch.nn.Module, fused: bool | None = None):
        super().__init__()
        head = getattr(lm, "lm_head", None)
        self.fused = (FUSED if fused is None else fused) and hasattr(lm, "model") and \
            isinstance(head, torch.nn.Linear) and head.bias is None
        if self.fused:
            self.model: Any = lm.model  # the transformers body (returns ``last_hidden_state``)
            self.lm_head: torch.nn.Linear = head  # type: ignore[assignment]  # isinstance-checked just above
        else:
            self.lm = lm

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed next-token loss (nats, float64 scalar) and target count of ``input_ids`` [B, S].

        ``position_ids`` and ``labels`` are [B, S]; positions restart at each packed document.
        """
        if self.fused:
            hidden = self.model(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
            return token_loss(hidden, self.lm_head.weight, labels)
        from .engine import token_loss as logits_loss

        return logits_loss(self.lm(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits, labels)
