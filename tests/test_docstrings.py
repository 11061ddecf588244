"""Every public function of the package documents itself: a docstring each, naming every exception it raises."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "stablelm2"
MODULES = sorted(str(p.relative_to(PKG).with_suffix("")) for p in PKG.rglob("*.py"))
"""Every module of the package, as ``sub/module`` paths (``__init__`` included)."""
SPINE = ("record", "files", "hardware", "facts", "ledger", "fingerprint", "shown", "grid", "chapters")


def _own_nodes(fn: ast.AST):
    """The nodes of ``fn``'s body, not those of functions or classes defined inside it."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def raised(fn: ast.FunctionDef) -> set[str]:
    """Names of the exceptions ``raise X(...)``/``raise X`` in ``fn``'s own body (a bare ``raise`` re-raises)."""
    out = set()
    for node in _own_nodes(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                out.add(exc.id)
            elif isinstance(exc, ast.Attribute):
                out.add(exc.attr)
    return out


def public_functions(module: str):
    """``(name, function node, its docstring)`` of every public function and method of ``module``
    (``__init__`` counts as public and may be documented in its class's docstring)."""
    tree = ast.parse((PKG / f"{module}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node.name, node, ast.get_docstring(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (not item.name.startswith("_") or item.name == "__init__"):
                    doc = ast.get_docstring(item)
                    if item.name == "__init__":
                        doc = "\n".join(d for d in (ast.get_docstring(node), doc) if d)
                    yield f"{node.name}.{item.name}", item, doc


def test_the_checker_sees_raises_and_skips_nested_functions():
    fn = ast.parse("def f(x):\n    def g():\n        raise KeyError\n    if x:\n        raise ValueError('bad')\n"
                   "    try:\n        pass\n    except OSError:\n        raise\n    raise mod.FooError() from None\n").body[0]
    assert raised(fn) == {"ValueError", "FooError"}


def test_every_module_is_checked_spine_included():
    assert len(MODULES) > 80 and set(SPINE) <= set(MODULES)
    assert {"training/engine", "quantization/gguf_io", "data/shards", "evaluation/bpb", "__main__"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_public_functions_have_docstrings_naming_what_they_raise(module):
    missing, unnamed = [], []
    for name, fn, doc in public_functions(module):
        if not doc:
            missing.append(name)
            continue
        absent = sorted(e for e in raised(fn) if e not in doc)
        if absent:
            unnamed.append(f"{name}: {absent}")
    assert not missing and not unnamed, (f"{module}: public functions without a docstring: {missing}; "
                                         f"docstrings that do not name what the function raises: {unnamed}")
