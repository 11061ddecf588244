"""Chapter 08 benchmark: generation speed of the 1.6B architecture, 4-bit against 16-bit, in the same run.

* ``quant_gguf_q4_0_vs_f16`` — llama.cpp, Q4_0 against F16 (the paper: "almost 2x"; goal ≥ 1.8);
* ``quant_openvino_int4_vs_fp16`` — OpenVINO, NNCF INT4 against the uncompressed IR (fp16 weights,
  run at f32 precision; an fp32 IR of the 1.6B model does not fit beside the tracer in 24 GiB).

Both use the random-weight paper-size model of :mod:`stablelm2.quantization.arch` (built once and
cached under ``build/cache``; the first run takes several minutes), ``quant.threads`` threads, the
``cpu`` preset's prompt and generation lengths, best of ``repeats``. Each row states both formats'
memory-bandwidth bounds, measured in the same run.
"""

from __future__ import annotations

from typing import Any

from . import result


def _rows(repeats: int) -> tuple[dict[str, dict[str, Any]], float, Any]:
    from .. import config, hardware
    from ..quantization import arch

    cfg = config.load("cpu", overrides={"quant.speed_repeats": repeats,
                                        "quant.arch_formats": "F16,Q4_0,OV_FP16,OV_INT4"})
    paths = arch.formats(cfg, progress=False)
    bandwidth = hardware.memory_bandwidth(cfg.quant.threads)
    rows = arch.speed(cfg, paths, bandwidth=bandwidth, progress=False)
    return {r["format"]: r for r in rows}, bandwidth, cfg


def _row(name: str, ours: dict[str, Any], peer: dict[str, Any], peer_name: str, bandwidth: float, cfg: Any):
    return result(
        name, ours=ours["tg_tok_s"], peer=peer["tg_tok_s"], peer_name=peer_name, unit="generated tok/s",
        higher_is_better=True, goal='ratio ≥ 1.8 (the paper: "almost 2x")', goal_ratio=1.8,
        note=(f"1.6B architecture, random weights, {cfg.quant.threads} threads, {cfg.quant.prompt_tokens}-token "
              f"prompt, {cfg.quant.gen_tokens} generated; bandwidth {bandwidth / 1e9:.1f} GB/s bounds "
              f"{ours['format']} at {ours['bound_tok_s']:.2f} tok/s (reached {ours['frac_of_bound']:.0%}) and "
              f"{peer['format']} at {peer['bound_tok_s']:.2f} tok/s (reached {peer['frac_of_bound']:.0%})"),
        bound_ours=ours["bound_tok_s"], bound_peer=peer["bound_tok_s"], bandwidth_bytes_s=bandwidth,
        bytes_per_token_ours=ours["bytes_per_token"], bytes_per_token_peer=peer["bytes_per_token"],
    )


def quantization_speed(repeats: int = 3) -> list[dict[str, Any]]:
    """Two rows: generated tokens/s of Q4_0 over F16 (llama.cpp) and of INT4 over the fp16 IR (OpenVINO).

    Sec. 5.2 / Table 8 ("almost 2x" at lower precision; goal ratio ≥ 1.8). Each row also holds both formats'
    memory-bandwidth bounds (tok/s) and bytes per generated token, and the bandwidth (bytes/s) measured here.
    """
    rows, bandwidth, cfg = _rows(repeats)
    return [
        _row("quant_gguf_q4_0_vs_f16", rows["Q4_0"], rows["F16"], "llama.cpp F16", bandwidth, cfg),
        _row("quant_openvino_int4_vs_fp16", rows["OV_INT4"], rows["OV_FP16"],
             "OpenVINO uncompressed IR (fp16 weights, f32 precision)", bandwidth, cfg),
    ]


BENCHMARKS = {"quantization_speed": quantization_speed}
