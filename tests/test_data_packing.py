"""Packing and the mixture loader: the chapter-05 contract, resume, ranks, shards, and notebook 01."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stablelm2 import config, record, runner, tokenizer
from stablelm2.data import batch_at, pack_shards, packed_loader, sample_sources, validation_sets
from stablelm2.data import results as data_results
from stablelm2.data.packing import IGNORE, PackedLoader
from stablelm2.data.sources import SourceError


@pytest.fixture(scope="module")
def cfg():
    return config.load("smoke")


def test_contract_shapes_positions_and_labels(cfg):
    loader = packed_loader(cfg)
    for _ in range(5):
        b = next(loader)
        assert set(b) == {"input_ids", "labels", "position_ids"}
        for v in b.values():
            assert v.dtype == torch.long and tuple(v.shape) == (cfg.train.micro_batch, cfg.data.seq_len)
        ids, pos, lab = b["input_ids"].numpy(), b["position_ids"].numpy(), b["labels"].numpy()
        assert (pos[:, 0] == 0).all()
        after_eot = np.zeros_like(ids, dtype=bool)
        after_eot[:, 1:] = ids[:, :-1] == tokenizer.EOT_ID
        assert (pos[after_eot] == 0).all()  # restart at every document
        cont = ~after_eot
        cont[:, 0] = False
        assert (pos[:, 1:][cont[:, 1:]] == (pos[:, :-1] + 1)[cont[:, 1:]]).all()
        assert (lab[pos == 0] == IGNORE).all() and (lab[pos > 0] == ids[pos > 0]).all()
        assert ids.max() < 100_289


def test_same_seed_same_batches_other_seed_other(cfg):
    a = [next(packed_loader(cfg))["input_ids"] for _ in range(2)]
    assert torch.equal(a[0], a[1])
    other = next(packed_loader(config.load("smoke", seed=7)))["input_ids"]
    assert not torch.equal(a[0], other)


def test_state_dict_resumes_exactly(cfg):
    loader = packed_loader(cfg)
    for _ in range(7):
        next(loader)
    state = loader.state_dict()
    expected = [next(loader) for _ in range(4)]
    fresh = packed_loader(cfg)
    fresh.load_state_dict(state)
    for e in expected:
        got = next(fresh)
        assert all(torch.equal(got[k], e[k]) for k in e)
    with pytest.raises(SourceError, match="different settings.*seed"):
        packed_loader(config.load("smoke", seed=9)).load_state_dict(state)


def test_sampled_proportions_converge_to_weights(cfg):
    weights = {"code": 0.6, "multilingual_fr": 0.3, "wiki_en": 0.1}
    loader = PackedLoader(cfg, weights=weights, micro_batch=1)
    for _ in range(3000):
        loader.next_sequence()
    n = sum(loader.sequences_per_source.values())
    for k, w in weights.items():
        assert loader.sequences_per_source[k] / n == pytest.approx(w, abs=0.03)
    assert loader.epochs()["wiki_en"] >= 1


def test_ranks_partition_the_global_stream(cfg):
    single = packed_loader(cfg)
    seqs = torch.cat([next(single)["input_ids"] for _ in range(4)])
    r0, r1 = packed_loader(cfg, rank=0, world_size=2), packed_loader(cfg, rank=1, world_size=2)
    mb = cfg.train.micro_batch
    got = torch.cat([torch.cat([next(r0)["input_ids"], next(r1)["input_ids"]]) for _ in range(2)])
    assert torch.equal(got, seqs[: 4 * mb])
    with pytest.raises(SourceError, match="rank"):
        packed_loader(cfg, rank=2, world_size=2)


def test_bad_weights(cfg):
    with pytest.raises(SourceError, match="unknown source.*'poetry'"):
        packed_loader(cfg, weights={"poetry": 1.0})
    with pytest.raises(SourceError, match="sum to 0"):
        packed_loader(cfg, weights={"code": 0.0})
    with pytest.raises(SourceError, match="non-negative"):
        packed_loader(cfg, weights={"code": -1.0})
    with pytest.raises(SourceError, match="Table 1's sampling weights are unknown"):
        packed_loader(config.load("paper"))


def test_batch_at_step_k_from_shards_and_replay(cfg, tmp_path):
    man = pack_shards(cfg, 3, tmp_path / "shards", steps_per_shard=2)
    G = cfg.train.global_batch_tokens // cfg.data.seq_len
    assert [s["steps"] for s in man["shards"]] == [2, 1] and man["sequences_per_step"] == G
    loader = PackedLoader(cfg, micro_batch=1)
    stream = [loader.next_sequence() for _ in range(3 * G)]
    for k in (0, 2):
        b = batch_at(cfg, k, shards_dir=tmp_path / "shards")
        want = np.stack([s[0] for _, s in stream[k * G:(k + 1) * G]])
        assert np.array_equal(b["input_ids"].numpy(), want)
        assert np.array_equal(b["position_ids"].numpy(), np.stack([s[1] for _, s in stream[k * G:(k + 1) * G]]))
        assert b["sources"] == [n for n, _ in stream[k * G:(k + 1) * G]]
    assert torch.equal(batch_at(cfg, 2)["input_ids"], batch_at(cfg, 2, shards_dir=tmp_path / "shards")["input_ids"])
    shard = tmp_path / "shards" / man["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(SourceError, match="sha256"):
        batch_at(cfg, 0, shards_dir=tmp_path / "shards")


def test_validation_sets_per_source(cfg):
    val = validation_sets(cfg)
    assert set(val) == set(sample_sources(cfg))
    for batches in val.values():
        assert 1 <= len(batches) <= cfg.data.val_batches
        for b in batches:
            assert b["input_ids"].shape[1] == cfg.data.seq_len and (b["labels"] != IGNORE).any()
    assert {v["language"] for v in sample_sources(cfg).values()} >= {"en", "de", "es", "fr", "it", "nl", "pt"}


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("01_data_mix", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "01_data_mix", root=build_dir)["metrics"]
    assert set(m) == data_results.DataMixMetrics.__optional_keys__  # the library's schema: every part ran
    assert m["table1_known"] is False and m["resume_exact"] and m["same_seed_same_batch"] and m["batch_at_exact"]
    assert m["max_share_error"] < 0.05
    assert sum(m["domain_split"].values()) == pytest.approx(1, abs=1e-3)
    assert len(m["validation_sources"]) == 15
    assert m["min_multilingual_purity"] >= 0.95 and m["sample_shared_documents"] == 0  # chapter 01 shows a clean sample
    claims = {c["id"]: c["status"] for c in record.read("smoke", "01_data_mix", root=build_dir)["claims"]}
    assert claims["data.tab1_sampling_weights"] == "reported only" and "data.two_epoch_total" not in claims
