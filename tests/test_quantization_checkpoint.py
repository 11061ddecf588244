"""Checkpoint checks: every bad folder stops with the file's name, before anything is built."""

from __future__ import annotations

import json
import shutil

import pytest

from stablelm2 import files
from stablelm2.quantization import build, checkpoint
from stablelm2.quantization.formats import QuantError

from .quant_fixtures import tiny_checkpoint


def _copy(tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint(), dst)
    return dst


def test_a_good_checkpoint_passes():
    cfg = checkpoint.check(tiny_checkpoint())
    assert cfg["model_type"] == "stablelm" and cfg["vocab_size"] == 100352
    assert checkpoint.weights_bytes(tiny_checkpoint()) > 0


@pytest.mark.parametrize("breakage, message", [
    ("missing", "does not exist"),
    ("no_config", "config.json is missing"),
    ("llama", "not a StableLM"),
    ("bad_json", "not valid JSON"),
    ("no_weights", "model.safetensors"),
    ("no_tokenizer", "tokenizer.json is missing"),
])
def test_bad_checkpoints_name_the_file(tmp_path, breakage, message):
    ck = _copy(tmp_path)
    if breakage == "missing":
        shutil.rmtree(ck)
    elif breakage == "no_config":
        (ck / "config.json").unlink()
    elif breakage == "llama":
        c = json.loads((ck / "config.json").read_text())
        c.update(model_type="llama", architectures=["LlamaForCausalLM"])
        (ck / "config.json").write_text(json.dumps(c))
    elif breakage == "bad_json":
        (ck / "config.json").write_text("{not json")
    elif breakage == "no_weights":
        (ck / "model.safetensors").unlink()
    elif breakage == "no_tokenizer":
        (ck / "tokenizer.json").unlink()
    with pytest.raises(checkpoint.CheckpointError, match=message) as err:
        checkpoint.check(ck)
    assert str(ck) in str(err.value)
    out = tmp_path / "out"
    with pytest.raises(checkpoint.CheckpointError):
        build.build_formats(ck, out, ["F16", "Q4_0"], progress=False)
    assert not out.exists()  # nothing half-written


def test_unknown_format_fails_before_any_work(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(QuantError, match="unknown quantization type 'Q3_K'"):
        build.build_formats(tiny_checkpoint(), out, ["F16", "Q3_K"], progress=False)
    assert not out.exists()


def test_release_style_config_has_top_level_rope_keys(tmp_path):
    c = checkpoint.release_style_config(json.loads((tiny_checkpoint() / "config.json").read_text()))
    assert c["partial_rotary_factor"] == 0.25 and c["rope_theta"] == 10000.0 and "rope_parameters" in c
    view = checkpoint.release_style_view(tiny_checkpoint(), tmp_path / "view")
    assert (view / "model.safetensors").is_symlink()
    assert json.loads((view / "config.json").read_text())["partial_rotary_factor"] == 0.25


def test_release_style_view_rewrites_config_atomically(tmp_path, monkeypatch):
    view = checkpoint.release_style_view(tiny_checkpoint(), tmp_path / "view")
    before = (view / "config.json").read_text()

    def interrupted(src, dst):  # killed before the new config.json is renamed into place
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    src = _copy(tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "written_by": "a later export"}))
    with pytest.raises(KeyboardInterrupt):
        checkpoint.release_style_view(src, view)
    assert (view / "config.json").read_text() == before
    assert not [p for p in view.iterdir() if p.name.startswith(".")]
