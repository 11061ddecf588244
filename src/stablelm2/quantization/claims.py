"""Chapter 08's claims: what the measurements say about the paper's quantization and inference facts.

Each function records its claims in the run's ledger (ids ``quant.*``) and returns them:

* :func:`quality_claims` — Q8_0 perplexity beside fp32; KL to fp32 by pairs of formats, named by the tensor types each file really holds;
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

NOMINAL_TYPES = {"F16": {"F16"}, "Q8_0": {"Q8_0"}, "Q4_0": {"Q4_0"}, "Q4_1": {"Q4_1"}, "Q5_0": {"Q5_0"},
                 "Q5_1": {"Q5_1"}, "Q4_K_M": {"Q4_K", "Q5_K", "Q6_K"}, "Q5_K_M": {"Q5_K", "Q6_K"}}
"""The ggml tensor types a GGUF format's weight matrices are meant to hold (k-quant mixes keep a few at Q6_K)."""


def read_tensor_types(path: Any) -> dict[str, int]:
    """How many weight matrices (tensors of two or more dimensions) of each ggml type the GGUF at ``path``
    holds, read back from the file's tensor table (:func:`.gguf_io.inspect`; the tests check it against
    the ``gguf`` package's ``GGUFReader`` on every format llama.cpp builds). Returns ``{type name: count}``,
    most first.

    ``GGUFReader`` gives the same counts but parses every one of the ~330k vocabulary strings first: 9 s a
    file here, 115 s for chapter 08's ten GGUFs; the scan skips them (under 0.1 s a file).

    Raises ``FileNotFoundError`` for a missing file and :class:`.gguf_io.GGUFError` (a ``ValueError``) for a
    truncated, corrupt or foreign one.
    """
    from pathlib import Path

    from .gguf_io import inspect

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}; build the formats first (quantization.build)")
    return inspect(path).matrix_types


def actual_format(fmt: str, types: dict[str, int] | None) -> str:
    """The name a format's claim is recorded under: ``fmt`` when most of its matrices hold one of its own
    types (:data:`NOMINAL_TYPES`), else the type most of them really hold, e.g. ``'Q5_1 (built as Q5_K_M)'``."""
    if not types or fmt not in NOMINAL_TYPES:
        return fmt
    mine = sum(n for t, n in types.items() if t in NOMINAL_TYPES[fmt])
    if 2 * mine > sum(types.values()):
        return fmt
    return f"{next(iter(types))} (built as {fmt})"


def _types_text(types: dict[str, int]) -> str:
    return ", ".join(f"{t} ×{n}" for t, n in types.items())


def _by(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["format"]: r for r in rows}


def quality_claims(ledger: Ledger, rows: list[dict[str, Any]], model: str,
                   types: dict[str, dict[str, int]] | None = None) -> list[Claim]:
    """Fewer bits, larger KL divergence from fp32: one finding per neighbouring pair of formats.

    ``types``: each GGUF format's matrix types (:func:`read_tensor_types`); a format whose file fell back
    to other types is named by the type it really holds (:func:`actual_format`). Each pair is decided by
    ``Ledger.finding`` over seeds (one model today: *inconclusive at this scale*). The Q8_0 perplexity is
    reported with its numbers: the paper gives none to compare with (it expects lower precision to cost
    quality and asks users to assess it, Sec. 5.2). ``rows``: :func:`.study.quality`'s.
    """
    q = _by(rows)
    types = types or {}
    out = []
    tag = model.replace("/", "_")
    if "Q8_0" in q and "FP32" in q:
        d = q["Q8_0"]["ppl_vs_fp32_pct"]
        out.append(ledger.report_only(
            f"quant.q8_0_ppl.{tag}", f"GGUF {actual_format('Q8_0', types.get('Q8_0'))} perplexity vs fp32 ({model})",
            why=f"the paper gives no perplexity to compare with; ours: fp32 {q['FP32']['ppl']:.4f}, Q8_0 "
                f"{q['Q8_0']['ppl']:.4f} ({d:+.3f} %) on {q['FP32']['tokens']:,} held-out tokens"))
    pairs = [(a, b) for a, b in (("Q8_0", "Q5_K_M"), ("Q5_K_M", "Q4_0"), ("Q5_K_M", "Q4_1"), ("Q8_0", "Q4_0"),
                                 ("OV_INT8", "OV_INT4"), ("OV_FP16", "OV_INT8")) if a in q and b in q]
    for a, b in pairs:
        na, nb = actual_format(a, types.get(a)), actual_format(b, types.get(b))
        fell = [f"{f}'s file holds {_types_text(types[f])}" for f, n in ((a, na), (b, nb)) if n != f]
        out.append(ledger.finding(
            f"quant.kl_order.{tag}.{a}_{b}", f"{na} diverges less from fp32 than {nb} ({model}: KL per token)",
            a=[q[a]["kl"]], b=[q[b]["kl"]], expect="a < b", names=(na, nb), metric="KL per token to fp32",
            note="; ".join(fell)))
    return out


def tokenizer_claim(ledger: Ledger, parity: dict[str, Any]) -> Claim:
    """The GGUF's own tokenizer (llama.cpp) encodes and decodes exactly as ``tokenizer.arcade100k()``.

    ``parity``: :func:`.study.tokenizer_parity`'s result; the released GGUF files (Sec. 5.1) carry Arcade100k.
    """
    p = parity
    return ledger.measure(
        "quant.gguf_tokenizer", "the GGUF carries Arcade100k: llama.cpp encodes exactly as tokenizer.arcade100k()",
        paper=True, ours=bool(p["all_identical"]) and p["pre_tokenizer"] == "stablelm2",
        note=(f"the converter identified the pre-tokenizer as {p['pre_tokenizer']!r}; "
              f"{p['documents_encoded_identically']}/{p['documents']} sample documents ({p['tokens']:,} tokens) "
              f"encoded and {p['documents_decoded_identically']} decoded identically; special tokens identical: "
              f"{p['special_tokens_identical']}; GGUF vocabulary {p['gguf_vocab']:,} rows (the padded embedding)"))


def degenerate(generated: list[dict[str, Any]]) -> bool:
    """True when the generations cannot tell formats apart: every one repeats a single token id."""
    return all(len(set(g["ids"])) <= 1 for g in generated)


def framework_claim(ledger: Ledger, generated: list[dict[str, Any]], backends: dict[str, str]) -> Claim:
    """The paper's three frameworks (llama.cpp, MLX, OpenVINO; Sec. 5) each build and run the model here.

    The claim is that each backend runs; whether the formats generate the same text is not claimed when
    the generations are degenerate (one token repeated), since such text cannot tell two outcomes apart.
    """
    ran = {backends[g["format"]] for g in generated if g["tokens"] > 0}
    want = {"gguf": "llama.cpp", "openvino": "Intel OpenVINO", "mlx": "Apple MLX"}
    missing = [v for k, v in want.items() if k not in ran]
    distinct = len({tuple(g["ids"]) for g in generated})
    said = ("every generation repeats one token, so the texts cannot show whether the formats agree"
            if degenerate(generated) else
            f"the formats generate {distinct} distinct continuation(s) of {len(generated)}")
    return ledger.measure(
        "quant.frameworks", "the paper's edge frameworks convert and run the model here (MLX: its Linux CPU build)",
        paper=True, ours=not missing,
        note=(f"generated with {', '.join(sorted(want[b] for b in ran if b in want)) or 'none'}; "
              f"not run: {', '.join(missing) or 'none'}; {said}"))


def size_claims(ledger: Ledger, sizes: dict[str, int]) -> list[Claim]:
    """Bytes on disk of the paper-size formats (:func:`arch.sizes`) vs the released files (shapes decide).

    The released files are those of Sec. 5.1 (sizes from the Hub listings, ``facts.yaml``); ours are
    recorded in GB or MB (10⁹ or 10⁶ bytes) as the facts are.
    """
    checkpoint_bytes, ov_bin_bytes = sizes["FP16_safetensors"], sizes.get("OV_INT4_bin")
    out = [ledger.measure(
        "quant.size_fp16", "fp16 safetensors of the 1.6B architecture vs the released 3.29 GB",
        fact="quant.bf16_safetensors_gb", ours=checkpoint_bytes / 1e9,
        note=f"{checkpoint_bytes:,} bytes (random weights of the paper's shape)")]
    if "Q4_0" in sizes:
        out.append(ledger.measure(
            "quant.size_q4_0", "GGUF Q4_0 of the 1.6B architecture vs the released 983 MB file",
            fact="quant.q4_0_gguf_mb", ours=sizes["Q4_0"] / 1e6,
            note=f"{sizes['Q4_0']:,} bytes; llama.cpp keeps the output layer at Q6_K in Q4_0 files"))
    if ov_bin_bytes is not None:
        out.append(ledger.measure(
            "quant.size_ov_int4", "OpenVINO INT4 model.bin of the 1.6B architecture vs the released 1.05 GB",
            fact="quant.openvino_int4_bin_gb", ours=ov_bin_bytes / 1e9,
            note=f"{ov_bin_bytes:,} bytes (NNCF INT4_ASYM, groups of 128, embeddings/output INT8)"))
    for fmt, fid in (("Q4_1", "quant.q4_1_gguf_size"), ("Q5_K_M", "quant.q5_k_m_gguf_size")):
        if fmt in sizes:
            out.append(ledger.measure(
                f"quant.size_{fmt.lower()}", f"GGUF {fmt} of the 1.6B architecture vs the released "
                f"{facts.value(fid)} GB file", fact=fid, ours=sizes[fmt] / 1e9, note=f"{sizes[fmt]:,} bytes"))
    return out


def speed_claims(ledger: Ledger, rows: list[dict[str, Any]], bandwidth: float) -> list[Claim]:
    """Generation speed-ups of 4-bit formats on the 1.6B architecture vs "almost 2x" (Sec. 5.2, Table 8).

    ``rows``: :func:`.speed.speed_rows` of the paper-size formats; ``bandwidth`` in bytes/s. The ratio's
    interval spans every pairing of the two formats' repeats. Table 8 itself is reported only.
    """
    s = _by(rows)
    out = []
    for claim_id, low, high, what in (
        ("quant.speedup_gguf", "F16", "Q4_0", "llama.cpp generation, Q4_0 / F16 (1.6B architecture)"),
        ("quant.speedup_ov", "OV_FP16", "OV_INT4", "OpenVINO generation, INT4 / FP16 (1.6B architecture)"),
    ):
        if low in s and high in s:
            ratio = s[high]["tg_tok_s"] / s[low]["tg_tok_s"]
            hi_all, lo_all = s[high].get("tg_all") or [s[high]["tg_tok_s"]], s[low].get("tg_all") or [s[low]["tg_tok_s"]]
            spread = [min(hi_all) / max(lo_all), max(hi_all) / min(lo_all)]  # every pairing of the repeats
            out.append(ledger.measure(
                claim_id, what + ' vs the paper\'s "almost 2x"', fact="quant.speedup", ours=ratio,
                ours_interval=spread if len(hi_all) * len(lo_all) > 1 else None,
                setting=what.split(" generation")[0],
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
