"""The calculated pattern of a refinement and its Jacobian.

A phase contributes ``S · Σ_k I_k · PO_k · LP · w_line · φ_k(2θ)`` (the intensity convention of
``xtal.identify.fit``: unit-area pseudo-Voigt peaks in ° 2θ, I_k = mult·|F|² per cell). I_k come
either from the structure (`StructurePhase`: ``xtal.simulate.structure_factors`` of the current
sites) or are free (Le Bail). Peaks are unit-area columns of a sparse matrix Φ
(``xtal.profiles.pseudo_voigt_matrix``), so every intensity derivative is Φ @ ∂(areas)/∂p and the
peak-shape derivatives (zero, displacement, cell, U, V, W, η) come analytically from
``xtal.profiles.pseudo_voigt``. Structure-factor derivatives are forward differences on
``structure_factors``. The cell is parameterised by crystal system through
``xtal.identify.model.PhaseModel`` (relative strains of a, b, c; angle shifts).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from xtal.beam import lorentz_polarization, two_theta_from_d
from xtal.identify.model import PhaseModel
from xtal.profiles import MIN_FWHM_DEG, caglioti_fwhm, pseudo_voigt, pseudo_voigt_matrix
from xtal.refine.constraints import UIJ_NAMES, adp_constraints, allowed_shifts, coordinate_names, pivot_names
from xtal.simulate import MarchDollase, _march_dollase, reciprocal_metric, reflection_table, structure_factors

#: forward-difference steps of the structure parameters (fractional, Å², occupancy)
FD_STEP = {"xyz": 1e-5, "uiso": 1e-5, "uij": 1e-5, "occ": 1e-5, "po": 1e-5, "rb": 1e-5}


class Lattice(PhaseModel):
    """The cell of a phase by crystal system (``PhaseModel``'s mapping) on an explicit hkl list
    that keeps every allowed reflection (also those of zero |F|², which may grow in a refinement)."""

    def __init__(self, phase: Any, hkl: np.ndarray):
        super().__init__(phase, 50.0, "cell")      # the reflection list of PhaseModel is replaced
        self.hkl = np.asarray(hkl, dtype=float)
        h, k, l = self.hkl.T
        self.hh = np.stack([h * h, k * k, l * l, 2 * h * k, 2 * h * l, 2 * k * l], axis=1)
        self.fmult = np.zeros(len(self.hkl))


@dataclass
class SiteParams:
    """Refinable description of one asymmetric-unit site: x = x0 + N·u (N from the site symmetry);
    for a site with Uij, (U11 … U23) = M·v (M: `constraints.adp_constraints`, ``uij_names`` the
    free components)."""

    label: str
    x0: np.ndarray
    basis: np.ndarray
    names: list[str]
    u: np.ndarray
    uiso: float
    occ: float
    aniso: bool
    uij_basis: np.ndarray = field(default_factory=lambda: np.zeros((6, 0)))
    uij_names: list[str] = field(default_factory=list)
    v: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def frac(self) -> np.ndarray:
        return self.x0 + self.basis @ self.u

    def uij(self) -> np.ndarray:
        """U11 U22 U33 U12 U13 U23 (Å², CIF convention) of a site with Uij."""
        return self.uij_basis @ self.v


@dataclass
class PhaseSetup:
    """One phase of a refinement: its reflections, lattice mapping and refinable structure."""

    phase: Any
    lattice: Lattice
    hkl: np.ndarray
    mult: np.ndarray
    rotations: np.ndarray
    sites: list[SiteParams]
    po_axis: tuple[int, int, int] | None = None
    intensities: np.ndarray | None = None     # free intensities (Le Bail); None: from the structure
    bodies: list = field(default_factory=list)  # rigid bodies (`rigid.Icosahedron`) on this phase
    #: {element: f′ + i f″} in the structure factors (`dispersion.anomalous_dispersion`); {}: none
    dispersion: dict = field(default_factory=dict)
    _fcache: dict = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return str(self.phase.id)


def setup_phase(phase: Any, dmin: float, po_axis: Sequence[int] | None = None) -> PhaseSetup:
    """Reflections down to ``dmin`` (all allowed ones), lattice mapping and site freedoms."""
    tab = reflection_table(phase, wavelength_angstrom=1.0, two_theta_range_deg=(1.0, 2.0),
                           d_min_angstrom=dmin, d_max_angstrom=1000.0)
    hkl = np.asarray(tab.hkl, dtype=float).reshape(-1, 3)
    sites = []
    rc = phase.cell.to_gemmi().reciprocal()
    for s in phase.sites:
        basis = allowed_shifts(s.frac, phase.symops)
        sp = SiteParams(s.label, np.asarray(s.frac, dtype=float), basis, coordinate_names(basis),
                        np.zeros(basis.shape[1]), float(s.u_iso if s.u_iso is not None else 0.0),
                        float(s.occupancy), s.u_aniso is not None)
        if sp.aniso:
            sp.uij_basis = adp_constraints(s.frac, phase.symops, (rc.a, rc.b, rc.c))
            sp.uij_names = pivot_names(sp.uij_basis, UIJ_NAMES)
            sp.v = np.linalg.lstsq(sp.uij_basis, np.asarray(s.u_aniso, dtype=float), rcond=None)[0]
        sites.append(sp)
    return PhaseSetup(phase, Lattice(phase, hkl), hkl, np.asarray(tab.multiplicity, dtype=float),
                      np.asarray(tab.laue_rotations), sites,
                      tuple(int(v) for v in po_axis) if po_axis is not None else None)


def structure_with(ps: PhaseSetup, cell: Sequence[float], sites: Sequence[SiteParams]) -> Any:
    """A copy of the phase with the given cell and site parameters (the CIF's phase is untouched)."""
    from xtal.structures.model import Cell

    new_sites = []
    for s0, sp in zip(ps.phase.sites, sites):
        kw: dict[str, Any] = {"frac": tuple(float(v) for v in sp.frac()), "occupancy": sp.occ}
        if sp.aniso:
            kw["u_aniso"] = tuple(float(v) for v in sp.uij())
        else:
            kw["u_iso"] = sp.uiso
        new_sites.append(dataclasses.replace(s0, **kw))
    new_cell = Cell(*(float(v) for v in cell))
    return dataclasses.replace(ps.phase, sites=new_sites, cell=new_cell, _images=None, _atoms=None)


def apply_bodies(ps: PhaseSetup, cell: Sequence[float]) -> None:
    """Move the sites carried by rigid bodies to the bodies' vertices (projected on each site's
    symmetry-allowed shifts)."""
    if not ps.bodies:
        return
    from xtal.structures.model import Cell

    orth = Cell(*(float(v) for v in cell)).orthogonalization_matrix()
    by_label = {s.label: s for s in ps.sites}
    for body in ps.bodies:
        for label, target in body.site_positions(orth).items():
            sp = by_label[label]
            if sp.basis.shape[1]:
                sp.u = np.linalg.lstsq(sp.basis, target - sp.x0, rcond=None)[0]


def fmult_of(ps: PhaseSetup, cell: Sequence[float], sites: Sequence[SiteParams]) -> np.ndarray:
    """mult·|F|² of every reflection for a cell and site parameters."""
    f = structure_factors(structure_with(ps, cell, sites), ps.hkl, precision="double",
                          dispersion=ps.dispersion or None)
    return ps.mult * (f.real ** 2 + f.imag ** 2)


def po_factor(ps: PhaseSetup, r: float, cell: Sequence[float]) -> np.ndarray:
    if ps.po_axis is None:
        return np.ones(len(ps.hkl))
    return _march_dollase(MarchDollase(ps.po_axis, max(r, 1e-3)), ps.hkl.astype(int), ps.rotations,
                          reciprocal_metric(cell))


@dataclass
class Peaks:
    """All line-reflection peaks of one phase in the fitted range."""

    ridx: np.ndarray       # reflection of each peak
    centre: np.ndarray     # ° 2θ
    fwhm: np.ndarray
    lpw: np.ndarray        # LP × line weight
    dcentre: np.ndarray    # (n_peaks, 2 + n_cell): zero, displacement, cell strains
    dfwhm: np.ndarray      # (n_peaks, 3): U, V, W


def phase_peaks(ps: PhaseSetup, q: np.ndarray, g: dict[str, float], rad: Any,
                xr: tuple[float, float]) -> Peaks:
    """Centres, FWHM and their derivatives for every line of the radiation."""
    d, dd = ps.lattice.d_spacings_and_derivatives(q)
    out: dict[str, list] = {k: [] for k in ("ridx", "c", "f", "lpw", "dc", "df")}
    for lam, wt in zip(rad.wavelengths, rad.weights):
        tth = two_theta_from_d(d, lam)
        ok = np.isfinite(tth) & (lam / (2.0 * d) < 0.99999)
        th = np.radians(np.where(ok, tth, 90.0)) / 2.0
        c = tth + g["zero"] + g["displacement"] * np.cos(th)
        f = caglioti_fwhm(np.where(ok, tth, 90.0), g["U"], g["V"], g["W"], min_fwhm_deg=MIN_FWHM_DEG)
        sel = ok & (c > xr[0] - 8 * f) & (c < xr[1] + 8 * f)
        idx = np.nonzero(sel)[0]
        tt = np.tan(th[idx])
        out["ridx"].append(idx)
        out["c"].append(c[idx])
        out["f"].append(f[idx])
        out["lpw"].append(lorentz_polarization(tth[idx], rad.polarization) * wt)
        dcell = -np.degrees(2.0 * tt / d[idx])[:, None] * dd[idx]
        out["dc"].append(np.concatenate([np.ones((idx.size, 1)), np.cos(th[idx])[:, None], dcell], axis=1))
        out["df"].append(np.stack([tt * tt, tt, np.ones_like(tt)], axis=1) / (2.0 * f[idx, None]))
    cat = {k: np.concatenate(v) for k, v in out.items()}
    order = np.argsort(cat["c"], kind="stable")
    return Peaks(cat["ridx"][order], cat["c"][order], cat["f"][order], cat["lpw"][order],
                 cat["dc"][order], cat["df"][order])


def shape_jacobian(x: np.ndarray, pk: Peaks, areas: np.ndarray, eta: float) -> dict[str, Any]:
    """Analytic derivatives of one phase's profile w.r.t. zero, displacement, cell, U, V, W, η."""
    return pseudo_voigt(x, pk.centre, areas, pk.fwhm, eta, derivatives=True,
                        dcentre=pk.dcentre, dfwhm=pk.dfwhm)


def profile_matrix(x: np.ndarray, pk: Peaks, eta: float):
    """Φ (points × peaks) of one phase; Φ @ (I[ridx]·lpw) is its profile at unit scale."""
    return pseudo_voigt_matrix(x, pk.centre, pk.fwhm, eta)


def chebyshev_basis(x: np.ndarray, n: int) -> np.ndarray:
    u = 2.0 * (x - x[0]) / max(float(x[-1] - x[0]), 1e-9) - 1.0
    return np.polynomial.chebyshev.chebvander(u, max(1, n) - 1)


def two_theta_dmin(x_max: float, rad: Any, margin: float = 0.03) -> float:
    """Smallest d (Å) the fitted range needs (room for a few % of lattice change)."""
    return min(rad.wavelengths) / (2.0 * math.sin(math.radians(min(x_max + 1.0, 179.0) / 2.0))) * (1 - margin)
