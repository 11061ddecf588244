"""ci/gpu_canary.py: refuses on a machine without a CUDA GPU, and writes nothing there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is about machines without a CUDA GPU")
def test_the_canary_refuses_without_a_gpu(tmp_path):
    out = tmp_path / "canary.json"
    got = subprocess.run([sys.executable, str(ROOT / "ci" / "gpu_canary.py"), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 2 and "refused — no CUDA GPU" in got.stderr
    assert not out.exists()
