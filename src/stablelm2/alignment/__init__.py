"""Chapter 06 · Fine-tuning and alignment: SFT → DPO → self-knowledge, over TRL.

The paper turns the base model into ``stablelm-2-zephyr-1_6b`` in three stages, each a thin layer
over the library made for it (TRL's ``SFTTrainer`` and ``DPOTrainer``), with the recipes kept as data:

* :mod:`.sources` — the seven SFT and two preference sources, one loader, one chat schema, the
  paper's filters (> 8 turns; tied ranking, duplicated content, chosen < 8/10) counted per rule;
* :mod:`.chat` — the released zephyr chat format's checks and the self-knowledge negative token (``<|extra0|>``);
* :mod:`.recipes` — the three recipes (paper values from the facts, lost values as documented
  ``align`` parameters), the batch arithmetic, and the paper-scale launch files;
* :mod:`.sft`, :mod:`.dpo`, :mod:`.self_knowledge` — the stages;
* :mod:`.stages` — :func:`aligned` (what later chapters use), :func:`run_all`, the chapter's claims;
* :mod:`.plots` — the chapter's figures; :mod:`.launch` — the command line ``launch.sh`` calls.

>>> from stablelm2 import config                               # doctest: +SKIP
>>> from stablelm2.alignment import aligned                   # doctest: +SKIP
>>> model_dir = aligned(config.load("cpu"), "self_knowledge")  # doctest: +SKIP
"""

from __future__ import annotations

from .recipes import STAGES, AlignmentError
from .stages import aligned, ensure, record_claims, run_all

__all__ = ["STAGES", "AlignmentError", "aligned", "ensure", "record_claims", "run_all"]
