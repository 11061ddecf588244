"""Kernels over IPC, library noise in the chapter log, no machine paths or warnings on pages."""

import sys

import nbformat
import papermill as pm
import pytest

from stablelm2 import quiet, record, report, runner
from stablelm2.config import repo_root

from . import nbfixtures

NOISY = '''
import logging, sys, warnings
from stablelm2 import config
from ipykernel.connect import get_connection_info
warnings.warn("old api", FutureWarning)
logging.getLogger("somelib").warning("somelib says hello")
print("transport:", get_connection_info(unpack=True)["transport"])
print("repo:", config.repo_root(), "venv:", sys.prefix, "build:", config.build_root())
'''


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quiet")
    nb_dir = tmp / "notebooks"
    nb_dir.mkdir()
    nbfixtures.write(nb_dir / "00_overview.ipynb", 'preset = "cpu"\nvalue = 1', NOISY,
                     'CHAPTER = "00_overview"', nbfixtures.RECORDING, "run", "raise RuntimeError(f'bad file {sys.prefix}/x.py')")
    root = tmp / "build"
    return nb_dir, root, runner.run(None, "smoke", {"value": 2}, nb_dir=nb_dir, root=root, progress=False)


def test_kernel_runs_over_ipc_and_library_noise_goes_to_the_chapter_log(noisy):
    nb_dir, root, (rec,) = noisy
    nb = nbformat.read(str(root / rec["output"]), as_version=4)
    shown = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "transport: ipc" in shown
    assert "old api" not in shown and "somelib says hello" not in shown
    assert not any(o.get("name") == "stderr" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    log = (root / rec["log"]).read_text()
    assert "FutureWarning: old api" in log and "somelib says hello" in log
    # headed by the cell as the page shows it: 0 papermill's error note (the last cell raised), 1 title,
    # 2 parameters, 3 papermill's injected parameters, 4 this one
    assert "--- cell 4 (In [3]) import logging, sys, warnings" in log
    assert quiet.TCP_WARNING not in log


def test_no_machine_paths_or_warnings_on_pages_or_records(noisy):
    nb_dir, root, (rec,) = noisy
    assert rec["status"] == "failed"
    assert rec["error"] in ("RuntimeError: bad file .venv/x.py", "RuntimeError: bad file <venv>/x.py")
    index = report.build("smoke", root=root, out_dir=root / "report")
    page = (index.parent / "00_overview.html").read_text()
    assert quiet.page_problems(page, "00_overview.html") == []
    assert quiet.page_problems(index.read_text(), "index.html") == []
    assert "repo: ." in page and "build: $STABLELM2_BUILD_DIR" in page
    assert "metrics → <code>$STABLELM2_BUILD_DIR/smoke/00_overview/metrics.json</code>" in page  # the run header
    assert 'href="logs/00_overview.txt"' in page and (index.parent / "logs" / "00_overview.txt").is_file()
    log_copy = (index.parent / "logs" / "00_overview.txt").read_text()
    assert "old api" in log_copy and not [p for p in quiet.page_problems(log_copy) if "absolute path" in p]
    assert "executed at" in page


def test_page_problems_finds_paths_and_warnings():
    bad = f"{repo_root()}/src/x.py:3: UserWarning: careful\n[IPKernelApp] WARNING | {quiet.TCP_WARNING}"
    found = quiet.page_problems(bad, "p")
    assert any("absolute path" in f for f in found) and any("Python warning" in f for f in found)
    assert any("TCP" in f for f in found)
    assert quiet.scrub(f"{repo_root()}/src/x.py and {sys.prefix}/lib") in ("src/x.py and .venv/lib",
                                                                            "src/x.py and <venv>/lib")
    assert quiet.page_problems("UserWarning is a class; see build/cpu/x.log") == []


def test_plain_papermill_still_works_and_is_what_prints_the_tcp_warning(tmp_path, capfd):
    nb = nbfixtures.write(tmp_path / "00_plain.ipynb", 'preset = "cpu"', "x = 41 + 1\nprint(x)")
    out = pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"preset": "smoke"},
                              progress_bar=False)
    assert out.cells[-1].outputs[0]["text"] == "42\n"
    assert quiet.TCP_WARNING in capfd.readouterr().err  # ours above never does (IPC, kernel output to the log)


def test_record_header_shows_relative_paths_and_the_lock(build_dir):
    from stablelm2 import config

    run = record.start(config.load("smoke", **{"carbon.meter": False}), "00")
    header = run.header_markdown()
    assert "metrics → `$STABLELM2_BUILD_DIR/smoke/00_overview/metrics.json`" in header
    assert str(build_dir) not in header and ("lock `requirements" in header or "no lock" in header)
    assert set(run.data["provenance"]["lock"]) >= {"file", "sha256", "matches_repository"}


def test_progress_bars_stay_on_the_page_and_library_noise_moves(tmp_path):
    import io

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("train()")
    cell.execution_count = 4
    texts = ("\rsteps:   0%|          | 0/40", "x.py:3: UserWarning: careful\n  warn()\n",
             "\rsteps: 100%|##########| 40/40 [00:02<00:00, 19.9it/s]\n")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=t) for t in texts]
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="loss 1.2\n"))
    cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text="\n\x1b[A"))  # nested bars' moves
    nncf = "INFO:nncf:Statistics of the bitwidth distribution:\n┍━━━┯━━━┑\n│ mode │ % │\n"
    deepspeed = "[2026-11-30 10:07:09,595] [WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator\n"
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=nncf))
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=deepspeed))
    rich = "lib/rich/live.py:260: UserWarning: install \"ipywidgets\" for Jupyter support\n"
    cell.outputs.append(nbformat.v4.new_output("display_data", data={"text/plain": rich, "text/html": f"<pre>{rich}</pre>"}))
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="[llama.cpp] Q4_0: 3 of 32 tensors\n"))
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    log = io.StringIO()
    assert quiet.move_noise(nb, log) == 4
    assert log.getvalue() == ("--- cell 1 (In [4]) train()\nx.py:3: UserWarning: careful\n  warn()\n"
                              + nncf + deepspeed + rich)
    kept = [o["text"] for o in nb.cells[1].outputs]
    assert kept == ["\rsteps:   0%|          | 0/40", "\rsteps: 100%|##########| 40/40 [00:02<00:00, 19.9it/s]\n",
                    "loss 1.2\n", "\n\x1b[A", "[llama.cpp] Q4_0: 3 of 32 tensors\n"]
