"""Spine benchmark: the runner's time per notebook against a bare ``papermill.execute_notebook``.

Both execute the same two-cell notebook (a parameters cell and one statement) in a fresh kernel;
the difference is our bookkeeping (parameter checks, status file, environment). Kernel start-up
dominates both, so the ratio should sit close to 1.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
import papermill as pm

from .. import runner
from . import median_time, result


def _tiny_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1 + 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def runner_overhead(repeats: int = 5) -> dict:
    """One row: median seconds per notebook of :func:`stablelm2.runner.run` against bare papermill.

    Both run a two-cell notebook at ``smoke`` in a fresh kernel, ``repeats`` times each; ratio = peer / ours
    (lower time is better), goal ≥ 0.9 (at most 10 % overhead).
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        nb_dir = tmp_p / "notebooks"
        nb_dir.mkdir()
        _tiny_notebook(nb_dir / "00_tiny.ipynb")

        def ours() -> None:
            runner.run(["00_tiny"], "smoke", nb_dir=nb_dir, root=tmp_p / "build", progress=False, force=True)

        def peer() -> None:
            pm.execute_notebook(str(nb_dir / "00_tiny.ipynb"), str(tmp_p / "out.ipynb"),
                                parameters={"preset": "smoke"}, kernel_name="python3", progress_bar=False)

        t_ours, s_ours = median_time(ours, repeats)
        t_peer, s_peer = median_time(peer, repeats)
    return result("runner_overhead_per_notebook", ours=t_ours, peer=t_peer, peer_name="bare papermill",
                  unit="s/notebook", higher_is_better=False, goal="ratio ≥ 0.9 (≤ 10 % overhead)",
                  goal_ratio=0.9, samples_ours=s_ours, samples_peer=s_peer)


BENCHMARKS = {"runner_overhead": runner_overhead}
