"""Chapter 08 · The shapes of the quantization study's results and of the chapter's ``metrics.json`` (Sec. 5).

``TypedDict`` s (plain dicts at run time, checked by the type checker): :class:`QualityRow`
(:func:`.study.quality`), :class:`TokenizerParity` (:func:`.study.tokenizer_parity`),
:class:`Readiness` (:func:`.study.ready`), :class:`SpeedRow` and :class:`Generation` (the speed
runs, :mod:`.speed`). :func:`metrics` builds each part of the chapter's numbers from them; the
notebook logs what it returns, and the tests read them through :class:`QuantMetrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict


class QualityRow(TypedDict):
    """One format of one model against the fp32 reference on the same held-out windows."""

    format: str
    backend: str
    bits: float
    ppl: float
    """Perplexity (exp of the mean negative log-likelihood per token)."""
    ppl_vs_fp32_pct: float
    """100 × (ppl / ppl of the reference − 1), in percent."""
    kl: float
    """Mean KL(fp32 ‖ format) per token, in nats."""
    top1_agree: float
    """Share of tokens whose most likely next token matches the reference's, 0–1."""
    tokens: float
    """Tokens scored (a count)."""
    bytes_on_disk: int


class TokenizerParity(TypedDict):
    """llama.cpp's tokenizer reading the GGUF against Arcade100k on the sample documents (Sec. 5.1)."""

    pre_tokenizer: str | None
    gguf_vocab: int | None
    documents: int
    tokens: int
    documents_encoded_identically: int
    documents_decoded_identically: int
    special_tokens_identical: bool
    special_text_as_plain_text_identical: bool
    all_identical: bool


class Readiness(TypedDict):
    """Whether the chapter runs here, and the markdown the notebook shows."""

    runs: bool
    message: str


class SpeedRow(TypedDict):
    """One format's prefill and generation speed against the memory-bandwidth bound (tokens/s)."""

    format: str
    backend: str
    bytes_on_disk: int
    bytes_per_token: float
    pp_tok_s: float
    tg_tok_s: float
    tg_all: list[float]
    bound_tok_s: float
    frac_of_bound: float
    threads: int | str
    prompt_tokens: int
    gen_tokens: int
    generated: list[int]


class Generation(TypedDict):
    """What one format generated during its speed run (:func:`.speed.generations`)."""

    format: str
    tokens: int
    continuation: str
    ids: list[int]


class QuantMetrics(TypedDict, total=False):
    """Chapter 08's deterministic numbers in ``metrics.json``; a part is there once its step ran."""

    tensor_types: dict[str, dict[str, dict[str, int]]]
    """model → GGUF format → {tensor type: weight matrices of that type}."""
    tokenizer_parity: TokenizerParity
    generated: dict[str, list[int]]
    """format → the token ids it generated during the speed run."""
    quality: dict[str, dict[str, dict[str, float]]]
    """model → format → {``ppl``, ``kl``, ``top1_agree``}."""
    arch_sizes: dict[str, int]
    """format of the paper-size architecture → bytes on disk."""


def metrics(*, tensor_types: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
            tokenizer_parity: TokenizerParity | None = None, generated: Sequence[Generation] | None = None,
            quality: Mapping[str, Sequence[QualityRow]] | None = None,
            arch_sizes: Mapping[str, int] | None = None) -> QuantMetrics:
    """The parts of chapter 08's numbers given (a part left ``None`` is left out)."""
    out: QuantMetrics = {}
    if tensor_types is not None:
        out["tensor_types"] = {m: {f: dict(t) for f, t in ts.items()} for m, ts in tensor_types.items()}
    if tokenizer_parity is not None:
        out["tokenizer_parity"] = tokenizer_parity
    if generated is not None:
        out["generated"] = {g["format"]: g["ids"] for g in generated}
    if quality is not None:
        out["quality"] = {m: {r["format"]: _rounded(r) for r in rows} for m, rows in quality.items()}
    if arch_sizes is not None:
        out["arch_sizes"] = dict(arch_sizes)
    return out


def _rounded(row: QualityRow) -> dict[str, float]:
    """The quality numbers the chapter records per format, rounded to 6 places."""
    return {"ppl": round(row["ppl"], 6), "kl": round(row["kl"], 6), "top1_agree": round(row["top1_agree"], 6)}
