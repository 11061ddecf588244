"""Notebook hygiene: stored without outputs or execution counts, with a `parameters` cell declaring
`preset` whose every assignment papermill can parse, a kernelspec that papermill can start, and
upstream chapters (metadata `stablelm2.upstream`, read by the incremental runner) that are earlier
chapters. Exit 1 with one line per problem."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def papermill_parameters(path: Path) -> list[str]:
    """The parameter names papermill itself reads from the notebook (what ``-p`` can set)."""
    import logging

    import papermill as pm

    logging.getLogger("papermill").setLevel(logging.ERROR)  # its parse warnings are reported by problems()
    return list(pm.inspect_notebook(str(path)))


def problems(nb_dir: Path = ROOT / "notebooks") -> list[str]:
    out = []
    paths = sorted(nb_dir.glob("*.ipynb"))
    if not paths:
        return [f"{nb_dir}: no notebooks"]
    for path in paths:
        name = path.relative_to(nb_dir.parent)
        try:
            nb = nbformat.read(str(path), as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # report every unreadable notebook, not just the first
            out.append(f"{name}: not a valid notebook ({exc})")
            continue
        params = [c for c in nb.cells if "parameters" in (c.metadata.get("tags") or [])]
        if len(params) != 1:
            out.append(f"{name}: needs exactly one cell tagged 'parameters' (found {len(params)})")
        else:
            names = {t.id for n in ast.walk(ast.parse(params[0].source)) if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)}
            if "preset" not in names:
                out.append(f"{name}: the parameters cell must assign `preset`")
            seen = set(papermill_parameters(path))
            for missed in sorted(names - seen):
                out.append(f"{name}: papermill cannot parse the parameter `{missed}` (it could not be set with -p); "
                           "keep each parameter on one line as `name = value  # help` without '=' in the help")
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if cell.get("outputs"):
                out.append(f"{name}: cell {i} has stored outputs (clear them before committing)")
            if cell.get("execution_count") is not None:
                out.append(f"{name}: cell {i} has an execution count (clear outputs before committing)")
        upstream = (nb.metadata.get("stablelm2") or {}).get("upstream", [])
        earlier = sorted(p.stem for p in paths if p.stem < path.stem)
        if upstream != "*" and (not isinstance(upstream, list) or any(u not in earlier for u in upstream)):
            out.append(f"{name}: metadata stablelm2.upstream must be \"*\" or a list of earlier chapters "
                       f"({', '.join(earlier) or 'none'}), not {upstream!r}")
        if nb.metadata.get("kernelspec", {}).get("name") != "python3":
            out.append(f"{name}: kernelspec name must be 'python3' (the kernel of the venv running it)")
    return out


if __name__ == "__main__":
    found = problems()
    for line in found:
        print(line)
    sys.exit(1 if found else 0)
