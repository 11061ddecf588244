"""Render the executed notebooks to HTML and write the report's index page.

``build/report/`` gets one page per chapter (nbconvert's HTML exporter) and ``index.html``: the
chapters with status and time, the claim scoreboard of every chapter, the figures, the energy each
chapter used and the benchmark results. Each page starts with a line saying whether the chapter was
executed or reused in this run (with the time and commit of its execution) and links the chapter's
library log (``logs/<chapter>.txt``); machine paths are shown relative to the repository. A page is
re-rendered only when its executed notebook (or the template) changed.

>>> from stablelm2 import report
>>> report.build("smoke")                                       # doctest: +SKIP
PosixPath('.../build/report/index.html')
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
import nbconvert
import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from . import chapters as registry
from . import quiet
from .config import PRESETS, ConfigError, build_root
from .files import atomic_copy, atomic_write_json, atomic_write_text
from .ledger import STATUSES, scoreboard, write_scoreboard
from .runner import read_status

TEMPLATES = Path(__file__).with_name("templates")
_STATUS_CLASS = {
    "reproduced": "s-repro", "reproduced at reduced scale": "s-reduced", "re-derived": "s-derived",
    "re-derived under a condition": "s-cond", "fitted": "s-fit", "inconclusive at this scale": "s-inconcl",
    "consistent": "s-consistent", "reported only": "info", "conflict": "bad",
}
_STATUS_MEANING = {
    "reproduced": "measured here at the paper's scale; our value meets the interval of the paper's printed digits",
    "reproduced at reduced scale": "our small runs agree in direction, significant over at least 3 seeds",
    "re-derived": "recomputed from other facts; the value from the printed inputs lies in the paper's interval",
    "re-derived under a condition": "the intervals meet only if an input lies in part of its printed interval",
    "fitted": "a free choice (a reading, a convention) made to match; the best candidate meets the interval",
    "inconclusive at this scale": "fewer than 3 seeds, a tie, or no significant difference: this scale cannot decide",
    "consistent": "the paper agrees with itself or with the raw files its numbers came from (not a finding)",
    "reported only": "quoted, not checked here (the reason is given)",
    "conflict": "the intervals do not meet, or the opposite effect is significant (the evidence is given)",
}

_INDEX = jinja2.Environment(autoescape=True).from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Stable LM 2 1.6B — reproducibility report ({{ preset }})</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:break-word}
table.claims{table-layout:fixed}td.n{text-align:right}
th{background:#f3f3f3}
.ok{background:#e6f4ea}.bad{background:#fde8e8}.info{background:#eef3fb}.failed{background:#fde8e8}
.s-repro{background:#b7e1c1}.s-reduced{background:#dff2d8}.s-derived{background:#d6ecf5}.s-cond{background:#fff1c2}
.s-fit{background:#efe0f7}.s-inconcl{background:#eeeeee}.s-consistent{background:#f5f5ee}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{width:48%;margin:0}
.figs img{width:100%;border:1px solid #ddd}
code{background:#f5f5f5;padding:0 .2em}
</style></head><body>
<h1>Stable LM 2 1.6B — reproducibility report</h1>
<p>Preset <code>{{ preset }}</code>. Companion to Bellagente et al., <em>Stable LM 2 1.6B Technical
Report</em> (arXiv:2402.17834). Generated from the executed notebooks of this run.</p>

<h2 id="chapters">Chapters</h2>
<table><tr><th>chapter</th><th>status</th><th>this run</th><th>executed at · commit</th><th>time (s)</th>
<th>energy (Wh)</th><th>log</th><th>error</th></tr>
{% for c in chapters %}<tr class="{{ 'failed' if c.status != 'finished' else '' }}">
<td{% if c.title %} title="{{ c.title }}"{% endif %}>{% if c.page %}<a href="{{ c.page }}">{{ c.chapter }}</a>{% else %}{{ c.chapter }}{% endif %}</td>
<td>{{ c.status }}</td><td class="run">{{ 'reused' if c.reused else ('executed' if c.reused is sameas false else '—') }}{% if c.why and not c.reused %} ({{ c.why }}){% endif %}</td>
<td>{{ c.started or '—' }} · <code>{{ c.commit or '?' }}</code></td><td>{{ fmt(c.duration_s) }}</td><td>{{ fmt(c.energy_wh) }}</td>
<td>{% if c.log_page %}<a href="{{ c.log_page }}">log</a>{% endif %}</td>
<td>{% if c.cell is defined and c.cell is not none and c.status != 'finished' %}cell {{ c.cell }} (<code>{{ c.cell_source }}</code>): {% endif %}{{ c.error or '' }}</td></tr>
{% endfor %}</table>

<h2 id="scoreboard">Claim scoreboard</h2>
<p>Every claim states its <em>kind</em> (what its evidence is) beside its <em>status</em>. Findings are the
derivations, measurements and fits; the consistency checks (the paper against itself and its raw sources) are
listed apart and never counted among them. Machine-readable: <code>build/{{ preset }}/scoreboard.json</code>.</p>
<table id="legend"><tr><th>status</th><th>meaning</th></tr>
{% for s in statuses %}<tr><td class="{{ status_class[s] }}">{{ s }}</td><td>{{ status_meaning[s] }}</td></tr>
{% endfor %}</table>
<table id="by-kind"><tr><th>kind</th>{% for s in statuses %}<th>{{ s }}</th>{% endfor %}<th>total</th></tr>
{% for k, counts in board.counts_by_kind.items() %}<tr><td>{{ k }}</td>
{% for s in statuses %}<td class="n{{ (' ' ~ status_class[s]) if counts.get(s) else '' }}">{{ counts.get(s, 0) }}</td>{% endfor %}
<td class="n">{{ counts.values()|sum }}</td></tr>
{% endfor %}</table>
{% if board.duplicate_facts %}<p class="bad">Facts recorded by more than one claim:
{% for f, ids in board.duplicate_facts.items() %}<code>{{ f }}</code> ({{ ids|join(', ') }}) {% endfor %}</p>{% endif %}
<table id="by-chapter"><tr><th>chapter</th>{% for s in statuses %}<th>{{ s }}</th>{% endfor %}<th>total</th></tr>
{% for ch, counts in board.by_chapter.items() %}<tr><td>{{ ch }}</td>
{% for s in statuses %}<td class="n{{ (' ' ~ status_class[s]) if counts.get(s) else '' }}">{{ counts.get(s, 0) }}</td>{% endfor %}
<td class="n">{{ counts.values()|sum }}</td></tr>
{% endfor %}</table>
{% for title, rows, anchor in ((("Findings (" ~ board.findings|length ~ ")"), board.findings, "findings"),
   (("The paper checks out against its own sources: consistency checks (" ~ board.consistency|length ~ ")"), board.consistency, "consistency")) %}
<h3 id="{{ anchor }}">{{ title }}</h3>
<table class="claims"><colgroup><col style="width:10%"><col style="width:14%"><col style="width:17%"><col style="width:8%">
<col style="width:11%"><col style="width:11%"><col style="width:8%"><col style="width:21%"></colgroup>
<tr><th>chapter</th><th>claim</th><th>what</th><th>kind</th><th>paper [interval]</th><th>ours [interval]</th><th>status</th><th>source · evidence</th></tr>
{% for c in rows %}<tr class="{{ status_class[c.status] }}"><td>{% if c.page %}<a href="{{ c.page }}">{{ c.chapter }}</a>{% else %}{{ c.chapter }}{% endif %}</td><td><code>{{ c.id }}</code></td>
<td>{{ c.what }}</td><td>{{ c.kind }}</td>
<td>{{ fmt(c.paper) }}{% if c.paper is not none %} {{ c.unit }}{% endif %}{% if c.paper_interval %}<br>[{{ fmt(c.paper_interval[0]) }}, {{ fmt(c.paper_interval[1]) }}]{% endif %}{% if c.tolerance %}<br><em>{{ c.tolerance.hedge }}</em>: {{ c.tolerance.reason }}{% endif %}</td>
<td>{{ fmt(c.ours) }}{% if c.ours_interval %}<br>[{{ fmt(c.ours_interval[0]) }}, {{ fmt(c.ours_interval[1]) }}]{% endif %}{% if c.stats %}<br>{{ c.stats.n_seeds }} seed(s){% if c.stats.p_value is not none %}, p = {{ fmt(c.stats.p_value) }}{% endif %}{% endif %}</td>
<td>{{ c.status }}</td>
<td>{{ c.source }}{% if c.source and c.evidence %} · {% endif %}{{ c.evidence }}</td></tr>
{% endfor %}</table>
{% endfor %}

<h2 id="figures">Figures</h2>
<div class="figs">{% for f in figures %}<figure><a href="{{ f.page }}"><img src="{{ f.src }}" alt="{{ f.name }}"></a>
<figcaption><code>{{ f.name }}</code> ({{ f.chapter }}) {{ f.caption }}</figcaption></figure>{% endfor %}</div>

<h2 id="bench">Benchmarks</h2>
{% if bench %}<table><tr><th>benchmark</th><th>ours</th><th>peer</th><th>ratio</th><th>goal</th><th>note</th></tr>
{% for b in bench %}<tr class="{{ 'ok' if b.meets_goal else ('bad' if b.meets_goal is sameas false else '') }}">
<td>{{ b.name }}</td><td>{{ fmt(b.ours) }} {{ b.unit }}</td><td>{{ b.peer_name }}: {{ fmt(b.peer) }} {{ b.unit }}</td>
<td>{{ fmt(b.ratio) }}</td><td>{{ b.goal or '' }}</td><td>{{ b.note or '' }}</td></tr>{% endfor %}</table>
{% else %}<p>No benchmark results yet: run <code>make bench</code>.</p>{% endif %}
</body></html>
"""
)


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
            return f"{x:.4g}"
        return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.1f}"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return str(x)


def _run_note(rec: dict[str, Any], log_page: str | None) -> str:
    """The line above a chapter's page: executed or reused, when, at which commit, and its log."""
    how = "reused from the run" if rec.get("reused") else "executed"
    when = f" {how} at {rec.get('started', '?')} (commit `{rec.get('commit', '?')}`)"
    log = f" · library warnings and logs: [{log_page}]({log_page})" if log_page else ""
    return f"*{rec.get('chapter', '')}:{when}, status {rec.get('status', '?')}{log}*"


def render_notebook(src: Path, dest: Path, note: str | None = None) -> None:
    """Render an executed notebook to ``dest`` (HTML), machine paths scrubbed, ``note`` (markdown) on top."""
    nb = quiet.scrub_notebook(nbformat.read(str(src), as_version=4))
    if note:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    exporter = HTMLExporter(template_name="companion", extra_template_basedirs=[str(TEMPLATES)])
    # progress bars arrive as many \r-updates of one line: merge the stream pieces, keep each bar's last state
    exporter.register_preprocessor(CoalesceStreamsPreprocessor, enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    atomic_write_text(dest, quiet.scrub(body))


def _page_digest(src: Path, note: str) -> str:
    """What a rendered page depends on: the executed notebook, the note, the template, nbconvert."""
    h = hashlib.sha256(src.read_bytes())
    h.update(note.encode())
    h.update(nbconvert.__version__.encode())
    for f in sorted(TEMPLATES.rglob("*")):
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def ordered(status: dict[str, Any]) -> list[str]:
    """The chapters of a ``runs.json`` in the registry's order (:mod:`stablelm2.chapters`); names the
    registry does not know (a chapter since renamed, a test's synthetic one) follow, sorted."""
    known = [n for n in registry.names() if n in status]
    return known + sorted(n for n in status if n not in known)


def build(preset: str = "cpu", *, root: Path | None = None, out_dir: Path | None = None,
          figures_dir: Path | None = None) -> Path:
    """Render every executed chapter of ``preset`` and write ``index.html``; returns its path.

    ``figures_dir``: also copy the run's figures there (``make report`` uses ``figures/``). ``root``
    defaults to the build root, ``out_dir`` to ``<root>/report``; a chapter page whose notebook and run
    note did not change since the last build is not rendered again.

    Raises:
        ConfigError: ``preset`` is not one of :data:`PRESETS`.
        FileNotFoundError: no chapter of ``preset`` has a run status under ``root`` (run them first).
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    root = root or build_root()
    out_dir = out_dir or root / "report"
    status = read_status(preset, root)
    if not status:
        raise FileNotFoundError(
            f"no executed chapters for preset {preset!r} under {root / preset}; "
            f"run them first: python -m stablelm2 run --preset {preset}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    digests_file = out_dir / ".pages.json"
    digests = json.loads(digests_file.read_text(encoding="utf-8")) if digests_file.is_file() else {}
    chapters, figures = [], []
    for name in ordered(status):
        rec = dict(status[name])
        executed = root / preset / "notebooks" / f"{name}.ipynb"
        log_src, log_page = root / preset / "logs" / f"{name}.log", None
        if log_src.is_file():
            log_page = f"logs/{name}.txt"  # .txt: browsers show it as text (a .log may be downloaded)
            atomic_write_text(out_dir / log_page, quiet.scrub(log_src.read_text(encoding="utf-8", errors="replace")))
        page = None
        if executed.is_file():
            page = f"{name}.html"
            note = _run_note(rec, log_page)
            digest = _page_digest(executed, note)
            if digests.get(page) != digest or not (out_dir / page).is_file():
                render_notebook(executed, out_dir / page, note)
                digests[page] = digest
        metrics_path = root / preset / name / "metrics.json"
        energy_wh = None
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            kwh = (metrics.get("energy") or {}).get("energy_kwh")
            energy_wh = None if kwh is None else round(kwh * 1000, 3)
            for fig in metrics.get("figures", []):
                src = root / preset / name / fig["file"]
                if not src.is_file():
                    continue
                atomic_copy(src, out_dir / "figures" / name / src.name)
                if figures_dir is not None:
                    atomic_copy(src, figures_dir / src.name)
                figures.append({"name": fig["name"], "chapter": name, "caption": fig.get("caption", ""),
                                "src": f"figures/{name}/{src.name}", "page": page or "#figures"})
        known = name in registry.names()
        chapters.append({**rec, "page": page, "energy_wh": energy_wh, "log_page": log_page,
                         "title": registry.get(name).title if known else ""})
    atomic_write_json(digests_file, digests)
    bench_file = root / "bench" / "results.json"
    bench = json.loads(bench_file.read_text(encoding="utf-8"))["results"] if bench_file.is_file() else []
    write_scoreboard(root / preset)
    board = scoreboard(root / preset)
    pages = {c["chapter"]: c["page"] for c in chapters}
    for c in board["claims"]:
        c["page"] = pages.get(c["chapter"])
    index = _INDEX.render(
        preset=preset, chapters=chapters, board=board, statuses=STATUSES, status_class=_STATUS_CLASS,
        status_meaning=_STATUS_MEANING, figures=figures, bench=bench, fmt=_fmt,
    )
    dest = out_dir / "index.html"
    atomic_write_text(dest, index)
    return dest
