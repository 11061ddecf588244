"""Rendered report pages show no machine paths and no Python warnings (see ``stablelm2.quiet``).

    python ci/check_pages.py [build/report]

Exit 1 with one line per problem; `make report` runs it after rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stablelm2.quiet import page_problems

ROOT = Path(__file__).resolve().parents[1]


def problems(report_dir: Path = ROOT / "build" / "report") -> list[str]:
    pages = sorted(report_dir.glob("*.html"))
    if not pages:
        return [f"{report_dir}: no rendered pages; run `make report` first"]
    return [p for page in pages for p in page_problems(page.read_text(encoding="utf-8"), page.name)]


if __name__ == "__main__":
    found = problems(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "report")
    for line in found:
        print(line)
    sys.exit(1 if found else 0)
