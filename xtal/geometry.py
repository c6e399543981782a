"""Coordination geometry of metal sites: neighbours with s.u., CN, donors, polyhedra, bond valence.

For every selected metal site (default: all alkali and alkaline-earth sites) `analyse_geometry` finds all
neighbours within a cutoff across symmetry and cell boundaries, labels each with its CIF symmetry code
(``_geom_bond_site_symmetry_2`` notation, e.g. ``2_656``; ``.`` for the identity without translation),
propagates the distance s.u. from the cell and coordinate s.u. (no covariance, as SHELXL/PLATON do when
the covariance matrix is not available), classifies donors (ether-O of which molecule, water, hydride-H of
B12H12, cage-B, other), gives CN and bond-valence sums per disorder alternative, an angular summary and
continuous shape measures (own implementation; pymatgen ChemEnv where it works), and compares with the
CIF's own ``_geom_bond_*`` loop when the file has one.

Symmetry codes are numbered in the order of the CIF's symmetry-operator list *as written*
(``Phase.symops_as_written``, kept at read time, so that translations such as ``x,-y-1/2,z-1/2`` keep
their offsets); when the file had no operator loop the order of ``Phase.symops`` is used. Nothing here
reads a file: the ``_geom_bond`` loop and printed precisions also come from the Phase.
Bond-valence parameters: ``xtal/data/bvparm.csv`` (transcribed subset of the IUCr bvparm table).
"""
from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import gemmi
import numpy as np

from xtal.errors import GeometryError
from xtal.structures import SAME_ATOM_TOLERANCE_ANGSTROM, Phase, Site, expand_sites, format_su, parse_su

__all__ = [
    "Bond", "SiteGeometry", "GeometryResult", "NoMetalError",
    "analyse_geometry", "render_geometry_markdown", "render_geometry_html", "compare_metals",
    "plot_distance_distributions", "bv_parameter", "load_bv_parameters", "continuous_shape_measure",
    "IDEAL_POLYHEDRA", "parse_symop_code", "format_symop_code", "compare_cif_bonds",
    "bond_from_code", "DEFAULT_METALS", "published_m_o_ranges",
]


class NoMetalError(GeometryError):
    """The structure has no site of the requested metal(s)."""


#: Metals analysed by default: alkali and alkaline-earth elements.
DEFAULT_METALS = ("Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca", "Sr", "Ba")
#: Default oxidation states used for bond-valence lookups when the CIF type symbol has no charge.
DEFAULT_OXIDATION = {"Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Be": 2, "Mg": 2, "Ca": 2, "Sr": 2,
                     "Ba": 2, "Al": 3, "Ga": 3, "Fe": 3, "Cu": 2, "Ni": 2, "Zn": 2, "Pb": 2, "Bi": 3,
                     "Cr": 3, "Co": 2, "Mn": 2}
#: Anion valences used with the bond-valence table.
ANION_VALENCE = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "F": -1, "Cl": -1, "Br": -1, "I": -1,
                 "H": -1}
#: Elements that form the covalent (molecular) graph. Metals never do.
NON_METALS = frozenset({"H", "D", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I", "Te",
                        "As", "Ge"})
#: Covalent bond: d < r_cov(A) + r_cov(B) + this (Å; Cordero radii from gemmi).
COVALENT_TOLERANCE_ANGSTROM = 0.45
#: Default M–X cutoff where a bond-valence pair exists: the distance at which s = this (v.u.).
BV_CUTOFF_VALENCE = 0.04
#: Default M–X cutoff otherwise: r_cov(M) + r_cov(X) + this (Å).
RADII_TOLERANCE_ANGSTROM = 0.6
#: ... and for M···H without a bond-valence parameter (e.g. Li···H–B): r_cov(M) + r_cov(H) + this (Å).
#: 0.75 Å keeps the 2.31 Å Li···H of HT-LiBH4 and stops before the second shell of α-Li2B12H12.
HYDRIDE_TOLERANCE_ANGSTROM = 0.75
#: Default mode only: donors farther than this × the shortest donor distance are dropped (dense
#: structures where the 0.04-v.u. distance reaches the second shell); ChemEnv uses 1.41 the same way.
DISTANCE_FACTOR = 1.35
#: Names of common solvent molecules by Hill formula of the connected component.
MOLECULE_NAMES = {"C6H14O3": "diglyme", "C4H10O2": "monoglyme (DME)", "H2O": "water", "C2H6OS": "DMSO",
                  "C5H11NO": "DEF", "C4H8O": "THF", "C8H18O4": "triglyme", "C10H22O5": "tetraglyme",
                  "C2H3N": "acetonitrile", "CH4O": "methanol", "C2H6O": "ethanol", "C3H7NO": "DMF",
                  "B12H12": "B12H12(2-)", "BH4": "BH4(-)", "O4S": "sulfate",
                  "O4P": "phosphate", "CO3": "carbonate", "NO3": "nitrate"}

_HEAVY_NAMES = {"C6O3": "diglyme", "C4O2": "monoglyme (DME)", "C2OS": "DMSO", "C5NO": "DEF",
                "C4O": "THF", "C3NO": "DMF", "B12": "B12H12(2-)", "C8O4": "triglyme"}
#: Contacts listed but not counted in CN, angles, polyhedra: M···M, and M···B of B–H units (the B–H
#: hydrogens are the donors).
CONTACT_KINDS = frozenset({"metal", "cage-B", "borane-B"})


# ----------------------------------------------------------------------------------------------
# bond-valence parameters
# ----------------------------------------------------------------------------------------------
_BV_CACHE: dict[tuple[str, int, str], dict[str, Any]] | None = None


def load_bv_parameters() -> dict[tuple[str, int, str], dict[str, Any]]:
    """Bond-valence parameters from ``xtal/data/bvparm.csv``: {(cation, valence, anion): row}.

    Row keys: ``r0`` (Å), ``b`` (Å), ``ref_id``, ``reference``, ``details``. Valence 9 = unspecified.
    """
    global _BV_CACHE
    if _BV_CACHE is None:
        text = resources.files("xtal").joinpath("data/bvparm.csv").read_text(encoding="utf-8")
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        table: dict[tuple[str, int, str], dict[str, Any]] = {}
        for row in csv.DictReader(lines):
            key = (row["cation"], int(row["cation_valence"]), row["anion"])
            table.setdefault(key, {"r0": float(row["r0_angstrom"]), "b": float(row["b_angstrom"]),
                                   "ref_id": row["ref_id"], "reference": row["reference"],
                                   "details": row.get("details") or ""})
        _BV_CACHE = table
    return _BV_CACHE


def bv_parameter(cation: str, valence: int | None, anion: str) -> dict[str, Any] | None:
    """(R0, b, source) for a cation of given oxidation state and an anion, or None.

    Falls back to the table's "unspecified oxidation state" (9) row when no specific row exists.
    """
    table = load_bv_parameters()
    if valence is not None:
        row = table.get((cation, int(valence), anion))
        if row is not None:
            return {**row, "valence": int(valence)}
    row = table.get((cation, 9, anion))
    return {**row, "valence": 9} if row is not None else None


# ----------------------------------------------------------------------------------------------
# symmetry codes
# ----------------------------------------------------------------------------------------------
def parse_symop_code(code: str | None) -> tuple[int, tuple[int, int, int]]:
    """``'2_656'`` -> (2, (1, 0, 1)); ``'.'``/``None``/``'1_555'`` -> (1, (0, 0, 0)).

    Operator numbers are 1-based; translations are the CIF ``klm`` digits minus 5. Also accepts
    ``'2'`` (no translation) and ``'2_6_5_6'``-style (for translations beyond ±4).
    """
    if code is None:
        return 1, (0, 0, 0)
    c = code.strip()
    if c in (".", "?", ""):
        return 1, (0, 0, 0)
    parts = c.split("_")
    try:
        n = int(parts[0])
        if len(parts) == 1:
            return n, (0, 0, 0)
        if len(parts) == 2 and len(parts[1]) == 3:
            return n, tuple(int(ch) - 5 for ch in parts[1])  # type: ignore[return-value]
        if len(parts) == 4:
            return n, tuple(int(p) - 5 for p in parts[1:])  # type: ignore[return-value]
    except ValueError:
        pass
    raise ValueError(f"not a CIF symmetry code: {code!r}")


def format_symop_code(op_number: int, translation: Sequence[int]) -> str:
    """(2, (1, 0, 1)) -> ``'2_656'``; identity without translation -> ``'.'``."""
    t = [int(v) for v in translation]
    if op_number == 1 and t == [0, 0, 0]:
        return "."
    if all(0 <= v + 5 <= 9 for v in t):
        return f"{op_number}_{''.join(str(v + 5) for v in t)}"
    return f"{op_number}_" + "_".join(str(v + 5) for v in t)


# ----------------------------------------------------------------------------------------------
# data model
# ----------------------------------------------------------------------------------------------
@dataclass
class Bond:
    """One M–X contact. ``to`` is the neighbour's asymmetric-unit label."""

    to: str
    element: str
    symop: str
    distance: float
    su: float | None
    kind: str                      # ether-O | water | hydride-H | cage-B | metal | other
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

    def to_json_dict(self) -> dict[str, Any]:
        return {"phase": self.phase_id, "name": self.phase_name, "file": self.file,
                "model": self.model, "model_note": self.model_note, "spacegroup": self.spacegroup,
                "cutoff": self.cutoff, "su_available": self.su_available,
                "symop_source": self.symop_source, "symops": self.symops,
                "bv_source": "xtal/data/bvparm.csv (transcribed from IUCr bvparm.cif, I. D. Brown)",
                "warnings": self.warnings, "message": self.message,
                "sites": [s.to_json_dict() for s in self.sites],
                "cif_bond_check": self.cif_bond_check}


# ----------------------------------------------------------------------------------------------
# symmetry context: operators (CIF order), images, neighbour search, distance s.u.
# ----------------------------------------------------------------------------------------------
def _op_arrays(op: gemmi.Op) -> tuple[np.ndarray, np.ndarray]:
    return (np.array(op.rot, dtype=float) / op.DEN, np.array(op.tran, dtype=float) / op.DEN)


def _op_key(op: gemmi.Op) -> tuple:
    """Operator identity modulo lattice translations (no in-place wrapping of ``op``)."""
    return (tuple(tuple(r) for r in op.rot), tuple(t % op.DEN for t in op.tran))


def _raw_ops(phase: Phase, warnings: list[str]) -> tuple[list[gemmi.Op], str]:
    """Operators in the CIF's order as written (when they match the phase's group), else Phase.symops."""
    phase_ops = [gemmi.Op(s) for s in phase.symops]
    if phase.symops_as_written:
        try:
            ops = [gemmi.Op(t) for t in phase.symops_as_written]
        except (RuntimeError, ValueError):
            return phase_ops, "Phase.symops"
        unique: list[gemmi.Op] = []
        seen = set()
        for o in ops:
            key = _op_key(o)
            if key not in seen:
                seen.add(key)
                unique.append(o)
        if seen == {_op_key(o) for o in phase_ops} and len(unique) == len(phase_ops):
            return unique, f"CIF {phase.symops_tag} (as written)"
        warnings.append("the CIF's operator list does not match the phase's space group; symmetry "
                        "codes use the order of Phase.symops")
    return phase_ops, "Phase.symops"


def _param_groups(phase: Phase) -> list[tuple[list[int], float]]:
    """Independent cell parameters with their s.u.: [([indices], su)] (a=b=c tied by symmetry)."""
    su = list(phase.cell.su) + [None] * (6 - len(phase.cell.su))
    num = phase.spacegroup_number or 0
    c = phase.cell
    groups: list[list[int]]
    if 195 <= num <= 230:
        groups = [[0, 1, 2]]
    elif 75 <= num <= 142 or (143 <= num <= 194 and abs(c.gamma - 120) < 1e-3):
        groups = [[0, 1], [2]]
    elif 143 <= num <= 194:  # rhombohedral axes
        groups = [[0, 1, 2], [3, 4, 5]]
    else:
        groups = [[0], [1], [2]]
    covered = {i for g in groups for i in g}
    groups += [[i] for i in range(6) if i not in covered]
    out = []
    for g in groups:
        s = next((su[i] for i in g if su[i]), None)
        if s:
            out.append((g, float(s)))
    return out


#: calc flags of constrained (riding/calculated) atoms: their distances get no s.u. (as in SHELXL).
_RIDING_FLAGS = frozenset({"calc", "c", "r", "riding"})


class _Sym:
    """Operators, per-site images and neighbour search for one phase."""

    def __init__(self, phase: Phase, ops: list[gemmi.Op]):
        self.phase = phase
        self.ops = ops
        self.rot = np.array([_op_arrays(o)[0] for o in ops])
        self.tra = np.array([_op_arrays(o)[1] for o in ops])
        self.orth = phase.cell.orthogonalization_matrix()
        self.sites = phase.sites
        self.elements = [s.element for s in phase.sites]
        recip_len = np.linalg.norm(np.linalg.inv(self.orth), axis=1)  # |a*|, |b*|, |c*|
        self.recip_len = recip_len
        images = expand_sites(phase.cell, phase.sites, ops)
        self.img_site = images.site_index
        self.img_op = images.op_index
        self.img_frac = images.op_frac

    def search(self, x: np.ndarray, cutoff: np.ndarray | float, mask: np.ndarray | None = None
               ) -> list[tuple[int, int, tuple[int, int, int], np.ndarray, float]]:
        """Images within ``cutoff`` of fractional point x: [(site, op_index, T, frac, distance)].

        ``cutoff`` is a scalar or one value per site. Sorted by distance.
        """
        sel = np.arange(len(self.img_site)) if mask is None else np.nonzero(mask[self.img_site])[0]
        if len(sel) == 0:
            return []
        cut_site = np.broadcast_to(np.asarray(cutoff, dtype=float), (len(self.sites),))
        cut = cut_site[self.img_site[sel]]
        cmax = float(np.max(cut))
        y = self.img_frac[sel]
        d = y - x
        base = -np.round(d)
        k = np.ceil(cmax * self.recip_len).astype(int) + 1
        shifts = np.array(list(itertools.product(*(range(-kk, kk + 1) for kk in k))), dtype=float)
        v = d[None, :, :] + base[None, :, :] + shifts[:, None, :]
        dist = np.linalg.norm(v @ self.orth.T, axis=2)
        hit_s, hit_i = np.nonzero(dist < cut[None, :])
        out = []
        for s_, i_ in zip(hit_s, hit_i):
            idx = sel[i_]
            t = base[i_] + shifts[s_]
            out.append((int(self.img_site[idx]), int(self.img_op[idx]),
                        tuple(int(round(q)) for q in t), self.img_frac[idx] + t, float(dist[s_, i_])))
        out.sort(key=lambda r: (r[4], r[0], r[1]))
        return out

    def position(self, site: int, op: int, t: Sequence[int]) -> np.ndarray:
        x = np.array(self.sites[site].frac, dtype=float)
        return self.rot[op] @ x + self.tra[op] + np.asarray(t, dtype=float)

    def distance_su(self, i: int, j: int, op: int, t: Sequence[int]) -> tuple[float, float | None]:
        """Distance (Å) from site i (identity) to image (op, t) of site j, and its s.u.

        σ²(d) = Σ_p (∂d/∂p)² σ²(p) over the independent parameters: fractional x, y, z of both sites
        (one set when i == j: the same coordinate appears at both ends) and the independent cell
        parameters (a = b = c tied where the lattice requires it). No covariance terms.
        """
        si, sj = self.sites[i], self.sites[j]
        xi = np.array(si.frac, dtype=float)
        y = self.position(j, op, t)
        riding = any((s.calc_flag or "").lower() in _RIDING_FLAGS and all(v is None for v in s.frac_su)
                     for s in (si, sj))
        df = y - xi
        r = self.orth @ df
        dist = float(np.linalg.norm(r))
        if dist < 1e-9:
            return dist, None
        g = self.orth.T @ r / dist                 # ∂d/∂(Δf)
        grad_j = self.rot[op].T @ g                # ∂d/∂x_j
        grad_i = -g                                # ∂d/∂x_i
        var = 0.0
        any_su = False
        if i == j:
            comb = grad_i + grad_j
            for k in range(3):
                s = si.frac_su[k]
                if s:
                    any_su = True
                    var += (comb[k] * s) ** 2
        else:
            for grad, site in ((grad_i, si), (grad_j, sj)):
                for k in range(3):
                    s = site.frac_su[k]
                    if s:
                        any_su = True
                        var += (grad[k] * s) ** 2
        groups = _param_groups(self.phase)
        if groups:
            any_su = True
            p0 = list(self.phase.cell.parameters)
            for idx, s in groups:
                h = 1e-4
                pp, pm = list(p0), list(p0)
                for q in idx:
                    pp[q] += h
                    pm[q] -= h
                dp = np.linalg.norm(np.array(gemmi.UnitCell(*pp).orth.mat.tolist()) @ df)
                dm = np.linalg.norm(np.array(gemmi.UnitCell(*pm).orth.mat.tolist()) @ df)
                var += ((dp - dm) / (2 * h) * s) ** 2
        return dist, (math.sqrt(var) if any_su and not riding else None)

    def coordinate_gradients(self, i: int, j: int, op: int, t: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """∂d/∂x_i and ∂d/∂x_j (Å per unit fractional coordinate) of the distance i → image (op, t) of j."""
        xi = np.array(self.sites[i].frac, dtype=float)
        r = self.orth @ (self.position(j, op, t) - xi)
        g = self.orth.T @ r / np.linalg.norm(r)
        return -g, self.rot[op].T @ g

    def code(self, op: int, t: Sequence[int]) -> str:
        return format_symop_code(op + 1, t)


def _no_group(s: Site) -> bool:
    return s.disorder_group in (None, ".", "0", "?")


def _compatible(a: Site, b: Site, same_site_other_image: bool = False) -> bool:
    """Two atoms can coexist: same PART, or either in no PART, or different disorder assemblies."""
    if same_site_other_image and not _no_group(a) and str(a.disorder_group).startswith("-"):
        return False  # SHELXL negative PART: no contact with own symmetry images
    if _no_group(a) or _no_group(b):
        return True
    ga, gb = str(a.disorder_group).lstrip("-"), str(b.disorder_group).lstrip("-")
    if a.disorder_assembly and b.disorder_assembly and a.disorder_assembly != b.disorder_assembly:
        return True
    return ga == gb


def bond_from_code(phase: Phase, label1: str, label2: str, code: str | None,
                   _sym: _Sym | None = None) -> tuple[float, float | None]:
    """Distance and s.u. (Å) between site ``label1`` and the image ``code`` of site ``label2``."""
    sym = _sym or _Sym(phase, _raw_ops(phase, [])[0])
    idx = {s.label: k for k, s in enumerate(phase.sites)}
    if label1 not in idx or label2 not in idx:
        raise GeometryError(f"unknown site label {label1 if label1 not in idx else label2!r}",
                            path=phase.provenance.file)
    n, t = parse_symop_code(code)
    if not 1 <= n <= len(sym.ops):
        raise GeometryError(f"symmetry code {code!r} names operator {n} but the list has {len(sym.ops)}",
                            path=phase.provenance.file)
    return sym.distance_su(idx[label1], idx[label2], n - 1, t)


# ----------------------------------------------------------------------------------------------
# molecules and donor classification
# ----------------------------------------------------------------------------------------------
def _rcov(el: str) -> float:
    return gemmi.Element("H" if el == "D" else el).covalent_r


class _Chem:
    """Covalent graph on demand (non-metals only), with disorder compatibility."""

    def __init__(self, sym: _Sym):
        self.sym = sym
        self.nonmetal = np.array([s.element in NON_METALS for s in sym.sites])
        self.rcov = np.array([_rcov(s.element) for s in sym.sites])
        self._cache: dict[tuple, list] = {}

    def covalent_neighbours(self, site: int, y: np.ndarray) -> list[tuple[int, np.ndarray]]:
        key = (site, tuple(np.round(y, 4)))
        if key in self._cache:
            return self._cache[key]
        out = []
        if self.nonmetal[site]:
            cut = self.rcov[site] + self.rcov + COVALENT_TOLERANCE_ANGSTROM
            for (j, _op, _t, yj, d) in self.sym.search(y, cut, mask=self.nonmetal):
                if d < 0.1:
                    continue
                # H–H is never a covalent bond in these structures (avoids joining CH3 groups)
                if self.sym.sites[site].is_hydrogen and self.sym.sites[j].is_hydrogen:
                    continue
                if not _compatible(self.sym.sites[site], self.sym.sites[j], j == site):
                    continue
                out.append((j, yj))
        self._cache[key] = out
        return out

    def molecule(self, site: int, y: np.ndarray, limit: int = 400) -> tuple[frozenset, dict[str, float], bool]:
        """Connected component containing (site, y): (keys, formula counts, complete?)."""
        sites = self.sym.sites
        start = (site, tuple(np.round(y, 3)))
        seen = {start}
        queue = [(site, y)]
        counts: dict[str, float] = {}
        state: dict[str, str] = {}
        s0 = sites[site]
        if not _no_group(s0):
            state[s0.disorder_assembly or ""] = str(s0.disorder_group)
        complete = True
        while queue:
            j, yj = queue.pop()
            el = "H" if sites[j].element == "D" else sites[j].element
            counts[el] = counts.get(el, 0) + 1
            if len(seen) > limit:
                complete = False
                break
            for k, yk in self.covalent_neighbours(j, yj):
                key = (k, tuple(np.round(yk, 3)))
                if key in seen:
                    continue
                sk = sites[k]
                if not _no_group(sk):
                    asm = sk.disorder_assembly or ""
                    if asm in state and state[asm] != str(sk.disorder_group):
                        continue
                    state[asm] = str(sk.disorder_group)
                seen.add(key)
                queue.append((k, yk))
        return frozenset(seen), counts, complete


def _hill(counts: Mapping[str, float]) -> str:
    def part(el: str) -> str:
        n = counts[el]
        return el + ("" if abs(n - 1) < 1e-9 else f"{n:g}")
    els = sorted(counts)
    if "C" in counts:
        order = ["C"] + (["H"] if "H" in counts else []) + [e for e in els if e not in ("C", "H")]
    else:
        order = els
    return "".join(part(e) for e in order)


def _classify(chem: _Chem, site: int, y: np.ndarray) -> tuple[str, bool]:
    """Donor kind of the atom (site, y) and whether it is a donor at all (C–H hydrogens are not)."""
    s = chem.sym.sites[site]
    el = s.element
    if el not in NON_METALS:
        return "metal", True
    nb = [chem.sym.sites[k].element for k, _ in chem.covalent_neighbours(site, y)]
    if el in ("H", "D"):
        if any(e == "B" for e in nb) or not nb:
            return "hydride-H", True
        return "H (C/N/O-bound)", False
    if el in ("F", "Cl", "Br", "I") and not nb:
        return "halide", True
    if el == "O":
        n_c, n_h = nb.count("C"), sum(1 for e in nb if e in ("H", "D"))
        if n_c == 2 and len(nb) == 2:
            return "ether-O", True
        if n_h >= 1 and n_h == len(nb):
            return "water", True
        return "other", True
    if el == "B":
        if nb.count("B") >= 4:
            return "cage-B", True
        return ("borane-B" if any(e in ("H", "D") for e in nb) else "other"), True
    return "other", True


# ----------------------------------------------------------------------------------------------
# polyhedra: continuous shape measures
# ----------------------------------------------------------------------------------------------
def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _ideal_polyhedra() -> dict[int, dict[str, np.ndarray]]:
    ring = lambda n, z=0.0, phase=0.0: [(math.cos(2 * math.pi * k / n + phase),  # noqa: E731
                                         math.sin(2 * math.pi * k / n + phase), z) for k in range(n)]
    tet = _unit([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)])
    octa = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)], float)
    # trigonal prism with all edges equal, vertices on the unit sphere
    r = math.sqrt(4 / 7)
    h = math.sqrt(3 / 7)  # edge: sqrt(3) r = 2 h, r^2 + h^2 = 1
    tpr = np.array([(r * math.cos(a), r * math.sin(a), z) for z in (h, -h)
                    for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)])
    sq = [(1, 0, 0), (0, 1, 0), (-1, 0, 0), (0, -1, 0)]
    # square antiprism with all edges equal, vertices on the unit sphere (solve for the height)
    def sapr():
        from scipy.optimize import brentq
        f = lambda hh: (math.sqrt(2) * math.sqrt(1 - hh * hh)) ** 2 - (  # noqa: E731
            (2 * (1 - hh * hh) * (1 - math.cos(math.pi / 4))) + 4 * hh * hh)
        hh = brentq(f, 0.05, 0.95)
        rr = math.sqrt(1 - hh * hh)
        top = [(rr * math.cos(k * math.pi / 2), rr * math.sin(k * math.pi / 2), hh) for k in range(4)]
        bot = [(rr * math.cos(k * math.pi / 2 + math.pi / 4), rr * math.sin(k * math.pi / 2 + math.pi / 4),
                -hh) for k in range(4)]
        return np.array(top + bot)
    ta, tb = math.radians(35.2), math.radians(73.5)   # Hoard–Silverton D2d dodecahedron
    tdd = np.array([(math.sin(ta), 0, math.cos(ta)), (-math.sin(ta), 0, math.cos(ta)),
                    (0, math.sin(ta), -math.cos(ta)), (0, -math.sin(ta), -math.cos(ta)),
                    (math.sin(tb), 0, -math.cos(tb)), (-math.sin(tb), 0, -math.cos(tb)),
                    (0, math.sin(tb), math.cos(tb)), (0, -math.sin(tb), math.cos(tb))])
    cube = _unit(list(itertools.product((1, -1), repeat=3)))
    ctpr = np.vstack([tpr, _unit([(-1, 0, 0)])])   # cap on the square face opposite the first vertex
    coc = np.vstack([octa, _unit([(1, 1, 1)])])
    return {
        3: {"TP-3 (trigonal planar)": np.array(ring(3)),
            "vT-3 (trigonal pyramid)": tet[:3],
            "mer-vOC-3 (T-shaped)": octa[[0, 1, 2]]},
        4: {"T-4 (tetrahedron)": tet,
            "SP-4 (square planar)": np.array(sq, float),
            "SS-4 (seesaw)": np.array([(0, 0, 1), (0, 0, -1), (1, 0, 0), (-0.5, math.sqrt(3) / 2, 0)]),
            "vTBPY-4 (trigonal pyramid)": np.array([(0, 0, 1)] + ring(3))},
        5: {"TBPY-5 (trigonal bipyramid)": np.array([(0, 0, 1), (0, 0, -1)] + ring(3)),
            "SPY-5 (square pyramid)": octa[[0, 1, 2, 3, 4]],
            "PP-5 (pentagon)": np.array(ring(5))},
        6: {"OC-6 (octahedron)": octa, "TPR-6 (trigonal prism)": tpr, "HP-6 (hexagon)": np.array(ring(6))},
        7: {"PBPY-7 (pentagonal bipyramid)": np.array([(0, 0, 1), (0, 0, -1)] + ring(5)),
            "COC-7 (capped octahedron)": coc, "CTPR-7 (capped trigonal prism)": ctpr},
        8: {"CU-8 (cube)": cube, "SAPR-8 (square antiprism)": sapr(),
            "TDD-8 (triangular dodecahedron)": tdd,
            "HBPY-8 (hexagonal bipyramid)": np.array([(0, 0, 1), (0, 0, -1)] + ring(6))},
    }


IDEAL_POLYHEDRA: dict[int, dict[str, np.ndarray]] = _ideal_polyhedra()
_PERMS: dict[int, np.ndarray] = {}


def continuous_shape_measure(ligands: np.ndarray, ideal: np.ndarray, centre: np.ndarray | None = None) -> float:
    """Continuous shape measure S (0 = ideal, 100 = maximal) of ligand positions vs an ideal polyhedron.

    Minimised over all vertex permutations, proper rotations and scale (Pinsky & Avnir 1998). When
    ``centre`` is given (the metal), it is included and matched to the centre of the ideal polyhedron.
    """
    q = np.asarray(ligands, dtype=float)
    p = np.asarray(ideal, dtype=float)
    n = len(q)
    if len(p) != n:
        raise ValueError("ligand count differs from the ideal polyhedron's")
    if centre is not None:
        q = np.vstack([np.asarray(centre, float)[None, :], q])
        p = np.vstack([np.zeros((1, 3)), p])
    q = q - q.mean(axis=0)
    p = p - p.mean(axis=0)
    if n not in _PERMS:
        _PERMS[n] = np.array(list(itertools.permutations(range(n))), dtype=int)
    perms = _PERMS[n]
    off = 1 if centre is not None else 0
    p_lig = p[off:][perms]                                   # (P, n, 3)
    h = np.einsum("ik,pil->pkl", q[off:], p_lig)
    if off:
        h = h + np.outer(q[0], p[0])[None]
    u, s, vt = np.linalg.svd(h)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sigma = s[:, 0] + s[:, 1] + sign * s[:, 2]
    best = float(np.max(sigma))
    qq, pp = float(np.sum(q * q)), float(np.sum(p * p))
    return max(0.0, 100.0 * (1.0 - best * best / (qq * pp)))


def _shape_summary(vectors: list[np.ndarray]) -> dict[str, Any]:
    n = len(vectors)
    if not 3 <= n <= 8:
        return {"cshm": {}, "best": None, "best_cshm": None,
                "note": f"CShM computed for CN 3–8 only (CN = {n})"}
    pts = np.array(vectors)
    values = {name: round(continuous_shape_measure(pts, ideal, centre=np.zeros(3)), 3)
              for name, ideal in IDEAL_POLYHEDRA[n].items()}
    best = min(values, key=values.get)
    return {"cshm": values, "best": best, "best_cshm": values[best],
            "note": "xtal CShM: metal included, ideal polyhedra with unit M–L distances"}


def _angles(vectors: list[np.ndarray]) -> dict[str, float | None]:
    if len(vectors) < 2:
        return {"min": None, "max": None, "mean": None, "n": 0}
    u = _unit(np.array(vectors))
    vals = [math.degrees(math.acos(max(-1.0, min(1.0, float(u[i] @ u[j])))))
            for i in range(len(u)) for j in range(i + 1, len(u))]
    return {"min": round(min(vals), 2), "max": round(max(vals), 2), "mean": round(float(np.mean(vals)), 2),
            "n": len(vals)}


# ----------------------------------------------------------------------------------------------
# ChemEnv (optional, time-limited, in a child process)
# ----------------------------------------------------------------------------------------------
def _chemenv_worker(phase: Phase, labels: list[str], queue) -> None:  # pragma: no cover - child process
    try:
        import warnings as _w
        _w.filterwarnings("ignore")
        from pymatgen.analysis.chemenv.coordination_environments.chemenv_strategies import (
            SimplestChemenvStrategy)
        from pymatgen.analysis.chemenv.coordination_environments.coordination_geometry_finder import (
            LocalGeometryFinder)
        from pymatgen.analysis.chemenv.coordination_environments.structure_environments import (
            LightStructureEnvironments)
        s = phase.to_pymatgen()
        if not s.is_ordered:
            queue.put({"error": "structure has partial occupancies; ChemEnv needs an ordered structure"})
            return
        idx = {}
        for i, site in enumerate(s):
            lab = site.properties.get("label")
            if lab in labels and lab not in idx:
                idx[lab] = i
        lgf = LocalGeometryFinder()
        lgf.setup_parameters(centering_type="centroid", include_central_site_in_centroid=True)
        lgf.setup_structure(s)
        se = lgf.compute_structure_environments( only_indices=list(idx.values()),
                                                maximum_distance_factor=1.41, get_from_hints=False)
        lse = LightStructureEnvironments.from_structure_environments(
            strategy=SimplestChemenvStrategy(), structure_environments=se)
        out = {}
        for lab, i in idx.items():
            envs = lse.coordination_environments[i] or []
            out[lab] = [{"ce_symbol": e.get("ce_symbol"), "csm": float(e.get("csm")),
                         "fraction": float(e.get("ce_fraction", 1.0))} for e in envs]
        queue.put({"result": out})
    except Exception as exc:  # noqa: BLE001 - report any failure to the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _run_chemenv(phase: Phase, labels: list[str], timeout_s: float) -> dict[str, Any]:
    import multiprocessing as mp
    import queue as _queue
    try:
        ctx = mp.get_context("fork")
    except ValueError:
        return {"status": "unavailable", "reason": "no fork start method on this platform"}
    q = ctx.Queue()
    proc = ctx.Process(target=_chemenv_worker, args=(phase, labels, q), daemon=True)
    proc.start()
    try:
        msg = q.get(timeout=timeout_s)
    except _queue.Empty:
        msg = None
    if proc.is_alive():
        proc.terminate()
    proc.join(1)
    if msg is None:
        return {"status": "timeout", "reason": f"ChemEnv did not finish within {timeout_s:g} s"}
    if "error" in msg:
        return {"status": "failed", "reason": msg["error"]}
    return {"status": "ok", "environments": msg["result"]}


# ----------------------------------------------------------------------------------------------
# the analysis
# ----------------------------------------------------------------------------------------------
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


def _alternatives(bonds: list[Bond]) -> list[tuple[str, float]]:
    """Disorder alternatives among the neighbours: ['A:1', 'A:2', ...] with their mean occupancy."""
    by_asm: dict[str, dict[str, list[float]]] = {}
    for b in bonds:
        if _alt_key(b) is None:
            continue
        by_asm.setdefault(b.disorder_assembly or "", {}).setdefault(str(b.disorder_group), []).append(b.occupancy)
    if not by_asm:
        return []
    options = []
    for asm, groups in sorted(by_asm.items()):
        options.append([(f"{asm}:{g}", float(np.mean(o))) for g, o in sorted(groups.items())])
    combos = []
    for combo in itertools.product(*options):
        combos.append(("|".join(k for k, _ in combo), float(np.prod([o for _, o in combo]))))
    return combos


def _oxidation_state(site: Site) -> int | None:
    if site.charge is not None and site.charge > 0:
        return int(round(site.charge))
    return DEFAULT_OXIDATION.get(site.element)


def _select_metals(phase: Phase, metals: Iterable[str] | str | None) -> list[int]:
    if metals is None:
        wanted = set(DEFAULT_METALS)
        return [i for i, s in enumerate(phase.sites) if s.element in wanted]
    if isinstance(metals, str):
        metals = [m.strip() for m in metals.split(",") if m.strip()]
    metals = list(metals)
    out = []
    for i, s in enumerate(phase.sites):
        for m in metals:
            if s.label == m or s.element.lower() == m.lower():
                out.append(i)
                break
    return out


def _pair_cutoff(metal: Site, ox: int | None, other: Site, explicit: float | None) -> tuple[float, str]:
    if explicit is not None:
        return float(explicit), "explicit"
    el = "H" if other.element == "D" else other.element
    if el in ANION_VALENCE:
        par = bv_parameter(metal.element, ox, el)
        if par is not None:
            return par["r0"] - par["b"] * math.log(BV_CUTOFF_VALENCE), "bond valence"
    tol = HYDRIDE_TOLERANCE_ANGSTROM if el == "H" else RADII_TOLERANCE_ANGSTROM
    return _rcov(metal.element) + _rcov(el) + tol, "radii"


def analyse_geometry(phase: Phase, metals: Iterable[str] | str | None = None,
                     cutoff_angstrom: float | None = None, *, chemenv: bool = True,
                     chemenv_timeout_s: float = 30.0, compare_cif: bool = True,
                     no_metal: str = "raise") -> GeometryResult:
    """Coordination geometry of the metal sites of ``phase``.

    Parameters
    ----------
    phase : a `Phase` from `read_cif`.
    metals : element symbols and/or site labels (list or comma-separated string); default all alkali
        and alkaline-earth sites.
    cutoff_angstrom : one M–X cutoff for every neighbour; default per pair: the distance at which the
        bond valence is 0.04 v.u. (IUCr parameters), else r_cov(M) + r_cov(X) + 0.6 Å.
    chemenv : also run pymatgen ChemEnv (in a child process, time-limited; failures are reported).
    compare_cif : compare with the CIF's own ``_geom_bond`` loop when present.
    no_metal : "raise" (default) raises `NoMetalError` naming the file when no selected metal exists;
        "empty" returns a result with no sites and a ``message``.
    """
    warnings: list[str] = []
    ops, op_source = _raw_ops(phase, warnings)
    sym = _Sym(phase, ops)
    chem = _Chem(sym)
    idxs = _select_metals(phase, metals)
    path = phase.provenance.file
    if not idxs:
        what = "alkali/alkaline-earth metal" if metals is None else f"site matching {metals!r}"
        msg = (f"no {what} in the structure (elements present: "
               f"{', '.join(sorted({s.element for s in phase.sites}))})")
        if no_metal == "raise":
            raise NoMetalError(msg, path=path, block=phase.block)
        return GeometryResult(phase.id, phase.name, path, phase.is_model, phase.provenance.note,
                              phase.spacegroup_hm, {"mode": "none"}, [], warnings,
                              False, op_source, [o.triplet() for o in ops], None, message=msg)
    if phase.is_model:
        warnings.insert(0, "MODEL: this structure is a model built for the project, not a refinement; "
                           "its distances are not experimental")
    coord_su = any(any(v is not None for v in s.frac_su) for s in phase.sites)
    cell_su = any(v for v in phase.cell.su)
    su_available = coord_su or cell_su
    if not coord_su:
        warnings.append("the CIF gives no coordinate s.u.; distances are reported without s.u."
                        + (" (cell s.u. only would be misleading)" if cell_su else ""))
    for s in phase.sites:
        if s.occupancy < 0.999 and _no_group(s):
            warnings.append(f"site {s.label} has occupancy {s.occupancy:g} but no disorder group; "
                            "it is treated as present in every alternative")

    sites_out: list[SiteGeometry] = []
    cut_modes: set[str] = set()
    for i in idxs:
        m = phase.sites[i]
        ox = _oxidation_state(m)
        site_warn: list[str] = []
        if m.occupancy < 0.999 and _no_group(m):
            site_warn.append(f"{m.label}: partial occupancy {m.occupancy:g} without a disorder group")
        cuts = np.zeros(len(phase.sites))
        for j, o in enumerate(phase.sites):
            cuts[j], mode = _pair_cutoff(m, ox, o, cutoff_angstrom)
            cut_modes.add(mode)
        x = np.array(m.frac, dtype=float)
        bonds: list[Bond] = []
        mol_ids: dict[frozenset, str] = {}
        mol_info: dict[str, dict[str, Any]] = {}
        for (j, op, t, y, d) in sym.search(x, cuts):
            if j == i and d < SAME_ATOM_TOLERANCE_ANGSTROM:
                continue
            o = phase.sites[j]
            if not _compatible(m, o, same_site_other_image=(j == i)):
                continue
            kind, donor = _classify(chem, j, y)
            if not donor:
                continue
            dist, su = sym.distance_su(i, j, op, t)
            if not coord_su:
                su = None
            molecule = None
            keys, counts, complete = (chem.molecule(j, y) if o.element in NON_METALS
                                      else (frozenset(), {}, True))
            if len(keys) > 1:
                found = next((mid for k2, mid in mol_ids.items() if (j, tuple(np.round(y, 3))) in k2), None)
                if found is None:
                    formula = _hill(counts)
                    heavy = _hill({e: n for e, n in counts.items() if e not in ("H", "D")})
                    if not complete:
                        name = "extended network"
                    elif formula in MOLECULE_NAMES:
                        name = MOLECULE_NAMES[formula]
                    elif "H" not in counts and heavy in _HEAVY_NAMES:
                        name = f"{_HEAVY_NAMES[heavy]} (H not modelled)"
                    else:
                        name = formula
                    n_same = sum(1 for v in mol_info.values() if v["name"] == name)
                    found = f"{name}#{n_same + 1}"
                    mol_ids[keys] = found
                    mol_info[found] = {"name": name, "formula": formula if complete else None,
                                       "complete": complete, "donors": []}
                molecule = found
                mol_info[found]["donors"].append(o.label)
            bv = None
            el = "H" if o.element == "D" else o.element
            if kind != "metal" and el in ANION_VALENCE and not (el == "H" and kind != "hydride-H"):
                par = bv_parameter(m.element, ox, el)
                if par is not None:
                    bv = math.exp((par["r0"] - dist) / par["b"])
            vec = sym.orth @ (y - x)
            bonds.append(Bond(to=o.label, element=o.element, symop=sym.code(op, t), distance=dist, su=su,
                              kind=kind, occupancy=o.occupancy, disorder_assembly=o.disorder_assembly,
                              disorder_group=None if _no_group(o) else str(o.disorder_group),
                              molecule=molecule, bond_valence=bv, vector=tuple(float(v) for v in vec)))
            if o.occupancy < 0.999 and _no_group(o):
                site_warn.append(f"neighbour {o.label} ({sym.code(op, t)}) has occupancy {o.occupancy:g} "
                                 "without a disorder group")
        if cutoff_angstrom is None:
            dmin: dict[str, float] = {}
            for b in bonds:
                if b.kind not in CONTACT_KINDS:
                    dmin[b.element] = min(dmin.get(b.element, b.distance), b.distance)
            far = [b for b in bonds if b.kind not in CONTACT_KINDS and b.distance > DISTANCE_FACTOR * dmin[b.element]]
            if far:
                site_warn.append(f"{m.label}: {len(far)} neighbour(s) beyond {DISTANCE_FACTOR} × the shortest "
                                 "M–X distance of the same element not counted ("
                                 + ", ".join(f"{b.to} {b.symop} {b.distance:.3f} Å" for b in far[:6])
                                 + (" …" if len(far) > 6 else "") + "); pass an explicit cutoff to include them")
                bonds = [b for b in bonds if b not in far]
                for k in list(mol_info):
                    mol_info[k]["donors"] = [b.to for b in bonds if b.molecule == k]
        # alternatives, CN, BVS
        alts = _alternatives(bonds)
        major = max(alts, key=lambda a: a[1])[0] if alts else None
        cn_alt: dict[str, int] = {}
        bvs_alt: dict[str, float | None] = {}
        skipped: set[str] = set()
        used_pars: dict[str, dict[str, Any]] = {}

        def bvs_of(alt: str | None) -> float | None:
            total, any_par = 0.0, False
            for b in bonds:
                if b.kind in CONTACT_KINDS or not _in_alternative(b, alt):
                    continue
                if b.bond_valence is None:
                    skipped.add(f"{b.element} ({b.kind})")
                    continue
                any_par = True
                w = b.occupancy if (b.occupancy < 0.999 and b.disorder_group is None) else 1.0
                total += w * b.bond_valence
                el = "H" if b.element == "D" else b.element
                par = bv_parameter(m.element, ox, el)
                used_pars[el] = {"pair": f"{m.element}({ox})–{el}({ANION_VALENCE[el]})", "r0": par["r0"],
                                 "b": par["b"], "source": f"{par['reference']} [bvparm ref {par['ref_id']}]",
                                 "table_valence": par["valence"]}
            return total if any_par else None

        for a, _occ in alts:
            cn_alt[a] = sum(1 for b in bonds if b.kind not in CONTACT_KINDS and _in_alternative(b, a))
            bvs_alt[a] = bvs_of(a)
        donors = [b for b in bonds if b.kind not in CONTACT_KINDS and _in_alternative(b, major)]
        cn = len(donors)
        if any(b.kind in ("cage-B", "borane-B") for b in bonds) and not any(b.kind == "hydride-H" for b in bonds):
            site_warn.append(f"{m.label}: M···B contacts but no B–H hydrogens within the cutoff (H not "
                             "modelled?); CN counts no B–H donors")
        bvs = bvs_of(major)
        if bvs is None:
            bvs_note = ("BVS undefined: no IUCr bond-valence parameter for "
                        + (", ".join(sorted(skipped)) if skipped else "any neighbour")
                        + f" with {m.element}({ox})")
        elif skipped:
            bvs_note = ("BVS over anions with IUCr parameters only; skipped (no parameter): "
                        + ", ".join(sorted(skipped)))
        else:
            bvs_note = "BVS over all donors"
        if bvs is not None and any(b.kind == "hydride-H" and b.bond_valence is not None for b in donors):
            bvs_note += ("; M–H(−1) parameters are Brese & O'Keeffe (1991) extrapolations for hydrides, "
                         "applied to B–H hydrogens: indicative only")
        vecs = [np.array(b.vector) for b in donors]
        poly = _shape_summary(vecs)
        ligands = []
        for k, v in mol_info.items():
            dl = [b.to for b in donors if b.molecule == k]
            if dl:
                ligands.append({"molecule": k, "name": v["name"], "formula": v["formula"],
                                "complete": v["complete"], "donors": dl, "denticity": len(dl)})
        mode = _coordination_mode(donors, mol_info)
        sites_out.append(SiteGeometry(
            label=m.label, element=m.element, frac=tuple(m.frac), occupancy=m.occupancy,
            disorder_assembly=m.disorder_assembly, disorder_group=None if _no_group(m) else m.disorder_group,
            oxidation_state=ox, bonds=bonds, cn=cn, cn_alternatives=cn_alt, bvs=bvs, bvs_alternatives=bvs_alt,
            bvs_note=bvs_note, bv_parameters=list(used_pars.values()), angles=_angles(vecs), polyhedron=poly,
            ligands=ligands, coordination_mode=mode, warnings=site_warn, major_alternative=major))
    if chemenv:
        ce = _run_chemenv(phase, [s.label for s in sites_out], chemenv_timeout_s)
        for s in sites_out:
            if ce["status"] == "ok":
                s.polyhedron["chemenv"] = {"status": "ok", "environments": ce["environments"].get(s.label, [])}
            else:
                s.polyhedron["chemenv"] = dict(ce)
        if ce["status"] != "ok":
            warnings.append(f"pymatgen ChemEnv did not work ({ce['status']}: {ce['reason']}); "
                            "the polyhedra rely on xtal's own CShM")
    else:
        for s in sites_out:
            s.polyhedron["chemenv"] = {"status": "not run"}
    cutoff = ({"mode": "explicit", "angstrom": float(cutoff_angstrom)} if cutoff_angstrom is not None else
              {"mode": "default", "rule": f"bond valence s = {BV_CUTOFF_VALENCE} v.u. where an IUCr parameter "
                                          f"exists, else r_cov(M) + r_cov(X) + {RADII_TOLERANCE_ANGSTROM} Å "
                                          f"({HYDRIDE_TOLERANCE_ANGSTROM} Å for H); "
                                          f"donors beyond {DISTANCE_FACTOR} × the shortest M–X of the same X dropped",
               "used": sorted(cut_modes)})
    check = None
    if compare_cif:
        check = compare_cif_bonds(phase, _sym=sym)
    return GeometryResult(phase.id, phase.name, path, phase.is_model, phase.provenance.note,
                          phase.spacegroup_hm, cutoff, sites_out, warnings, su_available, op_source,
                          [o.triplet() for o in ops], check)


def _coordination_mode(donors: list[Bond], mol_info: dict[str, dict[str, Any]]) -> str:
    if not donors:
        return "no donors within the cutoff"
    by_kind: dict[str, int] = {}
    for b in donors:
        k = b.kind if b.kind != "other" else f"{b.element} (other)"
        by_kind[k] = by_kind.get(k, 0) + 1
    parts = [f"{n} {k}" for k, n in sorted(by_kind.items())]
    mols: dict[str, list[str]] = {}
    for b in donors:
        if b.molecule:
            mols.setdefault(mol_info[b.molecule]["name"], []).append(b.molecule)
    ml = []
    for name, ids in sorted(mols.items(), key=lambda kv: (-len(set(kv[1])), kv[0])):
        uniq = sorted(set(ids))
        dent = [ids.count(u) for u in uniq]
        ml.append(f"{len(uniq)} {name} (κ{'+κ'.join(str(d) for d in sorted(dent, reverse=True))})")
    return ", ".join(parts) + (" from " + ", ".join(ml) if ml else "")


# ----------------------------------------------------------------------------------------------
# comparison with the CIF's own _geom_bond loop
# ----------------------------------------------------------------------------------------------
def _last_digit_units(text: str) -> float | None:
    """Value of one unit in the last decimal place of a CIF number ('2.027(9)' -> 0.001)."""
    t = text.split("(")[0]
    if "." not in t:
        return 1.0
    return 10.0 ** (-len(t.split(".")[1]))


def _printed_coordinate_rounding(phase: Phase) -> dict[str, np.ndarray]:
    """Half a unit in the last printed digit of each site's fractional coordinates (label -> 3-vector)."""
    out: dict[str, np.ndarray] = {}
    for site in phase.sites:
        if site.frac_decimals is not None:
            out[site.label] = np.array([0.5 * 10.0 ** (-dec) if dec < 6 else 0.0 for dec in site.frac_decimals])
    return out


def compare_cif_bonds(phase: Phase, *, _sym: _Sym | None = None) -> dict[str, Any] | None:
    """Recompute every bond of the CIF's ``_geom_bond_*`` loop; None when the file has no such loop.

    Returns ``{"n_listed", "n_compared", "max_abs_diff", "worst", "max_su_diff_last_digits",
    "n_su_compared", "symmetry_codes_found", "rows": [...]}``. Each row: label_1, label_2, symop, cif
    (text), cif_distance, cif_su, distance, su, diff, rounding_bound (how much |diff| the printed precision
    of the CIF's distance and coordinates allows: half a unit in the last digit of d plus the linear
    worst case of half a unit in the last digit of every coordinate), su_diff_last_digits, code_found (the
    code xtal's own neighbour search assigns to that image). ``max_diff_beyond_rounding`` = largest
    |diff| − rounding_bound (≤ 0 when every bond agrees to printed precision).
    """
    if not phase.geom_bonds:
        return None
    sym = _sym or _Sym(phase, _raw_ops(phase, [])[0])
    idx = {s.label: k for k, s in enumerate(phase.sites)}
    printed = _printed_coordinate_rounding(phase)
    rows = []
    for gb in phase.geom_bonds:
        l1, l2, dtext, code = gb.label_1, gb.label_2, gb.distance_text, gb.symmetry_code
        try:
            dval, dsu = parse_su(dtext)
        except ValueError:
            continue
        if dval is None or l1 not in idx or l2 not in idx:
            rows.append({"label_1": l1, "label_2": l2, "symop": code, "cif": dtext, "status": "unmatched"})
            continue
        n, t = parse_symop_code(code)
        d, su = sym.distance_su(idx[l1], idx[l2], n - 1, t)
        # which code does xtal's own search assign to that image?
        found = None
        target = sym.position(idx[l2], n - 1, t)
        x1 = np.array(phase.sites[idx[l1]].frac, dtype=float)
        for (j, op, tt, y, dd) in sym.search(x1, d + 0.05, mask=np.arange(len(phase.sites)) == idx[l2]):
            diff = y - target
            if np.linalg.norm(sym.orth @ (diff - np.round(diff))) < 1e-3 and abs(dd - d) < 1e-6:
                # the same atom: same position modulo the lattice AND same image
                if np.allclose(diff, 0, atol=1e-4):
                    found = sym.code(op, tt)
                    break
                found = found or sym.code(op, tt)
        unit = _last_digit_units(dtext)
        gi, gj = sym.coordinate_gradients(idx[l1], idx[l2], n - 1, t)
        ri, rj = printed.get(l1, np.zeros(3)), printed.get(l2, np.zeros(3))
        rounding = (float(np.sum(np.abs(gi + gj) * ri)) if idx[l1] == idx[l2]
                    else float(np.sum(np.abs(gi) * ri) + np.sum(np.abs(gj) * rj)))
        rounding += 0.5 * (unit or 0.0)
        su_diff = None
        if dsu is not None and su is not None and unit:
            su_diff = abs(round(su / unit) - round(dsu / unit))
        rows.append({"label_1": l1, "label_2": l2, "symop": code, "cif": dtext, "cif_distance": dval,
                     "cif_su": dsu, "distance": round(d, 6), "su": None if su is None else round(su, 6),
                     "text": format_su(d, su), "diff": round(d - dval, 6), "rounding_bound": round(rounding, 6),
                     "su_diff_last_digits": su_diff,
                     "code_found": found, "status": "ok"})
    ok = [r for r in rows if r["status"] == "ok"]
    worst = max(ok, key=lambda r: abs(r["diff"])) if ok else None
    su_rows = [r for r in ok if r["su_diff_last_digits"] is not None]
    excess = [abs(r["diff"]) - r["rounding_bound"] for r in ok]
    return {"n_listed": len(rows), "n_compared": len(ok),
            "max_abs_diff": None if worst is None else abs(worst["diff"]),
            "max_diff_beyond_rounding": max(excess) if excess else None,
            "worst": worst,
            "n_su_compared": len(su_rows),
            "max_su_diff_last_digits": max((r["su_diff_last_digits"] for r in su_rows), default=None),
            "symmetry_codes_found": sum(1 for r in ok if _same_code(r["code_found"], r["symop"])),
            "rows": rows}


def _same_code(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return parse_symop_code(a) == parse_symop_code(b)


# ----------------------------------------------------------------------------------------------
# comparison across structures, reports, figure
# ----------------------------------------------------------------------------------------------
_METAL_ORDER = {m: k for k, m in enumerate(("Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca", "Sr", "Ba"))}


def published_m_o_ranges() -> dict[str, tuple[float, float]]:
    """Published M–O ranges (Å) by library id: the ``checks`` of `structures/library.toml` (the seed
    solvates of Wang et al., Chem. Synth. 2026, 6, 56)."""
    from xtal.library import Library

    return Library.bundled(user_dir=False).published_ranges()


def compare_metals(results: Sequence[GeometryResult],
                   published: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (metal element, phase): M–O min/max/mean, CN range, BVS range, published range.

    ``published`` maps phase id -> (lo, hi) or -> {metal: (lo, hi)} (Å); default `published_m_o_ranges()`.
    ``within_published`` is True/False when a published range exists and M–O distances were found.
    """
    pub = published_m_o_ranges() if published is None else published
    rows = []
    for r in results:
        by_metal: dict[str, list[SiteGeometry]] = {}
        for s in r.sites:
            by_metal.setdefault(s.element, []).append(s)
        for metal, sites in by_metal.items():
            mo = [b.distance for s in sites for b in s.donors() if b.element == "O"]
            cns = [s.cn for s in sites]
            bvs = [s.bvs for s in sites if s.bvs is not None]
            rng = pub.get(r.phase_id)
            if isinstance(rng, Mapping):
                rng = rng.get(metal)
            row = {"metal": metal, "phase": r.phase_id, "model": r.model, "n_sites": len(sites),
                   "m_o_min": min(mo) if mo else None, "m_o_max": max(mo) if mo else None,
                   "m_o_mean": float(np.mean(mo)) if mo else None, "n_m_o": len(mo),
                   "cn_min": min(cns), "cn_max": max(cns),
                   "bvs_min": min(bvs) if bvs else None, "bvs_max": max(bvs) if bvs else None,
                   "published_m_o": tuple(rng) if rng else None, "within_published": None}
            if rng and mo:
                row["within_published"] = bool(min(mo) >= rng[0] - 0.0005 and max(mo) <= rng[1] + 0.0005)
            rows.append(row)
    rows.sort(key=lambda q: (_METAL_ORDER.get(q["metal"], 99), q["metal"], q["phase"]))
    return rows


def _f(v: float | None, nd: int = 3) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def render_geometry_markdown(results: Sequence[GeometryResult], *, figure: str | None = None,
                             published: Mapping[str, Any] | None = None) -> str:
    """Markdown report: per phase and metal site the bond table, CN, BVS, polyhedron; then the
    comparison table per metal and (optionally) the figure ``figure`` (path relative to the report)."""
    out = ["# Coordination geometry", ""]
    if any(r.model for r in results):
        out += ["> **⚠ MODEL STRUCTURE(S):** " + ", ".join(r.phase_id for r in results if r.model)
                + " — coordinates were BUILT, not refined; their distances are not experimental results.", ""]
    for r in results:
        out.append(f"## {r.phase_name} (`{r.phase_id}`, {r.spacegroup})")
        out.append("")
        if r.model:
            note = " ".join((r.model_note or "").split())
            out += [f"> **⚠ MODEL — NOT A REFINED STRUCTURE.** {note}".rstrip(), ""]
        out.append(f"- file: `{r.file}`")
        cut = r.cutoff
        out.append("- cutoff: " + (f"{cut['angstrom']:.3f} Å (explicit)" if cut.get("mode") == "explicit"
                                    else cut.get("rule", cut.get("mode", ""))))
        out.append(f"- symmetry codes: operator numbers follow {r.symop_source}: "
                   + "; ".join(f"{k + 1}: {t}" for k, t in enumerate(r.symops[:48]))
                   + (" …" if len(r.symops) > 48 else ""))
        out.append("- s.u.: " + ("from cell and coordinate s.u., no covariance" if r.su_available
                                 else "not available in the CIF — distances without s.u."))
        if r.message:
            out.append(f"- **{r.message}**")
        for w in r.warnings:
            out.append(f"- ⚠ {w}")
        out.append("")
        for s in r.sites:
            out.append(f"### {s.label} ({s.element}, oxidation state {s.oxidation_state})")
            out.append("")
            alt = ", ".join(f"{k}: {v}" for k, v in s.cn_alternatives.items())
            out.append(f"- CN = **{s.cn}**" + (f" (per disorder alternative: {alt})" if alt else ""))
            out.append(f"- coordination: {s.coordination_mode}")
            out.append(f"- BVS = **{_f(s.bvs, 3)} v.u.** — {s.bvs_note}")
            for p in s.bv_parameters:
                out.append(f"  - {p['pair']}: R0 = {p['r0']} Å, b = {p['b']} Å ({p['source']})")
            a = s.angles
            if a.get("n"):
                out.append(f"- L–M–L angles: min {a['min']:.1f}°, max {a['max']:.1f}°, mean {a['mean']:.1f}°")
            poly = s.polyhedron
            if poly.get("best"):
                shapes = ", ".join(f"{k.split()[0]} {v:.2f}" for k, v in sorted(poly["cshm"].items(),
                                                                               key=lambda kv: kv[1]))
                out.append(f"- polyhedron (xtal CShM): **{poly['best']}**, S = {poly['best_cshm']:.2f}; "
                           f"all: {shapes}")
            else:
                out.append(f"- polyhedron: {poly.get('note')}")
            ce = poly.get("chemenv", {})
            if ce.get("status") == "ok":
                envs = "; ".join(f"{e['ce_symbol']} (csm {e['csm']:.2f}, fraction {e['fraction']:.2f})"
                                 for e in ce["environments"]) or "none"
                out.append(f"- pymatgen ChemEnv: {envs}")
            elif ce:
                out.append(f"- pymatgen ChemEnv: {ce.get('status')}" + (f" — {ce['reason']}" if ce.get("reason")
                                                                       else ""))
            for w in s.warnings:
                out.append(f"- ⚠ {w}")
            out += ["", "| neighbour | symop | d (Å) | kind | molecule | PART | occ. | s (v.u.) |",
                    "|---|---|---|---|---|---|---|---|"]
            for b in s.bonds:
                out.append(f"| {b.to} | {b.symop} | {b.text} | {b.kind} | {b.molecule or ''} | "
                           f"{b.disorder_group or ''} | {b.occupancy:g} | {_f(b.bond_valence, 3)} |")
            out.append("")
        c = r.cif_bond_check
        if c:
            out.append(f"### Check against the CIF's `_geom_bond` loop ({c['n_compared']} of {c['n_listed']} bonds)")
            out.append("")
            w = c["worst"]
            if w:
                out.append(f"- largest |Δd| = {c['max_abs_diff']:.4f} Å ({w['label_1']}–{w['label_2']} "
                           f"{w['symop']}: CIF {w['cif']}, xtal {w['text']})")
            out.append(f"- s.u. compared for {c['n_su_compared']} bonds; largest difference "
                       f"{c['max_su_diff_last_digits']} in the last digit (xtal: no covariance; SHELXL: full "
                       "covariance matrix)")
            out.append(f"- symmetry codes reproduced by xtal's search: {c['symmetry_codes_found']} of "
                       f"{c['n_compared']}")
            out.append("")
    rows = compare_metals(results, published)
    if rows:
        out += ["## Comparison per metal", "",
                "| metal | phase | sites | M–O min | M–O max | M–O mean | CN | BVS (v.u.) | published M–O | within |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for q in rows:
            cn = f"{q['cn_min']}" if q["cn_min"] == q["cn_max"] else f"{q['cn_min']}–{q['cn_max']}"
            bvs = ("–" if q["bvs_min"] is None else
                   (f"{q['bvs_min']:.2f}" if abs(q["bvs_max"] - q["bvs_min"]) < 0.005
                    else f"{q['bvs_min']:.2f}–{q['bvs_max']:.2f}"))
            pub = f"{q['published_m_o'][0]:.3f}–{q['published_m_o'][1]:.3f}" if q["published_m_o"] else "–"
            within = {None: "–", True: "yes", False: "**no**"}[q["within_published"]]
            name = q["phase"] + (" (MODEL)" if q["model"] else "")
            out.append(f"| {q['metal']} | {name} | {q['n_sites']} | {_f(q['m_o_min'])} | {_f(q['m_o_max'])} | "
                       f"{_f(q['m_o_mean'])} | {cn} | {bvs} | {pub} | {within} |")
        out.append("")
    if figure:
        out += [f"![M–X distance distributions per metal]({figure})", ""]
    out.append("Bond-valence parameters: IUCr bvparm table (I. D. Brown), transcribed subset in "
               "`xtal/data/bvparm.csv`; no distance scaling applied.")
    return "\n".join(out) + "\n"


def render_geometry_html(results: Sequence[GeometryResult], *, figure: str | None = None,
                         published: Mapping[str, Any] | None = None, base_dir: str | Path = ".") -> str:
    """The Markdown report as one standalone HTML page (`xtal.report.markdown_to_html`; the figure,
    resolved against ``base_dir``, is embedded)."""
    from xtal.report import markdown_to_html

    md = render_geometry_markdown(results, figure=figure, published=published)
    return markdown_to_html(md, base_dir=base_dir, title="xtal coordination geometry")


_KIND_STYLE = {"ether-O": ("o", "tab:red"), "water": ("s", "tab:blue"), "hydride-H": ("^", "tab:green"),
               "cage-B": ("v", "tab:olive"), "halide": ("P", "tab:cyan"), "other": ("D", "tab:purple"), "metal": ("x", "tab:gray")}


def plot_distance_distributions(results: Sequence[GeometryResult], path: str | Path, *,
                                published: Mapping[str, Any] | None = None) -> Path:
    """Figure: M–X distances per metal (one panel per metal element, one row per phase, marker per
    donor kind, distances within 0.01 Å merged into one marker labelled ×n, shaded published M–O range). Written atomically to ``path`` (PNG/SVG/PDF by suffix)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from xtal.util import atomic_path

    pub = published_m_o_ranges() if published is None else published
    metals = sorted({s.element for r in results for s in r.sites}, key=lambda m: (_METAL_ORDER.get(m, 99), m))
    if not metals:
        raise GeometryError("no metal sites to plot")
    fig, axes = plt.subplots(len(metals), 1, figsize=(9, 1.2 + 1.6 * len(metals) + 0.35 * len(results)),
                             squeeze=False)
    seen_kinds: dict[str, Any] = {}
    for ax, metal in zip(axes[:, 0], metals):
        rows = [r for r in results if any(s.element == metal for s in r.sites)]
        for k, r in enumerate(rows):
            clusters: list[tuple[str, list[Bond]]] = []
            site_bonds = sorted((b for s in r.sites if s.element == metal for b in s.bonds),
                                key=lambda b: (b.kind, b.distance))
            for b in site_bonds:   # merge same-kind distances within 0.012 Å of the previous one
                if clusters and clusters[-1][0] == b.kind and b.distance - clusters[-1][1][-1].distance < 0.012:
                    clusters[-1][1].append(b)
                else:
                    clusters.append((b.kind, [b]))
            for ci, (kind, bl) in enumerate(clusters):
                mk, col = _KIND_STYLE.get(kind, ("D", "tab:purple"))
                dist = float(np.mean([b.distance for b in bl]))
                sus = [b.su for b in bl if b.su]
                su = max(sus) if sus else None
                h = ax.errorbar(dist, k, xerr=su if su else None, fmt=mk, color=col, ms=8, alpha=0.85,
                                capsize=3, mfc="none" if kind in CONTACT_KINDS else col)
                seen_kinds.setdefault(kind + (" (contact, not in CN)" if kind in CONTACT_KINDS else ""), h)
                if len(bl) > 1:
                    ax.annotate(f"×{len(bl)}", (dist, k), xytext=(0, 9 + 8 * (ci % 2)), textcoords="offset points",
                                ha="center", fontsize=9, color=col)
            rng = pub.get(r.phase_id)
            if isinstance(rng, Mapping):
                rng = rng.get(metal)
            if rng:
                ax.fill_betweenx([k - 0.4, k + 0.4], rng[0], rng[1], color="tab:red", alpha=0.15, lw=0)
                seen_kinds.setdefault("published M–O range", plt.Rectangle((0, 0), 1, 1, color="tab:red",
                                                                          alpha=0.15))
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r.phase_id + (" (MODEL)" if r.model else "") for r in rows], fontsize=11)
        ax.set_ylim(-0.6, len(rows) - 0.25)
        ax.set_xlabel(f"{metal}–X distance (Å)", fontsize=12)
        ax.set_title(f"{metal} coordination", fontsize=12, loc="left")
        ax.tick_params(axis="x", labelsize=11)
        ax.grid(axis="x", alpha=0.3)
    fh = fig.get_figheight()
    n_rows = math.ceil(len(seen_kinds) / 3)
    fig.legend(list(seen_kinds.values()), list(seen_kinds.keys()), loc="upper center", fontsize=10,
               ncol=min(3, len(seen_kinds)), frameon=False, bbox_to_anchor=(0.5, 1.0 - 0.45 / fh))
    top = 1.0 - (0.45 + 0.25 * n_rows) / fh
    title = "Metal–neighbour distances (error bars: 1 s.u.)"
    if any(r.model for r in results):
        title += " — includes MODEL structures"
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, top))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
