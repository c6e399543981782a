"""Peak widths and shapes: Caglioti/TCH widths and the pseudo-Voigt, values and derivatives.

One module for every stage that draws peaks (``simulate``, ``synth``, ``identify``, ``series``):

* `caglioti_fwhm`, `tch_fwhm_eta` — widths (° 2θ) from U, V, W (deg²) and TCH X, Y (deg);
* `pseudo_voigt_profile` — the exact renderer (every Lorentzian tail included, to ~1e-7 of the
  maximum), for simulated patterns and for the final refinement;
* `pseudo_voigt` — the fit's evaluation: values *and* analytic derivatives (with respect to a common
  centre shift, per-parameter centre and width changes and η) from one pass over a window of
  ±``window_fwhm``·FWHM. With ``tails="exact"`` on a uniform grid the values are those of
  `pseudo_voigt_profile` and the derivatives those of the window (the far Lorentzian tails carry
  < 1e-3 of a peak's gradient: a Gauss–Newton Jacobian may approximate, the residual may not).

Units: x, centres and FWHM in degrees 2θ; areas in intensity·degree (unit-area peaks × area).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from xtal.errors import SimulationError

__all__ = ["caglioti_fwhm", "tch_fwhm_eta", "pseudo_voigt_profile", "pseudo_voigt_profile_loop",
           "pseudo_voigt", "pseudo_voigt_matrix", "WINDOW_FWHM", "MIN_FWHM_DEG"]

_FOUR_LN2 = 4.0 * math.log(2.0)
_G_NORM = 2.0 * math.sqrt(math.log(2.0) / math.pi)


def caglioti_fwhm(two_theta_deg, U: float, V: float, W: float, *,
                  min_fwhm_deg: float | None = None) -> np.ndarray:
    """Caglioti FWHM (°): sqrt(U tan²θ + V tanθ + W), U V W in deg².

    A non-positive FWHM² raises `SimulationError`, unless ``min_fwhm_deg`` is given: then the FWHM
    is floored there (a fit moving through U, V, W must not fail on the way).
    """
    t = np.tan(np.radians(np.asarray(two_theta_deg, dtype=float) / 2.0))
    h2 = U * t * t + V * t + W
    if min_fwhm_deg is not None:
        return np.sqrt(np.maximum(h2, min_fwhm_deg ** 2))
    if np.any(~np.isfinite(h2)) or np.any(h2 <= 0):
        raise SimulationError(f"Caglioti U={U}, V={V}, W={W} give a non-positive FWHM² in the range",
                              field="caglioti")
    return np.sqrt(h2)


def tch_fwhm_eta(two_theta_deg, U: float, V: float, W: float, X: float = 0.0, Y: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Thompson–Cox–Hastings pseudo-Voigt: Gaussian FWHM² = U tan²θ + V tanθ + W (deg²),
    Lorentzian FWHM = X / cosθ + Y tanθ (deg; size and strain); returns (FWHM, η)."""
    tt = np.asarray(two_theta_deg, dtype=float)
    th = np.radians(tt / 2.0)
    hg = caglioti_fwhm(tt, U, V, W) if (U or V or W) else np.zeros_like(tt)
    hl = X / np.cos(th) + Y * np.tan(th)
    if np.any(hl < 0) or np.any(~np.isfinite(hl)):
        raise SimulationError(f"TCH X={X}, Y={Y} give a negative Lorentzian width", field="tch")
    h = (hg ** 5 + 2.69269 * hg ** 4 * hl + 2.42843 * hg ** 3 * hl ** 2 + 4.47163 * hg ** 2 * hl ** 3
         + 0.07842 * hg * hl ** 4 + hl ** 5) ** 0.2
    if np.any(h <= 0):
        raise SimulationError("TCH parameters give a zero peak width", field="tch")
    q = hl / h
    eta = np.clip(1.36603 * q - 0.47719 * q ** 2 + 0.11116 * q ** 3, 0.0, 1.0)
    return h, eta


def _pv_values(dx: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    z = dx / fwhm
    g = (_G_NORM / fwhm) * np.exp(-_FOUR_LN2 * z * z)
    lor = (2.0 / (math.pi * fwhm)) / (1.0 + 4.0 * z * z)
    return (1.0 - eta) * g + eta * lor


def pseudo_voigt_profile_loop(x_deg, centres_deg, areas, fwhm_deg, eta) -> np.ndarray:
    """Reference: per-peak Python loop over the full grid (slow; for tests and benchmarks)."""
    x = np.asarray(x_deg, dtype=float)
    c, a, w, e = _broadcast_peaks(centres_deg, areas, fwhm_deg, eta)
    y = np.zeros_like(x)
    for i in range(len(c)):
        dx = x - c[i]
        z = dx / w[i]
        y += a[i] * ((1.0 - e[i]) * (_G_NORM / w[i]) * np.exp(-_FOUR_LN2 * z * z)
                     + e[i] * (2.0 / (math.pi * w[i])) / (1.0 + 4.0 * z * z))
    return y


def _broadcast_peaks(centres, areas, fwhm, eta):
    c = np.atleast_1d(np.asarray(centres, dtype=float))
    a = np.broadcast_to(np.asarray(areas, dtype=float), c.shape).astype(float)
    w = np.broadcast_to(np.asarray(fwhm, dtype=float), c.shape).astype(float)
    e = np.broadcast_to(np.asarray(eta, dtype=float), c.shape).astype(float)
    for name, v in (("centres_deg", c), ("areas", a), ("fwhm_deg", w), ("eta", e)):
        if not np.all(np.isfinite(v)):
            raise SimulationError(f"{name} contains NaN or inf", field=name)
    if np.any(w <= 0):
        raise SimulationError("peak FWHM must be > 0", field="fwhm_deg")
    if np.any((e < 0) | (e > 1)):
        raise SimulationError("pseudo-Voigt η must be in [0, 1]", field="eta")
    return c, a, w, e


def _smooth_step(t: np.ndarray) -> np.ndarray:
    """C³ polynomial step: 0 for t ≤ 0, 1 for t ≥ 1 (t⁴(35 − 84t + 70t² − 20t³))."""
    t = np.clip(t, 0.0, 1.0)
    t2 = t * t
    return t2 * t2 * (35.0 - 84.0 * t + 70.0 * t2 - 20.0 * t2 * t)


def _fast_len(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (fast FFT length)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


NEGLIGIBLE_AREA = 1e-13
MIN_TAPER_STEPS = 24
_NEAR_BUDGET = 1 << 16   # (peak, point) pairs per block in the near field


def pseudo_voigt_profile(x_deg, centres_deg, areas, fwhm_deg, eta, *, near_fwhm: float = 4.0
                         ) -> np.ndarray:
    """Σ_k areas_k · pV(x − c_k; FWHM_k, η_k), area-normalised (the integral of peak k is areas_k).

    Vectorised and windowed, yet exact (to ~1e-7 of the maximum with the default ``near_fwhm = 4``,
    ~1e-9 with 8) including the slowly decaying Lorentzian tails:

    * near field: each peak is evaluated exactly over ±2·``near_fwhm``·FWHM (its Lorentzian part
      tapered by a smooth (C³) partition of unity that goes from 1 to 0 between ``near_fwhm`` and
      2·``near_fwhm`` FWHM), accumulated with one `np.bincount` over all (peak, point) pairs;
    * far field: the rest of every Lorentzian, (γ/π)·ψ(Δ)/(Δ²+γ²) = (γ/π)·ψ(Δ)·Σₙ(−γ²)ⁿ/Δ²ⁿ⁺²
      (three terms; ψ = 1 − taper is zero inside ``near_fwhm``), is a convolution of the peak weights
      with fixed smooth kernels: weights are spread to the grid with 4-point Lagrange weights and
      convolved by FFT. Peaks are grouped by width (factor-2 bands) so each band has one kernel.

    Peaks with |area| ≤ `NEGLIGIBLE_AREA`·max|area| are skipped. A uniform grid is required for the
    FFT path; other grids are evaluated exactly in blocks.
    """
    x = np.asarray(x_deg, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise SimulationError("x grid must be a non-empty 1-D array", field="x_deg")
    if not np.all(np.isfinite(x)):
        raise SimulationError("x grid contains NaN or inf", field="x_deg")
    c, a, w, e = _broadcast_peaks(centres_deg, areas, fwhm_deg, eta)
    y = np.zeros_like(x)
    if len(c) == 0:
        return y
    amax = float(np.max(np.abs(a)))
    if amax == 0.0:
        return y
    keep = np.abs(a) > NEGLIGIBLE_AREA * amax
    if not np.all(keep):
        c, a, w, e = c[keep], a[keep], w[keep], e[keep]
    nx = len(x)
    step = (x[-1] - x[0]) / (nx - 1) if nx > 1 else 0.0
    uniform = nx > 3 and step > 0 and np.allclose(np.diff(x), step, rtol=1e-7, atol=1e-12 * abs(step))
    if not uniform:
        return _profile_dense(x, c, a, w, e)
    if not near_fwhm > 1.5:
        raise SimulationError("near_fwhm must be > 1.5", field="near_fwhm")
    band = np.floor(np.log2(w / step)).astype(int)
    for b in np.unique(band):
        sel = band == b
        wmax = float(w[sel].max())
        # the far-field kernels must be smooth on the grid: taper over ≥ MIN_TAPER_STEPS points
        r1 = max(near_fwhm * wmax, MIN_TAPER_STEPS * step)
        # on a ladder of 2^(1/4) steps (rounded up: never a smaller near field), so that the
        # far-field kernels of nearby widths are the same and their transforms are reused
        r1 = step * 2.0 ** (math.ceil(4.0 * math.log2(r1 / step) - 1e-9) / 4.0)
        r2 = 2.0 * r1
        _near_field(y, x[0], step, c[sel], a[sel], w[sel], e[sel], r1, r2)
        lor = sel & (e > 0) & (a != 0)
        if np.any(lor):
            _far_field(y, x[0], step, c[lor], a[lor] * e[lor], w[lor] / 2.0, r1, r2)
    return y


def _profile_dense(x, c, a, w, e) -> np.ndarray:
    y = np.zeros_like(x)
    rows = max(1, (1 << 20) // len(x))
    for s in range(0, len(c), rows):
        sl = slice(s, s + rows)
        dx = x[None, :] - c[sl, None]
        y += a[sl] @ _pv_values(dx, w[sl, None], e[sl, None])
    return y


def _near_field(y, x0, step, c, a, w, e, r1, r2) -> None:
    """Exact pV of every peak over |Δ| ≤ r2, its Lorentzian part tapered to 0 between r1 and r2."""
    nx = len(y)
    lo = np.clip(np.ceil((c - r2 - x0) / step).astype(np.int64), 0, nx)
    hi = np.clip(np.floor((c + r2 - x0) / step).astype(np.int64) + 1, 0, nx)
    counts = np.maximum(hi - lo, 0)
    ga = a * (1.0 - e) * _G_NORM / w          # Gaussian height
    la = a * e * 2.0 / (math.pi * w)          # Lorentzian height
    inv_w2 = 1.0 / (w * w)
    compiled = _compiled_near_field()
    if compiled is not None:                  # the same sums in C (`xtal/_window.c`)
        compiled(y, float(x0), float(step), np.ascontiguousarray(c, dtype=float),
                 np.ascontiguousarray(ga, dtype=float), np.ascontiguousarray(la, dtype=float),
                 np.ascontiguousarray(inv_w2, dtype=float), lo.astype(np.int64),
                 np.maximum(hi, lo).astype(np.int64), float(r1), float(r2), _FOUR_LN2)
        return
    cum = np.cumsum(counts)
    budget = _NEAR_BUDGET
    start, n = 0, len(c)
    while start < n:
        base = cum[start - 1] if start > 0 else 0
        stop = max(int(np.searchsorted(cum, base + budget, side="right")), start + 1)
        cnt = counts[start:stop]
        m = int(cnt.sum())
        if m:
            # per-peak values expanded with np.repeat (block copies, same values as a gather)
            sl = slice(start, stop)
            indptr = np.zeros(cnt.size + 1, dtype=np.intp)
            np.cumsum(cnt, out=indptr[1:])
            idx = np.arange(m) + np.repeat(lo[sl] - indptr[:-1], cnt)
            dx = (x0 + idx * step) - np.repeat(c[sl], cnt)
            z2 = dx * dx
            z2 *= np.repeat(inv_w2[sl], cnt)
            vals = np.repeat(ga[sl], cnt) * np.exp(-_FOUR_LN2 * z2)
            lor = np.repeat(la[sl], cnt) / (1.0 + 4.0 * z2)
            far = np.abs(dx) > r1
            if np.any(far):
                lor[far] *= 1.0 - _smooth_step((np.abs(dx[far]) - r1) / (r2 - r1))
            vals += lor
            y += _WindowSums(nx, indptr, idx).sum(vals)
        start = stop


@functools.lru_cache(maxsize=16)
def _far_kernels(n_ext: int, nfft: int, step: float, r1: float, r2: float) -> tuple[np.ndarray, ...]:
    """The far field's three kernels ψ(Δ)/Δ^(2n+2) on lags −(n_ext−1)…(n_ext−1), Fourier
    transformed (length ``nfft``): the same for every call on one grid with one taper radius (r1
    is on a 2^(1/4) ladder in `pseudo_voigt_profile`, so a fit's changing widths meet few radii),
    so kept for the next."""
    lags = np.arange(-(n_ext - 1), n_ext) * step
    psi = _smooth_step((np.abs(lags) - r1) / (r2 - r1))
    inv2 = np.zeros_like(lags)
    nz = psi > 0
    inv2[nz] = 1.0 / (lags[nz] * lags[nz])
    out = tuple(np.fft.rfft(psi * inv2 ** (n_term + 1), nfft) for n_term in range(3))
    for k in out:
        k.flags.writeable = False
    return out


def _far_field(y, x0, step, c, b, gamma, r1, r2) -> None:
    """Add Σ_k b_k (γ_k/π) ψ(Δ)/(Δ²+γ_k²), ψ = smooth step from r1 to r2 (exact series in γ²/Δ²)."""
    nx = len(y)
    # grid that holds every peak centre (and the output grid)
    lo_i = int(math.floor(min(0.0, (c.min() - x0) / step))) - 2
    hi_i = int(math.ceil(max(nx - 1.0, (c.max() - x0) / step))) + 3
    n_ext = hi_i - lo_i + 1
    if n_ext > 40 * nx + 100000:  # peaks very far outside the grid: exact direct sum, in blocks
        xs = x0 + np.arange(nx) * step
        rows = max(1, (1 << 20) // nx)
        for s in range(0, len(c), rows):
            dx = xs[None, :] - c[s:s + rows, None]
            psi = _smooth_step((np.abs(dx) - r1) / (r2 - r1))
            y += (b[s:s + rows] * gamma[s:s + rows] / math.pi) @ (psi / (dx * dx + gamma[s:s + rows, None] ** 2))
        return
    u = (c - x0) / step - lo_i          # fractional index on the extended grid
    i0 = np.floor(u).astype(np.int64)
    t = u - i0
    # 4-point Lagrange weights at nodes i0-1, i0, i0+1, i0+2
    lw = [-(t) * (t - 1) * (t - 2) / 6.0, (t + 1) * (t - 1) * (t - 2) / 2.0,
          -(t + 1) * t * (t - 2) / 2.0, (t + 1) * t * (t - 1) / 6.0]
    g2 = gamma * gamma
    coeffs = [b * gamma / math.pi, -b * gamma * g2 / math.pi, b * gamma * g2 * g2 / math.pi]
    nfft = _fast_len(3 * n_ext - 2)
    kernels = _far_kernels(n_ext, nfft, float(step), float(r1), float(r2))
    acc_f = np.zeros(nfft // 2 + 1, dtype=complex)
    for n_term, coef in enumerate(coeffs):
        dep = np.zeros(n_ext)
        for j in range(4):
            dep += np.bincount(np.clip(i0 - 1 + j, 0, n_ext - 1), weights=coef * lw[j], minlength=n_ext)
        acc_f += np.fft.rfft(dep, nfft) * kernels[n_term]
    acc = np.fft.irfft(acc_f, nfft)[n_ext - 1: 2 * n_ext - 1]
    start = -lo_i
    y += acc[start: start + nx]


#: Peak window of the fit's pseudo-Voigt, in FWHM on each side (the Lorentzian is renormalised to it).
WINDOW_FWHM = 6.0
#: The Lorentzian tail is tapered smoothly to zero over the last ``_TAPER_FWHM`` of the window.
_TAPER_FWHM = 2.0
#: Floor of a fitted FWHM (°) while the optimiser moves through U, V, W.
MIN_FWHM_DEG = 1e-4


def _lorentz_window_norm() -> float:
    """1 / (area of a unit Lorentzian inside the tapered window), FWHM = 1: the untapered part
    in closed form ((2/π)·atan(2u), both sides), the taper by Simpson's rule on 4 001 points."""
    k, tp = WINDOW_FWHM, _TAPER_FWHM
    inner = (2.0 / math.pi) * math.atan(2.0 * (k - tp))
    u = np.linspace(k - tp, k, 4001)
    y = (4.0 / math.pi) / (1.0 + 4.0 * u * u) * 0.5 * (1 + np.cos(np.pi * (u - (k - tp)) / tp))
    h = (u[1] - u[0]) / 3.0
    tail = float(h * (y[0] + y[-1] + 4.0 * np.sum(y[1:-1:2]) + 2.0 * np.sum(y[2:-1:2])))
    return 1.0 / (inner + tail)


_LOR_NORM = _lorentz_window_norm()


def window_shape() -> tuple[float, float, float]:
    """The fit window's constants in the compiled kernels' order: the Lorentzian's
    renormalisation (1 / its area inside the tapered window), the window's half width and the
    taper's length (both in FWHM)."""
    return _LOR_NORM, WINDOW_FWHM, _TAPER_FWHM


def _empty_window(n: int, derivatives: bool, n_centre: int, n_fwhm: int) -> dict[str, Any]:
    zeros = np.zeros(n)
    out: dict[str, Any] = {"values": zeros}
    if derivatives:
        out.update(eta=zeros, centre=zeros, dcentre=[zeros] * n_centre, dfwhm=[zeros] * n_fwhm)
    return out


def pseudo_voigt(x: np.ndarray, centres: np.ndarray, areas: np.ndarray, fwhm: np.ndarray, eta: float,
                 *, dcentre: np.ndarray | None = None, dfwhm: np.ndarray | None = None,
                 derivatives: bool = False, tails: str = "window") -> dict[str, Any]:
    """Sum of pseudo-Voigt peaks on a sorted grid, with its derivatives from the same evaluation.

    Parameters: ``x`` grid (° 2θ, sorted); per peak ``centres`` (°), ``areas`` (intensity·°),
    ``fwhm`` (°); a common mixing ``eta`` in [0, 1]. ``dcentre`` (n_peaks × k): how each centre
    moves per unit of parameter k; ``dfwhm`` (n_peaks × m): how each FWHM changes per unit of
    parameter m. ``tails``: "window" (each peak within ±`WINDOW_FWHM`·FWHM, its Lorentzian tapered
    and renormalised to unit area inside — continuous as peaks move, fast) or "exact" (values of
    `pseudo_voigt_profile` with every tail; needs a uniform grid, else falls back to the window).

    Returns a dict: ``values`` (the profile, intensity per °) and, with ``derivatives``, ``eta``
    (∂/∂η), ``centre`` (∂/∂ common centre shift), ``dcentre`` (list of k arrays) and ``dfwhm``
    (list of m arrays).
    """
    x = np.asarray(x, dtype=float)
    exact = tails == "exact" and _is_uniform(x)
    out = _window(x, centres, areas, fwhm, eta, dcentre=dcentre, dfwhm=dfwhm,
                  derivatives=derivatives, values=not exact)
    if exact:
        out["values"] = np.asarray(pseudo_voigt_profile(x, centres, areas, fwhm, eta), dtype=float)
    return out


def _is_uniform(x: np.ndarray) -> bool:
    if x.size <= 3:
        return False
    step = (x[-1] - x[0]) / (x.size - 1)
    return bool(step > 0 and np.allclose(np.diff(x), step, rtol=1e-7, atol=1e-12 * step))


def _window(x: np.ndarray, centres: np.ndarray, areas: np.ndarray, fwhm: np.ndarray, eta: float,
            *, dcentre: np.ndarray | None, dfwhm: np.ndarray | None, derivatives: bool,
            values: bool) -> dict[str, Any]:
    """The windowed evaluation behind `pseudo_voigt` (values and/or derivatives in one pass)."""
    n = x.size
    n_centre = 0 if dcentre is None else dcentre.shape[1]
    n_fwhm = 0 if dfwhm is None else dfwhm.shape[1]
    # a derivative-only pass (values from the exact renderer) needs a narrower window
    half = (WINDOW_FWHM if values else 4.0) * fwhm
    lo = np.searchsorted(x, centres - half)
    hi = np.searchsorted(x, centres + half)
    counts = hi - lo
    ok = counts > 0
    if not ok.all():
        centres, areas, fwhm, lo, counts = centres[ok], areas[ok], fwhm[ok], lo[ok], counts[ok]
        dcentre = None if dcentre is None else dcentre[ok]
        dfwhm = None if dfwhm is None else dfwhm[ok]
    total = int(counts.sum())
    if total == 0:
        return _empty_window(n, derivatives, n_centre, n_fwhm)
    kernel = _compiled_window()
    if kernel is not None:
        return _window_compiled(kernel, x, centres, areas, fwhm, eta, lo, lo + counts, dcentre,
                                dfwhm, derivatives, values)
    # the window points are processed in blocks of whole peaks: each block's ~15 per-point
    # temporaries then stay in the core's own cache instead of streaming through the shared one
    # (the sums accumulate peak by peak into the same arrays: the same results as one block)
    edges = _block_edges(counts, total) if _csc_products() is not None else [0, counts.size]
    acc = _WindowAccumulators(n, values, derivatives, n_centre, n_fwhm)
    for p0, p1 in zip(edges[:-1], edges[1:]):
        _window_block(x, centres[p0:p1], areas[p0:p1], fwhm[p0:p1], eta, lo[p0:p1], counts[p0:p1],
                      None if dcentre is None else dcentre[p0:p1],
                      None if dfwhm is None else dfwhm[p0:p1], acc)
    return acc.result()


#: Window points per block of `_window`: a block's ~15 temporaries of this many float64 (128 KiB
#: each, ≈ 2 MB in all) stay in a core's L2 cache, and below glibc's default mmap threshold.
#: `benchmarks/bench_profiles.py` on recorded fit calls (bit-identical outputs): 0.86–0.90× the
#: time of one pass with malloc tuned as the CLI does, 0.56–0.63× (series calls) without;
#: 8 192 and 32 768 gained less, 4 096 lost (benchmarks/RESULTS.md).
_BLOCK_POINTS = 16_384


def _block_edges(counts: np.ndarray, total: int) -> list[int]:
    """Peak indices cutting the peaks into blocks of about `_BLOCK_POINTS` window points."""
    n_blocks = -(-total // _BLOCK_POINTS)
    if n_blocks <= 1:
        return [0, counts.size]
    cum = np.cumsum(counts)
    cuts = np.searchsorted(cum, np.arange(1, n_blocks) * (total / n_blocks))
    return [0, *sorted(set(int(c) + 1 for c in cuts if c + 1 < counts.size)), counts.size]


class _WindowAccumulators:
    """The grid sums of `_window`, accumulated block by block (values, ∂/∂η, the centre columns
    [common shift, dcentre…] and the FWHM columns, one grid row per point)."""

    def __init__(self, n: int, values: bool, derivatives: bool, n_centre: int, n_fwhm: int):
        self.values = np.zeros(n) if values else None
        self.derivatives = derivatives
        if derivatives:
            self.eta = np.zeros(n)
            self.centre = np.zeros((n, 1 + n_centre))
            self.fwhm = np.zeros((n, n_fwhm)) if n_fwhm else None

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.values is not None:
            out["values"] = self.values
        if self.derivatives:
            cols = np.ascontiguousarray(self.centre.T)
            out.update(eta=self.eta, centre=cols[0], dcentre=list(cols[1:]),
                       dfwhm=[] if self.fwhm is None else list(np.ascontiguousarray(self.fwhm.T)))
        return out


def _window_block(x, centres, areas, fwhm, eta, lo, counts, dcentre, dfwhm,
                  acc: _WindowAccumulators) -> None:
    """One block of peaks of `_window`, added into ``acc``."""
    n = x.size
    total = int(counts.sum())
    n_centre = 0 if dcentre is None else dcentre.shape[1]
    # per point only the shapes of unit height are computed, G = exp(−ln2·t²) and the tapered
    # L = 1/(1+t²); every per-peak factor (area/hw for the values, area/hw² for the derivatives,
    # the dcentre/dfwhm columns) is applied by the sparse window sums, once per peak.  Per-peak
    # quantities are expanded to the window points with np.repeat (a block copy; the same values
    # as indexing with the point→peak map, without the gather)
    indptr = np.zeros(counts.size + 1, dtype=np.intp)
    np.cumsum(counts, out=indptr[1:])
    ix = np.repeat(lo - indptr[:-1], counts)
    ix += np.arange(total)
    hw_p = 0.5 * fwhm
    inv_hw_p = 1.0 / hw_p
    t = x[ix]
    t -= np.repeat(centres, counts)
    t *= np.repeat(inv_hw_p, counts)
    t2 = t * t
    ln2 = math.log(2.0)
    gau = np.exp(t2 * -ln2)
    inv1t2 = t2 + 1.0
    np.reciprocal(inv1t2, out=inv1t2)
    lor = inv1t2.copy()
    grid = _WindowSums(n, indptr, ix)
    cg, cl = math.sqrt(ln2 / math.pi) * (1.0 - eta), _LOR_NORM / math.pi
    height_p = areas * inv_hw_p                  # area/hw of every peak
    if acc.values is not None:
        # smooth taper of the Lorentzian tail over the last _TAPER_FWHM of the window: the model
        # stays continuous when peaks move (points entering/leaving a window)
        # (computed on every point, without a mask: the factor is exactly 1 before the tail)
        u = np.abs(t)
        u *= 0.5
        u -= WINDOW_FWHM - _TAPER_FWHM
        u *= np.pi / _TAPER_FWHM
        np.clip(u, 0.0, np.pi, out=u)
        np.cos(u, out=u)
        u += 1.0
        u *= 0.5
        lor *= u
        grid.sum((eta * cl) * lor + cg * gau, height_p, out=acc.values)
    if not acc.derivatives:
        return
    grid.sum(cl * lor - math.sqrt(ln2 / math.pi) * gau, height_p, out=acc.eta)
    slope_p = height_p * inv_hw_p                # area/hw² of every peak
    # ∂/∂centre = −∂/∂x
    pc = (2.0 * eta * cl) * lor * inv1t2
    pc += (2.0 * ln2 * cg) * gau
    pc *= t
    # one pass for the common shift and every centre parameter: columns [1, dcentre...]
    per_peak = np.empty((centres.size, 1 + n_centre))
    per_peak[:, 0] = 1.0
    if n_centre:
        per_peak[:, 1:] = dcentre
    grid.sum_columns(pc, per_peak * slope_p[:, None], out=acc.centre)
    if acc.fwhm is not None:
        # ∂/∂hw, hw = fwhm/2
        ph = (0.5 * eta * cl) * lor * (2.0 * t2 * inv1t2 - 1.0)
        ph += (0.5 * cg) * gau * ((2.0 * ln2) * t2 - 1.0)
        grid.sum_columns(ph, np.asarray(dfwhm, dtype=float) * slope_p[:, None], out=acc.fwhm)


def _window_compiled(kernel, x, centres, areas, fwhm, eta, lo, hi, dcentre, dfwhm,
                     derivatives: bool, values: bool) -> dict[str, Any]:
    """`_window` through the compiled kernel (`xtal._window.window_sums`): the same per-peak
    factors, one pass over the window points."""
    n = x.size
    inv_hw = 2.0 / fwhm
    height = areas * inv_hw
    slope = height * inv_hw
    n_centre = 0 if dcentre is None else dcentre.shape[1]
    per_centre = np.empty((centres.size, 1 + n_centre))
    per_centre[:, 0] = slope
    if n_centre:
        per_centre[:, 1:] = dcentre * slope[:, None]
    per_fwhm = (np.zeros((centres.size, 0)) if dfwhm is None
                else np.asarray(dfwhm, dtype=float) * slope[:, None])
    vals = np.zeros(n)
    m = n if derivatives else 0
    d_eta = np.zeros(m)
    d_centre = np.zeros((1 + n_centre, m))      # one row per column: no transposes afterwards
    d_fwhm = np.zeros((per_fwhm.shape[1], m))
    kernel(np.ascontiguousarray(x, dtype=float), np.ascontiguousarray(centres, dtype=float),
           np.ascontiguousarray(inv_hw, dtype=float), np.ascontiguousarray(height, dtype=float),
           per_centre, np.ascontiguousarray(per_fwhm, dtype=float), lo.astype(np.int64),
           hi.astype(np.int64), float(eta), _LOR_NORM, WINDOW_FWHM, _TAPER_FWHM, bool(values),
           bool(derivatives), vals, d_eta, d_centre, d_fwhm, per_centre.shape[1], per_fwhm.shape[1])
    out: dict[str, Any] = {}
    if values:
        out["values"] = vals
    if derivatives:
        out.update(eta=d_eta, centre=d_centre[0], dcentre=list(d_centre[1:]), dfwhm=list(d_fwhm))
    return out


_COMPILED: list = []


def _compiled_window():
    """The compiled window kernel (the C extension `xtal._window`, built at install when a C
    compiler is present), or None (the NumPy form above is then used: same results to rounding).
    It loads in well under a millisecond, so it serves every grid: the choice depends on the
    installation alone, never on what the process did before."""
    if not _COMPILED:
        try:
            from xtal._window import modpoly_iterate, near_field_sums, phase_profile, window_sums
        except ImportError:          # not built (no C compiler at install): the NumPy forms
            window_sums = near_field_sums = phase_profile = modpoly_iterate = None
        _COMPILED[:] = [window_sums, near_field_sums, phase_profile, modpoly_iterate]
    return _COMPILED[0]


def _compiled_near_field():
    """The exact renderer's near field in C (`xtal._window.near_field_sums`), or None."""
    _compiled_window()
    return _COMPILED[1] if len(_COMPILED) > 1 else None


def compiled_phase_profile():
    """One fit phase's peaks and windowed sums in one compiled call
    (`xtal._window.phase_profile`, used by ``xtal.identify.fit.WholePatternFit.phase_eval``), or
    None: not built, or the NumPy forms chosen (``_COMPILED`` set shorter, as tests do)."""
    _compiled_window()
    return _COMPILED[2] if len(_COMPILED) > 2 else None


def compiled_modpoly():
    """The ModPoly baseline's iteration in C (`xtal._window.modpoly_iterate`, for
    ``xtal.numeric.modpoly(kernel=...)``), or None: not built, or the NumPy forms chosen."""
    _compiled_window()
    return _COMPILED[3] if len(_COMPILED) > 3 else None


class _WindowSums:
    """Sums of per-point weights of the peak windows on the grid (window points of peak p are
    ``ix[indptr[p]:indptr[p+1]]``, peaks in order).

    ``sum(w, v)`` = Σ_p w·v[p] on the grid; ``sum_columns(w, C)`` = Σ_p w·C[p, k] for every column
    k (grid points × k), in one pass over the window points (SciPy's compiled sparse CSC × dense product: the window
    points are the non-zeros of an n × n_peaks matrix). The additions happen in the same order
    as ``np.bincount(ix, weights=w * C[p(ix), k])`` (peak by peak), so the results are identical;
    without SciPy that is the fallback.
    """

    def __init__(self, n: int, indptr: np.ndarray, ix: np.ndarray):
        self.n, self.indptr, self.ix = n, indptr, ix

    def sum(self, w: np.ndarray, per_peak: np.ndarray | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
        """Σ_p w·per_peak[p] on the grid (per_peak None: 1), added into ``out`` when given."""
        np_ = self.indptr.size - 1
        y = np.zeros(self.n) if out is None else out
        mv = _csc_products()
        if mv is None:
            if per_peak is not None:
                w = w * np.repeat(np.asarray(per_peak, dtype=float), np.diff(self.indptr))
            y += np.bincount(self.ix, weights=w, minlength=self.n)
            return y
        per_peak = np.ones(np_) if per_peak is None else np.ascontiguousarray(per_peak, dtype=float)
        mv[0](self.n, np_, self.indptr, self.ix, w, per_peak, y)
        return y

    def sum_columns(self, w: np.ndarray, per_peak: np.ndarray,
                    out: np.ndarray | None = None) -> np.ndarray:
        """Σ_p w·per_peak[p, k] on the grid for every column k: an (n, k) array (C order; added
        into ``out`` when given)."""
        per_peak = np.ascontiguousarray(per_peak, dtype=float)
        k = per_peak.shape[1]
        y = np.zeros((self.n, k)) if out is None else out
        mv = _csc_products()
        if mv is None:
            cols = np.repeat(np.ascontiguousarray(per_peak.T), np.diff(self.indptr), axis=1)
            cols *= w
            y += np.array([np.bincount(self.ix, weights=c, minlength=self.n) for c in cols]).T
            return y
        mv[1](self.n, self.indptr.size - 1, k, self.indptr, self.ix, w, per_peak.ravel(), y.ravel())
        return y


_CSC: list = []


def _csc_products():
    """(csc_matvec, csc_matvecs) of scipy.sparse's compiled kernels, or None without them."""
    if not _CSC:
        try:
            mod = _sparsetools_module()
            _CSC.append((mod.csc_matvec, mod.csc_matvecs))
        except (ImportError, AttributeError, OSError):   # pragma: no cover - SciPy layout changed
            _CSC.append(None)
    return _CSC[0]


def _sparsetools_module():
    """SciPy's compiled sparse kernels (``scipy.sparse._sparsetools``, a self-contained extension
    module).  Importing it through ``scipy.sparse`` costs 0.25–0.4 s per process (the whole sparse
    package and SciPy's array-API layer) for two functions; the extension is loaded from its file
    instead (0.03 s; issue 16: the command's import time).  A module SciPy has already imported
    is reused; if its file is not where SciPy keeps it, the normal import is used."""
    import sys

    name = "scipy.sparse._sparsetools"
    if name in sys.modules:
        return sys.modules[name]
    import importlib.machinery
    import importlib.util
    import os

    import scipy

    folder = os.path.join(os.path.dirname(scipy.__file__), "sparse")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "_sparsetools" + suffix)
        if os.path.isfile(path):
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
            return mod
    from scipy.sparse import _sparsetools    # pragma: no cover - another SciPy layout
    return _sparsetools


def pseudo_voigt_matrix(x: np.ndarray, centres: np.ndarray, fwhm: np.ndarray, eta: float):
    """Unit-area windowed pseudo-Voigt peaks as a sparse matrix Φ (n_points × n_peaks, CSC).

    ``Φ @ areas`` equals ``pseudo_voigt(x, centres, areas, fwhm, eta)["values"]`` (same window and
    taper); ``Φ.T @ r`` is what Le Bail partitioning and intensity derivatives need.
    """
    from scipy import sparse

    x = np.asarray(x, dtype=float)
    centres = np.asarray(centres, dtype=float)
    fwhm = np.asarray(fwhm, dtype=float)
    half = WINDOW_FWHM * fwhm
    lo = np.searchsorted(x, centres - half)
    counts = np.searchsorted(x, centres + half) - lo
    total = int(counts.sum())
    idx = np.repeat(np.arange(centres.size), counts)
    starts = np.cumsum(counts) - counts
    ix = np.repeat(lo - starts, counts) + np.arange(total)
    inv_hw = (2.0 / fwhm)[idx]
    t = (x[ix] - centres[idx]) * inv_hw
    t2 = t * t
    ln2 = math.log(2.0)
    g = (math.sqrt(ln2 / math.pi) * inv_hw) * np.exp(-ln2 * t2)
    lor = (_LOR_NORM / math.pi) * inv_hw / (1.0 + t2)
    u = np.abs(t) * 0.5 - (WINDOW_FWHM - _TAPER_FWHM)
    tail = u > 0
    lor[tail] *= 0.5 * (1.0 + np.cos(np.pi * np.minimum(u[tail] / _TAPER_FWHM, 1.0)))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sparse.csc_matrix((eta * lor + (1.0 - eta) * g, ix, indptr), shape=(x.size, centres.size))
