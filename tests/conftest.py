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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
