"""Normalisation of X-ray hydrogen positions to neutron X–H distances (as PLATON and Mercury offer).

X-ray diffraction sees the electron density of H, displaced towards its bonded atom, so refined X–H
distances are short (K2B12H12, X-ray: B–H 1.068 Å; neutron, terminal B–H of B10D14: 1.180 Å, Tippe &
Hamilton 1969; C–H/N–H/O–H by ~0.1 Å, Allen & Bruno 2010). Normalisation moves each H along its
X–H bond to the mean neutron distance, which lengthens or shortens M···H contacts by up to ~0.1 Å.
It is applied to X-ray structures (and to structures whose probe the CIF does not state, reported as
such); neutron structures are left untouched. Nothing here reads or writes a file.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from xtal.geometry.chemistry import COVALENT_TOLERANCE_ANGSTROM, _compatible, _rcov
from xtal.geometry.symmetry import _Sym
from xtal.structures import Phase

__all__ = ["NEUTRON_XH_ANGSTROM", "NEUTRON_XH_SOURCES", "radiation_probe", "normalise_hydrogens"]

#: Mean X–H distances from neutron diffraction (Å). C–H, N–H, O–H: Allen & Bruno (2010), Acta Cryst.
#: B66, 380 (the values PLATON/Mercury use: C–H 1.083, N–H 1.009, O–H 0.983). B–H 1.20 Å: the value xtal
#: has used from the start; no source read for issue #18 confirms it for BH4⁻ or B12H12²⁻ (see
#: `NEUTRON_XH_SOURCES`). The one neutron B–H found, terminal B–H of decaborane, is 1.180 Å; with it
#: K···H in K2B12H12 is 2.891 Å instead of 2.885 Å (tests/test_geometry_issue18.py).
NEUTRON_XH_ANGSTROM = {"B": 1.20, "C": 1.083, "N": 1.009, "O": 0.983}
#: Where each target comes from, as reported with the normalisation.
NEUTRON_XH_SOURCES = {
    "B": ("1.20 Å, not confirmed by a source read; nearest neutron value found: mean terminal B–H 1.180 Å "
          "(s.u. 0.004–0.007 Å) in B10D14 at −160 °C, Tippe & Hamilton, Inorg. Chem. (1969) p. 464, "
          "doi:10.1021/ic50073a012"),
    "C": "Allen & Bruno (2010), Acta Cryst. B66, 380", "N": "Allen & Bruno (2010), Acta Cryst. B66, 380",
    "O": "Allen & Bruno (2010), Acta Cryst. B66, 380"}


def radiation_probe(phase: Phase) -> tuple[str, str]:
    """("x-ray" | "neutron" | "electron" | "unknown", why) from the CIF's radiation items."""
    text = (phase.radiation or "").lower()
    if not text:
        return "unknown", "the CIF states no _diffrn_radiation_probe/_type"
    if "neutron" in text:
        return "neutron", f"_diffrn_radiation: {phase.radiation!r}"
    if "electron" in text:
        return "electron", f"_diffrn_radiation: {phase.radiation!r}"
    return "x-ray", f"_diffrn_radiation: {phase.radiation!r}"


def normalise_hydrogens(phase: Phase, sym: _Sym, mode: bool | None = None,
                        distances: Mapping[str, float] | None = None) -> tuple[Phase, dict[str, Any]]:
    """A copy of ``phase`` with H moved to neutron X–H distances, and a report of what was done.

    ``mode``: True forces, False disables, None (default) normalises unless the probe is neutron
    (unknown probe: treated as X-ray, the common case, and said so). ``distances`` replaces entries of
    `NEUTRON_XH_ANGSTROM` (e.g. ``{"B": 1.180}`` to test the sensitivity to the B–H target).
    """
    probe, why = radiation_probe(phase)
    has_h = any(s.element == "H" for s in phase.sites)
    table = {**NEUTRON_XH_ANGSTROM, **(distances or {})}
    info: dict[str, Any] = {"probe": probe, "probe_reason": why, "distances": table,
                            "normalised": False, "moved": []}
    if mode is None and phase.is_model:
        do = False
        info["decision"] = "model: H positions are built geometry, not X-ray density; used as given"
    elif mode is None:
        do = probe != "neutron"
        info["decision"] = ("neutron data: H positions used as refined" if not do else
                            "X-ray data: H moved to neutron X–H distances" if probe == "x-ray" else
                            f"{probe} probe: treated as X-ray, H moved to neutron X–H distances")
    else:
        do = bool(mode)
        info["decision"] = "normalisation " + ("forced on" if do else "switched off") + " by the caller"
    if not do or not has_h:
        if do and not has_h:
            info["decision"] += " (no H sites)"
        return phase, info
    sites = list(phase.sites)
    rcov = np.array([_rcov(s.element) if s.element in table else 0.0 for s in phase.sites])
    mask = rcov > 0
    for i, h in enumerate(phase.sites):
        if h.element != "H":
            continue
        x = np.array(h.frac, dtype=float)
        cut = np.where(mask, rcov + _rcov("H") + COVALENT_TOLERANCE_ANGSTROM, 0.0)
        found = [(d, j, y) for (j, _op, _t, y, d) in sym.search(x, cut, mask=mask)
                 if d > 0.3 and _compatible(h, phase.sites[j])]
        if not found:
            continue
        d, j, y = min(found, key=lambda t: t[0])
        target = table[phase.sites[j].element]
        new = y + (x - y) * (target / d)
        sites[i] = dataclasses.replace(h, frac=tuple(float(v) for v in new))
        info["moved"].append({"label": h.label, "parent": phase.sites[j].label, "before": round(d, 4),
                              "after": target})
    info["normalised"] = bool(info["moved"])
    parents = {phase.sites[j].element for j in range(len(phase.sites))
               if any(m["parent"] == phase.sites[j].label for m in info["moved"])}
    info["sources"] = {el: NEUTRON_XH_SOURCES.get(el, "caller") if el not in (distances or {}) else "caller"
                       for el in sorted(parents)}
    new_phase = dataclasses.replace(phase, sites=sites, _images=None, _atoms=None)
    return new_phase, info
