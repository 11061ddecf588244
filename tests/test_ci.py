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


def test_check_flags_a_parameter_papermill_cannot_parse(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "cpu"\nperiod = None  # 1.0 keeps it, 2.0 = half\nok = 3  # fine')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["kernelspec"]["language"] = "python"
    nbformat.write(nb, str(tmp_path / "02_params.ipynb"))
    assert check.papermill_parameters(tmp_path / "02_params.ipynb") == ["preset", "ok"]
    assert check.problems(tmp_path) == [
        f"{tmp_path.name}/02_params.ipynb: papermill cannot parse the parameter `period` (it could not be set with -p); "
        "keep each parameter on one line as `name = value  # help` without '=' in the help"]
