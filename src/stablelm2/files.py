"""Files: atomic writes (text, JSON, folders) and sha256 digests — the one place files are renamed into place.

Every writer in the package goes through here, so a reader of any artefact sees the old file or the new
one, never half of one, and a crash leaves no stray partial file under its final name::

    atomic_write_json(out / "metrics.json", data)       # a file
    with atomic_dir(models / "pretrained") as tmp:      # a folder
        model.save_pretrained(tmp)
    sha256_file(out / "model.safetensors")              # a digest
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=ensure_ascii, sort_keys=False,
                                       default=json_default) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=json_default) + "\n" for r in rows))


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """A scratch path beside ``path`` (not yet created) that becomes ``path`` when the block succeeds.

    For writers that want a file name (``np.save``, ``savefig``, a converter run as a subprocess)::

        with atomic_file(out / "shard.npy") as tmp:
            np.save(tmp, arr)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written to {tmp}, so {path} was left as it was")
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(out: Path | str) -> Iterator[Path]:
    """A scratch path beside ``out`` (not yet created) that becomes ``out`` when the block succeeds.

    Write a folder there (``save_pretrained``, a converter, ``copytree``...); on success it replaces
    ``out`` in one rename, on any error it is removed and ``out`` stays as it was::

        with atomic_dir(models / "pretrained") as tmp:
            model.save_pretrained(tmp)
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if not tmp.is_dir():
            raise FileNotFoundError(f"nothing was written to {tmp}, so {out} was left as it was")
        if out.exists():  # set the old folder aside, so ``out`` is never missing and comes back on failure
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_copy(src: Path | str, dest: Path | str) -> Path:
    with atomic_file(dest) as tmp:
        shutil.copy2(src, tmp)
    return Path(dest)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(data: Any) -> str:
    return sha256_bytes(json.dumps(data, sort_keys=True, default=str).encode())


def sha256_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for f in paths:
        h.update(Path(f).name.encode())
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def fsync_file(path: Path | str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_default(x: Any) -> Any:
    if hasattr(x, "tolist") and callable(x.tolist):  # numpy/torch arrays and their scalars
        return x.tolist()
    if hasattr(x, "item") and callable(x.item):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")
