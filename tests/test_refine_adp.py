"""Anisotropic displacement parameters: the Uij allowed at each site follow from its site
symmetry (U = A U Aᵀ for every site-symmetry operation, `constraints.adp_constraints`), and a
synthetic pattern (``xtal.simulate``, Poisson noise, stated seed) of PbSO4 with anisotropic Pb
refines back to the Uij it was made with, each with an s.u. from the covariance.

Why no refinement test on real data: the real patterns do not determine Uij meaningfully.
PbSO4 lab (16–110°, benchmarks/bench_refine.py): Pb U11 U22 U33 U13 = 0.0262(6) 0.0272(6)
0.0321(7) −0.0004(9), χ² 5.81 → 5.75, anisotropy < 3 s.u. after the Bérar–Lelann factor 2.45.
NAC 11-BM (2–30°, χ² 28.5, Bérar–Lelann 7.2): Rwp 14.92 → 14.83 %, and e.g. F2 U11 0.0037(15)
against the single-crystal 0.0115 — the misfit of the profile, not the Uij, dominates."""
from __future__ import annotations

import dataclasses

import gemmi
import numpy as np
import pytest

from conftest import REF_STRUCTURES
from xtal.io import Pattern
from xtal.refine import rietveld
from xtal.refine.constraints import UIJ_NAMES, adp_constraints, pivot_names
from xtal.report.refine import render_rietveld_markdown
from xtal.simulate import simulate
from xtal.structures import read_cif
from xtal.structures.cif import read_cif_string


def _ops(hm: str) -> list[str]:
    return [op.triplet() for op in gemmi.SpaceGroup(hm).operations()]


@pytest.mark.parametrize("hm, frac, free, basis_rows", [
    # 3-fold along [111] (Pa-3, 8c): U11 = U22 = U33, U12 = U13 = U23
    ("P a -3", (0.3, 0.3, 0.3), ["U11", "U12"], [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]),
    # mirror ⊥ b (Pnma, 4c x ¼ z): U12 = U23 = 0
    ("P n m a", (0.19, 0.25, 0.17), ["U11", "U22", "U33", "U13"],
     [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]]),
    # m-3m (Fm-3m, 4a): isotropic
    ("F m -3 m", (0.0, 0.0, 0.0), ["U11"], [[1, 1, 1, 0, 0, 0]]),
    # 6/mmm (P6/mmm, 1a), hexagonal axes: U11 = U22 = 2 U12, U13 = U23 = 0 (needs the a* scaling)
    ("P 6/m m m", (0.0, 0.0, 0.0), ["U11", "U33"], [[1, 1, 0, 0.5, 0, 0], [0, 0, 1, 0, 0, 0]]),
    # general position: all six
    ("P 1", (0.1, 0.2, 0.3), list(UIJ_NAMES), np.eye(6).tolist()),
])
def test_uij_constraints_follow_from_the_site_symmetry(hm, frac, free, basis_rows):
    system = gemmi.SpaceGroup(hm).crystal_system_str()
    cell = {"cubic": (6, 6, 6, 90, 90, 90), "hexagonal": (5, 5, 7, 90, 90, 120)}.get(system, (5, 6, 7, 90, 90, 90))
    rc = gemmi.UnitCell(*cell).reciprocal()
    basis = adp_constraints(frac, _ops(hm), (rc.a, rc.b, rc.c))
    assert pivot_names(basis, UIJ_NAMES) == free
    np.testing.assert_allclose(basis.T, np.array(basis_rows, dtype=float), atol=1e-10)


TRUE_PB = (0.024, 0.012, 0.016, 0.0, 0.004, 0.0)      # U11 U22 U33 U12 U13 U23 (Å²), 4c site of Pnma


def _pb_aniso(phase, uij):
    sites = [dataclasses.replace(s, u_aniso=tuple(uij), adp_type="Uani") if s.label == "Pb" else s
             for s in phase.sites]
    return dataclasses.replace(phase, sites=sites, _images=None, _atoms=None)


def test_anisotropic_pb_of_pbso4_refines_back_on_a_synthetic_pattern():
    ph = read_cif(REF_STRUCTURES / "PbSO4.cif")
    sim = simulate(_pb_aniso(ph, TRUE_PB), 1.5406, (15.0, 140.0), 0.02, fwhm_deg=0.08, eta=0.5, scale=1e-3)
    rng = np.random.default_rng(2015)
    y = rng.poisson(sim.intensity + 100.0).astype(float)
    pat = Pattern(x=sim.two_theta_deg, intensity=y, sigma=np.sqrt(np.maximum(y, 1.0)), wavelength_angstrom=1.5406,
                  source="synthetic PbSO4, anisotropic Pb (xtal.simulate)")
    start = _pb_aniso(ph, (0.015, 0.015, 0.015, 0.0, 0.0, 0.0))
    res = rietveld(pat, [start], refine=("scale", "background", "cell", "profile", "uij"),
                   anomalous=False)                  # f0-only, as xtal.simulate made the pattern
    pb = next(s for s in res.phases[0].sites if s.label == "Pb")
    assert pb.free_uij == ["U11", "U22", "U33", "U13"]
    for k, name in enumerate(UIJ_NAMES):
        if name in ("U12", "U23"):              # zero by the mirror: not refined, no s.u.
            assert pb.u_aniso[k] == 0.0 and pb.u_aniso_su[k] is None
            continue
        su = pb.u_aniso_su[k]
        assert su is not None and 0 < su < 2e-3, (name, su)
        assert abs(pb.u_aniso[k] - TRUE_PB[k]) < 4 * su, (name, pb.u_aniso[k], su)
        assert res.su(f"{res.phases[0].id}:Pb:{name}") is not None
    assert abs(pb.u_aniso[0] - 0.015) > 10 * pb.u_aniso_su[0]     # it moved from the start
    refined = res.phases[0].structure()
    assert next(s for s in refined.sites if s.label == "Pb").u_aniso == pb.u_aniso
    # the refined CIF carries the refined Uij with their s.u., and xtal reads them back
    from xtal.io.cif_writer import refined_cif_text
    back = read_cif_string(refined_cif_text(res))
    pb_back = next(s for s in back.sites if s.label == "Pb")
    for k, name in enumerate(UIJ_NAMES):
        assert pb_back.u_aniso[k] == pytest.approx(pb.u_aniso[k], abs=max(pb.u_aniso_su[k] or 0, 1e-5))
    assert pb_back.u_aniso_su[0] == pytest.approx(pb.u_aniso_su[0], rel=0.5)
    md = render_rietveld_markdown(res)
    assert "| U11 | U22 | U33 | U12 | U13 | U23 (Å²) | free by site symmetry |" in md
    assert "U11, U22, U33, U13 |" in md
    assert res.converged


def test_uij_constraints_reproduce_the_single_crystal_uij_of_nac():
    """NAC (Na2Ca3Al2F14, I2₁3; single-crystal Uij in the CIF): every site's published Uij lies in
    the space the derived constraints allow, and the free parameters are those of its Wyckoff site."""
    nac = read_cif(REF_STRUCTURES / "NAC.cif")
    rc = nac.cell.to_gemmi().reciprocal()
    expected = {"Ca1": ["U11", "U22", "U33", "U23"],           # 12b (x, 0, ¼): 2-fold along a
                "Al1": ["U11", "U12"], "Na1": ["U11", "U12"], "F3": ["U11", "U12"],   # 3-fold [111]
                "F1": list(UIJ_NAMES), "F2": list(UIJ_NAMES)}  # general position
    for s in nac.sites:
        basis = adp_constraints(s.frac, nac.symops, (rc.a, rc.b, rc.c))
        assert pivot_names(basis, UIJ_NAMES) == expected[s.label], s.label
        u = np.asarray(s.u_aniso)
        fit = basis @ np.linalg.lstsq(basis, u, rcond=None)[0]
        np.testing.assert_allclose(fit, u, atol=6e-5)         # the CIF gives Uij to 1e-4
