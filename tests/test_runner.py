import json

import pytest

from stablelm2 import record, runner
from stablelm2.__main__ import main
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
    assert [r["chapter"] for r in results] == ["00_ok", "01_fail", "02_ok"]
    assert record.read("smoke", "00_ok", root=root)["metrics"] == {"answer": 42}
    assert results[0]["parameters"] == {"preset": "smoke", "value": 21}


def test_failing_chapter_is_reported_and_the_others_are_kept(executed):
    nb_dir, root, results = executed
    status = runner.read_status("smoke", root)
    assert status["01_fail"]["status"] == "failed"
    assert "ValueError: planted failure" in status["01_fail"]["error"]
    assert status["00_ok"]["status"] == status["02_ok"]["status"] == "finished"
    assert record.read("smoke", "02_ok", root=root)["status"] == "finished"
    assert (root / "smoke" / "notebooks" / "01_fail.ipynb").is_file()


def test_rerunning_one_chapter_keeps_the_others_status_and_shows_progress(executed, tmp_path, capfd):
    nb_dir, root, _ = executed
    copy = tmp_path / "b"
    import shutil

    shutil.copytree(root, copy)
    runner.run(["02"], "smoke", nb_dir=nb_dir, root=copy, progress=True)
    status = runner.read_status("smoke", copy)
    assert set(status) == {"00_ok", "01_fail", "02_ok"} and status["01_fail"]["status"] == "failed"
    said = capfd.readouterr()
    assert "chapters (smoke)" in said.err and "Executing" in said.err and "cell/s" in said.err  # both bars
    assert "[stablelm2] 02_ok finished in" in said.out + said.err


def test_bad_requests_fail_before_anything_runs(tmp_path):
    nb_dir = nbfixtures.chapters(tmp_path / "notebooks")
    root = tmp_path / "build"
    with pytest.raises(RunnerError, match="unknown chapter '07'; chapters are: 00_ok, 01_fail, 02_ok"):
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
