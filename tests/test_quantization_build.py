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


def test_overlapped_chains_build_the_same_files_as_one_after_the_other(tmp_path):
    """llama.cpp's chain in a worker thread beside the OpenVINO export: same files, same order, same stamp."""
    names = ["Q4_0", "OV_INT8", "Q8_0"]
    seq = build.build_formats(tiny_checkpoint(), tmp_path / "seq", names, progress=False, overlap=False)
    par = build.build_formats(tiny_checkpoint(), tmp_path / "par", names, progress=False, overlap=True)
    assert list(seq) == list(par) == ["FP32", "F16", "Q4_0", "OV_INT8", "Q8_0"]
    for fmt in ("F16", "Q4_0", "Q8_0"):
        assert par[fmt].read_bytes() == seq[fmt].read_bytes(), fmt
    assert (par["OV_INT8"] / "model.bin").read_bytes() == (seq["OV_INT8"] / "model.bin").read_bytes()
    stamps = [json.loads((d / "built.json").read_text())["built"] for d in (tmp_path / "seq", tmp_path / "par")]
    assert set(stamps[0]) == set(stamps[1]) == {"F16", "Q4_0", "OV_INT8", "Q8_0"}
    for fmt in ("F16", "Q4_0", "Q8_0"):  # (the IR's xml names its nodes by a per-process counter: not compared)
        assert stamps[0][fmt] == stamps[1][fmt]
    assert not list((tmp_path / "par").glob(".*partial*"))


def test_an_error_in_the_worker_chain_reaches_the_caller(tmp_path, monkeypatch):
    from stablelm2.quantization import gguf_io

    def broken(*args, **kwargs):
        raise gguf_io.GGUFError("quantizer exploded")

    monkeypatch.setattr(gguf_io, "quantize", broken)
    with pytest.raises(gguf_io.GGUFError, match="quantizer exploded"):
        build.build_formats(tiny_checkpoint(), tmp_path / "out", ["Q4_0", "MLX_Q4"], progress=False, overlap=True)
    stamp = json.loads((tmp_path / "out" / "built.json").read_text())["built"]
    assert "Q4_0" not in stamp and {"F16", "MLX_Q4"} <= set(stamp)  # what finished is kept for the next run


def test_streams_swapped_by_the_two_chains_are_put_back(tmp_path, monkeypatch):
    """The worker's capture of llama.cpp's log and a progress display in this thread (rich's ``Live``, as NNCF
    uses) both swap ``sys.stderr``; interleaved, the display restores the worker's stand-in. The build puts the
    streams back as they were (a stand-in left in a Jupyter kernel hung chapter 08 at its next cell)."""
    import contextlib
    import io
    import sys
    import threading

    from stablelm2.quantization import gguf_io, mlx_io

    entered, swapped, done = threading.Event(), threading.Event(), threading.Event()
    real_quantize, real_export = gguf_io.quantize, mlx_io.export

    def quantize(*args, **kwargs):
        with contextlib.redirect_stderr(io.StringIO()):  # the worker saves the stream it saw, then puts it back
            entered.set()
            assert swapped.wait(30)
        done.set()
        return real_quantize(*args, **kwargs)

    def export(*args, **kwargs):
        assert entered.wait(30)
        restore = sys.stderr  # what a Live saves on start: here the worker's stand-in
        sys.stderr = io.StringIO()
        swapped.set()
        assert done.wait(30)
        sys.stderr = restore  # ... and puts back on stop, after the worker has restored the real one
        return real_export(*args, **kwargs)

    monkeypatch.setattr(gguf_io, "quantize", quantize)
    monkeypatch.setattr(mlx_io, "export", export)
    before = sys.stdout, sys.stderr
    build.build_formats(tiny_checkpoint(), tmp_path / "out", ["Q4_0", "MLX_Q4"], progress=False, overlap=True)
    assert (sys.stdout, sys.stderr) == before
