"""Lattice vs temperature: thermal expansion (weighted linear / quadratic fits of a, b, c, V) and
the merging of two lattice parameters (e.g. orthorhombic → tetragonal-like b = c)."""
from __future__ import annotations

import math

import numpy as np

from xtal.series.events import rounded

__all__ = ["thermal_expansion", "axis_merging", "auto_merging"]


def _wfit(x, y, s, deg):
    w = 1.0 / np.maximum(s, 1e-12) ** 2
    A = np.vander(x, deg + 1)
    Aw = A * np.sqrt(w)[:, None]
    yw = y * np.sqrt(w)
    coef, *_ = np.linalg.lstsq(Aw, yw, rcond=None)
    r = yw - Aw @ coef
    dof = max(len(x) - deg - 1, 1)
    chi2 = float(r @ r) / dof
    cov = np.linalg.pinv(Aw.T @ Aw) * max(chi2, 1.0)
    return coef, cov, chi2, float(r @ r)


def thermal_expansion(res, phase: str, *, quadratic: str = "auto",
                      split_at_c: list[float] | tuple[float, ...] = ()) -> dict:
    """Linear (or quadratic) fit of a, b, c and V vs T over the frames where `phase` is present.

    Returns {param: {"alpha_per_K", "alpha_su", "T_ref_C", "value_at_T_ref", "n_frames",
    "T_range_C", "order", "quadratic_coef"}}: α = (1/p)(dp/dT) at T_ref (mid-range).

    ``split_at_c``: transition temperatures (°C, e.g. an axis merging) inside the phase's range: one
    fit never runs across them. Each side is fitted on its own and listed under "segments" (same
    fields, plus "split_at_C"); the top-level fields are those of the side with most frames.
    """
    T = res.temperature_c
    splits = sorted(float(t) for t in split_at_c if t is not None and math.isfinite(t))
    if splits:
        edges = [-math.inf] + splits + [math.inf]
        segs = [_expansion_fits(res, phase, quadratic, (T > lo) & (T <= hi))
                for lo, hi in zip(edges[:-1], edges[1:])]
        out = {}
        for key in ("a", "b", "c", "vol"):
            parts = [sg[key] for sg in segs if key in sg]
            if not parts:
                continue
            best = max(parts, key=lambda d: d["n_frames"])
            out[key] = dict(best, segments=parts, split_at_C=[rounded(t, 3) for t in splits])
        return out
    return _expansion_fits(res, phase, quadratic, np.ones(T.shape, bool))


def _expansion_fits(res, phase: str, quadratic, window: np.ndarray) -> dict:
    T = res.temperature_c
    out = {}
    for key in ("a", "b", "c", "vol"):
        y = res.values(key, phase)
        s = res.values(key + "_su", phase)
        m = np.isfinite(y) & np.isfinite(T) & window
        if m.sum() < 3 or np.ptp(T[m]) < 1.0:
            continue
        s = np.where(np.isfinite(s) & (s > 0), s, np.nanmedian(s[m]) if np.isfinite(s[m]).any() else 1e-4)
        x, yy, ss = T[m], y[m], s[m]
        tref = 0.5 * (x.min() + x.max())
        c1, cov1, chi1, rss1 = _wfit(x - tref, yy, ss, 1)
        order, coef, cov = 1, c1, cov1
        if quadratic in ("auto", True) and m.sum() >= 6:
            c2, cov2, chi2, rss2 = _wfit(x - tref, yy, ss, 2)
            if quadratic is True or rss2 + math.log(m.sum()) < rss1:
                order, coef, cov = 2, c2, cov2
        p0 = coef[-1]
        slope = coef[-2]
        out[key] = {"alpha_per_K": rounded(slope / p0, 10), "alpha_su": rounded(math.sqrt(max(cov[-2, -2], 0)) / p0, 10),
                    "T_ref_C": rounded(tref, 3), "value_at_T_ref": rounded(p0, 6), "n_frames": int(m.sum()),
                    "T_range_C": [rounded(x.min(), 3), rounded(x.max(), 3)], "order": order,
                    "quadratic_coef": rounded(coef[0], 12) if order == 2 else None}
    return out


def _meanfield(Ts, D, S, near, low_split) -> dict:
    """Fit Δ² = A (T_s − T) to the resolved frames `near`; T_s with its s.u."""
    x, y = Ts[near], D[near] ** 2
    w = 1.0 / np.maximum(2 * D[near] * S[near], 1e-12) ** 2
    A = np.vstack([x, np.ones_like(x)]).T
    Aw = A * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(Aw, y * np.sqrt(w), rcond=None)
    r = y * np.sqrt(w) - Aw @ coef
    chi2 = float(r @ r) / max(len(x) - 2, 1)
    cov = np.linalg.pinv(Aw.T @ Aw) * max(chi2, 1.0)
    slope, icpt = coef
    if not ((slope < 0) == low_split and slope != 0):
        return {}
    g = np.array([icpt / slope ** 2, -1.0 / slope])
    return {"T_meanfield_C": rounded(-icpt / slope, 3),
            "sigma_meanfield_C": rounded(math.sqrt(max(float(g @ cov @ g), 0.0)), 3),
            "meanfield_frames_T_C": [rounded(t, 3) for t in x]}


def axis_merging(res, phase: str, axes: tuple[str, str] = ("b", "c"), *,
                 n_sigma: float = 3.0) -> dict | None:
    """Where two lattice parameters merge (e.g. orthorhombic → tetragonal-like b = c).

    The splitting Δ = |p1 − p2| is *resolved* where Δ > n_sigma·σ(Δ).  The transition temperature is
    bracketed by the last resolved frame and the first unresolved one (order kept along the
    series); T_s is (i) the mid-point of that bracket with σ = bracket/√12, and (ii) a fit
    Δ² = A·(T_s − T) (mean-field order parameter) to the resolved frames, reported with its s.u.
    """
    T = res.temperature_c
    p1, p2 = res.values(axes[0], phase), res.values(axes[1], phase)
    s1, s2 = res.values(axes[0] + "_su", phase), res.values(axes[1] + "_su", phase)
    m = np.isfinite(p1) & np.isfinite(T)
    if m.sum() < 4:
        return None
    rows = sorted(zip(T[m], np.abs(p1[m] - p2[m]),
                      np.hypot(np.nan_to_num(s1[m], nan=0.0), np.nan_to_num(s2[m], nan=0.0))))
    Ts = np.array([r[0] for r in rows])
    D = np.array([r[1] for r in rows])
    S = np.array([max(r[2], 1e-6) for r in rows])
    resolved = D > n_sigma * S
    if resolved.all() or not resolved.any():
        return {"phase": phase, "axes": list(axes), "merged": bool(not resolved.any()),
                "T_merge_C": None, "note": "no merging inside the measured range"
                if resolved.all() else "the axes are equal within s.u. over the whole range"}
    # walk from the split end of the T range to the first unresolved frame: the bracket
    low_split = bool(resolved[0])
    order = np.arange(len(rows)) if low_split else np.arange(len(rows))[::-1]
    first_un = next(int(k) for k in order if not resolved[k])
    last_res = first_un - 1 if low_split else first_un + 1
    out = {"phase": phase, "axes": list(axes), "merged": True,
           "split_side": "low T" if low_split else "high T",
           "T_last_split_C": rounded(Ts[last_res], 3), "T_first_merged_C": rounded(Ts[first_un], 3),
           "splitting_angstrom": [[rounded(t, 3), rounded(d, 6), rounded(s, 6)] for t, d, s in zip(Ts, D, S)]}
    out["T_merge_C"] = rounded(0.5 * (Ts[last_res] + Ts[first_un]), 3)
    out["sigma_C"] = rounded(abs(Ts[first_un] - Ts[last_res]) / math.sqrt(12), 3)
    # resolved frames beyond the bracket (noise or re-entrant splitting) are reported, not used
    beyond = [k for k in order[list(order).index(first_un):] if resolved[k]]
    out["resolved_beyond_bracket_C"] = [rounded(Ts[k], 3) for k in beyond]
    # mean-field fit Δ² = A (T_s − T) on the last (≤ 4) resolved frames before the bracket
    near = [int(k) for k in order[:list(order).index(first_un)]][-4:]
    if len(near) >= 2:
        out.update(_meanfield(Ts, D, S, near, low_split))
    return out


def auto_merging(res, pid: str) -> list[dict]:
    """Axis merging of an orthorhombic phase whose two axes are within 1 % (pseudo-tetragonal)."""
    info = res.phase_info[pid]
    n = info.get("spacegroup_number") or 0
    out = []
    if 16 <= n <= 74:
        lib = dict(zip(("a", "b", "c"), info["library_cell"][:3]))
        for ax in (("a", "b"), ("a", "c"), ("b", "c")):
            p1, p2 = lib[ax[0]], lib[ax[1]]
            if abs(p1 - p2) / max(p1, p2) < 0.01:
                m = axis_merging(res, pid, ax)
                if m is not None:
                    out.append(m)
    return out
