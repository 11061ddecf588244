import json
import math

import pytest
import torch
from safetensors.torch import load_file

from stablelm2 import model as model_lib
from stablelm2 import schedule
from stablelm2.training import backends, engine, metrics

from .training_runs import reference_two_processes, scratch, tiny_cfg


def test_token_loss_is_transformers_causal_lm_loss():
    cfg = tiny_cfg()
    net = model_lib.build(cfg)
    ids = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, 5] = labels[1, 0] = -100
    out = net(input_ids=ids, labels=labels, use_cache=False)
    s, n = engine.token_loss(out.logits, labels)
    assert int(n) == 2 * 15 - 1  # 15 targets per row, one masked (a masked first token is never a target)
    assert float((s / n).detach()) == pytest.approx(float(out.loss.detach()), rel=1e-6)


def test_token_loss_is_summed_in_float64():
    import math

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3000, 50, generator=g) * 4
    labels = torch.randint(0, 50, (2, 3000), generator=g)
    s, n = engine.token_loss(logits, labels)
    per = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1), reduction="none")
    assert s.dtype == torch.float64 and int(n) == 2 * 2999
    assert float(s) == pytest.approx(math.fsum(per.double().tolist()), rel=1e-12)


def test_restarting_position_ids_keep_attention_inside_each_document():
    cfg = tiny_cfg()
    net = model_lib.build(cfg).eval()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(0, 1000, (1, 7), generator=g), torch.randint(0, 1000, (1, 9), generator=g)
    packed = torch.cat([a, b], dim=1)
    pos = torch.cat([torch.arange(7), torch.arange(9)]).unsqueeze(0)
    with torch.no_grad():
        both = net(input_ids=packed, position_ids=pos, use_cache=False).logits
        alone = net(input_ids=b, position_ids=torch.arange(9).unsqueeze(0), use_cache=False).logits
        leaky = net(input_ids=packed, use_cache=False).logits  # without restarts, B attends to A
    assert torch.allclose(both[:, 7:], alone, atol=1e-5)
    assert not torch.allclose(leaky[:, 7:], alone, atol=1e-3)


def test_weight_decay_skips_biases_and_norms():
    net = model_lib.build(tiny_cfg())
    decay, no_decay = backends.param_groups(net, 0.1)
    names = {id(p): n for n, p in net.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 and "norm" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"model.norm.weight", "model.norm.bias",
                                                          "model.layers.0.self_attn.q_proj.bias"}
    assert any(names[id(p)] == "model.embed_tokens.weight" for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference configuration on one process, in this process (accumulation 2 instead of 1)."""
    out = tmp_path_factory.mktemp("one") / "run"
    history = engine.train(tiny_cfg(), out, progress=False)
    return out, history


def test_one_process_run_logs_every_step_and_writes_its_results(one_process, capsys):
    out, h = one_process
    cfg = tiny_cfg()
    assert h["layout"] == {"global_batch_tokens": 256, "seq_len": 64, "n_procs": 1, "micro_batch": 2,
                           "grad_accum": 2, "global_batch_seqs": 4}
    assert [r["step"] for r in h["steps"]] == list(range(1, 13))
    assert [r["tokens"] for r in h["steps"]] == [256 * k for k in range(1, 13)]
    for r in h["steps"]:  # the lr applied at update k is the schedule after k - 1 updates
        assert r["lr"] == pytest.approx(schedule.learning_rate(r["step"] - 1, cfg), rel=1e-12, abs=1e-15)
        assert r["grad_norm"] > 0 and r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1
    assert h["steps"][-1]["loss"] < h["steps"][0]["loss"] - 0.02
    assert [e["step"] for e in h["evals"]] == [6, 12]
    assert set(h["evals"][-1]["domains"]) >= {"code", "multilingual_de", "web_en"}
    assert h["evals"][-1]["val_loss"] < h["evals"][0]["val_loss"]
    assert "CPU, measured fp32 matmul peak" in h["peak_basis"]
    on_disk = json.loads((out / "history.json").read_text())
    assert on_disk["summary"] == h["summary"] and "steps" not in on_disk and "evals" not in on_disk
    assert metrics.read(out / "metrics.jsonl") == {"steps": h["steps"], "evals": h["evals"]}  # the curves' source
    from transformers import AutoModelForCausalLM

    back = AutoModelForCausalLM.from_pretrained(out / "model")
    assert back.config.hidden_size == 32 and (out / "model" / "model.safetensors").is_file()


def test_a_run_leaves_tensorboard_event_files_with_its_curves(one_process):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, h = one_process
    logdir = out / metrics.TRACKER_DIR
    assert list(logdir.glob("events.out.tfevents.*"))
    ev = EventAccumulator(str(logdir))
    ev.Reload()
    tags = set(ev.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_s", "val/loss"} <= tags
    for tag, key in (("train/loss", "loss"), ("train/learning_rate", "lr"), ("train/grad_norm", "grad_norm"),
                     ("train/tokens_per_s", "tokens_per_s")):
        got = ev.Scalars(tag)
        assert [e.step for e in got] == list(range(1, 13))
        assert [e.value for e in got] == pytest.approx([r[key] for r in h["steps"]], rel=1e-6)  # float32 events
    assert [e.step for e in ev.Scalars("val/loss")] == [6, 12]


def test_an_unavailable_tracker_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import importlib.util

    from stablelm2.config import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match="train.trackers = 'wandb' needs the 'wandb' package"):
        engine.train(tiny_cfg(**{"train.trackers": "wandb"}), tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()
    h = engine.train(tiny_cfg(**{"train.trackers": "none", "train.n_procs": 1, "train.steps": 3,
                                 "schedule.cooldown_steps": 1, "train.checkpoint_every": 0}),
                     tmp_path / "none", progress=False, save_model=False)
    assert h["summary"]["steps"] == 3 and not (tmp_path / "none" / metrics.TRACKER_DIR).exists()


def test_two_processes_train_the_same_global_batch(one_process):
    """torchrun with 2 processes (DDP over gloo, ZeRO-1): same data per step, same objective, same numbers."""
    ref = reference_two_processes()
    two = metrics.load_history(ref)
    _, one = one_process
    assert two["world_size"] == 2 and two["backend"] == "torch" and two["layout"]["grad_accum"] == 1
    assert two["layout"]["global_batch_tokens"] == one["layout"]["global_batch_tokens"]
    assert two["steps"][0]["loss"] == pytest.approx(one["steps"][0]["loss"], abs=1e-5)
    assert two["steps"][0]["grad_norm"] == pytest.approx(one["steps"][0]["grad_norm"], rel=1e-4)
    for a, b in zip(two["steps"], one["steps"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=2e-3)
    w2 = load_file(str(ref / "model" / "model.safetensors"))
    w1 = load_file(str(one_process[0] / "model" / "model.safetensors"))
    assert max(float((w2[k] - w1[k]).abs().max()) for k in w1) < 1e-3


def test_stop_callback_ends_the_run_early():
    out = scratch("stop")
    h = engine.train(tiny_cfg(), out, stop=lambda hist: hist["steps"][-1]["step"] == 3, tag="stop at 3",
                     save_model=False, progress=False)
    assert h["summary"]["steps"] == 3 and h["stopped_early"] == 3 and h["evals"][-1]["step"] == 3
    assert not (out / "model").exists() and not (out / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is about CPU-only machines")
def test_deepspeed_backend_is_refused_on_cpu_before_anything_is_written(tmp_path):
    from stablelm2.config import ConfigError

    with pytest.raises(ConfigError, match="train.backend = 'deepspeed' needs CUDA GPUs"):
        engine.train(tiny_cfg(**{"train.backend": "deepspeed"}), tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


def test_fused_head_loss_has_the_logits_loss_and_its_gradients(monkeypatch):
    """The blocked head + cross-entropy (several token blocks, the last short, masked targets) against full logits:
    the loss, the gradients of a summed loss (formed in forward), of per-token weights (formed again in
    backward), and the loss with no gradients wanted."""
    from stablelm2.training import head_loss

    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 40, 16, generator=g)
    weight = torch.randn(3000, 16, generator=g) * 0.3
    monkeypatch.setattr(head_loss, "CHUNK_ELEMENTS", 80 * 256)  # 3000 rows → blocks of 32 tokens: 32 + 32 + 16
    labels = torch.randint(0, 3000, (2, 40), generator=g)
    labels[0, 7] = labels[1, 0] = -100
    assert head_loss.chunk_tokens(80, 3000) == 32
    ref_h, ref_w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    s_ref, n_ref = engine.token_loss(ref_h @ ref_w.t(), labels)
    s_ref.backward()
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    s, n = head_loss.token_loss(h, w, labels)
    s.backward()
    assert s.dtype == torch.float64 and int(n) == int(n_ref) == 2 * 39 - 1
    assert float(s) == pytest.approx(float(s_ref), rel=1e-6)
    assert torch.allclose(h.grad, ref_h.grad, rtol=1e-4, atol=1e-6)
    assert torch.allclose(w.grad, ref_w.grad, rtol=1e-4, atol=1e-6)
    assert float(w.grad[labels[0, 8]].abs().sum()) > 0  # a target row receives the one-hot part
    weights = torch.rand(2 * 40, generator=g)  # per-token weights: not a plain sum
    ref_h.grad = ref_w.grad = h.grad = w.grad = None
    targets = torch.full_like(labels, -100)
    targets[:, :-1] = labels[:, 1:]
    ref_per = torch.nn.functional.cross_entropy(ref_h.reshape(-1, 16) @ ref_w.t(), targets.reshape(-1),
                                                reduction="none")
    (ref_per * weights).sum().backward()
    per = head_loss.per_token_loss(h.reshape(-1, 16), w, targets.reshape(-1))
    (per * weights).sum().backward()
    assert torch.allclose(per, ref_per.detach(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(h.grad, ref_h.grad, rtol=1e-4, atol=1e-6)
    assert torch.allclose(w.grad, ref_w.grad, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        s_eval, _ = head_loss.token_loss(h, w, labels)
    assert float(s_eval) == pytest.approx(float(s_ref), rel=1e-6) and not s_eval.requires_grad
    with pytest.raises(ValueError, match="outside the vocabulary"):
        head_loss.token_loss(hidden, weight[:100], labels)


def test_fused_head_loss_backward_twice_accumulates_the_same_gradients_again():
    """The forward's gradients are scaled in place by the first backward; a second (retain_graph) forms them again."""
    from stablelm2.training import head_loss

    g = torch.Generator().manual_seed(7)
    hidden, weight = torch.randn(2, 12, 8, generator=g), torch.randn(300, 8, generator=g) * 0.3
    labels = torch.randint(0, 300, (2, 12), generator=g)
    ref_h, ref_w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    s_ref, n_ref = engine.token_loss(ref_h @ ref_w.t(), labels)
    (s_ref / n_ref).backward()
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    s, n = head_loss.token_loss(h, w, labels)
    loss = s / n
    loss.backward(retain_graph=True)
    assert torch.allclose(w.grad, ref_w.grad, rtol=1e-4, atol=1e-7)
    loss.backward()
    assert torch.allclose(h.grad, 2 * ref_h.grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(w.grad, 2 * ref_w.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("case", ["overflow", "sum", "near", "vanish"])
def test_fused_head_loss_takes_the_textbook_path_where_exponentials_would_overflow_or_vanish(case):
    """Logits whose fp32 exponentials overflow (above 88.7), whose sum does (every logit near 85), or which all
    vanish (below −103): the block subtracts each token's largest logit first, and the loss and gradients are as
    close to a float64 computation as the fp32 full-logits path is (within 3×: both lose digits where the gradient
    is a difference of large terms)."""
    from stablelm2.training import head_loss

    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(1, 24, 8, generator=g)
    weight = torch.randn(500, 8, generator=g) * 0.3
    u = hidden[0, 0] / hidden[0, 0].dot(hidden[0, 0])  # u · hidden[0, 0] = 1
    if case == "overflow":
        weight[7] = 200 * u  # one logit of 200: exp overflows
    elif case == "sum":
        weight = weight * 0.01 + 85 * u  # every logit of the first token near 85: each exp finite, their sum not
    elif case == "near":
        weight[7] = 88 * u  # one logit of 88: its exp and the sum finite, but exp × a weight above 1 is not
    else:
        weight = weight * 0.01 - 200 * u  # every logit of the first token near −200: every exp vanishes
    labels = torch.randint(0, 500, (1, 24), generator=g)
    sums = (hidden[0] @ weight.t()).exp().sum(-1)  # what fp32 gives without the textbook shift
    if case == "near":
        assert bool(torch.isfinite(sums).all()) and float(weight[7].abs().max()) > 1
        assert not bool(torch.isfinite(sums[0] * weight[7]).all())
    else:
        assert not bool(torch.isfinite(sums).all()) if case != "vanish" else float(sums.min()) == 0.0
    assert case != "sum" or bool(torch.isfinite((hidden[0] @ weight.t()).exp()).all())

    def grads(fn, dtype):
        h, w = hidden.clone().to(dtype).requires_grad_(), weight.clone().to(dtype).requires_grad_()
        s, _ = fn(h, w)
        s.backward()
        return float(s), h.grad.double(), w.grad.double()

    exact = grads(lambda h, w: engine.token_loss(h @ w.t(), labels), torch.float64)
    logits32 = grads(lambda h, w: engine.token_loss(h @ w.t(), labels), torch.float32)
    fused = grads(lambda h, w: head_loss.token_loss(h, w, labels), torch.float32)
    assert math.isfinite(fused[0]) and fused[0] == pytest.approx(exact[0], rel=1e-6)
    for i in (1, 2):
        assert float((fused[i] - exact[i]).abs().max()) <= 3 * float((logits32[i] - exact[i]).abs().max()) + 1e-7


def test_fused_head_leaves_a_short_runs_losses_where_the_logits_path_puts_them(monkeypatch):
    """Same run, fused head vs the model's logits: every step's loss within 1e-5 (fp32 rounding of a
    different summation order), gradient norms within 1e-4, final weights within 1e-5."""
    from stablelm2.training import head_loss

    cfg = tiny_cfg(**{"train.n_procs": 1, "train.steps": 4, "schedule.total_steps": 5, "schedule.cooldown_steps": 1,
                      "train.checkpoint_every": 0, "train.eval_every": 0, "train.trackers": "none"})
    a_dir, b_dir = scratch("fused"), scratch("logits")
    fused = engine.train(cfg, a_dir, progress=False, val_factory=lambda c: {})
    monkeypatch.setattr(head_loss, "FUSED", False)
    plain = engine.train(cfg, b_dir, progress=False, val_factory=lambda c: {})
    assert len(fused["steps"]) == len(plain["steps"]) == 4
    assert plain["steps"][-1]["loss"] < plain["steps"][0]["loss"]
    for a, b in zip(fused["steps"], plain["steps"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    wa = load_file(str(a_dir / "model" / "model.safetensors"))
    wb = load_file(str(b_dir / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys() and max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5


def test_threads_are_the_cores_shared_out_between_processes():
    from stablelm2 import hardware

    assert hardware.threads_per_process(2, cores=2) == 1
    assert hardware.threads_per_process(2, cores=16) == 8
    assert hardware.threads_per_process(4, cores=2) == 1
    with pytest.raises(ValueError, match="at least 1"):
        hardware.threads_per_process(0, cores=2)


def test_bf16_autocast_on_cpu_only_with_native_bf16_flags(monkeypatch):
    from stablelm2 import hardware

    assert hardware.cpu_bf16_flags(frozenset({"avx2", "fma"})) == ()
    assert hardware.cpu_bf16_flags(frozenset({"avx512f", "avx512_bf16", "amx_bf16"})) == ("avx512_bf16", "amx_bf16")
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_bf16_flags", lambda flags=None: ("amx_bf16",))
    bf16 = tiny_cfg(**{"train.precision": "bf16"})  # loads: this CPU (as faked) computes bf16
    assert backends.autocast_bf16(bf16, cpu) and "amx_bf16" in backends.precision_note(bf16, cpu)
    assert not backends.autocast_bf16(tiny_cfg(**{"train.precision": "fp32"}), cpu)
    monkeypatch.setattr(hardware, "cpu_bf16_flags", lambda flags=None: ())
    assert not backends.autocast_bf16(bf16, cpu)
    assert "neither avx512_bf16 nor amx_bf16" in backends.precision_note(bf16, cpu)
    from stablelm2.config import ConfigError

    with pytest.raises(ConfigError, match="needs a CPU that computes bf16"):
        tiny_cfg(**{"train.precision": "bf16"})
