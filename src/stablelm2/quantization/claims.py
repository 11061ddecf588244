"""Chapter 08's claims: what the measurements say about the paper's quantization and inference facts.

Each function records its claims in the run's ledger (ids ``quant.*``) and returns them:

* :func:`quality_claims` — Q8_0 keeps the fp32 perplexity; quantization error grows as bits shrink;
* :func:`tokenizer_claim` — the GGUF carries Arcade100k and encodes exactly as chapter 02 does;
* :func:`framework_claim` — llama.cpp, OpenVINO and MLX all build and run the model here;
* :func:`size_claims` — bytes on disk of the paper-size formats against the released files;
* :func:`speed_claims` — Q4_0 vs F16 (llama.cpp) and INT4 vs FP16 (OpenVINO) generation speed against
  the paper's "almost 2x", with the memory-bandwidth bound stated.
"""

from __future__ import annotations

from typing import Any

from .. import facts
from ..ledger import Claim, Ledger

Q8_PPL_TOL = 0.01
"""Q8_0 perplexity must be within 1 % of fp32's."""
SIZE_TOL = 0.02
"""Paper-size files must be within 2 % of the released files' sizes."""
SPEEDUP_TOL = 0.3
"""'almost 2x' read as 2 ± 30 %."""


def _by(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["format"]: r for r in rows}


def quality_claims(ledger: Ledger, rows: list[dict[str, Any]], model: str) -> list[Claim]:
    """Q8_0 within 1 % of fp32 perplexity; KL to fp32 ordered by bits (8 < 5 < 4)."""
    q = _by(rows)
    out = []
    tag = model.replace("/", "_")
    if "Q8_0" in q:
        d = q["Q8_0"]["ppl_vs_fp32_pct"] / 100
        out.append(ledger.finding(
            f"quant.q8_0_ppl.{tag}", f"GGUF Q8_0 keeps the fp32 perplexity ({model}, within {Q8_PPL_TOL:.0%})",
            holds=abs(d) <= Q8_PPL_TOL, ours=round(q["Q8_0"]["ppl"], 4), paper=None,
            evidence=f"ppl fp32 {q['FP32']['ppl']:.4f} vs Q8_0 {q['Q8_0']['ppl']:.4f} ({d:+.3%}) on "
                     f"{q['FP32']['tokens']:,} held-out tokens"))
    pairs = [(a, b) for a, b in (("Q8_0", "Q5_K_M"), ("Q5_K_M", "Q4_0"), ("Q5_K_M", "Q4_1"), ("Q8_0", "Q4_0"),
                                 ("OV_INT8", "OV_INT4"), ("OV_FP16", "OV_INT8")) if a in q and b in q]
    if pairs:
        bad = [f"{a} {q[a]['kl']:.2e} ≥ {b} {q[b]['kl']:.2e}" for a, b in pairs if not q[a]["kl"] < q[b]["kl"]]
        order = ", ".join(f"{f} {q[f]['kl']:.2e}" for f in sorted(q, key=lambda f: q[f]["kl"]) if f != "FP32")
        out.append(ledger.finding(
            f"quant.kl_order.{tag}", f"fewer bits, larger divergence from fp32 ({model}: KL per token)",
            holds=not bad, evidence=("ordered as expected: " if not bad else "out of order: " + "; ".join(bad) + ". ")
            + order))
    return out


def tokenizer_claim(ledger: Ledger, parity: dict[str, Any]) -> Claim:
    """The GGUF's own tokenizer (llama.cpp) encodes and decodes exactly as ``tokenizer.arcade100k()``."""
    p = parity
    return ledger.finding(
        "quant.gguf_tokenizer", "the GGUF carries Arcade100k: llama.cpp encodes exactly as tokenizer.arcade100k()",
        holds=bool(p["all_identical"]) and p["pre_tokenizer"] == "stablelm2",
        ours=f"{p['documents_encoded_identically']}/{p['documents']} documents identical",
        evidence=(f"the converter identified the pre-tokenizer as {p['pre_tokenizer']!r} (llama.cpp's hash of the "
                  f"released stablelm-2 tokenizer); {p['documents_encoded_identically']}/{p['documents']} sample "
                  f"documents ({p['tokens']:,} tokens) encoded and {p['documents_decoded_identically']} decoded "
                  f"identically; special tokens identical: {p['special_tokens_identical']}; GGUF vocabulary "
                  f"{p['gguf_vocab']:,} rows (the padded embedding)"))


def framework_claim(ledger: Ledger, generated: list[dict[str, Any]], backends: dict[str, str]) -> Claim:
    """The paper's three frameworks (llama.cpp, MLX, OpenVINO) each build and run the model here."""
    ran = {backends[g["format"]] for g in generated if g["tokens"] > 0}
    want = {"gguf": "llama.cpp", "openvino": "Intel OpenVINO", "mlx": "Apple MLX"}
    missing = [v for k, v in want.items() if k not in ran]
    return ledger.finding(
        "quant.frameworks", "the paper's edge frameworks convert and run the model here (MLX: its Linux CPU build)",
        holds=not missing, fact="quant.frameworks", ours=sorted(want[b] for b in ran if b in want),
        evidence=(f"generated with {', '.join(sorted(want[b] for b in ran if b in want))}"
                  + (f"; not run: {', '.join(missing)}" if missing else "")))


def size_claims(ledger: Ledger, sizes: dict[str, int]) -> list[Claim]:
    """Bytes on disk of the paper-size formats (:func:`arch.sizes`) vs the released files (shapes decide sizes)."""
    checkpoint_bytes, ov_bin_bytes = sizes["FP16_safetensors"], sizes.get("OV_INT4_bin")
    out = [ledger.measure(
        "quant.size_fp16", "fp16 safetensors of the 1.6B architecture vs the released 3.29 GB",
        fact="quant.bf16_safetensors_gb", ours=round(checkpoint_bytes / 1e9, 3), rel_tol=SIZE_TOL,
        note=f"{checkpoint_bytes:,} bytes (random weights of the paper's shape)")]
    if "Q4_0" in sizes:
        out.append(ledger.measure(
            "quant.size_q4_0", "GGUF Q4_0 of the 1.6B architecture vs the released 983 MB file",
            fact="quant.q4_0_gguf_mb", ours=round(sizes["Q4_0"] / 1e6, 1), rel_tol=SIZE_TOL,
            note=f"{sizes['Q4_0']:,} bytes; llama.cpp keeps the output layer at Q6_K in Q4_0 files"))
    if ov_bin_bytes is not None:
        out.append(ledger.measure(
            "quant.size_ov_int4", "OpenVINO INT4 model.bin of the 1.6B architecture vs the released 1.05 GB",
            fact="quant.openvino_int4_bin_gb", ours=round(ov_bin_bytes / 1e9, 3), rel_tol=SIZE_TOL,
            note=f"{ov_bin_bytes:,} bytes (NNCF INT4_ASYM, groups of 128, embeddings/output INT8)"))
    for fmt, fid in (("Q4_1", "quant.q4_1_gguf_size"), ("Q5_K_M", "quant.q5_k_m_gguf_size")):
        if fmt in sizes:
            out.append(ledger.report_only(
                f"quant.size_{fmt.lower()}", f"GGUF {fmt} size of the 1.6B architecture", fact=fid,
                why=f"the released file's size is not in the sources; ours: {sizes[fmt] / 1e6:,.1f} MB"))
    return out


def speed_claims(ledger: Ledger, rows: list[dict[str, Any]], bandwidth: float) -> list[Claim]:
    """Generation speed-ups of 4-bit formats on the 1.6B architecture vs "almost 2x"."""
    s = _by(rows)
    out = []
    for claim_id, low, high, what in (
        ("quant.speedup_gguf", "F16", "Q4_0", "llama.cpp generation, Q4_0 / F16 (1.6B architecture)"),
        ("quant.speedup_ov", "OV_FP16", "OV_INT4", "OpenVINO generation, INT4 / FP16 (1.6B architecture)"),
    ):
        if low in s and high in s:
            ratio = s[high]["tg_tok_s"] / s[low]["tg_tok_s"]
            out.append(ledger.measure(
                claim_id, what + ' vs the paper\'s "almost 2x"', fact="quant.speedup", ours=round(ratio, 3),
                rel_tol=SPEEDUP_TOL,
                note=(f"{s[high]['tg_tok_s']:.2f} vs {s[low]['tg_tok_s']:.2f} tok/s, {s[high]['threads']} threads; "
                      f"memory-bandwidth bounds {s[high]['bound_tok_s']:.2f} and {s[low]['bound_tok_s']:.2f} tok/s "
                      f"at {bandwidth / 1e9:.1f} GB/s (fractions {s[high]['frac_of_bound']:.0%} and "
                      f"{s[low]['frac_of_bound']:.0%}); this CPU, not the paper's devices")))
    out.append(ledger.report_only(
        "quant.tab8", "Table 8: tokens/s and power on the paper's edge devices", fact="quant.tab8_cells",
        why="the table's cells are not in the sources (FACTS.md §6d); the chapter measures its analogue on this CPU"))
    return out


def released_sizes_gb() -> dict[str, float]:
    """Sizes of the released files the sources give, in GB, keyed by our format names."""
    return {"Q4_0": facts.value("quant.q4_0_gguf_mb") / 1e3, "OV_INT4": facts.value("quant.openvino_int4_bin_gb")}
