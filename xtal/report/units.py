"""Temperature in the reader's unit: K or °C by choice, K automatically for cryo data.

Every series table, figure axis and interactive page converts through ``temperature_unit`` and
``to_unit`` so that one series is never reported half in °C and half in K.
"""
from __future__ import annotations

import numpy as np

__all__ = ["temperature_unit", "to_unit", "unit_label", "independent_lattice_parameters"]

ZERO_C_IN_K = 273.15


def temperature_unit(temperature_c, unit: str | None = None) -> str:
    """"K" or "°C". ``unit`` is "K", "C"/"°C" or None/"auto": K when any temperature is below
    0 °C (273.15 K: a cryo series), °C otherwise."""
    if unit is not None and str(unit).lower() not in ("auto", ""):
        u = str(unit).strip().lstrip("°").upper()
        if u not in ("K", "C"):
            raise ValueError(f"temperature unit {unit!r}: give K, C or auto")
        return "K" if u == "K" else "°C"
    t = np.asarray(temperature_c, float)
    t = t[np.isfinite(t)]
    return "K" if t.size and float(t.min()) < 0.0 else "°C"


def to_unit(temperature_c, unit: str):
    """Temperatures given in °C expressed in ``unit`` ("K" or "°C"); a scalar stays a scalar."""
    if temperature_c is None:
        return None
    t = np.asarray(temperature_c, float)
    out = t + ZERO_C_IN_K if unit == "K" else t
    return float(out) if out.ndim == 0 else out


def unit_label(unit: str) -> str:
    """Axis label of a temperature in ``unit``: "T (K)" or "T (°C)"."""
    return f"T ({unit})"


def independent_lattice_parameters(spacegroup_number) -> tuple[str, ...]:
    """Lattice parameters free by symmetry: a cubic phase has one (a), not a, b and c thrice."""
    try:
        n = int(spacegroup_number)
    except (TypeError, ValueError):
        return ("a", "b", "c", "alpha", "beta", "gamma")
    if n >= 195:
        return ("a",)
    if n >= 75:       # tetragonal, trigonal (hexagonal axes), hexagonal
        return ("a", "c")
    if n >= 16:
        return ("a", "b", "c")
    if n >= 3:
        return ("a", "b", "c", "beta")
    return ("a", "b", "c", "alpha", "beta", "gamma")
