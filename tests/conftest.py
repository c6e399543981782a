"""Shared test fixtures: paths to the repository's bundled data and to ../shared/reference."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XTAL_SHARED_DIR", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
REF_STRUCTURES = REFERENCE / "structures"
REF_PATTERNS = REFERENCE / "patterns"
REF_SERIES = REFERENCE / "series"
BUNDLED_STRUCTURES = REPO / "structures"

#: a timeout that only guards against a hang (ChemEnv's worker process, a notebook cell): never a
#: limit a slow or busy machine can reach, so no test result depends on the machine's load
HANG_GUARD_S = 1800


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference; the tests need it (CI clones the repo with shared/ beside it)."""
    assert REFERENCE.is_dir(), f"reference data not found at {REFERENCE} (set XTAL_SHARED_DIR)"
    return REFERENCE


@pytest.fixture(autouse=True)
def _isolated_user_library(tmp_path_factory, monkeypatch):
    """Never read or write the developer's ~/.xtal during tests."""
    monkeypatch.setenv("XTAL_USER_STRUCTURES", str(tmp_path_factory.mktemp("user_structures")))


@pytest.fixture(scope="session")
def _session_cache_dir(tmp_path_factory) -> Path:
    """A fresh cache for the run. Under pytest-xdist the workers share one (the parent of their
    base temporary directories is the run's), as concurrent user commands share ~/.cache/xtal
    (writes are atomic: tests/test_cache.py), so a reflection table is computed once per run,
    not once per worker."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        d = tmp_path_factory.getbasetemp().parent / "xtal_cache"
        d.mkdir(exist_ok=True)
        return d
    return tmp_path_factory.mktemp("xtal_cache")


@pytest.fixture(autouse=True)
def _isolated_cache(_session_cache_dir, monkeypatch):
    """Never read or write the developer's ~/.cache/xtal during tests: one cache per test session
    (shared by the tests, as by a user's commands; tests of the cache itself use their own)."""
    monkeypatch.setenv("XTAL_CACHE_DIR", str(_session_cache_dir))


#: module-scoped fixtures that run a whole workflow (the demo; the synthetic series programmes):
#: every test using one is an end-to-end test, marked ``slow`` (``pytest -m "not slow"`` skips them)
END_TO_END_FIXTURES = {"demo", "analysed"}


#: module-scoped fixtures that compute something expensive which several tests check (whole
#: workflows, identifications, refinements, series analyses, the browser). Under pytest-xdist
#: (`pytest -n 2 --dist loadgroup`, the README's command) the tests using one run in the same worker,
#: so it is computed once, not once per worker; the other tests (those sharing only a loaded
#: library, structure or pattern) are spread one by one. Without xdist the marker does nothing.
SHARED_COMPUTATION_FIXTURES = END_TO_END_FIXTURES | {
    "cucr2o4_result", "small_chunked",                                   # test_series
    "results", "pbso4_model",                                            # test_identify_real
    "id_result", "series_result", "geometry_results", "pages", "browser",  # test_interactive
    "rietveld_runs", "cucr_sequential",                                  # test_refine
    "warm", "cryo",                                                      # test_reports_glance
    "bundled_results",                                                   # test_geometry_glance
    "rebuilt",                                                           # test_models
    "nio_frames",                                                        # test_beam
}


def _xdist_groups(items) -> None:
    """One xdist_group per module and set of shared fixtures used together (a test using two joins
    their groups): independent fixtures of a module (three series analyses) may go to both workers."""
    by_module: dict[str, list] = {}
    for item in items:
        used = SHARED_COMPUTATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used:
            by_module.setdefault(item.module.__name__, []).append((item, used))
    for module, entries in by_module.items():
        joined: list[set] = []
        for _, used in entries:
            touching = [g for g in joined if g & used]
            joined = [g for g in joined if not g & used] + [set(used).union(*touching)]
        for item, used in entries:
            group = next(g for g in joined if g & used)
            item.add_marker(pytest.mark.xdist_group(f"{module}:{'+'.join(sorted(group))}"))


@pytest.hookimpl(tryfirst=True)      # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    _xdist_groups(items)
