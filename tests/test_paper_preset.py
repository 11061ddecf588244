"""The stages that need GPUs or the Hub, run at ``paper`` on this CPU machine with the network blocked:
each finishes, writes its plan, and says in so many words that it did not train or evaluate."""

from __future__ import annotations

import json

import pytest
import torch

from stablelm2 import record, runner

SAYS_SO = {
    "05_pretraining": "No GPU on this machine: **nothing was trained.**",
    "06_alignment": "**Did not run.** Preset `paper` needs GPUs and the Hub",
    "07_evaluation": "**Did not run:** preset `paper` without `eval.launch` on a GPU.",
}


@pytest.mark.notebook
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without GPUs says")
@pytest.mark.parametrize("chapter", sorted(SAYS_SO))
def test_stage_stops_at_its_plan_and_says_it_did_not_run(chapter, build_dir, offline_kernels):
    rec = runner.execute(chapter, "paper", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    nb = json.loads((build_dir / "paper" / "notebooks" / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    shown = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) + "".join(o.get("text", ""))
                      for c in nb["cells"] for o in c.get("outputs", []))
    assert SAYS_SO[chapter] in shown
    m = record.read("paper", chapter, root=build_dir)
    assert m["claims"], "the paper-scale arithmetic is still checked in the ledger"
    assert m["provenance"]["preset"] == "paper" and m["provenance"]["hardware"]["gpu"] == []
