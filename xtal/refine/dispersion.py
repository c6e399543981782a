"""Anomalous dispersion f′, f″ of the elements of a refinement, from a maintained table.

Chantler's tables (NIST FFAST; C. T. Chantler, J. Phys. Chem. Ref. Data 24 (1995) 71 and 29
(2000) 597) through ``xraydb`` (`f1_chantler` = f′, `f2_chantler` = f″). Chantler rather than
Henke (periodictable's ``xsf``): computed for Z = 1–92 from 1 eV to 1 MeV with the edges resolved,
so Mo and Ag Kα and synchrotron energies are covered as well as Cu Kα (Henke stops at 30 keV).
Cu Kα1 (1.5406 Å): Pb f′ = −4.31, f″ = 8.41 e.
"""
from __future__ import annotations

from typing import Iterable

#: hc in eV·Å (CODATA 2018)
HC_EV_ANGSTROM = 12398.419843320026


def anomalous_dispersion(elements: Iterable[str], wavelength_angstrom: float) -> dict[str, complex]:
    """{element: f′ + i f″} (electrons) at ``wavelength_angstrom``; D and T as H."""
    import xraydb

    from xtal.formfactors import element_for_scattering

    energy = HC_EV_ANGSTROM / float(wavelength_angstrom)
    out = {}
    for el in sorted(set(elements)):
        sym, _ = element_for_scattering(el)
        out[sym] = complex(float(xraydb.f1_chantler(sym, energy)), float(xraydb.f2_chantler(sym, energy)))
    return out


def describe(dispersion: dict[str, complex], wavelength_angstrom: float) -> str:
    """One line for reports: the f′, f″ used."""
    if not dispersion:
        return "Anomalous dispersion not included (f′ = f″ = 0)."
    parts = ", ".join(f"{el} {d.real:+.3f}{d.imag:+.3f}i" for el, d in sorted(dispersion.items()))
    return f"Anomalous dispersion f′ + i f″ (Chantler, xraydb) at λ = {wavelength_angstrom:.5f} Å: {parts}."
