"""The compiled phase evaluation of the whole-pattern fit (`xtal._window.phase_profile`, one call
per phase: reciprocal metric, d, lines, widths, LP, texture, asymmetry, windows and sums) against
its NumPy reference (`WholePatternFit.peaks` + `pseudo_voigt`), on the grids of real patterns:
values and every derivative row equal to rounding, for each beam kind and model option."""
from __future__ import annotations

import numpy as np
import pytest

from tests.real_cases import CASES
from xtal import identify as I
from xtal import profiles as P
from xtal.errors import SimulationError
from xtal.identify.fit import WholePatternFit, derivative_rows
from xtal.library import Library


def _data(name: str):
    read, _, _, pol = CASES[name]
    pat = read()
    rad = I.radiation_from(pat, polarization=pol) if pol else I.radiation_from(pat)
    return I.prepare_pattern(pat, None, rad), rad


def _both(fit: WholePatternFit, k: int, q, g, deriv: bool, po_r=None, monkeypatch=None):
    """phase_eval of model k, compiled and in NumPy."""
    assert P.compiled_phase_profile() is not None        # built at install (setup.py)
    m = fit.models[k]
    fast = fit.phase_eval(m, q, g, deriv, po_r)
    monkeypatch.setattr(P, "_COMPILED", [P._COMPILED[0], P._COMPILED[1]])   # no phase kernel
    slow = fit.phase_eval(m, q, g, deriv, po_r)
    monkeypatch.undo()
    return fast, slow


def _assert_close(fast: dict, slow: dict) -> int:
    """Every output equal to rounding, relative to its largest value; returns the rows compared."""
    assert fast.keys() == slow.keys()
    rows = 0
    for key in fast:
        a, b = np.atleast_2d(fast[key]), np.atleast_2d(slow[key])
        assert a.shape == b.shape, key
        for ra, rb in zip(a, b):
            scale = max(float(np.abs(rb).max()), 1e-300)
            err = float(np.abs(ra - rb).max()) / scale
            WORST[0] = max(WORST[0], err)
            assert err <= 1e-9, (key, err)
            rows += 1
    return rows


WORST = [0.0]
G = {"zero": 0.031, "disp": -0.012, "U": 0.004, "V": -0.002, "W": 0.003, "eta": 0.37}


@pytest.mark.parametrize("options", [
    {},
    {"asymmetry_deg": 0.08},
    {"preferred_orientation": {"PbSO4": (0, 0, 1)}},
    {"size_broadening": {"PbSO4": 0.05}, "min_rel_area": 0.02},
    {"asymmetry_deg": 0.05, "preferred_orientation": {"PbSO4": (1, 0, 1)}, "min_rel_area": 0.005},
])
def test_compiled_phase_equals_numpy_on_a_lab_doublet(options, monkeypatch):
    """PbSO4 (orthorhombic) on the Cu Kα1/Kα2 lab pattern, strained, with each model option."""
    data, rad = _data("PbSO4")
    assert rad.is_doublet
    lib = Library.bundled(user_dir=False)
    fit = WholePatternFit(data, [lib.phase("PbSO4")], rad, **options)
    q = np.array([0.004, -0.003, 0.002])
    po = 0.8 if "preferred_orientation" in options else None
    for deriv in (False, True):
        fast, slow = _both(fit, 0, q, G, deriv, po, monkeypatch)
        rows = _assert_close(fast, slow)
        assert float(np.abs(slow["values"]).max()) > 0
        if deriv:
            # values; η, common shift, a b c, displacement, U V W (and r when textured)
            assert rows == 1 + 1 + 1 + 3 + 1 + 3 + (po is not None)
            if po:
                assert np.abs(fast["rows"][derivative_rows(3)["po"]]).max() > 0


@pytest.mark.parametrize("phase_id", ["CuO", "FeN4_COD2242624", "libh4_ht", "CaNi_PO3_4"])
def test_compiled_phase_equals_numpy_for_each_lattice_system(phase_id, monkeypatch):
    """Monoclinic, triclinic and hexagonal cells (the metric's angle derivatives), unpolarised
    doublet grid; lattice parameters of the phase's system, strained and with shifted angles."""
    data, rad = _data("PbSO4")
    lib = Library.bundled(user_dir=False)
    fit = WholePatternFit(data, [lib.phase(phase_id)], rad)
    m = fit.models[0]
    q = np.array([0.003 if name not in ("alpha", "beta", "gamma", "angle") else 0.4
                  for name in m.names])
    for deriv in (False, True):
        fast, slow = _both(fit, 0, q, G, deriv, None, monkeypatch)
        _assert_close(fast, slow)
        if deriv:
            at = derivative_rows(m.n_params)
            assert fast["rows"].shape[0] == at["po"]          # untextured: no r row
            lattice = fast["rows"][at["lattice"]:at["disp"]]
            assert len(lattice) == m.n_params and all(np.abs(row).max() > 0 for row in lattice)


def test_compiled_phase_equals_numpy_on_a_synchrotron_pattern(monkeypatch):
    """NAC on the 11-BM grid: one line, polarised beam, fixed lattice (no lattice rows)."""
    data, rad = _data("NAC")
    assert not rad.is_doublet and rad.polarization.kind == "synchrotron"
    lib = Library.bundled(user_dir=False)
    fit = WholePatternFit(data, [lib.phase("NAC"), lib.phase("CaF2")], rad, lattice=False)
    g = dict(G, U=0.0, V=0.0, W=1e-5, zero=0.002, disp=0.0)
    for k in (0, 1):
        for deriv in (False, True):
            fast, slow = _both(fit, k, np.zeros(0), g, deriv, None, monkeypatch)
            _assert_close(fast, slow)
            if deriv:
                assert fast["rows"].shape[0] == 6           # η, shift, displacement, U, V, W


def test_a_flat_cell_is_refused_in_both_forms(monkeypatch):
    """A triclinic cell strained flat (α = β = γ = 120°: det G = 0) is not a cell: the compiled
    path hands over to the NumPy form, which raises the library's error."""
    data, rad = _data("PbSO4")
    lib = Library.bundled(user_dir=False)
    fit = WholePatternFit(data, [lib.phase("FeN4_COD2242624")], rad)
    m = fit.models[0]
    q = np.array([0.0, 0.0, 0.0] + [120.0 - v for v in m.cell0[3:]])
    with pytest.raises(SimulationError, match="not a valid unit cell"):
        fit.phase_eval(m, q, G, True)
    monkeypatch.setattr(P, "_COMPILED", [P._COMPILED[0], P._COMPILED[1]])
    with pytest.raises(SimulationError, match="not a valid unit cell"):
        fit.phase_eval(m, q, G, True)
