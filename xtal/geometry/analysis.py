"""The coordination analysis: for each selected metal site, neighbours within the cutoff across
symmetry and cell boundaries, donor kinds and molecules, CN and bond-valence sums per disorder
alternative, angles and polyhedra; then the comparison across phases (`compare_metals`)."""
from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from xtal.geometry.bondvalence import (ANION_VALENCE, BV_CUTOFF_VALENCE, BV_TABLE_FILE, UNIVERSAL_SOURCE,
                                       bond_valence_sum, bv_parameter, bvs_check,
                                       oxidation_states)
from xtal.geometry.clusters import anion_coordination
from xtal.geometry.hydrogen import normalise_hydrogens
from xtal.geometry.chemistry import NON_METALS, _Chem, _classify, _compatible, _no_group, _rcov, molecule_name
from xtal.geometry.cifcheck import compare_cif_bonds
from xtal.geometry.model import (CONTACT_KINDS, DEFAULT_METALS, METAL_ORDER, Bond, GeometryResult,
                                 NoMetalError, SiteGeometry, _alt_key, _in_alternative)
from xtal.geometry.polyhedra import _angles, _run_chemenv, _shape_summary, polyhedron_verdict
from xtal.geometry.symmetry import _raw_ops, _Sym
from xtal.geometry.thermal import riding_bvs
from xtal.errors import GeometryError
from xtal.structures import Phase, Site
from xtal.structures.validate import check_physical
from xtal.symmetry import SAME_ATOM_TOLERANCE_ANGSTROM

__all__ = ["analyse_geometry", "compare_metals", "published_m_o_ranges", "RADII_TOLERANCE_ANGSTROM",
           "HYDRIDE_TOLERANCE_ANGSTROM", "DISTANCE_FACTOR"]

#: Default M–X cutoff otherwise: r_cov(M) + r_cov(X) + this (Å).
RADII_TOLERANCE_ANGSTROM = 0.6
#: ... and for M···H only when no bond-valence parameter exists at all (every element pymatgen's universal
#: table covers has one, Li–H included): r_cov(M) + r_cov(H) + this (Å).
HYDRIDE_TOLERANCE_ANGSTROM = 0.75
#: Default mode only: donors farther than this × the shortest donor distance are dropped (dense
#: structures where the 0.04-v.u. distance reaches the second shell); ChemEnv uses 1.41 the same way.
DISTANCE_FACTOR = 1.35


#: Largest explicit M–X cutoff (Å): beyond 6 Å nothing is a coordination bond.
MAX_CUTOFF_ANGSTROM = 6.0

def analyse_geometry(phase: Phase, metals: Iterable[str] | str | None = None,
                     cutoff_angstrom: float | None = None, *, chemenv: bool = True,
                     chemenv_timeout_s: float = 30.0, compare_cif: bool = True,
                     no_metal: str = "raise", normalise_h: bool | None = None,
                     thermal_correction: str | None = None) -> GeometryResult:
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
    normalise_h : move H to neutron X–H distances (`xtal.geometry.hydrogen`); None (default): on unless
        the CIF says neutron; the decision is in ``result.hydrogen``.
    thermal_correction : None (default) or ``"riding"``: also give each site the BVS from riding-model
        corrected distances (`xtal.geometry.thermal`, Busing & Levy 1964) in ``site.bvs_thermal``; the
        uncorrected ``site.bvs`` is unchanged.
    """
    if thermal_correction not in (None, "riding"):
        raise GeometryError(f"thermal_correction {thermal_correction!r}: use None or 'riding'",
                            field="thermal_correction")
    if cutoff_angstrom is not None:
        c = float(cutoff_angstrom) if isinstance(cutoff_angstrom, (int, float, np.floating)) else math.nan
        if not (0.5 <= c <= MAX_CUTOFF_ANGSTROM):
            raise GeometryError(f"cutoff {cutoff_angstrom!r} Å must be a number between 0.5 and "
                                f"{MAX_CUTOFF_ANGSTROM:g} Å", field="cutoff_angstrom")
    check_physical(phase)
    warnings: list[str] = []
    ops, op_source = _raw_ops(phase, warnings)
    sym0 = _Sym(phase, ops)
    idxs = _select_metals(phase, metals)
    if not idxs:
        return _no_metal_result(phase, metals, no_metal, warnings, op_source, ops)
    su_available, coord_su = _structure_warnings(phase, warnings)
    work, h_info = normalise_hydrogens(phase, sym0, normalise_h)
    sym = _Sym(work, ops) if work is not phase else sym0
    chem = _Chem(sym)
    ox_map, ox_source = oxidation_states(phase, [phase.sites[i].label for i in idxs])
    cut_modes: set[str] = set()
    sites_out = [_site_geometry(work, sym, chem, i, ox_map.get(phase.sites[i].label), cutoff_angstrom,
                                coord_su, cut_modes) for i in idxs]
    if thermal_correction == "riding":
        for i, s in zip(idxs, sites_out):
            s.bvs_thermal = riding_bvs(work, sym, work.sites[i], s.oxidation_state, s.bonds,
                                       s.major_alternative)
    _attach_chemenv(work, sites_out, chemenv, chemenv_timeout_s, warnings)
    for s in sites_out:
        s.polyhedron["verdict"] = polyhedron_verdict(s.polyhedron, [b.distance for b in s.donors()])
    check = compare_cif_bonds(phase, _sym=sym0) if compare_cif else None
    return GeometryResult(phase.id, phase.name, phase.provenance.file, phase.is_model, phase.provenance.note,
                          phase.spacegroup_hm, _cutoff_description(cutoff_angstrom, cut_modes), sites_out,
                          warnings, su_available, op_source, [o.triplet() for o in ops], check,
                          hydrogen=h_info, oxidation_source=ox_source,
                          bv_source=_bv_source_text())


def _bv_source_text() -> str:
    return (f"IUCr bvparm table, edition 2011-06-01 (I. D. Brown), shipped whole as xtal/{BV_TABLE_FILE}; "
            f"pairs it lacks: {UNIVERSAL_SOURCE}")


def _no_metal_result(phase: Phase, metals: Any, no_metal: str, warnings: list[str], op_source: str,
                     ops: Sequence[Any]) -> GeometryResult:
    """Raise `NoMetalError` (``no_metal="raise"``) or return an empty result with a message."""
    what = "alkali/alkaline-earth metal" if metals is None else f"site matching {metals!r}"
    msg = (f"no {what} in the structure (elements present: "
           f"{', '.join(sorted({s.element for s in phase.sites}))})")
    if no_metal == "raise":
        raise NoMetalError(msg, path=phase.provenance.file, block=phase.block)
    return GeometryResult(phase.id, phase.name, phase.provenance.file, phase.is_model, phase.provenance.note,
                          phase.spacegroup_hm, {"mode": "none"}, [], warnings,
                          False, op_source, [o.triplet() for o in ops], None, message=msg)


def _structure_warnings(phase: Phase, warnings: list[str]) -> tuple[bool, bool]:
    """Phase-level warnings (model, missing s.u., partial occupancy without PART); returns
    (any s.u. available, coordinate s.u. available)."""
    if phase.is_model:
        warnings.insert(0, "MODEL: this structure is a model built for the project, not a refinement; "
                           "its distances are not experimental")
    coord_su = any(any(v is not None for v in s.frac_su) for s in phase.sites)
    cell_su = any(v for v in phase.cell.su)
    if not coord_su:
        warnings.append("the CIF gives no coordinate s.u.; distances are reported without s.u."
                        + (" (cell s.u. only would be misleading)" if cell_su else ""))
    for s in phase.sites:
        if s.occupancy < 0.999 and _no_group(s):
            warnings.append(f"site {s.label} has occupancy {s.occupancy:g} but no disorder group; "
                            "it is treated as present in every alternative")
    return coord_su or cell_su, coord_su


def _select_metals(phase: Phase, metals: Iterable[str] | str | None) -> list[int]:
    """Indices of the sites matching ``metals`` (elements or labels; default: alkali/alkaline-earth)."""
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
    """M–X cutoff (Å) and the rule that gave it: explicit, bond valence (s = 0.04 v.u.) or radii."""
    if explicit is not None:
        return float(explicit), "explicit"
    el = "H" if other.element == "D" else other.element
    if el in ANION_VALENCE:
        par = bv_parameter(metal.element, ox, el)
        if par is not None:
            return par["r0"] - par["b"] * math.log(BV_CUTOFF_VALENCE), "bond valence"
    tol = HYDRIDE_TOLERANCE_ANGSTROM if el == "H" else RADII_TOLERANCE_ANGSTROM
    return _rcov(metal.element) + _rcov(el) + tol, "radii"


def _site_cutoffs(phase: Phase, metal: Site, ox: int | None, explicit: float | None,
                  cut_modes: set[str]) -> np.ndarray:
    """M–X cutoff (Å) per asymmetric-unit site; records which rules were used in ``cut_modes``."""
    cuts = np.zeros(len(phase.sites))
    for j, o in enumerate(phase.sites):
        cuts[j], mode = _pair_cutoff(metal, ox, o, explicit)
        cut_modes.add(mode)
    return cuts


class _Molecules:
    """Molecules met around one metal site, numbered per name (``diglyme#1``, ``diglyme#2``)."""

    def __init__(self, chem: _Chem):
        self.chem = chem
        self.ids: dict[frozenset, str] = {}
        self.info: dict[str, dict[str, Any]] = {}
        self.anchor: dict[str, tuple[int, np.ndarray]] = {}

    def assign(self, site: int, y: np.ndarray, label: str) -> str | None:
        """Molecule id of the atom (site, y) with donor ``label``; None for a lone atom or a metal."""
        if self.chem.sym.sites[site].element not in NON_METALS:
            return None
        keys, counts, complete = self.chem.molecule(site, y)
        if len(keys) <= 1:
            return None
        found = next((mid for k2, mid in self.ids.items() if (site, tuple(np.round(y, 3))) in k2), None)
        if found is None:
            name, formula = molecule_name(counts, complete)
            n_same = sum(1 for v in self.info.values() if v["name"] == name)
            found = f"{name}#{n_same + 1}"
            self.ids[keys] = found
            self.anchor[found] = (site, np.array(y, dtype=float))
            self.info[found] = {"name": name, "formula": formula if complete else None,
                                "complete": complete, "donors": []}
        self.info[found]["donors"].append(label)
        return found


def _neighbour_bonds(phase: Phase, sym: _Sym, chem: _Chem, i: int, ox: int | None, cuts: np.ndarray,
                     coord_su: bool, mols: _Molecules, site_warn: list[str]) -> list[Bond]:
    """Every donor or contact of metal site ``i`` within ``cuts``, sorted by distance."""
    m = phase.sites[i]
    x = np.array(m.frac, dtype=float)
    bonds: list[Bond] = []
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
        molecule = mols.assign(j, y, o.label)
        bonds.append(Bond(to=o.label, element=o.element, symop=sym.code(op, t), distance=dist,
                          su=su if coord_su else None, kind=kind, occupancy=o.occupancy,
                          disorder_assembly=o.disorder_assembly,
                          disorder_group=None if _no_group(o) else str(o.disorder_group),
                          molecule=molecule, bond_valence=_bond_valence(m, ox, o, kind, dist),
                          vector=tuple(float(v) for v in sym.orth @ (y - x))))
        if o.occupancy < 0.999 and _no_group(o):
            site_warn.append(f"neighbour {o.label} ({sym.code(op, t)}) has occupancy {o.occupancy:g} "
                             "without a disorder group")
    return bonds


def _bond_valence(metal: Site, ox: int | None, other: Site, kind: str, distance: float) -> float | None:
    """s = exp((R0 − d)/b) (v.u.) for an anion donor with an IUCr parameter, else None."""
    el = "H" if other.element == "D" else other.element
    if kind == "metal" or el not in ANION_VALENCE or (el == "H" and kind != "hydride-H"):
        return None
    par = bv_parameter(metal.element, ox, el)
    return None if par is None else math.exp((par["r0"] - distance) / par["b"])


def _drop_far_donors(bonds: list[Bond], label: str, mols: _Molecules, site_warn: list[str]) -> list[Bond]:
    """Default cutoff only: drop donors beyond DISTANCE_FACTOR × the shortest M–X of the same X."""
    dmin: dict[str, float] = {}
    for b in bonds:
        if b.kind not in CONTACT_KINDS:
            dmin[b.element] = min(dmin.get(b.element, b.distance), b.distance)
    far = [b for b in bonds if b.kind not in CONTACT_KINDS and b.distance > DISTANCE_FACTOR * dmin[b.element]]
    if not far:
        return bonds
    site_warn.append(f"{label}: {len(far)} neighbour(s) beyond {DISTANCE_FACTOR} × the shortest "
                     "M–X distance of the same element not counted ("
                     + ", ".join(f"{b.to} {b.symop} {b.distance:.3f} Å" for b in far[:6])
                     + (" …" if len(far) > 6 else "") + "); pass an explicit cutoff to include them")
    bonds = [b for b in bonds if b not in far]
    for k in list(mols.info):
        mols.info[k]["donors"] = [b.to for b in bonds if b.molecule == k]
    return bonds


def _bvs_note(bvs: float | None, skipped: set[str], metal: str, ox: int | None, donors: list[Bond]) -> str:
    """What the BVS covers: all donors, those with parameters, or nothing (and why)."""
    if bvs is None:
        note = ("BVS undefined: no bond-valence parameter for "
                + (", ".join(sorted(skipped)) if skipped else "any neighbour") + f" with {metal}({ox})")
    elif skipped:
        note = "BVS over anions with parameters only; skipped (no parameter): " + ", ".join(sorted(skipped))
    else:
        note = "BVS over all donors"
    if bvs is not None and any(b.kind == "hydride-H" and b.bond_valence is not None for b in donors):
        note += ("; hydride: M–H(−1) parameters are Brese & O'Keeffe (1991) extrapolations, applied to "
                 "B–H hydrogens that carry only a fraction of the anion charge: indicative only")
    return note


def _site_geometry(phase: Phase, sym: _Sym, chem: _Chem, i: int, ox: int | None,
                   cutoff_angstrom: float | None, coord_su: bool, cut_modes: set[str]) -> SiteGeometry:
    """Coordination of metal site ``i``: bonds, CN and BVS per disorder alternative, angles, polyhedron."""
    m = phase.sites[i]
    site_warn: list[str] = []
    if m.occupancy < 0.999 and _no_group(m):
        site_warn.append(f"{m.label}: partial occupancy {m.occupancy:g} without a disorder group")
    cuts = _site_cutoffs(phase, m, ox, cutoff_angstrom, cut_modes)
    mols = _Molecules(chem)
    bonds = _neighbour_bonds(phase, sym, chem, i, ox, cuts, coord_su, mols, site_warn)
    if cutoff_angstrom is None:
        bonds = _drop_far_donors(bonds, m.label, mols, site_warn)
    alts = _alternatives(bonds)
    major = max(alts, key=lambda a: a[1])[0] if alts else None
    cn_alt: dict[str, int] = {}
    bvs_alt: dict[str, float | None] = {}
    skipped: set[str] = set()
    used_pars: dict[str, dict[str, Any]] = {}
    for a, _occ in alts:
        cn_alt[a] = sum(1 for b in bonds if b.kind not in CONTACT_KINDS and _in_alternative(b, a))
        bvs_alt[a], skip, used = bond_valence_sum(bonds, m.element, ox, a)
        skipped |= skip
        used_pars.update(used)
    bvs, skip, used = bond_valence_sum(bonds, m.element, ox, major)
    skipped |= skip
    used_pars.update(used)
    donors = [b for b in bonds if b.kind not in CONTACT_KINDS and _in_alternative(b, major)]
    if any(b.kind in ("cage-B", "borane-B") for b in bonds) and not any(b.kind == "hydride-H" for b in bonds):
        site_warn.append(f"{m.label}: M···B contacts but no B–H hydrogens within the cutoff (H not "
                         "modelled?); CN counts no B–H donors")
    vecs = [np.array(b.vector) for b in donors]
    ligands = []
    for k, v in mols.info.items():
        dl = [b.to for b in donors if b.molecule == k]
        if dl:
            ligands.append({"molecule": k, "name": v["name"], "formula": v["formula"],
                            "complete": v["complete"], "donors": dl, "denticity": len(dl)})
    return SiteGeometry(
        label=m.label, element=m.element, frac=tuple(m.frac), occupancy=m.occupancy,
        disorder_assembly=m.disorder_assembly, disorder_group=None if _no_group(m) else m.disorder_group,
        oxidation_state=ox, bonds=bonds, cn=len(donors), cn_alternatives=cn_alt, bvs=bvs,
        bvs_alternatives=bvs_alt, bvs_note=_bvs_note(bvs, skipped, m.element, ox, donors),
        bv_parameters=list(used_pars.values()), angles=_angles(vecs), polyhedron=_shape_summary(vecs),
        ligands=ligands, coordination_mode=_coordination_mode(donors, mols.info), warnings=site_warn,
        major_alternative=major, bvs_check=bvs_check(bonds, m.element, ox, major, bvs),
        anion_coordination=anion_coordination(sym, chem, i, donors, mols.info, mols.anchor))


def _attach_chemenv(phase: Phase, sites: list[SiteGeometry], chemenv: bool, timeout_s: float,
                    warnings: list[str]) -> None:
    """Run pymatgen ChemEnv (or not) and store its environments or its failure per site."""
    if not chemenv:
        for s in sites:
            s.polyhedron["chemenv"] = {"status": "not run"}
        return
    ce = _run_chemenv(phase, [s.label for s in sites], timeout_s)
    for s in sites:
        if ce["status"] == "ok":
            s.polyhedron["chemenv"] = {"status": "ok", "environments": ce["environments"].get(s.label, [])}
        else:
            s.polyhedron["chemenv"] = dict(ce)
    if ce["status"] != "ok":
        warnings.append(f"pymatgen ChemEnv did not work ({ce['status']}: {ce['reason']}); "
                        "the polyhedra rely on xtal's own CShM")


def _cutoff_description(cutoff_angstrom: float | None, cut_modes: set[str]) -> dict[str, Any]:
    """The cutoff rule as reported in `GeometryResult.cutoff`."""
    if cutoff_angstrom is not None:
        return {"mode": "explicit", "angstrom": float(cutoff_angstrom)}
    return {"mode": "default", "rule": f"a donor counts when its bond valence s ≥ {BV_CUTOFF_VALENCE} v.u. "
                                       "(IUCr parameter, else Brese & O'Keeffe universal), i.e. "
                                       "d ≤ R0 − b ln 0.04; without any parameter "
                                       f"r_cov(M) + r_cov(X) + {RADII_TOLERANCE_ANGSTROM} Å "
                                       f"({HYDRIDE_TOLERANCE_ANGSTROM} Å for H); "
                                       f"donors beyond {DISTANCE_FACTOR} × the shortest M–X of the same X dropped",
            "used": sorted(cut_modes)}


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
    rows.sort(key=lambda q: (METAL_ORDER.get(q["metal"], 99), q["metal"], q["phase"]))
    return rows


