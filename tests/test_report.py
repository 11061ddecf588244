import json
import re
from pathlib import Path

import pytest

from stablelm2 import report, runner

from . import nbfixtures


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    nb_dir = nbfixtures.chapters(tmp / "notebooks")
    root = tmp / "build"
    runner.run(None, "smoke", nb_dir=nb_dir, root=root, progress=False)
    figures = tmp / "figures"
    index = report.build("smoke", root=root, figures_dir=figures)
    return index, figures


def _links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"#][^"]*)"', html)


def test_every_chapter_page_exists_and_index_links_resolve(built):
    index, _ = built
    html = index.read_text()
    for ch in ("00_overview", "02_tokenizer"):
        assert (index.parent / f"{ch}.html").is_file()
        assert f'href="{ch}.html"' in html
    links = _links(html)
    assert links, "index has no links"
    for link in links:
        assert (index.parent / link).is_file(), f"broken link {link}"


def test_failed_chapter_is_shown_with_its_error(built):
    html = built[0].read_text()
    assert "01_data_mix" in html and "failed" in html and "planted failure" in html
    assert not (built[0].parent / "01_data_mix.html").exists() or "planted failure" in (
        built[0].parent / "01_data_mix.html").read_text()


def test_scoreboard_and_figures_are_embedded(built):
    index, figures = built
    html = index.read_text()
    assert "Claim scoreboard" in html and "00_overview.twice" in html and "re-derived" in html
    by_chapter = html[html.index('<table id="by-chapter">'):]
    by_chapter = by_chapter[:by_chapter.index("</table>")]
    row = re.search(r"<tr><td>00_overview</td>(.*?)</tr>", by_chapter, re.S).group(1)
    cells = re.findall(r'<td class="n( s-derived)?">(\d+)</td>', row)
    assert [int(n) for _, n in cells] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]  # one re-derived claim, total 1
    assert cells[2][0] == " s-derived" and not cells[0][0]  # only non-zero counts are coloured
    assert '<table id="legend">' in html and '<td class="s-inconcl">inconclusive at this scale</td>' in html
    assert '<table id="by-kind">' in html and "<h3 id=\"consistency\">" in html
    board = json.loads((index.parent.parent / "smoke" / "scoreboard.json").read_text())
    twice = next(c for c in board["claims"] if c["id"] == "00_overview.twice")
    assert twice["kind"] == "derivation" and twice["status"] == "re-derived" and twice["evidence"]["page"] == "00_overview.html"
    assert 'src="figures/00_overview/fig9_line.png"' in html
    assert (figures / "fig9_line.png").is_file()
    page = (index.parent / "00_overview.html").read_text()
    assert "data:image/png;base64" in page


def test_report_refuses_without_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="run them first"):
        report.build("smoke", root=tmp_path)


def test_report_escapes_evidence_text(tmp_path):
    import json

    root = tmp_path / "b"
    (root / "smoke" / "x").mkdir(parents=True)
    (root / "smoke" / "runs.json").write_text(json.dumps(
        {"x": {"chapter": "x", "status": "finished", "output": str(tmp_path / "none.ipynb"), "duration_s": 1}}))
    (root / "smoke" / "x" / "metrics.json").write_text(json.dumps({"claims": [
        {"id": "x.a", "chapter": "x", "what": "<script>alert(1)</script>", "status": "conflict",
         "evidence": "a < b", "paper": 1, "ours": 2, "unit": "", "source": ""}]}))
    html = report.build("smoke", root=root).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert Path(root / "report" / "index.html").is_file()


def test_progress_bars_render_in_their_last_state(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=t)
                    for t in ("\rsteps:   0%| 0/40", "\rsteps:  50%| 20/40", "\rsteps: 100%| 40/40\n")]
    nb.cells = [cell]
    nbformat.write(nb, str(tmp_path / "c.ipynb"))
    report.render_notebook(tmp_path / "c.ipynb", tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    assert "<pre>steps: 100%| 40/40\n</pre>" in html and "20/40" not in html and "| 0/40" not in html


def test_index_says_reused_or_executed_with_commit_and_names_the_failed_cell(tmp_path):
    import json

    root = tmp_path / "b"
    (root / "smoke").mkdir(parents=True)
    (root / "smoke" / "runs.json").write_text(json.dumps({
        "00_a": {"chapter": "00_a", "status": "finished", "reused": True, "started": "2026-11-30T09:41:51Z",
                 "commit": "343152c52019", "duration_s": 3.0},
        "01_b": {"chapter": "01_b", "status": "failed", "reused": False, "why": "source stablelm2/x.py",
                 "started": "2026-11-30T10:00:00Z", "commit": "abcdef012345+dirty", "duration_s": 600.5,
                 "error": "CellTimeoutError: A cell timed out", "cell": 4, "cell_source": "time.sleep(1e6)"}}))
    html = report.build("smoke", root=root).read_text()
    row_a = re.search(r"<tr class=\"\">\s*<td>00_a</td>(.*?)</tr>", html, re.S).group(1)
    assert ">reused<" in row_a and "2026-11-30T09:41:51Z · <code>343152c52019</code>" in row_a
    row_b = re.search(r"<td>01_b</td>(.*?)</tr>", html, re.S).group(1)
    assert "executed (source stablelm2/x.py)" in row_b and "abcdef012345+dirty" in row_b
    assert "cell 4 (<code>time.sleep(1e6)</code>): CellTimeoutError: A cell timed out" in row_b
