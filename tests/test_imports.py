"""Every module of the library imports: a removed or renamed helper fails here, not in a chapter."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import stablelm2

MODULES = sorted(m.name for m in pkgutil.walk_packages(stablelm2.__path__, prefix="stablelm2."))


def test_the_library_has_its_chapters():
    assert {"stablelm2.tokenizer_study", "stablelm2.training.engine", "stablelm2.evaluation.bpb"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)
