"""The pre-flight check of a paper-scale launch: every item resolved, each failure refused by name.

The GPU, disk, network and environment queries are faked here (a :class:`Probe` of plain functions);
the arithmetic they are checked against is the project's own (chapter 03's memory, the checkpoint
size, chapter 05's plan).
"""

from __future__ import annotations

import pytest

from stablelm2 import config, model
from stablelm2.training import checkpoint, plan, preflight

A100_40 = ("NVIDIA A100-SXM4-40GB", 40 * 2**30)
SLURM_ENV = {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "p4d-[001-064]"}


def _probe(**over) -> preflight.Probe:
    base = dict(gpus=lambda: [A100_40] * 8, disk_free=lambda path: 50 * 2**40,
                hub=lambda ids: {i: None for i in ids}, env=lambda: dict(SLURM_ENV), has_backend=lambda name: True)
    return preflight.Probe(**{**base, **over})


@pytest.fixture(scope="module")
def paper():
    return config.load("paper")


def test_a_ready_p4d_node_passes_and_prints_the_run(paper, tmp_path):
    rows = preflight.require(preflight.check(paper, tmp_path, probe=_probe()))
    by = {r["item"]: r for r in rows}
    assert list(by) == ["gpus", "backend", "disk", "hub", "plan"] and all(r["ok"] for r in rows)
    assert by["gpus"]["need_bytes"] == model.memory_per_gpu(paper)["total"] < 40 * 2**30
    assert by["backend"]["backend"] == "nccl" and "SLURM job 42" in by["backend"]["detail"]
    size = checkpoint.estimated_bytes(paper)
    assert by["disk"]["need_bytes"] == 2 * size and by["disk"]["checkpoint_bytes"] == size
    assert by["hub"]["datasets"] >= 5
    p = plan.build(paper)
    assert (by["plan"]["tokens"], by["plan"]["steps"]) == (500_000 * 8_388_608, 500_000)
    assert by["plan"]["emissions_t"] == p["emissions_t"] and by["plan"]["cost_usd"] == p["cost_usd"]
    text = preflight.describe(rows)
    assert text.count("[ok]") == 5 and "tCO2eq" in text


@pytest.mark.parametrize(("over", "item", "reason"), [
    (dict(gpus=lambda: []), "gpus", "no CUDA GPU on this node"),
    (dict(gpus=lambda: [A100_40] * 4), "gpus", "4 GPU\\(s\\) here, the layout needs 8 per node"),
    (dict(gpus=lambda: [("Tesla V100-16GB", 16 * 2**30)] * 8), "gpus", "16.0 GiB per GPU is less than chapter 03"),
    (dict(has_backend=lambda name: name != "nccl"), "backend", "no nccl backend"),
    (dict(env=lambda: {}), "backend", "multi-node run needs SLURM's job environment"),
    (dict(disk_free=lambda path: 2**30), "disk", "1 GiB free at .*free space"),
    (dict(hub=lambda ids: {i: ("gated: accept its terms" if "CulturaX" in i else None) for i in ids}), "hub",
     "CulturaX: gated"),
    (dict(hub=lambda ids: {i: "the Hub did not answer (OSError: unreachable)" for i in ids}), "hub",
     "did not answer"),
])
def test_each_failed_item_is_refused_by_name(paper, tmp_path, over, item, reason):
    rows = preflight.check(paper, tmp_path, probe=_probe(**over))
    failed = [r["item"] for r in rows if not r["ok"]]
    assert failed == [item]
    with pytest.raises(preflight.PreflightError, match=f"pre-flight refuses to launch: {item}: .*{reason}"):
        preflight.require(rows)


def test_several_failures_are_all_named(paper, tmp_path):
    rows = preflight.check(paper, tmp_path, probe=_probe(gpus=lambda: [], disk_free=lambda p: 0))
    with pytest.raises(preflight.PreflightError, match=r"gpus: no CUDA GPU.* \| disk: 0 GiB free"):
        preflight.require(rows)
    assert [r["item"] for r in rows if not r["ok"]] == ["gpus", "disk"]
    assert next(r for r in rows if r["item"] == "backend")["backend"] == "gloo"


def test_checkpoint_size_is_the_weights_and_optimizer_with_no_history(paper):
    n = model.param_counts(paper)["total"]
    ds = checkpoint.size_breakdown(paper)
    assert ds["model.safetensors"] == 4 * n and ds["deepspeed"] == 14 * n
    assert ds["trainer_state.json"] == 512 * checkpoint.RANK_STATE_BYTES
    torch_side = checkpoint.size_breakdown(paper, backend="torch", world_size=2)
    assert torch_side["total"] == 12 * n + 2 * checkpoint.RANK_STATE_BYTES


def test_an_offline_run_never_asks_the_hub(paper, tmp_path):
    probe = preflight.probe_for(config.load("smoke"))
    assert probe.hub is preflight.offline_hub
    rows = preflight.check(paper, tmp_path, probe=preflight.Probe(**{**_probe().__dict__, "hub": probe.hub}))
    hub = next(r for r in rows if r["item"] == "hub")
    assert not hub["ok"] and "not checked: this run is offline" in hub["detail"]
    assert preflight.probe_for(paper).hub is not preflight.offline_hub


def test_the_hub_check_tells_gated_from_an_outage():
    """Only the Hub's own 'gated' answer is reported as gated; an HTTP failure is 'did not answer'."""
    import httpx
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    from stablelm2.training import preflight

    def error(cls, msg):
        return cls(msg, response=httpx.Response(503 if cls is HfHubHTTPError else 403,
                                                 request=httpx.Request("GET", "http://127.0.0.1/")))

    class FakeApi:  # answers like huggingface_hub.HfApi for three datasets
        def dataset_info(self, ds):
            return type("Info", (), {"gated": ds != "open/ds"})()

        def list_repo_files(self, ds, repo_type):
            if ds == "down/ds":
                raise error(HfHubHTTPError, "503 Service Unavailable")
            raise error(GatedRepoError, "403 gated")

    got = preflight._real_hub(["open/ds", "gated/ds", "down/ds"], api=FakeApi())
    assert got["open/ds"] is None
    assert got["gated/ds"].startswith("gated")
    assert got["down/ds"].startswith("the Hub did not answer") and "HfHubHTTPError" in got["down/ds"]
