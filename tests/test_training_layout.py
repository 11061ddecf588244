import pytest

from stablelm2 import config, facts
from stablelm2.training import layout
from stablelm2.training.layout import LayoutError


def test_table3_layout_is_solved_from_the_global_batch():
    lay = layout.solve(facts.value("train.global_batch_tokens"), seq_len=4096, n_procs=512, micro_batch=2)
    assert lay.grad_accum == facts.value("train.grad_accum") == 2
    assert lay.global_batch_seqs == facts.value("train.global_batch_seqs") == 2048
    assert lay.micro_batch * lay.grad_accum * lay.n_procs * lay.seq_len == 8_388_608
    assert lay.describe() == ("global batch 8,388,608 tokens = micro-batch 2 × accumulation 2 × 512 processes × "
                              "4,096 tokens (2,048 sequences per step)")
    assert layout.from_config(config.load("paper")) == lay


@pytest.mark.parametrize("preset", ["smoke", "cpu"])
def test_same_preset_same_global_batch_on_one_or_two_processes(preset):
    cfg = config.load(preset)
    one, two = layout.from_config(cfg, n_procs=1), layout.from_config(cfg, n_procs=2)
    assert one.global_batch_tokens == two.global_batch_tokens == cfg.train.global_batch_tokens
    assert one.grad_accum == 2 * two.grad_accum
    assert one.tokens_per_proc * 1 == two.tokens_per_proc * 2 == cfg.train.global_batch_tokens


@pytest.mark.parametrize("args, message", [
    ((1024, 128, 3, 4), "global batch 1,024 tokens (8 sequences) does not divide into micro-batch 4 × 3 processes × "
                        "128 tokens = 1,536 tokens per micro-step; choose a process count that divides 2"),
    ((8_388_608, 4096, 512, 3), "choose a micro-batch that divides 4 (e.g. 1, 2, 4)"),
    ((1000, 128, 1, 4), "global batch 1,000 tokens is not a whole number of 128-token sequences; use a multiple of 128"),
    ((1024, 128, 0, 4), "n_procs = 0 must be a positive integer"),
    ((1024, 128, 2, True), "micro_batch = True must be a positive integer"),
])
def test_layouts_that_do_not_divide_are_refused_with_the_fix(args, message):
    g, s, p, m = args
    with pytest.raises(LayoutError) as err:
        layout.solve(g, seq_len=s, n_procs=p, micro_batch=m)
    assert message in str(err.value)
