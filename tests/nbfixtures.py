"""Tiny notebooks for the runner and report tests."""

from __future__ import annotations

from pathlib import Path

import nbformat


def write(path: Path, params: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


RECORDING = '''
from stablelm2 import config, record
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
cfg = config.load(preset, **{"carbon.meter": False})
run = record.start(cfg, CHAPTER)
run.log(answer=value * 2)
run.ledger.derive(CHAPTER + ".twice", "value doubled", paper=2 * value, ours=value * 2)
fig, ax = plt.subplots(); ax.plot([1, 2, 3]); ax.set_title("a line")
run.savefig(fig, "fig9_line", "a test figure")
plt.show()
run.finish()
'''


def chapters(nb_dir: Path) -> Path:
    """00_overview records metrics; 01_data_mix raises; 02_tokenizer records too (the registry's names:
    ``record.start`` refuses a chapter that ``stablelm2.chapters`` does not know)."""
    nb_dir.mkdir(parents=True, exist_ok=True)
    write(nb_dir / "00_overview.ipynb", 'preset = "cpu"\nvalue = 1', 'CHAPTER = "00_overview"', RECORDING)
    write(nb_dir / "01_data_mix.ipynb", 'preset = "cpu"', 'raise ValueError("planted failure")')
    write(nb_dir / "02_tokenizer.ipynb", 'preset = "cpu"\nvalue = 1', 'CHAPTER = "02_tokenizer"', RECORDING)
    return nb_dir
