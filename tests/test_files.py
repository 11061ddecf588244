import hashlib
import json
import os
from pathlib import Path

import pytest

from stablelm2 import files


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "m.json"
    files.atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        files.atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_dir_replaces_the_folder_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="converter died"):
        with files.atomic_dir(out) as tmp:
            tmp.mkdir()
            (tmp / "half.bin").write_bytes(b"\0" * 10)
            raise RuntimeError("converter died")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (out / "old.txt").read_text() == "old"
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with files.atomic_dir(out):
            pass
    assert (out / "old.txt").is_file()
    with files.atomic_dir(out) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"] and len(list(tmp_path.iterdir())) == 1


def test_sha256_file_is_hashlibs_digest(tmp_path):
    data = os.urandom(5 << 20)  # spans two read chunks
    (tmp_path / "blob").write_bytes(data)
    assert files.sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_atomic_dir_keeps_the_old_folder_when_the_final_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real = os.replace

    def replace(src, dst):
        if ".partial-" in str(src):  # the new folder's rename into place is interrupted
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_dir(out) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (out / "old.txt").read_text() == "old"


def test_atomic_file_and_copy_leave_the_old_file_when_interrupted(tmp_path, monkeypatch):
    dest = tmp_path / "fig.png"
    dest.write_bytes(b"old")
    src = tmp_path / "src.png"
    src.write_bytes(b"new" * 1000)

    def half_copy(a, b, **_):
        Path(b).write_bytes(Path(a).read_bytes()[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(files.shutil, "copy2", half_copy)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_copy(src, dest)
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "src.png"]
    monkeypatch.undo()
    files.atomic_copy(src, dest)
    assert dest.read_bytes() == b"new" * 1000
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with files.atomic_file(dest):
            pass
    assert dest.read_bytes() == b"new" * 1000


def test_json_default_writes_arrays_and_tensors_whole(tmp_path):
    import numpy as np
    import torch

    files.atomic_write_json(tmp_path / "a.json", {"np": np.arange(3), "t": torch.tensor([[1.5, 2.0]]),
                                                  "scalar": np.float32(0.5), "path": tmp_path / "x"})
    assert json.loads((tmp_path / "a.json").read_text()) == {"np": [0, 1, 2], "t": [[1.5, 2.0]], "scalar": 0.5,
                                                             "path": str(tmp_path / "x")}


def test_sha256_helpers_agree_with_hashlib(tmp_path):
    (tmp_path / "a").write_bytes(b"alpha")
    (tmp_path / "b").write_bytes(b"beta")
    h = hashlib.sha256()
    for name, data in (("a", b"alpha"), ("b", b"beta")):
        h.update(name.encode())
        h.update(hashlib.sha256(data).digest())
    assert files.sha256_files([tmp_path / "a", tmp_path / "b"]) == h.hexdigest()
    assert files.sha256_json({"b": 1, "a": [2]}) == hashlib.sha256(b'{"a": [2], "b": 1}').hexdigest()
