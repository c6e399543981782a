"""The beam a pattern is modelled with (temporary home until ``xtal.beam`` lands)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtal.errors import IdentificationError, MissingWavelengthError, WavelengthMismatchError
from xtal.patterns import resolve_wavelength
from xtal.simulate import as_polarization, lorentz_polarization

@dataclass(frozen=True)
class Radiation:
    """Wavelengths (Å) and relative weights of the lines in the beam; the first line is the primary."""

    wavelengths: tuple[float, ...]
    weights: tuple[float, ...]
    label: str = ""
    polarization: Any = None   # xtal.simulate.Polarization; None = unpolarised lab beam

    @property
    def primary(self) -> float:
        return self.wavelengths[0]

    @property
    def is_doublet(self) -> bool:
        return len(self.wavelengths) > 1

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"wavelength_angstrom": self.primary, "label": self.label}
        if self.is_doublet:
            d["wavelength2_angstrom"] = self.wavelengths[1]
            d["ka2_ratio"] = self.weights[1]
        d["polarization"] = as_polarization(self.polarization).describe()
        return d


def _resolve_name(spec: str | float) -> Radiation:
    """A tube name or a number through ``xtal.patterns.resolve_wavelength``."""
    r = resolve_wavelength(spec)
    return _radiation_from_resolved(r, spec)


def _radiation_from_resolved(r: Any, spec: Any) -> Radiation:
    label = spec if isinstance(spec, str) else ""
    if isinstance(r, (int, float)):
        return Radiation((float(r),), (1.0,), label)
    if isinstance(r, (tuple, list)):
        vals = [v for v in r if v is not None]
        if len(vals) >= 3 and vals[2]:
            return Radiation((float(vals[0]), float(vals[1])), (1.0, float(vals[2])), label)
        return Radiation((float(vals[0]),), (1.0,), label)
    lam1 = getattr(r, "wavelength_angstrom", None) or getattr(r, "lambda1", None)
    lam2 = getattr(r, "wavelength2_angstrom", None) or getattr(r, "lambda2", None)
    ratio = getattr(r, "ka2_ratio", None) or getattr(r, "ratio", None)
    if lam1 is None:
        raise IdentificationError(f"cannot interpret wavelength {spec!r}")
    if lam2 and ratio:
        return Radiation((float(lam1), float(lam2)), (1.0, float(ratio)), label)
    return Radiation((float(lam1),), (1.0,), label)


def radiation_from(pattern: Any, wavelength: Any = None, polarization: Any = None) -> Radiation:
    """As `_radiation_from`, with the beam's polarisation (``xtal.simulate.Polarization``, or
    "unpolarized" / "synchrotron"; None keeps an unpolarised lab beam) for the LP factor."""
    rad = _radiation_from(pattern, wavelength)
    if polarization is not None:
        rad = dataclasses.replace(rad, polarization=as_polarization(polarization))
    return rad


def _radiation_from(pattern: Any, wavelength: Any = None) -> Radiation:
    """The radiation to model ``pattern`` with.

    ``wavelength``: None (use the pattern's λ, and its Kα2 line when the file gives one), a number
    in Å (one line, e.g. synchrotron), a tube name (``"CuKa"``, ``"MoKa"``, … → Kα1/Kα2 doublet),
    a ``(λ1, λ2, ratio)`` tuple or a :class:`Radiation`. A given λ that contradicts the one stored in
    the file (> 0.2 %) raises ``WavelengthMismatchError``; no λ at all raises
    ``MissingWavelengthError``.
    """
    file_l1 = getattr(pattern, "wavelength_angstrom", None)
    file_l2 = getattr(pattern, "wavelength2_angstrom", None)
    file_ratio = getattr(pattern, "ka2_ratio", None)
    if wavelength is None:
        if not file_l1:
            raise MissingWavelengthError(
                "the pattern has no wavelength; give one (a number in Å or a tube name such as "
                "'CuKa')", path=getattr(pattern, "source", None))
        if file_l2 and file_ratio:
            return Radiation((float(file_l1), float(file_l2)), (1.0, float(file_ratio)), "file")
        return Radiation((float(file_l1),), (1.0,), "file")
    if isinstance(wavelength, Radiation):
        rad = wavelength
    elif isinstance(wavelength, (tuple, list)):
        rad = _radiation_from_resolved(resolve_wavelength(tuple(wavelength)), "")
    elif isinstance(wavelength, str):
        try:
            rad = Radiation((float(wavelength),), (1.0,), "")
        except ValueError:
            rad = _resolve_name(wavelength)
    else:
        rad = Radiation((float(wavelength),), (1.0,), "")
    if not (0.05 < rad.primary < 5.0):
        raise IdentificationError(f"wavelength {rad.primary} Å is not a diffraction wavelength")
    if file_l1 and abs(file_l1 - rad.primary) > 2e-3 * rad.primary:
        # a tube name whose weighted mean matches the file is consistent too
        mean = (sum(l * w for l, w in zip(rad.wavelengths, rad.weights)) / sum(rad.weights))
        if abs(file_l1 - mean) > 2e-3 * mean:
            raise WavelengthMismatchError(
                f"given wavelength {rad.primary:.5f} Å contradicts the {file_l1:.5f} Å stored in the "
                "file", path=getattr(pattern, "source", None))
    return rad


def lp_factor(two_theta_deg: np.ndarray, rad: Radiation) -> np.ndarray:
    """Lorentz–polarisation factor of ``xtal.simulate`` for the beam's polarisation."""
    return np.asarray(lorentz_polarization(two_theta_deg, rad.polarization), dtype=float)
