"""Phase identification and whole-pattern fitting of powder patterns.

The package follows the data:

``prepare``     a measured pattern → sorted 2θ, intensity, σ; background estimate; peak search
``model``       a phase → a strained view of its reflection table (lattice by crystal system)
``fit``         `WholePatternFit`: a fixed phase set against one pattern (scales and background
                linear, zero/profile/lattice by ``engine``'s Levenberg–Marquardt); `fit_phases`
``screen``      every phase placed on the pattern over a range of isotropic strain
``acceptance``  the rules a phase must pass to join a hypothesis; unexplained peaks; confidence
``search``      `identify`: screen, beam search, backward elimination, final refinement
``result``      `PhaseFit`, `FitResult`, `ScreenHit`, `Hypothesis`, `IdentificationResult`

Rendering (Markdown, figures) is in ``xtal.report.identify``.
"""
from xtal.errors import IdentificationError
from xtal.identify.acceptance import unexplained_peaks
from xtal.identify.fit import (DEFAULT_MAX_STRAIN, EmptyLibraryError, WholePatternFit,
                               estimate_amorphous_fraction, fit_phases)
from xtal.identify.model import LATTICE_PARAMS, PhaseModel, clear_cache, crystal_system_of
from xtal.identify.prepare import NoSignalError, PreparedData, estimate_background, prepare_pattern
from xtal.beam import Radiation
from xtal.identify.prepare import radiation_from
from xtal.identify.result import (NEAR_TIE_DELTA, FitResult, Hypothesis, IdentificationResult,
                                  PhaseFit, ScreenHit)
from xtal.identify.screen import screen_phases
from xtal.identify.search import DEFAULT_MIN_DELTA_BIC, NoPeaksError, identify

__all__ = [
    "IdentificationError", "EmptyLibraryError", "NoPeaksError", "NoSignalError",
    "PhaseFit", "FitResult", "Hypothesis", "IdentificationResult", "ScreenHit",
    "Radiation", "radiation_from", "WholePatternFit", "PreparedData", "prepare_pattern",
    "PhaseModel", "fit_phases", "screen_phases", "identify", "unexplained_peaks",
    "estimate_background", "estimate_amorphous_fraction", "crystal_system_of", "LATTICE_PARAMS",
    "clear_cache", "DEFAULT_MAX_STRAIN", "DEFAULT_MIN_DELTA_BIC", "NEAR_TIE_DELTA",
]
