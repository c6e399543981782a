"""X-ray atomic form factors f0(s), s = sin θ / λ (Å⁻¹), for `xtal.simulate`.

Two tables:

* ``"it92"`` — International Tables for Crystallography Vol. C (1992), Table 6.1.1.4: the
  4-Gaussian + constant fit f0(s) = Σᵢ aᵢ exp(−bᵢ s²) + c to Hartree–Fock values, taken from gemmi
  (`gemmi.Element(el).it92`). These are the form factors SHELXL, GSAS-II, FullProf and gemmi use,
  so a pattern simulated from a refined CIF uses the scattering model the CIF was refined with.
  H is the bonded-H (Stewart–Davidson–Simpson) curve of International Tables. Default.
* ``"pymatgen"`` — the table of `pymatgen.analysis.diffraction.xrd.ATOMIC_SCATTERING_PARAMS`, used as
  f0(s) = Z − 41.78214 s² Σᵢ aᵢ exp(−bᵢ s²) (electron-scattering Gaussians converted by the
  Mott–Bethe formula), exactly as `XRDCalculator` does.

Neutral atoms in both (formal charges are ignored, as pymatgen and gemmi's default do).
Deuterium scatters X-rays like hydrogen (same electron count): ``"D"`` uses the H curve; the
fallback is reported by `element_for_scattering`.
"""
from __future__ import annotations

from functools import lru_cache

import gemmi
import numpy as np

from xtal.errors import SimulationError

__all__ = ["FORM_FACTOR_SOURCES", "DEFAULT_FORM_FACTORS", "FormFactorError", "form_factor",
           "form_factor_coefficients", "element_for_scattering", "DEUTERIUM_NOTE"]

FORM_FACTOR_SOURCES = ("it92", "pymatgen")
DEFAULT_FORM_FACTORS = "it92"
DEUTERIUM_NOTE = "D (deuterium) scattered as H: same X-ray form factor (one electron)"

_MOTT_BETHE = 41.78214


class FormFactorError(SimulationError):
    """The form-factor table has no entry for an element, or the table name is unknown."""


def element_for_scattering(symbol: str) -> tuple[str, str | None]:
    """(element used for the form factor, note or None). D → H with `DEUTERIUM_NOTE`."""
    if symbol in ("D", "T"):
        return "H", DEUTERIUM_NOTE if symbol == "D" else "T (tritium) scattered as H"
    return symbol, None


def _check_source(source: str) -> str:
    if source not in FORM_FACTOR_SOURCES:
        raise FormFactorError(f"unknown form-factor table {source!r}; choose one of {FORM_FACTOR_SOURCES}",
                              field="form_factors")
    return source


@lru_cache(maxsize=None)
def form_factor_coefficients(element: str, source: str = DEFAULT_FORM_FACTORS) -> tuple:
    """Coefficients of f0 for one element.

    Returns ``("it92", a(4), b(4), c)`` or ``("pymatgen", Z, a(n), b(n))``.
    Raises FormFactorError when the table lacks the element.
    """
    _check_source(source)
    el, _ = element_for_scattering(element)
    if source == "it92":
        g = gemmi.Element(el)
        if g.atomic_number == 0 or g.name != el or g.it92 is None:
            raise FormFactorError(f"no International Tables (IT92) form factor for element {element!r}",
                                  field="form_factors")
        c = g.it92
        return ("it92", np.array(c.a, float), np.array(c.b, float), float(c.c))
    from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS
    from pymatgen.core.periodic_table import Element

    if el not in ATOMIC_SCATTERING_PARAMS:
        raise FormFactorError(f"pymatgen's scattering table has no entry for element {element!r}",
                              field="form_factors")
    coeff = np.asarray(ATOMIC_SCATTERING_PARAMS[el], float)
    return ("pymatgen", float(Element(el).Z), coeff[:, 0].copy(), coeff[:, 1].copy())


def form_factor(element: str, s2: np.ndarray, source: str = DEFAULT_FORM_FACTORS) -> np.ndarray:
    """f0 (electrons) of a neutral atom at s² = (sin θ/λ)² (Å⁻²), vectorised over s²."""
    s2 = np.asarray(s2, dtype=float)
    coeff = form_factor_coefficients(element, source)
    if coeff[0] == "it92":
        _, a, b, c = coeff
        return np.exp(-np.multiply.outer(s2, b)) @ a + c
    _, z, a, b = coeff
    return z - _MOTT_BETHE * s2 * (np.exp(-np.multiply.outer(s2, b)) @ a)
