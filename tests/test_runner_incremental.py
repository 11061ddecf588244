"""The incremental runner: a chapter is executed only when what determines it changed.

Tiny chapters import a tiny ``stablelm2`` package of their own (put first on the kernels' path), so
touching one of its modules shows exactly which chapters the runner re-executes.
"""

import json
from pathlib import Path

import nbformat
import pytest

from stablelm2 import fingerprint, runner

from . import nbfixtures


def _package(src: Path) -> Path:
    pkg = src / "stablelm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("VALUE = 1\n")
    (pkg / "mid.py").write_text("from .base import VALUE\n\nDOUBLE = 2 * VALUE\n")
    (pkg / "other.py").write_text("OTHER = 3\n")
    return pkg


def _chapters(nb_dir: Path) -> Path:
    nb_dir.mkdir(parents=True)
    nbfixtures.write(nb_dir / "00_base.ipynb", 'preset = "cpu"', "from stablelm2 import base\nbase.VALUE")
    nbfixtures.write(nb_dir / "01_other.ipynb", 'preset = "cpu"\nvalue = 1', "import stablelm2.other as o\no.OTHER")
    nbfixtures.write(nb_dir / "02_mid.ipynb", 'preset = "cpu"', "%%time\nfrom stablelm2.mid import DOUBLE\nDOUBLE")
    after = nbfixtures.write(nb_dir / "03_after_other.ipynb", 'preset = "cpu"', "x = 1")
    nb = nbformat.read(str(after), as_version=4)
    nb.metadata["stablelm2"] = {"upstream": ["01_other"]}
    nbformat.write(nb, str(after))
    return nb_dir


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    src = tmp_path / "src"
    pkg = _package(src)
    monkeypatch.setenv("PYTHONPATH", f"{src}:{runner.repo_root() / 'src'}")  # the kernels import the tiny package
    return pkg, _chapters(tmp_path / "notebooks"), tmp_path / "build"


def _executed(results):
    return [r["chapter"] for r in results if not r["reused"]]


def test_only_changed_chapters_and_their_downstream_are_executed(tiny):
    pkg, nb_dir, root = tiny

    def run(**kw):
        return runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False, src_dir=pkg, **kw)

    first = run()
    assert [r["status"] for r in first] == ["finished"] * 4 and _executed(first) == [r["chapter"] for r in first]
    status_before = runner.read_status("smoke", root)

    second = run()  # nothing changed: no notebook executed, the records of the first run kept
    assert _executed(second) == []
    status_after = runner.read_status("smoke", root)
    for ch, rec in status_after.items():
        assert rec["reused"] and rec["started"] == status_before[ch]["started"] and rec["key"] == status_before[ch]["key"]

    (pkg / "base.py").write_text("VALUE = 1  # touched\n")
    assert _executed(run()) == ["00_base", "02_mid"]  # 02 imports base through mid

    (pkg / "other.py").write_text("OTHER = 4\n")
    third = run()
    assert _executed(third) == ["01_other", "03_after_other"]  # 03 reads 01's artefacts
    assert third[1]["why"] == "source stablelm2/other.py" and third[3]["why"] == "upstream 01_other"

    assert _executed(run(force=True)) == ["00_base", "01_other", "02_mid", "03_after_other"]
    assert _executed(run(parameters={"value": 2})) == ["01_other", "03_after_other"]


def test_a_chapter_run_alone_runs_its_stale_upstream_first_and_a_lost_metrics_file_is_rebuilt(tiny):
    pkg, nb_dir, root = tiny

    def run(names=None, **kw):
        return runner.run(names, "smoke", nb_dir=nb_dir, root=root, progress=False, src_dir=pkg, **kw)

    run()
    (pkg / "other.py").write_text("OTHER = 5\n")
    # 03 reads 01's artefacts; 01 is stale, so it runs first instead of 03 recording a key 01 never had
    assert _executed(run(["03_after_other"])) == ["01_other", "03_after_other"]
    assert _executed(run()) == []

    metrics = root / "smoke" / "00_base" / "metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text("{}")
    assert _executed(run(["00_base"], force=True)) == ["00_base"]
    assert runner.read_status("smoke", root)["00_base"]["metrics"] == ["smoke/00_base/metrics.json"]
    assert _executed(run()) == []
    metrics.unlink()  # a deleted result is never "reused": its claims would drop off the scoreboard
    assert _executed(run()) == ["00_base"]


def test_an_interrupted_run_continues_with_the_chapters_not_done(tiny, monkeypatch):
    pkg, nb_dir, root = tiny
    real = runner.execute
    calls = []

    def interrupted(chapter, *a, **kw):
        calls.append(chapter)
        if chapter == "02_mid":
            raise KeyboardInterrupt  # Ctrl-C while chapter 02 runs
        return real(chapter, *a, **kw)

    monkeypatch.setattr(runner, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False, src_dir=pkg)
    assert runner.read_status("smoke", root)["02_mid"]["status"] == "running"
    monkeypatch.setattr(runner, "execute", real)
    again = runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False, src_dir=pkg)
    assert _executed(again) == ["02_mid", "03_after_other"]
    assert all(r["status"] == "finished" for r in again)


def test_keys_follow_notebook_config_lock_and_upstream(tiny, tmp_path, monkeypatch):
    pkg, nb_dir, _ = tiny
    keys = runner.plan_keys("smoke", {}, nb_dir, pkg)
    assert keys == runner.plan_keys("smoke", {}, nb_dir, pkg)  # deterministic
    assert set(keys["02_mid"][1]["sources"]) == {"stablelm2/__init__.py", "stablelm2/base.py", "stablelm2/mid.py"}
    assert keys["03_after_other"][1]["upstream"] == {"01_other": keys["01_other"][0]}
    assert runner.plan_keys("cpu", {}, nb_dir, pkg)["00_base"][0] != keys["00_base"][0]  # resolved config
    (pkg / "notes.yaml").write_text("a: 1\n")  # a data file beside imported modules is part of the key
    assert runner.plan_keys("smoke", {}, nb_dir, pkg)["00_base"][0] != keys["00_base"][0]
    lock = tmp_path / "other.lock"
    lock.write_text("x==1\n")
    monkeypatch.setattr(runner, "lock_file", lambda: lock)
    relocked = runner.plan_keys("smoke", {}, nb_dir, pkg)
    assert all(relocked[c][0] != keys[c][0] for c in keys)
    nb = nbformat.read(str(nb_dir / "01_other.ipynb"), as_version=4)
    nb.cells[-1].source += "\n# edited"
    nbformat.write(nb, str(nb_dir / "01_other.ipynb"))
    edited = runner.plan_keys("smoke", {}, nb_dir, pkg)
    assert [c for c in keys if edited[c][0] != relocked[c][0]] == ["01_other", "03_after_other"]
    assert fingerprint.changed(relocked["01_other"][1], edited["01_other"][1]) == ["notebook"]


def test_bad_upstream_declarations_are_refused_before_anything_runs(tiny):
    pkg, nb_dir, root = tiny
    nb = nbformat.read(str(nb_dir / "00_base.ipynb"), as_version=4)
    nb.metadata["stablelm2"] = {"upstream": ["03_after_other"]}
    nbformat.write(nb, str(nb_dir / "00_base.ipynb"))
    with pytest.raises(runner.RunnerError, match="03_after_other are not earlier chapters"):
        runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False, src_dir=pkg)
    assert not root.exists()


def test_repository_chapters_import_what_they_use():
    nb = runner.notebooks_dir()
    mods = fingerprint.notebook_modules(nb / "06_alignment.ipynb")
    assert {"stablelm2.alignment.stages", "stablelm2.training", "stablelm2.config", "stablelm2.record"} <= mods
    assert "stablelm2.quantization" not in mods
    assert "stablelm2.schedule" in fingerprint.notebook_modules(nb / "04_lr_schedule.ipynb")
    ups = {c: fingerprint.upstream(nb / f"{c}.ipynb", runner.chapters()[:i]) for i, c in enumerate(runner.chapters())}
    assert ups["09_carbon"] == runner.chapters()[:-1] and ups["07_evaluation"] == ["05_pretraining", "06_alignment"]
    json.dumps(ups)
