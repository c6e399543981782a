"""Result model of the coordination analysis: bonds, one metal site, one phase."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xtal.errors import GeometryError
from xtal.structures import format_su

__all__ = ["Bond", "SiteGeometry", "GeometryResult", "NoMetalError", "DEFAULT_METALS", "CONTACT_KINDS",
           "METAL_ORDER"]


class NoMetalError(GeometryError):
    """The structure has no site of the requested metal(s)."""


#: Metals analysed by default: alkali and alkaline-earth elements.
DEFAULT_METALS = ("Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca", "Sr", "Ba")
#: Order of metals in comparison tables and figures.
METAL_ORDER = {m: k for k, m in enumerate(DEFAULT_METALS)}
#: Contacts listed but not counted in CN, angles, polyhedra: M···M, and M···B of B–H units (the B–H
#: hydrogens are the donors).
CONTACT_KINDS = frozenset({"metal", "cage-B", "borane-B"})



@dataclass
class Bond:
    """One M–X contact. ``to`` is the neighbour's asymmetric-unit label."""

    to: str
    element: str
    symop: str
    distance: float
    su: float | None
    kind: str                      # ether-O | water | hydride-H | cage-B | metal | oxo-anion-O | ...
    occupancy: float = 1.0
    disorder_assembly: str | None = None
    disorder_group: str | None = None
    molecule: str | None = None    # e.g. "diglyme#1" (numbered per metal site)
    bond_valence: float | None = None
    vector: tuple[float, float, float] = (0.0, 0.0, 0.0)  # Cartesian M->X (Å)

    @property
    def text(self) -> str:
        return format_su(self.distance, self.su)

    def to_json_dict(self) -> dict[str, Any]:
        return {"to": self.to, "element": self.element, "symop": self.symop,
                "distance": round(self.distance, 5), "su": None if self.su is None else round(self.su, 5),
                "text": self.text, "kind": self.kind, "occupancy": self.occupancy,
                "disorder_assembly": self.disorder_assembly, "disorder_group": self.disorder_group,
                "molecule": self.molecule,
                "bond_valence": None if self.bond_valence is None else round(self.bond_valence, 4)}


@dataclass
class SiteGeometry:
    """Coordination of one metal site."""

    label: str
    element: str
    frac: tuple[float, float, float]
    occupancy: float
    disorder_assembly: str | None
    disorder_group: str | None
    oxidation_state: int | None
    bonds: list[Bond]
    cn: int
    cn_alternatives: dict[str, int]
    bvs: float | None
    bvs_alternatives: dict[str, float | None]
    bvs_note: str
    bv_parameters: list[dict[str, Any]]
    angles: dict[str, float | None]
    polyhedron: dict[str, Any]
    ligands: list[dict[str, Any]]
    coordination_mode: str
    warnings: list[str] = field(default_factory=list)
    major_alternative: str | None = None
    #: coordination by whole cluster anions (centroid CN, hapticity, M···centroid), None without them
    anion_coordination: dict[str, Any] | None = None
    #: BVS from thermal-motion corrected distances (`xtal.geometry.thermal`), None unless asked for
    bvs_thermal: dict[str, Any] | None = None
    #: s.u. of the BVS and its consistency with the oxidation state (`bondvalence.bvs_check`)
    bvs_check: dict[str, Any] | None = None

    def donors(self, alternative: str | None = None) -> list[Bond]:
        """Bonds counted in CN (no M···M or M···B contacts) of one disorder alternative such as ``'A:1'``
        (default: the major alternative, i.e. highest occupancy)."""
        alt = alternative or self.major_alternative
        return [b for b in self.bonds if b.kind not in CONTACT_KINDS and _in_alternative(b, alt)]

    def to_json_dict(self) -> dict[str, Any]:
        return {"label": self.label, "element": self.element, "frac": list(self.frac),
                "occupancy": self.occupancy, "disorder_assembly": self.disorder_assembly,
                "disorder_group": self.disorder_group, "oxidation_state": self.oxidation_state,
                "cn": self.cn, "cn_alternatives": self.cn_alternatives,
                "bvs": None if self.bvs is None else round(self.bvs, 4),
                "bvs_alternatives": {k: (None if v is None else round(v, 4))
                                     for k, v in self.bvs_alternatives.items()},
                "bvs_note": self.bvs_note, "bv_parameters": self.bv_parameters,
                "angles": self.angles, "polyhedron": self.polyhedron, "ligands": self.ligands,
                "coordination_mode": self.coordination_mode, "major_alternative": self.major_alternative,
                "anion_coordination": self.anion_coordination,
                "bvs_thermal": None if self.bvs_thermal is None else
                {**self.bvs_thermal, "bvs": None if self.bvs_thermal["bvs"] is None
                 else round(self.bvs_thermal["bvs"], 4)},
                "bvs_check": self.bvs_check,
                "bonds": [b.to_json_dict() for b in self.bonds], "warnings": self.warnings}


@dataclass
class GeometryResult:
    """Coordination geometry of the selected metal sites of one phase."""

    phase_id: str
    phase_name: str
    file: str | None
    model: bool
    model_note: str | None
    spacegroup: str
    cutoff: dict[str, Any]
    sites: list[SiteGeometry]
    warnings: list[str]
    su_available: bool
    symop_source: str
    symops: list[str]
    cif_bond_check: dict[str, Any] | None = None
    message: str | None = None
    #: H normalisation: probe, decision, neutron X–H distances, sites moved (`xtal.geometry.hydrogen`)
    hydrogen: dict[str, Any] = field(default_factory=dict)
    #: how the oxidation states were chosen (CIF type symbols, BVAnalyzer, element default)
    oxidation_source: str | None = None
    #: the bond-valence parameter tables used
    bv_source: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {"phase": self.phase_id, "name": self.phase_name, "file": self.file,
                "model": self.model, "model_note": self.model_note, "spacegroup": self.spacegroup,
                "cutoff": self.cutoff, "su_available": self.su_available,
                "symop_source": self.symop_source, "symops": self.symops,
                "bv_source": self.bv_source, "oxidation_source": self.oxidation_source,
                "hydrogen": self.hydrogen,
                "warnings": self.warnings, "message": self.message,
                "sites": [s.to_json_dict() for s in self.sites],
                "cif_bond_check": self.cif_bond_check}



def _alt_key(b: Bond) -> str | None:
    if b.disorder_group in (None, ".", "0", "?"):
        return None
    return f"{b.disorder_assembly or ''}:{b.disorder_group}"


def _in_alternative(b: Bond, alternative: str | None) -> bool:
    """A bond belongs to the alternative ``alternative`` (dict of assembly->group encoded as 'A:1|B:2')."""
    key = _alt_key(b)
    if key is None:
        return True
    if alternative is None:
        return True
    chosen = dict(part.split(":", 1) for part in alternative.split("|") if part)
    asm = b.disorder_assembly or ""
    return chosen.get(asm) == str(b.disorder_group) if asm in chosen else True
