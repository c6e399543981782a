"""Rigid-body refinement of a closo-B12H12 icosahedron (K2B12H12, Fm-3) on a SYNTHETIC pattern:
the pattern is simulated (``xtal.simulate``, Poisson noise, stated seed) from the CIF with the
icosahedron's B–B and B–H distances changed; the refinement must find them again."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import BUNDLED_STRUCTURES, REF_STRUCTURES
from xtal.io import Pattern
from xtal.refine import rietveld
from xtal.refine.rigid import fit_icosahedron
from xtal.report.refine import render_rietveld_markdown
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
    # xtal.simulate is f0-only: refine with the same physics (no f′, f″)
    res = rietveld(pat, [ph], refine=("scale", "background", "cell", "profile", "rigid", "uiso"),
                   rigid_bodies={ph.id: [start]}, anomalous=False)
    pid = ph.id
    bb, bb_su = res.value(f"{pid}:body0:dBB"), res.su(f"{pid}:body0:dBB")
    bh, bh_su = res.value(f"{pid}:body0:dBH"), res.su(f"{pid}:body0:dBH")
    assert bb_su is not None and bh_su is not None
    assert abs(bb - TRUE_BB) < 4 * bb_su + 2e-3, (bb, bb_su)
    assert abs(bh - TRUE_BH) < 4 * bh_su + 5e-3, (bh, bh_su)
    assert abs(bb - ico.d_bb) > 10 * bb_su          # it moved from the CIF's value
    # the orientation is fixed by the m-3 site symmetry of the centre: no angle refines
    assert start.angle_free == [False, False, False] and start.site_symmetry == "m-3"
    assert all(res.value(f"{pid}:body0:{a}") == 0.0 for a in ("rot1", "rot2", "rot3"))
    assert res.converged and not res.undetermined


LI_MODEL = BUNDLED_STRUCTURES / "models" / "alpha_Li2B12H12_model.cif"
TURN_DEG = 10.0


def test_turned_anion_of_alpha_li2b12h12_refines_back_about_its_free_axis():
    """α-Li2B12H12 (Pa-3, model): the B12H12 centre is on a −3 site, so the site symmetry leaves
    one turn free — about the local 3-fold [111] — and fixes the other two. A pattern of the model
    with the anion turned by 10° about that axis must refine back to 10° (< 0.5°), with an s.u.;
    the report must say which angles the data determined and which the symmetry fixed."""
    ph = read_cif(LI_MODEL)
    ico = fit_icosahedron(ph, (0.0, 0.0, 0.0), ["B1", "B2"], ["H1", "H2"])
    # the free axis comes from the site symmetry (−3): one angle, about [111]
    assert ico.site_symmetry == "-3"
    assert ico.angle_free == [True, False, False]
    np.testing.assert_allclose(np.abs(ico.axes[:, 0]), np.full(3, 1 / np.sqrt(3)), atol=1e-8)
    turned = dataclasses.replace(ico, angles=np.array([np.radians(TURN_DEG), 0.0, 0.0]))
    # ≈ 6·10⁴ counts at the strongest peak, background 50
    sim = simulate(_with_body(ph, turned), 0.7093, (4.0, 40.0), 0.01, fwhm_deg=0.06, eta=0.4, scale=3e-4)
    rng = np.random.default_rng(1015)
    y = rng.poisson(sim.intensity + 50.0).astype(float)
    pat = Pattern(x=sim.two_theta_deg, intensity=y, sigma=np.sqrt(np.maximum(y, 1.0)),
                  wavelength_angstrom=0.7093, source="synthetic α-Li2B12H12, anion turned 10° (xtal.simulate)")
    start = fit_icosahedron(ph, (0.0, 0.0, 0.0), ["B1", "B2"], ["H1", "H2"])   # un-turned
    res = rietveld(pat, [ph], refine=("scale", "background", "cell", "profile", "rigid"),
                   rigid_bodies={ph.id: [start]}, anomalous=False)      # f0-only, as xtal.simulate
    pid = ph.id
    ang, ang_su = np.degrees(res.value(f"{pid}:body0:rot1")), res.su(f"{pid}:body0:rot1")
    assert ang_su is not None and ang_su > 0
    assert abs(ang - TURN_DEG) < 0.5, (ang, np.degrees(ang_su))
    assert abs(ang - TURN_DEG) < 4 * np.degrees(ang_su) + 0.05
    # the two other angles stay at 0: fixed by the site symmetry, not refined, no s.u.
    for nm in ("rot2", "rot3"):
        assert res.value(f"{pid}:body0:{nm}") == 0.0 and res.su(f"{pid}:body0:{nm}") is None
    body = res.rigid_bodies[0]
    status = {p["name"].split(":")[-1]: p["status"] for p in body["params"]}
    assert status["rot1"] == "refined"
    assert status["rot2"].startswith("fixed by site symmetry") and status["rot3"].startswith("fixed by site symmetry")
    assert body["params"][0]["axis"] == "[1 1 1]"
    md = render_rietveld_markdown(res)
    assert "site symmetry -3" in md and md.count("fixed by site symmetry (-3)") == 2
    assert "| [1 1 1] |" in md and "| refined |" in md
    assert res.converged


@pytest.mark.parametrize("centre, n_free, symbol", [((0.0, 0.0, 0.0), 1, "-3"), ((0.378, 0.378, 0.378), 1, "3"),
                                                    ((0.1, 0.2, 0.3), 3, "1")])
def test_free_rotation_axes_follow_from_the_site_symmetry(centre, n_free, symbol):
    """Pa-3: on −3 (4a) and 3 (8c) one turn about [111] is allowed, on a general position all three."""
    from xtal.refine.rigid import axis_direction, symmetry_axes

    ph = read_cif(LI_MODEL)
    axes, free, sym = symmetry_axes(centre, ph)
    assert sum(free) == n_free and free[:n_free] == [True] * n_free and sym == symbol
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-10)
    if n_free == 1:
        assert axis_direction(axes[:, 0], ph.cell.orthogonalization_matrix()) == "[1 1 1]"
