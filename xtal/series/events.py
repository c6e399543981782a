"""Events of a series: a phase appears / disappears, first-order volume jumps, amorphisation.

Onset/offset per phase: first/last frame present; the event is located where the phase's
abundance ``S·(ZMV)`` crosses half its largest value in that run.  A sharp change is interpolated
between the two frames that bracket it, σ from the frame spacing (1/√12 of a frame) and the fit; a
gradual one (a cross-fade over many frames) by a line through the frames between 25 % and 75 % of
that value, σ from the line's scatter.  Jumps: an isosymmetric pair (one phase disappears as the
other appears with a volume within ±25 %), or a step of the volume within one phase's run.
Amorphisation: the amorphous fraction crossing half of its maximum.  Events in an isothermal hold
(the temperatures of the frames around them within HOLD_TOLERANCE_C) are located by frame and
time.
"""
from __future__ import annotations

import math

import numpy as np

from xtal.series.result import EVENT_KINDS

__all__ = ["detect_events", "rounded", "HOLD_TOLERANCE_C"]

#: span of T (°C) over the frames around an event below which it is located in time (isothermal
#: hold): HOLD_WINDOW_FRAMES usable frames on each side, so that a fine ramp (a fraction of a degree
#: per frame) is not taken for a hold
HOLD_TOLERANCE_C = 0.5
#: usable frames on each side of an event whose temperatures decide whether it lies in a hold
HOLD_WINDOW_FRAMES = 5


def rounded(v, nd=4):
    """v rounded to nd decimals as a JSON-native float (None when missing or not finite)."""
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def _interp_at(arr: np.ndarray, pos: float) -> float:
    i = int(math.floor(pos))
    f = pos - i
    if i + 1 >= arr.size:
        return float(arr[-1])
    if i < 0:
        return float(arr[0])
    a, b = arr[i], arr[i + 1]
    if not (math.isfinite(a) and math.isfinite(b)):
        return float(a if math.isfinite(a) else b)
    return float(a + f * (b - a))


def _crossing(w: np.ndarray, wsu: np.ndarray, k_abs: int, k_pres: int, level: float):
    """Fractional frame position where w crosses level/2 on the present side of the edge
    (k_abs absent, k_pres present), its σ in frames, and the two frames that bracket it.

    The first frame from the edge at or above half the level is found (noise that dips on the way
    is stepped over).  A gradual change — at least two frames each side of it between 25 % and
    75 % of the level — is located by a straight line fitted to those frames, symmetric about
    the crossing, σ from that line's scatter; a sharp one by interpolation between the two frames
    that bracket it, σ from the frame spacing (1/√12 frame) and the s.u. of w."""
    half = 0.5 * level
    step = 1 if k_pres > k_abs else -1
    j = k_pres
    while 0 <= j + step < w.size and np.isfinite(w[j + step]) and w[j] < half:
        j += step
    fit = _band_crossing(w, k_abs, j, step, level)
    if fit is not None:
        pos, sig = fit
        lo = int(min(max(math.floor(pos), 0), w.size - 2))
        return pos, sig, lo, lo + 1
    k = j - step
    wk = w[k] if np.isfinite(w[k]) else 0.0
    wj = w[j]
    dw = wj - wk
    f = (half - wk) / dw if dw != 0 else 0.5
    f = float(np.clip(f, 0.0, 1.0))
    pos = k + f * (j - k)
    su = wsu[j] if np.isfinite(wsu[j]) else 0.0
    sig = math.sqrt(1.0 / 12.0 + (su / abs(dw)) ** 2 if dw != 0 else 1.0 / 12.0)
    return pos, min(sig, 1.0), k, j


def _band_crossing(w: np.ndarray, k_abs: int, j: int, step: int, level: float):
    """(position, σ) of the half-level crossing from a line fitted to the frames between 25 % and
    75 % of the level, as many on each side of frame j (the first at or above half), walking from
    the edge k_abs until w first exceeds 75 %; None for fewer than two frames on a side."""
    before, after = [], []
    i = k_abs + step
    while 0 <= i < w.size and np.isfinite(w[i]) and w[i] <= 0.75 * level:
        if w[i] >= 0.25 * level:
            (before if (i - j) * step < 0 else after).append(i)
        i += step
    m = min(len(before), len(after))
    if m < 2:
        return None
    x = np.array(before[len(before) - m:] + after[:m], dtype=float)
    y = w[x.astype(int)]
    xm, ym = float(np.mean(x)), float(np.mean(y))
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym))) / sxx
    if slope * step <= 0:
        return None
    pos = xm + (0.5 * level - ym) / slope
    if not (min(x) - 1 <= pos <= max(x) + 1):
        return None
    resid = y - (ym + slope * (x - xm))
    s2 = float(np.sum(resid ** 2)) / max(x.size - 2, 1)
    var = (s2 / x.size + (pos - xm) ** 2 * s2 / sxx) / slope ** 2
    return pos, math.sqrt(1.0 / 12.0 + var)


def _locate(res, pos: float, sig: float, k: int, j: int, window: np.ndarray) -> dict:
    """T, time and their σ at fractional frame `pos` (σ `sig` frames, frames k, j bracketing it);
    in a hold when the temperatures of the `window` frames around it span less than
    HOLD_TOLERANCE_C."""
    T, ts = res.temperature_c, res.time_s
    t_c = _interp_at(T, pos)
    dT = abs(T[j] - T[k]) if np.isfinite(T[j]) and np.isfinite(T[k]) else float("nan")
    dt = abs(ts[j] - ts[k]) if np.isfinite(ts[j]) and np.isfinite(ts[k]) else float("nan")
    tw = T[window]
    tw = tw[np.isfinite(tw)]
    span = float(np.max(tw) - np.min(tw)) if tw.size >= 2 else float("nan")
    return {"frame_position": round(pos, 3), "T_C": rounded(t_c),
            "sigma_C": rounded(sig * dT) if math.isfinite(dT) else None,
            "time_s": rounded(_interp_at(ts, pos)) if np.isfinite(ts).any() else None,
            "sigma_s": rounded(sig * dt) if math.isfinite(dt) else None,
            "isothermal": bool(math.isfinite(span) and span < HOLD_TOLERANCE_C)}


def _locate_crossing(res, kidx, w, wsu, k_abs, k_pres, level) -> dict:
    """Locate the crossing between usable frames k_abs and k_pres (positions in kidx)."""
    pos, sig, k, jj = _crossing(w, wsu, k_abs, k_pres, level)
    c = int(round(pos))
    window = kidx[max(0, c - HOLD_WINDOW_FRAMES):c + HOLD_WINDOW_FRAMES + 1]
    return _locate(res, _interp_at(kidx.astype(float), pos), sig, int(kidx[k]), int(kidx[jj]),
                   window)


def _runs(pres: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of the runs of True in pres."""
    d = np.diff(np.r_[0, pres.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def _onsets(res, kidx: np.ndarray, j: int, pid: str) -> tuple[list[dict], list[tuple[int, int]]]:
    """appears / disappears events of one phase and its runs (frame indices)."""
    T = res.temperature_c
    mass = res.phase_info[pid]["cell_mass_dalton"]
    pres = res.present[kidx, j]
    scale, su = res.values("scale", pid)[kidx], res.values("scale_su", pid)[kidx]
    vol = res.values("vol", pid)[kidx]
    # abundance S·(ZMV) on the usable frames
    ab = np.where(pres, scale * mass * vol, 0.0)
    absu = np.where(pres, np.nan_to_num(su, nan=0.0) * mass * vol, 0.0)
    ev = []
    rr = _runs(pres)
    for a, b in rr:
        # level of the change: the phase's largest abundance in this run (a slow cross-fade
        # reaches it only at the end of the window; the midpoint is where it is half way)
        lvl = float(np.max(ab[a:b + 1]))
        if a > 0:
            loc = _locate_crossing(res, kidx, ab, absu, a - 1, a, lvl)
            ev.append(dict({"phase": pid, "kind": "appears", "frame": int(kidx[a]),
                            "first_frame_T_C": rounded(T[kidx[a]])}, **loc))
        if b < kidx.size - 1:
            loc = _locate_crossing(res, kidx, ab, absu, b + 1, b, lvl)
            ev.append(dict({"phase": pid, "kind": "disappears", "frame": int(kidx[b]),
                            "last_frame_T_C": rounded(T[kidx[b]])}, **loc))
    return ev, [(int(kidx[a]), int(kidx[b])) for a, b in rr]


def _pair_jumps(res, ev: list[dict]) -> list[dict]:
    """First-order jumps between an isosymmetric pair: one disappears as the other appears."""
    out = []
    app = [e for e in ev if e["kind"] == "appears"]
    dis = [e for e in ev if e["kind"] == "disappears"]
    for e_in in app:
        for e_out in dis:
            p, q = e_out["phase"], e_in["phase"]
            if p == q or abs(e_in["frame"] - e_out["frame"]) > 3:
                continue
            ip, iq = res.phase_info[p], res.phase_info[q]
            if ip.get("spacegroup_number") is None or ip.get("spacegroup_number") != iq.get("spacegroup_number"):
                continue
            vp = _edge_volume(res, p, e_out["frame"], side=-1)
            vq = _edge_volume(res, q, e_in["frame"], side=+1)
            if vp is None or vq is None or not (0.8 < vq / vp < 1.25):
                continue
            both = e_in["T_C"] is not None and e_out["T_C"] is not None
            out.append({"phase": q, "kind": "jump", "from_phase": p, "frame": e_in["frame"],
                        "T_C": rounded(0.5 * (e_in["T_C"] + e_out["T_C"])) if both else e_in["T_C"],
                        "sigma_C": rounded(max(e_in.get("sigma_C") or 0, e_out.get("sigma_C") or 0)),
                        "time_s": e_in.get("time_s"), "sigma_s": e_in.get("sigma_s"),
                        "volume_change_pct": rounded(100 * (vq / vp - 1), 3),
                        "isosymmetric": True})
    return out


def _amorphisation(res, kidx: np.ndarray) -> list[dict]:
    """The amorphous fraction crossing half of its maximum, after a crystalline start."""
    afk = res.dataset["amorphous_fraction"].values[kidx]
    if not np.isfinite(afk).any():
        return []
    amax = float(np.nanmax(afk))
    first = afk[np.isfinite(afk)][0]
    if not (amax >= 0.3 and amax - first >= 0.25):
        return []
    hit = np.flatnonzero(np.nan_to_num(afk, nan=0) >= 0.5 * amax)
    m = int(hit[0]) if hit.size else 0
    if m <= 0:
        return []
    a_ = np.nan_to_num(afk, nan=0.0)
    loc = _locate_crossing(res, kidx, a_, np.zeros_like(a_), m - 1, m, amax)
    # Bragg collapse: frames before the halo starts to rise vs frames once it is complete
    br = res.dataset["bragg_intensity"].values[kidx]
    low = np.flatnonzero(a_[:m] < 0.25 * amax)
    m0 = int(low[-1]) + 1 if low.size else m
    full = np.flatnonzero(a_ >= 0.9 * amax)
    m1 = int(full[full >= m][0]) if (full >= m).any() else m
    before = float(np.nanmedian(br[max(0, m0 - 5):m0])) if m0 > 0 else float("nan")
    after = float(np.nanmedian(br[m1:m1 + 5]))
    return [dict({"phase": "amorphous", "kind": "amorphous", "frame": int(kidx[m]),
                  "amorphous_fraction_max": rounded(amax, 3),
                  "bragg_ratio_after_before": rounded(after / before, 3)
                  if before and math.isfinite(before) and before > 0 else None}, **loc)]


def detect_events(res) -> list[dict]:
    """appears / disappears / jump / amorphous events of a `SeriesResult` (see module docstring)."""
    kidx = np.flatnonzero(res.status == "ok")
    if kidx.size == 0:
        return []
    ev: list[dict] = []
    runs: dict[str, list[tuple[int, int]]] = {}
    for j, pid in enumerate(res.phase_ids):
        e, runs[pid] = _onsets(res, kidx, j, pid)
        ev.extend(e)
    ev.extend(_pair_jumps(res, ev))
    # ... or a step of the volume within one phase's run
    for pid in res.phase_ids:
        for a, b in runs[pid]:
            ev.extend(_volume_steps(res, pid, a, b))
    ev.extend(_amorphisation(res, kidx))
    ev.sort(key=lambda e: (e["frame"], EVENT_KINDS.index(e["kind"])))
    return ev


def _edge_volume(res, pid, frame, side):
    """Volume of `pid` at the edge of its run near `frame` (the first present frame on its side)."""
    v = res.values("vol", pid)
    k = np.flatnonzero(np.isfinite(v[frame::side] if side > 0 else v[frame::-1]))
    return float(v[frame + side * k[0]]) if k.size else None


def _volume_steps(res, pid, a, b) -> list[dict]:
    """Steps in V within a run larger than 8 robust σ of the frame-to-frame change and 0.2 %."""
    v = res.values("vol", pid)
    T, ts = res.temperature_c, res.time_s
    idx = [k for k in range(a, b + 1) if np.isfinite(v[k])]
    if len(idx) < 6:
        return []
    vv = v[idx]
    d = np.diff(vv) / vv[:-1]
    med = np.median(d)
    mad = 1.4826 * np.median(np.abs(d - med)) + 1e-12
    out = []
    for m in np.flatnonzero((np.abs(d - med) > 8 * mad) & (np.abs(d) > 0.002)):
        k1, k2 = idx[m], idx[m + 1]
        out.append({"phase": pid, "kind": "jump", "frame": int(k2),
                    "T_C": rounded(0.5 * (T[k1] + T[k2])), "sigma_C": rounded(abs(T[k2] - T[k1]) / math.sqrt(12)),
                    "time_s": rounded(0.5 * (ts[k1] + ts[k2])),
                    "volume_change_pct": rounded(100 * d[m], 3), "isosymmetric": True,
                    "within_phase": True})
    return out
