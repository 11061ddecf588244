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
    """Write ``text`` (UTF-8) to ``path`` so readers see the old file or the new one, never half of one.

    The text goes to a temporary file beside ``path`` (same folder, so the rename stays on one file
    system), is flushed and fsynced, then renamed over ``path``; parents are created.

    Raises:
        OSError: the folder cannot be written (the temporary file is removed, ``path`` is unchanged).
    """
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
    """Write ``data`` as JSON (keys in insertion order, a final newline) with :func:`atomic_write_text`.

    numpy/torch arrays and scalars and paths are converted by :func:`json_default`.

    Raises:
        TypeError: ``data`` holds something JSON cannot write (nothing is written; ``path`` is unchanged).
        OSError: as :func:`atomic_write_text`.
    """
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=ensure_ascii, sort_keys=False,
                                       default=json_default) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Write ``rows`` as JSON lines (one object a line, UTF-8 kept as is) with :func:`atomic_write_text`.

    Raises:
        TypeError: a row holds something JSON cannot write (``path`` is unchanged).
        OSError: as :func:`atomic_write_text`.
    """
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=json_default) + "\n" for r in rows))


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """A scratch path beside ``path`` (not yet created) that becomes ``path`` when the block succeeds.

    For writers that want a file name (``np.save``, ``savefig``, a converter run as a subprocess)::

        with atomic_file(out / "shard.npy") as tmp:
            np.save(tmp, arr)

    The scratch name keeps ``path``'s suffix (``np.save`` and ``savefig`` go by it). The file is
    fsynced before the rename; on any error it is removed and ``path`` stays as it was.

    Raises:
        FileNotFoundError: the block wrote nothing at the scratch path (``path`` is left as it was).
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

    An existing ``out`` is set aside (renamed) before the new folder is renamed in, and renamed back
    if that fails, so ``out`` is never missing.

    Raises:
        FileNotFoundError: the block created no folder at the scratch path (``out`` is left as it was).
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
    """Copy the file ``src`` (contents and times) to ``dest`` through :func:`atomic_file`; returns ``dest``.

    Raises:
        FileNotFoundError: ``src`` does not exist (``dest`` is unchanged).
    """
    with atomic_file(dest) as tmp:
        shutil.copy2(src, tmp)
    return Path(dest)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 (64 characters) of a file's bytes, read in 4 MiB chunks (any size, constant memory).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 (64 characters) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_json(data: Any) -> str:
    """Hex sha256 of ``data`` as canonical JSON (keys sorted, ``str()`` for what JSON cannot write):
    the same digest for equal dicts whatever their key order — the fingerprint of a configuration."""
    return sha256_bytes(json.dumps(data, sort_keys=True, default=str).encode())


def sha256_files(paths: Iterable[Path]) -> str:
    """Hex sha256 over a set of files, in the order given: each file's name, then its sha256 digest.

    Renaming, editing, adding or removing a file changes it; the folder the files lie in does not.

    Raises:
        FileNotFoundError: one of ``paths`` does not exist.
    """
    h = hashlib.sha256()
    for f in paths:
        h.update(Path(f).name.encode())
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def fsync_file(path: Path | str) -> None:
    """Flush a written file's data to disk (``fsync``), so a crash after a rename cannot leave it empty."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path | str) -> None:
    """Flush a folder's entries to disk (``fsync`` on the folder), so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_default(x: Any) -> Any:
    """``json.dumps``'s ``default``: numpy/torch arrays → nested lists, their scalars → Python numbers,
    paths → strings.

    Raises:
        TypeError: ``x`` is none of these (names its type).
    """
    if hasattr(x, "tolist") and callable(x.tolist):  # numpy/torch arrays and their scalars
        return x.tolist()
    if hasattr(x, "item") and callable(x.item):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")
