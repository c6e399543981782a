"""Phase identification and whole-pattern fitting of powder patterns.

Pipeline (``identify``):

1. **Pre-processing** – 2θ axis, weights (1/σ², σ = √counts when the file has none), the radiation
   (a single line or a Kα1/Kα2 doublet, see :func:`radiation_from`), a background estimate with
   pybaselines (SNIP or arPLS) for the screen and the peak search.
2. **Screen** – every library phase is matched against the background-subtracted pattern: the
   strongest reflections of the phase are placed on the observed (blurred) pattern for every
   isotropic lattice strain in ±``max_strain`` (thermal expansion, solvent content) and the best
   cosine similarity between predicted and observed intensities is the phase's screen score.
3. **Whole-pattern fits** of candidate combinations (beam search, ≤ ``max_phases``): for fixed
   non-linear parameters (zero shift, lattice strain per phase, Caglioti U, V, W, pseudo-Voigt η)
   the phase scales (non-negative) and the Chebyshev background are linear and solved exactly
   (projected NNLS); the non-linear parameters are refined by a bounded Levenberg–Marquardt
   (variable projection, Kaufman Jacobian from analytic profile derivatives). A phase is added
   only if it lowers the BIC by ``min_delta_bic``, lowers Rwp, carries visible intensity, is not
   pushed to the strain bound and explains a peak the parent fit left unexplained; a backward
   step drops phases that no longer earn their place.
4. **Result** – ranked hypotheses (penalised score = BIC), weight fractions (Hill–Howard,
   W ∝ S·(Z·M)·V, ``Phase.cell_mass_dalton`` × refined volume), refined cells with s.u. from the
   Jacobian, unexplained peaks from the residual, an amorphous/halo estimate, a confidence statement.

Intensity convention (shared with ``xtal.synth``): a phase contributes
``S · Σ mult·|F|²·LP · profile`` with unit-area pseudo-Voigt profiles in degrees 2θ, |F|² per cell.
Reflection lists and |F|²·mult are computed once per phase (cached); a strained cell only moves the
peaks (positions, LP and widths are recomputed).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls

from xtal.errors import IdentificationError, MissingWavelengthError, WavelengthMismatchError
from xtal.beam import lorentz_polarization, parse_radiation  # the one place that knows tube wavelengths
from xtal.beam import parse_polarization as as_polarization
from xtal.simulate import (caglioti_fwhm, cell_volume, pseudo_voigt_profile, reciprocal_metric,
                           reflection_table)

__all__ = [
    "IdentificationError", "EmptyLibraryError", "NoPeaksError", "NoSignalError",
    "PhaseFit", "FitResult", "Hypothesis", "IdentificationResult", "ScreenHit",
    "Radiation", "radiation_from", "fit_phases", "screen_phases", "identify",
    "estimate_background", "estimate_amorphous_fraction", "crystal_system_of", "LATTICE_PARAMS",
    "render_identification_markdown", "plot_identification",
]


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
class EmptyLibraryError(IdentificationError):
    """No phase to identify against (empty library or empty selection)."""


class NoSignalError(IdentificationError):
    """The pattern has no usable intensity (all zero, constant, too few points)."""


class NoPeaksError(IdentificationError):
    """No Bragg peak rises above the noise: there is nothing to identify."""


# ----------------------------------------------------------------------------------------------
# constants / defaults
# ----------------------------------------------------------------------------------------------
#: Relative lattice strain a phase may take in the screen and the fit (thermal expansion, solvent).
DEFAULT_MAX_STRAIN = 0.05
#: A phase must lower the BIC by at least this much to be added to a hypothesis.
DEFAULT_MIN_DELTA_BIC = 10.0
#: Hypotheses within this score difference of the best are flagged as near ties.
NEAR_TIE_DELTA = 10.0
#: Peak window of the pseudo-Voigt, in FWHM on each side (the Lorentzian is renormalised to it).
_PROFILE_WINDOW_FWHM = 6.0
_MIN_FWHM_DEG = 1e-4
_QUICK_PROFILE = "width"


# ----------------------------------------------------------------------------------------------
# BLAS threads: the fit multiplies tall-thin matrices (points × a few columns); a multithreaded
# OpenBLAS only adds synchronisation cost there (10× slower on a loaded 2-core machine), so the
# fitting code runs with one BLAS thread and restores the previous setting afterwards (what
# threadpoolctl does; a no-op where the library cannot be found).
# ----------------------------------------------------------------------------------------------
_BLAS_CTL: list | None = None


def _blas_controls() -> list:
    global _BLAS_CTL
    if _BLAS_CTL is None:
        ctl = []
        try:
            import ctypes

            with open("/proc/self/maps") as fh:
                paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower()
                                and ln.split()[-1].startswith("/") and ".so" in ln.split()[-1]})
            names = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                     ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                     ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                     ("openblas_get_num_threads", "openblas_set_num_threads")]
            for path in paths:
                lib = ctypes.CDLL(path)
                for get, set_ in names:
                    if hasattr(lib, get) and hasattr(lib, set_):
                        ctl.append((getattr(lib, get), getattr(lib, set_)))
                        break
        except Exception:  # pragma: no cover - platform without /proc or OpenBLAS
            ctl = []
        _BLAS_CTL = ctl
    return _BLAS_CTL


_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "old": []}


class _OneBlasThread:
    """Context manager: one OpenBLAS thread inside, the previous number restored when the
    outermost (over all threads) context exits."""

    def __enter__(self):
        with _BLAS_LOCK:
            if _BLAS_STATE["depth"] == 0:
                ctl = _blas_controls()
                _BLAS_STATE["old"] = [int(get()) for get, _ in ctl]
                for (_, set_), n in zip(ctl, _BLAS_STATE["old"]):
                    if n != 1:
                        set_(1)
            _BLAS_STATE["depth"] += 1
        return self

    def __exit__(self, *exc):
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                for (_, set_), n in zip(_blas_controls(), _BLAS_STATE["old"]):
                    if n != 1:
                        set_(n)
        return False


def _one_blas_thread(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _OneBlasThread():
            return fn(*args, **kwargs)
    return wrapper


# ----------------------------------------------------------------------------------------------
# radiation
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Radiation:
    """Wavelengths (Å) and relative weights of the lines in the beam; the first line is the primary."""

    wavelengths: tuple[float, ...]
    weights: tuple[float, ...]
    label: str = ""
    polarization: Any = None   # xtal.simulate.Polarization; None = unpolarised lab beam

    @property
    def primary(self) -> float:
        return self.wavelengths[0]

    @property
    def is_doublet(self) -> bool:
        return len(self.wavelengths) > 1

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"wavelength_angstrom": self.primary, "label": self.label}
        if self.is_doublet:
            d["wavelength2_angstrom"] = self.wavelengths[1]
            d["ka2_ratio"] = self.weights[1]
        d["polarization"] = as_polarization(self.polarization).describe()
        return d


def _resolve_name(spec: str | float) -> Radiation:
    """A tube name or a number through ``xtal.beam.parse_radiation``."""
    r = parse_radiation(spec).as_tuple()
    return _radiation_from_resolved(r, spec)


def _radiation_from_resolved(r: Any, spec: Any) -> Radiation:
    label = spec if isinstance(spec, str) else ""
    if isinstance(r, (int, float)):
        return Radiation((float(r),), (1.0,), label)
    if isinstance(r, (tuple, list)):
        vals = [v for v in r if v is not None]
        if len(vals) >= 3 and vals[2]:
            return Radiation((float(vals[0]), float(vals[1])), (1.0, float(vals[2])), label)
        return Radiation((float(vals[0]),), (1.0,), label)
    lam1 = getattr(r, "wavelength_angstrom", None) or getattr(r, "lambda1", None)
    lam2 = getattr(r, "wavelength2_angstrom", None) or getattr(r, "lambda2", None)
    ratio = getattr(r, "ka2_ratio", None) or getattr(r, "ratio", None)
    if lam1 is None:
        raise IdentificationError(f"cannot interpret wavelength {spec!r}")
    if lam2 and ratio:
        return Radiation((float(lam1), float(lam2)), (1.0, float(ratio)), label)
    return Radiation((float(lam1),), (1.0,), label)


def radiation_from(pattern: Any, wavelength: Any = None, polarization: Any = None) -> Radiation:
    """As `_radiation_from`, with the beam's polarisation (``xtal.simulate.Polarization``, or
    "unpolarized" / "synchrotron"; None keeps an unpolarised lab beam) for the LP factor."""
    rad = _radiation_from(pattern, wavelength)
    if polarization is not None:
        rad = dataclasses.replace(rad, polarization=as_polarization(polarization))
    return rad


def _radiation_from(pattern: Any, wavelength: Any = None) -> Radiation:
    """The radiation to model ``pattern`` with.

    ``wavelength``: None (use the pattern's λ, and its Kα2 line when the file gives one), a number
    in Å (one line, e.g. synchrotron), a tube name (``"CuKa"``, ``"MoKa"``, … → Kα1/Kα2 doublet),
    a ``(λ1, λ2, ratio)`` tuple or a :class:`Radiation`. A given λ that contradicts the one stored in
    the file (> 0.2 %) raises ``WavelengthMismatchError``; no λ at all raises
    ``MissingWavelengthError``.
    """
    file_l1 = getattr(pattern, "wavelength_angstrom", None)
    file_l2 = getattr(pattern, "wavelength2_angstrom", None)
    file_ratio = getattr(pattern, "ka2_ratio", None)
    if wavelength is None:
        if not file_l1:
            raise MissingWavelengthError(
                "the pattern has no wavelength; give one (a number in Å or a tube name such as "
                "'CuKa')", path=getattr(pattern, "source", None))
        if file_l2 and file_ratio:
            return Radiation((float(file_l1), float(file_l2)), (1.0, float(file_ratio)), "file")
        return Radiation((float(file_l1),), (1.0,), "file")
    if isinstance(wavelength, Radiation):
        rad = wavelength
    elif isinstance(wavelength, (tuple, list)):
        rad = _radiation_from_resolved(parse_radiation(tuple(wavelength)).as_tuple(), "")
    elif isinstance(wavelength, str):
        try:
            rad = Radiation((float(wavelength),), (1.0,), "")
        except ValueError:
            rad = _resolve_name(wavelength)
    else:
        rad = Radiation((float(wavelength),), (1.0,), "")
    if not (0.05 < rad.primary < 5.0):
        raise IdentificationError(f"wavelength {rad.primary} Å is not a diffraction wavelength")
    if file_l1 and abs(file_l1 - rad.primary) > 2e-3 * rad.primary:
        # a tube name whose weighted mean matches the file is consistent too
        mean = (sum(l * w for l, w in zip(rad.wavelengths, rad.weights)) / sum(rad.weights))
        if abs(file_l1 - mean) > 2e-3 * mean:
            raise WavelengthMismatchError(
                f"given wavelength {rad.primary:.5f} Å contradicts the {file_l1:.5f} Å stored in the "
                "file", path=getattr(pattern, "source", None))
    return rad


# ----------------------------------------------------------------------------------------------
# reflections per phase (cached), lattice parametrisation
# ----------------------------------------------------------------------------------------------
def _lp(two_theta_deg: np.ndarray, rad: Radiation) -> np.ndarray:
    """Lorentz–polarisation factor of ``xtal.simulate`` for the beam's polarisation."""
    return np.asarray(lorentz_polarization(two_theta_deg, rad.polarization), dtype=float)


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


class _PhaseModel:
    """Cached reflections of one phase and the mapping strain parameters → cell."""

    def __init__(self, phase: Any, dmin: float, mode: str):
        self.phase = phase
        self.id = str(phase.id)
        self.hkl, self.fmult = _cached_reflections(phase, dmin)
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
        gstar = reciprocal_metric(cell)
        g6 = np.array([gstar[0, 0], gstar[1, 1], gstar[2, 2], gstar[0, 1], gstar[0, 2], gstar[1, 2]])
        inv_d2 = self.hh @ g6
        return 1.0 / np.sqrt(np.maximum(inv_d2, 1e-12))


_REFL_CACHE: dict[tuple, tuple[float, np.ndarray, np.ndarray]] = {}


def _phase_key(phase: Any) -> tuple:
    prov = getattr(phase, "provenance", None)
    return (str(phase.id), tuple(round(float(v), 6) for v in phase.cell.parameters),
            len(getattr(phase, "sites", []) or []), getattr(prov, "file", None),
            getattr(phase, "block", None))


def _cached_reflections(phase: Any, dmin: float) -> tuple[np.ndarray, np.ndarray]:
    """Reflections down to dmin, cached per phase: a cached list computed to a smaller d is reused."""
    key = _phase_key(phase)
    hit = _REFL_CACHE.get(key)
    if hit is not None and hit[0] <= dmin * (1 + 1e-9):
        dcache, hkl, fm = hit
        if dcache < dmin * 0.999:
            d = 1.0 / np.sqrt(np.maximum(
                np.einsum("ni,ij,nj->n", hkl, reciprocal_metric(phase.cell.parameters), hkl), 1e-12))
            keep = d >= dmin
            return hkl[keep], fm[keep]
        return hkl, fm
    # compute a little further than asked so that neighbouring calls reuse it
    dmin_calc = dmin * 0.98
    hkl, fm = _base_reflections(phase, dmin_calc)
    _REFL_CACHE[key] = (dmin_calc, hkl, fm)
    return hkl, fm


def clear_cache() -> None:
    """Forget the cached reflection lists (e.g. after editing a Phase in place)."""
    _REFL_CACHE.clear()


# ----------------------------------------------------------------------------------------------
# profile
# ----------------------------------------------------------------------------------------------
def _pv_eval(x: np.ndarray, centres: np.ndarray, areas: np.ndarray, fwhm: np.ndarray, eta: float,
             *, dcentre: np.ndarray | None = None, dfwhm: np.ndarray | None = None,
             deriv: bool = False, values: bool = True) -> dict[str, Any]:
    """Sum of unit-area pseudo-Voigt peaks × areas on a sorted x (density per degree 2θ).

    Peaks are evaluated in a window of ±``_PROFILE_WINDOW_FWHM``·FWHM; the Lorentzian is
    renormalised to unit area inside it. With ``deriv`` the analytic derivatives are returned too:
    ``eta`` (∂/∂η), ``centre`` (∂/∂ common shift of all centres), ``dcentre[k]`` (peak centres move by
    ``dcentre[:, k]`` per unit of parameter k) and ``dfwhm[k]`` (FWHMs change by ``dfwhm[:, k]``).
    """
    n = x.size
    out: dict[str, Any] = {}
    # a derivative-only pass (values from xtal.simulate) needs a narrower window
    half = (_PROFILE_WINDOW_FWHM if values else 4.0) * fwhm
    lo = np.searchsorted(x, centres - half)
    hi = np.searchsorted(x, centres + half)
    counts = hi - lo
    ok = counts > 0
    if not ok.all():
        centres, areas, fwhm, lo, counts = centres[ok], areas[ok], fwhm[ok], lo[ok], counts[ok]
        if dcentre is not None:
            dcentre = dcentre[ok]
        if dfwhm is not None:
            dfwhm = dfwhm[ok]
    total = int(counts.sum())
    zeros = np.zeros(n)
    if total == 0:
        out["col"] = zeros
        if deriv:
            out["eta"] = zeros
            out["centre"] = zeros
            out["dcentre"] = [zeros] * (0 if dcentre is None else dcentre.shape[1])
            out["dfwhm"] = [zeros] * (0 if dfwhm is None else dfwhm.shape[1])
        return out
    idx = np.repeat(np.arange(centres.size), counts)
    starts = np.cumsum(counts) - counts
    ix = np.repeat(lo - starts, counts) + np.arange(total)
    hw_p = 0.5 * fwhm
    dx = x[ix] - centres[idx]
    inv_hw = (1.0 / hw_p)[idx]
    t = dx * inv_hw
    t2 = t * t
    ln2 = math.log(2.0)
    ai = (areas / hw_p)[idx]
    g = (math.sqrt(ln2 / math.pi) * ai) * np.exp(-ln2 * t2)
    inv1t2 = 1.0 / (1.0 + t2)
    lor = (_LOR_NORM / math.pi) * ai * inv1t2
    # smooth taper of the Lorentzian tail over the last 2 FWHM of the window: the model stays
    # continuous when peaks move (points entering/leaving a window), which the optimiser needs
    u = np.abs(t) * 0.5 - (_PROFILE_WINDOW_FWHM - _TAPER_FWHM)
    tail = u > 0
    if values and np.any(tail):
        lor[tail] *= 0.5 * (1.0 + np.cos(np.pi * np.minimum(u[tail] / _TAPER_FWHM, 1.0)))
    if values:
        out["col"] = np.bincount(ix, weights=eta * lor + (1.0 - eta) * g, minlength=n)
    if not deriv:
        return out
    out["eta"] = np.bincount(ix, weights=lor - g, minlength=n)
    # ∂/∂centre = −∂/∂x
    dg_dc = g * (2.0 * ln2) * t * inv_hw
    dl_dc = lor * 2.0 * t * inv1t2 * inv_hw
    pc = eta * dl_dc + (1.0 - eta) * dg_dc
    out["centre"] = np.bincount(ix, weights=pc, minlength=n)
    out["dcentre"] = [] if dcentre is None else [
        np.bincount(ix, weights=pc * dcentre[idx, k], minlength=n) for k in range(dcentre.shape[1])]
    if dfwhm is not None and dfwhm.shape[1]:
        # ∂/∂hw, hw = fwhm/2
        dg_dh = g * inv_hw * (2.0 * ln2 * t2 - 1.0)
        dl_dh = lor * inv_hw * (2.0 * t2 * inv1t2 - 1.0)
        ph = 0.5 * (eta * dl_dh + (1.0 - eta) * dg_dh)
        out["dfwhm"] = [np.bincount(ix, weights=ph * dfwhm[idx, k], minlength=n)
                        for k in range(dfwhm.shape[1])]
    else:
        out["dfwhm"] = []
    return out


def _lorentz_window_norm() -> float:
    """1 / (area of a unit Lorentzian inside the tapered window), FWHM = 1."""
    k, tp = _PROFILE_WINDOW_FWHM, _TAPER_FWHM
    u = np.linspace(0.0, k, 400001)
    lor = (4.0 / math.pi) / (1.0 + 4.0 * u * u)       # both sides, FWHM 1
    tap = np.where(u > k - tp, 0.5 * (1 + np.cos(np.pi * np.minimum((u - (k - tp)) / tp, 1.0))), 1.0)
    y = lor * tap
    area = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(u)))
    return 1.0 / area


_TAPER_FWHM = 2.0
_LOR_NORM = _lorentz_window_norm()


def _fwhm(tth_deg: np.ndarray, u: float, v: float, w: float) -> np.ndarray:
    """Caglioti FWHM (°), floored at ``_MIN_FWHM_DEG`` while the fit moves through U, V, W."""
    return caglioti_fwhm(tth_deg, u, v, w, min_fwhm_deg=_MIN_FWHM_DEG)


# ----------------------------------------------------------------------------------------------
# result objects
# ----------------------------------------------------------------------------------------------
@dataclass
class PhaseFit:
    """One phase of a fit. ``strain`` is the relative change of a, b, c vs the library cell."""

    id: str
    scale: float
    scale_su: float | None
    weight_fraction: float | None
    weight_fraction_su: float | None
    cell: tuple[float, ...]
    cell_su: tuple[float | None, ...]
    volume_angstrom3: float
    volume_su: float | None
    strain: tuple[float, ...]
    fwhm_deg: float
    model: bool
    name: str = ""
    lattice_mode: str = "cell"                 # "cell" (per axis by crystal system) | "isotropic" | "fixed"
    crystal_system: str = ""
    library_cell: tuple[float, ...] = ()
    bragg_intensity: float = 0.0               # integrated intensity of this phase (counts·°)
    profile: dict[str, float] = field(default_factory=dict)

    @property
    def strain_isotropic(self) -> float:
        """(V/V0)^(1/3) − 1."""
        v0 = cell_volume(self.library_cell) if self.library_cell else self.volume_angstrom3
        return (self.volume_angstrom3 / v0) ** (1.0 / 3.0) - 1.0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "scale": _f(self.scale), "scale_su": _f(self.scale_su),
            "weight_fraction": _f(self.weight_fraction),
            "weight_fraction_su": _f(self.weight_fraction_su),
            "strain": [_f(s) for s in self.strain], "strain_isotropic": _f(self.strain_isotropic),
            "cell": [_f(c) for c in self.cell], "cell_su": [_f(c) for c in self.cell_su],
            "volume_angstrom3": _f(self.volume_angstrom3), "volume_su": _f(self.volume_su),
            "fwhm_deg": _f(self.fwhm_deg), "model": self.model, "lattice_mode": self.lattice_mode,
            "crystal_system": self.crystal_system, "bragg_intensity": _f(self.bragg_intensity),
        }


@dataclass
class FitResult:
    """A whole-pattern fit of a fixed phase set (see module docstring)."""

    phases: list[PhaseFit]
    rwp: float
    chi2: float
    bic: float
    n_points: int
    n_params: int
    x_deg: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    background: np.ndarray
    per_phase: dict[str, np.ndarray]
    zero_shift_deg: float
    amorphous_fraction: float | None
    bragg_intensity: float
    # additions to the contract
    zero_shift_su: float | None = None
    rexp: float = float("nan")
    profile: dict[str, float] = field(default_factory=dict)      # U, V, W (deg²), eta
    profile_su: dict[str, float | None] = field(default_factory=dict)
    background_kind: str = "chebyshev"
    background_coefficients: np.ndarray | None = None
    radiation: Radiation | None = None
    sigma: np.ndarray | None = None
    success: bool = True
    nfev: int = 0
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def wavelength_angstrom(self) -> float | None:
        return self.radiation.primary if self.radiation else None

    @property
    def residual(self) -> np.ndarray:
        return self.observed - self.calculated

    def phase(self, phase_id: str) -> PhaseFit:
        for p in self.phases:
            if p.id == phase_id:
                return p
        raise KeyError(phase_id)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "phases": [p.to_json_dict() for p in self.phases], "rwp": _f(self.rwp),
            "rexp": _f(self.rexp), "chi2": _f(self.chi2), "bic": _f(self.bic),
            "n_points": self.n_points, "n_params": self.n_params,
            "zero_shift_deg": _f(self.zero_shift_deg), "zero_shift_su": _f(self.zero_shift_su),
            "profile": {k: _f(v) for k, v in self.profile.items()},
            "amorphous_fraction": _f(self.amorphous_fraction),
            "bragg_intensity": _f(self.bragg_intensity), "background": self.background_kind,
            "radiation": self.radiation.to_json() if self.radiation else None,
            "warnings": list(self.warnings),
        }


def _f(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------------------------
# pattern access and pre-processing
# ----------------------------------------------------------------------------------------------
@dataclass
class _Data:
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    source: str | None


def _prepare(pattern: Any, two_theta_range: tuple[float, float] | None = None,
             rad: Radiation | None = None) -> _Data:
    axis = getattr(pattern, "axis", "two_theta_deg")
    if axis == "two_theta_deg":
        x = np.asarray(pattern.x, dtype=float)
    elif getattr(pattern, "wavelength_angstrom", None) or rad is None:
        x = np.asarray(pattern.two_theta_deg(), dtype=float)
    else:
        # a Q or d pattern without λ in the file, λ given by the caller
        xx = np.asarray(pattern.x, dtype=float)
        q = xx if axis == "q_inv_angstrom" else 2.0 * np.pi / xx
        with np.errstate(invalid="ignore"):
            x = 2.0 * np.degrees(np.arcsin(q * rad.primary / (4.0 * np.pi)))
    y = np.asarray(pattern.intensity, dtype=float)
    sig = getattr(pattern, "sigma", None)
    src = getattr(pattern, "source", None)
    if x.size != y.size:
        raise NoSignalError("x and intensity have different lengths", path=src)
    ok = np.isfinite(x) & np.isfinite(y)
    if sig is not None:
        sig = np.asarray(sig, dtype=float)
        ok &= np.isfinite(sig) & (sig > 0)
    if two_theta_range is not None:
        ok &= (x >= two_theta_range[0]) & (x <= two_theta_range[1])
    x, y = x[ok], y[ok]
    sig = sig[ok] if sig is not None else None
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if sig is not None:
        sig = sig[order]
    if x.size < 20:
        raise NoSignalError(f"only {x.size} usable points in the pattern", path=src)
    if not np.any(y != 0):
        raise NoSignalError("all intensities are zero", path=src)
    if np.ptp(y) <= 0:
        raise NoSignalError("the intensity is constant: no diffraction signal", path=src)
    if sig is None:
        # Poisson counts; a floor so that zero-count points keep a finite weight
        floor = max(1.0, 0.5 * float(np.median(np.abs(y[y != 0])) ** 0.5) if np.any(y != 0) else 1.0)
        sig = np.sqrt(np.maximum(np.abs(y), floor ** 2))
        # data that are clearly not counts (normalised) get a uniform relative σ instead
        if float(np.max(np.abs(y))) < 50:
            sig = np.full_like(y, max(1e-3 * float(np.max(np.abs(y))), 1e-12)) + 0.02 * np.abs(y)
    return _Data(x, y, sig, src)


def estimate_background(x: np.ndarray, y: np.ndarray, method: str = "snip",
                        fwhm_deg: float | None = None) -> np.ndarray:
    """Background under a powder pattern with pybaselines (``"snip"`` or ``"arpls"``)."""
    from pybaselines import Baseline

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    step = float(np.median(np.diff(x)))
    fw = fwhm_deg if fwhm_deg else 0.1
    bl = Baseline(x_data=x)
    if method == "snip":
        hw = int(np.clip(6.0 * fw / step, 10, max(11, x.size // 4)))
        base, _ = bl.snip(y, max_half_window=hw, decreasing=True, smooth_half_window=max(1, hw // 10))
    elif method == "arpls":
        lam = 10.0 ** np.clip(3.0 + 2.0 * math.log10(max(fw / step, 1.0)) + 2.0, 4, 12)
        base, _ = bl.arpls(y, lam=lam)
    else:
        raise IdentificationError(f"unknown background method {method!r} (use 'chebyshev', "
                                  "'snip' or 'arpls')")
    return np.minimum(np.asarray(base, dtype=float), y.max())


def _smooth(v: np.ndarray, sigma_pts: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d
    if sigma_pts < 0.3:
        return v
    return gaussian_filter1d(v, sigma_pts, mode="nearest")


@dataclass
class _Peaks:
    pos: np.ndarray
    height: np.ndarray
    fwhm: np.ndarray


def _find_peaks(x: np.ndarray, net: np.ndarray, noise: np.ndarray, nsig: float = 4.0,
                rel: float = 0.0) -> _Peaks:
    from scipy.signal import find_peaks, peak_widths

    step = float(np.median(np.diff(x)))
    sm = _smooth(net, 1.0)
    thr = nsig * noise / math.sqrt(2.0)  # smoothing over ~3 points lowers the noise
    idx, _ = find_peaks(sm, prominence=thr)
    if idx.size == 0:
        return _Peaks(np.zeros(0), np.zeros(0), np.zeros(0))
    keep = sm[idx] > thr[idx]
    if rel > 0:
        keep &= sm[idx] > rel * sm[idx].max()
    idx = idx[keep]
    if idx.size == 0:
        return _Peaks(np.zeros(0), np.zeros(0), np.zeros(0))
    widths = peak_widths(sm, idx, rel_height=0.5)[0] * step
    return _Peaks(x[idx], sm[idx], widths)


# ----------------------------------------------------------------------------------------------
# the fitter (variable projection)
# ----------------------------------------------------------------------------------------------
_GLOBAL = ("zero", "U", "V", "W", "eta")


class _Fitter:
    """Variable-projection whole-pattern fitter for a fixed phase set (internal)."""

    def __init__(self, data: _Data, models: list[_PhaseModel], rad: Radiation, *,
                 n_background: int, fixed_background: np.ndarray | None, exact_profile: bool = True,
                 min_rel_area: float = 0.0):
        self.d = data
        self.models = models
        self.rad = rad
        x = data.x
        self.x = x
        self.sw = 1.0 / data.sigma
        self.w = self.sw ** 2
        self.yfit = data.y - (fixed_background if fixed_background is not None else 0.0)
        self.fixed_bg = fixed_background
        u = 2.0 * (x - x[0]) / max(x[-1] - x[0], 1e-9) - 1.0
        nb = max(1, int(n_background))
        self.B = np.polynomial.chebyshev.chebvander(u, nb - 1)  # n × nb
        self.Bw_T = (self.B * self.w[:, None]).T                # nb × n (weighted, for normal eqs)
        self.Gbb = self.Bw_T @ self.B
        self.Gbb += np.eye(nb) * 1e-12 * np.trace(self.Gbb)
        self.Gbb_inv = np.linalg.inv(self.Gbb)
        self.By = self.Bw_T @ self.yfit
        self.xmin, self.xmax = float(x[0]), float(x[-1])
        dx = np.diff(x)
        step = (self.xmax - self.xmin) / max(x.size - 1, 1)
        # xtal.simulate's exact profile needs a uniform grid (else it evaluates densely: slow)
        self.uniform = exact_profile and bool(x.size > 3 and step > 0 and np.allclose(
            dx, step, rtol=1e-7, atol=1e-12 * step))
        self.nfev = 0
        self.min_rel_area = float(min_rel_area)
        self._strong_cache: dict[int, np.ndarray] = {}
        self.free_global: list[str] = []
        self.lat_slices: list[slice] = []
        self.n_theta = 0

    # --- model pieces ---------------------------------------------------------------------
    def peaks(self, m: _PhaseModel, q: np.ndarray, g: dict[str, float], deriv: bool):
        """Peak centres, areas, FWHM (and centre/FWHM derivatives) of one phase, all lines."""
        cell = m.cell(q)
        d = m.d_spacings(cell)
        nq = len(q) if deriv else 0
        dd = []
        for k in range(nq):
            q2 = np.array(q, dtype=float)
            h = 2e-3 if m.names[k] in ("alpha", "beta", "gamma", "angle") else 1e-6
            q2[k] += h
            dd.append((m.d_spacings(m.cell(q2)) - d) / h)
        cs, ar, fw, dcs, dfs = [], [], [], [], []
        margin = 1.0 + _PROFILE_WINDOW_FWHM
        for lam, wt in zip(self.rad.wavelengths, self.rad.weights):
            s = lam / (2.0 * d)
            ok = s < 0.99999
            tth = 2.0 * np.degrees(np.arcsin(s[ok]))
            f = _fwhm(tth, g["U"], g["V"], g["W"])
            c = tth + g["zero"]
            sel = (c > self.xmin - margin * f) & (c < self.xmax + margin * f)
            if self.min_rel_area > 0:
                sel &= self._strong(m)[ok]
            if not np.any(sel):
                continue
            idx = np.nonzero(ok)[0][sel]
            tth, c, f = tth[sel], c[sel], f[sel]
            cs.append(c)
            ar.append(m.fmult[idx] * _lp(tth, self.rad) * wt)
            fw.append(f)
            if deriv:
                # d(2θ)/dd = −2 tanθ / d (rad) → degrees
                tt = np.tan(np.radians(tth) / 2.0)
                k2 = -np.degrees(2.0 * tt / d[idx])
                dcs.append(np.stack([k2 * dk[idx] for dk in dd], axis=1) if nq else
                           np.zeros((idx.size, 0)))
                # FWHM derivatives w.r.t. U, V, W
                dfs.append(np.stack([tt * tt, tt, np.ones_like(tt)], axis=1) / (2.0 * f[:, None]))
        if not cs:
            return None
        out = [np.concatenate(cs), np.concatenate(ar), np.concatenate(fw)]
        if deriv:
            out += [np.concatenate(dcs), np.concatenate(dfs)]
        return out

    def _strong(self, m: _PhaseModel) -> np.ndarray:
        """Reflections kept in a search fit: mult·|F|²·LP ≥ ``min_rel_area`` × the strongest one in
        range (fixed for the fitter, so that the model stays continuous)."""
        key = id(m)
        mask = self._strong_cache.get(key)
        if mask is None:
            d = m.d_spacings(m.cell0)
            s = self.rad.primary / (2.0 * d)
            tth = 2.0 * np.degrees(np.arcsin(np.clip(s, 0, 0.99999)))
            inten = m.fmult * _lp(tth, self.rad)
            inr = (s < 0.99999) & (tth > self.xmin) & (tth < self.xmax)
            top = float(inten[inr].max()) if np.any(inr) else float(inten.max(initial=0.0))
            mask = inten >= self.min_rel_area * top
            self._strong_cache[key] = mask
        return mask

    def phase_eval(self, m: _PhaseModel, q: np.ndarray, g: dict[str, float], deriv: bool = False):
        pk = self.peaks(m, q, g, deriv)
        if pk is None:
            z = np.zeros(self.x.size)
            out: dict[str, Any] = {"col": z}
            if deriv:
                out.update(eta=z, centre=z, dcentre=[z] * len(q), dfwhm=[z] * 3)
            return out
        c, a, f = pk[:3]
        if self.uniform:
            # values from xtal.simulate (exact, with the full Lorentzian tails, as xtal.synth);
            # the windowed pass below only supplies the derivatives
            col = np.asarray(pseudo_voigt_profile(self.x, c, a, f, g["eta"]), dtype=float)
            if not deriv:
                return {"col": col}
            out = _pv_eval(self.x, c, a, f, g["eta"], dcentre=pk[3], dfwhm=pk[4], deriv=True,
                           values=False)
            out["col"] = col
            return out
        if deriv:
            return _pv_eval(self.x, c, a, f, g["eta"], dcentre=pk[3], dfwhm=pk[4], deriv=True)
        return _pv_eval(self.x, c, a, f, g["eta"])

    def solve_linear(self, cols: list[np.ndarray]):
        """Scales (≥ 0) and Chebyshev coefficients for fixed columns (normal equations, Schur
        complement of the background, NNLS on the few scales); returns (s, b, calc)."""
        k = len(cols)
        if k == 0:
            b = self.Gbb_inv @ self.By
            return np.zeros(0), b, self.B @ b
        P = np.stack(cols, axis=1)
        Pw_T = (P * self.w[:, None]).T
        Gpp = Pw_T @ P
        Gpb = Pw_T @ self.B
        Py = Pw_T @ self.yfit
        M = Gpp - Gpb @ self.Gbb_inv @ Gpb.T
        r = Py - Gpb @ (self.Gbb_inv @ self.By)
        dg = np.sqrt(np.clip(np.diag(M), 1e-300, None))
        Mn = M / np.outer(dg, dg) + np.eye(k) * 1e-12
        rn = r / dg
        try:
            L = np.linalg.cholesky(Mn)
            sn, _ = nnls(L.T, np.linalg.solve(L, rn), maxiter=50 * k + 50)
        except np.linalg.LinAlgError:
            sn, _ = nnls(Mn, rn, maxiter=50 * k + 50)
        s = sn / dg
        b = self.Gbb_inv @ (self.By - Gpb.T @ s)
        self._last_normal = (Gpp, Gpb)
        return s, b, P @ s + self.B @ b

    # --- parameter vector ------------------------------------------------------------------
    def setup(self, free_global: Sequence[str], refine_lattice: bool):
        self.free_global = [g for g in _GLOBAL if g in free_global]
        self.lat_slices = []
        i = len(self.free_global)
        for m in self.models:
            n = m.n_params if refine_lattice else 0
            self.lat_slices.append(slice(i, i + n))
            i += n
        self.n_theta = i

    def unpack(self, theta: np.ndarray, g0: dict[str, float], q0: list[np.ndarray]):
        g = dict(g0)
        for j, name in enumerate(self.free_global):
            g[name] = float(theta[j])
        qs = []
        for sl, q in zip(self.lat_slices, q0):
            qs.append(np.array(theta[sl], dtype=float) if sl.stop > sl.start else np.asarray(q))
        return g, qs

    def pack(self, g: dict[str, float], qs: list[np.ndarray]) -> np.ndarray:
        th = [g[n] for n in self.free_global]
        for sl, q in zip(self.lat_slices, qs):
            if sl.stop > sl.start:
                th.extend(list(q))
        return np.array(th, dtype=float)

    def bounds(self, max_strain: float, zero_max: float):
        lo, hi = [], []
        lim = {"zero": (-zero_max, zero_max), "U": (0.0, 2.0), "V": (-1.0, 1.0),
               "W": (1e-8, 4.0), "eta": (0.0, 1.0)}
        for n in self.free_global:
            lo.append(lim[n][0])
            hi.append(lim[n][1])
        for m, sl in zip(self.models, self.lat_slices):
            if sl.stop == sl.start:
                continue
            for nm in m.names:
                if nm in ("alpha", "beta", "gamma", "angle"):
                    lo.append(-3.0)
                    hi.append(3.0)
                else:
                    lo.append(-max_strain)
                    hi.append(max_strain)
        return np.array(lo), np.array(hi)


def _run_fit(fitter: _Fitter, g0: dict[str, float], q0: list[np.ndarray], *, free_global,
             refine_lattice: bool, max_strain: float, zero_max: float, max_iter: int,
             ftol: float = 1e-5):
    """Levenberg–Marquardt on the non-linear parameters, the linear ones solved exactly at every
    step (variable projection, Kaufman's Jacobian: analytic profile derivatives, linear
    parameters projected out via the normal equations). Returns (state, theta, H, success)."""
    fitter.setup(free_global, refine_lattice)
    models = fitter.models

    def evaluate(theta, deriv=False):
        g, qs = fitter.unpack(theta, g0, q0)
        ev = [fitter.phase_eval(m, q, g, deriv) for m, q in zip(models, qs)]
        cols = [e["col"] for e in ev]
        s, b, calc = fitter.solve_linear(cols)
        fitter.nfev += 1
        r = fitter.yfit - calc
        return dict(g=g, qs=qs, ev=ev, cols=cols, s=s, b=b, calc=calc, r=r,
                    cost=float(np.sum(fitter.w * r * r)))

    def normal(st):
        """Projected Gauss–Newton matrix H and gradient of the cost (½ Σ w r²)."""
        s, ev, g = st["s"], st["ev"], st["g"]
        n = fitter.x.size
        p = fitter.n_theta
        D = np.zeros((p, n))   # ∂calc/∂θ (rows)
        for i, e in enumerate(ev):
            if s[i] <= 0:
                continue
            for j, name in enumerate(fitter.free_global):
                if name == "zero":
                    D[j] += s[i] * e["centre"]
                elif name == "eta":
                    D[j] += s[i] * e["eta"]
                else:
                    D[j] += s[i] * e["dfwhm"]["UVW".index(name)]
            sl = fitter.lat_slices[i]
            for k in range(sl.stop - sl.start):
                D[sl.start + k] += s[i] * e["dcentre"][k]
        Dw = D * fitter.w[None, :]
        H = Dw @ D.T
        grad = -(Dw @ st["r"])
        active = [i for i in range(len(s)) if s[i] > 0]
        A = np.concatenate([np.stack([st["cols"][i] for i in active], axis=1), fitter.B], axis=1) \
            if active else fitter.B
        DA = Dw @ A
        AA = (A * fitter.w[:, None]).T @ A
        AA += np.eye(AA.shape[0]) * 1e-12 * np.trace(AA)
        H = H - DA @ np.linalg.solve(AA, DA.T)
        H = 0.5 * (H + H.T)
        return H, grad

    theta = fitter.pack(g0, q0)
    lo, hi = fitter.bounds(max_strain, zero_max)
    theta = np.clip(theta, lo, hi)
    st = evaluate(theta, deriv=fitter.n_theta > 0)
    H = None
    success = True
    if fitter.n_theta > 0 and max_iter > 0:
        lam = 1e-3
        small = 0
        it = 0
        H, grad = normal(st)
        while it < max_iter:
            it += 1
            # parameters held at a bound by the gradient are left out of the step (active set)
            free = ~(((theta <= lo) & (grad > 0)) | ((theta >= hi) & (grad < 0)))
            step = np.zeros_like(theta)
            singular = False
            for _ in range(4):
                step[:] = 0.0
                if not np.any(free):
                    break
                Hf = H[np.ix_(free, free)]
                dH = np.diag(Hf).copy()
                dH[dH <= 0] = 1e-30
                try:
                    step[free] = -np.linalg.solve(Hf + lam * np.diag(dH), grad[free])
                except np.linalg.LinAlgError:
                    singular = True
                    break
                # a parameter on its bound that the step pushes outward is held (projected step)
                out = free & (((theta <= lo) & (step < 0)) | ((theta >= hi) & (step > 0)))
                if not np.any(out):
                    break
                free &= ~out
            if singular:
                lam *= 10
                continue
            new = np.clip(theta + step, lo, hi)
            dlt = new - theta
            # predicted decrease of Σw r² (Gauss–Newton model); nothing left to gain → converged
            pred = -(2.0 * float(grad @ dlt) + float(dlt @ H @ dlt))
            if 0.0 <= pred < 0.1 * ftol * st["cost"] and lam <= 1e-2:
                break
            st2 = evaluate(new, deriv=True)
            if st2["cost"] < st["cost"]:
                rel = (st["cost"] - st2["cost"]) / max(st["cost"], 1e-300)
                theta, st = new, st2
                H, grad = normal(st)
                lam = max(lam / 4.0, 1e-7)
                small = small + 1 if rel < ftol else 0
                if small >= (1 if ftol >= 1e-4 else 2):
                    break
            else:
                lam *= 5.0
                if lam > 1e8 or 0.0 <= pred < 1e-4 * st["cost"]:
                    break   # no further progress above the numerical noise of the model
        else:
            success = False
    elif fitter.n_theta > 0:
        H, _ = normal(st)
    return st, theta, H, success


# ----------------------------------------------------------------------------------------------
# fit_phases
# ----------------------------------------------------------------------------------------------
def _default_n_background(x: np.ndarray) -> int:
    span = float(x[-1] - x[0])
    return int(np.clip(round(span / 12.0) + 4, 5, 14))


def _initial_width(data: _Data, bg: np.ndarray | None = None) -> float:
    if bg is None:
        bg = estimate_background(data.x, data.y, "snip")
    pk = _find_peaks(data.x, data.y - bg, data.sigma, nsig=6.0)
    step = float(np.median(np.diff(data.x)))
    if pk.fwhm.size == 0:
        return max(0.1, 5 * step)
    order = np.argsort(pk.height)[::-1][:15]
    return float(np.clip(np.median(pk.fwhm[order]), 2 * step, 2.0))


@_one_blas_thread
def fit_phases(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None,
               start: FitResult | None = None, refine_lattice: bool | str = True,
               background: str = "chebyshev", n_background: int | None = None,
               refine_profile: str | Sequence[str] = "auto", strains: Sequence[Any] | None = None,
               fwhm_deg: float | None = None, eta: float | None = None, zero_shift_deg: float = 0.0,
               max_strain: float = DEFAULT_MAX_STRAIN, zero_max_deg: float = 0.5,
               two_theta_range: tuple[float, float] | None = None, max_iter: int | None = None,
               ftol: float = 1e-5, amorphous: bool = True, exact_profile: bool = False,
               polarization: Any = None,
               _data: _Data | None = None, _rad: Radiation | None = None,
               _fixed_bg: np.ndarray | None = None, _min_rel_area: float = 0.0) -> FitResult:
    """Whole-pattern fit of a fixed phase set (Pawley-free, structure-factor intensities).

    Parameters
    ----------
    pattern : ``xtal.io.Pattern`` (2θ, or convertible with its λ).
    phases : the phases to fit (``xtal.structures.Phase``).
    wavelength : None (the file's), a number (Å), a tube name or a :class:`Radiation`.
    start : a neighbouring result (series continuity): its cells, zero shift and profile are the
        starting point; the fit then converges in a few iterations.
    refine_lattice : True/"cell" – per-axis cell constrained by the crystal system (cubic a;
        tetragonal/hexagonal a, c; orthorhombic a, b, c; monoclinic a, b, c, β; …);
        "isotropic" – one strain per phase; False/"fixed" – library cell.
    background : "chebyshev" (refined, ``n_background`` terms) or "snip"/"arpls" (pybaselines
        estimate, fixed, plus a refined constant).
    refine_profile : "auto" (zero, U, V, W, η), "width" (zero, W, η) or an explicit list of
        names among zero, U, V, W, eta.
    exact_profile : True: on a uniform grid, evaluate the peaks with
        ``xtal.simulate.pseudo_voigt_profile`` (exact Lorentzian tails, as ``xtal.synth``; ~3× slower;
        used by the final refinement in ``identify``). False (default): a ±6 FWHM window with a
        tapered, renormalised Lorentzian — the same cells and fractions, but the far Lorentzian tails
        go into the background (visible only on a zero background). Non-uniform grids always use
        the window.
    strains : starting relative lattice strain per phase (a number or an array of the phase's
        lattice parameters); ignored when ``start`` gives the cell.
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise EmptyLibraryError("no phase to fit")
    rad = _rad or radiation_from(pattern, wavelength, polarization)
    data = _data or _prepare(pattern, two_theta_range, rad)
    mode = {True: "cell", False: "fixed"}.get(refine_lattice, refine_lattice)  # type: ignore[arg-type]
    if mode not in ("cell", "isotropic", "fixed"):
        raise IdentificationError(f"refine_lattice must be True, False, 'cell' or 'isotropic', "
                                  f"not {refine_lattice!r}")
    ids = [str(p.id) for p in phases]
    if len(set(ids)) != len(ids):
        raise IdentificationError(f"duplicate phase ids in the fit: {ids}")
    # reflections down to the d of the highest angle, with room for the strain
    dmin = min(rad.wavelengths) / (2.0 * math.sin(math.radians(min(data.x[-1] + 1.0, 179.0) / 2.0)))
    dmin *= (1.0 - max_strain - 0.01)
    models = [_PhaseModel(p, dmin, mode) for p in phases]

    # background
    fixed_bg = _fixed_bg
    if background in ("snip", "arpls") and fixed_bg is None:
        fw0 = fwhm_deg or (start.profile.get("W", 0.01) ** 0.5 if start else None) or _initial_width(data)
        fixed_bg = estimate_background(data.x, data.y, background, fw0)
    elif background != "chebyshev" and fixed_bg is None:
        raise IdentificationError(f"unknown background {background!r}")
    nbg = 1 if fixed_bg is not None else (n_background or _default_n_background(data.x))
    fitter = _Fitter(data, models, rad, n_background=nbg, fixed_background=fixed_bg,
                     exact_profile=exact_profile, min_rel_area=_min_rel_area)

    # starting values
    g0 = {"zero": float(zero_shift_deg), "U": 0.0, "V": 0.0, "W": 0.01, "eta": 0.5}
    q0 = [np.zeros(m.n_params) for m in models]
    if start is not None:
        g0["zero"] = float(start.zero_shift_deg)
        for k in ("U", "V", "W", "eta"):
            if k in start.profile:
                g0[k] = float(start.profile[k])
        prev = {p.id: p for p in start.phases}
        for i, m in enumerate(models):
            if m.id in prev and prev[m.id].cell:
                q0[i] = m.q_from_cell(prev[m.id].cell)
    else:
        fw = fwhm_deg if fwhm_deg else _initial_width(data)
        g0["W"] = fw * fw
        if eta is not None:
            g0["eta"] = float(eta)
    if strains is not None:
        for i, (m, s0) in enumerate(zip(models, strains)):
            if s0 is None or (start is not None and m.id in {p.id for p in start.phases}):
                continue
            arr = np.atleast_1d(np.asarray(s0, dtype=float))
            if arr.size == m.n_params:
                q0[i] = arr.copy()
            elif m.n_params:
                iso = float(np.mean(arr))
                q0[i] = m.q_from_cell([v * (1 + iso) for v in m.cell0[:3]] + list(m.cell0[3:]))
    if isinstance(refine_profile, str):
        if refine_profile == "auto":
            free = ["zero", "U", "V", "W", "eta"]
        elif refine_profile == "width":
            free = ["zero", "W", "eta"]
        elif refine_profile == "none":
            free = []
        else:
            raise IdentificationError(f"unknown refine_profile {refine_profile!r}")
    else:
        free = list(refine_profile)
    if max_iter is None:
        max_iter = 30 if start is not None else 60
    st, theta, H, success = _run_fit(fitter, g0, q0, free_global=free,
                                     refine_lattice=mode != "fixed", max_strain=max_strain,
                                     zero_max=zero_max_deg, max_iter=max_iter, ftol=ftol)
    res = _make_result(fitter, st, theta, H, success, rad, data, fixed_bg, amorphous)
    res.elapsed_s = time.perf_counter() - t0
    return res


def _make_result(fitter: _Fitter, st: dict, theta: np.ndarray, H: np.ndarray | None,
                 success: bool, rad: Radiation, data: _Data, fixed_bg: np.ndarray | None,
                 amorphous: bool = True) -> FitResult:
    x, y = data.x, data.y
    g, qs, s, b, cols = st["g"], st["qs"], st["s"], st["b"], st["cols"]
    bg = fitter.B @ b + (fixed_bg if fixed_bg is not None else 0.0)
    calc = st["calc"] + (fixed_bg if fixed_bg is not None else 0.0)
    w = fitter.sw ** 2
    r = y - calc
    rss = float(np.sum(w * r * r))
    n = int(x.size)
    active = [i for i in range(len(s)) if s[i] > 0]
    n_lin = len(active) + fitter.B.shape[1]
    n_nl = len(fitter.free_global) + sum((sl.stop - sl.start) for i, sl in enumerate(fitter.lat_slices)
                                         if i in active)
    npar = n_lin + n_nl
    dof = max(n - npar, 1)
    chi2 = rss / dof
    rwp = math.sqrt(rss / max(float(np.sum(w * y * y)), 1e-300))
    rexp = math.sqrt(dof / max(float(np.sum(w * y * y)), 1e-300))
    bic = n * math.log(max(rss / n, 1e-300)) + npar * math.log(n)

    # covariance of non-linear parameters (linear ones projected out)
    cov_nl = None
    if H is not None and H.size:
        try:
            cov_nl = np.linalg.pinv(H, rcond=1e-12) * chi2
        except np.linalg.LinAlgError:
            cov_nl = None
    # covariance of the scales (at fixed non-linear parameters)
    cov_s = None
    if active:
        A = np.concatenate([np.stack([cols[i] for i in active], axis=1), fitter.B], axis=1)
        Aw = A * fitter.sw[:, None]
        try:
            cov_s = np.linalg.pinv(Aw.T @ Aw)[: len(active), : len(active)] * chi2
        except np.linalg.LinAlgError:
            cov_s = None

    # weight fractions (Hill–Howard)
    mv = []
    for i, m in enumerate(fitter.models):
        mv.append(m.cell_mass * cell_volume(m.cell(qs[i])))
    mv = np.array(mv)
    wsum = float(np.sum(s * mv))
    wf = s * mv / wsum if wsum > 0 else np.full(len(s), np.nan)
    wf_su = np.full(len(s), np.nan)
    if cov_s is not None and wsum > 0:
        act = np.array(active)
        for a_i, i in enumerate(active):
            grad = np.zeros(len(active))
            for b_j, j in enumerate(active):
                grad[b_j] = ((1.0 if i == j else 0.0) * mv[i] * wsum - s[i] * mv[i] * mv[j]) / wsum ** 2
            wf_su[i] = math.sqrt(max(float(grad @ cov_s @ grad), 0.0))
        del act

    phase_fits = []
    per_phase = {}
    zero_su = None
    prof_su: dict[str, float | None] = {}
    for j, name in enumerate(fitter.free_global):
        su = math.sqrt(cov_nl[j, j]) if cov_nl is not None and cov_nl[j, j] >= 0 else None
        if name == "zero":
            zero_su = su
        else:
            prof_su[name] = su
    total_bragg = 0.0
    for i, m in enumerate(fitter.models):
        cell = m.cell(qs[i])
        sl = fitter.lat_slices[i]
        cell_su: list[float | None] = [None] * 6
        vol_su = None
        if cov_nl is not None and sl.stop > sl.start and s[i] > 0:
            # numerical Jacobian of the cell w.r.t. the lattice parameters
            nq = sl.stop - sl.start
            dc = np.zeros((6, nq))
            dv = np.zeros(nq)
            for k in range(nq):
                q2 = qs[i].copy()
                h = 1e-6
                q2[k] += h
                c2 = m.cell(q2)
                dc[:, k] = (np.array(c2) - np.array(cell)) / h
                dv[k] = (cell_volume(c2) - cell_volume(cell)) / h
            cq = cov_nl[sl, sl]
            var = np.einsum("ik,kl,il->i", dc, cq, dc)
            cell_su = [math.sqrt(v) if v > 0 else None for v in var]
            # parameters fixed by symmetry: s.u. of the parameter it equals
            vol_su = math.sqrt(max(float(dv @ cq @ dv), 0.0))
        col = cols[i] * s[i]
        per_phase[m.id] = col
        inten = float(np.trapezoid(col, x)) if hasattr(np, "trapezoid") else float(np.trapz(col, x))
        total_bragg += inten
        strain = tuple(float(cell[k] / m.cell0[k] - 1.0) for k in range(3))
        s_su = None
        if cov_s is not None and s[i] > 0:
            s_su = math.sqrt(max(cov_s[active.index(i), active.index(i)], 0.0))
        # FWHM at the strongest reflection of the phase
        fwhm_ref = float(_fwhm(np.array([_strongest_tth(m, cell, rad, g)]), g["U"], g["V"], g["W"])[0])
        phase_fits.append(PhaseFit(
            id=m.id, scale=float(s[i]), scale_su=s_su,
            weight_fraction=float(wf[i]) if np.isfinite(wf[i]) else None,
            weight_fraction_su=float(wf_su[i]) if np.isfinite(wf_su[i]) else None,
            cell=tuple(float(c) for c in cell), cell_su=tuple(cell_su),
            volume_angstrom3=cell_volume(cell), volume_su=vol_su, strain=strain,
            fwhm_deg=fwhm_ref, model=m.model, name=str(getattr(m.phase, "name", "") or m.id),
            lattice_mode=m.mode, crystal_system=m.system, library_cell=m.cell0,
            bragg_intensity=inten, profile={k: float(g[k]) for k in ("U", "V", "W", "eta")}))
    amorph = (estimate_amorphous_fraction(x, bg, fixed_bg is None, total_bragg, fitter.B.shape[1])
              if amorphous else None)
    warnings = []
    if not success:
        warnings.append("the non-linear refinement stopped at its evaluation limit")
    for pf in phase_fits:
        if pf.model:
            warnings.append(f"phase {pf.id} is a structural MODEL, not a refined structure: its "
                            "fraction and lattice are indicative only")
    return FitResult(
        phases=phase_fits, rwp=rwp, chi2=chi2, bic=bic, n_points=n, n_params=npar,
        x_deg=x, observed=y, calculated=calc, background=bg, per_phase=per_phase,
        zero_shift_deg=float(g["zero"]), amorphous_fraction=amorph, bragg_intensity=total_bragg,
        zero_shift_su=zero_su, rexp=rexp, profile={k: float(g[k]) for k in ("U", "V", "W", "eta")},
        profile_su=prof_su, background_kind="chebyshev" if fixed_bg is None else "fixed",
        background_coefficients=np.asarray(b), radiation=rad, sigma=data.sigma, success=success,
        nfev=fitter.nfev, warnings=warnings)


def _strongest_tth(m: _PhaseModel, cell, rad: Radiation, g) -> float:
    d = m.d_spacings(cell)
    s = rad.primary / (2 * d)
    ok = s < 0.999
    if not np.any(ok):
        return 30.0
    tth = 2 * np.degrees(np.arcsin(s[ok]))
    inten = m.fmult[ok] * _lp(tth, rad)
    return float(tth[int(np.argmax(inten))])


def estimate_amorphous_fraction(x: np.ndarray, bg: np.ndarray, refined: bool, bragg: float,
                                nbg: int) -> float | None:
    """Broad intensity not explained by a smooth background nor by the phases.

    The refined Chebyshev background can follow a halo; its part above a stiff, low-order
    baseline (iterative lower cubic polynomial, pybaselines ``modpoly``: what an instrument/air
    background looks like) is the halo. Returned as halo / (halo + Bragg) intensity.
    """
    if bragg <= 0 or not refined:
        return None if bragg <= 0 else 0.0
    from pybaselines import Baseline

    k = max(1, x.size // 400)          # the background is smooth: decimate for speed
    xs, bs = x[::k], bg[::k]
    try:
        base, _ = Baseline(x_data=xs).modpoly(bs, poly_order=3, max_iter=200, tol=1e-4)
    except Exception:  # pragma: no cover
        return None
    halo = np.clip(bg - np.interp(x, xs, base), 0, None)
    area = float(np.trapezoid(halo, x)) if hasattr(np, "trapezoid") else float(np.trapz(halo, x))
    return area / (area + bragg)


# ----------------------------------------------------------------------------------------------
# screen
# ----------------------------------------------------------------------------------------------
@dataclass
class ScreenHit:
    """Screen result of one phase: best cosine match and the isotropic strain where it occurs."""

    id: str
    score: float
    strain: float
    n_reflections: int
    alternatives: tuple[float, ...] = ()   # strains of other local maxima within 2 % of the score


def _screen_one(m: _PhaseModel, x: np.ndarray, obs_blur: np.ndarray, rad: Radiation,
                max_strain: float, fwhm: float, n_strong: int = 40) -> ScreenHit:
    d0 = m.d_spacings(m.cell0)
    lam = rad.primary
    s = lam / (2 * d0 * (1 - max_strain))
    ok = s < 0.9999
    tth = 2 * np.degrees(np.arcsin(np.minimum(lam / (2 * d0), 0.9999)))
    inrange = ok & (tth > x[0]) & (tth < x[-1])
    if not np.any(inrange):
        return ScreenHit(m.id, 0.0, 0.0, 0)
    inten = m.fmult * _lp(tth, rad)
    inten = np.where(inrange, inten, 0.0)
    order = np.argsort(inten)[::-1][:n_strong]
    order = order[inten[order] > 1e-3 * inten[order[0]]]
    dd = d0[order]
    ii = inten[order]
    tmax = float(np.max(np.radians(tth[order]) / 2))
    deps = max(1e-5, math.radians(fwhm) / 3.0 / (2 * math.tan(min(tmax, 1.4))))
    neps = int(min(4001, 2 * math.ceil(max_strain / deps) + 1))
    eps = np.linspace(-max_strain, max_strain, neps)
    sarg = lam / (2 * dd[None, :] * (1 + eps[:, None]))
    valid = sarg < 0.9999
    pos = 2 * np.degrees(np.arcsin(np.minimum(sarg, 0.9999)))
    o = np.interp(pos, x, obs_blur, left=0.0, right=0.0)
    o = np.where(valid & (pos > x[0]) & (pos < x[-1]), o, 0.0)
    iw = np.sqrt(ii)  # compress: a match of several reflections beats one strong line
    num = o @ iw
    den = np.sqrt(np.sum(o * o, axis=1)) * math.sqrt(float(iw @ iw)) + 1e-300
    cos = num / den
    # penalise strains where predicted reflections fall outside the observed range
    k = int(np.argmax(cos))
    # other local maxima nearly as good (a minor phase can match a major phase's peaks at a
    # wrong strain): tried too by the search
    inner = cos[1:-1]
    loc = np.nonzero((inner >= cos[:-2]) & (inner > cos[2:]) & (inner >= 0.98 * cos[k]))[0] + 1
    alts = [float(eps[i]) for i in loc[np.argsort(cos[loc])[::-1]]
            if abs(eps[i] - eps[k]) > 4 * deps][:1]
    return ScreenHit(m.id, float(cos[k]), float(eps[k]), int(order.size), tuple(alts))


def _screen_models(models: list[_PhaseModel], x: np.ndarray, net: np.ndarray, rad: Radiation,
                   max_strain: float, fwhm: float, noise: np.ndarray) -> list[ScreenHit]:
    step = float(np.median(np.diff(x)))
    blur = _smooth(np.clip(net, 0, None), max(1.0, 0.5 * fwhm / step))
    # compress the dynamic range (a strong peak must not dominate the match) and ignore noise
    blur = np.sqrt(np.clip(blur - 2.0 * noise / math.sqrt(max(1.0, fwhm / step)), 0, None))
    if blur.max() <= 0:
        return [ScreenHit(m.id, 0.0, 0.0, 0) for m in models]
    blur = blur / blur.max()
    hits = [_screen_one(m, x, blur, rad, max_strain, fwhm) for m in models]
    return sorted(hits, key=lambda h: -h.score)


def screen_phases(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None,
                  max_strain: float = DEFAULT_MAX_STRAIN, polarization: Any = None) -> list[ScreenHit]:
    """Fast screen of every phase against the pattern (best first)."""
    rad = radiation_from(pattern, wavelength, polarization)
    data = _prepare(pattern, None, rad)
    fw = _initial_width(data)
    bg = estimate_background(data.x, data.y, "snip", fw)
    dmin = min(rad.wavelengths) / (2 * math.sin(math.radians(min(data.x[-1] + 1, 179) / 2)))
    models = [_PhaseModel(p, dmin * (1 - max_strain - 0.01), "isotropic") for p in phases]
    return _screen_models(models, data.x, data.y - bg, rad, max_strain, fw, data.sigma)


# ----------------------------------------------------------------------------------------------
# identification
# ----------------------------------------------------------------------------------------------
@dataclass
class Hypothesis:
    """One ranked explanation of the pattern: a phase set and its whole-pattern fit."""

    phases: list[PhaseFit]
    rwp: float
    score: float                      # BIC of the fit (lower is better)
    fit: FitResult
    delta_score: float = 0.0          # score − best score
    near_tie: bool = False            # within NEAR_TIE_DELTA of the best
    explained_fraction: float = float("nan")  # Bragg / (Bragg + unexplained peak intensity)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.phases]

    def to_json_dict(self, detail: bool = True) -> dict[str, Any]:
        d = {"phases": [p.to_json_dict() for p in self.phases], "rwp": _f(self.rwp),
             "score": _f(self.score), "delta_score": _f(self.delta_score),
             "near_tie": self.near_tie, "explained_fraction": _f(self.explained_fraction)}
        if detail:
            d.update(chi2=_f(self.fit.chi2), rexp=_f(self.fit.rexp),
                     zero_shift_deg=_f(self.fit.zero_shift_deg),
                     profile={k: _f(v) for k, v in self.fit.profile.items()},
                     amorphous_fraction=_f(self.fit.amorphous_fraction))
        return d


@dataclass
class IdentificationResult:
    """Ranked hypotheses, unexplained peaks, amorphous estimate and a confidence statement."""

    wavelength: float
    hypotheses: list[Hypothesis]
    unexplained_peaks: list[dict[str, float]]
    amorphous_fraction_estimate: float | None
    confidence: str                   # "high" | "medium" | "low" | "none"
    warnings: list[str]
    confidence_statement: str = ""
    radiation: Radiation | None = None
    model_phases: list[str] = field(default_factory=list)
    screen: list[ScreenHit] = field(default_factory=list)
    n_fits: int = 0
    elapsed_s: float = 0.0
    source: str | None = None
    x_deg: np.ndarray | None = None
    observed: np.ndarray | None = None

    @property
    def best(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON contract of issue 5 (plus extra keys documented in docs/identify.md)."""
        return {
            "wavelength": _f(self.wavelength),
            "radiation": self.radiation.to_json() if self.radiation else None,
            "source": self.source,
            "hypotheses": [h.to_json_dict() for h in self.hypotheses],
            "unexplained_peaks": [{k: _f(v) for k, v in p.items()} for p in self.unexplained_peaks],
            "amorphous_fraction_estimate": _f(self.amorphous_fraction_estimate),
            "confidence": self.confidence,
            "confidence_statement": self.confidence_statement,
            "warnings": list(self.warnings),
            "model_phases": list(self.model_phases),
            "screen": [{"id": h.id, "score": _f(h.score), "strain": _f(h.strain)} for h in self.screen],
            "n_fits": self.n_fits,
            "elapsed_s": _f(self.elapsed_s),
        }


def _positive_support(col: np.ndarray, resid_pos: np.ndarray) -> float:
    tot = float(np.sum(col))
    if tot <= 0:
        return 0.0
    return float(np.sum(np.minimum(col, resid_pos)) / tot)


def unexplained_peaks(fit: FitResult, *, nsig: float = 6.0, min_relative: float = 0.02,
                      fwhm_deg: float | None = None) -> list[dict[str, float]]:
    """Peaks in the residual of ``fit`` that no phase explains.

    A residual maximum counts if it rises ``nsig`` noise σ (of the smoothed residual) above zero,
    is at least ``min_relative`` of the strongest observed net peak, and is not merely the misfit
    of a stronger calculated peak at the same place (< 35 % of the calculated net height there).
    """
    from scipy.signal import find_peaks

    x = fit.x_deg
    step = float(np.median(np.diff(x)))
    fw = fwhm_deg or math.sqrt(max(fit.profile.get("W", 0.01), 1e-8))
    fw = max(fw, 2 * step)
    spts = max(0.5, fw / 2.355 / step)
    r = fit.observed - fit.calculated
    rs = _smooth(r, spts)
    sig = fit.sigma if fit.sigma is not None else np.sqrt(np.maximum(fit.calculated, 1.0))
    neff = max(1.0, 2.0 * math.sqrt(math.pi) * spts)
    noise = _smooth(sig, spts) / math.sqrt(neff)
    net_obs = _smooth(fit.observed - fit.background, spts)
    top = float(np.max(net_obs)) if net_obs.size else 0.0
    calc_net = fit.calculated - fit.background
    idx, _ = find_peaks(rs, prominence=nsig * float(np.median(noise)), distance=max(1, int(fw / step)))
    out = []
    lam = fit.wavelength_angstrom
    for i in idx:
        h = float(rs[i])
        if h < nsig * noise[i] or h < min_relative * top:
            continue
        lo_i, hi_i = max(0, i - int(fw / step)), min(x.size, i + int(fw / step) + 1)
        if h < 0.35 * float(np.max(calc_net[lo_i:hi_i])):
            continue
        tth = float(x[i])
        d = lam / (2 * math.sin(math.radians(tth - fit.zero_shift_deg) / 2)) if lam else float("nan")
        out.append({"two_theta": tth, "d": d, "intensity": h,
                    "relative_intensity": h / top if top > 0 else float("nan"),
                    "significance": h / float(noise[i])})
    out.sort(key=lambda p: -p["intensity"])
    return out


def _explained_fraction(fit: FitResult, peaks: list[dict[str, float]]) -> float:
    step = float(np.median(np.diff(fit.x_deg)))
    fw = max(math.sqrt(max(fit.profile.get("W", 0.01), 1e-8)), 2 * step)
    un = sum(p["intensity"] for p in peaks) * fw * 1.06
    if fit.bragg_intensity + un <= 0:
        return 0.0
    return fit.bragg_intensity / (fit.bragg_intensity + un)


@_one_blas_thread
def identify(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None, max_phases: int = 5,
             max_candidates: int = 8, beam_width: int = 2, background: str = "chebyshev",
             max_strain: float = DEFAULT_MAX_STRAIN, min_delta_bic: float = DEFAULT_MIN_DELTA_BIC,
             min_support: float = 0.2, refine_lattice: bool | str = True, n_hypotheses: int = 4,
             n_first: int = 4, min_rwp_gain: float = 0.025, min_intensity_fraction: float = 0.01,
             two_theta_range: tuple[float, float] | None = None,
             polarization: Any = None) -> IdentificationResult:
    """Which library phases are in ``pattern``, how much of each, what is left unexplained.

    Parameters
    ----------
    pattern : ``xtal.io.Pattern``.
    phases : the library (``Library.phases()``); ids must be unique.
    wavelength : None (the file's), a number in Å (a single line) or a tube name ("CuKa", …:
        Kα1/Kα2 doublet) — see :func:`radiation_from`.
    max_phases : at most this many phases per hypothesis (≤ 5 is sensible).
    max_candidates : phases kept after the screen for whole-pattern fitting.
    beam_width : hypotheses extended at each level of the search.
    background : "chebyshev" (refined) or "snip"/"arpls" (pybaselines, fixed).
    min_delta_bic : a phase must lower the BIC by this much to be added.
    min_rwp_gain : an added phase must also lower Rwp by this relative amount (2.5 %): on real
        data a decoy can otherwise buy a small BIC gain by absorbing profile misfit.
    min_intensity_fraction : an added phase must carry at least this fraction (1 %) of the
        Bragg intensity (the detection limit of a whole-pattern fit with free strain).
    min_support : fraction of an added phase's calculated intensity that must sit on positive
        residual of the parent fit (otherwise it only absorbs misfit).
    refine_lattice : final refinement of the lattice: True (per axis, by crystal system),
        "isotropic", or False (library cell). The search itself uses isotropic strain.
    polarization : beam polarisation for the LP factor (``xtal.simulate.Polarization``,
        "synchrotron", …); None = unpolarised lab beam. Matters for weight fractions of
        synchrotron data (P differs by up to (1 − cos²2θ)/2 across the pattern).

    Raises ``EmptyLibraryError`` (no phases), ``EmptyPatternError`` (all zero / constant),
    ``NoPeaksError`` (nothing above the noise), ``MissingWavelengthError``.
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise EmptyLibraryError("the library is empty: no phase to identify against")
    ids = [str(p.id) for p in phases]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise IdentificationError(f"duplicate phase ids in the library: {dup}")
    by_id = {str(p.id): p for p in phases}
    rad = radiation_from(pattern, wavelength, polarization)
    data = _prepare(pattern, two_theta_range, rad)
    src = data.source
    fw0 = _initial_width(data)
    bg0 = estimate_background(data.x, data.y, "arpls" if background == "arpls" else "snip", fw0)
    net = data.y - bg0
    pk = _find_peaks(data.x, net, data.sigma, nsig=6.0)
    if pk.pos.size == 0:
        raise NoPeaksError("no Bragg peak rises above the noise (6σ): nothing to identify",
                           path=src)
    fixed_bg = bg0 if background in ("snip", "arpls") else None
    if background not in ("chebyshev", "snip", "arpls"):
        raise IdentificationError(f"unknown background {background!r}")
    warnings: list[str] = []
    dmin = min(rad.wavelengths) / (2 * math.sin(math.radians(min(data.x[-1] + 1, 179) / 2)))
    dmin *= 1 - max_strain - 0.01
    models = {i: _PhaseModel(by_id[i], dmin, "isotropic") for i in ids}
    hits = _screen_models(list(models.values()), data.x, net, rad, max_strain, fw0, data.sigma)
    hit_by_id = {h.id: h for h in hits}
    cands = [h.id for h in hits if h.score > 0.2 and h.n_reflections > 0][:max_candidates]
    n_fits = 0

    common = dict(wavelength=None, _data=data, _rad=rad, _fixed_bg=fixed_bg,
                  background="chebyshev" if fixed_bg is None else "snip", max_strain=max_strain)
    # the search runs on a decimated copy when the peaks are finely sampled (≥ 8 points/FWHM)
    step = float(np.median(np.diff(data.x)))
    dec = int(max(1, math.floor(fw0 / step / 4.0)))
    qdata = data if dec == 1 else _Data(data.x[::dec], data.y[::dec], data.sigma[::dec], src)
    qcommon = dict(common, _data=qdata,
                   _fixed_bg=None if fixed_bg is None else fixed_bg[::dec])

    prof0 = {"U": 0.0, "V": 0.0, "W": fw0 * fw0, "eta": 0.5}
    quick_profile = _QUICK_PROFILE

    def quick(set_ids: list[str], parent: FitResult | None,
              strain: dict[str, float] | None = None) -> FitResult:
        nonlocal n_fits
        strain = strain or {}
        n_fits += 1
        if parent is not None:
            # keep the parent's cells and zero shift, not its profile: with phases missing the
            # profile of the parent fit is distorted (it absorbs the missing peaks)
            parent = dataclasses.replace(parent, profile=dict(prof0))
        return fit_phases(pattern, [by_id[i] for i in set_ids], start=parent,
                          strains=[strain.get(i, hit_by_id[i].strain) for i in set_ids],
                          fwhm_deg=fw0,
                          refine_lattice="isotropic", refine_profile=quick_profile,
                          max_iter=12, ftol=1e-4, amorphous=False, _min_rel_area=1e-3,
                          **qcommon)

    fits: dict[frozenset, FitResult] = {}
    valid: set[frozenset] = set()
    # level 1: every candidate alone
    for c in cands[:n_first]:
        f = quick([c], None)
        for alt in hit_by_id[c].alternatives:
            f2 = quick([c], None, {c: alt})
            if f2.bic < f.bic:
                f = f2
        fits[frozenset([c])] = f
        if f.phases[0].scale > 0 and not _at_strain_bound(f, max_strain):
            valid.add(frozenset([c]))
    beam = _prune(sorted(valid, key=lambda k: fits[k].bic), fits, beam_width)
    level = 1
    while beam and level < max_phases:
        level += 1
        new_beam = []
        for parent_key in beam:
            parent = fits[parent_key]
            # every library phase may join (a weak scatterer can be missed by the first screen)
            rest = [c for c in ids if c not in parent_key]
            if not rest:
                continue
            # rank additions by a linear-only trial at the parent's profile (cheap)
            rpos = np.clip(_smooth(parent.observed - parent.calculated,
                                   max(0.5, math.sqrt(parent.profile["W"]) / 2.355 /
                                       float(np.median(np.diff(qdata.x))))), 0, None)
            rescreen = _screen_models([models[c] for c in rest], qdata.x, rpos, rad, max_strain,
                                      fw0, qdata.sigma)
            trial = [h.id for h in rescreen if h.score > 0.2][:4]
            for h in rescreen:
                hit_by_id[h.id] = ScreenHit(h.id, hit_by_id[h.id].score, h.strain, h.n_reflections)
            parent_peaks = None
            for c in trial[:4 if parent_key == beam[0] else 2]:
                key = parent_key | {c}
                if key in fits:
                    if key in valid:
                        new_beam.append(key)
                    continue
                order = [p.id for p in parent.phases] + [c]
                f = quick(order, parent)
                fits[key] = f
                ok = (all(p.scale > 0 for p in f.phases) and f.bic < parent.bic - min_delta_bic
                      and _visible(f, c, parent, min_intensity_fraction)
                      and _rwp_gain_ok(f, parent, min_rwp_gain)
                      and not _at_strain_bound(f, max_strain))
                if ok:
                    sup = _positive_support(f.per_phase[c], rpos)
                    ok = sup >= min_support
                if ok and parent.rwp >= 1.2 * parent.rexp:
                    # misfit-dominated parent: the new phase must also explain a residual peak
                    # (in a noise-limited fit the BIC is a reliable judge on its own)
                    if parent_peaks is None:
                        parent_peaks = unexplained_peaks(parent, nsig=4.0, min_relative=0.003)
                    ok = _explains_new_peaks(f, c, parent_peaks)
                if ok:
                    valid.add(key)
                    new_beam.append(key)
        beam = _prune(sorted(set(new_beam), key=lambda k: fits[k].bic), fits, beam_width)

    # backward elimination: a phase of a hypothesis that no longer earns its place once the
    # others are in (e.g. a decoy added early that a later phase explains better) is dropped
    def earns(key: frozenset, pid: str) -> bool:
        sub = key - {pid}
        if sub not in fits:
            order = [p.id for p in fits[key].phases if p.id != pid]
            fits[sub] = quick(order, fits[key])
        fs, fk = fits[sub], fits[key]
        return (fk.bic < fs.bic - min_delta_bic and _rwp_gain_ok(fk, fs, min_rwp_gain)
                and _visible(fk, pid, fs, min_intensity_fraction))

    ranked0 = sorted(valid, key=lambda k: fits[k].bic)
    for key in ranked0[:2]:
        cur = key
        changed = True
        while changed and len(cur) > 1:
            changed = False
            worst = sorted(cur, key=lambda pid: fits[cur].phase(pid).weight_fraction or 0)
            for pid in worst:
                if not earns(cur, pid):
                    sub = cur - {pid}
                    if fits[sub].phases and all(p.scale > 0 for p in fits[sub].phases):
                        valid.discard(cur)
                        valid.add(sub)
                        cur = sub
                        changed = True
                        break
    # final refinement of the best distinct hypotheses (full data, full profile, lattice per axis)
    ranked = sorted(valid, key=lambda k: fits[k].bic)[:n_hypotheses]
    hyps: list[Hypothesis] = []
    for key in ranked:
        q = fits[key]
        order = [p.id for p in q.phases]
        n_fits += 1
        f = fit_phases(pattern, [by_id[i] for i in order], start=q, refine_lattice=refine_lattice,
                       refine_profile="auto", max_iter=25, exact_profile=True, **common)
        if not all(p.scale > 0 for p in f.phases) or _at_strain_bound(f, max_strain):
            continue
        hyps.append(Hypothesis(phases=f.phases, rwp=f.rwp, score=f.bic, fit=f))
    hyps.sort(key=lambda h: h.score)
    # drop supersets that do not beat their subsets after the final refinement
    kept: list[Hypothesis] = []
    for h in hyps:
        s = set(h.ids)
        if any(set(k.ids) < s and h.score > k.score - min_delta_bic for k in kept):
            continue
        kept.append(h)
    hyps = kept
    unexpl: list[dict[str, float]] = []
    amorph = None
    if hyps:
        best = hyps[0]
        for h in hyps:
            h.delta_score = h.score - best.score
            h.near_tie = h is not best and h.delta_score < NEAR_TIE_DELTA
        unexpl = unexplained_peaks(best.fit)
        for h in hyps:
            h.explained_fraction = _explained_fraction(h.fit, unexpl if h is best else
                                                       unexplained_peaks(h.fit))
        amorph = best.fit.amorphous_fraction
        if best.explained_fraction < 0.5:
            # the zero shift of a fit that explains little is meaningless: d from the raw 2θ
            for p_ in unexpl:
                p_["d"] = rad.primary / (2 * math.sin(math.radians(p_["two_theta"]) / 2))
    else:
        # nothing fits: every observed peak is unexplained
        lam = rad.primary
        top = float(pk.height.max())
        for p_, h_ in sorted(zip(pk.pos, pk.height), key=lambda t: -t[1]):
            unexpl.append({"two_theta": float(p_), "d": lam / (2 * math.sin(math.radians(p_) / 2)),
                           "intensity": float(h_), "relative_intensity": float(h_) / top,
                           "significance": float("nan")})
    level_, statement = _confidence(hyps, unexpl)
    if hyps:
        warnings.extend(w for w in hyps[0].fit.warnings if "MODEL" not in w)
    # MODEL phases of the best hypothesis (alternatives say so in their own rows)
    model_ids = sorted({p.id for p in hyps[0].phases if p.model}) if hyps else []
    for mid in model_ids:
        warnings.append(f"{mid} is a structural MODEL (not a refined structure): its presence "
                        "and fraction are indicative only")
    if amorph is not None and amorph > 0.05:
        warnings.append(f"broad intensity not explained by background or phases: amorphous/halo "
                        f"fraction ≈ {amorph:.0%} of the scattered intensity")
    return IdentificationResult(
        wavelength=rad.primary, hypotheses=hyps, unexplained_peaks=unexpl,
        amorphous_fraction_estimate=amorph, confidence=level_, warnings=warnings,
        confidence_statement=statement, radiation=rad, model_phases=model_ids, screen=hits,
        n_fits=n_fits, elapsed_s=time.perf_counter() - t0, source=src, x_deg=data.x,
        observed=data.y)


def _visible(child: FitResult, pid: str, parent: FitResult, min_fraction: float) -> bool:
    """The added phase carries ≥ ``min_fraction`` of the Bragg intensity — or, for a weak
    scatterer (light elements next to heavy ones), ≥ 5 wt% with a clear BIC gain (≥ 25)."""
    p = child.phase(pid)
    if p.bragg_intensity >= min_fraction * child.bragg_intensity:
        return True
    return (p.weight_fraction or 0.0) >= 0.05 and child.bic < parent.bic - 25.0


def _rwp_gain_ok(child: FitResult, parent: FitResult, min_gain: float) -> bool:
    """Rwp must drop by ``min_gain`` (relative) — unless the parent already fits to the noise
    (Rwp < 1.5 Rexp), where the BIC alone is a reliable judge (weak scatterers in clean data)."""
    if parent.rwp < 1.5 * parent.rexp:
        return True
    return child.rwp < (1.0 - min_gain) * parent.rwp


def _at_strain_bound(fit: FitResult, max_strain: float) -> bool:
    """A phase whose refined strain sits on the bound is forced in, not found."""
    return any(abs(e) >= 0.97 * max_strain for p in fit.phases for e in p.strain)


def _explains_new_peaks(fit: FitResult, new_id: str, parent_peaks: list[dict[str, float]]) -> bool:
    """The added phase must put calculated intensity on (at least one) peak that the parent fit
    left unexplained."""
    col = fit.per_phase.get(new_id)
    if col is None or not parent_peaks or col.max() <= 0:
        return False
    x = fit.x_deg
    hit = 0
    for pk in parent_peaks:
        c = float(np.interp(pk["two_theta"], x, col))
        if c >= 0.3 * pk["intensity"]:
            hit += 1
    from scipy.signal import find_peaks
    idx, _ = find_peaks(col, height=0.2 * col.max())
    return hit >= 1 if idx.size else False


def _prune(keys: list[frozenset], fits: dict, width: int) -> list[frozenset]:
    """Beam: the best ``width`` hypotheses, dropping branches far behind the best (Rwp > 1.5×)."""
    if not keys:
        return []
    best = fits[keys[0]].rwp
    return [k for k in keys if fits[k].rwp <= 1.5 * best + 0.02][:width]


def _confidence(hyps: list[Hypothesis], unexpl: list[dict[str, float]]) -> tuple[str, str]:
    if not hyps:
        return "none", ("no library phase explains the pattern: every peak is unexplained "
                        "(the phase is probably missing from the library)")
    b = hyps[0]
    e = b.explained_fraction
    strong = [p for p in unexpl if p.get("relative_intensity", 0) >= 0.05]
    alt = next((h for h in hyps[1:]), None)
    gap = alt.delta_score if alt else float("inf")
    names = " + ".join(f"{p.id} ({(p.weight_fraction or 0):.0%})" for p in b.phases)
    parts = [f"{names} explain {e:.0%} of the Bragg intensity (Rwp {b.rwp:.1%}, "
             f"Rexp {b.fit.rexp:.1%})"]
    if alt is not None:
        parts.append(f"next hypothesis ({' + '.join(alt.ids)}) is worse by ΔBIC = {gap:.0f}")
    if strong:
        parts.append(f"{len(strong)} unexplained peak(s) ≥ 5 % of the strongest, e.g. at "
                     + ", ".join(f"{p['two_theta']:.2f}°" for p in strong[:3]))
    if any(p.model for p in b.phases):
        parts.append("includes a structural MODEL")
    if e >= 0.95 and not strong and gap >= NEAR_TIE_DELTA and not any(p.model for p in b.phases):
        level = "high"
    elif e >= 0.8 and not any(p.get("relative_intensity", 0) >= 0.2 for p in unexpl):
        level = "medium"
    elif e >= 0.5:
        level = "low"
    else:
        level = "none"
        parts.insert(0, "no library phase explains the pattern; the best partial match is")
    if 0 < gap < NEAR_TIE_DELTA and level == "high":
        level = "medium"
    return level, f"{level} confidence: " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------------------------
# report and figure
# ----------------------------------------------------------------------------------------------
def _fmt_pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def render_identification_markdown(result: IdentificationResult) -> str:
    """Markdown report of an identification (hypotheses, phases, unexplained peaks, warnings)."""
    r = result
    rad = r.radiation
    lines = ["# Phase identification", ""]
    if r.source:
        lines.append(f"Pattern: `{r.source}`  ")
    if rad is not None and rad.is_doublet:
        lines.append(f"Radiation: Kα1/Kα2 doublet λ1 = {rad.wavelengths[0]:.5f} Å, "
                     f"λ2 = {rad.wavelengths[1]:.5f} Å, I2/I1 = {rad.weights[1]:.3f}  ")
    else:
        lines.append(f"Radiation: single wavelength λ = {r.wavelength:.6f} Å  ")
    lines += ["", f"**Confidence: {r.confidence}.** {r.confidence_statement}", ""]
    if r.model_phases:
        lines += ["> **MODEL:** " + ", ".join(r.model_phases)
                  + (" is a structural model" if len(r.model_phases) == 1 else " are structural models")
                  + ", not refined; presence and fractions are indicative only.", ""]
    if not r.hypotheses:
        lines += ["No hypothesis: no library phase explains the pattern.", ""]
    else:
        lines += ["## Hypotheses (best first; score = BIC, lower is better)", "",
                  "| # | phases | Rwp % | score | Δscore | explained % | note |",
                  "|---|---|---|---|---|---|---|"]
        for i, h in enumerate(r.hypotheses, 1):
            note = "near tie" if h.near_tie else ""
            if any(p.model for p in h.phases):
                note = (note + "; " if note else "") + "MODEL phase"
            lines.append(f"| {i} | {' + '.join(h.ids)} | {100 * h.rwp:.2f} | {h.score:.1f} | "
                         f"{h.delta_score:.1f} | {_fmt_pct(h.explained_fraction)} | {note} |")
        b = r.hypotheses[0]
        lines += ["", "## Best hypothesis: phases", "",
                  "| phase | wt % | ± | scale | a, b, c (Å) | α, β, γ (°) | strain a/b/c % | FWHM ° | model |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in b.phases:
            abc = ", ".join(_fmt_su(v, s) for v, s in zip(p.cell[:3], p.cell_su[:3]))
            ang = ", ".join(_fmt_su(v, s) for v, s in zip(p.cell[3:], p.cell_su[3:]))
            st = "/".join(f"{100 * e:+.2f}" for e in p.strain)
            lines.append(f"| {p.id} | {_fmt_pct(p.weight_fraction)} | {_fmt_pct(p.weight_fraction_su)} | "
                         f"{p.scale:.4g} | {abc} | {ang} | {st} | {p.fwhm_deg:.3f} | "
                         f"{'MODEL' if p.model else ''} |")
        f = b.fit
        lines += ["", f"Zero shift {f.zero_shift_deg:+.4f}° · profile U = {f.profile['U']:.4g}, "
                  f"V = {f.profile['V']:.4g}, W = {f.profile['W']:.4g} deg², η = {f.profile['eta']:.3f} · "
                  f"Rwp {100 * f.rwp:.2f} % · Rexp {100 * f.rexp:.2f} % · χ² {f.chi2:.2f} · "
                  f"{f.n_points} points, {f.n_params} parameters", ""]
    lines += ["## Unexplained peaks", ""]
    if r.unexplained_peaks:
        lines += ["| 2θ (°) | d (Å) | intensity (counts) | relative |", "|---|---|---|---|"]
        for p in r.unexplained_peaks[:30]:
            lines.append(f"| {p['two_theta']:.3f} | {p['d']:.4f} | {p['intensity']:.0f} | "
                         f"{_fmt_pct(p.get('relative_intensity'))} % |")
    else:
        lines.append("None above the noise.")
    am = r.amorphous_fraction_estimate
    lines += ["", f"Amorphous/halo estimate: {_fmt_pct(am)} % of the scattered intensity "
              "(broad intensity above a smooth background).", ""]
    if r.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in r.warnings] + [""]
    return "\n".join(lines)


def _fmt_su(v: float, s: float | None) -> str:
    if s is None or not math.isfinite(s) or s <= 0:
        return f"{v:.5g}"
    try:
        from xtal.structures import format_su
        return format_su(v, s)
    except Exception:  # pragma: no cover
        return f"{v:.5f}({s:.1g})"


def plot_identification(result: IdentificationResult, pattern: Any, path: Any, *,
                        hypothesis: int = 0, overwrite: bool = True) -> Any:
    """Figure of a hypothesis: observed, calculated, background, difference, per-phase tick rows
    and the unexplained peaks; written atomically to ``path`` (PNG/SVG/PDF by extension)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from pathlib import Path

    from xtal.util import atomic_path, check_writable

    src = getattr(pattern, "source", None) or result.source
    target = check_writable(path, overwrite=overwrite, protected=(src,) if src else ())
    fig = plt.figure(figsize=(11, 7.5), dpi=110)
    plt.rcParams.update({"font.size": 11})
    synthetic = bool(getattr(pattern, "meta", None) and pattern.meta.get("synthetic"))
    if synthetic:
        fig.suptitle("SYNTHETIC pattern (xtal.synth, stated recipe) — not a measurement",
                     color="#b00000", fontweight="bold", fontsize=12)
    if not result.hypotheses:
        ax = fig.add_subplot(111)
        ax.plot(result.x_deg, result.observed, color="k", lw=0.8, label="observed")
        for k, p in enumerate(result.unexplained_peaks):
            ax.axvline(p["two_theta"], color="crimson", ls=":", lw=0.8,
                       label="unexplained peak" if k == 0 else None)
        ax.set_xlabel("2θ (°)")
        ax.set_ylabel("intensity (counts)")
        ax.set_title("No library phase explains the pattern (dotted: unexplained peaks)")
        ax.legend()
    else:
        h = result.hypotheses[min(hypothesis, len(result.hypotheses) - 1)]
        f = h.fit
        n_ph = len(f.phases)
        gs = fig.add_gridspec(3, 1, height_ratios=[3.2, 0.35 * n_ph + 0.3, 1.0], hspace=0.05)
        ax = fig.add_subplot(gs[0])
        axt = fig.add_subplot(gs[1], sharex=ax)
        axd = fig.add_subplot(gs[2], sharex=ax)
        x = f.x_deg
        ax.plot(x, f.observed, ".", color="k", ms=2, label="observed")
        ax.plot(x, f.calculated, color="tab:red", lw=0.9, label="calculated", zorder=4)
        ax.plot(x, f.background, color="tab:green", lw=0.9, label="background")
        colors = ["tab:purple", "tab:orange", "tab:cyan", "tab:brown", "tab:pink", "tab:olive"]
        for i, p in enumerate(f.phases):
            col = colors[i % len(colors)]
            ax.plot(x, f.background + f.per_phase[p.id], lw=0.6, color=col, alpha=0.7,
                    label=f"{p.id}{' (MODEL)' if p.model else ''}: {_fmt_pct(p.weight_fraction)} wt%")
            # ticks at the refined Kα1 positions
            tt = _tick_positions(p, f)
            axt.vlines(tt, n_ph - i - 0.4, n_ph - i + 0.4, color=col, lw=0.8)
        up = result.unexplained_peaks if hypothesis == 0 else unexplained_peaks(f)
        if up:
            yy = np.interp([p["two_theta"] for p in up], x, f.observed)
            ax.plot([p["two_theta"] for p in up], yy * 1.04 + 0.02 * np.max(f.observed), "v",
                    color="crimson", ms=7, label="unexplained peak")
        axt.set_yticks([n_ph - i for i in range(n_ph)])
        axt.set_yticklabels([p.id for p in f.phases], fontsize=9)
        axt.set_ylim(0.4, n_ph + 0.6)
        axd.plot(x, f.observed - f.calculated, color="tab:blue", lw=0.7)
        axd.axhline(0, color="grey", lw=0.5)
        axd.set_ylabel("obs − calc (counts)")
        axd.set_xlabel("2θ (°)")
        ax.set_ylabel("intensity (counts)")
        lam = result.radiation
        ttl = (f"{' + '.join(h.ids)} — Rwp {100 * h.rwp:.2f} %, confidence {result.confidence}"
               f", λ = {result.wavelength:.5f} Å" + (" (Kα1/Kα2)" if lam and lam.is_doublet else ""))
        ax.set_title(ttl, fontsize=11)
        ax.legend(fontsize=9, loc="upper right")
        plt.setp(ax.get_xticklabels(), visible=False)
        plt.setp(axt.get_xticklabels(), visible=False)
        ax.set_xlim(x[0], x[-1])
    ext = Path(str(target)).suffix.lstrip(".").lower() or "png"
    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight")
    finally:
        plt.close(fig)
    return target


def _tick_positions(p: PhaseFit, f: FitResult) -> np.ndarray:
    """Kα1 2θ of the phase's reflections in the fitted range (refined cell, zero shift)."""
    key = next((k for k in _REFL_CACHE if k[0] == p.id), None)
    if key is None or f.radiation is None:
        return np.zeros(0)
    _, hkl, fm = _REFL_CACHE[key]
    gstar = reciprocal_metric(p.cell)
    d = 1.0 / np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", hkl, gstar, hkl), 1e-12))
    s = f.radiation.primary / (2 * d)
    tt = 2 * np.degrees(np.arcsin(s[s < 1])) + f.zero_shift_deg
    return tt[(tt >= f.x_deg[0]) & (tt <= f.x_deg[-1])]
