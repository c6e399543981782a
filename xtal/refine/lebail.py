"""Le Bail extraction: free reflection intensities on given cells.

The intensities are partitioned iteratively (Le Bail, Duroy & Fourquet, Mater. Res. Bull. 23
(1988) 447): each reflection takes the share of the observed net intensity that its current
profile has at every point, I_k ← I_k · Σ_i Φ_ik·LP·r_i / Σ_i Φ_ik·LP with r_i = (y_i − b_i) /
(y_calc,i − b_i). Between partitions the cell(s), zero, profile (U, V, W, η) and the Chebyshev
background are refined by least squares at fixed intensities (`engine.Refinement`). The result
is a `LeBailResult`: extracted mult·|F|² per reflection, Rwp, refined cell(s) with s.u. — what the
identification needs to judge a phase by its peak positions alone.
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from xtal.beam import two_theta_from_d
from xtal.identify.prepare import (PreparedData, default_n_background, initial_width,
                                   prepare_pattern, radiation_from)
from xtal.refine.engine import Refinement
from xtal.refine.model import setup_phase, two_theta_dmin
from xtal.refine.result import LeBailPhase, LeBailResult
from xtal.refine.rietveld import RefinementError, _SU, build_params, cell_and_su

#: what `le_bail` refines between partitions unless told otherwise
LE_BAIL_REFINE = ("background", "zero", "cell", "profile")


def partition(ref: Refinement, n_iter: int) -> None:
    """``n_iter`` Le Bail partitions of the observed net intensity over the reflections (peak
    shapes and background held: the profile matrices are built once)."""
    ev = ref.evaluate()
    bg = ref.B @ ev["state"]["bg"]
    net = ref.y - bg
    parts = []
    for i, ps in enumerate(ref.phases):
        _cell, _inten, _po, pk, phi, _unit, _prof = ev["cache"][i]
        den = np.bincount(pk.ridx, weights=pk.lpw * np.asarray(phi.sum(axis=0)).ravel(),
                          minlength=len(ps.hkl))
        upd = den > 1e-12 * max(float(den.max(initial=0.0)), 1e-300)
        parts.append((ps, pk, phi, den, upd))
    for _ in range(n_iter):
        bragg = sum(phi @ (ps.intensities[pk.ridx] * pk.lpw) for ps, pk, phi, _d, _u in parts)
        tiny = 1e-9 * max(float(np.max(np.abs(bragg))), 1e-300)
        ok = bragg > tiny
        ratio = np.clip(np.where(ok, net / np.where(ok, bragg, 1.0), 0.0), 0.0, None)
        for ps, pk, phi, den, upd in parts:
            num = np.bincount(pk.ridx, weights=pk.lpw * (phi.T @ ratio), minlength=den.size)
            ps.intensities = np.where(upd, ps.intensities * num / np.where(upd, den, 1.0),
                                      ps.intensities)


def _prepared(pattern: Any, radiation: Any, wavelength: Any, polarization: Any,
              two_theta_range: tuple[float, float] | None) -> tuple[PreparedData, Any]:
    if isinstance(pattern, PreparedData):
        if radiation is None:
            raise RefinementError("le_bail on PreparedData needs the radiation")
        data = pattern
        if two_theta_range is not None:
            keep = (data.x >= two_theta_range[0]) & (data.x <= two_theta_range[1])
            data = PreparedData(data.x[keep], data.y[keep], data.sigma[keep], data.source)
        return data, radiation
    rad = radiation if radiation is not None else radiation_from(pattern, wavelength, polarization)
    return prepare_pattern(pattern, two_theta_range, rad), rad


def le_bail(pattern: Any, phases: Sequence[Any], radiation: Any = None, *, wavelength: Any = None,
            polarization: Any = None, two_theta_range: tuple[float, float] | None = None,
            refine: Sequence[str] = LE_BAIL_REFINE, n_background: int | None = None,
            fwhm_deg: float | None = None, eta: float = 0.5, start: Any = None,
            max_cycles: int = 12, partitions_per_cycle: int = 40, tol: float = 1e-3) -> LeBailResult:
    """Le Bail fit of ``phases`` (their cells and space groups; atoms are not used) to ``pattern``.

    ``pattern``: an ``xtal.io.Pattern`` or a ``PreparedData`` (then ``radiation`` is required);
    ``radiation``: a ``xtal.beam.Radiation`` (None: from the pattern / ``wavelength``);
    ``refine``: groups among "background", "zero", "cell", "profile"; ``start``: a previous
    Rietveld or Le Bail result or {name: value} for zero/profile/cell strains. Stops when Rwp
    changes by less than ``tol`` (relative) between cycles.
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise RefinementError("no phase for a Le Bail fit")
    data, rad = _prepared(pattern, radiation, wavelength, polarization, two_theta_range)
    setups = [setup_phase(p, two_theta_dmin(float(data.x[-1]), rad)) for p in phases]
    for ps in setups:
        ps.intensities = np.ones(len(ps.hkl))
    nb = n_background or default_n_background(data.x)
    params = build_params(setups, nb, ["scale", *refine], width=fwhm_deg or initial_width(data), eta=eta)
    ref = Refinement(data.x, data.y, data.sigma, setups, rad, params, nb)
    _seed(ref, start)
    ref.linear_start()
    for i, ps in enumerate(setups):          # the scale goes into the free intensities
        sc = ref.params[ref.find("scale", i)[0]]
        ps.intensities = ps.intensities * sc.value
        sc.value, sc.refine = 1.0, False
    last, cycles, converged = math.inf, 0, False
    wy = float(np.sum((ref.y * ref.w_sqrt) ** 2))
    while cycles < max_cycles:
        cycles += 1
        partition(ref, partitions_per_cycle)
        rep = ref.solve(max_iter=3, ftol=1e-5)
        rwp = math.sqrt(rep.cost / wy) if rep is not None else _rwp(ref)
        if abs(last - rwp) < tol * rwp:
            converged = True
            break
        last = rwp
    partition(ref, partitions_per_cycle)
    return _result(ref, cycles, converged, time.perf_counter() - t0)


def _seed(ref: Refinement, start: Any) -> None:
    if start is None:
        return
    if hasattr(start, "params"):
        values = {p["name"]: p["value"] for p in start.params}
    elif hasattr(start, "profile"):
        values = dict(start.profile)
        values["zero"] = start.zero_shift_deg
        for ps, lp in zip(ref.phases, start.phases):
            for k, v in zip(ps.lattice.names, ps.lattice.q_from_cell(lp.cell)):
                values[f"{ps.id}:{k}"] = float(v)
    else:
        values = dict(start)
    for p in ref.params:
        if p.kind != "scale" and p.name in values:
            p.value = float(values[p.name])


def _rwp(ref: Refinement) -> float:
    r = (ref.y - ref.evaluate()["calc"]) * ref.w_sqrt
    return float(math.sqrt(r @ r / np.sum((ref.y * ref.w_sqrt) ** 2)))


def _result(ref: Refinement, cycles: int, converged: bool, elapsed: float) -> LeBailResult:
    stats = ref.statistics()
    su_of = _SU(ref, stats)
    ev, st = stats["ev"], stats["ev"]["state"]
    out = []
    for i, ps in enumerate(ref.phases):
        cidx = ref.find("cell", i)
        cell, csu, vol, _ = cell_and_su(ps, st["ph"][i]["q"], su_of.cov_block(cidx) if cidx else None)
        d = ps.lattice.d_spacings(cell)
        tt = two_theta_from_d(d, ref.rad.primary) + st["g"]["zero"]
        inr = np.isfinite(tt) & (tt >= ref.xr[0]) & (tt <= ref.xr[1])
        out.append(LeBailPhase(ps.id, ps.hkl.astype(int), d, tt, ps.intensities.copy(), tuple(cell),
                               csu, vol, inr))
    zi = ref.find("zero")[0]
    warnings = [f"|correlation| {abs(c):.3f} between {a} and {b}" for a, b, c in stats["high_correlations"]]
    if not converged:
        warnings.append("Rwp still changing after the last Le Bail cycle")
    return LeBailResult(
        phases=out, rwp=stats["rwp"], rp=stats["rp"], rexp=stats["rexp"], chi2=stats["chi2"],
        zero_shift_deg=st["g"]["zero"], zero_shift_su=su_of(zi),
        profile={k: float(st["g"][k]) for k in ("U", "V", "W", "eta")}, x_deg=ref.x, observed=ref.y,
        calculated=ev["calc"], background=ref.B @ st["bg"],
        per_phase={ps.id: c for ps, c in zip(ref.phases, ev["per_phase"])}, cycles=cycles,
        converged=converged, elapsed_s=elapsed, warnings=warnings)
