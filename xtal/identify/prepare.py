"""Preparing a measured pattern for fitting: axis, σ, background estimate, peak search, start width."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtal import numeric
from xtal.beam import Radiation, parse_polarization, parse_radiation, resolve_radiation
from xtal.errors import IdentificationError


class NoSignalError(IdentificationError):
    """The pattern has no usable intensity (all zero, constant, too few points)."""


def radiation_from(pattern: Any, wavelength: Any = None, polarization: Any = None) -> Radiation:
    """The beam to model ``pattern`` with, decided by ``xtal.beam.resolve_radiation`` (the same
    decision and tolerance as ``read_pattern`` and the series).

    ``wavelength``: None (the pattern's λ, with its Kα2 line when the file gives one), a number in
    Å (one line, e.g. to fit a Kα1-only model), a tube name ("CuKa" → Kα1/Kα2 doublet), a (λ1, λ2, ratio) tuple or a ``Radiation``;
    ``polarization``: None (unpolarised lab beam, or the given Radiation's), a ``Polarization`` or
    its text form ("synchrotron", …). Raises ``MissingWavelengthError`` / ``WavelengthMismatchError``.
    """
    given = None if wavelength is None else parse_radiation(wavelength, polarization)
    file_lines = (getattr(pattern, "wavelength_angstrom", None),
                  getattr(pattern, "wavelength2_angstrom", None), getattr(pattern, "ka2_ratio", None))
    rad, _ = resolve_radiation(file_lines if file_lines[0] else None, given,
                               source=getattr(pattern, "source", None))
    if given is not None:
        rad = given   # accepted above; the fit models the lines the caller asked for
    if polarization is not None:
        rad = dataclasses.replace(rad, polarization=parse_polarization(polarization))
    return rad


@dataclass
class PreparedData:
    """A pattern ready to fit: sorted 2θ (°), intensity, σ (same units), and its source."""

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    source: str | None
    noise_model: str = "given"       # where σ comes from (see `noise_model`)


def prepare_pattern(pattern: Any, two_theta_range: tuple[float, float] | None = None,
                    rad: Any = None) -> PreparedData:
    """Sorted finite points of ``pattern`` on 2θ (°) with σ (given, or √counts for counts)."""
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
        sig, how = noise_model(y)
    else:
        how = "σ given by the file"
    return PreparedData(x, y, sig, src, how)


#: median of a χ²(1) variable: turns the median of squared normalised residuals into a variance
_CHI2_1_MEDIAN = 0.4549364231195724


def noise_model(y: np.ndarray) -> tuple[np.ndarray, str]:
    """σ of each point of a pattern that states none, and a sentence saying how it was obtained.

    Poisson σ = √counts applies only to raw counts. The point-to-point scatter says which case
    holds: r_i = y_i − (y_{i−1} + y_{i+1})/2 has variance ≈ 1.5 σ_i² for white noise, and the
    smooth signal contributes little to it away from the peaks. The variance is measured robustly
    in bins of intensity (lower 80 % of the points, i.e. background and peak flanks) and fitted by
    σ² = a + g·I:

    * non-negative integers whose fitted variance is I within a factor 2 across the intensity range
      (20th and 80th percentile): **raw counts**, σ = √I;
    * otherwise **estimated from the data**: σ² = a + g·I (scaled counts, rebinned or normalised
      data, detector gain, background-subtracted data: the scatter decides, not an assumption).
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    floor_counts = 1.0          # a zero-count point keeps the weight of one count
    if n < 30:
        return np.sqrt(np.maximum(np.abs(y), floor_counts)), "Poisson σ = √I (too few points to estimate)"
    r = y[1:-1] - 0.5 * (y[:-2] + y[2:])
    # bin by a smoothed intensity: binning by y_i itself would select the noise of r_i with it
    yc = smooth(y, 5.0)[1:-1]
    keep = yc <= numeric.percentile(yc, 80)
    yk, rk = yc[keep], r[keep]
    # the bins are contiguous runs of the points sorted by intensity (edges included on both
    # sides, as the masks yk ≥ lo & yk ≤ hi select): one sort instead of a mask per bin. A bin is
    # cut by value (searchsorted, both sides), so equal intensities fall in the same bins whatever
    # their order, and a median does not depend on order: no stable sort needed (5× faster)
    order = np.argsort(yk)
    ys, r2s = yk[order], rk[order] ** 2
    edges = np.unique(numeric.percentile(ys, np.linspace(0, 100, 9), presorted=True))
    starts = np.searchsorted(ys, edges[:-1], side="left")
    stops = np.searchsorted(ys, edges[1:], side="right")
    xs, vs = [], []
    for a, b in zip(starts, stops):
        if b - a >= 20:
            xs.append(numeric.median(ys[a:b], presorted=True))
            vs.append(numeric.median(r2s[a:b]) / _CHI2_1_MEDIAN / 1.5)
    xs, vs = np.array(xs), np.array(vs)
    if xs.size >= 2 and np.ptp(xs) > 0:
        A = np.stack([np.ones_like(xs), xs], axis=1)
        coef, *_ = np.linalg.lstsq(A, vs, rcond=None)
        a, g = float(coef[0]), float(coef[1])
        if g < 0 or a < 0:       # one term only: whichever explains the variance alone
            g = max(numeric.median(vs / np.maximum(xs, 1e-300)), 0.0) if g >= 0 or a < 0 else 0.0
            a = 0.0 if g > 0 else numeric.median(vs)
    else:
        a, g = (float(vs[0]) if vs.size else 0.0), 0.0
    integers = bool(np.all(y >= 0) and np.mean(np.abs(y - np.round(y)) < 1e-6) > 0.99)
    lo_i, hi_i = (max(float(v), 1.0) for v in numeric.percentile(ys, [20, 80], presorted=True))
    poisson = all(0.5 <= (a + g * v) / v <= 2.0 for v in (lo_i, hi_i))
    if integers and poisson:
        med = numeric.median(ys, presorted=True)
        gain = (a + g * med) / max(med, 1.0)
        return np.sqrt(np.maximum(y, floor_counts)), f"raw counts: Poisson σ = √I (scatter agrees, gain {gain:.2f})"
    var = a + g * np.maximum(y, 0.0)
    vfloor = max(numeric.percentile(var, 5), 1e-12 * max(float(np.max(np.abs(y))) ** 2, 1e-300))
    sig = np.sqrt(np.maximum(var, vfloor))
    return sig, (f"estimated from the point-to-point scatter: σ² = {a:.3g} + {g:.3g}·I "
                 "(the intensities are not raw counts)")


def estimate_background(x: np.ndarray, y: np.ndarray, method: str = "snip",
                        fwhm_deg: float | None = None) -> np.ndarray:
    """Background under a powder pattern: ``"snip"`` (pybaselines' SNIP, computed by
    `xtal.numeric.snip` without importing pybaselines) or ``"arpls"`` (pybaselines)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    step = float(np.median(np.diff(x)))
    fw = fwhm_deg if fwhm_deg else 0.1
    if method == "snip":
        hw = int(np.clip(6.0 * fw / step, 10, max(11, x.size // 4)))
        base = numeric.snip(y, hw, decreasing=True, smooth_half_window=max(1, hw // 10))
    elif method == "arpls":
        from pybaselines import Baseline
        lam = 10.0 ** np.clip(3.0 + 2.0 * math.log10(max(fw / step, 1.0)) + 2.0, 4, 12)
        base, _ = Baseline(x_data=x).arpls(y, lam=lam)
    else:
        raise IdentificationError(f"unknown background method {method!r} (use 'chebyshev', "
                                  "'snip' or 'arpls')")
    return np.minimum(np.asarray(base, dtype=float), y.max())


def smooth(v: np.ndarray, sigma_pts: float) -> np.ndarray:
    """``v`` smoothed by a Gaussian of σ = ``sigma_pts`` samples (edges: nearest value);
    unchanged below 0.3 samples."""
    if sigma_pts < 0.3:
        return v
    return numeric.gaussian_filter1d(v, sigma_pts)


@dataclass
class Peaks:
    """Peak positions (°), heights and FWHM (°) found in a net pattern."""

    pos: np.ndarray
    height: np.ndarray
    fwhm: np.ndarray


def find_peaks(x: np.ndarray, net: np.ndarray, noise: np.ndarray, nsig: float = 4.0,
                rel: float = 0.0) -> Peaks:
    step = float(np.median(np.diff(x)))
    sm = smooth(net, 1.0)
    thr = nsig * noise / math.sqrt(2.0)  # smoothing over ~3 points lowers the noise
    idx = numeric.find_peaks(sm, prominence=thr)
    if idx.size == 0:
        return Peaks(np.zeros(0), np.zeros(0), np.zeros(0))
    keep = sm[idx] > thr[idx]
    if rel > 0:
        keep &= sm[idx] > rel * sm[idx].max()
    idx = idx[keep]
    if idx.size == 0:
        return Peaks(np.zeros(0), np.zeros(0), np.zeros(0))
    widths = numeric.peak_widths(sm, idx, rel_height=0.5) * step
    return Peaks(x[idx], sm[idx], widths)


# ----------------------------------------------------------------------------------------------
# the fitter (variable projection)

def default_n_background(x: np.ndarray) -> int:
    span = float(x[-1] - x[0])
    return int(np.clip(round(span / 12.0) + 4, 5, 14))


def initial_width(data: PreparedData, bg: np.ndarray | None = None) -> float:
    if bg is None:
        bg = estimate_background(data.x, data.y, "snip")
    pk = find_peaks(data.x, data.y - bg, data.sigma, nsig=6.0)
    step = float(np.median(np.diff(data.x)))
    if pk.fwhm.size == 0:
        return max(0.1, 5 * step)
    order = np.argsort(pk.height)[::-1][:15]
    return float(np.clip(np.median(pk.fwhm[order]), 2 * step, 2.0))
