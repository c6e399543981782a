"""The screen: every library phase placed on the observed pattern over a range of isotropic strain.

The strongest reflections of a phase are placed on the blurred, background-subtracted pattern for
every strain in ±``max_strain`` (thermal expansion, solvent content); the best cosine similarity
between predicted and observed intensities is the phase's score.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from xtal.identify.fit import DEFAULT_MAX_STRAIN, dmin_for
from xtal.identify.model import PhaseModel
from xtal.identify.prepare import (estimate_background, find_peaks, initial_width, prepare_pattern,
                                   smooth)
from xtal.beam import lorentz_polarization
from xtal.identify.prepare import radiation_from
from xtal.identify.result import ScreenHit


def _screen_one(m: PhaseModel, x: np.ndarray, obs_blur: np.ndarray, rad: Any,
                max_strain: float, fwhm: float, n_strong: int = 40) -> ScreenHit:
    d0 = m.d_spacings(m.cell0)
    lam = rad.primary
    s = lam / (2 * d0 * (1 - max_strain))
    ok = s < 0.9999
    tth = 2 * np.degrees(np.arcsin(np.minimum(lam / (2 * d0), 0.9999)))
    inrange = ok & (tth > x[0]) & (tth < x[-1])
    if not np.any(inrange):
        return ScreenHit(m.id, 0.0, 0.0, 0)
    inten = m.fmult * lorentz_polarization(tth, rad.polarization)
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


def _coverage(m: PhaseModel, hit: ScreenHit, rad: Any, x: np.ndarray, peaks: Any, fwhm: float) -> float:
    """Share of the observed peaks (weighted by √height) that the phase puts a reflection on at its
    best strain: a phase with few reflections can sit on some peaks of a rich pattern (high cosine)
    without explaining the others."""
    if peaks is None or peaks.pos.size == 0:
        return 1.0
    d = m.d_spacings(m.cell0) * (1.0 + hit.strain)
    s = rad.primary / (2.0 * d)
    ok = s < 0.9999
    tth = 2.0 * np.degrees(np.arcsin(s[ok]))
    inten = m.fmult[ok] * lorentz_polarization(tth, rad.polarization)
    inr = (tth > x[0]) & (tth < x[-1])
    if not np.any(inr):
        return 0.0
    tth = np.sort(tth[inr & (inten > 1e-3 * float(inten[inr].max()))])
    j = np.clip(np.searchsorted(tth, peaks.pos), 1, max(tth.size - 1, 1))
    near = np.minimum(np.abs(peaks.pos - tth[j - 1]), np.abs(peaks.pos - tth[np.minimum(j, tth.size - 1)]))
    w = np.sqrt(np.clip(peaks.height, 0, None))
    return float(np.sum(w[near <= max(fwhm, 1e-6)]) / max(float(np.sum(w)), 1e-300))


def screen_models(models: list[PhaseModel], x: np.ndarray, net: np.ndarray, rad: Any,
                  max_strain: float, fwhm: float, noise: np.ndarray, *,
                  coverage: bool = True) -> list[ScreenHit]:
    """Screen score of every phase: the best cosine match of its strongest reflections over the
    strain range, times √(coverage of the observed peaks) (see `_coverage`); best first.
    ``coverage=False`` for a residual, where a minor phase rightly explains only some peaks."""
    step = float(np.median(np.diff(x)))
    blur = smooth(np.clip(net, 0, None), max(1.0, 0.5 * fwhm / step))
    # compress the dynamic range (a strong peak must not dominate the match) and ignore noise
    blur = np.sqrt(np.clip(blur - 2.0 * noise / math.sqrt(max(1.0, fwhm / step)), 0, None))
    if blur.max() <= 0:
        return [ScreenHit(m.id, 0.0, 0.0, 0) for m in models]
    blur = blur / blur.max()
    peaks = find_peaks(x, net, noise, nsig=4.0) if coverage else None
    hits = []
    for m in models:
        h = _screen_one(m, x, blur, rad, max_strain, fwhm)
        cov = _coverage(m, h, rad, x, peaks, fwhm)
        hits.append(ScreenHit(h.id, h.score * math.sqrt(cov), h.strain, h.n_reflections,
                              h.alternatives, cov))
    return sorted(hits, key=lambda h: -h.score)


def screen_phases(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None,
                  max_strain: float = DEFAULT_MAX_STRAIN, polarization: Any = None) -> list[ScreenHit]:
    """Fast screen of every phase against the pattern (best first)."""
    rad = radiation_from(pattern, wavelength, polarization)
    data = prepare_pattern(pattern, None, rad)
    fw = initial_width(data)
    bg = estimate_background(data.x, data.y, "snip", fw)
    dmin = dmin_for(data, rad, max_strain)
    models = [PhaseModel(p, dmin, "isotropic") for p in phases]
    return screen_models(models, data.x, data.y - bg, rad, max_strain, fw, data.sigma)


# ----------------------------------------------------------------------------------------------
# identification
