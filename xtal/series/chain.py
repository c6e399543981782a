"""The continuity chain: frames fitted in order, each from its predecessor's solution.

A `Chain` carries the active phase set, the last refined cell of every phase seen, the zero shift
and the profile from frame to frame.  It seeds itself on its first frame, screens all phases every
few frames (adaptive interval) or when the fit quality drops, admits phases whose screen evidence is
significant, drops phases whose scale is not, and retries fits that left the neighbour's minimum.
Each frame's outcome is a small `FrameRecord` that the driver writes into the result's arrays.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from xtal import numeric
from xtal.errors import SeriesError, XtalError
from xtal.series import fitting
from xtal.series.source import (FrameWavelengthError, binned_intensity, check_wavelength, frame_meta,
                                to_pattern)

__all__ = ["SeriesOptions", "FrameRecord", "Chain", "coarse_step", "run_chunk"]


@dataclass
class SeriesOptions:
    wavelength: Any = None
    polarization: Any = None          # beam polarisation for LP (None: unpolarised lab beam)
    screen_every: int = 4
    switch_penalty: float = 8.0
    min_run_frames: int = 3           # a phase appears/disappears only with evidence in ≥ this many frames
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
    """One frame's fit outcome, as the chain produces it (written into the result's arrays)."""

    index: int
    temperature_c: float = float("nan")
    time_s: float = float("nan")
    segment: str = ""
    source: str = ""
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
    phase: dict = field(default_factory=dict)   # id -> dict(scale, scale_su, wf, wf_su, cell, cell_su, vol, vol_su, fwhm, z, share, bragg)
    screen_z: dict = field(default_factory=dict)  # id -> z of the screen (only on screened frames)
    heat: np.ndarray | None = None
    notes: list = field(default_factory=list)
    entered: list = field(default_factory=list)   # phases that joined the active set here


def _z(pf) -> float:
    if pf.scale is None or pf.scale <= 0:
        return 0.0
    if not pf.scale_su or not math.isfinite(pf.scale_su) or pf.scale_su <= 0:
        return 0.0
    return float(pf.scale / pf.scale_su)


def _nan(v) -> float:
    return float(v) if v is not None else float("nan")


def _phase_dict(pf, share: float) -> dict:
    return {
        "scale": float(pf.scale), "scale_su": float(pf.scale_su) if pf.scale_su else float("nan"),
        "wf": _nan(pf.weight_fraction), "wf_su": _nan(pf.weight_fraction_su),
        "cell": [float(v) for v in pf.cell], "cell_su": [_nan(v) for v in pf.cell_su],
        "vol": float(pf.volume_angstrom3), "vol_su": _nan(pf.volume_su), "fwhm": _nan(pf.fwhm_deg),
        "z": _z(pf), "share": float(share),
        "bragg": float(getattr(pf, "bragg_intensity", float("nan"))),
    }


def _shares(fit) -> dict[str, float]:
    tot = sum(max(getattr(p, "bragg_intensity", 0.0), 0.0) for p in fit.phases)
    return {p.id: (max(getattr(p, "bragg_intensity", 0.0), 0.0) / tot if tot > 0 else 0.0)
            for p in fit.phases}


class Chain:
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
    def _start(self, ids, cells=None, zero=None, profile=None):
        return fitting.start_from(self.cells if cells is None else cells, ids,
                                  self.zero if zero is None else zero,
                                  self.profile if profile is None else profile)

    def _fit(self, pattern, ids, *, refine_lattice=None, refine_profile="auto", start=None,
             strains=None, max_iter=None, amorphous=True):
        o = self.opts
        return fitting.fit_frame(
            pattern, [self.phases[i] for i in ids], wavelength=o.wavelength,
            polarization=o.polarization, start=start,
            refine_lattice=o.refine_lattice if refine_lattice is None else refine_lattice,
            background=o.background, n_background=o.n_background, refine_profile=refine_profile,
            strains=strains, max_strain=o.max_strain, two_theta_range=o.two_theta_range,
            amorphous=amorphous, max_iter=max_iter if max_iter is not None else o.max_nfev)

    def seed(self, pattern) -> None:
        """First frame of a chain, from the library cells.  Two starts are tried and the one whose
        refined fit has the lower Rwp is kept: (A) identify (screen + beam search), (B) every phase
        with the isotropic strain of the peak screen, active = the phases with a significant scale."""
        o = self.opts
        phases = [self.phases[i] for i in self.order]
        starts = []
        try:
            fit = fitting.identify_start(pattern, phases, wavelength=o.wavelength,
                                         polarization=o.polarization, background=o.background,
                                         max_strain=o.max_strain, refine_lattice=o.refine_lattice,
                                         two_theta_range=o.two_theta_range)
            if fit is not None:
                starts.append(fit)
        except XtalError:
            pass
        try:
            strains = fitting.screen_strains(pattern, phases, wavelength=o.wavelength,
                                             max_strain=o.max_strain, polarization=o.polarization)
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
                ref = self._fit(pattern, act, start=self._start(act, cells, fit.zero_shift_deg,
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
        return self._fit(pattern, self.order, refine_lattice="isotropic", refine_profile="none",
                         start=self._start(self.order), max_iter=3, amorphous=False)

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
            alt = self._fit(pattern, ids, start=self._start(ids, alt_cells))
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
            iso = self._fit(pattern, ids, refine_lattice="isotropic", start=self._start(ids))
            cells = {p.id: tuple(p.cell) for p in iso.phases}
            full = self._fit(pattern, ids, start=self._start(ids, cells, iso.zero_shift_deg,
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

    def _admit(self, screened, rec: FrameRecord, ids) -> bool:
        """Record a screen's z and let phases with significant evidence join the active set."""
        rec.screen_z.update(self.screen_z(screened))
        added = False
        for p in screened.phases:
            if p.id not in ids and rec.screen_z[p.id] >= self.opts.enter_z:
                self.active.append(p.id)
                rec.entered.append(p.id)
                self.cells[p.id] = tuple(p.cell)
                added = True
        return added

    def _fit_active(self, pattern, ids, rec, screened, forced):
        """Fit the frame's phase set (with the pseudo-symmetry check, a screen on an Rwp jump and a
        two-stage retry); returns the fit and the (possibly extended) phase set."""
        o = self.opts
        fit = self._fit(pattern, ids, start=self._start(ids))
        fit = self._pseudo_symmetric(pattern, ids, fit, rec)
        # an unexplained residual (Rwp jump) triggers a screen and a second fit
        med = numeric.median(np.array(self.rwp_hist)) if len(self.rwp_hist) >= 3 else None
        if not forced and screened is None and med and fit.rwp > o.rwp_jump * med:
            screened = self.screen(pattern)
            if self._admit(screened, rec, ids):
                ids = [i for i in self.order if i in self.active]
                fit = self._fit(pattern, ids, start=self._start(ids))
        if med and fit.rwp > o.rwp_jump * med:
            fit = self._retry(pattern, ids, fit, rec)
        return fit, ids, screened

    def _record(self, fit, ids, rec: FrameRecord) -> None:
        """Write a frame's fit into its record (phases whose lattice ran away get z = 0)."""
        rec.fitted = tuple(ids)
        rec.rwp, rec.chi2 = float(fit.rwp), float(fit.chi2)
        rec.bragg_intensity = float(fit.bragg_intensity) if ids else 0.0
        af = fit.amorphous_fraction
        rec.amorphous_fraction = float(af) if af is not None else (
            1.0 if not ids or rec.bragg_intensity <= 0 else float("nan"))
        if not ids:
            rec.amorphous_fraction = fitting.halo_only_fraction(fit)
        rec.zero_shift_deg = float(fit.zero_shift_deg)
        rec.profile = dict(fit.profile)
        rec.n_points = int(fit.n_points)
        if not ids:
            return
        sh = _shares(fit)
        for p in fit.phases:
            rec.phase[p.id] = d = _phase_dict(p, sh.get(p.id, 0.0))
            prev = self.cells.get(p.id)
            if prev is not None and p.scale > 0:
                step = max(abs(d["cell"][k] / prev[k] - 1.0) for k in range(3))
                if step > self.opts.max_step_strain:
                    # a lattice that runs away in one frame is fitting something else
                    # (a halo, another phase's peaks): not evidence for this phase
                    d["z"] = 0.0
                    rec.notes.append(f"frame {rec.index}: {p.id} lattice moved {100 * step:.2f} % "
                                     "in one frame; not counted as present")
            if p.scale > 0 and d["z"] > 0 and fitting.peaks_absent(fit, p.id):
                # the acceptance rule of identify: strong predicted peaks missing from the data
                d["z"] = 0.0

    def frame(self, pattern, rec: FrameRecord, *, force_screen: bool = False,
              force_ids: Sequence[str] | None = None) -> FrameRecord:
        o = self.opts
        forced = force_ids is not None
        screened = None
        if not self.seeded:
            self.seed(pattern)
            screened = self.screen(pattern)
        elif not forced and (force_screen or self.since_screen + 1 >= self.interval
                             or not self.active):
            screened = self.screen(pattern)     # (a frame without active phase is always screened)
        active_before = set(self.active)
        if not forced:
            self.since_screen = 0 if screened is not None else self.since_screen + 1
        if screened is not None:
            self._admit(screened, rec, self.active)
        ids = list(force_ids) if forced else [i for i in self.order if i in self.active]
        if ids:
            fit, ids, screened = self._fit_active(pattern, ids, rec, screened, forced)
        else:
            fit = screened if screened is not None else self.screen(pattern)
            if not rec.screen_z:
                rec.screen_z.update(self.screen_z(fit))
        self._record(fit, ids, rec)
        if ids:
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
            if not forced:
                self.active = keep
        if not forced:
            # adaptive screening: the interval doubles (up to 4 × screen_every) while screens find
            # nothing new, and returns to screen_every when the phase set changes
            if set(self.active) != active_before or rec.entered:
                self.interval = max(1, o.screen_every)
            elif screened is not None:
                self.interval = min(2 * self.interval, 4 * max(1, o.screen_every))
        return rec


def fit_item(chain: Chain, item, i: int, opts: SeriesOptions, heat_range, wl_ref,
             **frame_kw) -> tuple[FrameRecord, Any]:
    """Fit one fetched frame with `chain`; an unusable frame is returned as skipped (a frame whose
    λ differs from the series' raises).  Returns the record and the pattern (None if unreadable)."""
    rec = FrameRecord(index=i, **frame_meta(item, i))
    pat = None
    try:
        pat = to_pattern(item, i, rec.notes, opts.max_nan_fraction)
        check_wavelength(pat, wl_ref, i)
        rec.heat = binned_intensity(pat, opts.heatmap_bins, heat_range)
        chain.frame(pat, rec, **frame_kw)
    except FrameWavelengthError:
        raise
    except SeriesError as exc:
        rec.status, rec.reason = "skipped", str(exc)
    except XtalError as exc:
        rec.status, rec.reason = "skipped", f"{type(exc).__name__}: {exc}"
    return rec, pat


def coarse_step(chain: Chain, item, i: int, opts: SeriesOptions, heat_range,
                wavelength_ref) -> tuple[dict | None, FrameRecord]:
    """One frame of the coarse chain that seeds parallel chunks: frame i fitted by `chain` with
    every phase screened.  Returns the chain's state after it (None while the chain is not seeded:
    no usable frame yet) and the frame's record."""
    rec, _ = fit_item(chain, item, i, opts, heat_range, wavelength_ref, force_screen=True)
    return (chain.state() if chain.seeded else None), rec


def run_chunk(items: list[tuple[int, Any]], phases: list, opts: SeriesOptions,
              state: dict | None, heat_range, wavelength_ref, *,
              coarse_head: bool = False) -> tuple[list[FrameRecord], dict]:
    """Fit a contiguous chunk of frames with continuity (runs in a worker process).

    ``coarse_head``: `state` is the coarse chain's state *before* the chunk's first frame; that
    frame's coarse step (`coarse_step`) is taken here first, as the driver would have taken it,
    and the chunk starts from the state after it."""
    chain = Chain(phases, opts)
    if state is not None:
        chain.set_state(state)
    if coarse_head and items:
        coarse_step(chain, items[0][1], items[0][0], opts, heat_range, wavelength_ref)
    out = []
    buf: deque = deque(maxlen=4 * max(1, opts.screen_every))   # recent (record, pattern): backtracking
    for i, item in items:
        rec, pat = fit_item(chain, item, i, opts, heat_range, wavelength_ref)
        if rec.entered:
            _backtrack(chain, buf, rec.entered, opts)
        out.append(rec)
        if rec.status == "ok":
            buf.append((rec, pat))
    return out, chain.state()


def _backtrack(chain: Chain, buf, entered: list[str], opts: SeriesOptions) -> None:
    """A phase joined at this frame: screen the preceding unscreened frames (newest first) so that
    its onset is located to the frame, not to the screening interval."""
    for prev, pat in reversed(buf):
        if prev.screen_z:
            break
        prev.screen_z.update(chain.screen_z(chain.screen(pat)))
        if not any(prev.screen_z.get(pid, 0.0) >= opts.enter_z for pid in entered):
            break
