"""The whole-pattern fit of a fixed phase set: `WholePatternFit` and the `fit_phases` shortcut.

Intensity convention (shared with ``xtal.synth``): a phase contributes ``S · Σ mult·|F|²·LP ·
profile`` with unit-area pseudo-Voigt profiles in degrees 2θ, |F|² per cell. Scales (≥ 0) and a
Chebyshev background are linear and solved exactly; zero shift, Caglioti U, V, W, η and the lattice
(by crystal system) are refined by ``engine.levenberg_marquardt``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from xtal.beam import lorentz_polarization, two_theta_from_d
from xtal.errors import IdentificationError
from xtal.identify.blas import one_blas_thread
from xtal.identify.engine import gram_of_active, levenberg_marquardt
from xtal.identify.model import PhaseModel
from xtal.identify.prepare import (PreparedData, default_n_background, estimate_background,
                                   initial_width, prepare_pattern, radiation_from)
from xtal.identify.result import FitResult, PhaseFit
from xtal.numeric import modpoly, nnls   # numpy versions: scipy.optimize / pybaselines cost 1.5 s to import
from xtal.profiles import (MIN_FWHM_DEG, WINDOW_FWHM, caglioti_fwhm, compiled_modpoly,
                           compiled_phase_profile, pseudo_voigt, window_shape)
from xtal.simulate import cell_volume

#: Relative lattice strain a phase may take in the screen and the fit (thermal expansion, solvent).
DEFAULT_MAX_STRAIN = 0.05

_EMPTY = np.zeros(0)
_GLOBAL = ("zero", "disp", "U", "V", "W", "eta")
#: share of each peak's area in its axial-divergence satellite (see `WholePatternFit`)
ASYMMETRY_FRACTION = 0.3
#: bounds of the March–Dollase r refined per phase (r < 1 platelets, r > 1 needles)
PO_BOUNDS = (0.3, 3.0)
_PROFILE_SETS = {"auto": ["zero", "U", "V", "W", "eta"], "width": ["zero", "W", "eta"], "none": [],
                 "displacement": ["zero", "disp", "U", "V", "W", "eta"]}


class EmptyLibraryError(IdentificationError):
    """No phase to identify against (empty library or empty selection)."""


def fit_fwhm(tth_deg: np.ndarray, u: float, v: float, w: float) -> np.ndarray:
    """Caglioti FWHM (°), floored at ``MIN_FWHM_DEG`` while the fit moves through U, V, W."""
    return caglioti_fwhm(tth_deg, u, v, w, min_fwhm_deg=MIN_FWHM_DEG)


def dmin_for(data: PreparedData, rad: Any, max_strain: float) -> float:
    """Smallest d (Å) a fit of ``data`` needs, with room for the lattice strain."""
    dmin = min(rad.wavelengths) / (2.0 * math.sin(math.radians(min(data.x[-1] + 1.0, 179.0) / 2.0)))
    return dmin * (1.0 - max_strain - 0.01)


class WholePatternFit:
    """A fixed phase set against one prepared pattern (variable projection).

    Holds the data, the phase models, the radiation and the background: what stays fixed while
    the fit runs. `run` refines from a start (a neighbouring frame's result, starting strains, a
    width) and returns a `FitResult`.

    Parameters: ``data`` (`PreparedData`), ``phases`` (``xtal.structures.Phase``), ``radiation``;
    ``lattice`` "cell" (per axis by crystal system), "isotropic" or "fixed"; ``background``
    "chebyshev" (refined, ``n_background`` terms) or "snip"/"arpls" (pybaselines estimate, fixed,
    or ``fixed_background`` given); ``max_strain`` (relative) and ``zero_max_deg`` bounds;
    ``exact_profile`` (exact Lorentzian tails on a uniform grid, ~3× slower); ``min_rel_area``
    (search fits skip reflections weaker than this fraction of the phase's strongest);
    ``fwhm_hint_deg`` (width for the background estimate); ``preferred_orientation``: phase id →
    hkl axis along which a March–Dollase r is refined for that phase; ``size_broadening``: phase
    id → extra FWHM (deg 2θ at θ → 0, ∝ 1/cos θ) of that phase, added in quadrature to the common
    profile (held, not refined); ``asymmetry_deg``: axial-divergence asymmetry A (deg, held):
    `ASYMMETRY_FRACTION` of each peak's area sits at 2θ − A·cot 2θ (low-angle side below 90°,
    high-angle side above; Finger–Cox–Jephcoat's angular dependence of the centroid shift, as a
    two-component approximation of their convolution), the shift capped at 2 FWHM.
    """

    def __init__(self, data: PreparedData, phases: Sequence[Any], radiation: Any, *,
                 lattice: bool | str = "cell", background: str = "chebyshev",
                 n_background: int | None = None, fixed_background: np.ndarray | None = None,
                 max_strain: float = DEFAULT_MAX_STRAIN, zero_max_deg: float = 0.5,
                 exact_profile: bool = False, min_rel_area: float = 0.0,
                 fwhm_hint_deg: float | None = None,
                 preferred_orientation: dict[str, Sequence[int]] | None = None,
                 size_broadening: dict[str, float] | None = None, asymmetry_deg: float = 0.0):
        phases = list(phases)
        if not phases:
            raise EmptyLibraryError("no phase to fit")
        mode = {True: "cell", False: "fixed"}.get(lattice, lattice)  # type: ignore[arg-type]
        if mode not in ("cell", "isotropic", "fixed"):
            raise IdentificationError(f"refine_lattice must be True, False, 'cell' or 'isotropic', "
                                      f"not {lattice!r}")
        ids = [str(p.id) for p in phases]
        if len(set(ids)) != len(ids):
            raise IdentificationError(f"duplicate phase ids in the fit: {ids}")
        if fixed_background is None and background in ("snip", "arpls"):
            fixed_background = estimate_background(data.x, data.y, background,
                                                   fwhm_hint_deg or initial_width(data))
        elif fixed_background is None and background != "chebyshev":
            raise IdentificationError(f"unknown background {background!r}")
        self.lattice_mode = mode
        self.asymmetry_deg = float(asymmetry_deg)
        self.max_strain = float(max_strain)
        self.zero_max_deg = float(zero_max_deg)
        dmin = dmin_for(data, radiation, max_strain)
        self.models = [PhaseModel(p, dmin, mode) for p in phases]
        for m in self.models:
            m.set_preferred_orientation((preferred_orientation or {}).get(m.id))
            m.size_deg = float((size_broadening or {}).get(m.id, 0.0))
        self._init_arrays(data, radiation, fixed_background,
                          1 if fixed_background is not None else (n_background or default_n_background(data.x)),
                          exact_profile, min_rel_area)

    def _init_arrays(self, data, rad, fixed_background, n_background, exact_profile, min_rel_area):
        self.d = data
        self.rad = rad
        self._wavelengths = np.asarray(rad.wavelengths, dtype=float)   # Å, one per line
        self._line_weights = np.asarray(rad.weights, dtype=float)
        x = data.x
        self.x = x
        self._x_c = np.ascontiguousarray(x, dtype=float)
        self.sw = 1.0 / data.sigma
        self.w = self.sw ** 2
        self.yfit = data.y - (fixed_background if fixed_background is not None else 0.0)
        self.fixed_bg = fixed_background
        nb = max(1, int(n_background))
        self.B = chebyshev_basis(x, nb)                         # n × nb
        self.Bw_T = (self.B * self.w[:, None]).T                # nb × n (weighted, for normal eqs)
        self.Gbb_raw = self.Bw_T @ self.B                        # BᵀWB
        self.Gbb = self.Gbb_raw + np.eye(nb) * 1e-12 * np.trace(self.Gbb_raw)
        self.Gbb_inv = np.linalg.inv(self.Gbb)
        self.By = self.Bw_T @ self.yfit
        self.xmin, self.xmax = float(x[0]), float(x[-1])
        self.tails = "exact" if exact_profile else "window"
        self.nfev = 0
        self.min_rel_area = float(min_rel_area)
        self._strong_cache: dict[int, np.ndarray] = {}
        self._strong_weight_cache: dict[int, np.ndarray] = {}
        # the compiled kernel's parameters that stay fixed for this fitter (PP_ASYM onwards)
        self._kernel_fixed = (self.asymmetry_deg, ASYMMETRY_FRACTION, 1.0 + WINDOW_FWHM,
                              *window_shape(), *rad.polarization.coefficients())
        self.free_global: list[str] = []
        self.lat_slices: list[slice] = []
        self.n_theta = 0

    # --- the refinement --------------------------------------------------------------------
    @one_blas_thread
    def run(self, *, start: FitResult | None = None, strains: Sequence[Any] | None = None,
            fwhm_deg: float | None = None, eta: float | None = None, zero_shift_deg: float = 0.0,
            refine_profile: str | Sequence[str] = "auto", max_iter: int | None = None,
            ftol: float = 1e-5, amorphous: bool = True, reflection_lists: bool = True) -> FitResult:
        """Refine from a start and return the `FitResult`.

        ``start``: a neighbouring result whose cells, zero shift and profile start this fit;
        ``strains``: starting relative strain per phase (a number or the phase's lattice
        parameters; ignored for phases that ``start`` gives); ``fwhm_deg``/``eta``: starting
        width (°) and mixing; ``refine_profile``: "auto" (zero, U, V, W, η), "width" (zero, W,
        η), "none", or a list of those names; ``amorphous``: estimate the halo fraction;
        ``reflection_lists``: fill each phase's reflection positions and rows (for reports and
        tick marks); False leaves them empty where nobody reads them (a series' frames).
        """
        t0 = time.perf_counter()
        g0, q0 = self._start(start, strains, fwhm_deg, eta, zero_shift_deg)
        if isinstance(refine_profile, str):
            if refine_profile not in _PROFILE_SETS:
                raise IdentificationError(f"unknown refine_profile {refine_profile!r}")
            free = _PROFILE_SETS[refine_profile]
        else:
            free = list(refine_profile)
        if max_iter is None:
            max_iter = 30 if start is not None else 60
        st, _theta, H, success = levenberg_marquardt(
            self, g0, q0, free_global=free, refine_lattice=self.lattice_mode != "fixed",
            max_strain=self.max_strain, zero_max=self.zero_max_deg, max_iter=max_iter, ftol=ftol)
        res = _make_result(self, st, H, success, amorphous, reflection_lists)
        res.elapsed_s = time.perf_counter() - t0
        return res

    def _start(self, start, strains, fwhm_deg, eta, zero_shift_deg):
        """Starting global parameters g0 and lattice parameters q0 (one array per phase)."""
        g0 = {"zero": float(zero_shift_deg), "disp": 0.0, "U": 0.0, "V": 0.0, "W": 0.01, "eta": 0.5}
        g0.update({f"po{i}": 1.0 for i, m in enumerate(self.models) if m.po_axis is not None})
        q0 = [np.zeros(m.n_params) for m in self.models]
        started = set()
        if start is not None:
            g0["zero"] = float(start.zero_shift_deg)
            g0["disp"] = float(getattr(start, "displacement_deg", 0.0) or 0.0)
            g0.update({k: float(start.profile[k]) for k in ("U", "V", "W", "eta") if k in start.profile})
            prev = {p.id: p for p in start.phases}
            for i, m in enumerate(self.models):
                if m.id in prev and prev[m.id].cell:
                    q0[i] = m.q_from_cell(prev[m.id].cell)
                po = getattr(prev[m.id], "preferred_orientation", None) if m.id in prev else None
                if m.po_axis is not None and po and tuple(po.get("axis", ())) == m.po_axis:
                    g0[f"po{i}"] = float(po["r"])
            started = set(prev)
        else:
            fw = fwhm_deg if fwhm_deg else initial_width(self.d)
            g0["W"] = fw * fw
            if eta is not None:
                g0["eta"] = float(eta)
        for i, (m, s0) in enumerate(zip(self.models, strains or [])):
            if s0 is None or m.id in started:
                continue
            arr = np.atleast_1d(np.asarray(s0, dtype=float))
            if arr.size == m.n_params:
                q0[i] = arr.copy()
            elif m.n_params:
                iso = float(np.mean(arr))
                q0[i] = m.q_from_cell([v * (1 + iso) for v in m.cell0[:3]] + list(m.cell0[3:]))
        return g0, q0

    # --- model pieces ---------------------------------------------------------------------
    def peaks(self, m: PhaseModel, q: np.ndarray, g: dict[str, float], deriv: bool,
              po_r: float | None = None):
        """Peak centres, areas, FWHM of one phase over all lines; with ``deriv`` also the centre
        derivatives (lattice parameters, then displacement), FWHM derivatives (U, V, W) and
        ∂ln(area)/∂r of the preferred orientation."""
        if deriv and len(q):
            d, dd = m.d_spacings_and_derivatives(q)
        else:
            d, dd = m.d_spacings(m.cell(q)), np.zeros((m.hkl.shape[0], 0))
        textured = m.po_axis is not None
        po, dpo = m.po_factor(po_r if po_r is not None else 1.0) if textured else (None, None)
        # every wavelength of the radiation at once: rows of (n_wavelengths × n_reflections),
        # the selected lines taken in row order (all lines of λ1, then of λ2, …)
        lams = self._wavelengths
        if lams.size == 1:                # one line (synchrotron, Kα1 only): no row bookkeeping
            s = lams[0] / (2.0 * d)
            idx = np.flatnonzero(s < 0.99999)
            row = np.zeros(idx.size, dtype=np.intp)
            tth = 2.0 * np.degrees(np.arcsin(s[idx]))
        else:
            s = lams[:, None] / (2.0 * d[None, :])
            row, idx = np.nonzero(s < 0.99999)
            tth = 2.0 * np.degrees(np.arcsin(s[row, idx]))
        f = fit_fwhm(tth, g["U"], g["V"], g["W"])
        cos_t = np.cos(np.radians(tth) / 2.0)
        if m.size_deg > 0:                # the phase's own size broadening, in quadrature
            f = np.sqrt(f * f + (m.size_deg / cos_t) ** 2)
        c = tth + g["zero"] + g.get("disp", 0.0) * cos_t
        margin = 1.0 + WINDOW_FWHM
        sel = (c > self.xmin - margin * f) & (c < self.xmax + margin * f)
        if self.min_rel_area > 0:
            sel &= self._strong(m)[idx]
        if not np.any(sel):
            return None
        row, idx, tth, c, f, cos_t = row[sel], idx[sel], tth[sel], c[sel], f[sel], cos_t[sel]
        area = m.fmult[idx] * lorentz_polarization(tth, self.rad.polarization) \
            * self._line_weights[row]
        if textured:
            area *= po[idx]
        out = [c, area, f]
        if deriv:
            # d(2θ)/dd = −2 tanθ / d (rad) → degrees; displacement moves centres by cos θ
            tt = np.tan(np.radians(tth) / 2.0)
            dc = np.concatenate([-np.degrees(2.0 * tt / d[idx])[:, None] * dd[idx],
                                 cos_t[:, None]], axis=1)
            # FWHM derivatives w.r.t. U, V, W
            df = np.stack([tt * tt, tt, np.ones_like(tt)], axis=1) / (2.0 * f[:, None])
            out += [dc, df, dpo[idx] / po[idx] if textured else np.zeros(idx.size)]
        if self.asymmetry_deg > 0:
            # the axial-divergence satellite: a share of the area at 2θ − A·cot 2θ, after the
            # main lines of the same wavelength
            shift = np.clip(-self.asymmetry_deg / np.tan(np.radians(tth)), -2.0 * f, 2.0 * f)
            sat = [c + shift, area * ASYMMETRY_FRACTION, f] + out[3:]
            out[1] = area * (1.0 - ASYMMETRY_FRACTION)
            cuts = np.searchsorted(row, np.arange(1, lams.size))
            out = [np.concatenate([piece for a, b in zip(np.split(main, cuts), np.split(extra, cuts))
                                   for piece in (a, b)])
                   for main, extra in zip(out, sat)]
        return out

    def _strong(self, m: PhaseModel) -> np.ndarray:
        """Reflections kept in a search fit: mult·|F|²·LP ≥ ``min_rel_area`` × the strongest one in
        range (fixed for the fitter, so that the model stays continuous)."""
        key = id(m)
        mask = self._strong_cache.get(key)
        if mask is None:
            d = m.d_spacings(m.cell0)
            s = self.rad.primary / (2.0 * d)
            tth = 2.0 * np.degrees(np.arcsin(np.clip(s, 0, 0.99999)))
            inten = m.fmult * lorentz_polarization(tth, self.rad.polarization)
            inr = (s < 0.99999) & (tth > self.xmin) & (tth < self.xmax)
            top = float(inten[inr].max()) if np.any(inr) else float(inten.max(initial=0.0))
            mask = inten >= self.min_rel_area * top
            self._strong_cache[key] = mask
        return mask

    def phase_eval(self, m: PhaseModel, q: np.ndarray, g: dict[str, float], deriv: bool = False,
                   po_r: float | None = None):
        """Profile of one phase at unit scale (``values``) and, with ``deriv``, its derivatives as
        one block ``rows`` (`derivative_rows` gives the row of each parameter: η, common shift,
        the lattice parameters, displacement, U, V, W, then r if the phase is textured)."""
        kernel = compiled_phase_profile() if self.tails == "window" else None
        if kernel is not None:
            out = self._phase_eval_compiled(kernel, m, q, g, deriv, po_r)
            if out is not None:
                return out
        pk = self.peaks(m, q, g, deriv, po_r)
        textured = m.po_axis is not None
        if pk is None:
            out: dict[str, Any] = {"values": np.zeros(self.x.size)}
            if deriv:
                out["rows"] = np.zeros((6 + len(q) + textured, self.x.size))
            return out
        pv = pseudo_voigt(self.x, pk[0], pk[1], pk[2], g["eta"], derivatives=deriv,
                          dcentre=pk[3] if deriv else None, dfwhm=pk[4] if deriv else None,
                          tails=self.tails)
        out = {"values": pv["values"]}
        if deriv:
            dpo = ([pseudo_voigt(self.x, pk[0], pk[1] * pk[5], pk[2], g["eta"])["values"]]
                   if textured else [])
            out["rows"] = np.vstack([pv["eta"], pv["centre"], *pv["dcentre"], *pv["dfwhm"], *dpo])
        return out

    def _phase_eval_compiled(self, kernel, m: PhaseModel, q: np.ndarray, g: dict[str, float],
                             deriv: bool, po_r: float | None) -> dict[str, Any] | None:
        """`phase_eval` in one compiled call (`xtal._window.phase_profile`: `peaks` and the
        windowed `pseudo_voigt` with the same formulas, equal to rounding); None if the strained
        cell is not a cell (the NumPy form then raises the error that says why)."""
        n = self.x.size
        nq = len(q) if deriv else 0
        textured = m.po_axis is not None
        po, dpo = m.po_factor(po_r if po_r is not None else 1.0) if textured else (_EMPTY, _EMPTY)
        strong = self._strong_weights(m) if self.min_rel_area > 0 else _EMPTY
        # in the order of the kernel's PP_* indices (xtal/_window.c)
        params = np.array([g["U"], g["V"], g["W"], MIN_FWHM_DEG, m.size_deg, g["zero"],
                           g.get("disp", 0.0), g["eta"], *self._kernel_fixed])
        values = np.zeros(n)
        rows = np.zeros((6 + nq + textured, n) if deriv else (0, n))
        dcell = np.ascontiguousarray(m.dcell_dq()) if nq else _EMPTY
        if kernel(self._x_c, m.hh, m.fmult, strong, po, dpo, np.array(m.cell(q), dtype=float),
                  dcell, self._wavelengths, self._line_weights, params,
                  values, rows, nq, deriv) < 0:
            return None
        return {"values": values, "rows": rows} if deriv else {"values": values}

    def _strong_weights(self, m: PhaseModel) -> np.ndarray:
        """`_strong` as float64 (1 kept, 0 skipped), for the compiled path."""
        w = self._strong_weight_cache.get(id(m))
        if w is None:
            w = self._strong_weight_cache[id(m)] = self._strong(m).astype(float)
        return w

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
        """Layout of the parameter vector: global names, per-phase lattice, per-phase PO r."""
        self.free_global = [g for g in _GLOBAL if g in free_global]
        self.lat_slices = []
        i = len(self.free_global)
        for m in self.models:
            n = m.n_params if refine_lattice else 0
            self.lat_slices.append(slice(i, i + n))
            i += n
        self.po_index = {}
        for k, m in enumerate(self.models):
            if m.po_axis is not None:
                self.po_index[k] = i
                i += 1
        self.n_theta = i
        # where each phase's derivative rows go in ∂calc/∂θ: (row of θ, row of the block) pairs
        self.derivative_map = []
        for k, (m, sl) in enumerate(zip(self.models, self.lat_slices)):
            at = derivative_rows(m.n_params)
            pairs = [(j, at[name]) for j, name in enumerate(self.free_global)]
            pairs += [(sl.start + j, at["lattice"] + j) for j in range(sl.stop - sl.start)]
            if k in self.po_index:
                pairs.append((self.po_index[k], at["po"]))
            self.derivative_map.append(pairs)

    def unpack(self, theta: np.ndarray, g0: dict[str, float], q0: list[np.ndarray]):
        g = dict(g0)
        for j, name in enumerate(self.free_global):
            g[name] = float(theta[j])
        for k, j in self.po_index.items():
            g[f"po{k}"] = float(theta[j])
        qs = []
        for sl, q in zip(self.lat_slices, q0):
            qs.append(np.array(theta[sl], dtype=float) if sl.stop > sl.start else np.asarray(q))
        return g, qs

    def pack(self, g: dict[str, float], qs: list[np.ndarray]) -> np.ndarray:
        th = [g[n] for n in self.free_global]
        for sl, q in zip(self.lat_slices, qs):
            if sl.stop > sl.start:
                th.extend(list(q))
        th.extend(g.get(f"po{k}", 1.0) for k in self.po_index)
        return np.array(th, dtype=float)

    def bounds(self, max_strain: float, zero_max: float):
        lo, hi = [], []
        lim = {"zero": (-zero_max, zero_max), "disp": (-zero_max, zero_max), "U": (0.0, 2.0),
               "V": (-1.0, 1.0), "W": (1e-8, 4.0), "eta": (0.0, 1.0)}
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
        for _ in self.po_index:
            lo.append(PO_BOUNDS[0])
            hi.append(PO_BOUNDS[1])
        return np.array(lo), np.array(hi)


_BASIS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def chebyshev_basis(x: np.ndarray, n_terms: int) -> np.ndarray:
    """The background basis: Chebyshev polynomials T0…T(n−1) of x mapped onto [−1, 1] (n × terms,
    read-only). The last few grids' bases are kept: every frame of a series has the same grid."""
    key = (x.size, float(x[0]), float(x[-1]), int(n_terms))
    hit = _BASIS.get(key)
    if hit is not None and np.array_equal(hit[0], x):
        return hit[1]
    u = 2.0 * (x - x[0]) / max(x[-1] - x[0], 1e-9) - 1.0
    basis = np.polynomial.chebyshev.chebvander(u, n_terms - 1)
    basis.flags.writeable = False
    if len(_BASIS) >= 8:
        _BASIS.pop(next(iter(_BASIS)))
    _BASIS[key] = (np.array(x, dtype=float), basis)
    return basis


def derivative_rows(n_lattice: int) -> dict[str, int]:
    """Row of each parameter in a phase evaluation's derivative block (`phase_eval`'s ``rows``)
    for a phase with ``n_lattice`` lattice parameters (``"lattice"``: the first of them)."""
    return {"eta": 0, "zero": 1, "lattice": 2, "disp": 2 + n_lattice, "U": 3 + n_lattice,
            "V": 4 + n_lattice, "W": 5 + n_lattice, "po": 6 + n_lattice}


def fit_phases(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None,
               polarization: Any = None, two_theta_range: tuple[float, float] | None = None,
               start: FitResult | None = None, refine_lattice: bool | str = True,
               background: str = "chebyshev", n_background: int | None = None,
               refine_profile: str | Sequence[str] = "auto", strains: Sequence[Any] | None = None,
               fwhm_deg: float | None = None, eta: float | None = None, zero_shift_deg: float = 0.0,
               max_strain: float = DEFAULT_MAX_STRAIN, zero_max_deg: float = 0.5,
               max_iter: int | None = None, ftol: float = 1e-5, amorphous: bool = True,
               exact_profile: bool = False) -> FitResult:
    """Whole-pattern fit of a fixed phase set: `prepare_pattern` + `WholePatternFit(...).run(...)`.

    ``pattern``: ``xtal.io.Pattern`` (2θ, or convertible with its λ); ``phases``: the phases to fit;
    ``wavelength``: None (the file's), a number (Å), a tube name or a Radiation; ``polarization``:
    the beam's (None = unpolarised lab beam); ``refine_lattice``: True/"cell" (per axis by crystal
    system), "isotropic" or False. The other arguments are those of `WholePatternFit` and its
    `run` method.
    """
    rad = radiation_from(pattern, wavelength, polarization)
    data = prepare_pattern(pattern, two_theta_range, rad)
    hint = fwhm_deg or (math.sqrt(start.profile.get("W", 0.01)) if start else None)
    fit = WholePatternFit(data, phases, rad, lattice=refine_lattice, background=background,
                          n_background=n_background, max_strain=max_strain,
                          zero_max_deg=zero_max_deg, exact_profile=exact_profile,
                          fwhm_hint_deg=hint)
    return fit.run(start=start, strains=strains, fwhm_deg=fwhm_deg, eta=eta,
                   zero_shift_deg=zero_shift_deg, refine_profile=refine_profile, max_iter=max_iter,
                   ftol=ftol, amorphous=amorphous)


def _make_result(fitter: "WholePatternFit", st: dict, H: np.ndarray | None, success: bool,
                 amorphous: bool = True, reflection_lists: bool = True) -> FitResult:
    """Fit statistics, weight fractions (Hill–Howard) and s.u. from the final state of a fit."""
    rad, data, fixed_bg = fitter.rad, fitter.d, fitter.fixed_bg
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
    n_nl = (len(fitter.free_global) + sum((sl.stop - sl.start) for i, sl in enumerate(fitter.lat_slices)
                                          if i in active)
            + sum(1 for i in fitter.po_index if i in active))
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
        # AᵀWA of the active columns and the background from the Gram blocks of the last solve
        AtWA = gram_of_active(st["gram"], active, fitter.Gbb_raw)
        try:
            cov_s = np.linalg.pinv(AtWA)[: len(active), : len(active)] * chi2
        except np.linalg.LinAlgError:
            cov_s = None

    # weight fractions (Hill–Howard)
    mv = np.array([m.cell_mass * cell_volume(m.cell(qs[i])) for i, m in enumerate(fitter.models)])
    wf, wf_su = _weight_fractions(s, mv, cov_s, active)

    phase_fits = []
    per_phase = {}
    zero_su = disp_su = None
    prof_su: dict[str, float | None] = {}
    for j, name in enumerate(fitter.free_global):
        su = math.sqrt(cov_nl[j, j]) if cov_nl is not None and cov_nl[j, j] >= 0 else None
        if name == "zero":
            zero_su = su
        elif name == "disp":
            disp_su = su
        else:
            prof_su[name] = su
    total_bragg = 0.0
    for i, m in enumerate(fitter.models):
        cell = m.cell(qs[i])
        sl = fitter.lat_slices[i]
        cell_su, vol_su = _cell_su(m, qs[i], cov_nl[sl, sl] if cov_nl is not None and
                                   sl.stop > sl.start and s[i] > 0 else None)
        col = cols[i] * s[i]
        per_phase[m.id] = col
        inten = float(np.trapezoid(col, x)) if hasattr(np, "trapezoid") else float(np.trapz(col, x))
        total_bragg += inten
        strain = tuple(float(cell[k] / m.cell0[k] - 1.0) for k in range(3))
        s_su = None
        if cov_s is not None and s[i] > 0:
            s_su = math.sqrt(max(cov_s[active.index(i), active.index(i)], 0.0))
        # FWHM at the strongest reflection of the phase
        t_ref = _strongest_tth(m, cell, rad, g)
        fwhm_ref = float(fit_fwhm(np.array([t_ref]), g["U"], g["V"], g["W"])[0])
        if m.size_deg > 0:
            fwhm_ref = math.hypot(fwhm_ref, m.size_deg / math.cos(math.radians(t_ref) / 2.0))
        phase_fits.append(PhaseFit(
            id=m.id, scale=float(s[i]), scale_su=s_su,
            weight_fraction=float(wf[i]) if np.isfinite(wf[i]) else None,
            weight_fraction_su=float(wf_su[i]) if np.isfinite(wf_su[i]) else None,
            cell=tuple(float(c) for c in cell), cell_su=tuple(cell_su),
            volume_angstrom3=cell_volume(cell), volume_su=vol_su, strain=strain,
            fwhm_deg=fwhm_ref, model=m.model, name=str(getattr(m.phase, "name", "") or m.id),
            lattice_mode=m.mode, crystal_system=m.system, library_cell=m.cell0,
            bragg_intensity=inten, profile={k: float(g[k]) for k in ("U", "V", "W", "eta")},
            reflections_two_theta_deg=(_reflection_positions(m, cell, rad, g["zero"], x)
                                       if reflection_lists else np.zeros(0)),
            reflections=_reflection_rows(m, cell, rad, g["zero"], x) if reflection_lists else [],
            preferred_orientation=_po_result(fitter, i, g, cov_nl),
            size_broadening_deg=m.size_deg))
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
        zero_shift_su=zero_su, rexp=rexp, displacement_deg=float(g.get("disp", 0.0)),
        asymmetry_deg=fitter.asymmetry_deg,
        displacement_su=disp_su, noise_model=data.noise_model, profile={k: float(g[k]) for k in ("U", "V", "W", "eta")},
        profile_su=prof_su, background_kind="chebyshev" if fixed_bg is None else "fixed",
        background_coefficients=np.asarray(b), radiation=rad, sigma=data.sigma, success=success,
        nfev=fitter.nfev, warnings=warnings)


def _po_result(fitter: "WholePatternFit", i: int, g: dict, cov_nl: np.ndarray | None) -> dict | None:
    """{"axis": hkl, "r": r, "r_su": s.u.} of a phase whose March–Dollase r was refined."""
    m = fitter.models[i]
    if m.po_axis is None:
        return None
    j = getattr(fitter, "po_index", {}).get(i)
    su = math.sqrt(cov_nl[j, j]) if (j is not None and cov_nl is not None and cov_nl[j, j] > 0) else None
    return {"axis": list(m.po_axis), "r": float(g.get(f"po{i}", 1.0)), "r_su": su}


def _weight_fractions(s: np.ndarray, mv: np.ndarray, cov_s: np.ndarray | None,
                      active: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Hill–Howard W_i = S_i·(ZMV)_i / Σ S_j·(ZMV)_j and their s.u. from the scale covariance."""
    wsum = float(np.sum(s * mv))
    wf = s * mv / wsum if wsum > 0 else np.full(len(s), np.nan)
    wf_su = np.full(len(s), np.nan)
    if cov_s is None or wsum <= 0:
        return wf, wf_su
    for i in active:
        grad = np.array([((1.0 if i == j else 0.0) * mv[i] * wsum - s[i] * mv[i] * mv[j]) / wsum ** 2
                         for j in active])
        wf_su[i] = math.sqrt(max(float(grad @ cov_s @ grad), 0.0))
    return wf, wf_su


def _cell_su(m: PhaseModel, q: np.ndarray, cov_q: np.ndarray | None
             ) -> tuple[list[float | None], float | None]:
    """s.u. of (a, b, c, α, β, γ) and of the volume from the lattice-parameter covariance
    (parameters fixed by symmetry get the s.u. of the parameter they equal), propagated with the
    exact derivatives: ∂cell/∂q (`PhaseModel.dcell_dq`) and ∂V/∂cell (`_volume_gradient`)."""
    if cov_q is None:
        return [None] * 6, None
    dc = m.dcell_dq()
    dv = _volume_gradient(m.cell(q)) @ dc
    var = np.einsum("ik,kl,il->i", dc, cov_q, dc)
    return [math.sqrt(v) if v > 0 else None for v in var], math.sqrt(max(float(dv @ cov_q @ dv), 0.0))


def _volume_gradient(cell) -> np.ndarray:
    """∂V/∂(a, b, c, α, β, γ) (Å², Å³/°) of V = abc·√(1 − cos²α − cos²β − cos²γ + 2 cosα cosβ cosγ)."""
    a, b, c = (float(v) for v in cell[:3])
    ang = [math.radians(float(v)) for v in cell[3:]]
    cs, sn = [math.cos(t) for t in ang], [math.sin(t) for t in ang]
    root = math.sqrt(max(1 - cs[0] ** 2 - cs[1] ** 2 - cs[2] ** 2 + 2 * cs[0] * cs[1] * cs[2], 1e-300))
    vol = a * b * c * root
    # ∂root/∂angle_k = sin_k (cos_k − cos_i cos_j) / root, angles in degrees
    dang = [a * b * c * sn[k] * (cs[k] - cs[(k + 1) % 3] * cs[(k + 2) % 3]) / root * math.pi / 180.0
            for k in range(3)]
    return np.array([vol / a, vol / b, vol / c, *dang])


def _reflection_positions(m: PhaseModel, cell, rad: Any, zero_deg: float, x: np.ndarray) -> np.ndarray:
    """Primary-line 2θ (°) of the phase's reflections inside the fitted range (for tick marks)."""
    tt = two_theta_from_d(m.d_spacings(cell), rad.primary) + zero_deg
    tt = tt[np.isfinite(tt)]
    return np.sort(tt[(tt >= x[0]) & (tt <= x[-1])])


def _reflection_rows(m: PhaseModel, cell, rad: Any, zero_deg: float, x: np.ndarray) -> list[dict]:
    """The reflections inside the fitted range with hkl, d and relative intensity (for hover labels)."""
    d = m.d_spacings(cell)
    with np.errstate(invalid="ignore"):
        tt = two_theta_from_d(d, rad.primary) + zero_deg
    ok = np.isfinite(tt) & (tt >= x[0]) & (tt <= x[-1])
    if not ok.any():
        return []
    inten = m.fmult[ok] * lorentz_polarization(tt[ok] - zero_deg, rad.polarization)
    rel = 100 * inten / max(float(np.max(inten)), 1e-300)
    # by 2θ (stable, as sorted() was); whole arrays converted to Python numbers at once
    order = np.argsort(tt[ok], kind="stable")
    hkl = np.asarray(m.hkl[ok][order]).astype(np.int64).tolist()
    return [{"hkl": tuple(h), "d_angstrom": dd, "two_theta_deg": t, "intensity_pct": r}
            for h, dd, t, r in zip(hkl, d[ok][order].tolist(), tt[ok][order].tolist(),
                                   np.asarray(rel)[order].tolist())]


def _strongest_tth(m: PhaseModel, cell, rad: Any, g) -> float:
    d = m.d_spacings(cell)
    s = rad.primary / (2 * d)
    ok = s < 0.999
    if not np.any(ok):
        return 30.0
    tth = 2 * np.degrees(np.arcsin(s[ok]))
    inten = m.fmult[ok] * lorentz_polarization(tth, rad.polarization)
    return float(tth[int(np.argmax(inten))])


def estimate_amorphous_fraction(x: np.ndarray, bg: np.ndarray, refined: bool, bragg: float,
                                nbg: int) -> float | None:
    """Broad intensity not explained by a smooth background nor by the phases.

    The refined Chebyshev background can follow a halo; its part above a stiff, low-order
    baseline (iterative lower cubic polynomial, pybaselines' ModPoly as `xtal.numeric.modpoly`: what an instrument/air
    background looks like) is the halo. Returned as halo / (halo + Bragg) intensity.
    """
    if bragg <= 0 or not refined:
        return None if bragg <= 0 else 0.0
    k = max(1, x.size // 400)          # the background is smooth: decimate for speed
    xs, bs = x[::k], bg[::k]
    try:
        base = modpoly(xs, bs, poly_order=3, tol=1e-4, max_iter=200, kernel=compiled_modpoly())
    except Exception:  # pragma: no cover
        return None
    halo = np.clip(bg - np.interp(x, xs, base), 0, None)
    area = float(np.trapezoid(halo, x)) if hasattr(np, "trapezoid") else float(np.trapz(halo, x))
    return area / (area + bragg)


# ----------------------------------------------------------------------------------------------
# screen
