"""Synthetic powder patterns and thermal series from a stated programme (always labelled SYNTHETIC).

Everything generated here is a simulation, never a measurement: every `Pattern` carries
``meta["synthetic"] = True`` and the full recipe in ``meta["program"]``; every series carries
``attrs["synthetic"] = 1``, a ``title`` saying so and the programme as JSON in ``attrs["program"]``, so
that a test (or a reader of a figure) can compare what was recovered with what was programmed.

Intensity convention (shared with `xtal.identify`, see docs/ARCHITECTURE.md): phase *p* contributes
``S_p · Σ_hkl mult·|F|²·LP · profile`` with |F|² per unit cell, and its Hill–Howard weight fraction is
``W_p = S_p (ZMV)_p / Σ_q S_q (ZMV)_q`` with ZM = `Phase.cell_mass_dalton` and V the cell volume (Å³)
of the cell actually used (strained / thermally expanded).  Hence the generator sets
``S_p = K · W_p / (ZMV)_p`` with one constant K per pattern (per series).

An amorphous halo is a broad pseudo-Voigt centred at 2θ(d); its integrated area is
``f/(1−f)`` times the integrated Bragg area, so that ``halo/(halo + Bragg) = f`` (the "amorphous fraction"
as `identify` reports it).  In a series the halo area is ``K·f·A_unit`` with ``A_unit`` the Bragg area
per unit crystalline weight fraction of the programme's phases (fixed for the whole series), so that a
solvate turning amorphous loses Bragg intensity while the halo grows.

Zero shift: the observed position is ``2θ_true + zero_shift_deg``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from xtal.errors import SimulationError
from xtal.beam import lorentz_polarization, parse_radiation, two_theta_from_d
from xtal.profiles import caglioti_fwhm
from xtal.simulate import cell_volume

__all__ = [
    "synthetic_pattern", "synthetic_series", "iter_synthetic_frames",
    "SeriesProgram", "Segment", "PhaseStage", "HaloStage",
    "SYNTHETIC_LABEL",
]

SYNTHETIC_LABEL = "SYNTHETIC (xtal.synth, generated from a stated programme — not a measurement)"



# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _cell_tuple(cell) -> tuple[float, ...]:
    if hasattr(cell, "parameters"):
        return tuple(float(v) for v in cell.parameters)
    t = tuple(float(v) for v in cell)
    if len(t) != 6:
        raise SimulationError(f"a cell is (a, b, c, alpha, beta, gamma); got {cell!r}")
    return t


def _phase_label(phase) -> dict:
    prov = getattr(phase, "provenance", None)
    kind = getattr(prov, "kind", None)
    return {
        "id": phase.id,
        "name": getattr(phase, "name", phase.id),
        "spacegroup": getattr(phase, "spacegroup_hm", None),
        "kind": kind,
        "model": bool(getattr(phase, "is_model", False)),
        "cif": getattr(prov, "file", None),
        "cell_cif": list(_cell_tuple(phase.cell)),
    }


class _PhaseSim:
    """Reflections of one phase, cached once, repositioned for a strained cell and any λ."""

    def __init__(self, phase, wavelength: float, two_theta_range_deg, max_strain: float = 0.06,
                 polarization=None):
        from xtal import simulate

        self.phase = phase
        self.sim = simulate
        lo, hi = two_theta_range_deg
        # widen the range so that reflections that move into the window under strain are kept
        s_hi = min(0.999, math.sin(math.radians(hi) / 2) * (1 + max_strain) * 1.02)
        hi_w = min(2 * math.degrees(math.asin(s_hi)) + 1.0, 179.0)
        lo_w = max(0.05, 2 * math.degrees(math.asin(math.sin(math.radians(lo) / 2) / (1 + max_strain))) - 0.5)
        self.table = simulate.reflection_table(phase, wavelength_angstrom=wavelength,
                                               two_theta_range_deg=(lo_w, hi_w), polarization=polarization)
        if len(self.table.hkl) == 0:
            raise SimulationError(f"phase {phase.id}: no reflections in 2θ {lo}–{hi}° at λ = {wavelength} Å")
        self.cell0 = _cell_tuple(phase.cell)
        self.mass = float(phase.cell_mass_dalton)
        self._cache: dict = {}

    def peaks(self, cell, lam) -> tuple[np.ndarray, np.ndarray]:
        """(2θ centres, mult·|F|²·LP) for `cell` and wavelength `lam` (|F|² of the CIF cell)."""
        key = (tuple(round(v, 10) for v in cell), round(lam, 10))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        t = self.table
        at = getattr(t, "at", None)
        if at is not None:
            moved = at(cell, lam)
            out = (np.asarray(moved.two_theta_deg, float), np.asarray(moved.intensity, float))
        else:
            d = np.asarray(self.sim.d_spacings(cell, t.hkl), float)
            tth = two_theta_from_d(d, lam)
            ok = np.isfinite(tth)
            tth = tth[ok]
            lp = np.asarray(lorentz_polarization(tth, *self._pol()), float)
            out = (tth, np.asarray(t.multiplicity, float)[ok] * np.asarray(t.f_squared, float)[ok] * lp)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = out
        return out

    def _pol(self):
        pol = getattr(self.table, "polarization", None)
        return () if pol is None else (pol,)


def _fwhm(tth, fwhm_deg, caglioti):
    if caglioti is not None:
        return caglioti_fwhm(tth, *caglioti, min_fwhm_deg=1e-4)
    return np.full_like(tth, float(fwhm_deg))


def _profile(x, centres, areas, fwhm, eta):
    from xtal.profiles import pseudo_voigt_profile

    if len(centres) == 0:
        return np.zeros_like(x)
    return np.asarray(pseudo_voigt_profile(x, centres, areas, fwhm, eta), float)


def _background(x, background) -> np.ndarray:
    if not background:
        return np.zeros_like(x)
    kind = background.get("kind", "chebyshev")
    if kind == "constant":
        return np.full_like(x, float(background.get("level", 0.0)))
    if kind == "chebyshev":
        t = 2 * (x - x[0]) / (x[-1] - x[0]) - 1 if x[-1] > x[0] else np.zeros_like(x)
        return np.polynomial.chebyshev.chebval(t, np.asarray(background.get("coeffs", [0.0]), float))
    raise SimulationError(f"unknown background kind {kind!r} (chebyshev | constant)")


def _bragg(sims, scales, cells, x, lines, zero, fwhm_deg, caglioti, eta, fwhm_per_phase=None):
    """Σ_p S_p Σ_hkl I_hkl profile; also Σ of the areas inside the window (per phase)."""
    y = np.zeros_like(x)
    areas = []
    for i, (ps, s, cell) in enumerate(zip(sims, scales, cells)):
        tot = 0.0
        if s > 0:
            for lam, w in lines:
                c, inten = ps.peaks(cell, lam)
                c = c + zero
                m = (c > x[0] - 5) & (c < x[-1] + 5)
                c, a = c[m], s * w * inten[m]
                fw = fwhm_per_phase[i] if fwhm_per_phase and fwhm_per_phase[i] else fwhm_deg
                y += _profile(x, c, a, _fwhm(c, fw, caglioti), eta)
                tot += float(a[(c >= x[0]) & (c <= x[-1])].sum())
        areas.append(tot)
    return y, areas


def _halo(x, lam, zero, d_angstrom, fwhm_deg, area, eta=0.5):
    c = float(two_theta_from_d([d_angstrom], lam)[0])
    if not np.isfinite(c):
        raise SimulationError(f"halo at d = {d_angstrom} Å is not reachable at λ = {lam} Å")
    return _profile(x, np.array([c + zero]), np.array([area]), np.array([fwhm_deg]), eta)


def _noisy(mu, noise, rng):
    mu = np.maximum(mu, 0.0)
    if noise:
        y = rng.poisson(mu).astype(float)
    else:
        y = mu.copy()
    return y, np.sqrt(np.maximum(y, 1.0))


# ----------------------------------------------------------------------------------------------
# single pattern
# ----------------------------------------------------------------------------------------------
def synthetic_pattern(phases: Sequence, weight_fractions: Sequence[float], *,
                      wavelength_angstrom=0.71073,
                      two_theta_range_deg=(3.0, 50.0), step_deg: float = 0.01,
                      strain: Sequence[float] | None = None,
                      cells: Sequence | None = None,
                      zero_shift_deg: float = 0.0,
                      fwhm_deg: float = 0.08, caglioti: tuple[float, float, float] | None = None,
                      eta: float = 0.5,
                      background: dict | None = None,
                      halo: dict | None = None,
                      counts_max: float = 1e4, noise: bool = True, seed: int = 0,
                      polarization=None):
    """A synthetic powder pattern (`xtal.io.Pattern`, labelled synthetic) from phases and weight fractions.

    Parameters
    ----------
    phases, weight_fractions : the crystalline phases (`xtal.structures.Phase`) and their Hill–Howard
        weight fractions (normalised to 1 over the crystalline phases).
    wavelength_angstrom : λ in Å, a Kα doublet ``(λ1, λ2, I2/I1)`` or a tube name (``"CuKa"``, ``"MoKa"``,
        ``"CuKa1"``; `xtal.beam.parse_radiation`).
    strain : isotropic relative change of a, b, c per phase (e.g. 0.002 = +0.2 %).
    cells : explicit cells ``(a, b, c, alpha, beta, gamma)`` per phase (overrides `strain`).
    zero_shift_deg : added to every peak position.
    fwhm_deg / caglioti / eta : pseudo-Voigt width (constant, or Caglioti ``(U, V, W)`` in deg²) and mixing.
    background : ``{"kind": "chebyshev", "coeffs": [...]}`` (counts, x mapped to [-1, 1]) or
        ``{"kind": "constant", "level": c}``.
    halo : amorphous halo ``{"d_angstrom": 6.4, "fwhm_deg": 3.0, "fraction": 0.2, "eta": 0.5}``;
        ``fraction`` = halo area / (halo + Bragg area).
    counts_max : the maximum of the noise-free signal (Bragg + halo, without background).
    polarization : beam polarisation for LP (``xtal.beam.Polarization`` or text, `xtal.beam.parse_polarization`); None =
        unpolarised lab beam.
    noise : Poisson counting noise (seeded by `seed`).

    Returns a Pattern on the 2θ axis with ``meta["synthetic"] = True`` and ``meta["program"]`` the recipe.
    """
    from xtal.io import Pattern

    phases = list(phases)
    wf = np.asarray(list(weight_fractions), dtype=float)
    if len(phases) != len(wf):
        raise SimulationError(f"{len(phases)} phases but {len(wf)} weight fractions")
    if np.any(wf < 0) or (len(wf) and not np.all(np.isfinite(wf))):
        raise SimulationError(f"weight fractions must be finite and ≥ 0: {wf.tolist()}")
    if len(wf) and wf.sum() > 0:
        wf = wf / wf.sum()
    lo, hi = (float(v) for v in two_theta_range_deg)
    if not (0 < lo < hi < 180) or step_deg <= 0:
        raise SimulationError(f"invalid 2θ range {two_theta_range_deg} / step {step_deg}")
    l1, l2, ratio = parse_radiation(wavelength_angstrom).as_tuple()
    lines = [(l1, 1.0)] + ([(l2, ratio)] if l2 and ratio else [])
    n = int(round((hi - lo) / step_deg)) + 1
    x = lo + step_deg * np.arange(n)

    if cells is not None:
        cell_list = [_cell_tuple(c) for c in cells]
    else:
        st = list(strain) if strain is not None else [0.0] * len(phases)
        if len(st) != len(phases):
            raise SimulationError(f"{len(phases)} phases but {len(st)} strains")
        cell_list = []
        for p, e in zip(phases, st):
            a, b, c, al, be, ga = _cell_tuple(p.cell)
            cell_list.append((a * (1 + e), b * (1 + e), c * (1 + e), al, be, ga))
    max_strain = max([abs(c[0] / _cell_tuple(p.cell)[0] - 1) for p, c in zip(phases, cell_list)] + [0.0]) + 0.01
    sims = [_PhaseSim(p, l1, (lo, hi), max_strain=max_strain, polarization=polarization) for p in phases]
    raw_scales = [w / (ps.mass * cell_volume(c)) if w > 0 else 0.0 for w, ps, c in zip(wf, sims, cell_list)]
    y_b, areas = _bragg(sims, raw_scales, cell_list, x, lines, zero_shift_deg, fwhm_deg, caglioti, eta)
    a_bragg = float(sum(areas))

    y_h = np.zeros_like(x)
    f = 0.0
    if halo:
        f = float(halo.get("fraction", 0.0))
        if not 0 <= f <= 1:
            raise SimulationError(f"halo fraction must be in [0, 1], got {f}")
        if f > 0:
            if f >= 1 or a_bragg <= 0:
                area = 1.0
                y_b[:] = 0.0
                raw_scales = [0.0] * len(raw_scales)
            else:
                area = f / (1 - f) * a_bragg
            y_h = _halo(x, l1, zero_shift_deg, float(halo.get("d_angstrom", 6.4)),
                        float(halo.get("fwhm_deg", 3.0)), area, float(halo.get("eta", 0.5)))
    mu = y_b + y_h
    peak = float(mu.max()) if mu.size else 0.0
    if peak <= 0:
        raise SimulationError("the synthetic pattern has no Bragg or halo intensity in the 2θ window "
                              "(no phase with a weight fraction > 0 and no halo)")
    k = counts_max / peak
    mu = mu * k + _background(x, background)
    rng = np.random.default_rng(seed)
    y, sigma = _noisy(mu, noise, rng)

    recipe = {
        "synthetic": True,
        "label": SYNTHETIC_LABEL,
        "phases": [dict(_phase_label(p), weight_fraction=float(w), cell=list(c),
                        scale=float(s * k), volume_angstrom3=cell_volume(c))
                   for p, w, c, s in zip(phases, wf, cell_list, raw_scales)],
        "wavelength_angstrom": l1, "wavelength2_angstrom": l2, "ka2_ratio": ratio,
        "two_theta_range_deg": [lo, hi], "step_deg": step_deg,
        "zero_shift_deg": zero_shift_deg, "fwhm_deg": fwhm_deg,
        "caglioti": list(caglioti) if caglioti else None, "eta": eta,
        "background": background, "halo": halo, "amorphous_fraction": f,
        "counts_max": counts_max, "noise": bool(noise), "seed": seed,
        "polarization": sims[0].table.polarization.describe() if sims else None,
        "scale_convention": "S_p * sum mult*|F|^2*LP*profile, |F|^2 per cell; W_p = S_p*(ZMV)_p / sum",
    }
    return Pattern(x=x, intensity=y, sigma=sigma, axis="two_theta_deg",
                   wavelength_angstrom=l1, wavelength2_angstrom=l2, ka2_ratio=ratio,
                   temperature_c=None, time_s=None, source="synthetic", frame=None,
                   meta={"synthetic": True, "label": SYNTHETIC_LABEL, "program": recipe})


# ----------------------------------------------------------------------------------------------
# series programme
# ----------------------------------------------------------------------------------------------
@dataclass
class Segment:
    """One segment of the temperature programme.

    kind : "ramp" (heating), "cool" or "hold" (isothermal).
    to_c : end temperature (ramp/cool; ignored for hold).
    step_c : temperature step between frames (ramp/cool), > 0.
    duration_s : length of a hold (required for hold).
    frame_time_s : time between frames.
    """

    kind: str
    to_c: float | None = None
    step_c: float = 2.0
    duration_s: float | None = None
    frame_time_s: float = 60.0


@dataclass
class PhaseStage:
    """Where a phase exists in the programme, its abundance, thermal expansion and width.

    The amplitude is ``up·down``: ``up`` rises linearly from 0 at `appear_c` to 1 at ``appear_c +
    fade_in_c`` (a step if 0), ``down`` falls from 1 at ``disappear_c − fade_out_c`` to 0 at `disappear_c`.
    `appear_s`/`disappear_s` (with `fade_in_s`/`fade_out_s`) do the same on the time axis (events during
    an isothermal hold).  ``reversible=False`` (decomposition) evaluates the temperature windows at the
    highest temperature reached so far, so a phase that has gone does not come back on cooling.
    Lattice: ``a(T) = a0·(1 + alpha·(T − t0_c))`` (same for b, c; `alpha_per_c` may be a 3-tuple),
    with ``a0`` from `cell0` or the CIF cell.
    """

    phase: Any
    appear_c: float | None = None
    disappear_c: float | None = None
    fade_in_c: float = 0.0
    fade_out_c: float = 0.0
    appear_s: float | None = None
    disappear_s: float | None = None
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    weight: float = 1.0
    alpha_per_c: float | tuple[float, float, float] = 0.0
    t0_c: float = 25.0
    cell0: tuple | None = None
    fwhm_deg: float | None = None
    reversible: bool = True
    stand_in_for: str | None = None

    @property
    def id(self) -> str:
        return self.phase.id

    def amplitude(self, t_c: float, time_s: float, tmax_c: float) -> float:
        tt = t_c if self.reversible else tmax_c
        return (_window(tt, self.appear_c, self.disappear_c, self.fade_in_c, self.fade_out_c)
                * _window(time_s, self.appear_s, self.disappear_s, self.fade_in_s, self.fade_out_s))

    def cell(self, t_c: float) -> tuple[float, ...]:
        a, b, c, al, be, ga = _cell_tuple(self.cell0) if self.cell0 is not None else _cell_tuple(self.phase.cell)
        al_ = self.alpha_per_c
        ex = tuple(al_) if isinstance(al_, (tuple, list)) else (al_,) * 3
        dt = t_c - self.t0_c
        return (a * (1 + ex[0] * dt), b * (1 + ex[1] * dt), c * (1 + ex[2] * dt), al, be, ga)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "phase"}
        d["alpha_per_c"] = list(d["alpha_per_c"]) if isinstance(d["alpha_per_c"], (tuple, list)) else d["alpha_per_c"]
        d["cell0"] = list(self.cell(self.t0_c))
        d["phase"] = _phase_label(self.phase)
        return d


def _window(v, on, off, fin, fout):
    up = 1.0
    if on is not None:
        up = float(v >= on) if fin <= 0 else float(np.clip((v - on) / fin, 0.0, 1.0))
    down = 1.0
    if off is not None:
        down = float(v < off) if fout <= 0 else float(np.clip((off - v) / fout, 0.0, 1.0))
    return up * down


@dataclass
class HaloStage:
    """An amorphous (or nanocrystalline) component: a broad halo at d (Å), windowed like a phase.

    `weight` is its abundance relative to the phases' weights (joint normalisation gives the amorphous
    fraction).  Example: γ-Li2B12H12−x, halo at d ≈ 5.85–7.00 Å (centre 6.4 Å, FWHM of a few degrees).
    """

    name: str = "amorphous"
    d_angstrom: float = 6.4
    fwhm_deg: float = 3.0
    eta: float = 0.5
    appear_c: float | None = None
    disappear_c: float | None = None
    fade_in_c: float = 0.0
    fade_out_c: float = 0.0
    appear_s: float | None = None
    disappear_s: float | None = None
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    weight: float = 1.0
    reversible: bool = False

    def amplitude(self, t_c: float, time_s: float, tmax_c: float) -> float:
        tt = t_c if self.reversible else tmax_c
        return (_window(tt, self.appear_c, self.disappear_c, self.fade_in_c, self.fade_out_c)
                * _window(time_s, self.appear_s, self.disappear_s, self.fade_in_s, self.fade_out_s))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class SeriesProgram:
    """A stated in-situ programme: temperature segments, phase windows, halos and measurement settings."""

    segments: list[Segment]
    phases: list[PhaseStage]
    start_c: float = 25.0
    halos: list[HaloStage] = field(default_factory=list)
    wavelength_angstrom: Any = 0.71073
    two_theta_range_deg: tuple[float, float] = (3.0, 40.0)
    step_deg: float = 0.01
    fwhm_deg: float = 0.08
    caglioti: tuple[float, float, float] | None = None
    eta: float = 0.5
    zero_shift_deg: float = 0.0
    background: dict | None = field(default_factory=lambda: {"kind": "chebyshev", "coeffs": [200.0, -60.0, 20.0]})
    counts_max: float = 1e4
    noise: bool = True
    seed: int = 0
    title: str = ""

    # -- temperature programme ---------------------------------------------------------------
    def frames(self) -> dict[str, np.ndarray]:
        """Frame temperatures (°C), times (s) and segment labels ("0:ramp", "1:hold", ...)."""
        temps, times, segs = [], [], []
        t_c, t_s = float(self.start_c), 0.0
        for i, seg in enumerate(self.segments):
            label = f"{i}:{seg.kind}"
            if seg.frame_time_s <= 0:
                raise SimulationError(f"segment {i}: frame_time_s must be > 0")
            if seg.kind == "hold":
                if not seg.duration_s or seg.duration_s <= 0:
                    raise SimulationError(f"segment {i} (hold): duration_s must be > 0")
                n = max(1, int(round(seg.duration_s / seg.frame_time_s)))
                for _ in range(n):
                    temps.append(t_c); times.append(t_s); segs.append(label)
                    t_s += seg.frame_time_s
            elif seg.kind in ("ramp", "cool"):
                if seg.to_c is None or seg.step_c <= 0:
                    raise SimulationError(f"segment {i} ({seg.kind}): to_c and step_c > 0 are required")
                sign = 1.0 if seg.kind == "ramp" else -1.0
                if (seg.to_c - t_c) * sign < 0:
                    raise SimulationError(f"segment {i} ({seg.kind}) from {t_c} °C to {seg.to_c} °C "
                                          f"goes the wrong way")
                n = max(1, int(round(abs(seg.to_c - t_c) / seg.step_c)))
                for k in range(n):
                    temps.append(t_c + sign * seg.step_c * k); times.append(t_s); segs.append(label)
                    t_s += seg.frame_time_s
                t_c = float(seg.to_c)
            else:
                raise SimulationError(f"segment {i}: kind must be ramp, hold or cool, not {seg.kind!r}")
        # one last frame at the final temperature
        temps.append(t_c); times.append(t_s); segs.append(segs[-1] if segs else "0:hold")
        return {"temperature_c": np.asarray(temps, float), "time_s": np.asarray(times, float),
                "segment": np.asarray(segs, dtype=object)}

    # -- truth ---------------------------------------------------------------------------------
    def truth(self) -> dict[str, np.ndarray]:
        """Programmed per-frame weight fractions (of the whole sample, crystalline + amorphous),
        amorphous fraction and lattice parameters: ``{"wf:<id>", "cell:<id>" (n×6), "amorphous_fraction"}``."""
        fr = self.frames()
        T, ts = fr["temperature_c"], fr["time_s"]
        tmax = np.maximum.accumulate(T)
        out: dict[str, np.ndarray] = {}
        ab = np.array([[st.weight * st.amplitude(T[i], ts[i], tmax[i]) for st in self.phases]
                       for i in range(len(T))]).reshape(len(T), len(self.phases))
        ah = np.array([[h.weight * h.amplitude(T[i], ts[i], tmax[i]) for h in self.halos]
                       for i in range(len(T))]).reshape(len(T), len(self.halos))
        tot = ab.sum(axis=1) + ah.sum(axis=1)
        if np.any(tot <= 0):
            bad = np.flatnonzero(tot <= 0)
            raise SimulationError(f"programme leaves frames {bad[:5].tolist()} with no phase and no halo")
        for j, st in enumerate(self.phases):
            out[f"wf:{st.id}"] = out.get(f"wf:{st.id}", 0) + ab[:, j] / tot
            out[f"cell:{st.id}"] = np.array([st.cell(t) for t in T])
        out["amorphous_fraction"] = ah.sum(axis=1) / tot
        for j, h in enumerate(self.halos):
            out[f"halo:{j}"] = ah[:, j] / tot
        out["temperature_c"], out["time_s"] = T, ts
        return out

    def expected_events(self) -> list[dict]:
        """Programmed events on the frame grid.

        For each phase: "appears" at the first frame present (weight fraction > 0) after an absent
        frame, "disappears" at the last frame present; ``T_mid_C``/``time_mid_s`` interpolate where
        the weight fraction crosses half of its largest value in that presence run.  `xtal.series`
        applies the same rule to the fitted abundance S·ZMV instead; a weight fraction also moves
        when the other phases change, so on a cross-fade beside a growing phase the two mid-points
        can differ by ~1–2 °C.  "amorphous": first frame where the amorphous fraction reaches half of its maximum
        (when that maximum is ≥ 0.05).
        """
        tr = self.truth()
        T, ts = tr["temperature_c"], tr["time_s"]
        ev = []
        ids = []
        for st in self.phases:
            if st.id not in ids:
                ids.append(st.id)

        def mid(w, i_absent, i_present, level):
            # fraction crosses level/2 between the two frames; walk into the present side
            step = 1 if i_present > i_absent else -1
            j = i_present
            while 0 <= j + step < len(w) and w[j] < 0.5 * level and w[j + step] > w[j]:
                j += step
            k = j - step
            f = (0.5 * level - w[k]) / (w[j] - w[k]) if w[j] != w[k] else 0.5
            f = float(np.clip(f, 0, 1))
            return float(T[k] + f * (T[j] - T[k])), float(ts[k] + f * (ts[j] - ts[k]))

        for pid in ids:
            w = tr[f"wf:{pid}"]
            pres = w > 0
            for i in range(1, len(T)):
                if pres[i] and not pres[i - 1]:
                    end = i + int(np.argmin(pres[i:])) if not pres[i:].all() else len(T)
                    lvl = float(np.max(w[i:end]))
                    tm, sm = mid(w, i - 1, i, lvl)
                    ev.append({"phase": pid, "kind": "appears", "frame": i, "T_C": float(T[i]),
                               "time_s": float(ts[i]), "T_mid_C": tm, "time_mid_s": sm})
                if pres[i - 1] and not pres[i]:
                    absent_before = np.flatnonzero(~pres[:i])
                    begin = int(absent_before[-1]) + 1 if absent_before.size else 0
                    lvl = float(np.max(w[begin:i]))
                    tm, sm = mid(w, i, i - 1, lvl)
                    ev.append({"phase": pid, "kind": "disappears", "frame": i - 1,
                               "T_C": float(T[i - 1]), "time_s": float(ts[i - 1]),
                               "T_mid_C": tm, "time_mid_s": sm})
        am = tr["amorphous_fraction"]
        if am.max() >= 0.05:
            i = int(np.flatnonzero(am >= 0.5 * am.max())[0])
            if i > 0:
                tm, sm = mid(am, i - 1, i, float(am.max()))
                ev.append({"phase": "amorphous", "kind": "amorphous", "frame": i, "T_C": float(T[i]),
                           "time_s": float(ts[i]), "T_mid_C": tm, "time_mid_s": sm})
        return sorted(ev, key=lambda e: e["frame"])

    def to_dict(self) -> dict:
        l1, l2, r = parse_radiation(self.wavelength_angstrom).as_tuple()
        return {
            "synthetic": True, "label": SYNTHETIC_LABEL, "title": self.title,
            "start_c": self.start_c,
            "segments": [asdict(s) for s in self.segments],
            "phases": [st.to_dict() for st in self.phases],
            "halos": [h.to_dict() for h in self.halos],
            "wavelength_angstrom": l1, "wavelength2_angstrom": l2, "ka2_ratio": r,
            "two_theta_range_deg": list(self.two_theta_range_deg), "step_deg": self.step_deg,
            "fwhm_deg": self.fwhm_deg, "caglioti": list(self.caglioti) if self.caglioti else None,
            "eta": self.eta, "zero_shift_deg": self.zero_shift_deg, "background": self.background,
            "counts_max": self.counts_max, "noise": self.noise, "seed": self.seed,
            "scale_convention": "S_p * sum mult*|F|^2*LP*profile, |F|^2 per cell; W_p = S_p*(ZMV)_p / sum",
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


class _SeriesRenderer:
    def __init__(self, program: SeriesProgram):
        self.p = program
        l1, l2, r = parse_radiation(program.wavelength_angstrom).as_tuple()
        self.l1, self.l2, self.ratio = l1, l2, r
        self.lines = [(l1, 1.0)] + ([(l2, r)] if l2 and r else [])
        lo, hi = (float(v) for v in program.two_theta_range_deg)
        n = int(round((hi - lo) / program.step_deg)) + 1
        self.x = lo + program.step_deg * np.arange(n)
        self.truth = program.truth()
        T = self.truth["temperature_c"]
        # largest strain any stage reaches, to size the cached reflection lists
        strains = [0.0]
        for st in program.phases:
            c0 = _cell_tuple(st.phase.cell)
            for t in (T.min(), T.max()):
                strains.append(abs(st.cell(t)[0] / c0[0] - 1))
        ms = max(strains) + 0.01
        self.sims = {}
        for st in program.phases:
            if st.id not in self.sims:
                self.sims[st.id] = _PhaseSim(st.phase, l1, (lo, hi), max_strain=ms)
        # A_unit: Bragg area per unit weight fraction, weighted over the programme's phases (at their cell0)
        num = den = 0.0
        for st in program.phases:
            ps = self.sims[st.id]
            c = st.cell(st.t0_c)
            _, areas = _bragg([ps], [1.0 / (ps.mass * cell_volume(c))], [c], self.x, self.lines,
                              0.0, program.fwhm_deg, program.caglioti, program.eta)
            num += st.weight * areas[0]
            den += st.weight
        self.a_unit = num / den if den > 0 else 1.0
        first = self._mu(0)
        peak = float(first.max())
        if peak <= 0:
            raise SimulationError("the first frame of the programme has no intensity in the 2θ window")
        self.k = program.counts_max / peak
        self.bg = _background(self.x, program.background)

    def _mu(self, i: int) -> np.ndarray:
        p, tr = self.p, self.truth
        sims, scales, cells, fw = [], [], [], []
        # per stage (a phase id may appear in several stages: use each stage's own share)
        T, ts = tr["temperature_c"][i], tr["time_s"][i]
        tmax = float(np.max(tr["temperature_c"][: i + 1]))
        ab = [st.weight * st.amplitude(T, ts, tmax) for st in p.phases]
        ah = [h.weight * h.amplitude(T, ts, tmax) for h in p.halos]
        tot = sum(ab) + sum(ah)
        for st, a in zip(p.phases, ab):
            if a <= 0:
                continue
            ps = self.sims[st.id]
            c = st.cell(T)
            sims.append(ps); cells.append(c); fw.append(st.fwhm_deg)
            scales.append((a / tot) / (ps.mass * cell_volume(c)))
        y, _ = _bragg(sims, scales, cells, self.x, self.lines, p.zero_shift_deg, p.fwhm_deg,
                      p.caglioti, p.eta, fwhm_per_phase=fw)
        for h, a in zip(p.halos, ah):
            if a > 0:
                y = y + _halo(self.x, self.l1, p.zero_shift_deg, h.d_angstrom, h.fwhm_deg,
                              (a / tot) * self.a_unit, h.eta)
        return y

    def frame(self, i: int, rng) -> np.ndarray:
        mu = self._mu(i) * self.k + self.bg
        y, _ = _noisy(mu, self.p.noise, rng)
        return y


def iter_synthetic_frames(program: SeriesProgram, *, start: int = 0, stop: int | None = None):
    """Yield ``(frame_index, intensity ndarray)`` one frame at a time (for streaming large series).

    Frame i is generated with its own seed (``program.seed``, i), so any slice is reproducible alone
    and equal to the same frame of `synthetic_series`.
    """
    r = _SeriesRenderer(program)
    n = len(r.truth["temperature_c"])
    for i in range(start, n if stop is None else min(stop, n)):
        yield i, r.frame(i, np.random.default_rng([program.seed, i]))


def synthetic_series(program: SeriesProgram, *, start: int = 0, stop: int | None = None,
                     dtype=np.float64):
    """A synthetic thermal series as an ``xarray.DataArray`` (frame × two_theta_deg), labelled synthetic.

    Coordinates ``temperature_c``, ``time_s``, ``segment`` ("heating" / "isothermal" / "cooling", as
    `xtal.io.read_series` labels measured series), ``program_segment`` ("0:ramp", "1:hold",
    "2:cool", ...) and ``source`` per frame; attrs ``wavelength_angstrom`` (+ ``wavelength2_angstrom``, ``ka2_ratio`` for a
    doublet), ``synthetic = 1``, ``title`` and ``program`` (the programme as JSON, including the phases'
    windows, thermal expansion and cells) — compare with `SeriesProgram.truth()`.
    """
    import xarray as xr

    from xtal.io import label_segments

    r = _SeriesRenderer(program)
    fr = program.frames()
    n = len(fr["temperature_c"])
    stop = n if stop is None else min(stop, n)
    idx = np.arange(start, stop)
    data = np.empty((len(idx), len(r.x)), dtype=dtype)
    for j, i in enumerate(idx):
        data[j] = r.frame(int(i), np.random.default_rng([program.seed, int(i)]))
    attrs = {
        "wavelength_angstrom": r.l1,
        "synthetic": 1,
        "title": (program.title + " — " if program.title else "") + SYNTHETIC_LABEL,
        "program": program.to_json(),
        "intensity_units": "counts",
        "sigma": "sqrt(counts) (Poisson)",
    }
    if r.l2:
        attrs["wavelength2_angstrom"] = r.l2
        attrs["ka2_ratio"] = r.ratio
    return xr.DataArray(
        data, dims=("frame", "two_theta_deg"),
        coords={"frame": idx, "two_theta_deg": r.x,
                "temperature_c": ("frame", fr["temperature_c"][idx]),
                "time_s": ("frame", fr["time_s"][idx]),
                "segment": ("frame", np.asarray(label_segments(fr["temperature_c"])[start:stop],
                                                dtype=str)),
                "program_segment": ("frame", np.asarray(fr["segment"][idx]).astype(str)),
                "source": ("frame", np.array([f"synthetic:{i}" for i in idx]))},
        attrs=attrs, name="intensity")
