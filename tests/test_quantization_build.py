"""Building several formats of one checkpoint: reuse, rebuild on a new source, sizes, engines."""

from __future__ import annotations

import json
import shutil

import pytest

from stablelm2.quantization import build
from stablelm2.quantization.formats import QuantError

from .quant_fixtures import tiny_checkpoint


def test_build_reuses_and_rebuilds_on_a_new_source(tmp_path):
    out = tmp_path / "formats"
    paths = build.build_formats(tiny_checkpoint(), out, ["OV_INT8", "MLX_Q4"], progress=False)
    assert set(paths) == {"FP32", "OV_INT8", "MLX_Q4"}
    stamp = json.loads((out / "built.json").read_text())
    assert set(stamp["built"]) == {"OV_INT8", "MLX_Q4"}
    assert stamp["built"]["OV_INT8"]["bytes"] == build.size_on_disk("OV_INT8", paths["OV_INT8"])
    assert build.size_on_disk("MLX_Q4", paths["MLX_Q4"]) < build.size_on_disk("FP32", paths["FP32"])
    mtime = (paths["OV_INT8"] / "model.bin").stat().st_mtime_ns
    again = build.build_formats(tiny_checkpoint(), out, ["OV_INT8"], progress=False)
    assert (again["OV_INT8"] / "model.bin").stat().st_mtime_ns == mtime  # reused
    assert not list(out.glob(".*partial*"))                              # no leftovers
    # another checkpoint in the same folder: what was built from the old one goes
    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint(), other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["layer_norm_eps"] = 1e-6
    (other / "config.json").write_text(json.dumps(cfg))
    build.build_formats(other, out, ["MLX_Q4"], progress=False)
    assert json.loads((out / "built.json").read_text())["source"] == build.fingerprint(other)
    assert not (out / "model-OV_INT8.ov").exists()


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(QuantError, match="not made by build_formats"):
        build.build_formats(tiny_checkpoint(), tmp_path, ["MLX_Q4"], progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"
