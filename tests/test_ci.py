import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_notebooks", ROOT / "ci" / "check_notebooks.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_repository_notebooks_are_clean():
    assert check.problems() == []


def test_check_flags_outputs_counts_and_missing_parameters(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, str(tmp_path / "01_bad.ipynb"))
    found = "\n".join(check.problems(tmp_path))
    assert "exactly one cell tagged 'parameters'" in found
    assert "stored outputs" in found and "execution count" in found
