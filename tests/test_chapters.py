"""The chapter registry agrees with the notebooks on disk: names, titles, modules and upstream metadata."""

from __future__ import annotations

import importlib.util

import nbformat
import pytest

from stablelm2 import chapters, config, runner
from stablelm2.config import ConfigError


def test_registry_names_every_notebook_in_order():
    on_disk = sorted(p.stem for p in runner.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    assert chapters.names() == on_disk == runner.chapters()
    assert [c.number for c in chapters.CHAPTERS] == [f"{i:02d}" for i in range(10)]


@pytest.mark.parametrize("chapter", chapters.CHAPTERS, ids=lambda c: c.name)
def test_notebook_title_module_and_upstream_agree_with_the_registry(chapter):
    nb = nbformat.read(str(runner.notebooks_dir() / chapter.notebook), as_version=4)
    heading = next(line for line in nb.cells[0].source.splitlines() if line.startswith("# "))
    assert heading == f"# {chapter.number} · {chapter.title}"
    assert importlib.util.find_spec(chapter.module) is not None
    declared = (nb.metadata.get("stablelm2") or {}).get("upstream", [])
    earlier = chapters.names()[: chapters.names().index(chapter.name)]
    assert list(chapter.upstream) == (earlier if declared == "*" else declared)
    assert runner.upstream(chapter.name, runner.notebooks_dir(), earlier) == list(chapter.upstream)


def test_a_chapter_is_found_by_number_slug_or_name_and_an_unknown_one_is_refused(build_dir):
    assert chapters.get("05") == chapters.get("pretraining") == chapters.get("05_pretraining")
    assert chapters.get("08").notebook == "08_quantization.ipynb"
    with pytest.raises(chapters.ChapterError, match=r"unknown chapter '05_pretrain'; chapters are: 00_overview, .*"
                                                     r"did you mean '05_pretraining'"):
        chapters.get("05_pretrain")
    cfg = config.load("smoke")
    assert cfg.chapter_dir("05") == cfg.chapter_dir("05_pretraining") == build_dir / "smoke" / "05_pretraining"
    with pytest.raises(ConfigError, match="unknown chapter '5_pretraining'; chapters are: 00_overview"):
        cfg.chapter_dir("5_pretraining")
    assert not (build_dir / "smoke" / "5_pretraining").exists()


def test_chapter_modules_take_their_name_from_the_registry():
    from stablelm2.alignment import stages
    from stablelm2.quantization import study

    assert stages.CHAPTER == "06_alignment" and study.CHAPTER == "08_quantization"
