"""The LM head fused with the next-token cross-entropy, in vocabulary chunks (chapter 05's engine).

With a 100,352-token vocabulary and a narrow model, the output head is most of a small model's work:
at the ``cpu`` preset (d = 128, 512 tokens per micro-batch) the ``[tokens, vocabulary]`` logits are
205 MB in fp32, written by the head, read and rewritten by ``log_softmax``, and again by its
backward — memory traffic, not arithmetic, sets the step time. :func:`token_loss` never holds them:
it takes the tokens a block at a time (:func:`chunk_tokens`: a ``[block, vocabulary]`` slab of at
most :data:`CHUNK_ELEMENTS` logits), and for each block forms the logits, their log-sum-exp, and —
when gradients are wanted — ``softmax − one-hot`` and both gradients from it, in the forward pass.
The backward pass then only scales them by the incoming gradient (the same for every token when the
loss is a sum, as in training; any other weighting recomputes them). Three head matmuls per step,
the count of the plain logits path, and no pass over the full logits (the vocabulary-chunked
version this replaces recomputed every chunk's logits in backward: four).

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
CHUNK_ELEMENTS = 2**24
"""Logits held at once (fp32: 64 MB); the token block is this over the vocabulary, a multiple of 32 and at least
32 tokens (160 at V = 100,352). Measured on the 2-core AMD machine (head + loss of 512 tokens, d = 128,
V = 100,352, forward and backward, one thread, best of 5): 0.72 s against 1.15 s for the vocabulary-chunked version
this replaced at glibc's defaults, 0.66 s against 0.98 s with freed memory kept for reuse (the chapters' setting,
:data:`stablelm2.hardware.REUSE_FREED_MEMORY_ENV`); blocks of 64 and 256 tokens within 10 % of it. With the sum of
exponentials as the overflow check instead of a max over the slab: 0.59 s (best of 7; the same loss and gradients
to the bit)."""


def chunk_tokens(n_tokens: int, vocab: int) -> int:
    """Tokens per block for a ``vocab``-row head: about :data:`CHUNK_ELEMENTS` logits, a multiple of 32, ≥ 32.

    Raises ValueError for a vocabulary below 1 row.
    """
    if vocab < 1:
        raise ValueError(f"vocab = {vocab}: a head needs at least one row")
    rows = max(32, (CHUNK_ELEMENTS // vocab) // 32 * 32)
    return max(1, min(rows, n_tokens))


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    kind = h.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype


FAST_SUM_MAX = 2.0**100
"""Largest sum of exponentials a token may have on the fast path (logits up to ~69): the gradients' products of
the exponentials with the weights stay far inside fp32's and bf16's range (a logit of 88 with weights above 1 made
``grad_h`` overflow when only the sum's finiteness was checked)."""


def _fast_sum_range(vocab: int, dtype: torch.dtype) -> tuple[float, float]:
    """The sums of exponentials a token may have on the fast path: from ``vocab ×`` fp32's smallest normal
    float (so its largest term is normal) to :data:`FAST_SUM_MAX`, or 2⁻¹⁶ of ``dtype``'s largest value
    where that is smaller (fp16: the exponentials are cast to it)."""
    return vocab * torch.finfo(torch.float32).tiny, min(FAST_SUM_MAX, torch.finfo(dtype).max * 2.0**-16)


def _exp_logits(hb: torch.Tensor, w: torch.Tensor, buf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``exp(w @ hbᵀ − shift)`` [V, block] (fp32), its column sums [block] and ``shift`` [block]: 0 when every
    token's sum of exponentials is inside :func:`_fast_sum_range`, else each token's largest logit (the textbook
    log-sum-exp, the logits formed again).

    One pass over the slab in the common case (no max, no subtraction): the sum the loss needs is the check, so
    overflow (a large logit, a sum past the range, NaN) and underflow (every logit far below 0) all send the
    block to the textbook path. ``[V, block]`` rather than ``[block, V]`` because BLAS writes it faster
    (measured: 57 against 66 ms for 160 tokens, d = 128, one thread). ``buf``: flat fp32 storage of at least
    ``V × block`` elements the slab is written into, one allocation per call of :func:`_blocks` rather than a
    fresh 64 MB slab per block.
    """
    slab = buf[:w.shape[0] * hb.shape[0]].view(w.shape[0], hb.shape[0])

    def logits() -> torch.Tensor:
        if w.dtype == torch.float32:
            return torch.mm(w, hb.t(), out=slab)
        return slab.copy_(w @ hb.t())

    total = logits().exp_().sum(dim=0)
    low, high = _fast_sum_range(w.shape[0], w.dtype)
    if bool(((total >= low) & (total <= high)).all()):  # NaN and ±inf fail both comparisons
        return slab, total, torch.zeros_like(total)
    top = logits().amax(dim=0)
    return slab.sub_(top).exp_(), slab.sum(dim=0), top


def _blocks(h: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor, g: torch.Tensor | None,
            dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Log-sum-exp of every row of ``h @ weightᵀ`` [N] and, with per-token weights ``g`` [N] (0 where ignored),
    the gradients of ``Σ g·loss`` for ``h`` [N, d] and ``weight`` [V, d] (fp32), one token block at a time."""
    n, d = h.shape
    hc, w = h.to(dtype), weight.to(dtype)
    lse = torch.empty(n, dtype=torch.float32, device=h.device)
    grad_h = grad_w = None
    if g is not None:
        grad_h = torch.empty((n, d), dtype=torch.float32, device=h.device)
        grad_w = torch.empty(weight.shape, dtype=torch.float32, device=h.device)  # the first block writes it
    step = chunk_tokens(n, weight.shape[0])
    buf = torch.empty(weight.shape[0] * step, dtype=torch.float32, device=h.device)
    for t0 in range(0, n, step):
        hb = hc[t0:t0 + step]
        e, total, shift = _exp_logits(hb, w, buf)  # [V, block]: exp(logit − shift), shift 0 unless that over/underflows
        lse[t0:t0 + step] = shift + total.log()
        if g is None:
            continue
        assert grad_h is not None and grad_w is not None
        scale = (g[t0:t0 + step] / total)[:, None]  # g·softmax = e·scale, the scale applied to the small operands
        ec = e.to(dtype)
        grad_h[t0:t0 + step] = (ec.t() @ w).float().mul_(scale)
        if dtype == torch.float32:
            if t0:
                grad_w.addmm_(ec, hb * scale)
            else:
                torch.mm(ec, hb * scale, out=grad_w)
        else:
            part = (ec @ (hb.float() * scale).to(dtype)).float()
            if t0:
                grad_w.add_(part)
            else:
                grad_w.copy_(part)
    if g is not None:
        assert grad_h is not None and grad_w is not None
        grad_h.sub_(g[:, None] * weight[idx].float())  # the one-hot part of softmax − one-hot
        grad_w.index_add_(0, idx, -(g[:, None] * h.float()))
    return lse, grad_h, grad_w


class _LinearCrossEntropy(torch.autograd.Function):
    """Per-token cross-entropy of ``h @ weightᵀ`` against ``targets``, its gradients formed in the forward pass."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype):
        with torch.autocast(h.device.type, enabled=False):
            valid = targets != IGNORE
            idx = targets.clamp(min=0)
            unit = valid.float()
            lse, grad_h, grad_w = _blocks(h, weight, idx, unit, dtype)
            target_logit = (h.to(dtype) * weight[idx].to(dtype)).sum(-1).float()
            per_token = torch.where(valid, lse - target_logit, 0.0)
        ctx.save_for_backward(h, weight, idx, valid)
        ctx.grads = (grad_h, grad_w)  # intermediates, not inputs or outputs: kept on ctx, scaled in place once
        ctx.dtype = dtype
        return per_token

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight, idx, valid = ctx.saved_tensors
        formed, ctx.grads = ctx.grads, None  # a second backward (retain_graph) forms them again
        g = torch.where(valid, grad.float(), 0.0)
        first = g[valid][:1]
        if not first.numel():
            return torch.zeros_like(h), torch.zeros_like(weight), None, None
        if formed is not None and bool((g[valid] == first).all()):  # a summed loss: the forward's, scaled in place
            grad_h, grad_w = (t.mul_(first[0]) for t in formed)
        else:  # per-token weights (or a second backward): form the gradients again with them
            with torch.autocast(h.device.type, enabled=False):
                _, grad_h, grad_w = _blocks(h, weight, idx, g, ctx.dtype)
        assert grad_h is not None and grad_w is not None
        return grad_h.to(h.dtype), grad_w.to(weight.dtype), None, None


def _loss_only(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    with torch.autocast(h.device.type, enabled=False):
        valid = targets != IGNORE
        idx = targets.clamp(min=0)
        lse, _, _ = _blocks(h, weight, idx, None, dtype)
        target_logit = (h.to(dtype) * weight[idx].to(dtype)).sum(-1).float()
        return torch.where(valid, lse - target_logit, 0.0)


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
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(h, weight, targets, _compute_dtype(h))
    return _loss_only(h, weight, targets, _compute_dtype(h))  # evaluation: no gradients formed


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
