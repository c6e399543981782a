"""The Levenberg–Marquardt engine's two savings, on real patterns:

* a trial step after a rejected one is evaluated without derivatives (computed only if it is
  accepted): the fit is the same to the last bit as one that computes them at every trial point;
* a quadratically converging fit started next to its minimum — as every series frame starts from
  its neighbour — ends with a step evaluated without derivatives, and still lands on the minimum
  with the s.u. of the minimum (real 11-BM synchrotron pattern).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.real_cases import CASES
from xtal import identify as I
from xtal.identify.fit import WholePatternFit
from xtal.library import Library


def _case(name: str):
    read, truth, _, pol = CASES[name]
    pat = read()
    rad = I.radiation_from(pat, polarization=pol) if pol else I.radiation_from(pat)
    data = I.prepare_pattern(pat, None, rad)
    lib = Library.bundled(user_dir=False)
    return data, rad, [lib.phase(t) for t in sorted(truth)]


def _recording(monkeypatch, force_derivatives: bool = False) -> list[bool]:
    """Record the derivative flag of every phase evaluation (optionally forcing derivatives)."""
    flags: list[bool] = []
    original = WholePatternFit.phase_eval

    def recording(self, m, q, g, deriv=False, po_r=None):
        flags.append(bool(deriv))
        return original(self, m, q, g, deriv or force_derivatives, po_r)

    monkeypatch.setattr(WholePatternFit, "phase_eval", recording)
    return flags


def test_trials_after_a_rejection_without_derivatives_change_nothing(monkeypatch):
    data, rad, phases = _case("PbSO4")
    flags = _recording(monkeypatch)
    fit = WholePatternFit(data, phases, rad).run()
    assert flags.count(False) >= 2, flags          # rejected trials were evaluated without them
    monkeypatch.undo()
    _recording(monkeypatch, force_derivatives=True)
    every = WholePatternFit(data, phases, rad).run()
    assert fit.rwp == every.rwp and fit.nfev == every.nfev
    assert fit.zero_shift_deg == every.zero_shift_deg and fit.profile == every.profile
    assert fit.phases[0].cell == every.phases[0].cell
    assert fit.phases[0].cell_su == every.phases[0].cell_su
    assert fit.phases[0].scale == every.phases[0].scale
    assert np.array_equal(fit.calculated, every.calculated)


def test_last_step_without_derivatives_keeps_the_minimum_and_its_su(monkeypatch):
    data, rad, phases = _case("NAC")
    ref = WholePatternFit(data, phases, rad).run()            # from scratch: the minimum
    assert ref.success and ref.zero_shift_su and ref.zero_shift_su > 0
    # a neighbouring start: the zero shift 10 s.u. away and the cell 10 s.u. longer
    p0 = ref.phases[0]
    start = dataclasses.replace(
        ref, zero_shift_deg=ref.zero_shift_deg + 10 * ref.zero_shift_su,
        phases=[dataclasses.replace(p0, cell=tuple(c + 10 * (s or 0.0) for c, s in
                                                   zip(p0.cell, p0.cell_su)))])
    flags = _recording(monkeypatch)
    res = WholePatternFit(data, phases, rad).run(start=start)
    monkeypatch.undo()
    # the start's evaluation and the first step with derivatives, the last one without
    assert flags[0] and flags[1] and not flags[-1] and flags.count(False) == 1, flags
    # the same minimum: every refined value within 0.05 s.u. of the fit from scratch
    assert abs(res.zero_shift_deg - ref.zero_shift_deg) < 0.05 * ref.zero_shift_su
    for a, b, su in zip(res.phases[0].cell, p0.cell, p0.cell_su):
        if su:
            assert abs(a - b) < 0.05 * su
    for k in ("U", "V", "W", "eta"):
        assert abs(res.profile[k] - ref.profile[k]) < 0.05 * ref.profile_su[k], k
    # the s.u. from the curvature of the point the last step left: those at the final point
    at_final = WholePatternFit(data, phases, rad).run(start=res, max_iter=0)
    assert res.zero_shift_su == pytest.approx(at_final.zero_shift_su, rel=0.01)
    for a, b in zip(res.phases[0].cell_su, at_final.phases[0].cell_su):
        if b:
            assert a == pytest.approx(b, rel=0.01)


def test_volume_gradient_agrees_with_finite_differences():
    """∂V/∂cell used for the volume s.u. (`fit._volume_gradient`) against central differences
    of `simulate.cell_volume`, on the library's triclinic cell and a monoclinic one."""
    from xtal.identify.fit import _volume_gradient
    from xtal.simulate import cell_volume
    lib = Library.bundled(user_dir=False)
    for pid in ("FeN4_COD2242624", "CuO"):
        cell = list(lib.phase(pid).cell.parameters)
        fd = []
        for k in range(6):
            up, dn = list(cell), list(cell)
            up[k] += 1e-5
            dn[k] -= 1e-5
            fd.append((cell_volume(up) - cell_volume(dn)) / 2e-5)
        grad = _volume_gradient(cell)
        assert np.allclose(grad, fd, rtol=1e-7, atol=1e-9 * max(abs(v) for v in fd)), (pid, grad, fd)
        assert abs(grad[0] - cell_volume(cell) / cell[0]) < 1e-12 * cell_volume(cell)
