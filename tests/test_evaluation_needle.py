"""Chapter 07 · needle-in-a-haystack: placement in tokens, seeding, the grid, scoring and a run."""

from __future__ import annotations

import json

import pytest

from stablelm2 import config, tokenizer
from stablelm2.evaluation import needle


def tiny_model(tmp_path_factory):
    """A random smoke-size StableLM with Arcade100k (the same cached folder as test_evaluation_tasks)."""
    d = tmp_path_factory.getbasetemp() / "eval_tiny_stablelm"
    if not (d / "model.safetensors").is_file():
        from stablelm2 import model

        model.build(config.load("smoke")).save_pretrained(d)
        tokenizer.save_transformers(d)
    return d


@pytest.mark.parametrize("ctx, depth", [(200, 0.0), (200, 0.37), (500, 0.5), (1000, 0.9), (333, 1.0)])
def test_the_needle_sits_at_the_requested_depth_in_tokens(ctx, depth):
    enc = tokenizer.arcade100k()
    t = needle.make_trial(ctx, depth, seed=11)
    ids = enc.encode_ordinary(t.context)
    sentence, city, number = needle.needle_for(11)
    needle_ids = enc.encode_ordinary(sentence)
    assert len(ids) == ctx == t.ctx_tokens
    assert ids[t.position: t.position + len(needle_ids)] == needle_ids
    assert t.requested == round(depth * (ctx - len(needle_ids)))
    assert 0 <= t.requested - t.position <= 3
    assert (t.city, t.answer) == (city, number) and number in t.context


def test_same_seed_same_haystack_other_seed_other_haystack():
    a, b = needle.make_trial(300, 0.5, seed=5), needle.make_trial(300, 0.5, seed=5)
    assert a == b
    assert needle.haystack_tokens(400, 5) == needle.haystack_tokens(400, 5)
    assert needle.haystack_tokens(400, 5) != needle.haystack_tokens(400, 6)
    assert needle.make_trial(300, 0.5, seed=6).context != a.context
    # a haystack longer than all the essays is still made (reshuffled), with exactly the tokens asked
    assert len(needle.haystack_tokens(9000, 5)) == 9000


def test_grid_follows_the_config():
    ctx, depths = needle.grid(config.load("paper"))
    assert (ctx[0], ctx[-1], len(ctx)) == (500, 4000, 8) and (depths[0], depths[-1], len(depths)) == (0.0, 1.0, 35)
    cfg = config.load("smoke")
    assert len(needle.trials(cfg)) == cfg.eval.needle_n_ctx * cfg.eval.needle_depths * cfg.eval.needle_seeds
    assert needle.seeds(cfg) == [cfg.run.seed, cfg.run.seed + 1]
    plan = needle.plan(config.load("paper"))
    assert plan["trials_per_model"] == 8 * 35 * 10
    with pytest.raises(needle.NeedleError, match="between 0 and 1"):
        needle.make_trial(200, 1.5, seed=1)
    with pytest.raises(needle.NeedleError, match="no room"):
        needle.make_trial(12, 0.5, seed=1)


def test_scoring_is_containment_of_the_number():
    t = needle.make_trial(200, 0.5, seed=3)
    assert needle.score(f" {t.answer}.", t) == 1.0
    assert needle.score(f" {t.answer[:3]},{t.answer[3:]}", t) == 1.0
    assert needle.score(" 42", t) == 0.0


def test_run_scores_every_trial_and_refuses_a_context_the_model_lacks(tmp_path_factory, build_dir):
    tiny = tiny_model(tmp_path_factory)
    cfg = config.load("smoke", **{"eval.needle_seeds": 1})
    df = needle.run(tiny, cfg, progress=False)
    assert len(df) == len(needle.trials(cfg)) and set(df["score"]) <= {0.0, 1.0}
    assert (df["prompt_tokens"] > df["ctx_tokens"]).all()
    chat = needle.run(tiny, cfg, chat=True, progress=False)
    assert (chat["prompt_tokens"] > df["prompt_tokens"]).all()  # the chat template wraps the question
    s = needle.summarize(df)
    assert s["mean"].shape == (cfg.eval.needle_depths, cfg.eval.needle_n_ctx) and 0 <= s["grid_mean"] <= 1
    out = needle.save(df, build_dir / "needle.json")
    assert len(json.loads(out.read_text())) == len(df)
    fig = needle.heatmap({"base": df, "dpo": chat})
    assert len(fig.axes) == 2 * 2 + 4  # 4 panels + 4 colour bars
    small = build_dir / "small"
    small.mkdir()
    for f in tiny.iterdir():
        if f.suffix != ".safetensors":  # no weights: loading the model would fail differently
            (small / f.name).write_bytes(f.read_bytes())
    conf = json.loads((tiny / "config.json").read_text())
    conf["max_position_embeddings"] = 40
    (small / "config.json").write_text(json.dumps(conf))
    with pytest.raises(needle.NeedleError, match="model's context is 40"):
        needle.run(small, cfg, progress=False)


def test_special_token_text_in_the_haystack_stays_text(tmp_path_factory):
    """Both needle prompts (completion and chat) encode every special token's text in the context as the
    plain text pre-training saw; only the chat format's own turn ends are control tokens."""
    import dataclasses

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model(tmp_path_factory))
    base = needle.make_trial(120, 0.5, seed=1)
    for special in tokenizer.special_tokens():
        t = dataclasses.replace(base, context=f"{base.context} {special} end.")
        plain = needle.prompt_ids(t, tok, chat=False)
        assert plain == tokenizer.encode(needle.prompt(t, tok, chat=False)), special
        assert max(plain) < tokenizer.EOT_ID, special
        chat = needle.prompt_ids(t, tok, chat=True)
        assert [i for i in chat if i >= tokenizer.EOT_ID] == [tokenizer.EOT_ID], special  # the user turn's end
        assert tok.decode(chat) == needle.prompt(t, tok, chat=True)
