import json

import pytest
import torch

from stablelm2 import config, ledger, record, runner
from stablelm2 import training as T
from stablelm2.config import ConfigError
from stablelm2.training import results


def test_paper_preset_trains_nothing_without_gpus_and_says_so():
    paper = config.load("paper")
    with pytest.raises(ConfigError, match="stabilityai/stablelm-2-1_6b"):
        T.pretrained(paper)
    if not torch.cuda.is_available():
        got = T.main_run(paper)
        assert not got["trained"] and "nothing was trained" in got["message"] and got["history"] is None


@pytest.mark.notebook
def test_notebook_runs_at_smoke_and_leaves_a_pretrained_model(build_dir, offline_kernels):
    rec = runner.execute(T.CHAPTER, "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", T.CHAPTER, root=build_dir)
    met = m["metrics"]
    assert set(met) == results.PretrainingMetrics.__optional_keys__  # the library's schema: every part ran
    assert met["steps_trained"] == 8 and met["tokens"] == 8 * 512 and met["world_size"] == 1
    assert met["final_loss"] < met["first_loss"]
    assert met["plan"]["steps"] == 500_000 and met["plan"]["cooldown_tokens"] == 671_088_640_000
    assert set(met["appB"]) == {"cosine", "rsqrt", "hybrid", "hybrid2"}
    assert [r["multiple"] for r in met["appD"]] == [1, 2, 3, 4]
    assert set(met["appA"]) == {"control", "code ×4", "no non-English", "non-English ×3"}
    claims = {c["id"]: c for c in m["claims"]}
    assert claims["pretraining.grad_accum"]["status"] == ledger.DERIVED, claims["pretraining.grad_accum"]
    assert not {"pretraining.global_batch", "pretraining.cooldown_tokens", "pretraining.total_tokens",
                "pretraining.gpu_hours", "pretraining.mfu_a100"} & set(claims)  # recorded once, by their owners
    assert {r["claim"] for r in m["references"]} >= {"overview.global_batch", "carbon.gpu_hours", "overview.mfu"}
    for cid in ("pretraining.appB_rsqrt_below_cosine", "pretraining.appD_fewer_iterations_more_tokens",
                "pretraining.appA_more_code_hurts_english", "pretraining.appA_language_saturates"):
        c = claims[cid]  # every arm ran train.ablation_seeds = 3 paired seeds, so each finding is tested
        assert c["evidence"] and c["kind"] == ledger.MEASUREMENT, c
        assert c["stats"]["n_seeds"] == 3 and c["stats"]["seeds"] == [1234, 1235, 1236], c
        assert c["status"] in (ledger.REDUCED, ledger.INCONCLUSIVE, ledger.CONFLICT)
        assert "unigram model's" in c["evidence"], c  # where the runs sit against the floor, computed
    assert all(len(v["final_val_bpb_by_seed"]) == 3 for v in met["appB"].values())
    assert all(len(r["iterations_by_seed"]) == 3 for r in met["appD"])
    assert set(met["ablation_plan"]) == {"App. B · schedules", "App. D · batch sizes (upper bound)",
                                         "App. A · data mixes"}
    assert set(met["main_bpb"]) == {"pretrained", "unigram"} and len(met["main_minus_unigram_bpb"]) == 3
    assert {f["name"] for f in m["figures"]} == {"fig_pretraining_curves", "fig4_schedule_ablation",
                                                  "fig6_batch_size_ablation", "tab10_mix_ablation"}
    launch_dir = build_dir / "smoke" / T.CHAPTER / "launch"
    assert {p.name for p in launch_dir.iterdir()} >= {"deepspeed_zero1.json", "accelerate_multinode.yaml",
                                                      "train_p4d.sbatch", "run_spec.json"}

    # chapters 06-08 get the notebook's model without training again
    cfg = config.load("smoke")
    path = T.pretrained(cfg)
    stamp = path / "pretrained.json"
    before = stamp.stat().st_mtime_ns
    assert T.pretrained(cfg) == path and stamp.stat().st_mtime_ns == before
    assert json.loads(stamp.read_text())["summary"]["steps"] == 8
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    net = AutoModelForCausalLM.from_pretrained(path)
    ids = tok("Stable LM 2", return_tensors="pt").input_ids
    out = net.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out.shape[1] == ids.shape[1] + 3 and net.config.hidden_size == cfg.model.d_model
