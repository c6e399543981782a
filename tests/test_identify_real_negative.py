"""Negative controls on real patterns (issue 13): each real pattern with its true phases (and allowed
impurities) removed from the bundled library, and a GeO2–ZnO product with no Ge or Zn phase in it, must
give confidence "none" — no forced answer. In a file of their own so that two test workers share the
real-data identifications (``-n 2 --dist loadfile``)."""
from __future__ import annotations

import pytest

from tests.conftest import REF_PATTERNS as P
from tests.real_cases import CASES
from xtal import identify as I
from xtal.io import read_pattern
from xtal.library import Library

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library():
    return Library.bundled(user_dir=False).phases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_negative_control_true_phase_removed_gives_none(library, name):
    read, truth, allowed, pol = CASES[name]
    lib = [p for p in library if p.id not in truth | allowed]
    res = I.identify(read(), lib, polarization=pol)
    assert res.confidence == "none", (res.confidence_statement, [h.ids for h in res.hypotheses])
    assert res.hypotheses == [] and res.best is None
    d = res.to_json_dict()
    assert d["confidence"] == "none" and d["hypotheses"] == []
    assert d["partial_matches"] or d["unexplained_peaks"]


def test_geo2_zno_against_the_bundled_library_is_none(library):
    """A GeO2 + ZnO reaction product: no Ge or Zn phase in the library → no forced answer."""
    pat = read_pattern(P / "lab_xrdml_GeO2-ZnO" / "GeO2-ZnO_700C_60min.xrdml")
    res = I.identify(pat, library)
    assert res.confidence == "none", res.confidence_statement
    assert res.best is None
    assert "No library phase explains this pattern" in res.confidence_statement
    assert len(res.unexplained_peaks) >= 10
