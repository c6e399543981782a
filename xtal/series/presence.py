"""Phase presence: per-frame evidence, a two-state Viterbi path per phase, and the consistency
pass that refits frames whose Viterbi phase set differs from the set that was fitted.

The evidence for "present" is the log-likelihood ratio ``½(z² − z0²)`` with ``z = scale/su`` and
``z0² = max(ln(n)·(1 + n_lattice), presence_z²)`` (the BIC price of the phase's parameters); a
phase below ``min_share`` of the frame's (or the series' typical) Bragg intensity counts as absent.
"""
from __future__ import annotations

import math

import numpy as np

from xtal.errors import XtalError
from xtal.series import fitting
from xtal.series.chain import Chain, FrameRecord, SeriesOptions
from xtal.series.result import FrameTable
from xtal.series.source import to_pattern

__all__ = ["viterbi_presence", "min_runs", "presence", "consistency_pass"]


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


def evidence(table: FrameTable, phases: list, opts: SeriesOptions) -> np.ndarray:
    """(frame, phase) log-likelihood ratio present/absent from the fitted and screened z."""
    ok, fitted = table.ok(), table.a("fitted")
    br = table.a("bragg_intensity")[ok & fitted.any(axis=1)]
    br = br[np.isfinite(br)]
    bragg_ref = float(np.percentile(br, 90)) if br.size else 0.0
    nlat = np.array([fitting.n_lattice_params(p) for p in phases], float)
    # the price of a phase: its BIC (ln n per parameter), and at least the detection level
    z0sq = np.maximum(np.log(np.maximum(table.a("n_points"), 10))[:, None] * (1 + nlat)[None, :],
                      opts.presence_z ** 2)
    # a phase must carry min_share of the frame's Bragg intensity and of the series' typical
    # Bragg intensity (when the crystalline phases are gone, nothing may fit the halo or noise)
    pb = table.a("phase_bragg")
    with np.errstate(invalid="ignore"):
        big = (table.a("bragg_share") >= opts.min_share) & (
            (not bragg_ref) | ~np.isfinite(pb) | (pb >= opts.min_share * bragg_ref))
    sz = table.a("screen_z")
    z = np.where(fitted, np.where(big, table.a("scale_z"), 0.0), np.nan_to_num(sz, nan=0.0))
    ev = np.clip(0.5 * (z * z - z0sq), -1e6, 1e6)
    ev[~fitted & ~np.isfinite(sz)] = -1e-3   # not fitted, not screened: judged absent online
    ev[~ok] = 0.0
    return ev


def presence(table: FrameTable, phases: list, opts: SeriesOptions) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi presence (frame, phase) and the evidence it was computed from."""
    ev = evidence(table, phases, opts)
    pres = np.stack([min_runs(viterbi_presence(ev[:, j], opts.switch_penalty), opts.min_run_frames)
                     for j in range(ev.shape[1])],
                    axis=1) if ev.shape[1] else np.zeros_like(ev, dtype=bool)
    pres[~table.ok()] = False
    return pres, ev


def min_runs(path: np.ndarray, min_frames: int) -> np.ndarray:
    """No flicker: a run of presence (or a gap in it) shorter than ``min_frames`` frames is merged
    into its surroundings (shortest run first, until every run is long enough).

    A phase appears or disappears only with evidence in several consecutive frames; a one- or
    two-frame blip is noise or a misfit, not a transition. Runs at the ends of the series count
    too (nothing before or after confirms them).
    """
    p = np.asarray(path, bool).copy()
    n = p.size
    if min_frames <= 1 or n < min_frames:
        return p
    changed = True
    while changed:
        changed = False
        edges = np.flatnonzero(np.diff(p.astype(np.int8))) + 1
        starts = np.concatenate([[0], edges])
        stops = np.concatenate([edges, [n]])
        if starts.size <= 1:
            break
        lengths = stops - starts
        k = int(np.argmin(lengths))
        if lengths[k] >= min_frames:
            break
        a, b = starts[k], stops[k]
        p[a:b] = not p[a]
        changed = True
    return p


def _nearest_cell(table: FrameTable, k: int, j: int, good: np.ndarray):
    """Cell of phase j in the frame nearest to k (not k; the earlier one on a tie) where `good`."""
    idx = np.flatnonzero(good[:, j])
    idx = idx[idx != k]
    if not idx.size:
        return None
    kk = idx[np.argmin(np.abs(idx - k))]
    return tuple(table.a("cell")[kk, j])


def _seed_state(table: FrameTable, k: int, want: list[str], good: np.ndarray, lib: dict,
                presence_z: float) -> dict:
    """Chain state for refitting frame k with `want`: cells from the nearest frames where each
    phase was fitted significantly, else the frame's own cell, else the library cell."""
    cells = {}
    for pid in want:
        j = table.phase_ids.index(pid)
        c = _nearest_cell(table, k, j, good)
        if c is None and table.a("fitted")[k, j] and table.a("scale_z")[k, j] >= presence_z:
            c = tuple(table.a("cell")[k, j])
        cells[pid] = c if c is not None else tuple(lib[pid].cell.parameters)
    zero = table.a("zero_shift_deg")[k]
    return {"cells": cells, "active": want, "zero": float(zero) if math.isfinite(zero) else 0.0,
            "profile": table.profile(k)}


def _refit(chain: Chain, table: FrameTable, k: int, pat, state: dict, phase_set, screen_z):
    chain.set_state(state)
    rec = FrameRecord(index=k, **table.meta(k), screen_z=dict(screen_z), notes=table.notes(k))
    chain.frame(pat, rec, force_ids=list(phase_set))
    return rec


def consistency_pass(src, table: FrameTable, present: np.ndarray, phases: list,
                     opts: SeriesOptions) -> int:
    """Refit frames whose Viterbi phase set differs from the set with a positive scale in the fit;
    returns the number of frames refitted."""
    ids = table.phase_ids
    fp = table.fitted_positive()
    todo = np.flatnonzero(table.ok() & (present != fp).any(axis=1))
    if not todo.size:
        return 0
    chain = Chain(phases, opts)
    lib = {p.id: p for p in phases}
    got = src.fetch(todo)
    for k in (int(k) for k in todo):
        want = [ids[j] for j in np.flatnonzero(present[k])]
        with np.errstate(invalid="ignore"):     # (frames refitted before k count as refitted)
            good = table.fitted_positive() & (table.a("scale_z") >= opts.presence_z)
        state = _seed_state(table, k, want, good, lib, opts.presence_z)
        screen_z = table.screen_z(k)
        try:
            pat = to_pattern(got[k], k, [], opts.max_nan_fraction)
            new = _refit(chain, table, k, pat, state, want, screen_z)
            # a phase that the full fit does not support (guarded lattice, insignificant scale)
            # overrides its screen evidence and is left out of the frame's reported fit
            bad = [p for p in want if new.phase.get(p, {}).get("z", 0.0) < opts.presence_z]
            if bad:
                sz = dict(new.screen_z, **{p: 0.0 for p in bad})
                new = _refit(chain, table, k, pat, state, [p for p in want if p not in bad], sz)
                new.notes.append(f"frame {k}: {', '.join(bad)} not supported by the full fit")
        except XtalError as exc:
            new = FrameRecord(index=k, **table.meta(k), screen_z=dict(screen_z), notes=table.notes(k))
            new.status, new.reason = "skipped", f"{type(exc).__name__}: {exc}"
        new.notes.append("refitted with the phase set of the Viterbi pass")
        table.put(new)
    return len(todo)
