"""Rigid-body refinement of a closo-B12H12 icosahedron (K2B12H12, Fm-3) on a SYNTHETIC pattern:
the pattern is simulated (``xtal.simulate``, Poisson noise, stated seed) from the CIF with the
icosahedron's B–B and B–H distances changed; the refinement must find them again."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import REF_STRUCTURES
from xtal.io import Pattern
from xtal.refine import rietveld
from xtal.refine.rigid import fit_icosahedron
from xtal.simulate import simulate
from xtal.structures import read_cif

TRUE_BB, TRUE_BH = 1.80, 1.12


def _with_body(phase, ico):
    pos = ico.site_positions(phase.cell.orthogonalization_matrix())
    sites = [dataclasses.replace(s, frac=tuple(float(v) for v in pos[s.label])) if s.label in pos else s
             for s in phase.sites]
    return dataclasses.replace(phase, sites=sites, _images=None, _atoms=None)


def test_icosahedron_fits_the_cif_and_refines_its_distances():
    ph = read_cif(REF_STRUCTURES / "K2B12H12_Fm-3.cif")
    ph = dataclasses.replace(ph, sites=[dataclasses.replace(s, u_iso=0.01) for s in ph.sites],
                             _images=None, _atoms=None)
    ico = fit_icosahedron(ph, (0.0, 0.5, 0.5), ["B1"], ["H1"])
    # the CIF's icosahedron: B–B ≈ 1.78 Å, B–H ≈ 1.07 Å, B1 reproduced to < 0.02 Å (the CIF body is not exactly regular)
    assert 1.70 < ico.d_bb < 1.85 and 0.95 < ico.d_bh < 1.25
    pos = ico.site_positions(ph.cell.orthogonalization_matrix())
    b1 = next(s for s in ph.sites if s.label == "B1")
    dv = ph.cell.orthogonalization_matrix() @ (pos["B1"] - np.asarray(b1.frac))
    assert np.linalg.norm(dv) < 0.02
    # synthetic data from the same body with other distances
    truth = dataclasses.replace(ico, angles=ico.angles.copy(), d_bb=TRUE_BB, d_bh=TRUE_BH)
    sim = simulate(_with_body(ph, truth), 0.7093, (5.0, 45.0), 0.01, fwhm_deg=0.06, eta=0.4, scale=5e-3)
    rng = np.random.default_rng(15)
    y = rng.poisson(sim.intensity + 50.0).astype(float)
    pat = Pattern(x=sim.two_theta_deg, intensity=y, sigma=np.sqrt(np.maximum(y, 1.0)),
                  wavelength_angstrom=0.7093, source="synthetic K2B12H12 (xtal.simulate)")
    start = fit_icosahedron(ph, (0.0, 0.5, 0.5), ["B1"], ["H1"])
    res = rietveld(pat, [ph], refine=("scale", "background", "cell", "profile", "rigid", "uiso"),
                   rigid_bodies={ph.id: [start]})
    pid = ph.id
    bb, bb_su = res.value(f"{pid}:body0:dBB"), res.su(f"{pid}:body0:dBB")
    bh, bh_su = res.value(f"{pid}:body0:dBH"), res.su(f"{pid}:body0:dBH")
    assert bb_su is not None and bh_su is not None
    assert abs(bb - TRUE_BB) < 4 * bb_su + 2e-3, (bb, bb_su)
    assert abs(bh - TRUE_BH) < 4 * bh_su + 5e-3, (bh, bh_su)
    assert abs(bb - ico.d_bb) > 10 * bb_su          # it moved from the CIF's value
    # the orientation is fixed by the m-3 site symmetry of the centre: no angle refines
    assert start.angle_free == [False, False, False]
    assert all(res.value(f"{pid}:body0:{a}") == 0.0 for a in ("rx", "ry", "rz"))
    assert res.converged and not res.undetermined
