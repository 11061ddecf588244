import hashlib
import json
import os

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
