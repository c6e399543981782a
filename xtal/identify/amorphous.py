"""Amorphous content: claimed only when a halo is statistically required beyond a flexible background.

What is not Bragg scattering in a lab or synchrotron pattern is mostly *background*: fluorescence
(flat), air and incoherent scattering (a decay at low angle, a slow rise at high angle), a holder or
capillary (broad humps). An amorphous phase adds a *halo*: a broad peak in Q whose width is set by
short-range order, FWHM ≈ 0.3–0.8 Å⁻¹ (the principal peak of oxide glasses, amorphous carbon,
polymers, molecular glasses). The test:

1. ``r = observed − Σ phases`` (the crystalline part of the final fit), with the pattern's honest σ;
   points under Bragg peaks (calculated above 2σ) are left out, so that peak misfit is not read as
   a halo; so are *narrow* features of ``r`` — peaks of a phase the library lacks, an impurity
   below the detection limit, misfit tails — found as excess above a running median of ``r`` over
   0.15 Å⁻¹ in Q, half the narrowest halo and ~20 FWHM of a lab Bragg peak (0.1° 2θ under Cu Kα
   is 0.007 Å⁻¹): a halo is broad by definition, and an unexplained Bragg peak is not amorphous
   content;
2. background model: a Chebyshev series in Q whose degree lets it follow features broader than
   ≈ 1 Å⁻¹ (degree ⌈span_Q / 1 Å⁻¹⌉ + 2, 3–10) plus two low-angle decays (air scatter);
3. every halo candidate (a Gaussian in Q, centre 0.6–5 Å⁻¹, FWHM 0.3–0.8 Å⁻¹) is added in turn;
   a claimed halo is an amorphous solid's *principal* peak, its strongest: Q₁ ≈ 7.7 Å / r₁
   (Ehrenfest) puts it at 2.5–3.1 Å⁻¹ for metallic glasses (r₁ ≈ 2.5–2.8 Å), 1.5–2.2 Å⁻¹ for
   oxide and covalent glasses, 0.5–1.5 Å⁻¹ for molecular solids and polymers; the weaker higher
   maxima never come without it, so the best candidate found above 3.5 Å⁻¹ — the overlapping
   feet of many broad reflections of a small-crystallite sample — joins the background and the
   search is repeated;
   the best one is kept when its χ² gain, in units of the reduced χ² (the larger of the
   background region's and the whole fit's, so that a misfit-dominated fit raises the bar), is at
   least ``Z_REQUIRED``² and its area is at least ``MIN_FRACTION`` of the crystalline scattering.

Otherwise the result is "not detected" with an upper limit. Without a blank or an internal
standard a real halo whose shape matches the allowed background cannot be told from one; the
internal-standard route (`internal_standard_amorphous`) is the laboratory's way to an absolute
amorphous fraction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtal.beam import q_from_two_theta

#: halo significance needed (in σ, after scaling by the reduced χ² of the fit)
Z_REQUIRED = 8.0
#: a halo smaller than this share of (halo + Bragg) intensity is not reported as amorphous content:
#: measured on crystalline standards (PbSO4, NAC, BiFeO3), backgrounds and peak tails leave 1–2 %
#: that a halo model can take up
MIN_FRACTION = 0.05
HALO_FWHM_Q = tuple(np.round(np.arange(0.30, 0.801, 0.05), 2))   # Å⁻¹
HALO_CENTRE_Q = (0.6, 5.0)                    # Å⁻¹: centres searched
#: Å⁻¹: the highest principal peak of an amorphous solid (module doc, 3.); broad excess found
#: beyond it joins the background (up to `MAX_HIGH_Q_HUMPS` of them) and the search is repeated
PRINCIPAL_PEAK_MAX_Q = 3.5
MAX_HIGH_Q_HUMPS = 3
#: Å⁻¹: where the common sample holders and mounts scatter — silica and soda-lime glass (a slide,
#: a capillary: principal peak at 1.5–1.8 Å⁻¹) and hydrocarbon grease or binder (≈ 1.4 Å⁻¹). A halo
#: here is amorphous scattering, but without a blank it cannot be told from the holder's
HOLDER_HALO_Q = (1.35, 1.8)
BACKGROUND_FEATURE_Q = 1.6                    # Å⁻¹: the narrowest feature the background may follow
NARROW_WINDOW_Q = 0.15                        # Å⁻¹: half the narrowest halo; wider than Bragg peaks


def holder_like(centre_q: float | None) -> bool:
    """Whether a halo centred at ``centre_q`` (Å⁻¹) sits where glass or grease holders scatter."""
    return centre_q is not None and HOLDER_HALO_Q[0] <= centre_q <= HOLDER_HALO_Q[1]


@dataclass
class HaloResult:
    """Outcome of the halo test: fraction (halo / (halo + Bragg)) with s.u., or not detected."""

    detected: bool
    fraction: float | None            # None when not detected
    fraction_su: float | None
    upper_limit: float | None         # 3σ upper limit of the fraction when not detected
    significance: float               # z of the best halo candidate
    centre_q: float | None            # Å⁻¹
    fwhm_q: float | None              # Å⁻¹
    halo: np.ndarray | None           # the halo on the fit's 2θ grid (intensity)
    statement: str

    def to_json_dict(self) -> dict[str, Any]:
        f = lambda v: None if v is None or not math.isfinite(v) else float(v)  # noqa: E731
        return {"detected": self.detected, "fraction": f(self.fraction),
                "fraction_su": f(self.fraction_su), "upper_limit": f(self.upper_limit),
                "significance": f(self.significance), "centre_q_inv_angstrom": f(self.centre_q),
                "fwhm_q_inv_angstrom": f(self.fwhm_q), "statement": self.statement}


def _background_basis(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    span = float(q[-1] - q[0])
    deg = int(np.clip(math.ceil(span / BACKGROUND_FEATURE_Q) + 2, 3, 10))
    u = 2.0 * (q - q[0]) / max(span, 1e-9) - 1.0
    cols = [np.polynomial.chebyshev.chebvander(u, deg)]
    for tau in (2.0, 8.0):                       # low-angle decays (air scatter), degrees 2θ
        cols.append(np.exp(-(x - x[0]) / tau)[:, None])
    return np.concatenate(cols, axis=1)


def _narrow_features(q: np.ndarray, r: np.ndarray, sig: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Points of ``r`` (observed − Bragg) inside narrow positive features.

    The median of the usable points (``keep``) within ±``NARROW_WINDOW_Q``/2 of each point follows
    background and halo (a halo is at least 0.3 Å⁻¹ wide); a point more than 3σ above it belongs
    to a feature narrower than any halo: an unexplained Bragg peak or a misfit tail. Parameters:
    Q (Å⁻¹, ascending), residual and σ (counts), the mask of usable points. Returns a boolean mask
    on ``q``, widened by a quarter of the window on each side (peak tails).
    """
    idx = np.flatnonzero(keep)
    narrow = np.zeros(q.size, bool)
    if idx.size < 10:
        return narrow
    qk, rk = q[idx], r[idx]
    # the running median at anchors every window/4, interpolated (a few hundred medians at most)
    anchors = np.arange(qk[0], qk[-1] + NARROW_WINDOW_Q / 4, NARROW_WINDOW_Q / 4)
    lo = np.searchsorted(qk, anchors - NARROW_WINDOW_Q / 2)
    hi = np.searchsorted(qk, anchors + NARROW_WINDOW_Q / 2)
    med = np.array([np.median(rk[i:j]) if j > i else np.nan for i, j in zip(lo, hi)])
    ok = np.isfinite(med)
    level = np.interp(qk, anchors[ok], med[ok])
    hit = qk[rk - level > 3.0 * sig[idx]]
    if hit.size:
        # widen each hit by a quarter window (its tails), vectorised over the sorted hits
        pos = np.searchsorted(hit, q)
        left = np.abs(q - hit[np.clip(pos - 1, 0, hit.size - 1)])
        right = np.abs(hit[np.clip(pos, 0, hit.size - 1)] - q)
        narrow = np.minimum(left, right) <= NARROW_WINDOW_Q / 8
    return narrow


def _tail_columns(x: np.ndarray, bragg: np.ndarray, profile: dict[str, float]) -> np.ndarray:
    """The Bragg pattern with wider Lorentzian tails (FWHM 3× and 10× the fit's median peak FWHM),
    as extra background columns: peak tails the profile under-describes (size/strain broadening,
    diffuse scattering at the foot of strong peaks) are then not read as a halo near strong peaks.
    Parameters: 2θ grid (deg, ascending), calculated Bragg intensity, the fit's U, V, W (deg²)."""
    step = float(np.median(np.diff(x))) if x.size > 1 else 0.0
    if step <= 0 or not profile or not all(k in profile for k in ("U", "V", "W")):
        return np.zeros((x.size, 0))
    from xtal.profiles import caglioti_fwhm

    w = np.asarray(caglioti_fwhm(x, profile["U"], profile["V"], profile["W"], min_fwhm_deg=step),
                   dtype=float)
    fwhm = float(np.nanmedian(np.clip(w, step, 5.0))) if np.isfinite(w).any() else 0.1
    n = x.size
    m = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(bragg, m)
    t = np.arange(m, dtype=float)
    t = np.minimum(t, m - t) * step
    cols = []
    for k in (3.0, 10.0):
        g = (k * fwhm) / 2.0
        kern = g / np.pi / (t * t + g * g) * step          # unit-area Lorentzian on the grid
        cols.append(np.fft.irfft(spec * np.fft.rfft(kern), m)[:n])
    return np.stack(cols, axis=1)


def _gaussian_q(q, centre_q, fwhm_q) -> np.ndarray:
    """A halo's shape: a unit-height Gaussian in Q (Å⁻¹) of the given centre and FWHM
    (broadcasting)."""
    return np.exp(-0.5 * ((q - centre_q) / (fwhm_q / 2.3548)) ** 2)


HOLDER_CAVEAT = ("; glass (a slide, a capillary) and grease scatter at this Q too: without a "
                 "measurement of the empty holder or an internal standard it may be the holder's")


def _best_halo(qk: np.ndarray, r: np.ndarray, w: np.ndarray, B: np.ndarray, lo: float,
               hi: float) -> tuple[tuple, float]:
    """The halo candidate (Gaussian in Q, centre lo–hi in steps of 0.05 Å⁻¹, FWHM `HALO_FWHM_Q`)
    that lowers χ² most beyond the background columns ``B``. Parameters: Q (Å⁻¹), residual,
    weights (1/σ²) and background columns of the usable points. Returns ((gain, centre, fwhm,
    amplitude, h⊥·W h⊥), χ² of the background alone); centre None when lo ≥ hi."""
    sw = np.sqrt(w)
    Bw = B * sw[:, None]
    coef, *_ = np.linalg.lstsq(Bw, r * sw, rcond=None)
    r0 = r - B @ coef
    chi0 = float(np.sum(w * r0 * r0))
    Q, _ = np.linalg.qr(Bw)
    best = (0.0, None, None, 0.0, 0.0)
    if hi > lo:
        centres = np.arange(lo, hi + 1e-9, 0.05)
        for fw in HALO_FWHM_Q:
            H = _gaussian_q(qk[:, None], centres[None, :], fw) * sw[:, None]
            Hp = H - Q @ (Q.T @ H)               # halo columns with the background projected out
            num = Hp.T @ (r0 * sw)
            den = np.einsum("ij,ij->j", Hp, Hp)
            gain = np.where((num > 0) & (den > 0), num * num / np.maximum(den, 1e-300), 0.0)
            k = int(np.argmax(gain))
            if gain[k] > best[0]:
                best = (float(gain[k]), float(centres[k]), fw, float(num[k] / den[k]), float(den[k]))
    return best, chi0


def halo_analysis(fit: Any) -> HaloResult:
    """Is an amorphous halo required in the final fit ``fit`` (a `FitResult`)? See module doc."""
    lam = fit.wavelength_angstrom
    x, y = fit.x_deg, fit.observed
    sig = fit.sigma if fit.sigma is not None else np.sqrt(np.maximum(fit.calculated, 1.0))
    bragg = fit.calculated - fit.background
    bragg_area = float(np.trapezoid(np.clip(bragg, 0, None), x))
    if lam is None or bragg_area <= 0 or x.size < 50:
        return HaloResult(False, None, None, None, 0.0, None, None, None, "not tested")
    q = np.asarray(q_from_two_theta(x, lam), dtype=float)
    keep = bragg < 2.0 * sig
    if keep.sum() < 0.2 * x.size:                # a dense pattern: keep the weakest 20 % instead
        keep = bragg <= np.percentile(bragg / sig, 20) * sig
    keep &= ~_narrow_features(q, y - bragg, sig, keep)
    r = (y - bragg)[keep]
    w = 1.0 / sig[keep] ** 2
    qk = q[keep]
    base = np.concatenate([_background_basis(x, q), _tail_columns(x, bragg, fit.profile)], axis=1)[keep]
    lo, hi = max(HALO_CENTRE_Q[0], q[0] + 0.2), min(HALO_CENTRE_Q[1], q[-1] - 0.2)
    humps: list[np.ndarray] = []    # broad excess beyond any principal peak: background
    for _ in range(1 + MAX_HIGH_Q_HUMPS):
        B = np.concatenate([base] + [h[:, None] for h in humps], axis=1)
        best, chi0 = _best_halo(qk, r, w, B, lo, hi)
        if best[1] is None or best[1] <= PRINCIPAL_PEAK_MAX_Q:
            break
        humps.append(_gaussian_q(qk, best[1], best[2]))
    gain, c, fw, amp, den = best
    dof = max(int(keep.sum()) - B.shape[1] - 1, 1)
    # the bar rises with the misfit of the whole fit: a halo must stand out against how well the
    # crystalline model describes the pattern, not only against counting noise
    chi_red = max((chi0 - gain) / dof, float(getattr(fit, "chi2", 1.0) or 1.0), 1.0)
    z = math.sqrt(gain / chi_red) if gain > 0 else 0.0
    if c is None:
        return HaloResult(False, None, None, None, 0.0, None, None, None,
                          "no halo tested (Q range too short)")
    if c > PRINCIPAL_PEAK_MAX_Q:
        return HaloResult(False, None, None, None, z, c, fw, None,
                          f"amorphous content not detected: the broad excess (Q = {c:.2f} Å⁻¹) lies "
                          f"beyond {PRINCIPAL_PEAK_MAX_Q:g} Å⁻¹, where no amorphous solid has its "
                          "principal peak (overlapping peak feet or background)")
    halo = amp * _gaussian_q(q, c, fw)
    area = float(np.trapezoid(halo, x))
    frac = area / (area + bragg_area)
    amp_su = math.sqrt(chi_red / den) if den > 0 else float("inf")
    frac_su = frac * amp_su / amp if amp > 0 else float("inf")
    if z >= Z_REQUIRED and frac >= MIN_FRACTION:
        return HaloResult(True, frac, frac_su, None, z, c, fw, halo,
                          f"amorphous halo required: {100 * frac:.1f} ± {100 * frac_su:.1f} % of the "
                          f"scattered intensity (Q = {c:.2f} Å⁻¹, FWHM {fw:.2f} Å⁻¹, {z:.0f}σ beyond "
                          "a flexible background)" + (HOLDER_CAVEAT if holder_like(c) else ""))
    limit = min(max(frac, 0.0) + 3.0 * frac_su, 1.0) if math.isfinite(frac_su) else None
    why = (f"best halo candidate {z:.1f}σ" if frac >= MIN_FRACTION else
           f"best halo candidate below {100 * MIN_FRACTION:.0f} %")
    return HaloResult(False, None, None, limit, z, c, fw, None,
                      "amorphous content not detected: broad intensity is described by the "
                      f"background (fluorescence, air scatter, holder) — {why}")


def internal_standard_amorphous(measured_fraction: float, measured_su: float | None,
                                known_fraction: float) -> tuple[float, float | None]:
    """Amorphous weight fraction of the original sample from an internal standard.

    A known weight fraction ``known_fraction`` (W_s) of a crystalline standard is mixed in; the
    whole-pattern fit normalises the crystalline phases to 100 % and finds the standard at
    ``measured_fraction`` (W_m > W_s when amorphous content is present). The amorphous fraction of
    the sample without the standard is A = (1 − W_s/W_m) / (1 − W_s); s.u. from W_m's.
    """
    ws, wm = float(known_fraction), float(measured_fraction)
    if not (0.0 < ws < 1.0) or wm <= 0:
        raise ValueError("internal standard fractions must be in (0, 1)")
    a = (1.0 - ws / wm) / (1.0 - ws)
    su = None if measured_su is None else (ws / (wm * wm)) * measured_su / (1.0 - ws)
    return a, su
