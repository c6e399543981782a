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
    return tmp_path_factory.mktemp("xtal_cache")


@pytest.fixture(autouse=True)
def _isolated_cache(_session_cache_dir, monkeypatch):
    """Never read or write the developer's ~/.cache/xtal during tests: one cache per test session
    (shared by the tests, as by a user's commands; tests of the cache itself use their own)."""
    monkeypatch.setenv("XTAL_CACHE_DIR", str(_session_cache_dir))


#: module-scoped fixtures that run a whole workflow (the demo; the synthetic series programmes):
#: every test using one is an end-to-end test, marked ``slow`` (``pytest -m "not slow"`` skips them)
END_TO_END_FIXTURES = {"demo", "analysed"}


def _uses_a_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs and defs[-1].scope == "module"
                                    for defs in info.name2fixturedefs.values())


@pytest.hookimpl(tryfirst=True)      # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        # under pytest-xdist (`pytest -n 2`, --dist loadgroup): the tests that share a module-scoped
        # fixture (the demo, a series analysis, identifications of real data, the browser) run in
        # one worker, so the fixture is computed once, not once per worker; the other tests are
        # spread one by one. Without xdist the marker does nothing.
        if _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
