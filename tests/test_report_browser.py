"""The rendered report in headless Chromium: it renders, links resolve, the console is clean.

Chromium is Debian's (`make test` installs it as root when missing, as CI does). On a machine
where it cannot be had, this test skips with that message — except under CI (``CI`` set), where
a missing browser is a failure.
"""

import os
import shutil

import pytest

from stablelm2 import report, runner
from stablelm2.config import repo_root

from . import nbfixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the report test: run `bash ci/ensure_chromium.sh`")
        pytest.skip("no chromium on this machine (install Debian's 'chromium' or run `make test` as root)")
    return CHROMIUM


@pytest.mark.browser
def test_report_renders_in_headless_chromium(chromium, tmp_path, build_dir):
    from playwright.sync_api import sync_playwright

    nb_dir = nbfixtures.chapters(tmp_path / "notebooks")
    runner.run(None, "smoke", nb_dir=nb_dir, root=build_dir, progress=False)
    index = report.build("smoke", root=build_dir)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(index.as_uri())
        assert page.title().startswith("Stable LM 2 1.6B")
        assert page.locator("h2#scoreboard").count() == 1
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.src, e.naturalWidth])")
        assert images and all(w > 0 for _, w in images), images
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        page.screenshot(path=str(build_dir / "report" / "screenshot.png"), full_page=True)
        for href in hrefs:
            resp = page.goto(href)
            assert resp is not None and resp.ok, href
        browser.close()
    assert not errors, errors
    shot = build_dir / "report" / "screenshot.png"
    assert shot.stat().st_size > 10_000
    keep = repo_root() / "build" / "test-report-screenshot.png"  # kept for a human to look at
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, keep)
