"""DPO through TRL: on a separable preference set the implicit reward learns to prefer the chosen reply."""

from __future__ import annotations

from stablelm2 import config
from stablelm2.alignment import common, dpo, recipes, sources

from .alignment_helpers import tiny_model_dir


def _pairs(n: int) -> list[dict]:
    return [{"source": "toy", "id": f"toy:{i}", "prompt": [{"role": "user", "content": f"Is {i} a number?"}],
             "chosen": [{"role": "assistant", "content": "Yes, it is."}],
             "rejected": [{"role": "assistant", "content": "No idea, sorry."}],
             "score_chosen": 9.0, "score_rejected": 2.0} for i in range(n)]


def test_split_is_seeded_and_bounded():
    rows = [{"id": i} for i in range(50)]
    a, b = dpo.split(rows, seed=3)
    assert (len(a), len(b)) == (45, 5) and dpo.split(rows, seed=3) == (a, b)
    assert len(dpo.split(rows, seed=3, max_held=2)[1]) == 2


def test_dpo_raises_reward_accuracy_above_chance_on_a_separable_set(tmp_path):
    base = tiny_model_dir(tmp_path / "base")
    cfg = config.load("smoke", **{"align.dpo_lr": 5e-3, "align.max_steps": 3})
    recipe = recipes.build(cfg, "dpo")
    data = sources.Loaded(_pairs(16), sources.FilterReport(rules=tuple(sources.DPO_RULES)))
    res = dpo.train(recipe, base, tmp_path / "dpo", data=data)
    accs = [v for _, v in common.curve(res["log"], "rewards/accuracies")]
    assert accs[0] == 0.0  # step 0: policy == reference, every implicit reward is exactly 0
    assert res["train_pairs_after"]["rewards/accuracies"] > 0.5
    assert res["held_out_after"]["rewards/accuracies"] > 0.5
    assert res["train_pairs_after"]["rewards/margins"] > 0
    assert res["steps"] == 3 and res["batch_line"].endswith("4 preference pairs = 2 per device × 2 accumulation "
                                                             "steps × 1 process")
    assert (tmp_path / "dpo" / "model.safetensors").is_file() and (tmp_path / "dpo" / "tokenizer.json").is_file()
