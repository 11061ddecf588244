"""Token arithmetic of the sample mix (the run's own Table 1) and chapter 01's helpers."""

from __future__ import annotations

import pytest

from stablelm2 import config
from stablelm2.data import plan


def test_mix_table_arithmetic():
    cfg = config.load("smoke")
    rows = plan.mix_table(cfg, weights={"code": 3, "wiki_en": 1})
    by = {r["source"]: r for r in rows}
    assert by["code"]["weight"] == pytest.approx(0.75) and by["web_en"]["weight"] == 0
    planned = cfg.train.steps * cfg.train.global_batch_tokens
    assert by["code"]["drawn"] == pytest.approx(0.75 * planned)
    assert by["wiki_en"]["epochs"] == pytest.approx(0.25 * planned / by["wiki_en"]["tokens"])
    shares = plan.split_by(rows, "domain")
    assert shares == pytest.approx({"code": 0.75, "wiki": 0.25, **{k: 0.0 for k in shares if k not in ("code", "wiki")}})


def test_split_by_unknown_table_is_empty():
    assert plan.split_by([{"domain": "web", "weight": None}], "domain") == {}


def test_fig1_and_helpers():
    fig = plan.fig1({"web": 0.6, "code": 0.4}, "t")
    assert fig.axes[0].get_title() == "t"
    ex = plan.restruct_examples(3)
    assert len(ex) == 3 and len({e["task"] for e in ex}) == 3
    assert {r["source"] for r in plan.hub_plan()} >= {"refinedweb", "culturax_nl", "starcoder"}
