"""Shared test fixtures: paths to the repository's bundled data and to ../shared/reference."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

from xtal.heap import keep_freed_memory

matplotlib.use("Agg")

# the test processes are ours: reuse freed memory as the `xtal` command does (xtal.heap; results
# are unchanged, the profile evaluations of real patterns take ~20 % less CPU)
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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
