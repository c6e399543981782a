"""Results of identification: a fitted phase, a whole-pattern fit, a screen hit, a hypothesis, the answer.

Plain data (numbers and arrays) with ``to_json_dict()`` methods; rendering lives in ``xtal.report``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xtal.simulate import cell_volume

#: Hypotheses within this score (BIC) difference of the best are flagged as near ties.
NEAR_TIE_DELTA = 10.0


@dataclass
class PhaseFit:
    """One phase of a fit. ``strain`` is the relative change of a, b, c vs the library cell."""

    id: str
    scale: float
    scale_su: float | None
    weight_fraction: float | None
    weight_fraction_su: float | None
    cell: tuple[float, ...]
    cell_su: tuple[float | None, ...]
    volume_angstrom3: float
    volume_su: float | None
    strain: tuple[float, ...]
    fwhm_deg: float
    model: bool
    name: str = ""
    lattice_mode: str = "cell"                 # "cell" (per axis by crystal system) | "isotropic" | "fixed"
    crystal_system: str = ""
    library_cell: tuple[float, ...] = ()
    bragg_intensity: float = 0.0               # integrated intensity of this phase (counts·°)
    profile: dict[str, float] = field(default_factory=dict)
    #: primary-line 2θ (°) of the phase's reflections in the fitted range (refined cell, zero shift)
    reflections_two_theta_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the same reflections as rows (hkl, d_angstrom, two_theta_deg, relative intensity m|F|²·LP, %),
    #: for the interactive report's hover labels
    reflections: list[dict] = field(default_factory=list)
    #: March–Dollase preferred orientation refined for this phase: {"axis", "r", "r_su"}, or None
    preferred_orientation: dict | None = None
    size_broadening_deg: float = 0.0                  # extra FWHM ∝ 1/cos θ of this phase (deg at θ→0)
    size_broadening: dict | None = None               # the search's choice: value, s.u., Scherrer size

    @property
    def strain_isotropic(self) -> float:
        """(V/V0)^(1/3) − 1."""
        v0 = cell_volume(self.library_cell) if self.library_cell else self.volume_angstrom3
        return (self.volume_angstrom3 / v0) ** (1.0 / 3.0) - 1.0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "scale": json_float(self.scale), "scale_su": json_float(self.scale_su),
            "weight_fraction": json_float(self.weight_fraction),
            "weight_fraction_su": json_float(self.weight_fraction_su),
            "strain": [json_float(s) for s in self.strain], "strain_isotropic": json_float(self.strain_isotropic),
            "cell": [json_float(c) for c in self.cell], "cell_su": [json_float(c) for c in self.cell_su],
            "volume_angstrom3": json_float(self.volume_angstrom3), "volume_su": json_float(self.volume_su),
            "fwhm_deg": json_float(self.fwhm_deg), "model": self.model, "lattice_mode": self.lattice_mode,
            "crystal_system": self.crystal_system, "bragg_intensity": json_float(self.bragg_intensity),
            "size_broadening": self.size_broadening,
            "preferred_orientation": None if not self.preferred_orientation else {
                "axis": self.preferred_orientation["axis"], "r": json_float(self.preferred_orientation["r"]),
                "r_su": json_float(self.preferred_orientation["r_su"])},
        }


@dataclass
class FitResult:
    """A whole-pattern fit of a fixed phase set (see module docstring)."""

    phases: list[PhaseFit]
    rwp: float
    chi2: float
    bic: float
    n_points: int
    n_params: int
    x_deg: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    background: np.ndarray
    per_phase: dict[str, np.ndarray]
    zero_shift_deg: float
    amorphous_fraction: float | None
    bragg_intensity: float
    # additions to the contract
    zero_shift_su: float | None = None
    rexp: float = float("nan")
    profile: dict[str, float] = field(default_factory=dict)      # U, V, W (deg²), eta
    profile_su: dict[str, float | None] = field(default_factory=dict)
    background_kind: str = "chebyshev"
    background_coefficients: np.ndarray | None = None
    radiation: Any = None   # xtal.beam.Radiation
    sigma: np.ndarray | None = None
    success: bool = True
    nfev: int = 0
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    displacement_deg: float = 0.0          # sample displacement term: 2θ shift = displacement·cos θ
    displacement_su: float | None = None
    asymmetry_deg: float = 0.0             # axial-divergence asymmetry A (held; chosen by BIC)
    asymmetry_su: float | None = None
    noise_model: str = ""                  # where σ (hence Rexp, χ²) comes from

    @property
    def wavelength_angstrom(self) -> float | None:
        return self.radiation.primary if self.radiation else None

    @property
    def residual(self) -> np.ndarray:
        return self.observed - self.calculated

    def phase(self, phase_id: str) -> PhaseFit:
        for p in self.phases:
            if p.id == phase_id:
                return p
        raise KeyError(phase_id)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "phases": [p.to_json_dict() for p in self.phases], "rwp": json_float(self.rwp),
            "rexp": json_float(self.rexp), "chi2": json_float(self.chi2), "bic": json_float(self.bic),
            "n_points": self.n_points, "n_params": self.n_params,
            "zero_shift_deg": json_float(self.zero_shift_deg), "zero_shift_su": json_float(self.zero_shift_su),
            "displacement_deg": json_float(self.displacement_deg),
            "displacement_su": json_float(self.displacement_su), "noise_model": self.noise_model,
            "asymmetry_deg": json_float(self.asymmetry_deg), "asymmetry_su": json_float(self.asymmetry_su),
            "profile": {k: json_float(v) for k, v in self.profile.items()},
            "amorphous_fraction": json_float(self.amorphous_fraction),
            "bragg_intensity": json_float(self.bragg_intensity), "background": self.background_kind,
            "radiation": self.radiation.to_json() if self.radiation else None,
            "warnings": list(self.warnings),
        }


def json_float(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class ScreenHit:
    """Screen result of one phase: best cosine match and the isotropic strain where it occurs."""

    id: str
    score: float
    strain: float
    n_reflections: int
    alternatives: tuple[float, ...] = ()   # strains of other local maxima within 2 % of the score
    coverage: float = 1.0                  # share of the observed peaks it puts a reflection on


@dataclass
class Hypothesis:
    """One ranked explanation of the pattern: a phase set and its whole-pattern fit."""

    phases: list[PhaseFit]
    rwp: float
    score: float                      # BIC of the fit (lower is better)
    fit: FitResult
    delta_score: float = 0.0          # score − best score
    near_tie: bool = False            # within NEAR_TIE_DELTA of the best
    explained_fraction: float = float("nan")  # Bragg / (Bragg + unexplained peak intensity)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.phases]

    def to_json_dict(self, detail: bool = True) -> dict[str, Any]:
        d = {"phases": [p.to_json_dict() for p in self.phases], "rwp": json_float(self.rwp),
             "score": json_float(self.score), "delta_score": json_float(self.delta_score),
             "near_tie": self.near_tie, "explained_fraction": json_float(self.explained_fraction)}
        if detail:
            d.update(chi2=json_float(self.fit.chi2), rexp=json_float(self.fit.rexp),
                     zero_shift_deg=json_float(self.fit.zero_shift_deg),
                     profile={k: json_float(v) for k, v in self.fit.profile.items()},
                     amorphous_fraction=json_float(self.fit.amorphous_fraction))
        return d


@dataclass
class IdentificationResult:
    """Ranked hypotheses, unexplained peaks, amorphous estimate and a confidence statement."""

    wavelength: float
    hypotheses: list[Hypothesis]
    unexplained_peaks: list[dict[str, float]]
    amorphous_fraction_estimate: float | None
    confidence: str                   # "high" | "medium" | "low" | "none"
    warnings: list[str]
    confidence_statement: str = ""
    radiation: Any = None   # xtal.beam.Radiation
    model_phases: list[str] = field(default_factory=list)
    screen: list[ScreenHit] = field(default_factory=list)
    n_fits: int = 0
    elapsed_s: float = 0.0
    source: str | None = None
    x_deg: np.ndarray | None = None
    observed: np.ndarray | None = None
    amorphous_fraction_su: float | None = None
    amorphous: dict | None = None          # the halo test (`xtal.identify.amorphous.HaloResult`)
    explained_signal: float | None = None  # share of the observed net signal the best fit reproduces
    noise_model: str = ""                  # where σ comes from (counts or estimated)
    #: with confidence "none": the closest hypotheses, NOT accepted (no phase is claimed)
    partial_matches: list[Hypothesis] = field(default_factory=list)
    positions: Any = None                  # `xtal.identify.positions.PositionsCheck` (Le Bail) or None

    @property
    def best(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON contract of issue 5 (plus extra keys documented in docs/identify.md)."""
        return {
            "wavelength": json_float(self.wavelength),
            "radiation": self.radiation.to_json() if self.radiation else None,
            "source": self.source,
            "hypotheses": [h.to_json_dict() for h in self.hypotheses],
            "partial_matches": [h.to_json_dict(detail=False) for h in self.partial_matches],
            "unexplained_peaks": [{k: json_float(v) for k, v in p.items()} for p in self.unexplained_peaks],
            "amorphous_fraction_estimate": json_float(self.amorphous_fraction_estimate),
            "amorphous_fraction_su": json_float(self.amorphous_fraction_su),
            "amorphous": self.amorphous,
            "positions": self.positions.to_json_dict() if self.positions is not None else None,
            "explained_signal": json_float(self.explained_signal),
            "noise_model": self.noise_model,
            "confidence": self.confidence,
            "confidence_statement": self.confidence_statement,
            "warnings": list(self.warnings),
            "model_phases": list(self.model_phases),
            "screen": [{"id": h.id, "score": json_float(h.score), "strain": json_float(h.strain)} for h in self.screen],
            "n_fits": self.n_fits,
            "elapsed_s": json_float(self.elapsed_s),
        }
