"""The one registry of chapters: number, name, notebook, library module, upstream chapters, title.

The runner (which notebooks exist, in what order, which chapters' artefacts each reads), the
report (the order of its chapter table), :meth:`stablelm2.config.Config.chapter_dir` and
:func:`stablelm2.record.start` (a chapter's folder and identity) and the chapter modules' ``CHAPTER``
constants all read it; ``tests/test_chapters.py`` checks that the notebooks on disk, their titles
and their ``stablelm2.upstream`` metadata agree with it.

>>> from stablelm2 import chapters
>>> chapters.get("05").name, chapters.get("pretraining").notebook, chapters.get("06_alignment").upstream
('05_pretraining', '05_pretraining.ipynb', ('05_pretraining',))

This module imports nothing of the package, so every module (the config included) may use it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


class ChapterError(ValueError):
    """An unknown chapter; the message names the known ones."""


@dataclass(frozen=True)
class Chapter:
    number: str
    """Two digits, ``"05"``: the order chapters run in."""
    slug: str
    """The short name after the number, ``"pretraining"``."""
    module: str
    """The library module (or package) that implements the chapter, ``"stablelm2.training"``."""
    title: str
    """The notebook's heading without its number."""
    upstream: tuple[str, ...] = ()
    """Names of the earlier chapters whose artefacts this one reads (its runner key includes theirs)."""

    @property
    def name(self) -> str:
        """``"05_pretraining"``: the notebook's stem, the chapter's build folder and its record's name."""
        return f"{self.number}_{self.slug}"

    @property
    def notebook(self) -> str:
        """``"05_pretraining.ipynb"`` under ``notebooks/``."""
        return f"{self.name}.ipynb"


_EARLY = ("00_overview", "01_data_mix", "02_tokenizer", "03_model", "04_lr_schedule")
CHAPTERS: tuple[Chapter, ...] = (
    Chapter("00", "overview", "stablelm2.overview", "Stable LM 2 1.6B at a glance"),
    Chapter("01", "data_mix", "stablelm2.data", "The data mix"),
    Chapter("02", "tokenizer", "stablelm2.tokenizer_study", "The tokenizer: Arcade100k"),
    Chapter("03", "model", "stablelm2.model_study",
            "The model: architecture, size, FLOPs, memory and utilisation"),
    Chapter("04", "lr_schedule", "stablelm2.schedule",
            "The learning-rate schedule: Eq. 1, its baselines, and a released checkpoint"),
    Chapter("05", "pretraining", "stablelm2.training",
            "Pre-training: the engine, the A100-cluster launch, and the appendix ablations"),
    Chapter("06", "alignment", "stablelm2.alignment", "Fine-tuning and alignment: SFT → DPO → self-knowledge",
            upstream=("05_pretraining",)),
    Chapter("07", "evaluation", "stablelm2.evaluation",
            "Evaluation: the harness, the published results, and a needle in a haystack",
            upstream=("05_pretraining", "06_alignment")),
    Chapter("08", "quantization", "stablelm2.quantization",
            "Quantization and inference: the released formats, their quality and their speed",
            upstream=("05_pretraining", "06_alignment")),
    Chapter("09", "carbon", "stablelm2.carbon", "Carbon footprint and cost",
            upstream=(*_EARLY, "05_pretraining", "06_alignment", "07_evaluation", "08_quantization")),
)
"""Every chapter, in running order (chapter 09 reads every earlier chapter's record)."""


def names() -> list[str]:
    """``["00_overview", …, "09_carbon"]`` in running order."""
    return [c.name for c in CHAPTERS]


def get(ref: str) -> Chapter:
    """The chapter named by its number (``"05"``), slug (``"pretraining"``) or name (``"05_pretraining"``).

    Raises :class:`ChapterError` naming the known chapters (and the closest one) otherwise.
    """
    for c in CHAPTERS:
        if ref in (c.number, c.slug, c.name):
            return c
    hint = difflib.get_close_matches(str(ref), names() + [c.slug for c in CHAPTERS], n=1)
    raise ChapterError(f"unknown chapter {ref!r}; chapters are: {', '.join(names())}"
                       + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def _check() -> None:
    seen = [c.name for c in CHAPTERS]
    if seen != sorted(seen) or len({c.number for c in CHAPTERS}) != len(CHAPTERS):
        raise RuntimeError("chapters.CHAPTERS must be in order with distinct numbers")
    for i, c in enumerate(CHAPTERS):
        if not set(c.upstream) <= set(seen[:i]):
            raise RuntimeError(f"chapter {c.name}: upstream {c.upstream} must name earlier chapters")


_check()
