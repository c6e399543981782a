"""Bond-valence parameters (IUCr bvparm subset in ``xtal/data/bvparm.csv``) and bond-valence sums."""
from __future__ import annotations

import csv
from importlib import resources
from typing import Any, Sequence

from xtal.geometry.model import CONTACT_KINDS, Bond, _in_alternative
from xtal.structures import Site

__all__ = ["load_bv_parameters", "bv_parameter", "bond_valence_sum", "oxidation_state",
           "DEFAULT_OXIDATION", "ANION_VALENCE", "BV_CUTOFF_VALENCE"]

#: Default oxidation states used for bond-valence lookups when the CIF type symbol has no charge.
DEFAULT_OXIDATION = {"Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Be": 2, "Mg": 2, "Ca": 2, "Sr": 2,
                     "Ba": 2, "Al": 3, "Ga": 3, "Fe": 3, "Cu": 2, "Ni": 2, "Zn": 2, "Pb": 2, "Bi": 3,
                     "Cr": 3, "Co": 2, "Mn": 2}
#: Anion valences used with the bond-valence table.
ANION_VALENCE = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "F": -1, "Cl": -1, "Br": -1, "I": -1,
                 "H": -1}
#: Default M–X cutoff where a bond-valence pair exists: the distance at which s = this (v.u.).
BV_CUTOFF_VALENCE = 0.04

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


def oxidation_state(site: Site) -> int | None:
    """Formal charge from the type symbol when positive, else the default for the element."""
    if site.charge is not None and site.charge > 0:
        return int(round(site.charge))
    return DEFAULT_OXIDATION.get(site.element)


def bond_valence_sum(bonds: Sequence[Bond], metal: str, ox: int | None, alternative: str | None
                     ) -> tuple[float | None, set[str], dict[str, dict[str, Any]]]:
    """BVS (v.u.) of the donors of one disorder alternative, the donor kinds skipped for lack of a
    parameter, and the parameters used {anion: row}. None when no donor has a parameter.

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
        w = b.occupancy if (b.occupancy < 0.999 and b.disorder_group is None) else 1.0
        total += w * b.bond_valence
        el = "H" if b.element == "D" else b.element
        par = bv_parameter(metal, ox, el)
        used[el] = {"pair": f"{metal}({ox})–{el}({ANION_VALENCE[el]})", "r0": par["r0"],
                    "b": par["b"], "source": f"{par['reference']} [bvparm ref {par['ref_id']}]",
                    "table_valence": par["valence"]}
    return (total if any_par else None), skipped, used
