"""The layout is the data flow (issue 11): analysis never renders or writes, only the CLI prints.

Read from the source with `ast`, so a new module is checked the day it is added.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xtal"
#: modules allowed to write files (besides their own atomic helpers in xtal.util)
WRITERS = ("xtal.io", "xtal.report")
#: orchestration: may use everything
ORCHESTRATION = ("xtal.cli", "xtal.demo")
#: the structure store (`library add` copies a user's CIF into it, atomically, its one write) and the
#: reflection cache in the user's cache directory (xtal.cache: temporary file + os.replace)
STORES = ("xtal.library", "xtal.cache")
#: what an analysis module may not import
RENDERING = ("xtal.report", "matplotlib", "plotly")
WRITER_NAMES = {"atomic_write", "atomic_path", "atomic_write_text", "write_pattern", "write_series",
                "write_report", "write_xy", "write_xye", "write_csv", "write_pdcif"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
    return found


def _is(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


ANALYSIS = [(m, p) for m, p in _modules()
            if not _is(m, WRITERS + ORCHESTRATION) and m not in ("xtal.util",)]
ANALYSIS_NO_STORE = [(m, p) for m, p in ANALYSIS if not _is(m, STORES)]


def test_the_package_has_the_stages_of_the_data_flow():
    names = {m for m, _ in _modules()}
    for stage in ("xtal.io", "xtal.beam", "xtal.profiles", "xtal.structures", "xtal.simulate",
                  "xtal.identify", "xtal.series", "xtal.geometry", "xtal.report", "xtal.cli"):
        assert stage in names, f"{stage} missing from the layout"
    assert len(ANALYSIS) >= 10


@pytest.mark.parametrize("module,path", ANALYSIS_NO_STORE, ids=[m for m, _ in ANALYSIS_NO_STORE])
def test_analysis_modules_neither_render_nor_write(module, path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for mod, names in _imports(tree):
        if _is(mod, RENDERING):
            bad.append(mod)
        bad += [f"{mod}.{n}" for n in names if n in WRITER_NAMES]
        if mod == "xtal" and any(n in ("report", "plots_series") for n in names):
            bad.append(f"xtal: {names}")
    assert not bad, f"{module} imports rendering or file writers: {bad}"


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_only_the_cli_prints(module, path):
    if module == "xtal.cli":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print":
                bad.append(f"print() at line {node.lineno}")
            if (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
                    and f.value.attr in ("stdout", "stderr")):
                bad.append(f"sys.{f.value.attr}.write at line {node.lineno}")
    assert not bad, f"{module} prints: {bad}"


def test_no_module_far_beyond_the_size_guide():
    """Guide of issue 11: about 800 lines per module (a hard limit of 1000 here)."""
    big = {m: n for m, p in _modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 1000}
    assert not big, big
