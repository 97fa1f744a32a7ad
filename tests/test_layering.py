"""The house's layering, checked from the code's own imports (read with ``ast``, so every
import counts: top level, inside functions, under ``TYPE_CHECKING``).

settings -> draws/theory -> engine | probe -> results -> files -> report: no import
circle, the report never loads torch or the engine, the probe never imports the engine,
the theory imports only the activations.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, clean_env

PACKAGES = ("initlab", "hydra_plugins")
#: The engine's own modules (the probe must reach none of them).
ENGINE = {"initlab.chain", "initlab.layout", "initlab.backward", "initlab.observers"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for child in node.body:
                lines |= set(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports. Every import counts, inside functions and
    under ``TYPE_CHECKING`` too, except a package ``__init__``'s ``TYPE_CHECKING`` block
    (the lazy public API of ``initlab/__init__.py``: names for editors, nothing imported).
    ``from pkg import mod`` is an import of ``pkg.mod`` when that module exists, else of
    ``pkg``."""
    files = {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree) if path.name == "__init__.py" else set()
        found: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", 0) in skip:
                continue
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in files else base)
        edges[name] = {m for m in found if m in files and m != name}
    return edges


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_reader_sees_imports_of_every_kind():
    """A reader that misses imports would pass every test below: check it on known ones."""
    edges = graph()
    assert "initlab.result" in edges["initlab.summary"]  # top level
    assert "initlab.job" in edges["initlab.config"]  # inside a function
    assert "initlab.probing.core" in edges["initlab.probing"]  # a package's __init__
    assert "initlab.theory.critical" in edges["initlab.schemes"]


def test_no_import_circle():
    edges = graph()
    circles = []
    for module in edges:
        if module in reachable(edges, module):
            circles.append(module)
    # a package imports its own submodules from __init__; a submodule importing the package
    # back (``from initlab import x`` for a sibling) would show here too
    assert circles == [], f"modules on an import circle: {sorted(circles)}"


def test_the_report_imports_neither_torch_nor_the_engine_statically():
    edges = graph()
    reach = set().union(*(reachable(edges, m) | {m} for m in edges
                          if m.startswith("initlab.report")))
    banned = ENGINE | {"initlab.theory", "initlab.probing", "initlab.stats", "initlab.draws",
                       "initlab.spec", "initlab.activations", "initlab.prediction"}
    assert not reach & banned, sorted(reach & banned)


def test_the_probe_never_imports_the_engine():
    edges = graph()
    reach = set().union(*(reachable(edges, m) for m in edges if m.startswith("initlab.probing")))
    assert not reach & ENGINE, sorted(reach & ENGINE)


def test_the_theory_imports_only_the_activations():
    edges = graph()
    for module, imports in edges.items():
        if module.startswith("initlab.theory"):
            outside = {m for m in imports if not m.startswith("initlab.theory")}
            assert outside <= {"initlab.activations"}, (module, outside)


@pytest.mark.slow
def test_building_a_finished_sweeps_report_never_loads_torch(sweep_copy):
    """In a fresh process: import the report, write a finished sweep's report, and torch,
    the engine and the probe were never imported."""
    code = ("import sys; from pathlib import Path; import initlab.report as r; "
            f"r.write_report(Path({str(sweep_copy)!r})); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') "
            "or m in ('initlab.chain', 'initlab.probing', 'initlab.theory')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(),
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout[:500]
    assert (sweep_copy / "report" / "report.html").is_file()
