"""Thermal-motion (riding-model) correction of M–X distances for bond-valence sums.

The distance between two refined mean positions is shorter than the mean distance between the two
vibrating atoms. In the riding model of Busing & Levy (1964), Acta Cryst. 17, 142–146, the atom with the
larger displacement ("rider") moves with the other one plus an independent motion of its own. Expanding
|r0 + Δu| to second order and averaging:

    ⟨r⟩ ≈ r0 + ⟨Δu⊥²⟩ / (2 r0),   ⟨Δu⊥²⟩ = |U⊥(rider) − U⊥(base)|,   U⊥(A) = tr(U_A) − nᵀ U_A n,

where n is the unit bond vector and U_A the Cartesian ADP tensor of atom A (the image's tensor rotated by
its symmetry operator). U⊥ is the mean-square displacement perpendicular to the bond (both perpendicular
directions, 2 U for an isotropic atom), so for isotropic atoms Δr = |U_X − U_M| / r0.

The correction is the same rule for every bond of every site (no choice per structure) and never replaces
the uncorrected BVS: both are reported. It is zero when the two atoms carry the same ADP (e.g. a CIF with
one placeholder Uiso for every atom, which holds no information on the motion) and undefined when either
atom has no ADP. Nothing here reads or writes a file.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from xtal.geometry.bondvalence import bond_valence_sum, bv_parameter
from xtal.geometry.model import CONTACT_KINDS, Bond
from xtal.geometry.symmetry import _Sym, parse_symop_code
from xtal.structures import Phase, Site

__all__ = ["RIDING_FORMULA", "RIDING_CITATION", "u_cartesian", "riding_correction", "riding_bvs"]

RIDING_FORMULA = ("d_corr = d + |U⊥(X) − U⊥(M)| / (2d), U⊥ = tr(U) − nᵀUn (mean-square displacement "
                  "perpendicular to the bond; isotropic: d + |U_X − U_M| / d)")
RIDING_CITATION = ("riding model: Busing & Levy (1964), Acta Cryst. 17, 142–146 (the atom with the larger "
                   "perpendicular displacement rides on the other)")


def u_cartesian(sym: _Sym, site: Site, op_index: int = 0) -> np.ndarray | None:
    """Cartesian ADP tensor (Å²) of ``site`` (its image under operator ``op_index``), None without ADP.

    CIF U_ij refer to the axes scaled by the reciprocal lengths: U* = N U N, U_cart = M R U* Rᵀ Mᵀ with
    N = diag(a*, b*, c*), M the orthogonalisation matrix and R the operator's rotation.
    """
    if site.u_aniso is not None:
        u11, u22, u33, u12, u13, u23 = (float(v) for v in site.u_aniso)
        u = np.array([[u11, u12, u13], [u12, u22, u23], [u13, u23, u33]])
        n = np.diag(sym.recip_len)
        rot = np.array(sym.rot[op_index], dtype=float)
        return sym.orth @ rot @ (n @ u @ n) @ rot.T @ sym.orth.T
    if site.u_iso is not None and site.u_iso > 0:
        return float(site.u_iso) * np.eye(3)
    return None


def riding_correction(distance: float, vector: np.ndarray, u_m: np.ndarray, u_x: np.ndarray) -> float:
    """Δr (Å) ≥ 0 of the riding model for a bond of length ``distance`` along ``vector``."""
    n = np.asarray(vector, dtype=float) / np.linalg.norm(vector)
    perp = [float(np.trace(u) - n @ u @ n) for u in (u_m, u_x)]
    return abs(perp[1] - perp[0]) / (2.0 * distance)


def riding_bvs(phase: Phase, sym: _Sym, metal: Site, ox: int | None, bonds: list[Bond],
               alternative: str | None) -> dict[str, Any]:
    """BVS of the donors of one disorder alternative with riding-corrected distances, and the per-bond
    corrections. ``bvs`` is None when a donor with a bond-valence parameter has no ADP at either end."""
    labels = {s.label: s for s in phase.sites}
    u_m = u_cartesian(sym, metal)
    out_bonds, corrected, missing = [], [], []
    for b in bonds:
        if b.kind in CONTACT_KINDS or b.bond_valence is None:
            corrected.append(b)
            continue
        op_number, _t = parse_symop_code(b.symop)
        u_x = u_cartesian(sym, labels[b.to], op_number - 1)
        if u_m is None or u_x is None:
            missing.append(b.to if u_x is None else metal.label)
            corrected.append(b)
            continue
        delta = riding_correction(b.distance, np.array(b.vector), u_m, u_x)
        el = "H" if b.element == "D" else b.element
        bpar = bv_parameter(metal.element, ox, el)["b"]
        corrected.append(dataclasses.replace(b, distance=b.distance + delta,
                                             bond_valence=b.bond_valence * math.exp(-delta / bpar)))
        out_bonds.append({"to": b.to, "symop": b.symop, "distance": round(b.distance, 4),
                          "delta": round(delta, 4), "corrected": round(b.distance + delta, 4)})
    bvs = None if missing else bond_valence_sum(corrected, metal.element, ox, alternative)[0]
    note = ("riding-corrected distances" if not missing else
            "undefined: no ADP for " + ", ".join(sorted(set(missing))))
    return {"model": "riding", "bvs": bvs, "bonds": out_bonds, "formula": RIDING_FORMULA,
            "citation": RIDING_CITATION, "note": note}
