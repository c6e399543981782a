"""Powder-pattern simulation: reflection table, Lorentz–polarisation, peak profiles, export, figure.

Built on pymatgen's `XRDCalculator` design (structure factor Σ f·exp(2πi h·x) vectorised over hkl,
form factors from a Gaussian table, LP for powder), with the gaps it leaves closed:

* one row per **symmetry-independent** reflection, enumerated in gemmi's reciprocal asymmetric unit
  (`gemmi.make_miller_array`), systematic absences removed, **multiplicity from the real space group**
  (Laue-group orbit size: ``2·n_pg/ε`` for acentric, ``n_pg/ε`` for centric reflections, with
  ``ε = GroupOps.epsilon_factor_without_centering`` — Friedel pairs merged as in a powder);
* per-atom **ADPs** from the CIF (Uiso, or the rotated anisotropic β tensor of every image),
  **occupancy**, **hydrogen** included;
* form factors from International Tables (IT92, default) or pymatgen's table (`xtal.formfactors`);
* Lorentz–polarisation (`xtal.beam.lorentz_polarization`) for an unpolarised lab beam, a monochromated lab beam or a synchrotron;
* pseudo-Voigt profiles (constant, Caglioti U V W, or Thompson–Cox–Hastings U V W X Y), Kα1/Kα2,
  March–Dollase preferred orientation, zero shift; exact and fast (`pseudo_voigt_profile`).

Intensity convention (shared with `synth`/`identify`): ``I_hkl = m·|F|²·LP·PO`` with |F|² per unit
cell in electrons² (not divided by V²); a profile is Σ I_hkl·Φ(2θ − 2θ_hkl) with Φ area-normalised in
degrees 2θ, so the integral of a peak over 2θ (°) is its intensity.

No function here reads, writes or prints: the beam (λ, polarisation, Bragg's law, LP) is `xtal.beam`,
the writers of simulated patterns and reflection tables are `xtal.io.simulated`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import gemmi
import numpy as np

from xtal.beam import (Polarization, check_wavelength, convert_two_theta, d_from_two_theta, lorentz_polarization,
                       parse_polarization, parse_radiation, q_from_two_theta, two_theta_from_d)
from xtal.errors import SimulationError
from xtal.formfactors import (DEFAULT_FORM_FACTORS, FORM_FACTOR_SOURCES, FormFactorError,
                              element_for_scattering, form_factor)
from xtal.profiles import caglioti_fwhm, pseudo_voigt_profile, tch_fwhm_eta
from xtal.structures import MODEL_WARNING, Phase
from xtal.structures.validate import check_physical
from xtal.util import finite_float

__all__ = [
    "MAX_ZERO_SHIFT_DEG", "MODEL_WARNING",
    "FORM_FACTOR_SOURCES", "DEFAULT_FORM_FACTORS", "MarchDollase", "ReflectionTable", "SimulatedPattern",
    "FormFactorError", "reflection_table", "structure_factors", "multiplicities", "d_spacings",
    "reciprocal_metric", "cell_volume", "simulate",
]

# No default wavelength: a simulation must state λ (a silent Mo Kα default gave wrong 2θ for Cu data).
#: Largest |zero shift| (° 2θ) accepted: instrument zero errors are a few hundredths to tenths of a degree.
MAX_ZERO_SHIFT_DEG = 5.0
MAX_POINTS = 5_000_000


# =============================================================================
# validation helpers
# =============================================================================
def _finite(name: str, value: Any) -> float:
    return finite_float(name, value, SimulationError)


def _check_range(rng: Any, name: str = "two_theta_range_deg") -> tuple[float, float]:
    try:
        lo, hi = rng
    except (TypeError, ValueError):
        raise SimulationError(f"{name} must be a pair (min, max) in degrees, got {rng!r}", field=name) from None
    lo, hi = _finite(name, lo), _finite(name, hi)
    if not 0.0 <= lo < hi:
        raise SimulationError(f"empty or reversed 2θ range ({lo}, {hi})°", field=name)
    if hi >= 180.0:
        raise SimulationError(f"2θ max {hi}° must be < 180°", field=name)
    return lo, hi


def reciprocal_metric(cell_params: Sequence[float]) -> np.ndarray:
    """Reciprocal metric tensor G* (Å⁻²) of a cell (a, b, c, α, β, γ) in Å and degrees.

    G* = G⁻¹ in closed form (adjugate over det G, det G = V²): called for every reflection table
    and strained cell, where LAPACK's 3×3 inverse and determinant cost more than the arithmetic.
    """
    a, b, c, al, be, ga = (float(v) for v in cell_params)
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    g11, g22, g33 = a * a, b * b, c * c
    g12, g13, g23 = a * b * cg, a * c * cb, b * c * ca
    c11, c22, c33 = g22 * g33 - g23 * g23, g11 * g33 - g13 * g13, g11 * g22 - g12 * g12
    c12, c13, c23 = g13 * g23 - g12 * g33, g12 * g23 - g13 * g22, g12 * g13 - g11 * g23
    det = g11 * c11 + g12 * c12 + g13 * c13
    # det G / (a b c)² = 1 − cos²α − cos²β − cos²γ + 2 cos α cos β cos γ: zero for a flat cell
    if not (math.isfinite(det) and det > 1e-12 * g11 * g22 * g33
            and all(map(math.isfinite, (a, b, c, ca, cb, cg)))):
        raise SimulationError(f"cell {tuple(cell_params)} is not a valid unit cell", field="cell_params")
    return np.array([[c11, c12, c13], [c12, c22, c23], [c13, c23, c33]]) / det


def cell_volume(cell_params: Sequence[float]) -> float:
    """Volume (Å³) of a cell (a, b, c, α, β, γ) in Å and degrees."""
    a, b, c, al, be, ga = (float(v) for v in cell_params)
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    return a * b * c * math.sqrt(max(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg, 0.0))


def d_spacings(cell_params: Sequence[float], hkl: np.ndarray) -> np.ndarray:
    """d (Å) of reflections hkl (n×3) for cell (a, b, c, α, β, γ) in Å and degrees (any strain)."""
    if len(cell_params) != 6:
        raise SimulationError("cell_params must be (a, b, c, alpha, beta, gamma)", field="cell_params")
    for v in cell_params:
        _finite("cell_params", v)
    gs = reciprocal_metric(cell_params)
    h = np.atleast_2d(np.asarray(hkl, dtype=float))
    inv_d2 = np.einsum("ni,ij,nj->n", h, gs, h)
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(inv_d2)


# =============================================================================
# preferred orientation
# =============================================================================
@dataclass(frozen=True)
class MarchDollase:
    """March–Dollase preferred orientation along the reciprocal-lattice direction ``axis`` (hkl).

    r = 1: random; r < 1: platelets with ``axis`` normal to the plates (flat-plate reflection);
    r > 1: needles. Correction per reflection = mean over its symmetry-equivalent hkl of
    (r² cos²α + sin²α / r)^(−3/2), α = angle between hkl and axis.
    """

    axis: tuple[int, int, int] = (0, 0, 1)
    r: float = 1.0

    def __post_init__(self) -> None:
        r = _finite("March-Dollase r", self.r)
        if r <= 0:
            raise SimulationError(f"March–Dollase r must be > 0, got {r}", field="preferred_orientation")
        if len(self.axis) != 3 or not any(self.axis):
            raise SimulationError(f"preferred-orientation axis {self.axis} must be a non-zero hkl",
                                  field="preferred_orientation")


def march_dollase_cos2(hkl: np.ndarray, rotations: np.ndarray, gs: np.ndarray,
                       axis: Sequence[float]) -> np.ndarray:
    """cos² of the angle between every symmetry equivalent (n × m) of each hkl and ``axis`` (hkl),
    in the reciprocal metric ``gs``; ``rotations`` as `laue_rotations` returns them."""
    h = np.asarray(hkl, dtype=float).reshape(-1, 3)
    eq = np.einsum("nj,mjk->nmk", h, rotations.astype(float))        # (n, m, 3)  h·R
    ax = np.asarray(axis, dtype=float)
    num = np.einsum("nmi,ij,j->nm", eq, gs, ax)
    n1 = np.sqrt(np.einsum("nmi,ij,nmj->nm", eq, gs, eq))
    n2 = math.sqrt(ax @ gs @ ax)
    return np.clip((num / (n1 * n2)) ** 2, 0.0, 1.0)


def march_dollase_factor(cos2: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """March–Dollase correction per reflection (mean over its equivalents) and its ∂/∂r."""
    t = r * r * cos2 + (1.0 - cos2) / r
    f = np.mean(t ** -1.5, axis=1)
    df = np.mean(-1.5 * t ** -2.5 * (2.0 * r * cos2 - (1.0 - cos2) / (r * r)), axis=1)
    return f, df


def _march_dollase(po: MarchDollase | None, hkl: np.ndarray, rotations: np.ndarray,
                   gs: np.ndarray) -> np.ndarray:
    if po is None or po.r == 1.0 or len(hkl) == 0:
        return np.ones(len(hkl))
    return march_dollase_factor(march_dollase_cos2(hkl, rotations, gs, po.axis), po.r)[0]


# =============================================================================
# symmetry: reflections, multiplicities
# =============================================================================
def group_ops(phase) -> gemmi.GroupOps:
    """gemmi's group of the phase's operators (cached per operator list: the returned object is shared,
    do not modify it)."""
    try:
        return _group_ops(tuple(phase.symops))
    except (RuntimeError, ValueError) as exc:
        raise SimulationError(f"symmetry operators of phase {phase.id!r} do not form a group ({exc})",
                              field="symops") from None


@lru_cache(maxsize=256)
def _group_ops(symops: tuple[str, ...]) -> gemmi.GroupOps:
    return gemmi.GroupOps([gemmi.Op(s) for s in symops])


def laue_rotations(gops: gemmi.GroupOps) -> np.ndarray:
    """Distinct point-group rotations R (integer 3×3) plus −R: the Laue group acting as h → h·R."""
    return _laue_rotations(tuple(op.triplet() for op in gops.sym_ops)).copy()


@lru_cache(maxsize=256)
def _laue_rotations(sym_ops: tuple[str, ...]) -> np.ndarray:
    rots = {tuple(np.array(gemmi.Op(t).rot, dtype=int).ravel() // gemmi.Op.DEN) for t in sym_ops}
    rots |= {tuple(-np.array(r)) for r in rots}
    return np.array(sorted(rots), dtype=int).reshape(-1, 3, 3)


def _conventional_hkl(hkl: np.ndarray, rots: np.ndarray) -> np.ndarray:
    """Display representative of each orbit: most non-negative indices, then largest (h, k, l)."""
    if len(hkl) == 0:
        return hkl
    off = int(np.abs(hkl).max()) + 1
    base = 2 * off + 1
    out = np.empty_like(hkl)
    for start in range(0, len(hkl), 20000):
        eq = np.einsum("nj,mjk->nmk", hkl[start:start + 20000], rots)
        key = ((((eq >= 0).sum(axis=2) * base + eq[..., 0] + off) * base + eq[..., 1] + off) * base
               + eq[..., 2] + off)
        best = key.argmax(axis=1)
        out[start:start + 20000] = eq[np.arange(len(eq)), best]
    return out


def multiplicities(gops: gemmi.GroupOps, hkl: np.ndarray) -> np.ndarray:
    """Powder multiplicity of each hkl: size of its orbit under the Laue group (Friedel pairs merged).

    m = 2·n/ε for acentric and n/ε for centric reflections, n = number of point-group operations
    (`GroupOps.sym_ops`), ε = `epsilon_factor_without_centering`.
    """
    h = np.ascontiguousarray(np.asarray(hkl, dtype=np.int32).reshape(-1, 3))
    if len(h) == 0:
        return np.zeros(0, dtype=int)
    n = len(gops.sym_ops)
    eps = np.asarray(gops.epsilon_factor_without_centering_array(h), dtype=int)
    centric = np.asarray(gops.centric_flag_array(h), dtype=bool)
    return np.where(centric, n // eps, 2 * n // eps).astype(int)


def _enumerate_unique_hkl(phase, gops: gemmi.GroupOps, d_min: float, d_max: float) -> np.ndarray:
    """Symmetry-independent, not systematically absent hkl with d_min ≤ d ≤ d_max."""
    cell = phase.cell.to_gemmi()
    sg = gemmi.find_spacegroup_by_ops(gops)
    if sg is not None:
        hkl = np.asarray(gemmi.make_miller_array(cell, sg, d_min, 0.0, True), dtype=int)
    else:  # operators not in a tabulated setting: enumerate a box, keep one canonical member per orbit
        hkl = _box_unique(phase, gops, d_min)
    if len(hkl) == 0:
        return hkl.reshape(0, 3)
    hkl = hkl[~np.asarray(gops.systematic_absences(np.ascontiguousarray(hkl, dtype=np.int32)), bool)]
    d = d_spacings(phase.cell.parameters, hkl)
    keep = (d >= d_min * (1 - 1e-12)) & (d <= d_max * (1 + 1e-12))
    return hkl[keep]


def _box_unique(phase, gops: gemmi.GroupOps, d_min: float) -> np.ndarray:
    lim = [int(math.ceil(x / d_min)) for x in (phase.cell.a, phase.cell.b, phase.cell.c)]
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in lim], indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    hkl = hkl[d_spacings(phase.cell.parameters, hkl) >= d_min]
    rots = laue_rotations(gops)
    base = 2 * max(lim) + 1
    keys = []
    for start in range(0, len(hkl), 20000):
        eq = np.einsum("nj,mjk->nmk", hkl[start:start + 20000], rots)
        k = ((eq[..., 0] + max(lim)) * base + (eq[..., 1] + max(lim))) * base + (eq[..., 2] + max(lim))
        keys.append(k.max(axis=1))
    own = ((hkl[:, 0] + max(lim)) * base + (hkl[:, 1] + max(lim))) * base + (hkl[:, 2] + max(lim))
    return hkl[own == np.concatenate(keys)]


# =============================================================================
# structure factors
# =============================================================================
@dataclass
class _AtomSet:
    """Atoms of one element: isotropic ones grouped by U (one Debye–Waller factor per group) and
    anisotropic ones with their own rotated β."""

    element: str
    iso_frac: np.ndarray        # (mi, 3)
    iso_occ: np.ndarray         # (mi,)
    iso_group: np.ndarray       # (mi,) index into iso_u
    iso_u: np.ndarray           # (g,) distinct Uiso (Å²)
    ani_frac: np.ndarray        # (ma, 3)
    ani_occ: np.ndarray         # (ma,)
    ani_beta6: np.ndarray       # (ma, 6): β11 β22 β33 2β12 2β13 2β23

    @property
    def n_atoms(self) -> int:
        return len(self.iso_occ) + len(self.ani_occ)


def _atom_sets(phase, form_factors: str) -> tuple[list[_AtomSet], list[str]]:
    notes: list[str] = []
    groups: dict[str, dict[str, list]] = {}
    no_adp: list[str] = []
    for img in phase.cell_atoms():
        s = phase.sites[img.site_index]
        el, note = element_for_scattering(s.element)
        if note and note not in notes:
            notes.append(note)
        g = groups.setdefault(el, {"if": [], "io": [], "iu": [], "af": [], "ao": [], "ab": []})
        if s.u_aniso is not None and img.beta is not None:
            b = np.asarray(img.beta, dtype=float)
            g["af"].append(np.asarray(img.frac, dtype=float))
            g["ao"].append(float(s.occupancy))
            g["ab"].append([b[0, 0], b[1, 1], b[2, 2], 2 * b[0, 1], 2 * b[0, 2], 2 * b[1, 2]])
        else:
            u = s.u_iso
            if u is None:
                u = 0.0
                if s.label not in no_adp:
                    no_adp.append(s.label)
            g["if"].append(np.asarray(img.frac, dtype=float))
            g["io"].append(float(s.occupancy))
            g["iu"].append(float(u))
    sets = []
    for el, g in groups.items():
        try:
            form_factor(el, np.zeros(1), form_factors)
        except FormFactorError as exc:
            raise FormFactorError(f"phase {phase.id!r}: {exc.message}", field="form_factors") from None
        iu, igroup = np.unique(np.asarray(g["iu"], dtype=float), return_inverse=True)
        sets.append(_AtomSet(
            el, np.asarray(g["if"], dtype=float).reshape(-1, 3), np.asarray(g["io"], dtype=float),
            igroup.astype(int).ravel(), iu, np.asarray(g["af"], dtype=float).reshape(-1, 3),
            np.asarray(g["ao"], dtype=float), np.asarray(g["ab"], dtype=float).reshape(-1, 6)))
    if no_adp:
        shown = ", ".join(no_adp[:8]) + (" …" if len(no_adp) > 8 else "")
        notes.append(f"no ADP for {len(no_adp)} site(s) ({shown}): U = 0 used (intensities at high "
                     "angle are overestimated)")
    return sets, notes


_CHUNK_ENTRIES = 1 << 15   # entries (hkl × atoms) per block: cache-sized temporaries are fastest


def _phase_sums(h: np.ndarray, frac: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2π h·x (n×m).

    float64: the argument is reduced to one cycle before the trigonometry. float32: one sgemm of
    h and 2π·x (absolute phase error ≲ 1e-7·2π|h·x|, i.e. < 1e-4 rad for |h·x| < 100 — far below
    the phase uncertainty that CIF coordinates given to 1e-4 imply)."""
    if dtype == np.float64:
        t = h @ frac.T
        t -= np.rint(t)
        t *= 2.0 * math.pi
        return np.cos(t), np.sin(t)
    ang = h.astype(np.float32) @ (2.0 * math.pi * frac.T).astype(np.float32)
    return np.cos(ang), np.sin(ang)


def structure_factors(phase, hkl: np.ndarray, *, form_factors: str = DEFAULT_FORM_FACTORS,
                      atom_sets: list | None = None, precision: str = "single",
                      dispersion: dict[str, complex] | None = None) -> np.ndarray:
    """Complex F(hkl) per unit cell (electrons): Σ_j occ_j f_j(s) T_j(hkl) exp(2πi h·x_j).

    ``dispersion``: {element: f′ + i f″} added to f_j (anomalous dispersion at one λ, e.g. from
    ``xtal.refine.dispersion``); None (default): f_j = f0 only, as pymatgen's calculator.

    Sums over every atom of the cell (`Phase.cell_atoms`), T_j = exp(−8π²U s²) or exp(−hᵀβh).
    Isotropic atoms of one element are grouped by U, so their Debye–Waller factor is applied per
    group (a matrix product); anisotropic atoms get their own factor. ``precision="single"``
    evaluates cos/sin/exp in float32 after reducing h·x to one cycle in float64 (≈1e-6 relative on
    strong reflections, ~8× faster); ``"double"`` uses float64 throughout.
    """
    if precision not in ("single", "double"):
        raise SimulationError(f"precision must be 'single' or 'double', got {precision!r}", field="precision")
    dt = np.float32 if precision == "single" else np.float64
    if atom_sets is None:
        atom_sets, _ = _atom_sets(phase, form_factors)
    h = np.asarray(hkl, dtype=float).reshape(-1, 3)
    n = len(h)
    out = np.zeros(n, dtype=complex)
    if n == 0:
        return out
    s2 = 0.25 / d_spacings(phase.cell.parameters, h) ** 2
    hh = np.stack([h[:, 0] ** 2, h[:, 1] ** 2, h[:, 2] ** 2,
                   h[:, 0] * h[:, 1], h[:, 0] * h[:, 2], h[:, 1] * h[:, 2]], axis=1)
    eight_pi2 = 8.0 * math.pi ** 2
    for aset in atom_sets:
        f = form_factor(aset.element, s2, form_factors)
        if dispersion:
            f = f + dispersion.get(aset.element, 0.0)
        acc = np.zeros(n, dtype=complex)
        if len(aset.iso_occ):
            m = len(aset.iso_occ)
            ind = np.zeros((m, len(aset.iso_u)), dtype=dt)
            ind[np.arange(m), aset.iso_group] = aset.iso_occ
            rows = max(1, _CHUNK_ENTRIES // m)
            for start in range(0, n, rows):
                sl = slice(start, start + rows)
                c, sn = _phase_sums(h[sl], aset.iso_frac, dt)
                dw = np.exp(-eight_pi2 * np.multiply.outer(s2[sl], aset.iso_u))   # (chunk, g)
                acc[sl] += ((c @ ind) * dw).sum(axis=1) + 1j * ((sn @ ind) * dw).sum(axis=1)
        if len(aset.ani_occ):
            m = len(aset.ani_occ)
            b6 = aset.ani_beta6.T.astype(dt)
            occ = aset.ani_occ.astype(dt)
            rows = max(1, _CHUNK_ENTRIES // m)
            for start in range(0, n, rows):
                sl = slice(start, start + rows)
                c, sn = _phase_sums(h[sl], aset.ani_frac, dt)
                w = np.exp(-(hh[sl].astype(dt) @ b6))
                w *= occ
                acc[sl] += (np.einsum("ij,ij->i", c, w).astype(float)
                            + 1j * np.einsum("ij,ij->i", sn, w).astype(float))
        out += f * acc
    return out


# =============================================================================
# reflection table
# =============================================================================
@dataclass
class ReflectionTable:
    """One row per symmetry-independent reflection, sorted by 2θ.

    ``f_squared·multiplicity`` does not depend on λ; use `at` for another λ, a strained cell or
    another polarisation (cheap: no structure factors are recomputed; |F|² of the reference cell is
    kept, which is exact for λ and accurate to O(strain) for the Debye–Waller/form-factor s-dependence).
    """

    phase_id: str
    wavelength_angstrom: float
    hkl: np.ndarray
    d_angstrom: np.ndarray
    two_theta_deg: np.ndarray
    q_inv_angstrom: np.ndarray
    multiplicity: np.ndarray
    f_squared: np.ndarray
    lp: np.ndarray
    intensity: np.ndarray
    po: np.ndarray | None = None
    cell_params: tuple[float, ...] = ()
    polarization: Polarization = field(default_factory=Polarization)
    preferred_orientation: MarchDollase | None = None
    form_factors: str = DEFAULT_FORM_FACTORS
    d_range_angstrom: tuple[float, float] = (0.0, math.inf)
    is_model: bool = False
    warnings: list[str] = field(default_factory=list)
    laue_rotations: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.hkl)

    @property
    def f_squared_times_multiplicity(self) -> np.ndarray:
        return self.f_squared * self.multiplicity

    def at(self, cell_params: Sequence[float] | None = None, wavelength_angstrom: float | None = None, *,
           polarization: Polarization | str | None = None,
           two_theta_range_deg: tuple[float, float] | None = None) -> "ReflectionTable":
        """The same reflections for another cell (e.g. strained) and/or wavelength / polarisation.

        Recomputes d, 2θ, Q, LP, preferred orientation and intensity; keeps |F|²·m. Reflections that
        cannot diffract (d < λ/2) or fall outside ``two_theta_range_deg`` are dropped; rows are
        re-sorted by 2θ. Reflections outside the table's d-range are not added (build the table with
        a wider ``d_min_angstrom``/range when you need them).
        """
        cp = tuple(float(v) for v in (cell_params if cell_params is not None else self.cell_params))
        lam = self.wavelength_angstrom if wavelength_angstrom is None else check_wavelength(wavelength_angstrom)
        pol = self.polarization if polarization is None else parse_polarization(polarization)
        d = d_spacings(cp, self.hkl) if len(self.hkl) else np.zeros(0)
        tt = two_theta_from_d(d, lam)
        keep = np.isfinite(tt)
        if two_theta_range_deg is not None:
            lo, hi = _check_range(two_theta_range_deg)
            keep &= (tt >= lo) & (tt <= hi)
        order = np.argsort(np.where(keep, tt, np.inf), kind="stable")[: int(keep.sum())]
        hkl = self.hkl[order]
        d, tt = d[order], tt[order]
        lp = lorentz_polarization(tt, pol)
        po = None
        if self.preferred_orientation is not None and self.laue_rotations is not None:
            po = _march_dollase(self.preferred_orientation, hkl, self.laue_rotations, reciprocal_metric(cp))
        mult, f2 = self.multiplicity[order], self.f_squared[order]
        inten = mult * f2 * lp * (po if po is not None else 1.0)
        return replace(self, wavelength_angstrom=lam, hkl=hkl, d_angstrom=d, two_theta_deg=tt,
                       q_inv_angstrom=2 * math.pi / d, multiplicity=mult, f_squared=f2, lp=lp,
                       intensity=inten, po=po, cell_params=cp, polarization=pol, warnings=list(self.warnings))

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame({
            "h": self.hkl[:, 0], "k": self.hkl[:, 1], "l": self.hkl[:, 2],
            "d_angstrom": self.d_angstrom, "two_theta_deg": self.two_theta_deg,
            "q_inv_angstrom": self.q_inv_angstrom, "multiplicity": self.multiplicity,
            "f_squared": self.f_squared, "lp": self.lp,
            "po": self.po if self.po is not None else np.ones(len(self)),
            "intensity": self.intensity,
        })

    def header_lines(self) -> list[str]:
        lines = [f"phase: {self.phase_id}",
                 f"wavelength_angstrom: {self.wavelength_angstrom}",
                 "cell (a b c alpha beta gamma; Angstrom, degrees): " + " ".join(f"{v:.6g}" for v in self.cell_params),
                 f"form factors: {self.form_factors}; LP: {self.polarization.describe()}",
                 "intensity = multiplicity * |F|^2 (electrons^2 per cell) * LP * PO"]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return lines



def reflection_table(phase, wavelength_angstrom: float,
                     two_theta_range_deg: tuple[float, float] = (2.0, 50.0), *,
                     form_factors: str = DEFAULT_FORM_FACTORS,
                     polarization: Polarization | str | None = None,
                     preferred_orientation: MarchDollase | None = None,
                     d_min_angstrom: float | None = None,
                     d_max_angstrom: float | None = None) -> ReflectionTable:
    """Reflection table of ``phase`` (a `xtal.structures.Phase`) at λ over a 2θ range.

    The d-range is [λ/(2 sin θmax), λ/(2 sin θmin)] unless ``d_min_angstrom``/``d_max_angstrom``
    widen it (useful to cache one table for several wavelengths / strains via `ReflectionTable.at`).
    """
    lam = check_wavelength(wavelength_angstrom)
    lo, hi = _check_range(two_theta_range_deg)
    if form_factors not in FORM_FACTOR_SOURCES:
        raise FormFactorError(f"unknown form-factor table {form_factors!r}; choose one of {FORM_FACTOR_SOURCES}",
                              field="form_factors")
    pol = parse_polarization(polarization)
    d_min = lam / (2 * math.sin(math.radians(hi / 2)))
    d_max = lam / (2 * math.sin(math.radians(lo / 2))) if lo > 0 else math.inf
    if d_min_angstrom is not None:
        v = _finite("d_min_angstrom", d_min_angstrom)
        if v <= 0:
            raise SimulationError("d_min_angstrom must be > 0", field="d_min_angstrom")
        d_min = min(d_min, v)
    if d_max_angstrom is not None:
        d_max = max(d_max, _finite("d_max_angstrom", d_max_angstrom))
    if isinstance(phase, Phase):
        check_physical(phase)   # a Phase built or edited in code gets the checks read_cif applies
    gops = group_ops(phase)
    rots = laue_rotations(gops)
    hkl = _conventional_hkl(_enumerate_unique_hkl(phase, gops, d_min, d_max), rots)
    sets, notes = _atom_sets(phase, form_factors)
    f = structure_factors(phase, hkl, form_factors=form_factors, atom_sets=sets)
    warnings = list(notes)
    if getattr(phase, "is_model", False):
        warnings.insert(0, MODEL_WARNING)
    base = ReflectionTable(
        phase_id=phase.id, wavelength_angstrom=lam, hkl=hkl.astype(int),
        d_angstrom=np.zeros(len(hkl)), two_theta_deg=np.zeros(len(hkl)), q_inv_angstrom=np.zeros(len(hkl)),
        multiplicity=multiplicities(gops, hkl), f_squared=(f * f.conjugate()).real, lp=np.zeros(len(hkl)),
        intensity=np.zeros(len(hkl)), cell_params=tuple(phase.cell.parameters), polarization=pol,
        preferred_orientation=preferred_orientation, form_factors=form_factors,
        d_range_angstrom=(d_min, d_max), is_model=bool(getattr(phase, "is_model", False)),
        warnings=warnings, laue_rotations=rots)
    return base.at()




# =============================================================================
# simulated pattern
# =============================================================================
@dataclass
class SimulatedPattern:
    """A simulated powder profile and the reflections it came from."""

    reflections: ReflectionTable
    two_theta_deg: np.ndarray
    intensity: np.ndarray
    wavelength_angstrom: float
    meta: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    phase_id: str = ""
    phase_name: str = ""
    is_model: bool = False
    reflections_ka2: ReflectionTable | None = None

    @property
    def d_angstrom(self) -> np.ndarray:
        return d_from_two_theta(self.two_theta_deg, self.wavelength_angstrom)

    @property
    def q_inv_angstrom(self) -> np.ndarray:
        return q_from_two_theta(self.two_theta_deg, self.wavelength_angstrom)

    def x(self, axis: str = "two_theta_deg") -> np.ndarray:
        if axis == "two_theta_deg":
            return self.two_theta_deg
        if axis == "d_angstrom":
            return self.d_angstrom
        if axis == "q_inv_angstrom":
            return self.q_inv_angstrom
        raise SimulationError(f"unknown axis {axis!r} (two_theta_deg, d_angstrom, q_inv_angstrom)", field="axis")

    def at_wavelength(self, wavelength_angstrom: float, *, resample: bool = True) -> "SimulatedPattern":
        """The same pattern (same d-spacings) as it appears at another λ.

        ``resample=True`` interpolates onto a uniform 2θ grid with the original number of points over
        the reachable range (intensity per degree rescaled by the Jacobian dθ/dθ'); else the 2θ of
        each point is converted (non-uniform grid). LP is not re-evaluated (use `simulate` with the
        new λ for a re-simulation with the new LP)."""
        lam = check_wavelength(wavelength_angstrom)
        tt = convert_two_theta(self.two_theta_deg, self.wavelength_angstrom, lam)
        ok = np.isfinite(tt)
        if not np.any(ok):
            raise SimulationError(f"no point of the pattern is reachable at λ = {lam} Å", field="wavelength_angstrom")
        th0 = np.radians(self.two_theta_deg[ok] / 2)
        th1 = np.radians(tt[ok] / 2)
        # same integrated intensity per peak: I'(2θ') d2θ' = I(2θ) d2θ, d2θ/d2θ' = λ0 cosθ' / (λ' cosθ)
        inten = self.intensity[ok] * (self.wavelength_angstrom * np.cos(th1)) / (lam * np.cos(th0))
        x_new = tt[ok]
        if resample:
            grid = np.linspace(x_new[0], x_new[-1], len(x_new))
            inten = np.interp(grid, x_new, inten)
            x_new = grid
        refl = self.reflections.at(wavelength_angstrom=lam)
        meta = dict(self.meta, converted_from_wavelength_angstrom=self.wavelength_angstrom)
        return replace(self, reflections=refl, two_theta_deg=x_new, intensity=inten, wavelength_angstrom=lam,
                       meta=meta, reflections_ka2=None)

    # ---------------------------------------------------------------- export
    def header_lines(self) -> list[str]:
        lines = [f"xtal simulated powder pattern of {self.phase_name or self.phase_id} (id {self.phase_id})",
                 f"wavelength_angstrom: {self.wavelength_angstrom}"]
        if self.meta.get("wavelength2_angstrom"):
            lines.append(f"wavelength2_angstrom: {self.meta['wavelength2_angstrom']}")
            lines.append(f"ka2_ratio: {self.meta.get('ka2_ratio')}")
        lines += ["x: 2theta (degrees); y: intensity (arb. units; electrons^2 per cell x LP per degree)",
                  f"profile: {self.meta.get('profile', '')}",
                  f"LP: {self.reflections.polarization.describe()}; form factors: {self.reflections.form_factors}",
                  f"zero_shift_deg: {self.meta.get('zero_shift_deg', 0.0)}"]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return lines



# =============================================================================
# simulate
# =============================================================================
def _profile_widths(tt: np.ndarray, *, fwhm_deg, eta, caglioti, tch) -> tuple[np.ndarray, np.ndarray, str]:
    if tch is not None:
        if len(tch) != 5:
            raise SimulationError("tch must be (U, V, W, X, Y)", field="tch")
        vals = [_finite("tch", v) for v in tch]
        w, e = tch_fwhm_eta(tt, *vals)
        return w, e, "TCH pseudo-Voigt U={} V={} W={} (deg^2) X={} Y={} (deg)".format(*vals)
    e_val = 0.5 if eta is None else _finite("eta", eta)
    if not 0.0 <= e_val <= 1.0:
        raise SimulationError(f"eta must be in [0, 1], got {e_val}", field="eta")
    if caglioti is not None:
        if len(caglioti) != 3:
            raise SimulationError("caglioti must be (U, V, W)", field="caglioti")
        vals = [_finite("caglioti", v) for v in caglioti]
        return (caglioti_fwhm(tt, *vals), np.full(tt.shape, e_val),
                "pseudo-Voigt eta={} Caglioti U={} V={} W={} (deg^2)".format(e_val, *vals))
    fw = 0.08 if fwhm_deg is None else _finite("fwhm_deg", fwhm_deg)
    if fw <= 0:
        raise SimulationError(f"fwhm_deg must be > 0, got {fw}", field="fwhm_deg")
    return np.full(tt.shape, fw), np.full(tt.shape, e_val), f"pseudo-Voigt FWHM={fw} deg eta={e_val}"


def simulate(phase, wavelength_angstrom: float | tuple,
             two_theta_range: tuple[float, float] = (2.0, 50.0), step: float = 0.01, *,
             fwhm_deg: float | None = None, eta: float | None = None,
             caglioti: tuple[float, float, float] | None = None,
             tch: tuple[float, float, float, float, float] | None = None,
             zero_shift_deg: float = 0.0,
             polarization: Polarization | str | None = None,
             preferred_orientation: MarchDollase | None = None,
             form_factors: str = DEFAULT_FORM_FACTORS,
             reflections: ReflectionTable | None = None,
             scale: float = 1.0) -> SimulatedPattern:
    """Simulate the powder pattern of ``phase``.

    Parameters
    ----------
    wavelength_angstrom : λ (Å; required, there is no default), or (λ1, λ2, I2/I1) for a Kα1/Kα2 doublet (e.g. Mo:
        (0.709317, 0.713607, 0.5)); the reflection table and the x axis refer to λ1.
    two_theta_range, step : grid (°); inclusive of both ends.
    fwhm_deg, eta : constant pseudo-Voigt (default 0.08°, 0.5);
    caglioti : (U, V, W) deg² → FWHM(2θ) with the constant ``eta``;
    tch : (U, V, W, X, Y) Thompson–Cox–Hastings (Gaussian Caglioti + Lorentzian X/cosθ + Y tanθ).
    zero_shift_deg : added to every calculated peak position.
    polarization : `Polarization` (default unpolarised lab beam).
    preferred_orientation : `MarchDollase` or None.
    form_factors : "it92" (default) or "pymatgen".
    reflections : a cached `ReflectionTable` of this phase (its ``at`` is used for λ).
    scale : multiplies the intensities.
    """
    lam1, lam2, ratio = parse_radiation(wavelength_angstrom).as_tuple()
    lo, hi = _check_range(two_theta_range, "two_theta_range")
    st = _finite("step", step)
    if st <= 0:
        raise SimulationError(f"step must be > 0, got {st}", field="step")
    n = int(math.floor((hi - lo) / st + 1e-9)) + 1
    if n < 2:
        raise SimulationError(f"the 2θ range ({lo}, {hi}) holds fewer than 2 points at step {st}", field="step")
    if n > MAX_POINTS:
        raise SimulationError(f"{n} points exceed the limit {MAX_POINTS}", field="step")
    zs = _finite("zero_shift_deg", zero_shift_deg)
    if abs(zs) > MAX_ZERO_SHIFT_DEG:
        raise SimulationError(f"zero shift {zs}° 2θ is not an instrument zero error (|zero| ≤ "
                              f"{MAX_ZERO_SHIFT_DEG}°)", field="zero_shift_deg")
    sc = _finite("scale", scale)
    if sc <= 0:
        raise SimulationError(f"scale must be > 0, got {sc}", field="scale")
    x = lo + st * np.arange(n)
    pol = parse_polarization(polarization)
    # reflections just outside the range whose tails reach into it: pad by 10 FWHM (≤ 2°)
    w_hi, _, _ = _profile_widths(np.array([lo, hi]), fwhm_deg=fwhm_deg, eta=eta, caglioti=caglioti, tch=tch)
    pad = min(2.0, 10.0 * float(np.max(w_hi)))
    rng = (max(0.0, lo - pad - abs(zs)), min(179.0, hi + pad + abs(zs)))
    if reflections is None:
        refl = reflection_table(phase, lam1, rng, form_factors=form_factors, polarization=pol,
                                preferred_orientation=preferred_orientation)
    else:
        refl = reflections.at(wavelength_angstrom=lam1, polarization=pol)
    warnings = list(refl.warnings)
    centres = [refl.two_theta_deg + zs]
    areas = [refl.intensity * sc]
    ka2 = None
    if lam2 is not None and ratio:
        ka2 = refl.at(wavelength_angstrom=lam2)
        w1 = 1.0 / (1.0 + ratio)
        areas = [areas[0] * w1, ka2.intensity * sc * ratio * w1]
        centres.append(ka2.two_theta_deg + zs)
    c = np.concatenate(centres)
    a = np.concatenate(areas)
    if len(c):
        w, e, prof = _profile_widths(c - zs, fwhm_deg=fwhm_deg, eta=eta, caglioti=caglioti, tch=tch)
    else:
        w, e, prof = _profile_widths(np.array([lo]), fwhm_deg=fwhm_deg, eta=eta, caglioti=caglioti, tch=tch)
        w, e = w[:0], e[:0]
        warnings.append(f"no reflection of {phase.id} between {lo}° and {hi}° 2θ at λ = {lam1} Å")
    y = pseudo_voigt_profile(x, c, a, w, e)
    # the table returned covers the requested range only
    shown = refl.at(two_theta_range_deg=(lo, hi)) if len(refl) else refl
    meta = {"profile": prof, "zero_shift_deg": zs, "step_deg": st, "scale": sc,
            "form_factors": form_factors, "polarization": pol.describe(),
            "preferred_orientation": (None if preferred_orientation is None else
                                      {"axis": list(preferred_orientation.axis), "r": preferred_orientation.r}),
            "wavelength2_angstrom": lam2, "ka2_ratio": ratio,
            "phase_kind": getattr(getattr(phase, "provenance", None), "kind", None)}
    return SimulatedPattern(reflections=shown, two_theta_deg=x, intensity=y, wavelength_angstrom=lam1,
                            meta=meta, warnings=warnings, phase_id=phase.id, phase_name=getattr(phase, "name", ""),
                            is_model=bool(getattr(phase, "is_model", False)),
                            reflections_ka2=(ka2.at(two_theta_range_deg=(lo, hi)) if ka2 is not None and len(ka2)
                                             else None))


# =============================================================================
# figure
# =============================================================================
