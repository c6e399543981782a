"""Results of a refinement: `RietveldResult` (with `RefinedPhase`) and `LeBailResult`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RefinedSite:
    """One site after refinement; s.u. None where the parameter was not refined (or undetermined)."""

    label: str
    element: str
    frac: tuple[float, float, float]
    frac_su: tuple[float | None, float | None, float | None]
    uiso: float | None
    uiso_su: float | None
    occupancy: float
    occupancy_su: float | None
    free_coordinates: list[str]
    #: U11 U22 U33 U12 U13 U23 (Å²) and s.u. of a site with Uij; ``free_uij``: the refined components
    u_aniso: tuple[float, ...] | None = None
    u_aniso_su: tuple[float | None, ...] | None = None
    free_uij: list[str] = field(default_factory=list)


@dataclass
class RefinedPhase:
    id: str
    name: str
    spacegroup: str
    cell: tuple[float, ...]
    cell_su: tuple[float | None, ...]
    volume: float
    volume_su: float | None
    scale: float
    scale_su: float | None
    sites: list[RefinedSite]
    po_axis: tuple[int, int, int] | None = None
    po_r: float | None = None
    po_r_su: float | None = None
    hkl: np.ndarray | None = None
    ticks_two_theta_deg: np.ndarray | None = None
    source_phase: Any = None

    def structure(self) -> Any:
        """The refined structure as an ``xtal.structures.Phase`` (cell, sites and their s.u.)."""
        from xtal.structures.model import Cell

        p = self.source_phase
        by_label = {s.label: s for s in self.sites}
        new_sites = []
        for s in p.sites:
            r = by_label[s.label]
            kw: dict[str, Any] = dict(frac=r.frac, frac_su=r.frac_su, occupancy=r.occupancy,
                                      occupancy_su=r.occupancy_su)
            if r.uiso is not None and s.u_aniso is None:
                kw.update(u_iso=r.uiso, u_iso_su=r.uiso_su)
            if r.u_aniso is not None and s.u_aniso is not None:
                kw.update(u_aniso=r.u_aniso, u_aniso_su=r.u_aniso_su)
            new_sites.append(dataclasses.replace(s, **kw))
        return dataclasses.replace(p, cell=Cell(*self.cell, su=tuple(self.cell_su)), sites=new_sites,
                                   _images=None, _atoms=None)


@dataclass
class RietveldResult:
    """A Rietveld refinement: parameters with s.u., phases, agreement, diagnostics, curves."""

    params: list[dict]
    phases: list[RefinedPhase]
    rwp: float
    rp: float
    rexp: float
    chi2: float
    n_points: int
    n_params: int
    correlation: np.ndarray
    correlation_names: list[str]
    condition: float
    high_correlations: list[tuple[str, str, float]]
    undetermined: list[str]
    converged: bool
    nfev: int
    max_shift_over_su: float
    x_deg: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    background: np.ndarray
    sigma: np.ndarray
    per_phase: dict[str, np.ndarray]
    radiation: Any
    global_params: dict[str, tuple[float, float | None]]
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    method: str = "rietveld"
    source: str | None = None
    stages: list[dict] = field(default_factory=list)
    #: Bérar–Lelann factor √((1+ρ)/(1−ρ)) for serially correlated residuals: s.u. × this factor
    #: (``su_corrected`` of each parameter) is the realistic s.u. of a profile refinement
    berar_lelann: float = 1.0
    #: distance restraints: {"pair", "target", "sigma", "value"} (Å)
    restraints: list[dict] = field(default_factory=list)
    #: rigid bodies: {"phase", "body", "centre", "site_symmetry", "params": [{"name", "value", "su",
    #: "status", "axis"}]}; status says whether the data determined a parameter or what fixed it
    rigid_bodies: list[dict] = field(default_factory=list)
    #: {phase id: {element: f′ + i f″}} used in the structure factors ({} per phase: f0 only)
    dispersion: dict[str, dict[str, complex]] = field(default_factory=dict)

    @property
    def gof(self) -> float:
        return float(np.sqrt(self.chi2))

    def value(self, name: str) -> float:
        return next(p["value"] for p in self.params if p["name"] == name)

    def su(self, name: str) -> float | None:
        return next(p["su"] for p in self.params if p["name"] == name)

    def phase(self, pid: str) -> RefinedPhase:
        return next(p for p in self.phases if p.id == pid)


@dataclass
class LeBailPhase:
    """Extracted intensities of one phase: I = mult·|F|² per reflection (the Rietveld convention)."""

    id: str
    hkl: np.ndarray
    d_angstrom: np.ndarray
    two_theta_deg: np.ndarray
    intensity: np.ndarray
    cell: tuple[float, ...]
    cell_su: tuple[float | None, ...]
    volume: float
    in_range: np.ndarray


@dataclass
class LeBailResult:
    phases: list[LeBailPhase]
    rwp: float
    rp: float
    rexp: float
    chi2: float
    zero_shift_deg: float
    zero_shift_su: float | None
    profile: dict[str, float]
    x_deg: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    background: np.ndarray
    per_phase: dict[str, np.ndarray]
    cycles: int
    converged: bool
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def phase(self, pid: str) -> LeBailPhase:
        return next(p for p in self.phases if p.id == pid)
