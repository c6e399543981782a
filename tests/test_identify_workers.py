"""`identify(workers=n)`: the search's independent fits shared with processes forked from this one
(issue 16) give the answer of one process, to the last bit."""
from __future__ import annotations

import math

import pytest

from tests.real_cases import read_pbso4
from xtal import identify as I
from xtal.identify import search as S
from xtal.library import Library

pytestmark = pytest.mark.skipif(not S.fork_workers_available(), reason="needs the fork start method")


def _numbers(res):
    """Everything the answer says in numbers: ranks, scores, Rwp, cells, fractions, profile."""
    return [(h.ids, h.score, h.rwp, h.fit.zero_shift_deg, sorted(h.fit.profile.items()),
             [(p.id, p.weight_fraction, p.cell, p.preferred_orientation, p.size_broadening_deg)
              for p in h.phases])
            for h in res.hypotheses]


def test_forked_workers_give_the_serial_answer(monkeypatch):
    """The real PbSO4 lab pattern against PbSO4 and five decoys: its misfit-dominated fit also
    sends the real-sample terms (displacement, texture axis, asymmetry and size grids) through the
    workers. Same hypotheses, scores, cells, fractions and number of fits with 1 and 2 processes,
    and the second process did fits (counted in this one)."""
    phases = Library.bundled(user_dir=False).phases(["PbSO4", "NiO", "CuO", "CaF2", "BiFeO3",
                                                     "CuCr2O4"])
    pat = read_pbso4()
    one = I.identify(pat, phases, workers=1)
    sent = []
    submit = S._ForkedWorkers.submit

    def counting(self, method, args):
        sent.append(method)
        return submit(self, method, args)

    monkeypatch.setattr(S._ForkedWorkers, "submit", counting)
    two = I.identify(pat, phases, workers=2)
    assert {"_quick_fit", "_final_fit", "_refit_fit"} <= set(sent) and len(sent) >= 8
    assert one.best.ids == two.best.ids == ["PbSO4"]
    assert _numbers(two) == _numbers(one)
    assert two.n_fits == one.n_fits and two.confidence == one.confidence
    assert math.isclose(one.best.rwp, two.best.rwp, rel_tol=0, abs_tol=0)
    assert S._FORKED_SEARCH == []            # the workers were shut down


def test_workers_must_be_a_positive_integer():
    phases = Library.bundled(user_dir=False).phases(["PbSO4"])
    with pytest.raises(I.IdentificationError, match="workers must be an integer ≥ 1"):
        I.identify(read_pbso4(), phases, workers=0)
