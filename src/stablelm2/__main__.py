"""Command line: ``python -m stablelm2 {run,report,bench,list}``.

    python -m stablelm2 run [CHAPTER ...] --preset cpu [-p key=value ...] [--force] [--cell-timeout S]
    python -m stablelm2 report --preset cpu [--figures figures]
    python -m stablelm2 bench [NAME ...]
    python -m stablelm2 list

``run`` executes only the chapters whose inputs changed since their last finished run (see
``stablelm2.fingerprint``); ``--force`` executes them all. ``-p name=value`` values are read as
papermill's own ``-p name value`` reads them (``True``/``False``/``None``, then int, then float,
else text: ``-p seed=010`` is 10); ``-p section.field=value`` sets any config field (it goes into the
``overrides`` mapping every notebook declares, e.g. ``-p train.steps=30``); ``preset`` is set with
``--preset``, never with ``-p``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import bench, runner
from .config import PRESETS, ConfigError


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    0: done; 1: a chapter did not finish (``run``, ``report``); 2: a ``ConfigError``, ``RunnerError``,
    ``FileNotFoundError`` or ``BenchError``, printed to stderr as ``error: ...``. Unknown arguments exit
    through argparse (``SystemExit`` 2).
    """
    ap = argparse.ArgumentParser(prog="python -m stablelm2", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute chapter notebooks with papermill")
    r.add_argument("chapters", nargs="*", help="chapter names or numbers (default: all)")
    r.add_argument("--preset", default="cpu", choices=PRESETS)
    r.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a notebook parameter, or any config field as section.field=value; "
                        "value read as papermill's -p reads it")
    r.add_argument("--force", action="store_true", help="execute even the chapters whose inputs did not change")
    r.add_argument("--cell-timeout", type=int, default=None, metavar="S",
                   help="seconds one cell may run (default per preset: "
                        + ", ".join(f"{k} {v}" for k, v in runner.CELL_TIMEOUT_S.items()) + ")")
    rep = sub.add_parser("report", help="render executed notebooks and the index page")
    rep.add_argument("--preset", default="cpu", choices=PRESETS)
    rep.add_argument("--figures", type=Path, default=None, help="also copy the figures here")
    b = sub.add_parser("bench", help="run the benchmark suite")
    b.add_argument("names", nargs="*", help="benchmark names (default: all)")
    b.add_argument("--repeats", type=int, default=5)
    sub.add_parser("list", help="list the chapters")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "run":
            results = runner.run(args.chapters, args.preset, runner.parse_parameters(args.param),
                                 force=args.force, timeout_s=args.cell_timeout)
            failed = [r["chapter"] for r in results if r["status"] != "finished"]
            if failed:
                print(f"failed chapters: {', '.join(failed)}", file=sys.stderr)
                return 1
            return 0
        if args.cmd == "report":
            from . import report  # nbconvert takes seconds to import: only the report needs it

            path = report.build(args.preset, figures_dir=args.figures)
            print(f"report: {path}")
            failed = [n for n, s in runner.read_status(args.preset).items() if s["status"] != "finished"]
            return 1 if failed else 0
        if args.cmd == "bench":
            path = bench.run(args.names, repeats=args.repeats)
            print(f"benchmarks: {path}")
            return 0
        if args.cmd == "list":
            from . import chapters

            print("\n".join(f"{c.name:<16} {c.title}" for c in chapters.CHAPTERS))
            return 0
    except (ConfigError, runner.RunnerError, FileNotFoundError, bench.BenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
