"""The incident beam: tube lines, wavelength text, polarisation, Bragg-law conversions, LP factor.

The one place that knows what a wavelength given as text means (`parse_radiation`), which range of
wavelengths is an X-ray powder experiment (`WAVELENGTH_LIMITS_ANGSTROM`), when a given wavelength
agrees with the one a file states (`WAVELENGTH_RTOL`, `resolve_radiation`) and what a polarisation
given as text means (`parse_polarization`).  Readers, simulation, identification and series all call
these, so they make the same decision on the same input.

Units: wavelengths in Å (``*_angstrom``), angles in degrees (``*_deg``), Q in Å⁻¹.
No function here reads, writes or prints; there is no default wavelength.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtal.errors import (MissingWavelengthError, PolarizationError, WavelengthError,
                         WavelengthMismatchError)
from xtal.util import finite_float

__all__ = [
    "TUBES", "WAVELENGTH_LIMITS_ANGSTROM", "WAVELENGTH_RTOL", "HC_KEV_ANGSTROM",
    "SYNCHROTRON_POLARIZATION_FRACTION", "Polarization", "parse_polarization", "Radiation",
    "parse_radiation", "check_wavelength", "resolve_radiation", "two_theta_from_d",
    "d_from_two_theta", "q_from_two_theta", "two_theta_from_q", "convert_two_theta",
    "lorentz_polarization",
]

#: Kα1, Kα2 (Å) and I(Kα2)/I(Kα1).  Cr, Fe, Co, Cu: Hölzer et al., Phys. Rev. A 56 (1997)
#: 4554; Mo, Ag: International Tables for Crystallography Vol. C, Table 4.2.2.1
#: (Deslattes & Henins).  The 2:1 intensity ratio is the conventional value.
#: (Mo Kα weighted mean (2·Kα1 + Kα2)/3 = 0.71073 Å; Cu Kα mean = 1.54184 Å.)
TUBES: dict[str, tuple[float, float, float]] = {
    "Cr": (2.289726, 2.293651, 0.5),
    "Fe": (1.936041, 1.939973, 0.5),
    "Co": (1.788996, 1.792835, 0.5),
    "Cu": (1.540593, 1.544427, 0.5),
    "Mo": (0.709317, 0.713607, 0.5),
    "Ag": (0.559422, 0.563813, 0.5),
}

#: X-ray powder range (Å).  Above 5 Å (below ~2.5 keV) air absorbs the beam within centimetres and
#: λ/2 exceeds the d-spacings of most crystals, so no powder pattern is measured; below 0.05 Å
#: (above ~250 keV) no diffractometer or synchrotron powder beamline operates.  Outside this range a
#: value is almost always a unit mistake (nm or m given as Å).
WAVELENGTH_LIMITS_ANGSTROM = (0.05, 5.0)

#: Relative tolerance between a given wavelength and the one a file states.  Kα1 and the weighted
#: mean Kα of the same tube differ by 8e-4 (Cu) to 2.0e-3 (Mo) and must count as the same beam; the
#: nearest different tube lines differ by ≥ 8 % (Co vs Fe, Fe vs Cr) and a mistyped value usually by
#: more.  2.5e-3 accepts the first and refuses the second.
WAVELENGTH_RTOL = 2.5e-3

HC_KEV_ANGSTROM = 12.398419843320026   # h·c in keV·Å (CODATA 2018)
SYNCHROTRON_POLARIZATION_FRACTION = 0.99   # fraction of the beam polarised ⟂ to the scattering plane


def _finite(name: str, value: Any, error: type = WavelengthError) -> float:
    return finite_float(name, value, error)


def check_wavelength(value: Any, name: str = "wavelength_angstrom") -> float:
    """λ (Å) as a float, or `WavelengthError` if not a number inside `WAVELENGTH_LIMITS_ANGSTROM`."""
    if isinstance(value, bool):
        raise WavelengthError(f"{name} must be a number, got {value!r}", field=name)
    lam = _finite(name, value)
    lo, hi = WAVELENGTH_LIMITS_ANGSTROM
    if not lo <= lam <= hi:
        raise WavelengthError(f"wavelength {lam} Å is outside the X-ray powder range {lo}–{hi} Å "
                              "(give Å, not nm or m)", field=name)
    return lam


# =============================================================================
# Polarisation
# =============================================================================
@dataclass(frozen=True)
class Polarization:
    """Beam polarisation for the LP factor.

    kind:
      ``"unpolarized"`` lab tube without monochromator: P = (1 + cos²2θ)/2.
      ``"monochromator"`` lab beam with a crystal monochromator at Bragg angle 2θ_M in the same plane
      (incident- or diffracted-beam): P = (1 + cos²2θ_M·cos²2θ)/(1 + cos²2θ_M).
      ``"synchrotron"`` linearly polarised beam, a fraction ``fraction`` ⟂ to the scattering plane
      (vertical diffractometer, horizontal polarisation): P = f + (1 − f)·cos²2θ; default f = 0.99.
    All are normalised to P(2θ = 0) = 1.
    """

    kind: str = "unpolarized"
    fraction: float | None = None
    monochromator_two_theta_deg: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("unpolarized", "monochromator", "synchrotron"):
            raise PolarizationError(f"unknown polarisation kind {self.kind!r} (unpolarized, "
                                    "monochromator, synchrotron)", field="polarization")
        if self.kind == "monochromator":
            if self.monochromator_two_theta_deg is None:
                raise PolarizationError("a monochromated beam needs monochromator_two_theta_deg",
                                        field="polarization")
            m = _finite("monochromator_two_theta_deg", self.monochromator_two_theta_deg,
                        PolarizationError)
            if not 0.0 <= m < 180.0:
                raise PolarizationError(f"monochromator 2θ {m}° must be in [0, 180)",
                                        field="polarization")
        if self.kind == "synchrotron":
            f = SYNCHROTRON_POLARIZATION_FRACTION if self.fraction is None else \
                _finite("polarization fraction", self.fraction, PolarizationError)
            if not 0.0 <= f <= 1.0:
                raise PolarizationError(f"polarisation fraction {f} must be in [0, 1]",
                                        field="polarization")
            object.__setattr__(self, "fraction", f)

    @classmethod
    def unpolarized(cls) -> "Polarization":
        return cls("unpolarized")

    @classmethod
    def monochromator(cls, two_theta_deg: float) -> "Polarization":
        """E.g. graphite (002) for Mo Kα: 2θ_M = 12.16°; for Cu Kα: 26.57°."""
        return cls("monochromator", monochromator_two_theta_deg=two_theta_deg)

    @classmethod
    def synchrotron(cls, fraction: float = SYNCHROTRON_POLARIZATION_FRACTION) -> "Polarization":
        return cls("synchrotron", fraction=fraction)

    def coefficients(self) -> tuple[float, float, float]:
        """(a, b, den) with P(2θ) = (a + b·cos²2θ) / den, for every kind."""
        if self.kind == "unpolarized":
            return 1.0, 1.0, 2.0
        if self.kind == "monochromator":
            cm = math.cos(math.radians(self.monochromator_two_theta_deg)) ** 2
            return 1.0, cm, 1.0 + cm
        return self.fraction, 1.0 - self.fraction, 1.0

    def factor(self, two_theta_deg) -> np.ndarray:
        """P(2θ) (dimensionless) at 2θ in degrees."""
        c2 = np.cos(np.radians(np.asarray(two_theta_deg, dtype=float))) ** 2
        a, b, den = self.coefficients()
        return (a + b * c2) / den

    def describe(self) -> str:
        if self.kind == "unpolarized":
            return "unpolarised lab beam, P = (1+cos²2θ)/2"
        if self.kind == "monochromator":
            return (f"monochromated lab beam (2θ_M = {self.monochromator_two_theta_deg}°), "
                    "P = (1+cos²2θ_M cos²2θ)/(1+cos²2θ_M)")
        return f"synchrotron, polarisation fraction {self.fraction}, P = f+(1−f)cos²2θ"


_POL_HELP = ("use unpolarized (or lab), synchrotron[:FRACTION] (default 0.99), "
             "monochromator:2THETA_M (degrees) or a fraction in [0, 1]")


def parse_polarization(value: Any) -> Polarization:
    """A `Polarization` from None (unpolarised lab beam), a `Polarization`, or text.

    Text (CLI and API alike): ``"unpolarized"``/``"unpolarised"``/``"lab"``, ``"synchrotron"`` or
    ``"synchrotron:0.95"`` (fraction ⟂ to the scattering plane), ``"monochromator:26.57"`` (2θ_M in
    degrees), or a bare fraction ``"0.95"`` (synchrotron).  Anything else → `PolarizationError`.
    """
    if value is None:
        return Polarization()
    if isinstance(value, Polarization):
        return value
    if not isinstance(value, str):
        raise PolarizationError(f"polarization must be a Polarization or text, got {value!r}; "
                                + _POL_HELP, field="polarization")
    kind, sep, arg = value.strip().lower().partition(":")
    kind, arg = kind.strip(), arg.strip()
    try:
        if kind in ("unpolarized", "unpolarised", "lab") and not sep:
            return Polarization.unpolarized()
        if kind in ("synchrotron", "sync"):
            return Polarization.synchrotron(float(arg)) if arg else Polarization.synchrotron()
        if kind in ("monochromator", "mono") and arg:
            return Polarization.monochromator(float(arg))
        if not sep:
            return Polarization.synchrotron(float(kind))
    except ValueError:
        pass
    raise PolarizationError(f"cannot read polarization {value!r}: " + _POL_HELP,
                            field="polarization")


def lorentz_polarization(two_theta_deg, polarization: Polarization | str | None = None) -> np.ndarray:
    """LP = P(2θ) / (sin²θ·cos θ) for a powder (Lorentz factor incl. the Debye–Scherrer ring factor).

    2θ in degrees; ``polarization`` as `parse_polarization` accepts.  With the unpolarised
    P = (1+cos²2θ)/2 this is half of pymatgen's LP (same shape).
    """
    pol = parse_polarization(polarization)
    tt = np.asarray(two_theta_deg, dtype=float)
    th = np.radians(tt / 2.0)
    with np.errstate(divide="ignore"):
        return pol.factor(tt) / (np.sin(th) ** 2 * np.cos(th))


# =============================================================================
# Radiation
# =============================================================================
@dataclass(frozen=True)
class Radiation:
    """The lines of the beam: ``wavelengths`` (Å, primary first) and ``weights`` (primary 1.0, then
    I(Kα2)/I(Kα1)), a ``label`` (tube name, "file", …) and the beam's ``polarization``."""

    wavelengths: tuple[float, ...]
    weights: tuple[float, ...] = (1.0,)
    label: str = ""
    polarization: Polarization = Polarization()

    def __post_init__(self) -> None:
        if not self.wavelengths or len(self.wavelengths) > 2 or \
                len(self.weights) != len(self.wavelengths):
            raise WavelengthError("a radiation has one line or a Kα1/Kα2 doublet, with one weight "
                                  f"per line; got {self.wavelengths!r} / {self.weights!r}")
        lams = tuple(check_wavelength(v) for v in self.wavelengths)
        w = tuple(_finite("ka2_ratio", v) for v in self.weights)
        if w[0] != 1.0:
            raise WavelengthError(f"the primary line's weight must be 1.0, got {w[0]}")
        if len(w) == 2 and not 0.0 <= w[1] <= 1.0:
            raise WavelengthError(f"Kα2/Kα1 ratio {w[1]} must be in [0, 1]", field="ka2_ratio")
        object.__setattr__(self, "wavelengths", lams)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "polarization", parse_polarization(self.polarization))

    @property
    def primary(self) -> float:
        """λ1 (Å)."""
        return self.wavelengths[0]

    @property
    def is_doublet(self) -> bool:
        return len(self.wavelengths) > 1

    @property
    def mean_wavelength_angstrom(self) -> float:
        """Intensity-weighted mean λ (Å), e.g. (2·Kα1 + Kα2)/3 for a 2:1 doublet."""
        return sum(l * w for l, w in zip(self.wavelengths, self.weights)) / sum(self.weights)

    def as_tuple(self) -> tuple[float, float | None, float | None]:
        """(λ1 Å, λ2 Å or None, I(Kα2)/I(Kα1) or None), the form a `Pattern` stores."""
        if self.is_doublet:
            return self.wavelengths[0], self.wavelengths[1], self.weights[1]
        return self.wavelengths[0], None, None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"wavelength_angstrom": self.primary, "label": self.label}
        if self.is_doublet:
            d["wavelength2_angstrom"] = self.wavelengths[1]
            d["ka2_ratio"] = self.weights[1]
        d["polarization"] = self.polarization.describe()
        return d


_TUBE_RE = re.compile(r"([A-Za-z]{2})[\s_-]*(?:K[\s_-]*(?:a|alpha|α)?[\s_-]*(1|12)?)?", re.I)


def _from_lines(l1: Any, l2: Any, ratio: Any, label: str, pol: Polarization) -> Radiation:
    if l2 in (None, 0, 0.0):
        return Radiation((check_wavelength(l1),), (1.0,), label, pol)
    if ratio is None:
        raise WavelengthError(f"a Kα doublet needs I(Kα2)/I(Kα1): got ({l1!r}, {l2!r}, None)",
                              field="ka2_ratio")
    return Radiation((l1, l2), (1.0, ratio), label, pol)


def _tube(text: str, pol: Polarization) -> Radiation | None:
    m = _TUBE_RE.fullmatch(text)
    if not m or m.group(1).capitalize() not in TUBES:
        return None
    el = m.group(1).capitalize()
    l1, l2, r = TUBES[el]
    if m.group(2) == "1":
        return Radiation((l1,), (1.0,), f"{el}Ka1", pol)
    return Radiation((l1, l2), (1.0, r), f"{el}Ka", pol)


def parse_radiation(spec: Any, polarization: Any = None) -> Radiation:
    """The one parser of a wavelength given by a user → `Radiation`.

    spec: a number (Å) or numeric text; a tube name (``"CuKa"``/``"Cu"`` Kα1/Kα2 doublet,
    ``"CuKa1"`` Kα1 only; Cr, Fe, Co, Cu, Mo, Ag; values in `TUBES`); a (λ1 Å, λ2 Å, I2/I1)
    tuple (λ2 None or 0: one line); or a `Radiation` (passed through, re-polarised if
    ``polarization`` is given).  polarization: as `parse_polarization`.
    Bad input → `WavelengthError` (a `PatternError` and a `SimulationError`).
    """
    if isinstance(spec, Radiation):
        if polarization is None:
            return spec
        return Radiation(spec.wavelengths, spec.weights, spec.label, parse_polarization(polarization))
    pol = parse_polarization(polarization)
    if isinstance(spec, (tuple, list)):
        if not 1 <= len(spec) <= 3:
            raise WavelengthError(f"wavelength tuple must be (λ1, λ2, ratio), got {spec!r}")
        l1, l2, ratio = (list(spec) + [None, None])[:3]
        return _from_lines(l1, l2, ratio, "", pol)
    if isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        return Radiation((check_wavelength(spec),), (1.0,), "", pol)
    if isinstance(spec, str):
        s = spec.strip()
        try:
            value = float(s)
        except ValueError:
            rad = _tube(s, pol)
            if rad is not None:
                return rad
            raise WavelengthError(f"unknown wavelength {spec!r}: give Å as a number or one of "
                                  + ", ".join(f"{t}Ka, {t}Ka1" for t in TUBES)) from None
        return Radiation((check_wavelength(value),), (1.0,), "", pol)
    raise WavelengthError(f"cannot interpret wavelength {spec!r}: give Å as a number, a tube name "
                          "such as 'CuKa' or (λ1, λ2, ratio)")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def resolve_radiation(file_wavelengths: tuple | None, given: Radiation | None, *,
                      force: bool = False, source: Any = None, hint: str = ""
                      ) -> tuple[Radiation, str]:
    """Decide which beam a measured pattern was taken with → (Radiation, wavelength_source).

    file_wavelengths: (λ1 Å, λ2 Å or None, I2/I1 or None) stated by the file, or None.
    given: the user's `Radiation` (from `parse_radiation`), or None.
    Neither → `MissingWavelengthError` (``hint`` appended).  Both, and they differ by more than
    `WAVELENGTH_RTOL` (relative; the given primary or weighted mean against the file's λ1) →
    `WavelengthMismatchError` unless ``force`` (then the given beam, source "user (forced over the
    file's)").  Both and consistent → the file's more precise λ1, the given Kα2 line added if the
    file states none (the given doublet whole if the file stated its weighted mean), source "file
    (user value agrees)".  Only the file → "file"; only the given → "user".
    ``source``: the file, named in errors.
    """
    file_rad = None
    if file_wavelengths is not None and file_wavelengths[0] is not None:
        l1, l2, ratio = (tuple(file_wavelengths) + (None, None))[:3]
        pol = given.polarization if given is not None else Polarization()
        file_rad = _from_lines(l1, l2 if ratio is not None else None, ratio, "file", pol)
    if given is None:
        if file_rad is None:
            raise MissingWavelengthError("no wavelength stated in the file and none given; pass "
                                         "wavelength_angstrom= (Å or a tube name such as 'CuKa')"
                                         + hint, path=source)
        return file_rad, "file"
    if file_rad is None:
        return given, "user"
    f1 = file_rad.primary
    rel = min(_rel(given.primary, f1), _rel(given.mean_wavelength_angstrom, f1))
    if rel > WAVELENGTH_RTOL:
        if not force:
            raise WavelengthMismatchError(
                f"given wavelength {given.primary} Å ({given.label or 'number'}) differs from the "
                f"file's {f1} Å (relative {rel:.2g} > {WAVELENGTH_RTOL:g}); pass force=True to use "
                "the given value", path=source)
        return given, "user (forced over the file's)"
    if file_rad.is_doublet or not given.is_doublet:
        return file_rad, "file (user value agrees)"
    if _rel(given.mean_wavelength_angstrom, f1) < _rel(given.primary, f1):
        return given, "user tube (the file states its weighted mean)"
    return (Radiation((f1, given.wavelengths[1]), given.weights, given.label, given.polarization),
            "file (user value agrees)")


# =============================================================================
# Bragg's law: 2θ, d, Q
# =============================================================================
def two_theta_from_d(d_angstrom, wavelength_angstrom: float) -> np.ndarray:
    """2θ (°) of d-spacings (Å) at λ (Å); NaN where d < λ/2 (no diffraction)."""
    d = np.asarray(d_angstrom, dtype=float)
    s = wavelength_angstrom / (2.0 * d)
    with np.errstate(invalid="ignore"):
        return np.where(s <= 1.0, 2.0 * np.degrees(np.arcsin(np.minimum(s, 1.0))), np.nan)


def d_from_two_theta(two_theta_deg, wavelength_angstrom: float) -> np.ndarray:
    """d (Å) from 2θ (°) at λ (Å)."""
    t = np.radians(np.asarray(two_theta_deg, dtype=float) / 2.0)
    with np.errstate(divide="ignore"):
        return wavelength_angstrom / (2.0 * np.sin(t))


def q_from_two_theta(two_theta_deg, wavelength_angstrom: float) -> np.ndarray:
    """Q = 4π sin θ / λ (Å⁻¹) from 2θ (°) at λ (Å)."""
    t = np.radians(np.asarray(two_theta_deg, dtype=float) / 2.0)
    return 4.0 * math.pi * np.sin(t) / wavelength_angstrom


def two_theta_from_q(q_inv_angstrom, wavelength_angstrom: float) -> np.ndarray:
    """2θ (°) from Q (Å⁻¹) at λ (Å); NaN where Q > 4π/λ."""
    return two_theta_from_d(2.0 * math.pi / np.asarray(q_inv_angstrom, dtype=float), wavelength_angstrom)


def convert_two_theta(two_theta_deg, from_wavelength_angstrom: float, to_wavelength_angstrom: float
                      ) -> np.ndarray:
    """2θ (°) of the same d-spacings at another wavelength (Å) (NaN where unreachable)."""
    return two_theta_from_d(d_from_two_theta(two_theta_deg, from_wavelength_angstrom), to_wavelength_angstrom)
