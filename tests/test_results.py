"""The chapters' metrics.json numbers built by the library (chapters 06 and 08), from typed results."""

from __future__ import annotations

from stablelm2.alignment import results as align
from stablelm2.quantization import results as quant


def _quality_row(fmt: str, ppl: float, kl: float) -> quant.QualityRow:
    return {"format": fmt, "backend": "gguf", "bits": 8.5, "ppl": ppl, "ppl_vs_fp32_pct": 0.0, "kl": kl,
            "top1_agree": 0.987654321, "tokens": 256, "bytes_on_disk": 1000}


def test_quantization_metrics_hold_only_the_parts_given_rounded_to_six_places():
    assert quant.metrics() == {}
    m = quant.metrics(quality={"random": [_quality_row("FP32", 12.3456789, 0.0),
                                          _quality_row("Q8_0", 12.3500004, 1.23456789e-4)]},
                      generated=[{"format": "Q8_0", "tokens": 2, "continuation": "ab", "ids": [7, 9]}])
    assert set(m) == {"quality", "generated"}
    assert m["quality"]["random"]["Q8_0"] == {"ppl": 12.35, "kl": 0.000123, "top1_agree": 0.987654}
    assert m["generated"] == {"Q8_0": [7, 9]}
    assert set(quant.metrics(arch_sizes={"Q4_0": 5})) == {"arch_sizes"}


def _stage(**extra: object) -> dict[str, object]:
    return {"stage": "x", "model_dir": "m", "batch": {}, "batch_line": "", "log": [], "steps": 3,
            "timings": {"train_s": 1.0, "total_s": 2.0}, **extra}


def test_alignment_metrics_count_malformed_rows_as_neither_kept_nor_over_the_turn_limit():
    ident = {"rate": 0.25, "per_fact": {}, "answers": []}
    res = {"ran": True,
           "sft": _stage(data_report={"rows": [], "examples": {},
                                      "totals": {"read": 64, "kept": 56, "too_many_turns": 5}},
                         first_loss=2.123456, final_loss=1.987654),
           "dpo": _stage(data_report={"rows": [], "examples": {},
                                      "totals": {"read": 64, "kept": 47, "tied_ranking": 3,
                                                 "duplicated_content": 4, "low_chosen_score": 5}},
                         train_pairs_after={"rewards/accuracies": 0.66666, "rewards/margins": 0.0123456},
                         held_out_after={"rewards/accuracies": 0.5}),
           "self_knowledge": _stage(prompt_stats={"kept": 8}, fact_rate_positives=0.5, before=ident,
                                    after={**ident, "rate": 0.75}, after_negative=ident)}
    m = align.metrics(res)  # a partial RunAll: the keys metrics() reads
    assert set(m) == align.AlignmentMetrics.__required_keys__
    assert m["sft_malformed"] == 3 and m["sft_loss_first_quarter"] == 2.1235
    assert (m["dpo_tied"], m["dpo_duplicated"], m["dpo_low_chosen"]) == (3, 4, 5)
    assert m["dpo_train_accuracy"] == 0.6667 and m["dpo_train_margin"] == 0.01235
    assert (m["sk_before"], m["sk_after"], m["sk_steps"]) == (0.25, 0.75, 3)
