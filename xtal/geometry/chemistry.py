"""Molecules and donor classification: covalent graph of the non-metals (disorder-aware), Hill
formulas and names of the molecules, donor kinds (ether-O, water, hydride-H, cage-B, ...)."""
from __future__ import annotations

from typing import Mapping

import gemmi
import numpy as np

from xtal.geometry.symmetry import _Sym
from xtal.structures import Site

__all__ = ["NON_METALS", "COVALENT_TOLERANCE_ANGSTROM", "MOLECULE_NAMES", "molecule_name"]

#: Elements that form the covalent (molecular) graph. Metals never do.
NON_METALS = frozenset({"H", "D", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I", "Te",
                        "As", "Ge"})
#: Covalent bond: d < r_cov(A) + r_cov(B) + this (Å; Cordero radii from gemmi).
COVALENT_TOLERANCE_ANGSTROM = 0.45
#: Names of common solvent molecules by Hill formula of the connected component.
MOLECULE_NAMES = {"C6H14O3": "diglyme", "C4H10O2": "monoglyme (DME)", "H2O": "water", "C2H6OS": "DMSO",
                  "C5H11NO": "DEF", "C4H8O": "THF", "C8H18O4": "triglyme", "C10H22O5": "tetraglyme",
                  "C2H3N": "acetonitrile", "B10H10": "B10H10(2-)", "CH4O": "methanol", "C2H6O": "ethanol", "C3H7NO": "DMF",
                  "B12H12": "B12H12(2-)", "BH4": "BH4(-)", "O4S": "sulfate",
                  "O4P": "phosphate", "CO3": "carbonate", "NO3": "nitrate"}

_HEAVY_NAMES = {"C6O3": "diglyme", "C4O2": "monoglyme (DME)", "C2OS": "DMSO", "C5NO": "DEF",
                "C4O": "THF", "C3NO": "DMF", "B12": "B12H12(2-)", "B10": "B10H10(2-)", "C8O4": "triglyme"}


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
    """Donor kind of the atom (site, y) and whether it is a donor at all (C–H hydrogens are not).

    Kinds: hydride-H, halide, ether-O, water, hydroxyl-O, carbonyl-O, sulfoxide-O, phosphate-O,
    sulfate-O, oxoanion-O (other X–O), oxide-O, amide-N, amine-N, nitrile-N, cage-B, borane-B, metal, other.
    """
    s = chem.sym.sites[site]
    el = s.element
    if el not in NON_METALS:
        return "metal", True
    nbs = chem.covalent_neighbours(site, y)
    nb = [chem.sym.sites[k].element for k, _ in nbs]
    if el in ("H", "D"):
        if any(e == "B" for e in nb) or not nb:
            return "hydride-H", True
        return "H (C/N/O-bound)", False
    if el in ("F", "Cl", "Br", "I") and not nb:
        return "halide", True
    if el not in ("O", "N", "H", "D") and nb.count("O") >= 2:
        return "oxoanion centre", False      # S of SO4, P of PO4, C of CO3: bonded to its O, not a donor
    if el == "O":
        return _classify_o(chem, nbs, nb), True
    if el == "N":
        return _classify_n(chem, nbs, nb), True
    if el == "B":
        if nb.count("B") >= 4:
            return "cage-B", True
        return ("borane-B" if any(e in ("H", "D") for e in nb) else "other"), True
    return "other", True


def _second(chem: _Chem, k: int, yk: np.ndarray) -> list[str]:
    return [chem.sym.sites[j].element for j, _ in chem.covalent_neighbours(k, yk)]


def _classify_o(chem: _Chem, nbs: list, nb: list[str]) -> str:
    n_c, n_h = nb.count("C"), sum(1 for e in nb if e in ("H", "D"))
    if not nb:
        return "oxide-O"
    if n_c == 2 and len(nb) == 2:
        return "ether-O"
    if n_h >= 1 and n_h == len(nb):
        return "water"
    if n_c == 1 and n_h == 1 and len(nb) == 2:
        return "hydroxyl-O"
    if len(nb) == 1:
        k, yk = nbs[0]
        centre, second = nb[0], _second(chem, k, yk)
        n_o = second.count("O")
        if centre == "C":
            return "carbonyl-O" if "N" in second or n_o <= 1 or "C" in second else "oxoanion-O"
        if centre == "S" and n_o <= 1 and second.count("C") >= 2:
            return "sulfoxide-O"
        if centre == "P" and n_o >= 3:
            return "phosphate-O"
        if centre == "S" and n_o >= 3:
            return "sulfate-O"
        if n_o >= 2:
            return "oxoanion-O"
    if "P" in nb:
        return "phosphate-O"
    if "S" in nb:
        return "sulfate-O"
    return "other"


def _classify_n(chem: _Chem, nbs: list, nb: list[str]) -> str:
    heavy = [(k, yk) for (k, yk), e in zip(nbs, nb) if e not in ("H", "D")]
    if len(heavy) == 1 and nb.count("C") == 1 and len(nb) == 1:
        return "nitrile-N"
    for k, yk in heavy:
        if chem.sym.sites[k].element == "C" and "O" in _second(chem, k, yk):
            return "amide-N"
    if nb and all(e in ("C", "H", "D") for e in nb):
        return "amine-N"
    return "other"


def molecule_name(counts: Mapping[str, float], complete: bool) -> tuple[str, str]:
    """(name, Hill formula) of a connected component from its element counts."""
    formula = _hill(counts)
    heavy = _hill({e: n for e, n in counts.items() if e not in ("H", "D")})
    if not complete:
        return "extended network", formula
    if formula in MOLECULE_NAMES:
        return MOLECULE_NAMES[formula], formula
    if "H" not in counts and heavy in _HEAVY_NAMES:
        return f"{_HEAVY_NAMES[heavy]} (H not modelled)", formula
    return formula, formula
