"""Sequential Rietveld refinement of a series and parametric lattice(T).

`refine_sequential` refines every frame with the same parameter set, each frame seeded from the
refined neighbour (forward or reversed order), and returns an ``xarray.Dataset`` with dims
(frame, phase, param) plus the cell (frame, phase, axis), the global parameters and the agreement
per frame, with a ``temperature_c`` coordinate. `parametric_cell` fits each lattice parameter of
one phase as a low-order polynomial in T over a temperature range (weighted by the s.u., the
covariance scaled by max(χ², 1)) and gives the expansion coefficients with s.u.; `axis_merging`
finds where two axes merge (``xtal.series.lattice.axis_merging`` on the refined values).
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import xarray as xr

from xtal.refine.rietveld import rietveld
from xtal.series.source import FrameSource, to_pattern

CELL_AXES = ("a", "b", "c", "alpha", "beta", "gamma", "volume")
SEQ_REFINE = ("scale", "background", "zero", "cell", "profile")


def refine_sequential(series: Any, phases: Sequence[Any], *, wavelength: Any = None,
                      polarization: Any = None, temperatures: Sequence[float] | None = None,
                      instrument: Any = None, two_theta_range: tuple[float, float] | None = None,
                      refine: Sequence[str] = SEQ_REFINE, reverse: bool = False,
                      n_background: int | None = None, start: Any = None,
                      max_iter: int = 30, **kw: Any) -> xr.Dataset:
    """Sequential Rietveld refinement of ``series`` (DataArray from ``read_series``, a directory or
    a list of patterns) with ``phases``; each frame starts from its refined neighbour.

    ``reverse``: refine from the last frame to the first (e.g. start in the high-symmetry phase).
    ``start``: seed of the first refined frame (a `RietveldResult` or {name: value}); without it
    the first frame is refined from the CIFs in stages. Extra keywords go to `rietveld`.
    """
    t0 = time.perf_counter()
    src = FrameSource(series, wavelength=wavelength, temperatures=temperatures, instrument=instrument)
    order = list(range(src.n))[::-1] if reverse else list(range(src.n))
    results: dict[int, Any] = {}
    prev = start
    for i in order:
        pat = to_pattern(src.fetch([i])[i], i, [], 0.05)
        res = rietveld(pat, phases, wavelength=wavelength, polarization=polarization,
                       two_theta_range=two_theta_range, refine=refine, n_background=n_background,
                       start=prev, max_iter=max_iter, **kw)
        res.temperature_c = getattr(pat, "temperature_c", None)
        results[i] = res
        prev = res
    ds = to_dataset([results[i] for i in range(src.n)], [str(p.id) for p in phases])
    ds.attrs.update(order="reversed" if reverse else "forward", refine=",".join(refine),
                    elapsed_s=time.perf_counter() - t0)
    return ds


def _split(name: str, pids: list[str]) -> tuple[str | None, str]:
    for pid in pids:
        if name.startswith(pid + ":"):
            return pid, name[len(pid) + 1:]
    return None, name


def to_dataset(results: Sequence[Any], pids: list[str]) -> xr.Dataset:
    """Frame × phase × parameter Dataset from per-frame `RietveldResult` (NaN where absent)."""
    n = len(results)
    pnames: list[str] = []
    gnames: list[str] = []
    for r in results:
        for p in r.params:
            pid, short = _split(p["name"], pids)
            lst = pnames if pid else gnames
            if short not in lst:
                lst.append(short)
    val = np.full((n, len(pids), len(pnames)), np.nan)
    su = np.full_like(val, np.nan)
    gval = np.full((n, len(gnames)), np.nan)
    gsu = np.full_like(gval, np.nan)
    cell = np.full((n, len(pids), len(CELL_AXES)), np.nan)
    csu = np.full_like(cell, np.nan)
    for k, r in enumerate(results):
        for p in r.params:
            pid, short = _split(p["name"], pids)
            s = p["su"] if p["su"] is not None else np.nan
            if pid:
                val[k, pids.index(pid), pnames.index(short)] = p["value"]
                su[k, pids.index(pid), pnames.index(short)] = s
            else:
                gval[k, gnames.index(short)] = p["value"]
                gsu[k, gnames.index(short)] = s
        for ph in r.phases:
            j = pids.index(ph.id)
            cell[k, j] = list(ph.cell) + [ph.volume]
            csu[k, j] = [np.nan if v is None else v for v in ph.cell_su] + \
                [np.nan if ph.volume_su is None else ph.volume_su]
    temps = np.array([np.nan if getattr(r, "temperature_c", None) is None else r.temperature_c
                      for r in results], dtype=float)
    return xr.Dataset(
        {"value": (("frame", "phase", "param"), val), "su": (("frame", "phase", "param"), su),
         "global_value": (("frame", "global_param"), gval), "global_su": (("frame", "global_param"), gsu),
         "cell": (("frame", "phase", "axis"), cell), "cell_su": (("frame", "phase", "axis"), csu),
         "rwp": ("frame", np.array([r.rwp for r in results])),
         "chi2": ("frame", np.array([r.chi2 for r in results])),
         "converged": ("frame", np.array([r.converged for r in results]))},
        coords={"frame": np.arange(n), "phase": pids, "param": pnames, "global_param": gnames,
                "axis": list(CELL_AXES), "temperature_c": ("frame", temps),
                "temperature_k": ("frame", temps + 273.15),
                "source": ("frame", [str(r.source) for r in results])})


def parametric_cell(ds: xr.Dataset, phase: str, *, t_range_k: tuple[float, float] | None = None,
                    order: int = 1, axes: Sequence[str] = ("a", "b", "c", "volume")) -> dict:
    """Lattice parameters of ``phase`` as polynomials in T (K) over ``t_range_k``, weighted by s.u.

    Returns {axis: {"T0_K", "value_at_T0", "value_su", "coefficients" (highest power first, in
    (T − T0)), "coefficients_su", "alpha_per_K" ((1/p)·dp/dT at T0), "alpha_su", "chi2", "n"}}.
    """
    T = np.asarray(ds["temperature_k"].values, dtype=float)
    out = {"phase": phase, "order": order}
    for ax in axes:
        y = np.asarray(ds["cell"].sel(phase=phase, axis=ax).values, dtype=float)
        s = np.asarray(ds["cell_su"].sel(phase=phase, axis=ax).values, dtype=float)
        m = np.isfinite(y) & np.isfinite(T) & np.isfinite(s) & (s > 0)
        if t_range_k is not None:
            m &= (T >= t_range_k[0]) & (T <= t_range_k[1])
        if m.sum() < order + 2:
            continue
        t0 = float(np.mean(T[m]))
        coef, cov = np.polyfit(T[m] - t0, y[m], order, w=1.0 / s[m], cov="unscaled")
        resid = (y[m] - np.polyval(coef, T[m] - t0)) / s[m]
        chi2 = float(resid @ resid) / max(int(m.sum()) - order - 1, 1)
        cov = cov * max(chi2, 1.0)
        csu = np.sqrt(np.diag(cov))
        p0, slope = coef[-1], coef[-2]
        # α = slope/p0 with its s.u. from the covariance of (slope, p0)
        g = np.array([1.0 / p0, -slope / p0 ** 2])
        c2 = cov[np.ix_([-2, -1], [-2, -1])]
        out[ax] = {"T0_K": t0, "value_at_T0": float(p0), "value_su": float(csu[-1]),
                   "coefficients": [float(v) for v in coef], "coefficients_su": [float(v) for v in csu],
                   "alpha_per_K": float(slope / p0), "alpha_su": float(math.sqrt(max(g @ c2 @ g, 0.0))),
                   "chi2": chi2, "n": int(m.sum()),
                   "T_range_K": [float(T[m].min()), float(T[m].max())]}
    return out


class _SeriesView:
    """What ``xtal.series.lattice.axis_merging`` reads, from a sequential-refinement Dataset."""

    def __init__(self, ds: xr.Dataset):
        self.ds = ds
        self.temperature_c = np.asarray(ds["temperature_c"].values, dtype=float)

    def values(self, key: str, phase: str) -> np.ndarray:
        var = "cell_su" if key.endswith("_su") else "cell"
        ax = key[:-3] if key.endswith("_su") else key
        return np.asarray(self.ds[var].sel(phase=phase, axis=ax).values, dtype=float)


def axis_merging(ds: xr.Dataset, phase: str, axes: tuple[str, str] = ("b", "c"),
                 n_sigma: float = 3.0) -> dict | None:
    """Where two refined axes merge (``xtal.series.lattice.axis_merging``; temperatures in °C)."""
    from xtal.series.lattice import axis_merging as merging

    return merging(_SeriesView(ds), phase, axes, n_sigma=n_sigma)
