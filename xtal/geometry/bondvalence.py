"""Bond-valence parameters and sums.

Parameters come from two complete, cited sources, never from a hand-picked subset:

1. the IUCr *Accumulated table of bond valence parameters* (I. D. Brown, ``bvparm.cif``, edition
   2011-06-01), shipped whole and unchanged as ``xtal/data/bvparm2011.cif`` with its copyright notice
   (see ``xtal/data/README.md``). Within each (cation, oxidation state, anion) the table lists rows "in
   decreasing order of reliability"; the first row is used, except rows fitted with long cut-offs that
   count second neighbours (refs c, ax, ay: Adams' softBV sets), which belong to a different summation
   convention.
2. for pairs the table lacks (e.g. Li–H), the universal parameters of Brese & O'Keeffe (1991),
   Acta Cryst. B47, 192: R0 = r_i + r_j − r_i r_j (√c_i − √c_j)² / (c_i r_i + c_j r_j), b = 0.37 Å,
   with r and c read from the file pymatgen ships (``pymatgen/core/bvparam_1991.yaml``).

Every parameter carries its source, reported per bond pair and site.

Oxidation states come from the CIF type symbols (``Na1+``) when they carry charges, else from
pymatgen's ``BVAnalyzer`` on the whole structure, else the element's most common oxidation state; the
choice is reported.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from xtal.geometry.model import CONTACT_KINDS, Bond, _in_alternative
from xtal.structures import Phase, Site

__all__ = ["load_bv_parameters", "bv_parameter", "bond_valence_sum", "bvs_check", "oxidation_states",
           "ANION_VALENCE", "BVS_TOLERANCE_VU", "BV_CUTOFF_VALENCE", "BV_TABLE_FILE", "SKIPPED_REFS",
           "UNIVERSAL_SOURCE"]

#: Anion valences used with the bond-valence table.
ANION_VALENCE = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "P": -3, "As": -3, "F": -1, "Cl": -1,
                 "Br": -1, "I": -1, "H": -1}
#: Coordination rule: a donor counts when its bond valence is at least this (v.u.).
BV_CUTOFF_VALENCE = 0.04
#: |BVS − formal valence| (v.u.) within which an ordinary ionic site is taken as consistent with its
#: oxidation state; beyond it the site is reported as off and the bond that carries the excess is named.
BVS_TOLERANCE_VU = 0.15
#: The IUCr table shipped with xtal (package-relative path).
BV_TABLE_FILE = "data/bvparm2011.cif"
#: Reference ids not used (second-neighbour softBV fits with 6–8 Å cut-offs).
SKIPPED_REFS = frozenset({"c", "ax", "ay"})
UNIVERSAL_SOURCE = ("Brese & O'Keeffe (1991) Acta Cryst. B47, 192: universal r, c parameters "
                    "(pymatgen core/bvparam_1991.yaml), b = 0.37 Å")

_ROW = re.compile(r"^([A-Z][a-zA-Z]?)\s+(-?\d+)\s+([A-Z][a-zA-Z]?)\s+(-?\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$")


def _number(text: str) -> float | None:
    """A table number; the 2011 file has '1,856' (comma) and '1.762*' in two rows."""
    try:
        return float(text.replace(",", ".").rstrip("*"))
    except ValueError:
        return None


@lru_cache(maxsize=1)
def _table() -> tuple[dict[tuple[str, int, str], dict[str, Any]], dict[str, str], int]:
    """({(cation, valence, anion): first usable row}, {ref id: reference}, rows read)."""
    text = resources.files("xtal").joinpath(BV_TABLE_FILE).read_text(encoding="utf-8")
    refs: dict[str, str] = {}
    for m in re.finditer(r"^\s*([a-z]{1,2})\s+'(.*)'\s*$", text, flags=re.M):
        refs.setdefault(m.group(1), m.group(2))
    body = text.split("_valence_param_details", 1)[1]
    table: dict[tuple[str, int, str], dict[str, Any]] = {}
    n = 0
    for line in body.splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        n += 1
        cat, cv, an, av, r0, b, ref, details = m.groups()
        r0v, bv = _number(r0), _number(b)
        if r0v is None or bv is None or ref in SKIPPED_REFS:
            continue
        key = (cat, int(cv), an)
        if key not in table:
            table[key] = {"r0": r0v, "b": bv, "ref_id": ref, "anion_valence": int(av),
                          "details": "" if details.strip() in ("?", "") else details.strip().strip("'")}
    return table, refs, n


def load_bv_parameters() -> dict[tuple[str, int, str], dict[str, Any]]:
    """The IUCr table as used: {(cation, valence, anion): row}; valence 9 = unspecified in the source.

    Row keys: ``r0``, ``b`` (Å), ``ref_id``, ``reference``, ``details``, ``anion_valence``.
    """
    table, refs, _ = _table()
    return {k: {**v, "reference": refs.get(v["ref_id"], v["ref_id"])} for k, v in table.items()}


@lru_cache(maxsize=1)
def _universal() -> dict[str, dict[str, float]]:
    from pymatgen.core.bond_valence import BV_PARAMS
    return {str(el): {"r": float(v["r"]), "c": float(v["c"])} for el, v in BV_PARAMS.items()}


def _universal_r0(cation: str, anion: str) -> float | None:
    p = _universal()
    if cation not in p or anion not in p:
        return None
    ri, ci, rj, cj = p[cation]["r"], p[cation]["c"], p[anion]["r"], p[anion]["c"]
    return ri + rj - ri * rj * (math.sqrt(ci) - math.sqrt(cj)) ** 2 / (ci * ri + cj * rj)


@lru_cache(maxsize=4096)
def bv_parameter(cation: str, valence: int | None, anion: str) -> dict[str, Any] | None:
    """R0, b and source for a cation of given oxidation state and an anion, or None (no source).

    Order: the IUCr row of that oxidation state; the IUCr "unspecified oxidation state" (9) row; the
    Brese & O'Keeffe universal parameters. ``source`` names the reference; ``table`` is "IUCr bvparm2011"
    or "universal".
    """
    table = load_bv_parameters()
    for v in ([int(valence)] if valence is not None else []) + [9]:
        row = table.get((cation, v, anion))
        if row is not None:
            return {**row, "valence": v, "table": "IUCr bvparm2011",
                    "source": f"IUCr bvparm2011 ref {row['ref_id']}: {row['reference']}"}
    r0 = _universal_r0(cation, anion)
    if r0 is None:
        return None
    return {"r0": round(r0, 4), "b": 0.37, "ref_id": "universal", "reference": UNIVERSAL_SOURCE,
            "details": "pair absent from the IUCr table", "valence": valence, "table": "universal",
            "source": UNIVERSAL_SOURCE, "anion_valence": ANION_VALENCE.get(anion)}


def oxidation_states(phase: Phase, labels: Sequence[str]) -> tuple[dict[str, int | None], str]:
    """Oxidation state per site label and how they were chosen.

    CIF type-symbol charges when every requested site has one; else pymatgen ``BVAnalyzer`` on the
    ordered structure; else the most common oxidation state of each element (pymatgen ``Element``).
    """
    sites = {s.label: s for s in phase.sites}
    wanted = [sites[lab] for lab in labels if lab in sites]
    if wanted and all(s.charge is not None and s.charge > 0 for s in wanted):
        return {s.label: int(round(s.charge)) for s in wanted}, "CIF type symbols"
    inferred = _bvanalyzer(phase)
    if inferred and all(s.label in inferred for s in wanted):
        return {s.label: inferred[s.label] for s in wanted}, "inferred by pymatgen BVAnalyzer"
    return ({s.label: _common_oxidation(s) for s in wanted},
            "most common oxidation state of the element (pymatgen); BVAnalyzer could not assign")


def _common_oxidation(site: Site) -> int | None:
    if site.charge is not None and site.charge > 0:
        return int(round(site.charge))
    from pymatgen.core import Element
    try:
        common = Element(site.element).common_oxidation_states
    except ValueError:
        return None
    pos = [c for c in common if c > 0]
    return pos[0] if pos else None


def _bvanalyzer(phase: Phase) -> dict[str, int] | None:
    """{label: valence} from pymatgen's BVAnalyzer, or None when it fails or the structure is too big."""
    if any(s.element in ("H", "D") for s in phase.sites) or len(phase.cell_atoms()) > 400:
        return None   # hydrides: BVAnalyzer has no B–H or M–H(−1) statistics; large cells are slow
    try:
        import warnings as _w

        from pymatgen.analysis.bond_valence import BVAnalyzer
        s = phase.to_pymatgen()
        if not s.is_ordered:
            return None
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            vals = BVAnalyzer().get_valences(s)
    except Exception:  # noqa: BLE001 - any failure means "could not infer"
        return None
    out: dict[str, int] = {}
    for site, v in zip(s, vals):
        lab = site.properties.get("label")
        if lab is not None:
            out.setdefault(lab, int(v))
    return out


def bond_valence_sum(bonds: Sequence[Bond], metal: str, ox: int | None, alternative: str | None
                     ) -> tuple[float | None, set[str], dict[str, dict[str, Any]]]:
    """BVS (v.u.) of the donors of one disorder alternative, the donor kinds skipped for lack of a
    parameter, and the parameters used {anion: row with its source}. None when no donor has one.

    Partially occupied donors without a disorder group count with their occupancy.
    """
    total, any_par = 0.0, False
    skipped: set[str] = set()
    used: dict[str, dict[str, Any]] = {}
    for b in bonds:
        if b.kind in CONTACT_KINDS or not _in_alternative(b, alternative):
            continue
        if b.bond_valence is None:
            skipped.add(f"{b.element} ({b.kind})")
            continue
        any_par = True
        total += _occupancy_weight(b) * b.bond_valence
        el = "H" if b.element == "D" else b.element
        par = bv_parameter(metal, ox, el)
        used[el] = {"pair": f"{metal}({ox})–{el}({ANION_VALENCE.get(el, '?')})", "r0": par["r0"],
                    "b": par["b"], "source": par["source"], "table": par["table"],
                    "table_valence": par["valence"]}
    return (total if any_par else None), skipped, used


@lru_cache(maxsize=256)
def _more_electronegative(anion: str, cation: str) -> bool:
    """Pauling electronegativity (pymatgen's element data) of ``anion`` above that of ``cation``."""
    from pymatgen.core.periodic_table import Element
    xa, xc = Element("H" if anion == "D" else anion).X, Element(cation).X
    return bool(xa > xc)


def _occupancy_weight(b: Bond) -> float:
    return b.occupancy if (b.occupancy < 0.999 and b.disorder_group is None) else 1.0


def bvs_check(bonds: Sequence[Bond], metal: str, ox: int | None, alternative: str | None,
              bvs: float | None) -> dict[str, Any] | None:
    """Precision and consistency of one site's BVS.

    Parameters: the site's bonds, the metal, its oxidation state, the disorder alternative the BVS
    was summed over and that BVS (v.u.).

    Returns None without a BVS, else a dict with ``su`` (v.u., propagated from the bond-length s.u.:
    σ(s) = s·σ(d)/b, bonds taken as independent; None when a counted bond has no s.u.),
    ``deviation`` (BVS − oxidation state), ``tolerance`` (``BVS_TOLERANCE_VU``), ``indicative`` (True
    when hydride H are counted: their parameters are extrapolations, so no verdict), ``non_ionic`` (the
    neighbour elements not more electronegative than the site, e.g. S–S, S–C: the bond-valence model
    joins cations to anions, so no verdict), ``within`` and, when the site is off, ``outlier``: the
    neighbour whose bonds carry the excess. For each neighbour label
    the bonds to it are given the median length of the site's other bonds to the same element; the
    neighbour whose change brings the sum back within the tolerance and accounts for more than half
    of the deviation is named, with its length, that median and the BVS it would give. None when no
    single neighbour explains the deviation (a strained site or a wrong oxidation state).
    """
    if bvs is None:
        return None
    counted = [b for b in bonds if b.kind not in CONTACT_KINDS and _in_alternative(b, alternative)
               and b.bond_valence is not None]
    pars = {b.element: bv_parameter(metal, ox, "H" if b.element == "D" else b.element) for b in counted}
    var, su = 0.0, True
    for b in counted:
        if b.su is None:
            su = False
            break
        var += (_occupancy_weight(b) * b.bond_valence * b.su / pars[b.element]["b"]) ** 2
    out: dict[str, Any] = {"su": math.sqrt(var) if su and counted else None,
                           "deviation": None if ox is None else bvs - ox,
                           "tolerance": BVS_TOLERANCE_VU, "within": None, "outlier": None}
    out["indicative"] = any(b.kind == "hydride-H" for b in counted)
    out["non_ionic"] = sorted({b.element for b in counted if not _more_electronegative(b.element, metal)})
    if ox is None or out["indicative"] or out["non_ionic"]:
        return out
    dev = bvs - ox
    out["within"] = abs(dev) <= BVS_TOLERANCE_VU
    if out["within"]:
        return out
    best = None
    for label in dict.fromkeys(b.to for b in counted):
        group = [b for b in counted if b.to == label]
        el = group[0].element
        others = [b.distance for b in counted if b.element == el and b.to != label]
        if len(others) < 2:
            continue
        median = float(np.median(others))
        p = pars[el]
        s_median = math.exp((p["r0"] - median) / p["b"])
        delta = sum(_occupancy_weight(b) * (b.bond_valence - s_median) for b in group)
        if abs(dev - delta) <= BVS_TOLERANCE_VU and abs(delta) > 0.5 * abs(dev) and \
                (best is None or abs(delta) > abs(best["delta_vu"])):
            b0 = group[0]
            best = {"neighbour": label, "element": el, "bonds": len(group), "distance": b0.distance,
                    "su": b0.su, "median_others": median, "delta_vu": delta, "bvs_at_median": bvs - delta}
    out["outlier"] = best
    return out
