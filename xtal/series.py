"""Thermal series: per-frame whole-pattern fits with continuity, phase map, events, lattice vs T.

`analyse_series` turns an in-situ series (``xarray.DataArray`` frame × two_theta_deg, a path that
`xtal.io` reads, or a sequence of `Pattern`) into a `SeriesResult`:

1. **Per-frame fits with continuity** (`xtal.identify.fit_phases`).  Frame *i* is fitted with the
   *active* phase set, starting from frame *i−1*'s solution (cells, zero shift, profile): lattice
   parameters are carried and refined frame to frame.  Every ``screen_every`` frames (and whenever the
   fit quality drops) a *screen* fit of all library phases — linear scales, isotropic lattice carried
   from the last frame where each phase was seen, profile fixed — gives evidence for phases that are
   not active; a phase enters the active set when its screen evidence is significant, and leaves when
   its own scale is no longer significant.
2. **Phase presence by Viterbi** (two-state HMM per phase).  The evidence for "present" in a frame is
   the log-likelihood ratio ``½(z² − z0²)`` with ``z = scale/su`` (the Δχ² of dropping one linear
   parameter, su scaled by √χ²ᵣ) and ``z0² = ln(n)·(1 + n_lattice)`` the BIC price of the phase's
   parameters; a phase whose Bragg share is below ``min_share`` counts as absent.  Every change of
   state costs ``switch_penalty`` (log units), so a phase appears or disappears only when the data
   demand it: a single-frame blip needs ``½(z² − z0²) > 2·switch_penalty``.  Frames whose final phase
   set differs from what was fitted are refitted (seeded from their neighbours).
3. **Events**: onset/offset per phase (first/last frame present; midpoint where the phase's abundance
   ``S·(ZMV)`` crosses half its largest value in that run, with σ from the frame spacing (1/√12 of
   a frame) and the fit),
   first-order volume jumps (isosymmetric phase pairs, or a step within one phase), amorphisation
   (amorphous fraction crossing half its maximum: Bragg collapse + halo).  Events in an isothermal
   hold are located by frame and time.
4. **Thermal expansion** from weighted linear (and quadratic, when it lowers the BIC) fits of a, b, c,
   V vs T within each phase's range.

Parallelism (``workers > 1`` or a Dask ``scheduler``): frames are cut into contiguous chunks; each
chunk is seeded independently on its first frame (all phases, lattice from an isotropic strain
screen) and chained inside the chunk; chunks run in a ``concurrent.futures.ProcessPoolExecutor`` (or
on a Dask distributed cluster).  Chunks are then reconciled: at each boundary the first frames of
chunk k+1 are refitted from chunk k's last solution until they agree with it, and the Viterbi pass
runs over the whole series.  Continuity is kept at the cost of a few refits per chunk.

Memory is flat in the number of frames: frames are read chunk by chunk (a lazily opened DataArray
is sliced, a path is streamed with `xtal.io.iter_series_frames`), and only small per-frame arrays
(plus an optional heat-map image binned to ``heatmap_bins`` points per frame) are kept.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from xtal.errors import SeriesError, XtalError

__all__ = [
    "SeriesResult", "analyse_series", "render_series_markdown", "viterbi_presence",
    "thermal_expansion", "axis_merging", "EVENT_KINDS",
]

EVENT_KINDS = ("appears", "disappears", "jump", "amorphous")
LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
#: |ΔT| (°C) between bracketing frames below which an event is located in time (isothermal hold)
HOLD_TOLERANCE_C = 0.5


# ----------------------------------------------------------------------------------------------
# options and per-frame records
# ----------------------------------------------------------------------------------------------
@dataclass
class SeriesOptions:
    wavelength: Any = None
    polarization: Any = None          # beam polarisation for LP (None: unpolarised lab beam)
    screen_every: int = 4
    switch_penalty: float = 8.0
    min_share: float = 0.004          # minimum share of the Bragg intensity of a present phase
    enter_z: float = 8.0              # screen z for a phase to join the active set
    presence_z: float = 6.0           # z below which a frame counts as evidence of absence
    drop_z: float = 3.0               # active-phase z below which it leaves the active set
    rwp_jump: float = 1.15            # screen / refit when Rwp exceeds this × running median
    background: str = "chebyshev"
    n_background: int | None = None
    max_strain: float = 0.05
    max_nfev: int | None = None
    two_theta_range: tuple[float, float] | None = None
    heatmap_bins: int = 600
    max_nan_fraction: float = 0.05
    refine_lattice: Any = True
    max_step_strain: float = 0.005    # largest credible change of a, b or c between frames


@dataclass
class FrameRecord:
    """Small per-frame result (what is kept in memory for every frame)."""

    index: int
    temperature_c: float
    time_s: float
    segment: str
    source: str
    status: str = "ok"               # "ok" | "skipped"
    reason: str = ""
    fitted: tuple[str, ...] = ()
    rwp: float = float("nan")
    chi2: float = float("nan")
    bragg_intensity: float = float("nan")
    amorphous_fraction: float = float("nan")
    zero_shift_deg: float = float("nan")
    profile: dict = field(default_factory=dict)
    n_points: int = 0
    phase: dict = field(default_factory=dict)   # id -> dict(scale, scale_su, wf, wf_su, cell, cell_su, vol, vol_su, fwhm, z)
    screen_z: dict = field(default_factory=dict)  # id -> z of the screen (only on screened frames)
    heat: np.ndarray | None = None
    notes: list = field(default_factory=list)
    entered: list = field(default_factory=list)   # phases that joined the active set here


# ----------------------------------------------------------------------------------------------
# frame sources
# ----------------------------------------------------------------------------------------------
class _Source:
    """Uniform access to frames: iterate (streaming) and, when possible, fetch by index."""

    def __init__(self, series, *, wavelength=None, temperatures=None, instrument=None):
        import xarray as xr

        from xtal import io as patterns

        self.patterns = patterns
        self.da = None
        self.paths: list | None = None
        self.items: list | None = None
        self.attrs: dict = {}
        self.wavelength = wavelength
        self.temperatures = temperatures
        self.instrument = instrument
        self.notes: list[str] = []
        if isinstance(series, xr.DataArray):
            if series.ndim != 2 or series.dims[0] != "frame":
                raise SeriesError(f"series DataArray has dims {series.dims}; need ('frame', axis)")
            self.da = series
            self.attrs = dict(series.attrs)
            self.n = int(series.sizes["frame"])
            if temperatures is not None:
                t = np.asarray(list(temperatures), float)
                if t.size != self.n:
                    raise SeriesError(f"{t.size} temperatures given for {self.n} frames")
                self.temps = t
            else:
                self.temps = None
        elif isinstance(series, (str, Path)):
            p = Path(series)
            if p.is_file() and p.suffix.lower() in (".nc", ".nc4", ".h5", ".hdf5", ".nxs", ".hdf"):
                da = patterns.read_series(p, temperatures=temperatures, wavelength_angstrom=wavelength,
                                          lazy=True)
                self.__init__(da, wavelength=wavelength)
                return
            self.paths = patterns.list_frames(p)
            if self.paths is None:
                self.items = list(patterns.iter_series_frames(p, temperatures=temperatures,
                                                              wavelength_angstrom=wavelength))
                self.n = len(self.items)
            else:
                self.n = len(self.paths)
        elif isinstance(series, (list, tuple)):
            if series and all(isinstance(s, (str, Path)) for s in series):
                self.paths = [Path(s) for s in series]
                self.n = len(self.paths)
            else:
                self.items = list(series)
                self.n = len(self.items)
        else:
            raise SeriesError(f"cannot analyse a series given as {type(series).__name__}; give a "
                              "DataArray, a path or a list of Patterns")
        if self.n == 0:
            raise SeriesError("the series has no frames")

    def _frame_from_da(self, i: int):
        da = self.da
        row = da.isel(frame=i)
        y = np.asarray(row.values, float)
        axis = da.dims[1]
        if not hasattr(self, "_cc"):
            # per-frame coordinates and the x axis, read once (small; the intensities stay lazy)
            self._cc = {k: np.asarray(v.values) for k, v in da.coords.items()
                        if v.ndim == 1 and v.dims[0] == "frame"}
            self._x = np.asarray(da.coords[axis].values, float)
        x = self._x
        c = self._cc

        def opt(name):
            if name in c:
                try:
                    v = float(c[name][i])
                except (TypeError, ValueError):
                    return None
                return v if math.isfinite(v) else None
            return None

        sig = None
        if "sigma" in da.coords:
            sig = np.asarray(da.coords["sigma"].isel(frame=i).values, float)   # one row (lazy files)
        meta = {}
        if "segment" in c:
            meta["segment"] = str(c["segment"][i])
        src = str(c["source"][i]) if "source" in c else f"frame {i}"
        t = self.temps[i] if self.temps is not None else opt("temperature_c")
        return dict(x=x, y=y, sigma=sig, axis=axis, temperature_c=t, time_s=opt("time_s"),
                    source=src, meta=meta,
                    wavelength_angstrom=self.attrs.get("wavelength_angstrom"),
                    wavelength2_angstrom=self.attrs.get("wavelength2_angstrom"),
                    ka2_ratio=self.attrs.get("ka2_ratio"))

    def _frames_from_paths(self, idx: Sequence[int]):
        """Read frames idx (sorted) of a file list; unreadable files become error dicts."""
        out = {}
        todo = list(idx)
        temps = self.temperatures
        while todo:
            files = [self.paths[i] for i in todo]
            tsel = None
            if temps is not None and not isinstance(temps, (str, Path)):
                tv = list(temps)
                if len(tv) != self.n:
                    raise SeriesError(f"{len(tv)} temperatures given for {self.n} frames")
                tsel = [tv[i] for i in todo]
            it = self.patterns.iter_series_frames(
                files, temperatures=tsel if tsel is not None else temps,
                wavelength_angstrom=self.wavelength, instrument=self.instrument)
            k = 0
            try:
                for p in it:
                    out[todo[k]] = p
                    k += 1
                todo = []
            except SeriesError:
                raise
            except XtalError as exc:
                from xtal.errors import PatternError, WavelengthMismatchError
                if not isinstance(exc, PatternError) or isinstance(exc, WavelengthMismatchError):
                    raise
                out[todo[k]] = {"error": f"{type(exc).__name__}: {exc}", "source": str(files[k])}
                todo = todo[k + 1:]
        return out

    def fetch(self, idx: Sequence[int]) -> dict[int, Any]:
        """Frames by index: dict index -> Pattern, dict of arrays, or {"error": ...}."""
        idx = sorted(set(int(i) for i in idx))
        if self.da is not None:
            return {i: self._frame_from_da(i) for i in idx}
        if self.items is not None:
            return {i: self.items[i] for i in idx}
        return self._frames_from_paths(idx)


def _to_pattern(item, i: int, notes: list, max_nan_fraction: float):
    """A Pattern from a fetched item, masking a few NaN points; raises XtalError when unusable."""
    from xtal.io import Pattern

    if isinstance(item, dict) and "error" in item:
        raise SeriesError(item["error"], path=item.get("source"))
    if isinstance(item, dict):
        x, y, s = item["x"], item["y"], item["sigma"]
        bad = ~np.isfinite(y) | ~np.isfinite(x)
        if s is not None:
            bad |= ~np.isfinite(s)
        if bad.all():
            raise SeriesError(f"frame {i}: no finite intensity (all NaN)", path=item.get("source"))
        frac = bad.mean()
        if frac > max_nan_fraction:
            raise SeriesError(f"frame {i}: {100 * frac:.1f} % of the points are NaN/inf "
                              f"(more than {100 * max_nan_fraction:.0f} %)", path=item.get("source"))
        if bad.any():
            notes.append(f"frame {i}: {int(bad.sum())} NaN/inf points masked")
            x, y = x[~bad], y[~bad]
            s = s[~bad] if s is not None else None
        return Pattern(x=x, intensity=y, sigma=s, axis=item["axis"],
                       wavelength_angstrom=item["wavelength_angstrom"],
                       wavelength2_angstrom=item["wavelength2_angstrom"], ka2_ratio=item["ka2_ratio"],
                       temperature_c=item["temperature_c"], time_s=item["time_s"],
                       source=item["source"], frame=i, meta=item["meta"])
    return item


# ----------------------------------------------------------------------------------------------
# fitting one frame
# ----------------------------------------------------------------------------------------------
def _start_from(cells: dict, ids: Sequence[str], zero: float, profile: dict):
    """A minimal `start` for fit_phases: cells of `ids`, zero shift and profile."""
    return SimpleNamespace(
        phases=[SimpleNamespace(id=i, cell=tuple(cells[i])) for i in ids if i in cells],
        zero_shift_deg=float(zero) if math.isfinite(zero) else 0.0,
        profile=dict(profile))


def _z(pf) -> float:
    if pf.scale is None or pf.scale <= 0:
        return 0.0
    if not pf.scale_su or not math.isfinite(pf.scale_su) or pf.scale_su <= 0:
        return 0.0
    return float(pf.scale / pf.scale_su)


def _phase_dict(pf, share: float) -> dict:
    su = [float(v) if v is not None else float("nan") for v in pf.cell_su]
    return {
        "scale": float(pf.scale), "scale_su": float(pf.scale_su) if pf.scale_su else float("nan"),
        "wf": float(pf.weight_fraction) if pf.weight_fraction is not None else float("nan"),
        "wf_su": float(pf.weight_fraction_su) if pf.weight_fraction_su is not None else float("nan"),
        "cell": [float(v) for v in pf.cell], "cell_su": su,
        "vol": float(pf.volume_angstrom3),
        "vol_su": float(pf.volume_su) if pf.volume_su is not None else float("nan"),
        "fwhm": float(pf.fwhm_deg) if pf.fwhm_deg is not None else float("nan"),
        "z": _z(pf), "share": float(share),
        "bragg": float(getattr(pf, "bragg_intensity", float("nan"))),
    }


def _shares(fit) -> dict[str, float]:
    tot = sum(max(getattr(p, "bragg_intensity", 0.0), 0.0) for p in fit.phases)
    return {p.id: (max(getattr(p, "bragg_intensity", 0.0), 0.0) / tot if tot > 0 else 0.0)
            for p in fit.phases}


def _heat(pattern, bins: int, lo_hi: tuple[float, float] | None) -> np.ndarray | None:
    if not bins:
        return None
    x = np.asarray(pattern.two_theta_deg(), float)
    y = np.asarray(pattern.intensity, float)
    lo, hi = lo_hi if lo_hi else (x[0], x[-1])
    edges = np.linspace(lo, hi, bins + 1)
    s, _ = np.histogram(x, edges, weights=y)
    n, _ = np.histogram(x, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s / n).astype(np.float32)


class _Chain:
    """Sequential fitting of frames with continuity (one chain = one chunk)."""

    def __init__(self, phases: list, opts: SeriesOptions):
        self.phases = {p.id: p for p in phases}
        self.order = [p.id for p in phases]
        self.opts = opts
        self.cells: dict[str, tuple] = {}      # last refined cell of every phase seen
        self.active: list[str] = []
        self.zero = 0.0
        self.profile: dict = {}
        self.rwp_hist: list[float] = []
        self.seeded = False
        self.bragg_max = 0.0
        self.interval = max(1, opts.screen_every)   # current screening interval (frames)
        self.since_screen = 0

    def state(self) -> dict:
        return {"cells": dict(self.cells), "active": list(self.active), "zero": self.zero,
                "profile": dict(self.profile), "rwp_hist": list(self.rwp_hist[-9:]),
                "bragg_max": self.bragg_max, "interval": self.interval,
                "since_screen": self.since_screen}

    def set_state(self, st: dict) -> None:
        self.cells = dict(st["cells"])
        self.active = list(st["active"])
        self.zero = st["zero"]
        self.profile = dict(st["profile"])
        self.rwp_hist = list(st.get("rwp_hist", []))
        self.bragg_max = float(st.get("bragg_max", 0.0))
        self.interval = int(st.get("interval", max(1, self.opts.screen_every)))
        self.since_screen = int(st.get("since_screen", 0))
        self.seeded = True

    # -- fits ------------------------------------------------------------------------------
    def _fit(self, pattern, ids, *, refine_lattice=None, refine_profile="auto", start=None,
             strains=None, max_iter=None, amorphous=True):
        from xtal.identify import fit_phases

        o = self.opts
        kw = dict(wavelength=o.wavelength, polarization=o.polarization, start=start,
                  refine_lattice=o.refine_lattice if refine_lattice is None else refine_lattice,
                  background=o.background, n_background=o.n_background,
                  refine_profile=refine_profile, strains=strains, max_strain=o.max_strain,
                  two_theta_range=o.two_theta_range, amorphous=amorphous)
        if max_iter is not None or o.max_nfev is not None:
            kw["max_iter"] = max_iter if max_iter is not None else o.max_nfev
        return fit_phases(pattern, [self.phases[i] for i in ids], **_supported(fit_phases, kw))

    def seed(self, pattern) -> None:
        """First frame of a chain, from the library cells.  Two starts are tried and the one whose
        refined fit has the lower Rwp is kept: (A) `xtal.identify.identify` (screen + beam search),
        (B) every phase with the isotropic strain of `xtal.identify.screen_phases`, active = the
        phases with a significant scale."""
        from xtal.identify import identify, screen_phases

        o = self.opts
        starts = []
        try:
            ident = identify(pattern, [self.phases[i] for i in self.order], wavelength=o.wavelength,
                             polarization=o.polarization, background=o.background, max_strain=o.max_strain,
                             refine_lattice=o.refine_lattice, two_theta_range=o.two_theta_range)
            if ident.hypotheses:
                starts.append(ident.hypotheses[0].fit)
        except XtalError:
            pass
        try:
            hits = {h.id: h for h in screen_phases(pattern, [self.phases[i] for i in self.order],
                                                   wavelength=o.wavelength, max_strain=o.max_strain,
                                                   polarization=o.polarization)}
            strains = [hits[i].strain if i in hits else 0.0 for i in self.order]
            starts.append(self._fit(pattern, self.order, refine_lattice="isotropic", strains=strains))
        except XtalError:
            pass
        self.seeded = True
        best, best_rwp = None, math.inf
        for fit in starts:
            sh = _shares(fit)
            act = [p.id for p in fit.phases if p.scale > 0 and _z(p) >= o.enter_z
                   and sh[p.id] >= o.min_share]
            if not act:
                continue
            cells = {p.id: tuple(p.cell) for p in fit.phases if p.id in act}
            try:
                ref = self._fit(pattern, act, start=_start_from(cells, act, fit.zero_shift_deg,
                                                                fit.profile))
            except XtalError:
                continue
            if ref.rwp < best_rwp:
                best, best_rwp = (act, ref), ref.rwp
        if best is None:
            self.active = []
            return
        act, ref = best
        self.active = [p.id for p in ref.phases if p.scale > 0]
        for p in ref.phases:
            if p.id in self.active:
                self.cells[p.id] = tuple(p.cell)
        self.zero, self.profile = ref.zero_shift_deg, dict(ref.profile)

    def screen(self, pattern):
        """All phases, linear scales at carried cells (isotropic lattice carried, profile fixed)."""
        ids = self.order
        start = _start_from(self.cells, ids, self.zero, self.profile)
        return self._fit(pattern, ids, refine_lattice="isotropic", refine_profile="none",
                         start=start, max_iter=3, amorphous=False)

    def _pseudo_symmetric(self, pattern, ids, fit, rec: FrameRecord):
        """Phases whose library cell has two axes within 1 % (pseudo-tetragonal orthorhombic, e.g.
        CuCr2O4 in Fddd): equal axes are a saddle of the fit, and which axis is the longer one can
        flip.  Refit from the symmetrised cell (the two axes set to their mean) and keep the better
        fit, so that a splitting is reported only when the data prefer it."""
        alt_cells, changed = dict(self.cells), False
        for pid in ids:
            ph = self.phases[pid]
            if not (16 <= (getattr(ph, "spacegroup_number", 0) or 0) <= 74) or pid not in alt_cells:
                continue
            c = list(alt_cells[pid])
            lib = ph.cell.parameters
            for i, j in ((0, 1), (0, 2), (1, 2)):
                if abs(lib[i] / lib[j] - 1) < 0.01:
                    m = 0.5 * (c[i] + c[j])
                    c[i] = c[j] = m
                    changed = True
            alt_cells[pid] = tuple(c)
        if not changed:
            return fit
        try:
            alt = self._fit(pattern, ids, start=_start_from(alt_cells, ids, self.zero, self.profile))
        except XtalError:
            return fit
        if alt.rwp < fit.rwp - 1e-6:
            if alt.rwp < fit.rwp - 1e-3:
                rec.notes.append(f"frame {rec.index}: fit from the symmetrised pseudo-tetragonal "
                                 f"cell is better (Rwp {fit.rwp:.4f} → {alt.rwp:.4f})")
            return alt
        return fit

    def _retry(self, pattern, ids, fit, rec: FrameRecord):
        """The fit is much worse than the previous frames': the optimiser may have left the
        neighbour's minimum (e.g. a pseudo-tetragonal cell whose b = c is a saddle).  Refit in two
        stages — isotropic lattice from the neighbour (keeps the axial ratios), then the full cell
        from there — and keep the better of the two fits."""
        try:
            iso = self._fit(pattern, ids, refine_lattice="isotropic",
                            start=_start_from(self.cells, ids, self.zero, self.profile))
            cells = {p.id: tuple(p.cell) for p in iso.phases}
            full = self._fit(pattern, ids, start=_start_from(cells, ids, iso.zero_shift_deg,
                                                             iso.profile))
        except XtalError:
            return fit
        best = min((fit, iso, full), key=lambda f: f.rwp)
        if best is not fit:
            rec.notes.append(f"frame {rec.index}: refitted in two stages (Rwp {fit.rwp:.4f} → "
                             f"{best.rwp:.4f})")
        return best

    def screen_z(self, fit) -> dict[str, float]:
        """z of every phase of a screen fit; 0 for a phase below min_share of the frame's Bragg
        intensity or of the largest Bragg intensity seen so far in the chain."""
        sh = _shares(fit)
        floor = self.opts.min_share * self.bragg_max
        return {p.id: (_z(p) if sh[p.id] >= self.opts.min_share
                       and getattr(p, "bragg_intensity", 0.0) >= floor else 0.0) for p in fit.phases}

    def frame(self, pattern, rec: FrameRecord, *, force_screen: bool = False,
              force_ids: Sequence[str] | None = None) -> FrameRecord:
        o = self.opts
        screened = None
        if not self.seeded:
            self.seed(pattern)
            screened = self.screen(pattern)
        elif force_ids is None and (force_screen or self.since_screen + 1 >= self.interval
                                    or not self.active):
            screened = self.screen(pattern)     # (a frame without active phase is always screened)
        active_before = set(self.active)
        if force_ids is None:
            self.since_screen = 0 if screened is not None else self.since_screen + 1
        if screened is not None:
            rec.screen_z.update(self.screen_z(screened))
            for p in screened.phases:
                if p.id not in self.active and rec.screen_z[p.id] >= o.enter_z:
                    self.active.append(p.id)
                    rec.entered.append(p.id)
                    self.cells[p.id] = tuple(p.cell)
        ids = list(force_ids) if force_ids is not None else [i for i in self.order if i in self.active]
        fit = None
        if ids:
            start = _start_from(self.cells, ids, self.zero, self.profile)
            fit = self._fit(pattern, ids, start=start)
            fit = self._pseudo_symmetric(pattern, ids, fit, rec)
            # an unexplained residual (Rwp jump) triggers a screen and a second fit
            med = float(np.median(self.rwp_hist)) if len(self.rwp_hist) >= 3 else None
            if force_ids is None and screened is None and med and fit.rwp > o.rwp_jump * med:
                screened = self.screen(pattern)
                rec.screen_z.update(self.screen_z(screened))
                added = False
                for p in screened.phases:
                    if p.id not in ids and rec.screen_z[p.id] >= o.enter_z:
                        self.active.append(p.id)
                        rec.entered.append(p.id)
                        self.cells[p.id] = tuple(p.cell)
                        added = True
                if added:
                    ids = [i for i in self.order if i in self.active]
                    fit = self._fit(pattern, ids, start=_start_from(self.cells, ids, self.zero,
                                                                    self.profile))
            if med and fit.rwp > o.rwp_jump * med:
                fit = self._retry(pattern, ids, fit, rec)
        else:
            fit = screened if screened is not None else self.screen(pattern)
            if not rec.screen_z:
                rec.screen_z.update(self.screen_z(fit))
        sh = _shares(fit)
        rec.fitted = tuple(ids)
        rec.rwp, rec.chi2 = float(fit.rwp), float(fit.chi2)
        rec.bragg_intensity = float(fit.bragg_intensity) if ids else 0.0
        af = fit.amorphous_fraction
        rec.amorphous_fraction = float(af) if af is not None else (1.0 if not ids or rec.bragg_intensity <= 0 else float("nan"))
        if not ids:
            rec.amorphous_fraction = _halo_only_fraction(fit)
        rec.zero_shift_deg = float(fit.zero_shift_deg)
        rec.profile = dict(fit.profile)
        rec.n_points = int(fit.n_points)
        if ids:
            for p in fit.phases:
                rec.phase[p.id] = d = _phase_dict(p, sh.get(p.id, 0.0))
                prev = self.cells.get(p.id)
                if prev is not None and p.scale > 0:
                    step = max(abs(d["cell"][k] / prev[k] - 1.0) for k in range(3))
                    if step > o.max_step_strain:
                        # a lattice that runs away in one frame is fitting something else
                        # (a halo, another phase's peaks): not evidence for this phase
                        d["z"] = 0.0
                        rec.notes.append(f"frame {rec.index}: {p.id} lattice moved {100 * step:.2f} % "
                                         "in one frame; not counted as present")
            self.bragg_max = max(self.bragg_max, rec.bragg_intensity)
            keep = [i for i in ids if rec.phase[i]["z"] >= o.drop_z
                    and rec.phase[i]["share"] >= 0.5 * o.min_share
                    and rec.phase[i]["bragg"] >= 0.5 * o.min_share * self.bragg_max]
            if keep:
                # carry only what the data determine: cells of significant phases, and the
                # profile/zero of a fit that still has a significant phase
                for i in keep:
                    self.cells[i] = tuple(rec.phase[i]["cell"])
                self.zero, self.profile = fit.zero_shift_deg, dict(fit.profile)
                self.rwp_hist = (self.rwp_hist + [fit.rwp])[-9:]
            if force_ids is None:
                self.active = keep
        if force_ids is None:
            # adaptive screening: the interval doubles (up to 4 × screen_every) while screens find
            # nothing new, and returns to screen_every when the phase set changes
            if set(self.active) != active_before or rec.entered:
                self.interval = max(1, o.screen_every)
            elif screened is not None:
                self.interval = min(2 * self.interval, 4 * max(1, o.screen_every))
        return rec


def _supported(fn, kw: dict) -> dict:
    """Only the keyword arguments `fn` accepts (identify's signature grows over time)."""
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kw
    return {k: v for k, v in kw.items() if k in params}


def _halo_only_fraction(fit) -> float:
    """Amorphous indicator of a frame with no crystalline phase: 1 if the background has a halo."""
    try:
        from xtal.identify import estimate_amorphous_fraction  # the same halo measure identify uses
        v = estimate_amorphous_fraction(np.asarray(fit.x_deg), np.asarray(fit.background), True, 1e-9, 0)
    except Exception:  # pragma: no cover - defensive
        v = None
    return 1.0 if v is not None and v > 0.5 else 0.0


def _new_record(item, i: int) -> FrameRecord:
    def g(name, default=float("nan")):
        if isinstance(item, dict):
            v = item.get(name)
        else:
            v = getattr(item, name, None)
        return default if v is None else v

    seg = ""
    meta = item.get("meta", {}) if isinstance(item, dict) else getattr(item, "meta", {}) or {}
    if isinstance(meta, dict):
        seg = str(meta.get("segment", ""))
    src = str(g("source", f"frame {i}"))
    t = g("temperature_c")
    ts = g("time_s")
    return FrameRecord(index=i, temperature_c=float(t) if t is not None else float("nan"),
                       time_s=float(ts) if ts is not None else float("nan"), segment=seg, source=src)


def _run_chunk(items: list[tuple[int, Any]], phases: list, opts: SeriesOptions,
               state: dict | None, heat_range, wavelength_ref) -> tuple[list[FrameRecord], dict]:
    """Fit a contiguous chunk of frames with continuity (runs in a worker process)."""
    from collections import deque

    chain = _Chain(phases, opts)
    if state is not None:
        chain.set_state(state)
    out = []
    buf: deque = deque(maxlen=4 * max(1, opts.screen_every))   # recent (record, pattern): backtracking
    for i, item in items:
        rec = _new_record(item, i)
        pat = None
        try:
            pat = _to_pattern(item, i, rec.notes, opts.max_nan_fraction)
            _check_wavelength(pat, wavelength_ref, i)
            rec.heat = _heat(pat, opts.heatmap_bins, heat_range)
            chain.frame(pat, rec)
        except SeriesError as exc:
            if "wavelength" in str(exc) and "differs" in str(exc):
                raise
            rec.status, rec.reason = "skipped", str(exc)
        except XtalError as exc:
            rec.status, rec.reason = "skipped", f"{type(exc).__name__}: {exc}"
        if rec.entered:
            _backtrack(chain, buf, rec.entered, opts)
        out.append(rec)
        if rec.status == "ok":
            buf.append((rec, pat))
    return out, chain.state()


def _backtrack(chain: "_Chain", buf, entered: list[str], opts: SeriesOptions) -> None:
    """A phase joined at this frame: screen the preceding unscreened frames (newest first) so that
    its onset is located to the frame, not to the screening interval."""
    for prev, pat in reversed(buf):
        if prev.screen_z:
            break
        prev.screen_z.update(chain.screen_z(chain.screen(pat)))
        if not any(prev.screen_z.get(pid, 0.0) >= opts.enter_z for pid in entered):
            break


def _check_wavelength(pat, ref, i):
    lam = getattr(pat, "wavelength_angstrom", None)
    if ref is None or lam is None:
        return
    if abs(lam - ref) > 1e-4 * ref:
        raise SeriesError(f"frame {i}: wavelength {lam} Å differs from the series' {ref} Å "
                          "(frames of one series must share λ)", path=getattr(pat, "source", None))


# ----------------------------------------------------------------------------------------------
# presence (Viterbi)
# ----------------------------------------------------------------------------------------------
def viterbi_presence(evidence: np.ndarray, switch_penalty: float,
                     initial: float | None = None) -> np.ndarray:
    """Most probable present/absent sequence of one phase.

    evidence[i] = log-likelihood ratio present vs absent in frame i (0 = no information, NaN = 0);
    every change of state costs `switch_penalty`.  Returns a boolean array.
    """
    e = np.nan_to_num(np.asarray(evidence, float), nan=0.0)
    n = e.size
    if n == 0:
        return np.zeros(0, bool)
    score = np.array([0.0, e[0]])           # [absent, present]
    back = np.zeros((n, 2), dtype=np.int8)
    for i in range(1, n):
        new = np.empty(2)
        for s in (0, 1):
            stay = score[s]
            switch = score[1 - s] - switch_penalty
            if stay >= switch:
                new[s], back[i, s] = stay, s
            else:
                new[s], back[i, s] = switch, 1 - s
        new[1] += e[i]
        score = new
    path = np.zeros(n, dtype=bool)
    s = int(np.argmax(score))
    for i in range(n - 1, -1, -1):
        path[i] = bool(s)
        s = back[i, s]
    # a phase appearing in the very last frame only paid one switch; it must show the evidence an
    # interior one-frame blip needs (2 switches), as nothing after it can confirm it
    if n >= 2 and path[-1] and not path[-2] and e[-1] < 2.0 * switch_penalty:
        path[-1] = False
    return path


# ----------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------
@dataclass
class SeriesResult:
    """Per-frame fits, phase presence, events and thermal expansion of one series."""

    records: list[FrameRecord]
    phase_ids: list[str]
    phase_info: dict[str, dict]
    present: np.ndarray               # (frame, phase) bool after Viterbi
    evidence: np.ndarray              # (frame, phase) log-likelihood ratio
    events: list[dict]
    expansion: dict
    lattice_transitions: list[dict]
    wavelength_angstrom: float | None
    synthetic: bool
    attrs: dict
    options: dict
    heat_x: np.ndarray | None
    skipped: list[dict]
    notes: list[str]
    elapsed_s: float = 0.0
    timing: dict = field(default_factory=dict)     # wall seconds per stage of the analysis

    # -- arrays ------------------------------------------------------------------------------
    @property
    def temperature_c(self) -> np.ndarray:
        return np.array([r.temperature_c for r in self.records])

    @property
    def time_s(self) -> np.ndarray:
        return np.array([r.time_s for r in self.records])

    def values(self, key: str, phase: str) -> np.ndarray:
        """Per-frame value of a phase ('scale', 'wf', 'vol', 'a', 'b', 'c', 'a_su', ...); NaN where absent."""
        j = self.phase_ids.index(phase)
        out = np.full(len(self.records), np.nan)
        for k, r in enumerate(self.records):
            d = r.phase.get(phase)
            if d is None or not self.present[k, j]:
                continue
            if key in LATTICE_NAMES:
                out[k] = d["cell"][LATTICE_NAMES.index(key)]
            elif key.endswith("_su") and key[:-3] in LATTICE_NAMES:
                out[k] = d["cell_su"][LATTICE_NAMES.index(key[:-3])]
            else:
                out[k] = d[key]
        return out

    def to_dataset(self):
        """An ``xarray.Dataset``: per frame and phase scale, weight fraction, cell, volume with s.u.,
        Rwp, amorphous fraction, Bragg intensity, presence; events and programme info in attrs."""
        import xarray as xr

        nf, npf = len(self.records), len(self.phase_ids)
        def pf(key):
            a = np.full((nf, npf), np.nan)
            for k, r in enumerate(self.records):
                for j, pid in enumerate(self.phase_ids):
                    d = r.phase.get(pid)
                    if d is not None and self.present[k, j]:
                        a[k, j] = d[key]
            return a
        cell = np.full((nf, npf, 6), np.nan)
        cell_su = np.full((nf, npf, 6), np.nan)
        for k, r in enumerate(self.records):
            for j, pid in enumerate(self.phase_ids):
                d = r.phase.get(pid)
                if d is not None and self.present[k, j]:
                    cell[k, j] = d["cell"]
                    cell_su[k, j] = d["cell_su"]
        fr = {"frame": np.array([r.index for r in self.records])}
        data = {
            "temperature_c": ("frame", self.temperature_c, {"units": "degC"}),
            "time_s": ("frame", self.time_s, {"units": "s"}),
            "segment": ("frame", np.array([r.segment for r in self.records], dtype=str)),
            "source": ("frame", np.array([r.source for r in self.records], dtype=str)),
            "status": ("frame", np.array([r.status for r in self.records], dtype=str)),
            "skip_reason": ("frame", np.array([r.reason for r in self.records], dtype=str)),
            "rwp": ("frame", np.array([r.rwp for r in self.records])),
            "chi2": ("frame", np.array([r.chi2 for r in self.records])),
            "bragg_intensity": ("frame", np.array([r.bragg_intensity for r in self.records]),
                                {"units": "counts*deg", "long_name": "integrated Bragg intensity"}),
            "amorphous_fraction": ("frame", np.array([r.amorphous_fraction for r in self.records]),
                                   {"long_name": "halo/(halo+Bragg) intensity (identify)"}),
            "zero_shift_deg": ("frame", np.array([r.zero_shift_deg for r in self.records])),
            "present": (("frame", "phase"), self.present.astype(np.int8)),
            "evidence": (("frame", "phase"), self.evidence,
                         {"long_name": "log-likelihood ratio present/absent"}),
            "scale": (("frame", "phase"), pf("scale")),
            "scale_su": (("frame", "phase"), pf("scale_su")),
            "weight_fraction": (("frame", "phase"), pf("wf")),
            "weight_fraction_su": (("frame", "phase"), pf("wf_su")),
            "volume_angstrom3": (("frame", "phase"), pf("vol"), {"units": "angstrom^3"}),
            "volume_su": (("frame", "phase"), pf("vol_su"), {"units": "angstrom^3"}),
            "fwhm_deg": (("frame", "phase"), pf("fwhm")),
            "cell": (("frame", "phase", "lattice"), cell),
            "cell_su": (("frame", "phase", "lattice"), cell_su),
        }
        coords = dict(fr, phase=np.array(self.phase_ids, dtype=str),
                      lattice=np.array(LATTICE_NAMES, dtype=str))
        if self.heat_x is not None and self.records and any(r.heat is not None for r in self.records):
            h = np.full((nf, self.heat_x.size), np.nan, dtype=np.float32)
            for k, r in enumerate(self.records):
                if r.heat is not None:
                    h[k] = r.heat
            data["heatmap"] = (("frame", "two_theta_bin_deg"), h,
                               {"long_name": "observed intensity binned in 2θ"})
            coords["two_theta_bin_deg"] = self.heat_x
        ds = xr.Dataset({k: xr.Variable(v[0], v[1], v[2] if len(v) > 2 else {}) for k, v in data.items()},
                        coords=coords)
        ds.attrs.update({
            "title": ("SYNTHETIC series — " if self.synthetic else "") + "xtal series analysis",
            "synthetic": int(self.synthetic),
            "wavelength_angstrom": self.wavelength_angstrom if self.wavelength_angstrom else np.nan,
            "events": json.dumps(self.events),
            "lattice_transitions": json.dumps(self.lattice_transitions),
            "thermal_expansion": json.dumps(self.expansion),
            "phases": json.dumps(self.phase_info),
            "skipped_frames": json.dumps(self.skipped),
            "options": json.dumps(self.options, default=str),
            "notes": json.dumps(self.notes),
        })
        if "program" in self.attrs:
            ds.attrs["program"] = self.attrs["program"]
        return ds

    def phases_table(self) -> list[dict]:
        """Long table: one row per frame and present phase (what phases.csv holds)."""
        rows = []
        for k, r in enumerate(self.records):
            base = {"frame": r.index, "temperature_c": r.temperature_c, "time_s": r.time_s,
                    "segment": r.segment, "status": r.status, "rwp": r.rwp,
                    "amorphous_fraction": r.amorphous_fraction, "bragg_intensity": r.bragg_intensity}
            if r.status != "ok":
                rows.append(dict(base, phase="", present=0))
                continue
            if not self.present[k].any():
                rows.append(dict(base, phase="", present=0))   # no crystalline phase (e.g. amorphous)
                continue
            for j, pid in enumerate(self.phase_ids):
                if not self.present[k, j]:
                    continue
                d = r.phase.get(pid, {})
                row = dict(base, phase=pid, present=1, scale=d.get("scale"), scale_su=d.get("scale_su"),
                           weight_fraction=d.get("wf"), weight_fraction_su=d.get("wf_su"))
                for n, v, s in zip(LATTICE_NAMES, d.get("cell", [np.nan] * 6), d.get("cell_su", [np.nan] * 6)):
                    row[n] = v
                    row[n + "_su"] = s
                row["volume_angstrom3"] = d.get("vol")
                row["volume_su"] = d.get("vol_su")
                rows.append(row)
        return rows

    def events_json(self) -> dict:
        return {"events": self.events, "lattice_transitions": self.lattice_transitions,
                "skipped_frames": self.skipped, "synthetic": self.synthetic,
                "models": [pid for pid, i in self.phase_info.items() if i.get("model")]}

    def write(self, outdir: str | Path, *, overwrite: bool = False, figures: bool = True,
              waterfall: bool = True) -> dict[str, Path]:
        """Write series.nc, phases.csv, events.json, report.md and PNG figures into `outdir`."""
        import csv
        import io

        from xtal.io import atomic_write
        from xtal.util import atomic_write_text

        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        ds = self.to_dataset()
        written["series.nc"] = atomic_write(out / "series.nc",
                                            lambda p: ds.to_netcdf(p, engine="netcdf4"),
                                            overwrite=overwrite)
        rows = self.phases_table()
        cols = ["frame", "temperature_c", "time_s", "segment", "status", "phase", "present", "scale",
                "scale_su", "weight_fraction", "weight_fraction_su"]
        for n in LATTICE_NAMES:
            cols += [n, n + "_su"]
        cols += ["volume_angstrom3", "volume_su", "rwp", "amorphous_fraction", "bragg_intensity"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
                        for k, v in r.items()})
        _check_new(out / "phases.csv", overwrite)
        written["phases.csv"] = atomic_write_text(out / "phases.csv", buf.getvalue())
        _check_new(out / "events.json", overwrite)
        written["events.json"] = atomic_write_text(out / "events.json",
                                                   json.dumps(self.events_json(), indent=2,
                                                              default=_jd))
        figs = {}
        if figures:
            from xtal import plots_series

            figs = plots_series.write_series_figures(self, out, overwrite=overwrite,
                                                     waterfall=waterfall)
            written.update(figs)
        _check_new(out / "report.md", overwrite)
        written["report.md"] = atomic_write_text(out / "report.md",
                                                 render_series_markdown(self, figures=figs))
        return written


def _check_new(path: Path, overwrite: bool) -> None:
    from xtal.util import check_writable

    check_writable(path, overwrite=overwrite)


def _jd(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ----------------------------------------------------------------------------------------------
# analysis driver
# ----------------------------------------------------------------------------------------------
def analyse_series(series, phases: Sequence, *, wavelength: Any = None,
                   temperatures: Sequence[float] | str | Path | None = None,
                   instrument: str | Path | None = None,
                   progress: bool = True, workers: int = 1, chunk_size: int | None = None,
                   scheduler: str | None = None,
                   screen_every: int = 4, switch_penalty: float = 8.0, min_share: float = 0.004,
                   enter_z: float = 8.0, presence_z: float = 6.0, drop_z: float = 3.0,
                   background: str = "chebyshev", n_background: int | None = 12,
                   max_strain: float = 0.05, two_theta_range: tuple[float, float] | None = None,
                   heatmap_bins: int = 600, max_nan_fraction: float = 0.05,
                   refine_lattice: Any = True, polarization: Any = None) -> SeriesResult:
    """Phase map of a thermal series (see the module docstring for the method).

    Parameters
    ----------
    series : ``xarray.DataArray`` (frame × two_theta_deg, coords temperature_c/time_s/segment/source,
        attrs wavelength_angstrom — as `xtal.io.read_series` and `xtal.synth.synthetic_series`
        make; may be lazily backed by a netCDF file), a directory/glob/file path, or a list of
        `Pattern`.
    phases : the library phases (`xtal.structures.Phase`) that may occur.
    wavelength : λ (Å, tube name) when the data do not state it (checked against them otherwise).
    polarization : beam polarisation for the LP factor (``"synchrotron"`` or an
        ``xtal.beam.Polarization``); None = unpolarised lab beam.
    temperatures : per-frame temperatures (°C) or a temperature-log CSV (for file series).
    progress : a tqdm bar per frame on stderr.
    workers, chunk_size, scheduler : parallel chunks (processes), or a Dask distributed scheduler
        address ``"tcp://host:port"`` (needs dask.distributed installed).
    screen_every, switch_penalty, min_share, enter_z, drop_z : phase-presence control (docs/series.md).
    n_background : Chebyshev terms of the refined background (12 follows an amorphous halo of a
        few degrees FWHM, so that it is not taken for a crystalline phase; None: identify's default).

    Frames that cannot be used (unreadable, NaN, no signal) are *skipped and recorded*
    (``SeriesResult.skipped``, the report and events.json); frames with a different λ raise
    `SeriesError`.
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise SeriesError("no phases given for the series analysis")
    ids = [p.id for p in phases]
    if len(set(ids)) != len(ids):
        raise SeriesError(f"duplicate phase ids: {ids}")
    opts = SeriesOptions(wavelength=wavelength, polarization=polarization, screen_every=screen_every, switch_penalty=switch_penalty,
                         min_share=min_share, enter_z=enter_z, presence_z=presence_z, drop_z=drop_z,
                         background=background,
                         n_background=n_background, max_strain=max_strain,
                         two_theta_range=two_theta_range, heatmap_bins=heatmap_bins,
                         max_nan_fraction=max_nan_fraction, refine_lattice=refine_lattice)
    src = _Source(series, wavelength=wavelength, temperatures=temperatures, instrument=instrument)
    n = src.n
    attrs = dict(src.attrs)
    synthetic = bool(attrs.get("synthetic", 0))
    wl_ref = _wavelength_of(wavelength, attrs)

    # the heat-map grid: from the first readable frame
    heat_range, heat_x, first_item = None, None, None
    for i in range(n):
        it = src.fetch([i])[i]
        try:
            p0 = _to_pattern(it, i, [], 1.0)
        except XtalError:
            continue
        first_item = p0
        x0 = np.asarray(p0.two_theta_deg(), float)
        heat_range = (float(x0[0]), float(x0[-1])) if two_theta_range is None else tuple(two_theta_range)
        if wl_ref is None:
            wl_ref = p0.wavelength_angstrom
        if p0.meta.get("synthetic"):
            synthetic = True
        break
    if first_item is None:
        raise SeriesError("no frame of the series can be read")
    if heatmap_bins and heat_range:
        e = np.linspace(heat_range[0], heat_range[1], heatmap_bins + 1)
        heat_x = 0.5 * (e[1:] + e[:-1])

    workers = max(1, int(workers))
    if chunk_size is None:
        chunk_size = 64          # frames read (and, in parallel, fitted) together: memory is flat
    chunk_size = max(2, int(chunk_size))
    chunks = [(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]
    bar = _bar(n, progress)
    records: list[FrameRecord | None] = [None] * n
    states: dict[int, dict] = {}

    def fetch_items(a, b):
        got = src.fetch(range(a, b))
        return [(i, got[i]) for i in range(a, b)]

    timing: dict[str, float] = {}
    t_stage = time.perf_counter()
    if scheduler is None and (len(chunks) == 1 or workers == 1):
        # one chain over all frames, read chunk by chunk
        state = None
        for a, b in chunks:
            recs, state = _run_chunk(fetch_items(a, b), phases, opts, state, heat_range, wl_ref)
            for r in recs:
                records[r.index] = r
            bar.update(b - a)
    else:
        # coarse chain over the first frame of every chunk (sequential, screened): each chunk is
        # seeded from its own first frame's solution, reached by continuity at coarse resolution
        submit, close = _executor(workers, scheduler)
        try:
            seeds = _coarse_seeds(src, chunks, phases, opts, heat_range, wl_ref)
            timing["coarse_chain_s"] = time.perf_counter() - t_stage
            t_stage = time.perf_counter()
            pending = {}
            it_chunks = iter(chunks)
            max_inflight = 2 * workers
            def feed():
                for a, b in it_chunks:
                    pending[submit(_run_chunk, fetch_items(a, b), phases, opts, seeds.get(a),
                                   heat_range, wl_ref)] = (a, b)
                    if len(pending) >= max_inflight:
                        return
            feed()
            while pending:
                done = _wait_first(pending)
                for fut in done:
                    a, b = pending.pop(fut)
                    recs, st = fut.result()
                    for r in recs:
                        records[r.index] = r
                    states[a] = st
                    bar.update(b - a)
                feed()
        finally:
            close()
        timing["parallel_chunks_s"] = time.perf_counter() - t_stage
        t_stage = time.perf_counter()
        # reconcile chunk boundaries: refit the first frames of each chunk from the previous one
        for (a0, b0), (a1, b1) in zip(chunks[:-1], chunks[1:]):
            _reconcile(src, records, phases, opts, states[a0], a1, b1, heat_range, wl_ref)
        timing["reconcile_s"] = time.perf_counter() - t_stage
    else_key = "chain_s" if "parallel_chunks_s" not in timing else None
    if else_key:
        timing[else_key] = time.perf_counter() - t_stage
    t_stage = time.perf_counter()
    bar.close()
    recs = [r for r in records if r is not None]
    if any(not r.segment for r in recs):
        from xtal.io import label_segments

        for r, lab in zip(recs, label_segments([r.temperature_c for r in recs])):
            r.segment = r.segment or lab

    # presence: evidence and Viterbi; refit frames whose set differs from what was fitted (twice)
    for _ in range(2):
        present, evidence = _presence(recs, ids, phases, opts)
        if not _consistency_pass(src, recs, present, ids, phases, opts, heat_range, wl_ref):
            break
    present, evidence = _presence(recs, ids, phases, opts)
    present &= _fitted_positive(recs, ids)   # values are reported only where the phase was fitted
    timing["presence_and_refits_s"] = time.perf_counter() - t_stage
    t_stage = time.perf_counter()

    info = {p.id: {"name": getattr(p, "name", p.id), "model": bool(getattr(p, "is_model", False)),
                   "kind": getattr(getattr(p, "provenance", None), "kind", None),
                   "spacegroup": getattr(p, "spacegroup_hm", None),
                   "spacegroup_number": getattr(p, "spacegroup_number", None),
                   "library_cell": list(p.cell.parameters),
                   "cell_mass_dalton": float(p.cell_mass_dalton)} for p in phases}
    skipped = [{"frame": r.index, "source": r.source, "reason": r.reason,
                "temperature_c": r.temperature_c} for r in recs if r.status != "ok"]
    notes = list(src.notes) + [n_ for r in recs for n_ in r.notes]
    res = SeriesResult(records=recs, phase_ids=ids, phase_info=info, present=present,
                       evidence=evidence, events=[], expansion={}, lattice_transitions=[],
                       wavelength_angstrom=wl_ref, synthetic=synthetic, attrs=attrs,
                       options={k: v for k, v in opts.__dict__.items()}, heat_x=heat_x,
                       skipped=skipped, notes=notes)
    res.events = detect_events(res)
    res.expansion = {pid: thermal_expansion(res, pid) for pid in ids if present[:, ids.index(pid)].any()}
    res.lattice_transitions = [t for pid in ids for t in _auto_merging(res, pid)]
    timing["events_s"] = time.perf_counter() - t_stage
    res.timing = {k: round(v, 3) for k, v in timing.items()}
    res.elapsed_s = time.perf_counter() - t0
    return res


def _wavelength_of(wavelength, attrs) -> float | None:
    if wavelength is not None:
        from xtal.beam import parse_radiation

        return parse_radiation(wavelength).primary
    v = attrs.get("wavelength_angstrom")
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bar(n: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=n, disable=not progress, file=sys.stderr, unit="frame", desc="series")


def _executor(workers: int, scheduler: str | None):
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise SeriesError("scheduler= needs dask.distributed (pip install 'dask[distributed]'); "
                              "or use workers=N for local processes") from None
        client = Client(scheduler)
        return client.submit, client.close
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(max_workers=workers)
    return ex.submit, lambda: ex.shutdown(wait=True, cancel_futures=True)


def _wait_first(pending: dict):
    try:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        return done
    except TypeError:  # dask futures
        from dask.distributed import wait as dwait

        return dwait(list(pending), return_when="FIRST_COMPLETED").done


def _coarse_seeds(src, chunks, phases, opts, heat_range, wl_ref) -> dict[int, dict | None]:
    """Chain state at the first frame of every chunk, from a sequential pass over those frames."""
    chain = _Chain(phases, opts)
    seeds: dict[int, dict | None] = {}
    for a, _ in chunks:
        item = src.fetch([a])[a]
        rec = _new_record(item, a)
        try:
            pat = _to_pattern(item, a, [], opts.max_nan_fraction)
            _check_wavelength(pat, wl_ref, a)
            chain.frame(pat, rec, force_screen=True)
            seeds[a] = chain.state()
        except SeriesError as exc:
            if "wavelength" in str(exc) and "differs" in str(exc):
                raise
            seeds[a] = chain.state() if chain.seeded else None
        except XtalError:
            seeds[a] = chain.state() if chain.seeded else None
    return seeds


def _agree(r1: FrameRecord, r2: FrameRecord) -> bool:
    """Same phase set and cells within 5 s.u. (or 2e-4 relative) for every shared phase."""
    s1 = {p for p in r1.fitted if r1.phase.get(p, {}).get("z", 0) > 0}
    s2 = {p for p in r2.fitted if r2.phase.get(p, {}).get("z", 0) > 0}
    if s1 != s2:
        return False
    for pid in s1:
        c1, c2 = np.array(r1.phase[pid]["cell"][:3]), np.array(r2.phase[pid]["cell"][:3])
        su = np.nan_to_num(np.array(r1.phase[pid]["cell_su"][:3]), nan=0.0)
        tol = np.maximum(5 * su, 2e-4 * c1)
        if np.any(np.abs(c1 - c2) > tol):
            return False
    return True


def _reconcile(src, records, phases, opts, state, a1, b1, heat_range, wl_ref):
    """Refit frames a1.. of a chunk from the previous chunk's final state until they agree."""
    for i in range(a1, b1):
        old = records[i]
        recs, state = _run_chunk([(i, src.fetch([i])[i])], phases, opts, state, heat_range, wl_ref)
        new = recs[0]
        new.heat = old.heat if old is not None else new.heat
        records[i] = new
        if old is not None and old.status == "ok" and new.status == "ok" and _agree(old, new):
            break


def _evidence(rec: FrameRecord, pid: str, nlat: int, opts: SeriesOptions,
              bragg_ref: float = 0.0) -> float:
    if rec.status != "ok":
        return 0.0
    # the price of a phase: its BIC (ln n per parameter), and at least the detection level enter_z
    z0sq = max(math.log(max(rec.n_points, 10)) * (1 + nlat), opts.presence_z ** 2)
    if pid in rec.fitted and pid in rec.phase:
        d = rec.phase[pid]
        # a phase must carry min_share of the frame's Bragg intensity and of the series' typical
        # Bragg intensity (when the crystalline phases are gone, nothing may fit the halo or noise)
        big = d["share"] >= opts.min_share and (
            not bragg_ref or not math.isfinite(d["bragg"]) or d["bragg"] >= opts.min_share * bragg_ref)
        z = d["z"] if big else 0.0
    elif pid in rec.screen_z:
        z = rec.screen_z[pid]
    else:
        return -1e-3     # not fitted, not screened: judged absent online (breaks Viterbi ties)
    return float(np.clip(0.5 * (z * z - z0sq), -1e6, 1e6))


def _n_lattice(phase) -> int:
    try:
        from xtal.identify import LATTICE_PARAMS, crystal_system_of

        return len(LATTICE_PARAMS[crystal_system_of(phase)])
    except Exception:  # pragma: no cover
        return 3


def _presence(recs, ids, phases, opts):
    nl = {p.id: _n_lattice(p) for p in phases}
    ev = np.zeros((len(recs), len(ids)))
    br = np.array([r.bragg_intensity for r in recs if r.status == "ok" and r.fitted], float)
    br = br[np.isfinite(br)]
    bragg_ref = float(np.percentile(br, 90)) if br.size else 0.0
    for k, r in enumerate(recs):
        for j, pid in enumerate(ids):
            ev[k, j] = _evidence(r, pid, nl[pid], opts, bragg_ref)
    ok = np.array([r.status == "ok" for r in recs])
    pres = np.zeros_like(ev, dtype=bool)
    for j in range(len(ids)):
        pres[:, j] = viterbi_presence(ev[:, j], opts.switch_penalty)
    pres[~ok] = False
    return pres, ev


def _fitted_positive(recs, ids) -> np.ndarray:
    out = np.zeros((len(recs), len(ids)), dtype=bool)
    for k, r in enumerate(recs):
        for j, pid in enumerate(ids):
            d = r.phase.get(pid)
            out[k, j] = bool(r.status == "ok" and pid in r.fitted and d is not None and d["scale"] > 0)
    return out


def _consistency_pass(src, recs, present, ids, phases, opts, heat_range, wl_ref):
    """Refit frames whose Viterbi phase set differs from the set with a positive scale in the fit."""
    todo = []
    for k, r in enumerate(recs):
        if r.status != "ok":
            continue
        want = {ids[j] for j in range(len(ids)) if present[k, j]}
        have = {pid for pid in r.fitted if r.phase.get(pid, {}).get("scale", 0) > 0}
        if want != have:
            todo.append(k)
    if not todo:
        return 0
    chain = _Chain(phases, opts)
    got = src.fetch([recs[k].index for k in todo])
    for k in todo:
        r = recs[k]
        want = [ids[j] for j in range(len(ids)) if present[k, j]]
        # seed: cells from the nearest frames where each wanted phase was fitted
        cells = {}
        for pid in want:
            for dk in range(1, len(recs)):
                hit = None
                for kk in (k - dk, k + dk):
                    if 0 <= kk < len(recs) and recs[kk].phase.get(pid, {}).get("scale", 0) > 0 \
                            and pid in recs[kk].fitted \
                            and recs[kk].phase[pid]["z"] >= opts.presence_z:
                        hit = recs[kk]
                        break
                if hit is not None:
                    cells[pid] = tuple(hit.phase[pid]["cell"])
                    break
            if pid not in cells and pid in r.phase and r.phase[pid]["z"] >= opts.presence_z:
                cells[pid] = tuple(r.phase[pid]["cell"])
            if pid not in cells:
                cells[pid] = tuple(chain.phases[pid].cell.parameters)
        state = {"cells": cells, "active": want, "zero": r.zero_shift_deg
                 if math.isfinite(r.zero_shift_deg) else 0.0, "profile": r.profile}

        def refit(phase_set, screen_z):
            chain.set_state(state)
            rec = FrameRecord(index=r.index, temperature_c=r.temperature_c, time_s=r.time_s,
                              segment=r.segment, source=r.source, heat=r.heat,
                              screen_z=dict(screen_z), notes=list(r.notes))
            chain.frame(pat, rec, force_ids=list(phase_set))
            return rec

        try:
            pat = _to_pattern(got[r.index], r.index, [], opts.max_nan_fraction)
            new = refit(want, r.screen_z)
            # a phase that the full fit does not support (guarded lattice, insignificant scale)
            # overrides its screen evidence and is left out of the frame's reported fit
            bad = [p for p in want if new.phase.get(p, {}).get("z", 0.0) < opts.presence_z]
            if bad:
                sz = dict(new.screen_z)
                for p in bad:
                    sz[p] = 0.0
                new = refit([p for p in want if p not in bad], sz)
                new.notes.append(f"frame {r.index}: {', '.join(bad)} not supported by the full fit")
        except XtalError as exc:
            new = FrameRecord(index=r.index, temperature_c=r.temperature_c, time_s=r.time_s,
                              segment=r.segment, source=r.source, heat=r.heat,
                              screen_z=dict(r.screen_z), notes=list(r.notes))
            new.status, new.reason = "skipped", f"{type(exc).__name__}: {exc}"
        new.notes.append("refitted with the phase set of the Viterbi pass")
        recs[k] = new
    return len(todo)


# ----------------------------------------------------------------------------------------------
# events
# ----------------------------------------------------------------------------------------------
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
    """Fractional frame position where w crosses level/2 walking from the absent frame into the
    present side, and its σ in frames."""
    step = 1 if k_pres > k_abs else -1
    j = k_pres
    while 0 <= j + step < w.size and np.isfinite(w[j + step]) and w[j] < 0.5 * level \
            and w[j + step] > w[j]:
        j += step
    k = j - step
    wk = w[k] if np.isfinite(w[k]) else 0.0
    wj = w[j]
    dw = wj - wk
    f = (0.5 * level - wk) / dw if dw != 0 else 0.5
    f = float(np.clip(f, 0.0, 1.0))
    pos = k + f * (j - k)
    su = wsu[j] if np.isfinite(wsu[j]) else 0.0
    sig = math.sqrt(1.0 / 12.0 + (su / abs(dw)) ** 2 if dw != 0 else 1.0 / 12.0)
    return pos, min(sig, 1.0), k, j


def _locate(res: SeriesResult, pos: float, sig: float, k: int, j: int) -> dict:
    T, ts = res.temperature_c, res.time_s
    t_c = _interp_at(T, pos)
    dT = abs(T[j] - T[k]) if np.isfinite(T[j]) and np.isfinite(T[k]) else float("nan")
    dt = abs(ts[j] - ts[k]) if np.isfinite(ts[j]) and np.isfinite(ts[k]) else float("nan")
    out = {"frame_position": round(pos, 3), "T_C": _r(t_c),
           "sigma_C": _r(sig * dT) if math.isfinite(dT) else None,
           "time_s": _r(_interp_at(ts, pos)) if np.isfinite(ts).any() else None,
           "sigma_s": _r(sig * dt) if math.isfinite(dt) else None,
           "isothermal": bool(math.isfinite(dT) and dT < HOLD_TOLERANCE_C)}
    return out


def _r(v, nd=4):
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def detect_events(res: SeriesResult) -> list[dict]:
    """appears / disappears / jump / amorphous events (see module docstring)."""
    ids = res.phase_ids
    recs = res.records
    ok = np.array([r.status == "ok" for r in recs])
    kidx = np.flatnonzero(ok)
    if kidx.size == 0:
        return []
    T = res.temperature_c
    ev: list[dict] = []
    mass = {pid: res.phase_info[pid]["cell_mass_dalton"] for pid in ids}
    runs: dict[str, list[tuple[int, int]]] = {}
    for j, pid in enumerate(ids):
        pres = res.present[kidx, j]
        # abundance S·(ZMV) on the usable frames
        ab = np.zeros(kidx.size)
        absu = np.zeros(kidx.size)
        for m, k in enumerate(kidx):
            d = recs[k].phase.get(pid)
            if d is not None and pres[m]:
                ab[m] = d["scale"] * mass[pid] * d["vol"]
                absu[m] = (d["scale_su"] if math.isfinite(d["scale_su"]) else 0.0) * mass[pid] * d["vol"]
        edges = np.flatnonzero(np.diff(pres.astype(int)))
        rr = []
        start = 0 if pres[0] else None
        for e in edges:
            if pres[e + 1]:
                start = e + 1
            else:
                rr.append((start, e))
                start = None
        if start is not None:
            rr.append((start, kidx.size - 1))
        runs[pid] = [(int(kidx[a]), int(kidx[b])) for a, b in rr]
        for a, b in rr:
            # level of the change: the phase's largest abundance in this run (a slow cross-fade
            # reaches it only at the end of the window; the midpoint is where it is half way)
            if a > 0:
                lvl = float(np.max(ab[a:b + 1]))
                pos, sig, k, jj = _crossing(ab, absu, a - 1, a, lvl)
                loc = _locate(res, _interp_at(kidx.astype(float), pos), sig, int(kidx[k]), int(kidx[jj]))
                ev.append(dict({"phase": pid, "kind": "appears", "frame": int(kidx[a]),
                                "first_frame_T_C": _r(T[kidx[a]])}, **loc))
            if b < kidx.size - 1:
                lvl = float(np.max(ab[a:b + 1]))
                pos, sig, k, jj = _crossing(ab, absu, b + 1, b, lvl)
                loc = _locate(res, _interp_at(kidx.astype(float), pos), sig, int(kidx[k]), int(kidx[jj]))
                ev.append(dict({"phase": pid, "kind": "disappears", "frame": int(kidx[b]),
                                "last_frame_T_C": _r(T[kidx[b]])}, **loc))
    # first-order jumps: an isosymmetric pair (one disappears as the other appears) ...
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
            ev.append({"phase": q, "kind": "jump", "from_phase": p, "frame": e_in["frame"],
                       "T_C": _r(0.5 * (e_in["T_C"] + e_out["T_C"])) if e_in["T_C"] is not None and e_out["T_C"] is not None else e_in["T_C"],
                       "sigma_C": _r(max(e_in.get("sigma_C") or 0, e_out.get("sigma_C") or 0)),
                       "time_s": e_in.get("time_s"), "sigma_s": e_in.get("sigma_s"),
                       "volume_change_pct": _r(100 * (vq / vp - 1), 3),
                       "isosymmetric": True})
    # ... or a step of the volume within one phase's run
    for pid in ids:
        for a, b in runs.get(pid, []):
            ev.extend(_volume_steps(res, pid, a, b))
    # amorphisation: amorphous fraction crossing half of its maximum, after a crystalline start
    af = np.array([r.amorphous_fraction for r in recs], float)
    afk = af[kidx]
    if np.isfinite(afk).any():
        amax = float(np.nanmax(afk))
        first = afk[np.isfinite(afk)][0]
        if amax >= 0.3 and amax - first >= 0.25:
            hit = np.flatnonzero(np.nan_to_num(afk, nan=0) >= 0.5 * amax)
            m = int(hit[0]) if hit.size else 0
            if m > 0:
                a_ = np.nan_to_num(afk, nan=0.0)
                pos, sig, k, jj = _crossing(a_, np.zeros_like(a_), m - 1, m, amax)
                loc = _locate(res, _interp_at(kidx.astype(float), pos), sig, int(kidx[k]), int(kidx[jj]))
                # Bragg collapse: frames before the halo starts to rise vs frames once it is complete
                br = np.array([r.bragg_intensity for r in recs], float)[kidx]
                low = np.flatnonzero(a_[:m] < 0.25 * amax)
                m0 = int(low[-1]) + 1 if low.size else m
                full = np.flatnonzero(a_ >= 0.9 * amax)
                m1 = int(full[full >= m][0]) if (full >= m).any() else m
                before = float(np.nanmedian(br[max(0, m0 - 5):m0])) if m0 > 0 else float("nan")
                after = float(np.nanmedian(br[m1:m1 + 5]))
                ev.append(dict({"phase": "amorphous", "kind": "amorphous", "frame": int(kidx[m]),
                                "amorphous_fraction_max": _r(amax, 3),
                                "bragg_ratio_after_before": _r(after / before, 3)
                                if before and math.isfinite(before) and before > 0 else None}, **loc))
    ev.sort(key=lambda e: (e["frame"], EVENT_KINDS.index(e["kind"])))
    return ev


def _edge_volume(res, pid, frame, side):
    """Volume of `pid` at the edge of its run near `frame` (mean of up to 3 frames on its side)."""
    k0 = [r.index for r in res.records].index(frame)
    j = res.phase_ids.index(pid)
    vals = []
    k = k0
    while 0 <= k < len(res.records) and len(vals) < 3:
        d = res.records[k].phase.get(pid)
        if res.present[k, j] and d is not None:
            vals.append(d["vol"])
        k += side
    return float(np.mean(vals[:1])) if vals else None


def _volume_steps(res, pid, a, b) -> list[dict]:
    """Steps in V within a run larger than 8 robust σ of the frame-to-frame change and 0.2 %."""
    v = res.values("vol", pid)
    T = res.temperature_c
    idx = [k for k in range(len(res.records)) if res.records[k].index >= a and res.records[k].index <= b
           and np.isfinite(v[k])]
    if len(idx) < 6:
        return []
    vv = v[idx]
    d = np.diff(vv) / vv[:-1]
    med = np.median(d)
    mad = 1.4826 * np.median(np.abs(d - med)) + 1e-12
    out = []
    for m in np.flatnonzero((np.abs(d - med) > 8 * mad) & (np.abs(d) > 0.002)):
        k1, k2 = idx[m], idx[m + 1]
        out.append({"phase": pid, "kind": "jump", "frame": res.records[k2].index,
                    "T_C": _r(0.5 * (T[k1] + T[k2])), "sigma_C": _r(abs(T[k2] - T[k1]) / math.sqrt(12)),
                    "time_s": _r(0.5 * (res.time_s[k1] + res.time_s[k2])),
                    "volume_change_pct": _r(100 * d[m], 3), "isosymmetric": True,
                    "within_phase": True})
    return out


# ----------------------------------------------------------------------------------------------
# lattice vs T
# ----------------------------------------------------------------------------------------------
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


def thermal_expansion(res: SeriesResult, phase: str, *, quadratic: str = "auto") -> dict:
    """Linear (or quadratic) fit of a, b, c and V vs T over the frames where `phase` is present.

    Returns {param: {"alpha_per_K", "alpha_su", "T_ref_C", "value_at_T_ref", "n_frames",
    "T_range_C", "order", "quadratic_coef"}}: α = (1/p)(dp/dT) at T_ref (mid-range).
    """
    T = res.temperature_c
    out = {}
    for key in ("a", "b", "c", "vol"):
        y = res.values(key, phase)
        s = res.values(key + "_su" if key != "vol" else "vol_su", phase)
        m = np.isfinite(y) & np.isfinite(T)
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
        out[key] = {"alpha_per_K": _r(slope / p0, 10), "alpha_su": _r(math.sqrt(max(cov[-2, -2], 0)) / p0, 10),
                    "T_ref_C": _r(tref, 3), "value_at_T_ref": _r(p0, 6), "n_frames": int(m.sum()),
                    "T_range_C": [_r(x.min(), 3), _r(x.max(), 3)], "order": order,
                    "quadratic_coef": _r(coef[0], 12) if order == 2 else None}
    return out


def axis_merging(res: SeriesResult, phase: str, axes: tuple[str, str] = ("b", "c"), *,
                 n_sigma: float = 3.0) -> dict | None:
    """Where two lattice parameters merge (e.g. orthorhombic → tetragonal-like b = c).

    The splitting Δ = |p1 − p2| is *resolved* where Δ > n_sigma·σ(Δ).  The transition temperature is
    bracketed by the last resolved frame and the first unresolved one (order kept along the
    series); T_s is (i) the mid-point of that bracket with σ = bracket/√12, and (ii) a fit
    Δ² = A·(T_s − T) (mean-field order parameter) to the resolved frames, reported with its s.u.
    """
    j = res.phase_ids.index(phase)
    i1, i2 = LATTICE_NAMES.index(axes[0]), LATTICE_NAMES.index(axes[1])
    T = res.temperature_c
    rows = []
    for k, r in enumerate(res.records):
        d = r.phase.get(phase)
        if d is None or not res.present[k, j] or not np.isfinite(T[k]):
            continue
        s1, s2 = d["cell_su"][i1], d["cell_su"][i2]
        s = math.hypot(s1 if math.isfinite(s1) else 0.0, s2 if math.isfinite(s2) else 0.0)
        rows.append((T[k], abs(d["cell"][i1] - d["cell"][i2]), s, d["cell"][i1], d["cell"][i2]))
    if len(rows) < 4:
        return None
    rows.sort()
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
           "T_last_split_C": _r(Ts[last_res], 3), "T_first_merged_C": _r(Ts[first_un], 3),
           "splitting_angstrom": [[_r(t, 3), _r(d, 6), _r(s, 6)] for t, d, s in zip(Ts, D, S)]}
    out["T_merge_C"] = _r(0.5 * (Ts[last_res] + Ts[first_un]), 3)
    out["sigma_C"] = _r(abs(Ts[first_un] - Ts[last_res]) / math.sqrt(12), 3)
    # resolved frames beyond the bracket (noise or re-entrant splitting) are reported, not used
    beyond = [k for k in order[list(order).index(first_un):] if resolved[k]]
    out["resolved_beyond_bracket_C"] = [_r(Ts[k], 3) for k in beyond]
    # mean-field fit Δ² = A (T_s − T) on the last (≤ 4) resolved frames before the bracket
    near = [int(k) for k in order[:list(order).index(first_un)]][-4:]
    if len(near) >= 2:
        x, y = Ts[near], D[near] ** 2
        w = 1.0 / np.maximum(2 * D[near] * S[near], 1e-12) ** 2
        A = np.vstack([x, np.ones_like(x)]).T
        Aw = A * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(Aw, y * np.sqrt(w), rcond=None)
        r = y * np.sqrt(w) - Aw @ coef
        chi2 = float(r @ r) / max(len(x) - 2, 1)
        cov = np.linalg.pinv(Aw.T @ Aw) * max(chi2, 1.0)
        slope, icpt = coef
        if (slope < 0) == low_split and slope != 0:
            ts = -icpt / slope
            g = np.array([icpt / slope ** 2, -1.0 / slope])
            out["T_meanfield_C"] = _r(ts, 3)
            out["sigma_meanfield_C"] = _r(math.sqrt(max(float(g @ cov @ g), 0.0)), 3)
            out["meanfield_frames_T_C"] = [_r(t, 3) for t in x]
    return out


def _auto_merging(res: SeriesResult, pid: str) -> list[dict]:
    """Report axis merging for orthorhombic phases whose two axes are within 1 % (pseudo-tetragonal)."""
    info = res.phase_info[pid]
    a, b, c = info["library_cell"][:3]
    n = info.get("spacegroup_number") or 0
    out = []
    if 16 <= n <= 74:
        for ax in (("a", "b"), ("a", "c"), ("b", "c")):
            p1 = info["library_cell"][LATTICE_NAMES.index(ax[0])]
            p2 = info["library_cell"][LATTICE_NAMES.index(ax[1])]
            if abs(p1 - p2) / max(p1, p2) < 0.01:
                m = axis_merging(res, pid, ax)
                if m is not None:
                    out.append(m)
    return out


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def _fmt(v, nd=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{nd}f}"


def render_series_markdown(result: SeriesResult, *, figures: dict | None = None) -> str:
    """A Markdown report: phases (MODEL/synthetic labels), events, expansion, transitions, skipped frames."""
    r = result
    L = []
    title = "# Thermal series — phase map"
    if r.synthetic:
        title += " (SYNTHETIC data)"
    L.append(title)
    L.append("")
    if r.synthetic:
        L.append("> **SYNTHETIC series**: generated by `xtal.synth` from a stated programme, not "
                 "measured. The programme is stored in `series.nc` (attribute `program`).")
        L.append("")
    stand_ins = []
    try:
        prog = json.loads(r.attrs.get("program", "{}")) if isinstance(r.attrs.get("program"), str) else {}
        stand_ins = [(p["phase"]["id"], p["stand_in_for"]) for p in prog.get("phases", [])
                     if p.get("stand_in_for")]
    except (ValueError, KeyError, TypeError):
        stand_ins = []
    if stand_ins:
        L.append("> **Stand-ins** in the programme: " + "; ".join(
            f"{pid} stands in for {what}" for pid, what in stand_ins) + ".")
        L.append("")
    found = [pid for j, pid in enumerate(r.phase_ids) if r.present[:, j].any()]
    models = [pid for pid, i in r.phase_info.items() if i.get("model")]
    if [m for m in models if m in found]:
        L.append("> **Structural MODELS** (coordinates built for this project, not refined) found in "
                 "this series: " + ", ".join(m for m in models if m in found) + ". Their intensities "
                 "are indicative; cells and phase presence are still meaningful.")
        L.append("")
    T = r.temperature_c
    ok = [x for x in r.records if x.status == "ok"]
    L.append(f"- frames: {len(r.records)} ({len(ok)} fitted, {len(r.skipped)} skipped)")
    if np.isfinite(T).any():
        L.append(f"- temperature: {np.nanmin(T):.1f} – {np.nanmax(T):.1f} °C")
    if r.wavelength_angstrom:
        L.append(f"- wavelength: {r.wavelength_angstrom:.6f} Å")
    rw = np.array([x.rwp for x in ok])
    if rw.size:
        L.append(f"- Rwp: median {np.median(rw):.4f}, max {np.max(rw):.4f}")
    L.append(f"- method: per-frame whole-pattern fits (xtal.identify) with continuity, Viterbi phase "
             f"presence (switch penalty {r.options.get('switch_penalty')}), "
             f"elapsed {r.elapsed_s:.1f} s")
    L.append("")
    L.append("## Phases")
    L.append("")
    L.append("| phase | name | kind | frames present | T range (°C) | max weight fraction |")
    L.append("|---|---|---|---|---|---|")
    for j, pid in enumerate(r.phase_ids):
        pres = r.present[:, j]
        if not pres.any():
            continue
        info = r.phase_info[pid]
        kind = (info.get("kind") or "") + (" **MODEL**" if info.get("model") else "")
        tr = f"{np.nanmin(T[pres]):.1f} – {np.nanmax(T[pres]):.1f}" if np.isfinite(T[pres]).any() else "–"
        wf = np.nanmax(r.values("wf", pid))
        L.append(f"| {pid} | {info.get('name', '')} | {kind} | {int(pres.sum())} | {tr} | {_fmt(wf, 3)} |")
    if not found:
        L.append("| – | no library phase found in any frame | | | | |")
    absent = [pid + (" (MODEL)" if r.phase_info[pid].get("model") else "")
              for pid in r.phase_ids if pid not in found]
    if absent:
        L.append("")
        L.append("Searched, not found in any frame: " + ", ".join(absent) + ".")
    L.append("")
    L.append("## Events")
    L.append("")
    if r.events:
        L.append("| phase | event | frame | T (°C) | σ (°C) | time (s) | note |")
        L.append("|---|---|---|---|---|---|---|")
        for e in r.events:
            note = []
            if e.get("isothermal"):
                note.append("during isothermal hold (located by time)")
            if e["kind"] == "jump":
                note.append(f"ΔV = {e.get('volume_change_pct')} %" + (f" from {e['from_phase']}" if e.get("from_phase") else ""))
            if e["kind"] == "amorphous":
                note.append(f"amorphous fraction max {e.get('amorphous_fraction_max')}")
            L.append(f"| {e['phase']} | {e['kind']} | {e['frame']} | {_fmt(e.get('T_C'))} | "
                     f"{_fmt(e.get('sigma_C'))} | {_fmt(e.get('time_s'), 0)} | {'; '.join(note)} |")
    else:
        L.append("No phase appears or disappears inside the series.")
    L.append("")
    if r.lattice_transitions:
        L.append("## Lattice transitions (axis merging)")
        L.append("")
        for t in r.lattice_transitions:
            if t.get("T_merge_C") is None:
                L.append(f"- {t['phase']}: {'/'.join(t['axes'])} — {t.get('note', 'no merging')}")
                continue
            s = (f"- {t['phase']}: {t['axes'][0]} and {t['axes'][1]} merge between "
                 f"{t['T_last_split_C']:.1f} and {t['T_first_merged_C']:.1f} °C → "
                 f"**T = {t['T_merge_C']:.1f} ± {t['sigma_C']:.1f} °C ({t['T_merge_C'] + 273.15:.1f} K)**"
                 f" ({t['split_side']} side split)")
            if t.get("T_meanfield_C") is not None:
                s += (f"; mean-field fit Δ² ∝ (T_s − T) on the last split frames: T_s = "
                      f"{t['T_meanfield_C']:.1f} ± {t['sigma_meanfield_C']:.1f} °C "
                      f"({t['T_meanfield_C'] + 273.15:.1f} K)")
            if t.get("resolved_beyond_bracket_C"):
                s += (" — splitting resolved again at " + ", ".join(f"{v:.1f}" for v in
                      t["resolved_beyond_bracket_C"]) + " °C (noise or re-entrance: judge)")
            L.append(s)
        L.append("")
    L.append("## Thermal expansion (within each phase's range)")
    L.append("")
    if r.expansion:
        L.append("| phase | parameter | α (10⁻⁶/K) | s.u. | T range (°C) | frames | order |")
        L.append("|---|---|---|---|---|---|---|")
        for pid, d in r.expansion.items():
            for key, v in d.items():
                a = v["alpha_per_K"]
                L.append(f"| {pid} | {key} | {_fmt(a * 1e6 if a is not None else None, 2)} | "
                         f"{_fmt(v['alpha_su'] * 1e6 if v['alpha_su'] is not None else None, 2)} | "
                         f"{_fmt(v['T_range_C'][0], 1)} – {_fmt(v['T_range_C'][1], 1)} | "
                         f"{v['n_frames']} | {v['order']} |")
    else:
        L.append("Not enough frames per phase.")
    L.append("")
    L.append("## Skipped frames")
    L.append("")
    if r.skipped:
        for s in r.skipped:
            L.append(f"- frame {s['frame']} ({s['source']}): {s['reason']}")
    else:
        L.append("None.")
    if r.notes:
        L.append("")
        L.append("## Notes")
        L.append("")
        for n_ in r.notes[:50]:
            L.append(f"- {n_}")
    if figures:
        L.append("")
        L.append("## Figures")
        L.append("")
        for name, p in figures.items():
            L.append(f"![{name}]({Path(p).name})")
            L.append("")
    L.append("")
    L.append("Files: `series.nc` (xarray Dataset), `phases.csv`, `events.json`.")
    return "\n".join(L) + "\n"
