"""Shared test fixtures: paths to the repository's bundled data and to ../shared/reference."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

from xtal.heap import keep_freed_memory

matplotlib.use("Agg")

# the test processes are ours: reuse freed memory as the `xtal` command does (xtal.heap; results
# are unchanged, identification of real patterns takes 7–26 % less CPU)
keep_freed_memory()

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


#: Test files in descending order of run time (seconds summed per file from
#: ``pytest -n 2 --dist loadfile --durations=0`` at 2026-11-29 03:24 UTC: 115, 55, 40, 39, 38, 37,
#: 36, 35, 33, 24; 546 s in all).  Under ``--dist loadfile`` whole files go to the two workers in
#: collection order: the longest first (and pytest-xdist kept from re-sorting files by their
#: number of tests, which put the few-test heavy files — notebooks, demo, real data — last), so
#: that no long file runs alone at the end.  Only the order changes; every test still runs.
LONGEST_FIRST = ("test_identify.py", "test_identify_real.py", "test_series.py",
                 "test_identify_real_negative.py", "test_demo.py", "test_notebooks.py",
                 "test_cli.py", "test_refine.py", "test_interactive.py", "test_geometry_issue18.py")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):      # pytest-xdist's --dist loadfile
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: files stay whole
