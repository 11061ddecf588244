import json
import os

import nbformat
import pytest

from stablelm2 import record, runner
from stablelm2.__main__ import main
from stablelm2.config import ConfigError
from stablelm2.runner import RunnerError

from . import nbfixtures


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run the three tiny chapters once (a failing one in the middle) and share the result."""
    tmp = tmp_path_factory.mktemp("runner")
    nb_dir = nbfixtures.chapters(tmp / "notebooks")
    root = tmp / "build"
    results = runner.run(None, "smoke", {"value": 21}, nb_dir=nb_dir, root=root, progress=False)
    return nb_dir, root, results


def test_parameters_are_injected(executed):
    nb_dir, root, results = executed
    assert [r["chapter"] for r in results] == ["00_overview", "01_data_mix", "02_tokenizer"]
    assert record.read("smoke", "00_overview", root=root)["metrics"] == {"answer": 42}
    assert results[0]["parameters"] == {"preset": "smoke", "value": 21}


def test_failing_chapter_is_reported_and_the_others_are_kept(executed):
    nb_dir, root, results = executed
    status = runner.read_status("smoke", root)
    assert status["01_data_mix"]["status"] == "failed"
    assert "ValueError: planted failure" in status["01_data_mix"]["error"]
    assert status["00_overview"]["status"] == status["02_tokenizer"]["status"] == "finished"
    assert record.read("smoke", "02_tokenizer", root=root)["status"] == "finished"
    assert (root / "smoke" / "notebooks" / "01_data_mix.ipynb").is_file()


def test_rerunning_one_chapter_keeps_the_others_status_and_shows_progress(executed, tmp_path, capfd):
    nb_dir, root, _ = executed
    copy = tmp_path / "b"
    import shutil

    shutil.copytree(root, copy)
    runner.run(["02"], "smoke", nb_dir=nb_dir, root=copy, progress=True)
    status = runner.read_status("smoke", copy)
    assert set(status) == {"00_overview", "01_data_mix", "02_tokenizer"} and status["01_data_mix"]["status"] == "failed"
    said = capfd.readouterr()
    assert "chapters (smoke)" in said.err and "Executing" in said.err and "cell/s" in said.err  # both bars
    assert "[stablelm2] 02_tokenizer finished in" in said.out + said.err


def test_bad_requests_fail_before_anything_runs(tmp_path):
    nb_dir = nbfixtures.chapters(tmp_path / "notebooks")
    root = tmp_path / "build"
    with pytest.raises(RunnerError, match="unknown chapter '07'; chapters are: 00_overview, 01_data_mix, 02_tokenizer"):
        runner.run(["00", "07"], "smoke", nb_dir=nb_dir, root=root, progress=False)
    with pytest.raises(RunnerError, match="declares parameter\\(s\\) lr"):
        runner.run(["00"], "smoke", {"lr": 1}, nb_dir=nb_dir, root=root, progress=False)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        runner.run(["00"], "huge", nb_dir=nb_dir, root=root, progress=False)
    assert not root.exists()


def test_cli_exit_codes(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("STABLELM2_BUILD_DIR", str(tmp_path / "build"))
    assert main(["run", "nope", "--preset", "smoke"]) == 2
    assert "unknown chapter 'nope'" in capsys.readouterr().err
    assert main(["run", "00", "--preset", "smoke", "-p", "noequals"]) == 2
    assert main(["report", "--preset", "smoke"]) == 2
    assert "run them first" in capsys.readouterr().err


def test_chapter_list_of_the_repository_is_ordered():
    names = runner.chapters()
    assert names[0] == "00_overview" and names == sorted(names)
    assert runner.resolve(["overview"]) == ["00_overview"]
    json.dumps(names)


# ------------------------------------------------------------------ -p parsed as papermill parses it


PAPERMILL_INPUTS = ["010", "7", "-3", " 5 ", "1_000", "0x10", "1e-3", "1.50", "nan", "-inf", "True", "true",
                    "False", "None", "none", "[1, 2]", "{'a': 1}", "'x'", "", "seed", "2026-11-30", "1/2", "٣"]


def test_p_values_are_read_as_papermill_reads_them():
    from papermill.cli import _resolve_type  # papermill's own reading of `-p NAME VALUE`

    for raw in PAPERMILL_INPUTS:
        ours, theirs = runner.parse_value(raw), _resolve_type(raw)
        assert type(ours) is type(theirs), raw
        assert ours == theirs or (ours != ours and theirs != theirs), raw  # nan == nan
    assert runner.parse_parameters(["seed=010", "what=a=b", " n =1e3"]) == {"seed": 10, "what": "a=b", "n": 1000.0}


def test_p_refuses_runner_owned_and_malformed_parameters(tmp_path, capsys, monkeypatch):
    with pytest.raises(RunnerError, match="use --preset smoke instead of -p preset=smoke"):
        runner.parse_parameters(["preset=smoke"])
    with pytest.raises(RunnerError, match="not of the form name=value"):
        runner.parse_parameters(["seed"])
    with pytest.raises(RunnerError, match="not a Python identifier"):
        runner.parse_parameters(["1seed=3"])
    nb_dir = nbfixtures.chapters(tmp_path / "notebooks")
    with pytest.raises(RunnerError, match="`preset` is set by the runner"):
        runner.run(["00"], "smoke", {"preset": "cpu"}, nb_dir=nb_dir, root=tmp_path / "build", progress=False)
    monkeypatch.setenv("STABLELM2_BUILD_DIR", str(tmp_path / "build"))
    assert main(["run", "00", "--preset", "smoke", "-p", "preset=cpu"]) == 2
    assert "use --preset cpu" in capsys.readouterr().err
    assert not (tmp_path / "build").exists()


# ------------------------------------------------------------------ timeouts and dead kernels


def test_timeout_and_dead_kernel_are_recorded_with_their_cell_and_the_others_kept(tmp_path):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nbfixtures.write(nb_dir / "00_hangs.ipynb", 'preset = "cpu"', "x = 1", "import time\ntime.sleep(120)", "y = 2")
    nbfixtures.write(nb_dir / "01_dies.ipynb", 'preset = "cpu"', "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    nbfixtures.write(nb_dir / "02_fine.ipynb", 'preset = "cpu"', "z = 3")
    root = tmp_path / "build"
    results = runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False, timeout_s=3)
    hang, die, fine = results
    assert hang["status"] == "failed" and hang["error"].startswith("CellTimeoutError") and hang["cell_timeout_s"] == 3
    assert die["status"] == "failed" and die["error"].startswith("DeadKernelError")
    assert fine["status"] == "finished"
    for rec, source in ((hang, "import time"), (die, "import os, signal")):
        nb = nbformat.read(str(root / rec["output"]), as_version=4)
        assert rec["cell_source"] == source and nb.cells[rec["cell"]].source.startswith(source)
        assert "stopped in cell" in nb.cells[0].source and rec["error"].split(":")[0] in nb.cells[0].source
    status = runner.read_status("smoke", root)
    assert status["02_fine"]["status"] == "finished" and status["00_hangs"]["cell"] == hang["cell"]
    with pytest.raises(RunnerError, match="positive number of seconds"):
        runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False, timeout_s=0)


def test_every_preset_has_a_cell_timeout():
    from stablelm2.config import PRESETS

    assert set(runner.CELL_TIMEOUT_S) == set(PRESETS) and all(v > 0 for v in runner.CELL_TIMEOUT_S.values())


# ------------------------------------------------------------------ any config field from the command line (issue 18 item 7)


def test_dotted_parameters_go_into_the_overrides_mapping():
    assert runner.parse_parameters(["seed=7", "train.steps=5", "schedule.kind=cosine", "carbon.meter=False"]) == {
        "seed": 7, "overrides": {"train.steps": 5, "schedule.kind": "cosine", "carbon.meter": False}}
    with pytest.raises(RunnerError, match="set config fields one by one as -p section.field=value"):
        runner.parse_parameters(["overrides={}"])
    with pytest.raises(RunnerError, match="not a Python identifier \\(nor a config field section.field"):
        runner.parse_parameters(["train.steps.x=5"])


def _with_overrides(nb_dir):
    nb_dir.mkdir(parents=True)
    nbfixtures.write(nb_dir / "00_overview.ipynb", 'preset = "cpu"\noverrides = {}',
                     "from stablelm2 import config\ncfg = config.load(preset, overrides=overrides)\ncfg.train.steps")
    nbfixtures.write(nb_dir / "01_data_mix.ipynb", 'preset = "cpu"', "x = 1")
    return nb_dir


def test_overrides_are_checked_before_anything_runs_and_change_the_key(tmp_path):
    nb_dir = _with_overrides(tmp_path / "notebooks")
    root = tmp_path / "build"
    with pytest.raises(ConfigError, match="section 'train' has no field 'stepz'"):
        runner.run(["00"], "smoke", {"overrides": {"train.stepz": 5}}, nb_dir=nb_dir, root=root, progress=False)
    with pytest.raises(ConfigError, match="train.steps = 'x' has the wrong type"):
        runner.run(["00"], "smoke", {"overrides": {"train.steps": "x"}}, nb_dir=nb_dir, root=root, progress=False)
    with pytest.raises(RunnerError, match="01_data_mix declare no `overrides` parameter"):
        runner.run(None, "smoke", {"overrides": {"train.steps": 5}}, nb_dir=nb_dir, root=root, progress=False)
    assert not root.exists()
    plain = runner.plan_keys("smoke", {}, nb_dir)["00_overview"]
    five = runner.plan_keys("smoke", {"overrides": {"train.steps": 5}}, nb_dir)["00_overview"]
    assert plain[0] != five[0] and plain[1]["config"] != five[1]["config"]
    assert five == runner.plan_keys("smoke", {"overrides": {"train.steps": 5}}, nb_dir)["00_overview"]
    assert main(["run", "00", "--preset", "smoke", "-p", "train.steps=-2"]) == 2  # the CLI exits before any work


def test_every_repository_notebook_declares_overrides():
    for chapter in runner.chapters():
        assert runner.parameters_of(runner.notebooks_dir() / f"{chapter}.ipynb")["overrides"]["default"] == "{}"


@pytest.mark.notebook
def test_a_config_field_set_on_the_command_line_reaches_the_notebook(build_dir):
    results = runner.run(["04"], "smoke", runner.parse_parameters(["schedule.peak_lr=0.002", "train.steps=10"]),
                         root=build_dir, progress=False)
    assert [(r["chapter"], r["status"]) for r in results] == [("04_lr_schedule", "finished")], results[0]["error"]
    cfg = record.read("smoke", "04_lr_schedule", root=build_dir)["config"]
    assert (cfg["schedule"]["peak_lr"], cfg["train"]["steps"]) == (0.002, 10)
    assert results[0]["parameters"]["overrides"] == {"schedule.peak_lr": 0.002, "train.steps": 10}
    keys = runner.plan_keys("smoke", {"overrides": {"schedule.peak_lr": 0.002, "train.steps": 11}},
                            runner.notebooks_dir())
    assert "config" in runner.fingerprint.changed(results[0]["key_parts"], keys["04_lr_schedule"][1])


def test_the_kernel_runs_with_the_build_root_and_glibc_keeping_freed_memory(tmp_path, monkeypatch):
    """The kernel inherits STABLELM2_BUILD_DIR and the malloc settings (a setting the caller made wins); the
    runner's own environment is as it was afterwards."""
    from stablelm2 import hardware

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    seen = tmp_path / "env.json"
    names = ["STABLELM2_BUILD_DIR", *hardware.REUSE_FREED_MEMORY_ENV]
    nbfixtures.write(nb_dir / "00_env.ipynb", 'preset = "cpu"',
                     f"import json, os\njson.dump({{k: os.environ.get(k) for k in {names!r}}}, open({str(seen)!r}, 'w'))")
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")  # the caller's choice is kept
    before = dict(os.environ)
    [rec] = runner.run(None, "smoke", nb_dir=nb_dir, root=tmp_path / "build", progress=False)
    assert rec["status"] == "finished"
    assert json.loads(seen.read_text()) == {"STABLELM2_BUILD_DIR": str(tmp_path / "build"), "MALLOC_MMAP_MAX_": "0",
                                            "MALLOC_TRIM_THRESHOLD_": "4096"}
    assert dict(os.environ) == before
