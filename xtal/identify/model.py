"""A phase as the fit sees it: a strained view of its reflection table.

`PhaseModel` holds hkl and mult·|F|² of one phase (from ``xtal.simulate.reflection_table``, cached per
phase) and maps the refined lattice parameters (by crystal system) to a cell, d-spacings and their
analytic derivatives. Positions and LP come from the beam (``two_theta_from_d``, LP factor); nothing
here re-implements Bragg's law or the Lorentz–polarisation factor.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from xtal.cache import cached_arrays, code_fingerprint, phase_cache_key
from xtal.formfactors import DEFAULT_FORM_FACTORS
from xtal.simulate import (group_ops, laue_rotations, march_dollase_cos2, march_dollase_factor,
                           reciprocal_metric, reflection_table)

def _base_reflections(phase: Any, dmin: float) -> tuple[np.ndarray, np.ndarray]:
    """hkl (n×3) and mult·|F|² of every reflection with d ≥ dmin, from ``xtal.simulate``."""
    tab = reflection_table(phase, wavelength_angstrom=1.0, two_theta_range_deg=(1.0, 2.0),
                           d_min_angstrom=dmin, d_max_angstrom=1000.0)
    hkl = np.asarray(tab.hkl, dtype=float).reshape(-1, 3)
    fm = np.asarray(tab.multiplicity, dtype=float) * np.asarray(tab.f_squared, dtype=float)
    keep = fm > 1e-9 * max(1.0, float(fm.max(initial=0.0)))
    return hkl[keep], fm[keep]


def crystal_system_of(phase: Any) -> str:
    """Lattice system that fixes which cell parameters refine ("cubic", "tetragonal", …)."""
    n = getattr(phase, "spacegroup_number", None)
    a, b, c, al, be, ga = phase.cell.parameters
    if n:
        if n <= 2:
            return "triclinic"
        if n <= 15:
            return "monoclinic"
        if n <= 74:
            return "orthorhombic"
        if n <= 142:
            return "tetragonal"
        if n <= 167:
            return "hexagonal" if abs(ga - 120.0) < 1e-3 else "rhombohedral"
        if n <= 194:
            return "hexagonal"
        return "cubic"
    eq = lambda u, v: abs(u - v) < 1e-4 * max(u, v)  # noqa: E731
    right = [abs(x - 90.0) < 1e-3 for x in (al, be, ga)]
    if all(right):
        if eq(a, b) and eq(b, c):
            return "cubic"
        if eq(a, b):
            return "tetragonal"
        return "orthorhombic"
    if right[0] and right[1] and abs(ga - 120) < 1e-3 and eq(a, b):
        return "hexagonal"
    if sum(right) == 2:
        return "monoclinic"
    return "triclinic"


#: names of the lattice parameters refined per crystal system (strain of a, b, c; shift of angles)
LATTICE_PARAMS = {
    "cubic": ("a",), "tetragonal": ("a", "c"), "hexagonal": ("a", "c"),
    "rhombohedral": ("a", "alpha"), "orthorhombic": ("a", "b", "c"),
    "monoclinic": ("a", "b", "c", "angle"), "triclinic": ("a", "b", "c", "alpha", "beta", "gamma"),
}


class PhaseModel:
    """Cached reflections of one phase and the mapping strain parameters → cell."""

    def __init__(self, phase: Any, dmin: float, mode: str):
        self.phase = phase
        self.id = str(phase.id)
        self.hkl, self.fmult = cached_reflections(phase, dmin)
        h, k, l = self.hkl.T
        self.hh = np.stack([h * h, k * k, l * l, 2 * h * k, 2 * h * l, 2 * k * l], axis=1)
        self.cell0 = tuple(float(v) for v in phase.cell.parameters)
        self.system = crystal_system_of(phase)
        self.mode = mode  # "isotropic" | "cell" | "fixed"
        if mode == "fixed":
            self.names: tuple[str, ...] = ()
        elif mode == "isotropic":
            self.names = ("iso",)
        else:
            self.names = LATTICE_PARAMS[self.system]
        a, b, c, al, be, ga = self.cell0
        self._mono_angle = 4  # index of the non-90° angle of a monoclinic cell (β by default)
        if self.system == "monoclinic":
            dev = [abs(al - 90), abs(be - 90), abs(ga - 90)]
            self._mono_angle = 3 + int(np.argmax(dev))
        try:
            self.cell_mass = float(phase.cell_mass_dalton)
        except Exception:  # pragma: no cover - a phase without sites cannot be simulated anyway
            self.cell_mass = float("nan")
        self.model = bool(getattr(phase, "is_model", False))

    # --- preferred orientation ---------------------------------------------------------------
    po_axis: tuple[int, int, int] | None = None
    #: extra size broadening of this phase (deg 2θ at θ → 0, ∝ 1/cos θ as Scherrer's), added in
    #: quadrature to the common Caglioti FWHM; 0 = the common profile (chosen, not refined, by
    #: `search._Search.real_sample_terms`)
    size_deg: float = 0.0
    _dcell: np.ndarray | None = None                           # ∂cell/∂q, see `dcell_dq`

    def set_preferred_orientation(self, axis: Sequence[int] | None) -> None:
        """Refine a March–Dollase r along ``axis`` (hkl, reciprocal-lattice direction); None: none.

        cos²α of every symmetry equivalent of every reflection is computed once, on the library
        cell (a strain of a few % changes the angles negligibly)."""
        self.po_axis = None if axis is None else tuple(int(v) for v in axis)
        if axis is not None:
            rots = laue_rotations(group_ops(self.phase))
            self._po_cos2 = march_dollase_cos2(self.hkl, rots, reciprocal_metric(self.cell0), axis)

    def po_factor(self, r: float) -> tuple[np.ndarray, np.ndarray]:
        """March–Dollase correction of each reflection at r and its derivative ∂/∂r."""
        if self.po_axis is None:
            n = self.hkl.shape[0]
            return np.ones(n), np.zeros(n)
        return march_dollase_factor(self._po_cos2, r)

    @property
    def n_params(self) -> int:
        return len(self.names)

    def cell(self, q: np.ndarray) -> tuple[float, ...]:
        """Cell (a, b, c, α, β, γ) for strain parameters q (relative lengths, angle shifts in °)."""
        a, b, c, al, be, ga = self.cell0
        if self.mode == "fixed" or len(q) == 0:
            return self.cell0
        if self.mode == "isotropic":
            f = 1.0 + q[0]
            return (a * f, b * f, c * f, al, be, ga)
        s = self.system
        if s == "cubic":
            f = 1.0 + q[0]
            return (a * f, b * f, c * f, al, be, ga)
        if s in ("tetragonal", "hexagonal"):
            return (a * (1 + q[0]), b * (1 + q[0]), c * (1 + q[1]), al, be, ga)
        if s == "rhombohedral":
            f = 1.0 + q[0]
            return (a * f, b * f, c * f, al + q[1], be + q[1], ga + q[1])
        if s == "orthorhombic":
            return (a * (1 + q[0]), b * (1 + q[1]), c * (1 + q[2]), al, be, ga)
        if s == "monoclinic":
            cell = [a * (1 + q[0]), b * (1 + q[1]), c * (1 + q[2]), al, be, ga]
            cell[self._mono_angle] += q[3]
            return tuple(cell)
        return (a * (1 + q[0]), b * (1 + q[1]), c * (1 + q[2]), al + q[3], be + q[4], ga + q[5])

    def q_from_cell(self, cell: Sequence[float]) -> np.ndarray:
        """Inverse of :meth:`cell` (least squares for the isotropic mode)."""
        a0 = np.array(self.cell0)
        cl = np.asarray(cell, dtype=float)
        rel = cl[:3] / a0[:3] - 1.0
        dang = cl[3:] - a0[3:]
        if self.mode == "fixed":
            return np.zeros(0)
        if self.mode == "isotropic":
            return np.array([float(np.mean(rel))])
        s = self.system
        if s == "cubic":
            return np.array([float(np.mean(rel))])
        if s in ("tetragonal", "hexagonal"):
            return np.array([(rel[0] + rel[1]) / 2, rel[2]])
        if s == "rhombohedral":
            return np.array([float(np.mean(rel)), float(np.mean(dang))])
        if s == "orthorhombic":
            return rel.copy()
        if s == "monoclinic":
            return np.array([rel[0], rel[1], rel[2], dang[self._mono_angle - 3]])
        return np.concatenate([rel, dang])

    def d_spacings(self, cell: Sequence[float]) -> np.ndarray:
        """d (Å) of the phase's reflections for a cell (a, b, c, α, β, γ)."""
        return 1.0 / np.sqrt(np.maximum(self.hh @ _g6(cell), 1e-12))

    def d_spacings_and_derivatives(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d (Å) at lattice parameters ``q`` and ∂d/∂q (n_reflections × n_params), analytic.

        1/d² = hh·g6 with g6 the six independent elements of the reciprocal metric G* = G⁻¹, so
        ∂d/∂q = −½ d³ hh·∂g6/∂q with ∂G* = −G* ∂G G* (∂G from the cell parameters, `_g6_jacobian`)
        and ∂cell/∂q exact: the map q → cell is affine (`cell`).
        """
        cell = self.cell(q)
        d = self.d_spacings(cell)
        dd = -0.5 * d[:, None] ** 3 * (self.hh @ (_g6_jacobian(cell) @ self.dcell_dq()))
        return d, dd

    def dcell_dq(self) -> np.ndarray:
        """∂(a, b, c, α, β, γ)/∂q (6 × n_params), exact and constant: `cell` is affine in q."""
        if self._dcell is None:
            base = np.asarray(self.cell(np.zeros(self.n_params)), dtype=float)
            eye = np.eye(self.n_params)
            self._dcell = np.stack([np.asarray(self.cell(e), dtype=float) - base for e in eye],
                                   axis=1) if self.n_params else np.zeros((6, 0))
        return self._dcell


def _g6_jacobian(cell: Sequence[float]) -> np.ndarray:
    """∂g6/∂(a, b, c, α, β, γ) (6 × 6; lengths in Å, angles in degrees), g6 as in `_g6`:
    ∂G* = −G* ∂G G* with G the direct metric (G_ii = a_i², G_ij = a_i a_j cos of the angle k
    between axes i and j); the six ∂G as one stack, one batched product."""
    a = np.asarray(cell[:3], dtype=float)
    ang = np.radians(np.asarray(cell[3:], dtype=float))
    cos, sin = np.cos(ang), np.sin(ang)
    gs = reciprocal_metric(cell)
    dg = np.zeros((6, 3, 3))
    dg[_AXES, _AXES, _AXES] = 2.0 * a                 # ∂G_ii/∂a_i
    for k, (i, j) in enumerate(_PAIRS):             # the angle k lies between axes i and j
        dg[i, i, j] = dg[i, j, i] = a[j] * cos[k]     # ∂G_ij/∂a_i
        dg[j, i, j] = dg[j, j, i] = a[i] * cos[k]     # ∂G_ij/∂a_j
        dg[3 + k, i, j] = dg[3 + k, j, i] = -a[i] * a[j] * sin[k] * math.pi / 180.0
    dgs = -(gs @ dg @ gs)
    return dgs[:, _G6_ROWS, _G6_COLS].T


_AXES = np.arange(3)
_PAIRS = ((1, 2), (0, 2), (0, 1))                    # axes between which α, β, γ lie
_G6_ROWS, _G6_COLS = np.array([0, 1, 2, 0, 0, 1]), np.array([0, 1, 2, 1, 2, 2])


def _g6(cell: Sequence[float]) -> np.ndarray:
    """(G*11, G*22, G*33, G*12, G*13, G*23) of the reciprocal metric (Å⁻²)."""
    g = reciprocal_metric(cell)
    return np.array([g[0, 0], g[1, 1], g[2, 2], g[0, 1], g[0, 2], g[1, 2]])


#: the modules whose source computes a reflection list (part of its disk-cache key)
_REFLECTION_CODE = ("xtal.simulate", "xtal.formfactors", "xtal.symmetry", "xtal.identify.model")
_REFL_CACHE: dict[tuple, tuple[float, np.ndarray, np.ndarray]] = {}


def _phase_key(phase: Any) -> tuple:
    prov = getattr(phase, "provenance", None)
    return (str(phase.id), tuple(round(float(v), 6) for v in phase.cell.parameters),
            len(getattr(phase, "sites", []) or []), getattr(prov, "file", None),
            getattr(phase, "block", None))


def _d_of(hkl: np.ndarray, cell: Sequence[float]) -> np.ndarray:
    return 1.0 / np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", hkl, reciprocal_metric(cell), hkl), 1e-12))


def _dmin_grid(dmin: float) -> float:
    """A d_min ≤ 0.98·dmin on a 2 % geometric grid: nearby requests (another pattern's range, another
    strain margin) share one computed list, in memory and on disk."""
    step = math.log(1.02)
    return math.exp(math.floor(math.log(dmin * 0.98) / step) * step)


def cached_reflections(phase: Any, dmin: float) -> tuple[np.ndarray, np.ndarray]:
    """Reflections with d ≥ dmin, cached per phase in memory and on disk (`xtal.cache`): a list
    computed to a smaller d is reused. The same reflections whether the list was cached or not."""
    key = _phase_key(phase)
    hit = _REFL_CACHE.get(key)
    if hit is None or hit[0] > dmin * (1 + 1e-9):
        dmin_calc = _dmin_grid(dmin)
        hkl, fm = cached_arrays(
            "reflections", phase_cache_key(phase, "reflections", repr(dmin_calc), DEFAULT_FORM_FACTORS,
                                           code_fingerprint(*_REFLECTION_CODE)),
            ("hkl", "fmult"), lambda: _base_reflections(phase, dmin_calc),
            check=lambda a: a[0].ndim == 2 and a[0].shape[1] == 3 and a[0].shape[0] == a[1].shape[0])
        hit = _REFL_CACHE[key] = (dmin_calc, hkl, fm)
    _, hkl, fm = hit
    keep = _d_of(hkl, phase.cell.parameters) >= dmin
    return hkl[keep], fm[keep]


def clear_cache() -> None:
    """Forget the reflection lists cached in memory (e.g. after editing a Phase in place; the disk
    cache's key includes the phase's cell and sites, so an edited phase is a new entry there)."""
    _REFL_CACHE.clear()

