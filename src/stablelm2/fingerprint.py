"""What determines a chapter's result, as one key: the runner reruns a chapter only when it changes.

A chapter's key is the sha256 of (see :func:`chapter_key`):

- the notebook file (``notebooks/NN_name.ipynb``, stored without outputs);
- the preset's resolved configuration with the notebooks' ``overrides`` applied
  (``config.load(preset, overrides).to_dict()``) and the parameters passed;
- the source of every ``stablelm2`` module the notebook imports, followed transitively through the
  modules' own imports (``import``/``from … import`` anywhere in a module, relative ones included),
  plus every package's ``__init__.py`` on the way and the data files lying beside an imported
  module or in data folders under it (``facts.yaml``, ``data/sample/``, ``alignment/samples/``; not
  the report's ``templates/``);
- the keys of the upstream chapters whose artefacts it reads, declared in the notebook's metadata as
  ``{"stablelm2": {"upstream": ["05_pretraining"]}}`` (``"*"``: every earlier chapter);
- the lock file (``requirements.lock``), which pins every package of the environment.

>>> from stablelm2 import fingerprint
>>> sorted(fingerprint.notebook_modules(Path("notebooks/04_lr_schedule.ipynb")))  # doctest: +SKIP
['stablelm2', 'stablelm2.config', 'stablelm2.facts', 'stablelm2.ledger', 'stablelm2.record', ...]

Static analysis sees imports written in code; a module reached only through ``importlib`` with a
computed name is not seen (none in this package).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .files import sha256_bytes, sha256_json

PACKAGE = "stablelm2"
_DATA_SKIP = {".py", ".pyc", ".pyo"}
_NOT_CHAPTER_DATA = {"templates", "__pycache__"}  # the report's page templates are read by report.py only


class FingerprintError(ValueError):
    """A notebook whose imports or upstream declaration cannot be read (names the notebook and the fix)."""


def package_dir() -> Path:
    """The installed ``stablelm2`` package folder (absolute; where module sources are read from)."""
    return Path(__file__).resolve().parent


def _module_file(name: str, pkg_dir: Path) -> Path | None:
    """``stablelm2.data.sample`` → ``…/stablelm2/data/sample.py`` (or its package's ``__init__.py``)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = pkg_dir.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(tree: ast.AST, current: str | None, is_package: bool, pkg_dir: Path) -> set[str]:
    """``stablelm2`` modules named by the import statements of ``tree`` (module ``current``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                anchor = current.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            for alias in node.names:  # `from stablelm2 import record`: record is a module
                if _module_file(f"{base}.{alias.name}", pkg_dir) is not None:
                    found.add(f"{base}.{alias.name}")
    return found


def _with_parents(names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def module_closure(roots: Iterable[str], pkg_dir: Path | None = None) -> set[str]:
    """Every ``stablelm2`` module reachable from ``roots`` through imports (parents included)."""
    pkg_dir = pkg_dir or package_dir()
    todo = sorted(_with_parents(roots))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, pkg_dir)
        if path is None:
            continue  # an attribute imported from a module (`from stablelm2.data import sample_fn`)
        seen.add(name)
        st = path.stat()
        found = _file_imports(str(path), st.st_mtime_ns, st.st_size, name, str(pkg_dir))
        todo.extend(sorted(_with_parents(found) - seen))
    return seen


@functools.lru_cache(maxsize=1024)
def _file_imports(path: str, mtime_ns: int, size: int, name: str, pkg_dir: str) -> frozenset[str]:
    """The imports of one module file (cached while the file is unchanged)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    return frozenset(_imports(tree, name, Path(path).name == "__init__.py", Path(pkg_dir)))


def _data_files(folder: Path) -> list[Path]:
    """Data files in ``folder`` and its data sub-folders (not in sub-packages, not templates)."""
    out = []
    for p in folder.iterdir():
        if p.is_file() and p.suffix not in _DATA_SKIP:
            out.append(p)
        elif p.is_dir() and p.name not in _NOT_CHAPTER_DATA and not (p / "__init__.py").is_file():
            out += [f for f in p.rglob("*") if f.is_file() and f.suffix not in _DATA_SKIP
                    and "__pycache__" not in f.parts]
    return out


def _read_notebook(notebook: Path) -> Any:
    # nbformat imported here: its validator pulls in jsonschema's format checkers (rfc3987_syntax builds a
    # grammar at import, 1.8 s), which every training and ablation process would pay through the checkpoint
    # module's use of this one, though only the runner reads notebooks
    import nbformat

    return nbformat.read(str(notebook), as_version=4)


def notebook_code(notebook: Path) -> str:
    """The notebook's code cells as Python source for import analysis.

    A cell magic's first line (``%%time``, ``%%capture``) is dropped so the code under it is seen;
    line magics and shell lines (``%matplotlib inline``, ``!ls``) become ``pass``.
    """
    nb = _read_notebook(notebook)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        if lines and lines[0].lstrip().startswith("%%"):
            lines = lines[1:]
        cells.append("\n".join(
            line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
            for line in lines))
    return "\n".join(cells)


def notebook_modules(notebook: Path, pkg_dir: Path | None = None) -> set[str]:
    """The dotted names of the ``stablelm2`` modules a notebook imports, transitively (:func:`module_closure`).

    Raises:
        FingerprintError: a code cell does not parse (names the notebook and the line).
    """
    pkg_dir = pkg_dir or package_dir()
    try:
        tree = ast.parse(notebook_code(notebook), filename=str(notebook))
    except SyntaxError as exc:
        raise FingerprintError(f"{notebook.name}: a code cell does not parse ({exc.msg}, line {exc.lineno}); "
                               "fix the cell so the runner can see what it imports") from exc
    return module_closure(_imports(tree, None, False, pkg_dir), pkg_dir)


def source_digests(modules: Iterable[str], pkg_dir: Path | None = None) -> dict[str, str]:
    """``{path relative to the package parent (``stablelm2/record.py``): hex sha256 of its bytes}`` of the
    modules and the data files beside them, sorted by path."""
    pkg_dir = pkg_dir or package_dir()
    files: set[Path] = set()
    for name in modules:
        path = _module_file(name, pkg_dir)
        if path is None:
            continue
        files.add(path)
        files.update(_data_files(path.parent))
    return {str(p.relative_to(pkg_dir.parent)): sha256_bytes(p.read_bytes()) for p in sorted(files)}


def upstream(notebook: Path, earlier: list[str]) -> list[str]:
    """The chapters whose artefacts the notebook reads (its metadata ``stablelm2.upstream``; ``"*"``: all
    of ``earlier``), in the declared order.

    Raises:
        FingerprintError: the declaration is not a list of names or ``"*"``, or names a chapter that is
            not in ``earlier``.
    """
    nb = _read_notebook(notebook)
    declared = nb.metadata.get("stablelm2", {}).get("upstream", [])
    if declared == "*":
        return list(earlier)
    if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
        raise FingerprintError(f"{notebook.name}: metadata stablelm2.upstream must be a list of chapter names "
                               f"or \"*\", not {declared!r}")
    unknown = [d for d in declared if d not in earlier]
    if unknown:
        raise FingerprintError(f"{notebook.name}: upstream chapter(s) {', '.join(unknown)} are not earlier "
                               f"chapters; earlier ones are: {', '.join(earlier) or '(none)'}")
    return declared


def chapter_key(notebook: Path, resolved_config: dict[str, Any], parameters: dict[str, Any],
                upstream_keys: dict[str, str], lock: Path | None, pkg_dir: Path | None = None
                ) -> tuple[str, dict[str, Any]]:
    """``(key, parts)``: the hex sha256 key of a chapter and the parts it was made from (for the record):
    the notebook's bytes, the resolved config (canonical JSON), the parameters, the module sources
    (:func:`source_digests`), the upstream chapters' keys and the lock file."""
    parts = {
        "notebook": sha256_bytes(notebook.read_bytes()),
        "config": sha256_json(resolved_config),
        "parameters": parameters,
        "sources": source_digests(notebook_modules(notebook, pkg_dir), pkg_dir),
        "upstream": dict(sorted(upstream_keys.items())),
        "lock": sha256_bytes(lock.read_bytes()) if lock is not None and lock.is_file() else None,
    }
    key = sha256_json(parts)
    return key, parts


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between two ``parts`` records, in words (``["source stablelm2/schedule.py"]``)."""
    if not old:
        return ["never run"]
    out = []
    for name in ("notebook", "config", "parameters", "lock"):
        if old.get(name) != new.get(name):
            out.append(name)
    olds, news = old.get("sources", {}), new.get("sources", {})
    out += [f"source {p}" for p in sorted(set(olds) | set(news)) if olds.get(p) != news.get(p)]
    oldu, newu = old.get("upstream", {}), new.get("upstream", {})
    out += [f"upstream {c}" for c in sorted(set(oldu) | set(newu)) if oldu.get(c) != newu.get(c)]
    return out
