"""Coordination by whole cluster anions (B12H12²⁻, B10H10²⁻, BH4⁻), as the closo-borate literature
describes it: the anions around a metal, their hapticity (κ1/κ2/κ3: how many of the metal's counted
H donors each anion provides), the M···centroid distances with s.u., and the polyhedron of centroids.

The centroid is the mean of the anion's boron positions; its s.u. is propagated from the coordinate
s.u. of the asymmetric-unit B sites (symmetry images of one site are fully correlated, so a centroid on
an inversion centre has no coordinate contribution) and from the cell s.u. No covariance terms.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import gemmi
import numpy as np

from xtal.geometry.chemistry import _Chem
from xtal.geometry.model import Bond
from xtal.geometry.polyhedra import _shape_summary
from xtal.geometry.symmetry import _param_groups, _Sym

__all__ = ["CLUSTER_ANIONS", "anion_coordination"]

#: Molecule names (from `chemistry.MOLECULE_NAMES`) treated as cluster anions.
CLUSTER_ANIONS = ("B12H12(2-)", "B10H10(2-)", "BH4(-)")


def _cage(chem: _Chem, sym: _Sym, site: int, y: np.ndarray) -> list[tuple[int, int, tuple[int, int, int], np.ndarray]]:
    """Boron atoms (site, op, translation, frac) of the anion containing the atom (site, y)."""
    b_mask = np.array([s.element == "B" for s in sym.sites])
    nm_mask = chem.nonmetal
    start = [(site, y)]
    seen = {(site, tuple(np.round(y, 4)))}
    borons: dict[tuple, tuple[int, int, tuple[int, int, int], np.ndarray]] = {}
    while start:
        j, yj = start.pop()
        cut = np.where(nm_mask, chem.rcov[j] + chem.rcov + 0.45, 0.0)
        for (k, op, t, yk, d) in sym.search(yj, cut, mask=nm_mask):
            key = (k, tuple(np.round(yk, 4)))
            if d < 0.1 or key in seen:
                continue
            if sym.sites[j].element in ("H", "D") and sym.sites[k].element in ("H", "D"):
                continue
            seen.add(key)
            start.append((k, yk))
            if b_mask[k]:
                borons[key] = (k, op, tuple(int(v) for v in t), yk)
        if len(seen) > 200:
            break
    return list(borons.values())


def _centroid_distance_su(sym: _Sym, i: int, cage: Sequence[tuple], x: np.ndarray
                          ) -> tuple[float, float | None, np.ndarray]:
    """Distance metal i → centroid of ``cage``, its s.u. and the Cartesian vector."""
    yc = np.mean([c[3] for c in cage], axis=0)
    df = yc - x
    r = sym.orth @ df
    dist = float(np.linalg.norm(r))
    g = sym.orth.T @ r / dist
    grads: dict[int, np.ndarray] = {i: -g.copy()}
    for (k, op, _t, _y) in cage:
        grads[k] = grads.get(k, np.zeros(3)) + sym.rot[op].T @ g / len(cage)
    var, any_su = 0.0, False
    for k, gk in grads.items():
        for c in range(3):
            s = sym.sites[k].frac_su[c]
            if s:
                any_su = True
                var += (gk[c] * s) ** 2
    p0 = list(sym.phase.cell.parameters)
    for idx, s in _param_groups(sym.phase):
        any_su = True
        pp, pm = list(p0), list(p0)
        for q in idx:
            pp[q] += 1e-4
            pm[q] -= 1e-4
        dp = np.linalg.norm(np.array(gemmi.UnitCell(*pp).orth.mat.tolist()) @ df)
        dm = np.linalg.norm(np.array(gemmi.UnitCell(*pm).orth.mat.tolist()) @ df)
        var += ((dp - dm) / 2e-4 * s) ** 2
    return dist, (math.sqrt(var) if any_su else None), r


def anion_coordination(sym: _Sym, chem: _Chem, i: int, donors: Sequence[Bond],
                       mol_info: dict[str, dict[str, Any]], positions: dict[str, tuple[int, np.ndarray]]
                       ) -> dict[str, Any] | None:
    """Centroid coordination of metal site ``i`` by the cluster anions among its ``donors``.

    ``positions`` maps a molecule id to one of its atoms (site index, fractional position). None when
    no donor belongs to a cluster anion.
    """
    by_mol: dict[str, list[Bond]] = {}
    for b in donors:
        if b.molecule and mol_info.get(b.molecule, {}).get("name") in CLUSTER_ANIONS:
            by_mol.setdefault(b.molecule, []).append(b)
    if not by_mol:
        return None
    x = np.array(sym.sites[i].frac, dtype=float)
    anions, vecs = [], []
    for mid, bonds in sorted(by_mol.items()):
        site, y = positions[mid]
        cage = _cage(chem, sym, site, y)
        if not cage:
            continue
        d, su, r = _centroid_distance_su(sym, i, cage, x)
        anions.append({"molecule": mid, "name": mol_info[mid]["name"], "hapticity": f"κ{len(bonds)}",
                       "n_donors": len(bonds), "n_boron": len(cage), "distance": round(d, 5),
                       "su": None if su is None else round(su, 5),
                       "donors": [f"{b.to} {b.symop}" for b in bonds]})
        vecs.append(r)
    anions.sort(key=lambda a: a["distance"])
    haptic: dict[str, int] = {}
    for a in anions:
        haptic[a["hapticity"]] = haptic.get(a["hapticity"], 0) + 1
    return {"cn": len(anions), "anions": anions,
            "hapticity": ", ".join(f"{k}×{n}" for k, n in sorted(haptic.items())),
            "polyhedron": _shape_summary(vecs) if len(vecs) >= 3 else
            {"cshm": {}, "best": None, "best_cshm": None, "note": f"{len(vecs)} centroid(s): no polyhedron"},
            "rule": "an anion coordinates when at least one of its atoms is a counted donor; centroid = "
                    "mean of its B positions"}
