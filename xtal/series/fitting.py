"""The one seam between the series analysis and the whole-pattern fitter (`xtal.identify`).

Every call the series makes into `xtal.identify` goes through the plain functions below, with
explicit parameters (no signature inspection), so that swapping the fitter means editing this module
only.  The fit results returned are `xtal.identify.FitResult` objects; the series reads from them
``phases`` (``id, scale, scale_su, weight_fraction(_su), cell, cell_su, volume_angstrom3, volume_su,
fwhm_deg, bragg_intensity``), ``rwp, chi2, bragg_intensity, amorphous_fraction, zero_shift_deg,
profile, n_points, x_deg, background``.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

__all__ = ["fit_frame", "start_from", "identify_start", "screen_strains", "halo_only_fraction",
           "n_lattice_params"]


def start_from(cells: dict, ids: Sequence[str], zero: float, profile: dict):
    """A minimal continuity start for `fit_frame`: cells of `ids`, zero shift and profile."""
    return SimpleNamespace(
        phases=[SimpleNamespace(id=i, cell=tuple(cells[i])) for i in ids if i in cells],
        zero_shift_deg=float(zero) if math.isfinite(zero) else 0.0,
        profile=dict(profile))


def fit_frame(pattern, phases: Sequence, *, wavelength: Any, polarization: Any, start: Any,
              refine_lattice: Any, background: str, n_background: int | None,
              refine_profile: str, strains: Sequence[float] | None, max_strain: float,
              two_theta_range: tuple[float, float] | None, amorphous: bool,
              max_iter: int | None):
    """Whole-pattern fit of `phases` to one frame: ``xtal.identify.fit_phases``, with the prepared
    data (σ estimate) of the frame computed once for all its fits (screen, fit, refits), and without
    the per-phase reflection lists (no series output reads them)."""
    from xtal.identify import WholePatternFit

    rad, data = _prepared(pattern, wavelength, polarization, two_theta_range)
    hint = math.sqrt(start.profile.get("W", 0.01)) if start else None
    fit = WholePatternFit(data, list(phases), rad, lattice=refine_lattice, background=background,
                          n_background=n_background, max_strain=max_strain, fwhm_hint_deg=hint)
    return fit.run(start=start, strains=strains, refine_profile=refine_profile, max_iter=max_iter,
                   amorphous=amorphous, reflection_lists=False)


_LAST_PREPARED: list = [None]   # ((pattern, wavelength, polarization, range), (rad, data)) of the last frame


def _prepared(pattern, wavelength, polarization, two_theta_range):
    """(Radiation, PreparedData) of a frame as `fit_phases` makes them, reused while the chain
    fits the same pattern object (a frame is fitted 1–6 times: screen, fit, refits).  The entry
    is one tuple, read and replaced whole (safe if chains run in threads)."""
    from xtal.identify import prepare_pattern, radiation_from

    key = (pattern, wavelength, polarization, two_theta_range)
    last = _LAST_PREPARED[0]
    if last is not None and all(a is b for a, b in zip(last[0], key)):
        return last[1]
    rad = radiation_from(pattern, wavelength, polarization)
    out = (rad, prepare_pattern(pattern, two_theta_range, rad))
    _LAST_PREPARED[0] = (key, out)
    return out


def identify_start(pattern, phases: Sequence, *, wavelength: Any, polarization: Any,
                   background: str, max_strain: float, refine_lattice: Any,
                   two_theta_range: tuple[float, float] | None):
    """The best hypothesis' fit of `xtal.identify.identify` (screen + beam search), or None."""
    from xtal.identify import identify

    ident = identify(pattern, list(phases), wavelength=wavelength, polarization=polarization,
                     background=background, max_strain=max_strain, refine_lattice=refine_lattice,
                     two_theta_range=two_theta_range)
    return ident.hypotheses[0].fit if ident.hypotheses else None


def screen_strains(pattern, phases: Sequence, *, wavelength: Any, max_strain: float,
                   polarization: Any) -> list[float]:
    """Isotropic strain of every phase from `xtal.identify.screen_phases` (0 where not hit)."""
    from xtal.identify import screen_phases

    hits = {h.id: h for h in screen_phases(pattern, list(phases), wavelength=wavelength,
                                           max_strain=max_strain, polarization=polarization)}
    return [hits[p.id].strain if p.id in hits else 0.0 for p in phases]


def halo_only_fraction(fit) -> float:
    """Amorphous indicator of a frame with no crystalline phase: 1 if the background has a halo
    (the halo measure of `xtal.identify.estimate_amorphous_fraction`)."""
    try:
        from xtal.identify import estimate_amorphous_fraction

        v = estimate_amorphous_fraction(np.asarray(fit.x_deg), np.asarray(fit.background), True,
                                        1e-9, 0)
    except Exception:  # pragma: no cover - defensive
        v = None
    return 1.0 if v is not None and v > 0.5 else 0.0


def n_lattice_params(phase) -> int:
    """Number of free lattice parameters of a phase's crystal system."""
    try:
        from xtal.identify import LATTICE_PARAMS, crystal_system_of

        return len(LATTICE_PARAMS[crystal_system_of(phase)])
    except Exception:  # pragma: no cover
        return 3


def peaks_absent(fit, phase_id: str) -> bool:
    """identify's missing-peak test: more than half of the phase's strong predicted peak
    intensity — or, with at least four judged peaks, more than half of those peaks — is absent
    from the frame (the phase only absorbs misfit there)."""
    from xtal.identify.acceptance import MAX_ABSENT_FRACTION, missing_peak_fraction

    return missing_peak_fraction(fit, phase_id) > MAX_ABSENT_FRACTION
