"""Measured powder patterns and thermal series: the `Pattern` model, readers, writers.

Units are in the names: ``two_theta_deg`` (degrees 2θ), ``q_inv_angstrom`` (Å⁻¹,
Q = 4π sinθ/λ), ``d_angstrom`` (Å), ``wavelength_angstrom`` (Å), ``temperature_c``
(°C), ``time_s`` (s).

Readers (chosen by content first, extension second, or ``fmt=``):

* ``columns`` – 2/3-column text (.xy .xye .dat .txt .csv .asc, pyFAI 1D output) with
  ``#``, ``!``, ``;``, ``'`` or ``/* ... */`` comment headers; header keys such as
  ``wavelength = 0.71073 A``, ``lambda: 0.0710 nm``, ``Wavelength: 1e-10 m``, ``T = 25 C``,
  ``Temperature: 298.15 K``, ``Temp (K) = 6.778`` are parsed (see `parse_header_lines`).
* ``gsas`` – GSAS powder files (.fxye .gsa .gsas .gss .xra): CONST/CONS banks of type
  STD, ESD, FXY, FXYE (x in centidegrees); wavelength from an 11-BM style header or an
  instrument parameter file (``instrument=``; `read_gsas_instprm_wavelength`).
* ``xrdml`` – PANalytical XML (namespace agnostic): Kα1/Kα2/ratio, 2θ start/end or
  listPositions, counts or intensities.
* ``chi`` – Fit2D .chi (title, x label, y label, point count, data).
* ``nexus`` – NeXus/HDF5 ``NXdata`` (``@signal``, ``@axes``), 1D or stacked 2D.

Thermal series (`read_series`, `iter_series_frames`, `write_series`): an
``xarray.DataArray`` (frame × x) in acquisition order (natural sort of file names, list
order or the stacked file's order; never sorted by temperature) with per-frame
``temperature_c``, ``time_s``, ``segment`` (heating / isothermal / cooling, see
`label_segments`: a hold is ≥ 3 frames within ``DEFAULT_HOLD_TOLERANCE_C`` = 0.5 °C) and
``source``; λ in ``attrs["wavelength_angstrom"]``.

Wavelength policy: no default wavelength anywhere.  A pattern without λ raises
`MissingWavelengthError` when an operation needs it; a user λ that differs from the
file's by more than `WAVELENGTH_RTOL` (relative) raises `WavelengthMismatchError`
unless ``force=True``.

Value checks on reading (file named in every message): NaN/inf → `InvalidDataError`;
non-monotonic x → `InvalidDataError`; strictly *decreasing* x is reversed (a repair
recorded in ``meta["repairs"]``); σ < 0 → `InvalidDataError`; a negative intensity that
is more than `NEGATIVE_SIGMA_LIMIT` σ below zero → `InvalidDataError` (negatives
consistent with zero, e.g. background-subtracted data, are kept and counted in
``meta["n_negative"]``).
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import glob as _glob
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from xtal.errors import (
    EmptyPatternError,
    InvalidDataError,
    MissingWavelengthError,
    PatternError,
    PatternFormatError,
    SeriesError,
    WavelengthMismatchError,
    XtalError,
)
from xtal.util import atomic_path, check_writable

__all__ = [
    "AXES", "TUBES", "WAVELENGTH_RTOL", "Pattern", "WavelengthSpec", "resolve_wavelength",
    "read_pattern", "write_pattern", "read_gsas_instprm_wavelength", "parse_header_lines",
    "HeaderInfo", "read_series", "iter_series_frames", "write_series", "label_segments",
    "atomic_write", "series_frame", "natural_sort_key", "list_frames", "PATTERN_EXTENSIONS",
    "temperature_from_name", "temperature_to_c", "DEFAULT_HOLD_TOLERANCE_C", "HC_KEV_ANGSTROM",
]

AXES = ("two_theta_deg", "q_inv_angstrom", "d_angstrom")
WAVELENGTH_RTOL = 1e-4
NEGATIVE_SIGMA_LIMIT = 5.0
KELVIN_OFFSET = 273.15

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

PATTERN_EXTENSIONS = (".xy", ".xye", ".dat", ".txt", ".csv", ".asc", ".chi", ".fxye",
                      ".gsa", ".gsas", ".gss", ".xra", ".xrdml", ".h5", ".hdf5", ".hdf",
                      ".nxs", ".nx5")
_GSAS_EXT = {".fxye", ".gsa", ".gsas", ".gss", ".xra", ".fxy", ".esd", ".std"}
_HDF5_EXT = {".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".nc", ".nc4", ".cdf"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


# =============================================================================
# Wavelength
# =============================================================================
@dataclass(frozen=True)
class WavelengthSpec:
    """λ1 (Å), optional λ2 (Å) and I(λ2)/I(λ1)."""

    wavelength_angstrom: float
    wavelength2_angstrom: float | None = None
    ka2_ratio: float | None = None

    def __iter__(self):
        return iter((self.wavelength_angstrom, self.wavelength2_angstrom, self.ka2_ratio))


def resolve_wavelength(spec: Any) -> tuple[float, float | None, float | None]:
    """Return (λ1 Å, λ2 Å or None, I(Kα2)/I(Kα1) or None) for a float (Å) or a tube name.

    Tube names: ``CuKa`` (doublet), ``CuKa1`` (Kα1 only), likewise Mo, Co, Fe, Cr, Ag;
    ``"Cu"`` alone means the doublet.  A (λ1, λ2, ratio) tuple or `WavelengthSpec`
    is passed through after checks.  Values in `TUBES`.
    """
    if isinstance(spec, WavelengthSpec):
        spec = tuple(spec)
    if isinstance(spec, (tuple, list)):
        if not 1 <= len(spec) <= 3:
            raise PatternError(f"wavelength tuple must be (λ1, λ2, ratio), got {spec!r}")
        vals = list(spec) + [None] * (3 - len(spec))
        l1 = _positive_wavelength(vals[0])
        l2 = _positive_wavelength(vals[1]) if vals[1] not in (None, 0, 0.0) else None
        ratio = float(vals[2]) if (vals[2] is not None and l2 is not None) else None
        return l1, l2, ratio
    if isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        return _positive_wavelength(spec), None, None
    if isinstance(spec, str):
        s = spec.strip()
        try:
            return _positive_wavelength(float(s)), None, None
        except ValueError:
            pass
        m = re.fullmatch(r"([A-Za-z]{2})[\s_-]*(?:K[\s_-]*(?:a|alpha|α)?[\s_-]*(1|12)?)?", s, re.I)
        if m:
            el = m.group(1).capitalize()
            if el in TUBES:
                l1, l2, r = TUBES[el]
                if m.group(2) == "1":
                    return l1, None, None
                return l1, l2, r
        raise PatternError(f"unknown wavelength {spec!r}: give Å as a number or one of "
                           + ", ".join(f"{t}Ka, {t}Ka1" for t in TUBES))
    raise PatternError(f"cannot interpret wavelength {spec!r}")


def _positive_wavelength(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise PatternError(f"wavelength {v!r} is not a number") from None
    if not (math.isfinite(f) and 0.01 < f < 100.0):
        raise PatternError(f"wavelength {f!r} Å is outside 0.01–100 Å")
    return f


# =============================================================================
# Pattern
# =============================================================================
@dataclass
class Pattern:
    """A 1D powder pattern on a stated axis.

    x: on ``axis`` ("two_theta_deg" | "q_inv_angstrom" | "d_angstrom"), strictly increasing.
    intensity, sigma: same length as x (sigma optional, same units as intensity).
    wavelength_angstrom: primary (Kα1) λ in Å or None; wavelength2_angstrom and
    ka2_ratio (I(Kα2)/I(Kα1)) for a doublet.  temperature_c (°C), time_s (s),
    source (file read), frame (index in a series), meta (free, JSON-able).
    """

    x: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray | None = None
    axis: str = "two_theta_deg"
    wavelength_angstrom: float | None = None
    wavelength2_angstrom: float | None = None
    ka2_ratio: float | None = None
    temperature_c: float | None = None
    time_s: float | None = None
    source: str | None = None
    frame: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=float)
        self.intensity = np.asarray(self.intensity, dtype=float)
        if self.sigma is not None:
            self.sigma = np.asarray(self.sigma, dtype=float)
        if self.axis not in AXES:
            raise PatternError(f"unknown axis {self.axis!r}; use one of {AXES}", path=self.source)
        if self.x.ndim != 1 or self.intensity.shape != self.x.shape or (
                self.sigma is not None and self.sigma.shape != self.x.shape):
            raise InvalidDataError("x, intensity and sigma must be 1D arrays of equal length",
                                   path=self.source)
        if self.x.size == 0:
            raise EmptyPatternError("pattern has no data points", path=self.source)
        for name, arr in (("x", self.x), ("intensity", self.intensity), ("sigma", self.sigma)):
            if arr is not None and not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise InvalidDataError(f"{name} holds NaN/inf (first at point {bad})",
                                       path=self.source)
        if self.x.size > 1 and not np.all(np.diff(self.x) > 0):
            bad = int(np.flatnonzero(np.diff(self.x) <= 0)[0])
            raise InvalidDataError(
                f"x is not strictly increasing (point {bad + 1}: {self.x[bad + 1]!r} after "
                f"{self.x[bad]!r})", path=self.source)
        if self.wavelength_angstrom is not None:
            self.wavelength_angstrom = _positive_wavelength(self.wavelength_angstrom)
        if self.wavelength2_angstrom is not None:
            self.wavelength2_angstrom = _positive_wavelength(self.wavelength2_angstrom)
        if self.ka2_ratio is not None:
            self.ka2_ratio = float(self.ka2_ratio)

    # -- basic ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def x_range(self) -> tuple[float, float]:
        """(first, last) x on the pattern's axis."""
        return float(self.x[0]), float(self.x[-1])

    def require_wavelength(self) -> float:
        """λ1 in Å, or `MissingWavelengthError`."""
        if self.wavelength_angstrom is None:
            raise MissingWavelengthError(
                "the pattern has no wavelength; pass wavelength_angstrom= (Å or a tube name "
                "such as 'CuKa')", path=self.source)
        return self.wavelength_angstrom

    # -- conversions ---------------------------------------------------------
    def _convert(self, x: np.ndarray, frm: str, to: str) -> np.ndarray:
        if frm == to:
            return x.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            if frm == "two_theta_deg":
                lam = self.require_wavelength()
                s = np.sin(np.radians(x) / 2.0)
                q = 4.0 * np.pi * s / lam
            elif frm == "d_angstrom":
                q = 2.0 * np.pi / x
            else:
                q = x
            if to == "q_inv_angstrom":
                return q
            if to == "d_angstrom":
                return 2.0 * np.pi / q
            lam = self.require_wavelength()
            return 2.0 * np.degrees(np.arcsin(q * lam / (4.0 * np.pi)))

    def two_theta_deg(self) -> np.ndarray:
        """2θ (°) of every point, aligned with ``intensity``; needs λ unless already 2θ."""
        return self._convert(self.x, self.axis, "two_theta_deg")

    def q_inv_angstrom(self) -> np.ndarray:
        """Q = 4π sinθ/λ (Å⁻¹) of every point, aligned with ``intensity``."""
        return self._convert(self.x, self.axis, "q_inv_angstrom")

    def d_angstrom(self) -> np.ndarray:
        """d = λ/(2 sinθ) (Å) of every point, aligned with ``intensity``."""
        return self._convert(self.x, self.axis, "d_angstrom")

    def to_axis(self, axis: str) -> "Pattern":
        """A new Pattern on ``axis``, re-ordered to increasing x.

        Points that have no image on the new axis (2θ = 0 for d; Q·λ/4π > 1 for 2θ) are
        dropped and counted in ``meta["dropped_points"]``.
        """
        if axis not in AXES:
            raise PatternError(f"unknown axis {axis!r}; use one of {AXES}", path=self.source)
        if axis == self.axis:
            return replace(self, x=self.x.copy(), meta=dict(self.meta))
        new = self._convert(self.x, self.axis, axis)
        return self._rebuilt(new, axis, self.wavelength_angstrom)

    def _rebuilt(self, new_x: np.ndarray, axis: str, lam: float | None, **changes) -> "Pattern":
        ok = np.isfinite(new_x) & (new_x > 0)
        order = np.argsort(new_x[ok], kind="stable")
        meta = dict(self.meta)
        n_drop = int((~ok).sum())
        if n_drop:
            meta["dropped_points"] = int(meta.get("dropped_points", 0)) + n_drop
        if not ok.any():
            raise InvalidDataError(f"no point of the pattern can be expressed on axis {axis}",
                                   path=self.source)
        sig = None if self.sigma is None else self.sigma[ok][order]
        return replace(self, x=new_x[ok][order], intensity=self.intensity[ok][order], sigma=sig,
                       axis=axis, wavelength_angstrom=lam, meta=meta, **changes)

    def with_wavelength(self, new_wavelength: Any) -> "Pattern":
        """Same d-spacings at a new λ (float Å or tube name); a 2θ pattern gets new 2θ values.

        Points beyond 2θ = 180° at the new λ are dropped (``meta["dropped_points"]``).
        The peak shapes are not changed: a Kα1/Kα2 doublet stays a doublet.
        """
        l1, l2, ratio = resolve_wavelength(new_wavelength)
        meta = dict(self.meta)
        meta["converted_from_wavelength_angstrom"] = self.wavelength_angstrom
        if self.axis != "two_theta_deg":
            return replace(self, x=self.x.copy(), wavelength_angstrom=l1,
                           wavelength2_angstrom=l2, ka2_ratio=ratio, meta=meta)
        q = self.q_inv_angstrom()
        with np.errstate(invalid="ignore"):
            new = 2.0 * np.degrees(np.arcsin(q * l1 / (4.0 * np.pi)))
        tmp = replace(self, meta=meta)
        return tmp._rebuilt(new, "two_theta_deg", l1, wavelength2_angstrom=l2, ka2_ratio=ratio)

    def copy(self) -> "Pattern":
        return replace(self, x=self.x.copy(), intensity=self.intensity.copy(),
                       sigma=None if self.sigma is None else self.sigma.copy(),
                       meta=json.loads(json.dumps(self.meta, default=str)))


# =============================================================================
# Header parsing shared by every text reader
# =============================================================================
@dataclass
class HeaderInfo:
    """What a header told us; every value optional.  ``raw`` keeps all key → value text."""

    wavelength_angstrom: float | None = None
    wavelength2_angstrom: float | None = None
    ka2_ratio: float | None = None
    temperature_c: float | None = None
    temperature_note: str | None = None
    time_s: float | None = None
    timestamp: str | None = None
    axis: str | None = None
    frame: int | None = None
    meta: dict | None = None
    raw: dict = field(default_factory=dict)


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KV_RE = re.compile(r"^\s*([^=:]{1,60}?)\s*[=:]\s*(.*?)\s*$")
_UNIT_IN_KEY = re.compile(r"[\(\[]\s*([^\)\]]*?)\s*[\)\]]")
_LEN_UNITS = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "angstroms": 1.0, "ang": 1.0,
              "nm": 10.0, "m": 1e10, "pm": 0.01}
_WL1_KEYS = {"wavelength", "lambda", "lambda1", "wavelength1", "kalpha1", "alpha1", "lam",
             "lam1", "λ", "λ1", "wave", "calibratedwavelength", "wavelengthangstrom",
             "xraywavelength", "incidentwavelength", "ka1", "kα1", "lambdaangstrom",
             "wavelength1angstrom"}
_WL2_KEYS = {"lambda2", "wavelength2", "kalpha2", "alpha2", "lam2", "λ2", "ka2", "kα2",
             "wavelength2angstrom"}
_RATIO_KEYS = {"ratio", "ka2ratio", "kalpha2ratio", "ratiokalpha2kalpha1", "ka2ka1",
               "kalpha2kalpha1ratio", "alpha2alpha1ratio", "ka2ka1ratio"}
_ENERGY_KEYS = {"energy", "xrayenergy", "beamenergy", "photonenergy", "incidentenergy",
                "monoenergy", "energykev"}
HC_KEV_ANGSTROM = 12.398419843320026   # h·c in keV·Å (CODATA 2018)
_T_KEYS = {"t", "temp", "temperature", "sampletemperature", "sampletemp", "tsample",
           "temperaturec", "temperaturek", "tc", "tk", "setpoint", "settemperature", "thermocouple", "stemp", "ttemp", "temperatur"}
_TIME_KEYS = {"time", "times", "elapsed", "elapsedtime", "timeelapsed", "relativetime",
              "telapsed", "elapsedtimes", "timesec", "timemin", "timeh", "exposurestart"}
_STAMP_KEYS = {"scantime", "starttime", "timestamp", "date", "datetime", "starttimestamp",
               "acquisitiontime", "measurementdate", "datetimeoriginal"}
_AXIS_WORDS = {
    "two_theta_deg": ("two_theta_deg", "2th_deg", "2theta", "twotheta", "two_theta", "2θ", "tth",
                      "2-theta", "2_theta", "angle", "2th"),
    "q_inv_angstrom": ("q_inv_angstrom", "q_a^-1", "q_nm^-1", "q", "q_nm", "q_a"),
    "d_angstrom": ("d_angstrom", "d", "d_a", "dspacing", "d-spacing", "d_spacing", "d*"),
}


def _norm_key(key: str) -> tuple[str, str | None]:
    """(normalised key, unit): lower case, no spaces/punctuation/underscores; the unit is
    taken from ``(K)``/``[°C]``, a ``/K`` suffix or a trailing ``_c``/``_k``/``_s``/``_nm``."""
    unit = None
    m = _UNIT_IN_KEY.search(key)
    if m:
        unit = m.group(1)
        key = _UNIT_IN_KEY.sub("", key)
    elif "/" in key:
        a, b = key.rsplit("/", 1)
        if b.strip().lower() in ("k", "c", "°c", "degc", "s", "min", "h", "a", "å", "nm"):
            key, unit = a, b.strip()
    k = re.sub(r"^[#!;'*/\s]+", "", key.strip().lower())
    nk = re.sub(r"[\s\-\._]+", "", k)
    flat = re.sub(r"[\s\-\.]+", "", k)
    for pat in (r"(temperature|temp|t|sampletemperature)_?(k|c|degc)",
                r"(time|elapsed|elapsedtime)_?(s|sec|min|h)",
                r"(wavelength|lambda|wavelength[12]|lambda[12])_?(nm|a|angstrom)"):
        m2 = re.fullmatch(pat, flat)
        if m2:
            nk = m2.group(1)
            unit = unit or m2.group(2)
            break
    return nk, (unit.strip() if unit else None)


_VALUE_RE = re.compile(rf"\s*({_NUM})\s*((?:deg|°)\s*[CcKkFf]\b|[^\s,;]*)")


def _num_and_unit(value: str) -> tuple[float, str | None] | None:
    """Leading number and the unit word after it (``25 C``, ``25 deg C``, ``1e-10 m``)."""
    m = _VALUE_RE.match(value)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        return None
    unit = re.sub(r"\s+", "", m.group(2)) or None
    return v, unit


def _length_to_angstrom(v: float, unit: str | None) -> float:
    if unit:
        u = unit.strip().lower().rstrip(".")
        if u in _LEN_UNITS:
            return v * _LEN_UNITS[u]
        if u in ("m", "meter", "metre", "meters", "metres"):
            return v * 1e10
    # no unit: Å, except a value < 1e-6 which can only be metres (pyFAI writes "1e-10")
    if 0 < v < 1e-6:
        return v * 1e10
    return v


def temperature_to_c(v: float, unit: str | None) -> tuple[float, str | None]:
    """Convert a temperature to °C; (value_c, note) — note says what was inferred.

    Stated units: K, kelvin, C, °C, degC, celsius.  Without a unit: a value above 200 is
    taken as K, otherwise °C, and the note says so.
    """
    u = (unit or "").strip().lower().replace("°", "").replace("deg", "").replace("º", "")
    if u in ("k", "kelvin"):
        return v - KELVIN_OFFSET, None
    if u in ("c", "celsius", "centigrade"):
        return v, None
    if v > 200:
        return v - KELVIN_OFFSET, f"temperature {v} had no unit; > 200 so taken as K"
    return v, f"temperature {v} had no unit; taken as °C"


_TIME_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "min": 60.0,
               "mins": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0,
               "hour": 3600.0, "hours": 3600.0, "ms": 1e-3}


def _parse_timestamp(text: str) -> str | None:
    t = text.strip()
    fmts = ("%b %d, %Y %H:%M:%S.%f", "%b %d, %Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f%z",
            "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S",
            "%a %b %d %H:%M:%S %Y")
    for f in fmts:
        try:
            return _dt.datetime.strptime(t.title() if "%b" in f else t, f).isoformat()
        except ValueError:
            continue
    return None


def parse_header_lines(lines: Iterable[str]) -> HeaderInfo:
    """Parse ``key = value`` / ``key: value`` header lines (comment marks already allowed).

    Recognised: wavelength (λ1, λ2, Kα2/Kα1 ratio; units Å, nm, m — a bare value < 1e-6 is
    taken as metres, as pyFAI writes; else a photon ``energy`` in keV/eV), temperature (units K/°C in the key or value;
    without a unit see `temperature_to_c`), elapsed time (s, min, h), a start timestamp,
    ``axis``, ``frame`` and an xtal ``meta`` JSON line.
    """
    info = HeaderInfo()
    energy_kev = None
    for line in lines:
        s = line.strip().lstrip("#!;'*/ \t").rstrip("*/ \t")
        if not s:
            continue
        m = _KV_RE.match(s)
        if not m:
            continue
        rawkey, value = m.group(1), m.group(2)
        info.raw.setdefault(rawkey.strip(), value)
        key, key_unit = _norm_key(rawkey)
        if key == "meta":
            with contextlib.suppress(ValueError):
                info.meta = json.loads(value)
            continue
        if key == "axis":
            if value.strip() in AXES:
                info.axis = value.strip()
            continue
        if key in _STAMP_KEYS:
            info.timestamp = info.timestamp or _parse_timestamp(value)
            continue
        nu = _num_and_unit(value)
        if nu is None:
            continue
        v, vunit = nu
        unit = key_unit or vunit
        if key in _WL1_KEYS and info.wavelength_angstrom is None:
            with contextlib.suppress(XtalError):
                info.wavelength_angstrom = _positive_wavelength(_length_to_angstrom(v, unit))
        elif key in _WL2_KEYS and info.wavelength2_angstrom is None and v > 0:
            with contextlib.suppress(XtalError):
                info.wavelength2_angstrom = _positive_wavelength(_length_to_angstrom(v, unit))
        elif key in _RATIO_KEYS and info.ka2_ratio is None:
            info.ka2_ratio = v
        elif key in _ENERGY_KEYS and energy_kev is None:
            u = (unit or "kev").lower()
            if u in ("kev", "ev") and v > 0:
                energy_kev = v / 1000.0 if u == "ev" else v
        elif key in _T_KEYS and info.temperature_c is None:
            info.temperature_c, info.temperature_note = temperature_to_c(v, unit)
        elif key in _TIME_KEYS and info.time_s is None:
            factor = _TIME_UNITS.get((unit or "s").lower())
            if factor is not None:
                info.time_s = v * factor
        elif key == "frame" and float(v).is_integer():
            info.frame = int(v)
    if info.wavelength_angstrom is None and energy_kev is not None:
        with contextlib.suppress(XtalError):
            info.wavelength_angstrom = _positive_wavelength(HC_KEV_ANGSTROM / energy_kev)
    if info.wavelength2_angstrom is None:
        info.ka2_ratio = None
    return info


# =============================================================================
# Helpers: file access, value checks
# =============================================================================
def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PatternError("file not found", path=path) from None
    except IsADirectoryError:
        raise PatternError("is a directory, not a pattern file", path=path) from None
    except OSError as exc:
        raise PatternError(f"cannot read file: {exc.strerror}", path=path) from None
    return data


def _decode_text(data: bytes, path: Path) -> str:
    if not data.strip():
        raise EmptyPatternError("file is empty", path=path)
    if b"\x00" in data[:65536]:
        raise PatternFormatError("binary content (NUL bytes): not a text pattern format that "
                                 "xtal reads", path=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.replace("\x1a", "")          # DOS end-of-file marks in old GSAS files
    ctrl = sum(1 for c in text[:65536] if ord(c) < 32 and c not in "\r\n\t\f\v")
    if ctrl > 0.01 * min(len(text), 65536) + 2:
        raise PatternFormatError("binary content (control characters): not a text pattern",
                                 path=path)
    return text


def _checked_arrays(x, y, s, path, meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate reader output (see module docstring); may reverse decreasing x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    s = None if s is None else np.asarray(s, float)
    if x.size == 0:
        raise EmptyPatternError("no data points found", path=path)
    for name, arr in (("x", x), ("intensity", y), ("sigma", s)):
        if arr is not None and not np.all(np.isfinite(arr)):
            i = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InvalidDataError(f"{name} value NaN/inf at data point {i + 1} "
                                   f"(x = {x[i]!r})", path=path)
    if x.size > 1:
        d = np.diff(x)
        if np.all(d < 0):
            x, y = x[::-1].copy(), y[::-1].copy()
            s = None if s is None else s[::-1].copy()
            meta.setdefault("repairs", []).append("x was strictly decreasing; reversed")
        elif not np.all(d > 0):
            i = int(np.flatnonzero(d <= 0)[0])
            raise InvalidDataError(f"x is not monotonic: data point {i + 2} (x = {x[i + 1]!r}) "
                                   f"follows x = {x[i]!r}", path=path)
    if s is not None:
        if np.any(s < 0):
            i = int(np.flatnonzero(s < 0)[0])
            raise InvalidDataError(f"negative sigma at data point {i + 1} (x = {x[i]!r})",
                                   path=path)
        neg = y < 0
        if neg.any():
            bad = neg & (-y > NEGATIVE_SIGMA_LIMIT * s)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidDataError(
                    f"negative counts inconsistent with their sigma at data point {i + 1}: "
                    f"{y[i]!r} ± {s[i]!r} (more than {NEGATIVE_SIGMA_LIMIT:g} σ below zero)",
                    path=path)
            meta["n_negative"] = int(neg.sum())
    elif np.any(y < 0):
        meta["n_negative"] = int((y < 0).sum())
    return x, y, s


def _make_pattern(path: Path, x, y, s, axis: str, hdr: HeaderInfo, fmt: str,
                  extra_meta: dict | None = None) -> Pattern:
    meta: dict = {}
    if hdr.meta:
        meta.update(hdr.meta)
    meta["format"] = fmt
    if extra_meta:
        meta.update(extra_meta)
    if hdr.raw:
        meta["header"] = {k: v for k, v in list(hdr.raw.items())[:200] if k != "meta"}
    if hdr.temperature_note:
        meta["temperature_unit_note"] = hdr.temperature_note
    if hdr.timestamp:
        meta["timestamp"] = hdr.timestamp
    x, y, s = _checked_arrays(x, y, s, path, meta)
    if axis == "d_angstrom" and x.size and x[0] <= 0:
        raise InvalidDataError("d-spacings must be positive", path=path)
    return Pattern(x=x, intensity=y, sigma=s, axis=axis,
                   wavelength_angstrom=hdr.wavelength_angstrom,
                   wavelength2_angstrom=hdr.wavelength2_angstrom,
                   ka2_ratio=hdr.ka2_ratio if hdr.wavelength2_angstrom else None,
                   temperature_c=hdr.temperature_c, time_s=hdr.time_s,
                   source=str(path), frame=hdr.frame, meta=meta)


# =============================================================================
# Readers
# =============================================================================
_SPLIT_RE = re.compile(r"[\s,;]+")
_COMMENT_CHARS = ("#", "!", ";", "'", "%", "//")


def _strip_block_comments(text: str, path: Path) -> tuple[str, list[str]]:
    """Remove TOPAS-style /* ... */ blocks; return text and the comment lines."""
    if "/*" not in text:
        return text, []
    comments: list[str] = []

    def _keep(m: re.Match) -> str:
        comments.extend(m.group(1).splitlines())
        return "\n" * m.group(0).count("\n")

    out = re.sub(r"/\*(.*?)\*/", _keep, text, flags=re.S)
    if "/*" in out:
        raise PatternFormatError("unterminated /* comment", path=path)
    return out, comments


def _axis_from_label(label: str) -> tuple[str, float] | None:
    """(axis, factor to the axis unit) from a column or axis label, or None."""
    lab = label.strip().lower().replace(" ", "")
    if not lab:
        return None
    if lab in ("2th_rad", "2theta_rad", "twotheta_rad") or ("rad" in lab and "2th" in lab):
        return "two_theta_deg", float("nan")  # radians; handled by caller
    if "q" in lab and ("nm" in lab) and not lab.startswith("2"):
        return "q_inv_angstrom", 0.1
    if lab.startswith("q") or lab == "q_inv_angstrom":
        return "q_inv_angstrom", 1.0
    if lab.startswith("d") and not lab.startswith("deg") and ("*" not in lab) and (
            lab in _AXIS_WORDS["d_angstrom"] or "spacing" in lab or lab.startswith("d_") or lab
            in ("d(a)", "d(å)", "d[a]")):
        if "nm" in lab:
            return "d_angstrom", 10.0
        return "d_angstrom", 1.0
    for w in _AXIS_WORDS["two_theta_deg"]:
        if lab.startswith(w) or lab == w:
            return "two_theta_deg", 1.0
    if "theta" in lab or "2θ" in lab:
        return "two_theta_deg", 1.0
    return None


_UNSUPPORTED_X = re.compile(r"(r|r_?(mm|m|nm|px)|chi.*|pixels?|px|d\*2.*|energy.*|e_?kev|"
                            r"tof.*|time.*|channel.*)")
_SIGMA_NAME = re.compile(r"(sigma.*|esd|e|err.*|dy|di|std.*|uncertainty|s|σ.*|yerr|unc|"
                         r"d?i_?err.*|error.*)")
_Y_NAME = re.compile(r"(i|int.*|counts?|yobs|y|y_obs|cps|signal|obs|i\(.*\)|i_.*)")


def _column_roles(names: list[str], ncol: int) -> tuple[dict[str, int], str | None, float]:
    """Roles of the data columns: {"x", "y", "sigma"} → index; plus the x axis and factor.

    Named columns are matched by name; unnamed ones follow the x, y[, σ] convention.  With
    names present, a third column whose name is not σ-like is not taken as σ.
    """
    roles: dict[str, int] = {}
    axis, factor = None, 1.0
    named = names is not None and len(names) >= ncol
    if names is not None and not named:      # too few names: only the x label is trusted
        ax = _axis_from_label(names[0].strip().lower())
        if ax is not None:
            axis, factor = ax
    if named:
        for i, n in enumerate(names[:ncol]):
            ln = n.strip().lower()
            ax = _axis_from_label(ln)
            if "x" not in roles and ax is not None and not _SIGMA_NAME.fullmatch(ln):
                roles["x"] = i
                axis, factor = ax
            elif "sigma" not in roles and _SIGMA_NAME.fullmatch(ln):
                roles["sigma"] = i
            elif "y" not in roles and _Y_NAME.fullmatch(ln):
                roles["y"] = i
    free = [i for i in range(ncol) if i not in roles.values()]
    if "x" not in roles:
        roles["x"] = free.pop(0)
    if "y" not in roles:
        if not free:
            raise InvalidDataError("no intensity column")
        roles["y"] = free.pop(0)
    if "sigma" not in roles and free and not named and free[0] == 2:
        roles["sigma"] = free.pop(0)
    return roles, axis, factor


def _parse_number_rows(rows: list[tuple[int, str]], path: Path, decimal_comma: bool
                       ) -> np.ndarray:
    vals: list[list[float]] = []
    ncol = None
    for lineno, line in rows:
        if decimal_comma:
            parts = [p for p in re.split(r"[\s;]+", line.strip()) if p]
            parts = [p.replace(",", ".") for p in parts]
        else:
            parts = [p for p in _SPLIT_RE.split(line.strip()) if p]
        try:
            fl = [float(p) for p in parts]
        except ValueError:
            raise PatternFormatError(f"line {lineno}: not numeric data: {line.strip()[:60]!r}",
                                     path=path) from None
        if ncol is None:
            ncol = len(fl)
        elif len(fl) != ncol:
            raise InvalidDataError(f"line {lineno}: {len(fl)} column(s) where the data have "
                                   f"{ncol} (a column is missing or extra)", path=path)
        vals.append(fl)
    return np.array(vals, dtype=float)


def _is_number(tok: str) -> bool:
    try:
        float(tok.replace(",", ".") if tok.count(",") == 1 and "." not in tok else tok)
        return True
    except ValueError:
        return tok.lower() in ("nan", "inf", "-inf", "+inf")


def _read_columns(path: Path, text: str, *, axis: str | None) -> Pattern:
    """2/3-column text with comment headers (xy/xye/dat/txt/csv, pyFAI 1D)."""
    text, block_comments = _strip_block_comments(text, path)
    header: list[str] = list(block_comments)
    rows: list[tuple[int, str]] = []
    colnames: list[str] | None = None
    last_comment = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(_COMMENT_CHARS):
            header.append(line)
            last_comment = line
            continue
        toks = [t for t in _SPLIT_RE.split(line) if t]
        if not rows and toks and not _is_number(toks[0]):
            header.append(line)      # a non-comment title / column-name line before the data
            last_comment = line
            continue
        if not rows and last_comment is not None and colnames is None:
            cand = [t for t in re.split(r"[\s,;\t]+", last_comment.lstrip("#!;'% \t")) if t]
            if len(cand) >= 2 and not any(_is_number(c) for c in cand) and "=" not in \
                    last_comment and ":" not in last_comment:
                colnames = cand
        rows.append((lineno, line))
    if not rows:
        raise EmptyPatternError("no numeric data lines", path=path)
    decimal_comma = (";" in rows[0][1] and "," in rows[0][1]) or bool(
        re.fullmatch(r"\s*-?\d+,\d+\s+-?\d+,\d+.*", rows[0][1]))
    data = _parse_number_rows(rows, path, decimal_comma)
    if data.shape[1] < 2:
        raise InvalidDataError("only one column of numbers: need x and intensity", path=path)
    hdr = parse_header_lines(header)
    if colnames is not None and len(colnames) < data.shape[1] - 1:
        colnames = None                    # a comment line that is not a column header
    try:
        roles, file_axis, factor = _column_roles(colnames, data.shape[1])
    except InvalidDataError as exc:
        raise InvalidDataError(exc.message, path=path) from None
    if hdr.axis:
        file_axis, factor = hdr.axis, 1.0
    if colnames and roles["x"] < len(colnames) and _UNSUPPORTED_X.fullmatch(
            colnames[roles["x"]].strip().lower()):
        raise PatternFormatError(f"x column {colnames[roles['x']]!r} is not 2θ, Q or d "
                                 "(radius, azimuth, pixel, energy and time are not powder axes "
                                 "xtal converts)", path=path)
    x = data[:, roles["x"]]
    if file_axis == "two_theta_deg" and math.isnan(factor):
        x = np.degrees(x)
    elif file_axis is not None:
        x = x * factor
    if axis is not None and file_axis is not None and axis != file_axis:
        raise PatternFormatError(f"axis={axis!r} given but the file declares {file_axis!r}",
                                 path=path)
    the_axis = axis or file_axis or "two_theta_deg"
    y = data[:, roles["y"]]
    s = data[:, roles["sigma"]] if "sigma" in roles else None
    fmt = "pyfai" if any("pyfai" in h.lower() for h in header) else "columns"
    extra = {"columns": colnames[: data.shape[1]]} if colnames else {}
    ignored = [i for i in range(data.shape[1]) if i not in roles.values()]
    if ignored:
        extra["ignored_columns"] = [colnames[i] if colnames and i < len(colnames) else i
                                    for i in ignored]
    return _make_pattern(path, x, y, s, the_axis, hdr, fmt, extra)


def _read_chi(path: Path, text: str, *, axis: str | None) -> Pattern:
    """Fit2D .chi: title, x label, y label, number of points, then x y [e] rows."""
    lines = text.splitlines()
    if len(lines) < 5:
        raise EmptyPatternError("Fit2D .chi file shorter than its 4-line header", path=path)
    head = lines[:4]
    try:
        n = int(head[3].split()[0])
    except (ValueError, IndexError):
        raise PatternFormatError("line 4 of a Fit2D .chi file must be the number of points",
                                 path=path) from None
    lab = head[1].strip().lower()
    if any(w in lab for w in ("radial", "azimuth", "pixel", "chi")):
        ax = None
    elif "2-theta" in lab or "2theta" in lab or "two" in lab or "2θ" in lab:
        ax = ("two_theta_deg", float("nan") if "rad" in lab else 1.0)
    elif lab.startswith("q"):
        ax = ("q_inv_angstrom", 0.1 if "nm" in lab else 1.0)
    elif lab.startswith("d"):
        ax = ("d_angstrom", 10.0 if "nm" in lab else 1.0)
    else:
        ax = _axis_from_label(lab.split("(")[0])
    if ax is None:
        raise PatternFormatError(f"unsupported .chi x axis {head[1].strip()!r} (need 2θ, Q or d)",
                                 path=path)
    rows = [(i + 5, ln) for i, ln in enumerate(lines[4:]) if ln.strip()]
    data = _parse_number_rows(rows, path, False)
    if data.shape[0] != n:
        raise InvalidDataError(f"header says {n} points but {data.shape[0]} data lines follow",
                               path=path)
    if data.shape[1] < 2:
        raise InvalidDataError("only one column of numbers: need x and intensity", path=path)
    x = data[:, 0]
    file_axis, factor = ax
    x = np.degrees(x) if math.isnan(factor) else x * factor
    if axis is not None and axis != file_axis:
        raise PatternFormatError(f"axis={axis!r} given but the file declares {file_axis!r}",
                                 path=path)
    hdr = parse_header_lines([head[0]])
    return _make_pattern(path, x, data[:, 1], data[:, 2] if data.shape[1] >= 3 else None,
                         file_axis, hdr, "chi", {"title": head[0].strip()})


# --- GSAS -------------------------------------------------------------------
def read_gsas_instprm_wavelength(prm_path: str | Path) -> tuple[float, float | None, float | None]:
    """(λ1 Å, λ2 Å or None, I(λ2)/I(λ1) or None) from a GSAS instrument file.

    Reads the ``INS  n ICONS`` record (fixed columns 10 wide: λ1, λ2, zero, -, POLA,
    IPOLA(5), KRATIO; whitespace split as fallback) of bank 1 for constant-wavelength
    histograms, or the ``Lam``/``Lam1``/``Lam2``/``I(L2)/I(L1)`` lines of a GSAS-II
    ``.instprm``.  λ2 = 0 means a single wavelength.
    """
    path = Path(prm_path)
    text = _decode_text(_read_bytes(path), path)
    kv: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("INS"):
            k, _, v = line.partition(":")
            kv[k.strip()] = v.split(",")[0].strip()
    if "Lam" in kv or "Lam1" in kv:   # GSAS-II .instprm
        try:
            l1 = float(kv.get("Lam1", kv.get("Lam")))
            l2 = float(kv["Lam2"]) if "Lam2" in kv else None
            r = float(kv["I(L2)/I(L1)"]) if "I(L2)/I(L1)" in kv and l2 else None
        except ValueError:
            raise PatternFormatError("unreadable Lam/Lam1/Lam2 value", path=path) from None
        return resolve_wavelength((l1, l2 or None, r))
    htype = None
    for line in text.splitlines():
        m = re.match(r"INS\s+HTYPE\s+(\S+)", line)
        if m:
            htype = m.group(1).upper()
    if htype and len(htype) >= 3 and htype[2] == "T":
        raise PatternFormatError(f"time-of-flight instrument (HTYPE {htype}): no wavelength",
                                 path=path)
    for line in text.splitlines():
        m = re.match(r"(INS\s+(\d+)\s?ICONS)(.*)$", line)
        if not m:
            continue
        rest = m.group(3)
        fields = [rest[i:i + 10] for i in (0, 10, 20, 30, 40)] + [rest[50:55], rest[55:65]]
        try:
            l1 = float(fields[0])
            l2 = float(fields[1]) if fields[1].strip() else 0.0
            r = float(fields[6]) if fields[6].strip() else None
        except ValueError:
            toks = rest.split()
            try:
                l1 = float(toks[0])
                l2 = float(toks[1]) if len(toks) > 1 else 0.0
                r = float(toks[-1]) if len(toks) >= 7 else None
            except (ValueError, IndexError):
                raise PatternFormatError(f"unreadable ICONS record: {line.strip()!r}",
                                         path=path) from None
        if l2 <= 0:
            return resolve_wavelength(l1)
        return resolve_wavelength((l1, l2, r))
    raise PatternFormatError("no ICONS record (or Lam/Lam1 line): no wavelength in the "
                             "instrument file", path=path)


def _read_gsas(path: Path, text: str, *, axis: str | None, bank: int | None = None) -> Pattern:
    """GSAS powder data: title line, optional comment lines, BANK record(s).

    CONST/CONS banks only (x = 2θ; BCOEF1/BCOEF2 and FXY/FXYE x are in centidegrees).
    σ: STD → sqrt(counts / NCTR) (1 for zero counts); ESD, FXYE → as given; FXY → none.
    STD/ESD read NCHAN values (record padding dropped); FXY/FXYE read every row (a
    disagreement with NCHAN is recorded in ``meta["nchan_header"]``).
    """
    lines = text.splitlines()
    bank_idx = [i for i, ln in enumerate(lines) if ln.startswith("BANK")]
    if not bank_idx:
        raise PatternFormatError("no BANK record: not a GSAS powder data file", path=path)
    banks = []
    for i in bank_idx:
        toks = lines[i].split()
        try:
            banks.append(int(toks[1]))
        except (IndexError, ValueError):
            raise PatternFormatError(f"line {i + 1}: malformed BANK record {lines[i]!r}",
                                     path=path) from None
    want = banks[0] if bank is None else bank
    if want not in banks:
        raise PatternFormatError(f"bank {want} not in file (banks {banks})", path=path)
    k = banks.index(want)
    start = bank_idx[k]
    end = bank_idx[k + 1] if k + 1 < len(bank_idx) else len(lines)
    toks = lines[start].split()
    if len(toks) < 5:
        raise PatternFormatError(f"line {start + 1}: BANK record too short", path=path)
    try:
        nchan, nrec = int(toks[2]), int(toks[3])
    except ValueError:
        raise PatternFormatError(f"line {start + 1}: bad NCHAN/NREC", path=path) from None
    if nchan <= 0:
        raise PatternFormatError(f"line {start + 1}: NCHAN must be positive", path=path)
    bintyp = toks[4].upper()
    if bintyp not in ("CONST", "CONS"):
        raise PatternFormatError(f"GSAS bank type {bintyp} (time-of-flight or other) is not "
                                 "supported; only CONST/CONS constant-wavelength banks", path=path)
    kind = "STD"
    coeffs: list[float] = []
    for t in toks[5:]:
        if t.upper() in ("STD", "ESD", "ALT", "FXYE", "FXY"):
            kind = t.upper()
            break
        try:
            coeffs.append(float(t))
        except ValueError:
            raise PatternFormatError(f"line {start + 1}: bad BANK coefficient {t!r}",
                                     path=path) from None
    header_lines = [ln for ln in lines[:bank_idx[0]]]
    hdr = parse_header_lines(header_lines[1:])
    inst_hint = None
    if len(lines) > 1 and lines[1][:4].lower() == "inst" and ":" in lines[1]:
        inst_hint = lines[1].split(":", 1)[1].strip().strip("[]").strip()
    body = [(start + 2 + j, ln) for j, ln in enumerate(lines[start + 1:end])
            if ln.strip() and not ln.startswith("#")]
    if not body:
        raise EmptyPatternError(f"bank {want} has no data records", path=path)
    meta = {"title": lines[0].strip() if bank_idx[0] > 0 else "", "bank": want,
            "banks": banks, "gsas_type": kind}
    if kind in ("FXYE", "FXY"):
        data = _parse_number_rows(body, path, False)
        need = 3 if kind == "FXYE" else 2
        if data.shape[1] < need:
            raise InvalidDataError(f"{kind} rows need {need} columns, found {data.shape[1]}",
                                   path=path)
        if data.shape[0] != nchan:
            # keep every row (as GSAS-II does) and say that the header disagrees
            meta["nchan_header"] = nchan
            meta.setdefault("notes", []).append(
                f"BANK record announces {nchan} points, the file holds {data.shape[0]} rows; "
                "all rows read")
        x = data[:, 0] / 100.0
        y = data[:, 1]
        s = data[:, 2] if kind == "FXYE" else None
    elif kind in ("STD", "ESD"):
        if len(coeffs) < 2:
            raise PatternFormatError(f"line {start + 1}: CONST bank needs start and step",
                                     path=path)
        t0, step = coeffs[0] / 100.0, coeffs[1] / 100.0
        if not (math.isfinite(t0) and math.isfinite(step) and step > 0):
            raise PatternFormatError(f"line {start + 1}: bad CONST start/step {coeffs[:2]}",
                                     path=path)
        ys: list[float] = []
        ss: list[float] = []
        width = 8
        for lineno, ln in body:
            ln = ln.rstrip("\r\n")
            if kind == "STD":
                for c in range(0, min(len(ln), 80), width):
                    fld = ln[c:c + width]
                    if not fld.strip():
                        continue
                    try:
                        nc = int(fld[:2]) if fld[:2].strip() else 1
                        yi = float(fld[2:])
                    except ValueError:
                        raise PatternFormatError(f"line {lineno}: bad STD field {fld!r}",
                                                 path=path) from None
                    ys.append(yi)
                    ss.append(math.sqrt(abs(yi) / max(nc, 1)) if yi != 0 else 1.0)
            else:  # ESD: 5 pairs (y, esd) in F8
                for c in range(0, min(len(ln), 80), 16):
                    fy, fe = ln[c:c + 8], ln[c + 8:c + 16]
                    if not fy.strip():
                        continue
                    try:
                        ys.append(float(fy))
                        ss.append(float(fe))
                    except ValueError:
                        raise PatternFormatError(f"line {lineno}: bad ESD field "
                                                 f"{ln[c:c + 16]!r}", path=path) from None
        if len(ys) < nchan:
            raise InvalidDataError(f"BANK record announces {nchan} points but only {len(ys)} "
                                   "values follow (truncated file?)", path=path)
        y = np.array(ys[:nchan])
        s = np.array(ss[:nchan])
        x = t0 + step * np.arange(nchan)
        meta["start_two_theta_deg"], meta["step_two_theta_deg"] = t0, step
    else:
        raise PatternFormatError(f"GSAS {kind} data are not supported (STD, ESD, FXY, FXYE "
                                 "are)", path=path)
    meta["nrec"] = nrec
    if inst_hint:
        meta["instrument_file_named"] = inst_hint
        prm = path.parent / Path(inst_hint).name
        if hdr.wavelength_angstrom is None and prm.is_file():
            hdr.wavelength_angstrom, hdr.wavelength2_angstrom, hdr.ka2_ratio = \
                read_gsas_instprm_wavelength(prm)
            meta["wavelength_source"] = f"instrument file {prm.name} named in line 2"
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"GSAS CONST data are on 2θ, not {axis}", path=path)
    return _make_pattern(path, x, y, s, "two_theta_deg", hdr, "gsas", meta)


# --- PANalytical XRDML --------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_all(el: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in el.iter() if _local(e.tag) == name]


def _find(el: ET.Element, name: str) -> ET.Element | None:
    for e in el.iter():
        if _local(e.tag) == name:
            return e
    return None


def _read_xrdml(path: Path, text: str, *, axis: str | None, scan: int = 0) -> Pattern:
    """PANalytical .xrdml; namespaces ignored."""
    try:
        # already decoded: drop the declaration (its encoding= no longer applies)
        root = ET.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text.lstrip("\ufeff"), count=1))
    except ET.ParseError as exc:
        raise PatternFormatError(f"malformed XML: {exc}", path=path) from None
    hdr = HeaderInfo()
    uw = _find(root, "usedWavelength")
    meta: dict = {}
    if uw is not None:
        meta["intended_wavelength"] = uw.get("intended")
        vals = {}
        for name in ("kAlpha1", "kAlpha2", "ratioKAlpha2KAlpha1", "kBeta"):
            e = _find(uw, name)
            if e is not None and e.text and e.text.strip():
                try:
                    v = float(e.text)
                except ValueError:
                    raise PatternFormatError(f"bad <{name}> value {e.text!r}", path=path) from None
                if name != "ratioKAlpha2KAlpha1":
                    v = _length_to_angstrom(v, e.get("unit", "Angstrom"))
                vals[name] = v
        if "kAlpha1" in vals:
            hdr.wavelength_angstrom = _positive_wavelength(vals["kAlpha1"])
        if vals.get("kAlpha2"):
            hdr.wavelength2_angstrom = _positive_wavelength(vals["kAlpha2"])
            hdr.ka2_ratio = vals.get("ratioKAlpha2KAlpha1")
        if "kBeta" in vals:
            meta["kbeta_angstrom"] = vals["kBeta"]
    scans = _find_all(root, "scan")
    if not scans:
        raise PatternFormatError("no <scan> element", path=path)
    if scan >= len(scans):
        raise PatternFormatError(f"scan {scan} requested, file has {len(scans)}", path=path)
    sc = scans[scan]
    meta["n_scans"] = len(scans)
    st = _find(sc, "startTimeStamp")
    if st is not None and st.text:
        hdr.timestamp = _parse_timestamp(st.text) or st.text.strip()
    dp = _find(sc, "dataPoints")
    if dp is None:
        raise PatternFormatError("scan has no <dataPoints>", path=path)
    counts_el = _find(dp, "counts")
    if counts_el is None:
        counts_el = _find(dp, "intensities")
    if counts_el is None or not (counts_el.text or "").strip():
        raise EmptyPatternError("no <counts>/<intensities> data", path=path)
    try:
        y = np.array(counts_el.text.split(), dtype=float)
    except ValueError:
        raise PatternFormatError("non-numeric <counts>", path=path) from None
    meta["intensity_unit"] = counts_el.get("unit")
    pos = None
    for p in _find_all(dp, "positions"):
        if (p.get("axis") or "").lower() in ("2theta", "2-theta", "twotheta"):
            pos = p
            break
    if pos is None:
        raise PatternFormatError("no <positions axis=\"2Theta\">", path=path)
    lp = _find(pos, "listPositions")
    try:
        if lp is not None and lp.text:
            x = np.array(lp.text.split(), dtype=float)
        else:
            a = float(_find(pos, "startPosition").text)
            b = float(_find(pos, "endPosition").text)
            x = np.linspace(a, b, y.size)
    except (AttributeError, TypeError, ValueError):
        raise PatternFormatError("2Theta positions need startPosition/endPosition or "
                                 "listPositions", path=path) from None
    if x.size != y.size:
        raise InvalidDataError(f"{x.size} positions but {y.size} counts", path=path)
    ct = _find(dp, "commonCountingTime")
    if ct is not None and ct.text:
        with contextlib.suppress(ValueError):
            meta["counting_time_s"] = float(ct.text)
    for name in ("sampleTemperature", "temperature"):
        te = _find(root, name)
        if te is not None and te.text:
            nu = _num_and_unit(te.text)
            if nu:
                hdr.temperature_c, hdr.temperature_note = temperature_to_c(
                    nu[0], te.get("unit") or nu[1])
                break
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"XRDML scans are on 2θ, not {axis}", path=path)
    return _make_pattern(path, x, y, None, "two_theta_deg", hdr, "xrdml", meta)


# --- NeXus / HDF5 -------------------------------------------------------------
def _attr_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    if isinstance(v, (np.bytes_,)):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


def _attr_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (np.ndarray, list, tuple)) and not (isinstance(v, np.ndarray) and v.shape == ()):
        return [_attr_str(a) or "" for a in v]
    s = _attr_str(v) or ""
    return [t for t in re.split(r"[:,\s]+", s) if t]


def _open_h5(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise PatternFormatError(f"not a readable HDF5/NeXus file ({exc})", path=path) from None


def _nx_class(obj) -> str:
    return _attr_str(obj.attrs.get("NX_class")) or ""


def _find_nxdata(f, path: Path):
    import h5py
    # follow @default chain first
    g = f
    for _ in range(4):
        d = _attr_str(g.attrs.get("default"))
        if not d or d not in g or not isinstance(g[d], h5py.Group):
            break
        g = g[d]
        if _nx_class(g) == "NXdata":
            return g
    found = []

    def _visit(name, obj):
        if isinstance(obj, h5py.Group) and _nx_class(obj) == "NXdata":
            found.append(obj)

    f.visititems(_visit)
    if not found:
        raise PatternFormatError("no NXdata group (with @NX_class = NXdata) in the HDF5 file",
                                 path=path)
    found.sort(key=lambda grp: grp.name)
    return found[0]


def _units_factor_length(units: str | None) -> float:
    u = (units or "angstrom").strip().lower()
    return {"angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "å": 1.0, "ang": 1.0, "nm": 10.0,
            "nanometer": 10.0, "nanometre": 10.0, "m": 1e10, "pm": 0.01}.get(u, float("nan"))


def _nx_axis(name: str, units: str | None) -> tuple[str, float]:
    """(axis, factor) for an NXdata axis dataset name and @units."""
    u = (units or "").strip().lower().replace(" ", "")
    if u in ("deg", "degree", "degrees", "°"):
        return "two_theta_deg", 1.0
    if u in ("rad", "radian", "radians"):
        return "two_theta_deg", float("nan")
    if u in ("1/angstrom", "angstrom^-1", "å^-1", "a^-1", "1/a", "1/å", "angstrom-1", "inv_angstrom"):
        return "q_inv_angstrom", 1.0
    if u in ("1/nm", "nm^-1", "nm-1", "inv_nm"):
        return "q_inv_angstrom", 0.1
    if u in ("angstrom", "å", "a"):
        return "d_angstrom", 1.0
    if u in ("nm",):
        return "d_angstrom", 10.0
    ax = _axis_from_label(name)
    if ax is None:
        raise PatternFormatError(f"NXdata axis {name!r} (units {units!r}) is not 2θ, Q or d")
    return ax


def _nx_scalar_with_units(ds) -> tuple[np.ndarray, str | None]:
    return np.atleast_1d(np.asarray(ds[()], dtype=float)), _attr_str(ds.attrs.get("units"))


def _nx_metadata(f, nxdata, path: Path) -> dict:
    """wavelength / temperature / time arrays found in the file."""
    import h5py
    out: dict = {}
    cands: dict[str, list] = {"wl": [], "wl2": [], "ratio": [], "t": [], "time": []}

    def _visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        leaf = name.rsplit("/", 1)[-1].lower()
        parent_cls = _nx_class(obj.parent)
        if leaf in ("wavelength", "incident_wavelength", "wavelength_angstrom", "lambda"):
            cands["wl"].append((0 if parent_cls in ("NXmonochromator", "NXbeam") else 1, obj))
        elif leaf in ("wavelength2", "wavelength2_angstrom"):
            cands["wl2"].append((0, obj))
        elif leaf in ("ka2_ratio",):
            cands["ratio"].append((0, obj))
        elif leaf in ("temperature", "temperature_c", "sample_temperature"):
            cands["t"].append((0 if parent_cls in ("NXsample", "NXdata") else 1, obj))
        elif leaf in ("time_s", "elapsed_time"):
            cands["time"].append((0, obj))

    f.visititems(_visit)
    for key in cands:
        cands[key].sort(key=lambda t: t[0])
    if cands["wl"]:
        vals, units = _nx_scalar_with_units(cands["wl"][0][1])
        fac = _units_factor_length(units)
        if math.isnan(fac):
            raise PatternFormatError(f"wavelength units {units!r} not understood", path=path)
        vals = vals * fac
        out["wavelength_angstrom"] = vals
    if cands["wl2"]:
        vals, units = _nx_scalar_with_units(cands["wl2"][0][1])
        out["wavelength2_angstrom"] = vals * _units_factor_length(units)
    if cands["ratio"]:
        out["ka2_ratio"] = _nx_scalar_with_units(cands["ratio"][0][1])[0]
    if cands["t"]:
        ds = cands["t"][0][1]
        vals, units = _nx_scalar_with_units(ds)
        name = ds.name.rsplit("/", 1)[-1].lower()
        if units is None and name.endswith("_c"):
            units = "C"
        conv = [temperature_to_c(float(v), units) for v in vals]
        out["temperature_c"] = np.array([c[0] for c in conv])
        notes = {c[1] for c in conv if c[1]}
        if notes:
            out["temperature_unit_note"] = "; ".join(sorted(notes))
    if cands["time"]:
        out["time_s"] = _nx_scalar_with_units(cands["time"][0][1])[0]
    return out


def _nx_read(path: Path, *, axis: str | None):
    """(x, Y 2D (frames, n), E or None, axis, per-frame meta dict, extra) from an NXdata."""
    import h5py
    with _open_h5(path) as f:
        g = _find_nxdata(f, path)
        sig_name = _attr_str(g.attrs.get("signal"))
        if sig_name is None or sig_name not in g:
            sig_name = None
            for k, obj in g.items():
                if isinstance(obj, h5py.Dataset) and obj.attrs.get("signal") is not None:
                    sig_name = k
            if sig_name is None:
                raise PatternFormatError(f"NXdata {g.name} has no @signal", path=path)
        sig = g[sig_name]
        Y = np.asarray(sig[()], dtype=float)
        if Y.ndim not in (1, 2) or Y.size == 0:
            raise PatternFormatError(f"NXdata signal {sig_name!r} has shape {Y.shape}; "
                                     "need 1D or 2D (frames × points)", path=path)
        axes = _attr_list(g.attrs.get("axes")) or _attr_list(sig.attrs.get("axes"))
        if not axes:
            raise PatternFormatError(f"NXdata {g.name} has no @axes", path=path)
        xname = axes[-1]
        if xname == "." or xname not in g:
            raise PatternFormatError(f"NXdata axis {xname!r} for the last dimension not found",
                                     path=path)
        xds = g[xname]
        x = np.asarray(xds[()], dtype=float)
        try:
            file_axis, factor = _nx_axis(xname, _attr_str(xds.attrs.get("units")))
        except PatternFormatError as exc:
            raise PatternFormatError(exc.message, path=path) from None
        x = np.degrees(x) if math.isnan(factor) else x * factor
        E = None
        for en in (f"{sig_name}_errors", "errors"):
            if en in g:
                E = np.asarray(g[en][()], dtype=float)
                break
        Y2 = np.atleast_2d(Y)
        E2 = None if E is None else np.atleast_2d(E)
        if x.shape != (Y2.shape[1],) or (E2 is not None and E2.shape != Y2.shape):
            raise PatternFormatError(f"NXdata shapes do not match: signal {Y.shape}, axis "
                                     f"{x.shape}", path=path)
        md = _nx_metadata(f, g, path)
        extra: dict = {"nxdata": g.name, "signal": sig_name}
        # per-frame string coordinates written by xtal
        for cname in ("source", "segment", "temperature_source"):
            if cname in g and g[cname].shape == (Y2.shape[0],):
                extra[cname] = [_attr_str(v) for v in g[cname][()]]
        if "xtal_attrs" in g.attrs:
            with contextlib.suppress(ValueError):
                extra["xtal_attrs"] = json.loads(_attr_str(g.attrs["xtal_attrs"]))
        if "xtal_meta" in g.attrs:
            with contextlib.suppress(ValueError):
                extra["meta"] = json.loads(_attr_str(g.attrs["xtal_meta"]))
    if axis is not None and axis != file_axis:
        raise PatternFormatError(f"axis={axis!r} given but the file declares {file_axis!r}",
                                 path=path)
    return x, Y2, E2, file_axis, md, extra, Y.ndim


def _frame_value(arr, i: int) -> float | None:
    if arr is None:
        return None
    a = np.atleast_1d(arr)
    v = float(a[i] if a.size > 1 else a[0])
    return None if not math.isfinite(v) else v


def _nx_pattern(path: Path, x, Y2, E2, ax, md, extra, i: int) -> Pattern:
    hdr = HeaderInfo(
        wavelength_angstrom=_frame_value(md.get("wavelength_angstrom"), i),
        wavelength2_angstrom=_frame_value(md.get("wavelength2_angstrom"), i),
        ka2_ratio=_frame_value(md.get("ka2_ratio"), i),
        temperature_c=_frame_value(md.get("temperature_c"), i),
        temperature_note=md.get("temperature_unit_note"),
        time_s=_frame_value(md.get("time_s"), i),
        meta=extra.get("meta"))
    if hdr.meta and "frame" in hdr.meta:
        hdr.meta = dict(hdr.meta)
        hdr.frame = hdr.meta.pop("frame")
    meta = {"nxdata": extra["nxdata"], "signal": extra["signal"]}
    if Y2.shape[0] > 1:
        meta["nx_frame"] = i
        hdr.frame = i
    p = _make_pattern(path, x, Y2[i], None if E2 is None else E2[i], ax, hdr, "nexus", meta)
    return p


def _read_nexus(path: Path, *, axis: str | None, frame: int | None = None) -> Pattern:
    x, Y2, E2, ax, md, extra, ndim = _nx_read(path, axis=axis)
    if ndim == 2 and frame is None:
        if Y2.shape[0] == 1:
            frame = 0
        else:
            raise PatternFormatError(f"NXdata holds {Y2.shape[0]} frames; pass frame= or use "
                                     "read_series", path=path)
    return _nx_pattern(path, x, Y2, E2, ax, md, extra, frame or 0)


# =============================================================================
# Format detection and read_pattern
# =============================================================================
def _sniff(path: Path, data: bytes) -> str:
    ext = path.suffix.lower()
    if data.startswith(_HDF5_MAGIC):
        return "nexus"
    if data[:3] == b"CDF":
        return "netcdf"
    head = data[:16384].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<?xml") or b"<xrdMeasurements" in head:
        return "xrdml"
    if ext == ".xrdml":
        return "xrdml"
    text_head = head.decode("latin-1")
    if re.search(r"^BANK\s+\d+", text_head, re.M) or (ext in _GSAS_EXT and "BANK" in text_head):
        return "gsas"
    if ext == ".chi":
        return "chi"
    lines = text_head.splitlines()
    if len(lines) >= 5 and re.fullmatch(r"\s*\d+\s*", lines[3]) and not _is_number(
            (lines[1].split() or ["x"])[0]):
        return "chi"
    return "columns"


def _apply_wavelength(p: Pattern, given: Any, force: bool, require: bool, path: Path) -> Pattern:
    if given is not None:
        l1, l2, ratio = resolve_wavelength(given)
        if p.wavelength_angstrom is not None:
            rel = abs(l1 - p.wavelength_angstrom) / p.wavelength_angstrom
            if rel > WAVELENGTH_RTOL:
                if not force:
                    raise WavelengthMismatchError(
                        f"given wavelength {l1} Å differs from the file's "
                        f"{p.wavelength_angstrom} Å (relative {rel:.2g} > {WAVELENGTH_RTOL:g}); "
                        "pass force=True to use the given value", path=path)
                p.meta["file_wavelength_angstrom"] = p.wavelength_angstrom
                p.meta["wavelength_source"] = "user (forced over the file's)"
            else:
                p.meta.setdefault("wavelength_source", "file (user value agrees)")
                if l2 is not None and p.wavelength2_angstrom is None:
                    p.wavelength2_angstrom, p.ka2_ratio = l2, ratio
                return p
        else:
            p.meta["wavelength_source"] = "user"
        p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio = l1, l2, ratio
    elif p.wavelength_angstrom is not None:
        p.meta.setdefault("wavelength_source", "file")
    if require and p.wavelength_angstrom is None:
        hint = ""
        prms = sorted(q.name for q in path.parent.glob("*")
                      if q.suffix.lower() in (".prm", ".instprm", ".iparm"))
        if prms:
            hint = f" (instrument file(s) next to it: {', '.join(prms)}; pass instrument=)"
        raise MissingWavelengthError("the file states no wavelength; pass wavelength_angstrom= "
                                     "(Å or a tube name such as 'CuKa')" + hint, path=path)
    return p


_UNEXPECTED = (ValueError, LookupError, TypeError, OverflowError, UnicodeError,
               ET.ParseError, OSError, RuntimeError, AttributeError, ZeroDivisionError,
               MemoryError)


@contextlib.contextmanager
def _reading(path: Path | None, what: str, error: type[XtalError] = PatternFormatError):
    """Turn an unexpected low-level exception into an XtalError naming the file."""
    try:
        yield
    except XtalError:
        raise
    except _UNEXPECTED as exc:
        raise error(f"cannot read as {what}: {type(exc).__name__}: {exc}", path=path) from None


def read_pattern(path: str | Path, *, wavelength_angstrom: Any = None, force: bool = False,
                 fmt: str | None = None, require_wavelength: bool = False,
                 instrument: str | Path | None = None, axis: str | None = None,
                 bank: int | None = None, frame: int | None = None) -> Pattern:
    """Read one measured pattern.

    fmt: "columns" | "gsas" | "xrdml" | "chi" | "nexus" (None: detect by content/extension).
    wavelength_angstrom: Å or tube name; checked against the file's (see module doc).
    instrument: GSAS .prm/.instprm giving λ when the data file has none.
    axis: the x axis of a headerless column file ("two_theta_deg" default, "q_inv_angstrom",
    "d_angstrom"); a contradiction with the file's declared axis raises.
    bank: GSAS bank number; frame: frame of a stacked NXdata, or scan of an XRDML file.
    """
    path = Path(path)
    if axis is not None and axis not in AXES:
        raise PatternError(f"unknown axis {axis!r}; use one of {AXES}", path=path)
    data = _read_bytes(path)
    if not data.strip():
        raise EmptyPatternError("file is empty", path=path)
    kind = fmt or _sniff(path, data)
    with _reading(path, kind):
        if kind == "nexus":
            p = _read_nexus(path, axis=axis, frame=frame)
        elif kind == "netcdf":
            raise PatternFormatError("a netCDF file is a series: use read_series", path=path)
        else:
            text = _decode_text(data, path)
            if kind == "xrdml":
                p = _read_xrdml(path, text, axis=axis, scan=frame or 0)
            elif kind == "gsas":
                p = _read_gsas(path, text, axis=axis, bank=bank)
            elif kind == "chi":
                p = _read_chi(path, text, axis=axis)
            elif kind in ("columns", "xy", "xye", "csv", "pyfai", "dat", "txt"):
                p = _read_columns(path, text, axis=axis)
            else:
                raise PatternFormatError(f"unknown format {kind!r}", path=path)
    if instrument is not None:
        l1, l2, r = read_gsas_instprm_wavelength(instrument)
        if p.wavelength_angstrom is not None and abs(l1 - p.wavelength_angstrom) > \
                WAVELENGTH_RTOL * p.wavelength_angstrom and not force:
            raise WavelengthMismatchError(f"instrument file {instrument} gives {l1} Å, the data "
                                          f"file {p.wavelength_angstrom} Å", path=path)
        p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio = l1, l2, r
        p.meta["wavelength_source"] = f"instrument file {Path(instrument).name}"
        p.meta["instrument"] = str(instrument)
    return _apply_wavelength(p, wavelength_angstrom, force, require_wavelength, path)


# =============================================================================
# Writers
# =============================================================================
def atomic_write(path: str | Path, writer_fn: Callable[[Path], Any], *, overwrite: bool = False,
                 protected: Iterable[str | Path | None] = ()) -> Path:
    """Call ``writer_fn(tmp_path)`` on a temp file in the target directory, then os.replace.

    Raises `OverwriteError` if ``path`` is one of ``protected`` (input files) or exists and
    ``overwrite`` is False.  On any error the temp file is removed, ``path`` untouched.
    """
    target = check_writable(path, overwrite=overwrite, protected=tuple(p for p in protected if p))
    with atomic_path(target) as tmp:
        writer_fn(tmp)
    return target


def _fmt_float(v: float) -> str:
    return repr(float(v))


def _json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


def _header_lines(p: Pattern) -> list[str]:
    out = ["xtal pattern"]
    for key in ("wavelength_angstrom", "wavelength2_angstrom", "ka2_ratio", "temperature_c",
                "time_s", "frame"):
        v = getattr(p, key)
        if v is not None:
            out.append(f"{key} = {_fmt_float(v) if key != 'frame' else int(v)}")
    if p.wavelength_angstrom is None:
        out.append("wavelength unknown (none stated in the source)")
    out.append(f"axis = {p.axis}")
    if p.source:
        out.append(f"original_source = {p.source}")
    meta = {k: v for k, v in p.meta.items() if k not in ("header",)}
    out.append("meta = " + json.dumps(_json_safe(meta), ensure_ascii=True))
    return out


def _write_text_pattern(p: Pattern, tmp: Path, fmt: str) -> None:
    cols = [p.x.tolist(), p.intensity.tolist()]
    names = [p.axis, "intensity"]
    if fmt in ("xye", "csv") and p.sigma is not None:
        cols.append(p.sigma.tolist())
        names.append("sigma")
    sep = "," if fmt == "csv" else " "
    buf = io.StringIO()
    for h in _header_lines(p):
        buf.write(f"# {h}\n")
    buf.write(("" if fmt == "csv" else "# ") + sep.join(names) + "\n")
    for row in zip(*cols):
        buf.write(sep.join(repr(v) for v in row) + "\n")
    tmp.write_text(buf.getvalue(), encoding="utf-8")


_AXIS_UNITS = {"two_theta_deg": "degree", "q_inv_angstrom": "1/angstrom", "d_angstrom": "angstrom"}


def _write_nxdata(tmp: Path, x: np.ndarray, axis: str, Y: np.ndarray, E: np.ndarray | None,
                  wl: tuple, per_frame: dict, strings: dict, attrs: dict, meta: dict | None
                  ) -> None:
    import h5py
    with h5py.File(tmp, "w") as f:
        f.attrs["default"] = "entry"
        f.attrs["creator"] = "xtal"
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        e.attrs["default"] = "data"
        d = e.create_group("data")
        d.attrs["NX_class"] = "NXdata"
        d.attrs["signal"] = "intensity"
        d.create_dataset("intensity", data=Y)
        if E is not None:
            d.create_dataset("intensity_errors", data=E)
        if Y.ndim == 2:
            d.attrs["axes"] = np.array(["frame", axis], dtype=h5py.string_dtype())
            d.create_dataset("frame", data=np.arange(Y.shape[0]))
            d.attrs["frame_indices"] = 0
        else:
            d.attrs["axes"] = np.array([axis], dtype=h5py.string_dtype())
        d.attrs[f"{axis}_indices"] = Y.ndim - 1
        xd = d.create_dataset(axis, data=x)
        xd.attrs["units"] = _AXIS_UNITS[axis]
        for name, (vals, units) in per_frame.items():
            ds = d.create_dataset(name, data=np.asarray(vals, float))
            if units:
                ds.attrs["units"] = units
            if Y.ndim == 2:
                d.attrs[f"{name}_indices"] = 0
        for name, vals in strings.items():
            d.create_dataset(name, data=np.array([str(v) for v in vals],
                                                 dtype=h5py.string_dtype()))
        if attrs:
            d.attrs["xtal_attrs"] = json.dumps(_json_safe(attrs))
        if meta is not None:
            d.attrs["xtal_meta"] = json.dumps(_json_safe(meta))
        l1, l2, r = wl
        if l1 is not None:
            ins = e.create_group("instrument")
            ins.attrs["NX_class"] = "NXinstrument"
            mono = ins.create_group("monochromator")
            mono.attrs["NX_class"] = "NXmonochromator"
            w = mono.create_dataset("wavelength", data=float(l1))
            w.attrs["units"] = "angstrom"
            if l2 is not None:
                w2 = mono.create_dataset("wavelength2", data=float(l2))
                w2.attrs["units"] = "angstrom"
                if r is not None:
                    mono.create_dataset("ka2_ratio", data=float(r))


_WRITE_FMTS = {".xye": "xye", ".xy": "xy", ".csv": "csv", ".dat": "xye", ".txt": "xye",
               ".h5": "nexus", ".hdf5": "nexus", ".nxs": "nexus", ".hdf": "nexus",
               ".nc": "netcdf"}


def write_pattern(pattern: Pattern, path: str | Path, *, fmt: str | None = None,
                  overwrite: bool = False) -> Path:
    """Write one pattern atomically: fmt "xye" (x y σ), "xy" (x y), "csv", "nexus" (.h5/.nxs).

    Text headers state λ, λ2, ratio, T (°C), axis and meta so that `read_pattern` reads
    them back.  Never overwrites ``pattern.source``; an existing file needs overwrite=True.
    """
    path = Path(path)
    kind = fmt or _WRITE_FMTS.get(path.suffix.lower())
    if kind not in ("xye", "xy", "csv", "nexus"):
        raise PatternFormatError(f"cannot write a pattern as {kind or path.suffix!r}; use "
                                 ".xye, .xy, .csv or .h5/.nxs", path=path)
    protected = [pattern.source, pattern.meta.get("original_source")]

    def _writer(tmp: Path) -> None:
        if kind == "nexus":
            per = {}
            if pattern.temperature_c is not None:
                per["temperature_c"] = ([pattern.temperature_c], "degC")
            if pattern.time_s is not None:
                per["time_s"] = ([pattern.time_s], "s")
            meta = {k: v for k, v in pattern.meta.items() if k != "header"}
            if pattern.frame is not None:
                meta["frame"] = pattern.frame
            _write_nxdata(tmp, pattern.x, pattern.axis, pattern.intensity, pattern.sigma,
                          (pattern.wavelength_angstrom, pattern.wavelength2_angstrom,
                           pattern.ka2_ratio), per, {}, {}, meta)
        else:
            _write_text_pattern(pattern, tmp, kind)

    return atomic_write(path, _writer, overwrite=overwrite, protected=protected)


# =============================================================================
# Thermal series
# =============================================================================
DEFAULT_HOLD_TOLERANCE_C = 0.5
GRID_RTOL = 1e-6

_T_IN_NAME = re.compile(
    r"(?:^|(?<=[_\-\s.]))(?:t|temp)?[_=]?(?P<v>[-+m]?\d+(?:[.p]\d+)?)\s*(?P<u>deg_?c|degc|°c|c|k)"
    r"(?=$|[_\-\s.])", re.I)


def natural_sort_key(s: str | Path) -> list:
    """Sort key that orders 'f2' before 'f10' (acquisition order of numbered frames)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def temperature_from_name(name: str) -> float | None:
    """°C from a file name token such as ``T153.5C``, ``25K``, ``T-10C``, ``T153p5C``."""
    stem = Path(name).name
    for suffix in PATTERN_EXTENSIONS:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    hits = list(_T_IN_NAME.finditer(stem))
    if not hits:
        return None
    m = hits[-1]
    v = float(m.group("v").replace("p", ".").replace("m", "-"))
    return temperature_to_c(v, "K" if m.group("u").lower() == "k" else "C")[0]


def _frame_number(path: Path) -> int | None:
    stem = _T_IN_NAME.sub("", Path(path).stem)
    nums = re.findall(r"\d+", stem)
    return int(nums[-1]) if nums else None


def label_segments(temperature_c: Sequence[float], tolerance_c: float = DEFAULT_HOLD_TOLERANCE_C,
                   min_hold_frames: int = 3) -> list[str]:
    """Label each frame "heating", "cooling", "isothermal" or "unknown" (no temperature).

    A hold is a run of at least ``min_hold_frames`` consecutive frames whose temperatures
    span no more than ``tolerance_c`` (°C).  Other frames take the sign of the change from
    the previous frame with a known temperature (the first frame: to the next one); a
    change within ±tolerance_c is "isothermal".  The order of frames is never changed.
    """
    t = np.asarray(temperature_c, dtype=float)
    n = t.size
    labels = ["unknown"] * n
    i = 0
    while i < n:
        if not np.isfinite(t[i]):
            i += 1
            continue
        j = i
        lo = hi = t[i]
        while j + 1 < n and np.isfinite(t[j + 1]) and max(hi, t[j + 1]) - min(lo, t[j + 1]) \
                <= tolerance_c:
            j += 1
            lo, hi = min(lo, t[j]), max(hi, t[j])
        if j - i + 1 >= min_hold_frames:
            for k in range(i, j + 1):
                labels[k] = "isothermal"
            i = j + 1
            continue
        prev = [k for k in range(i - 1, -1, -1) if np.isfinite(t[k])][:1]
        nxt = [k for k in range(i + 1, n) if np.isfinite(t[k])][:1]
        if prev:
            dt = t[i] - t[prev[0]]
        elif nxt:
            dt = t[nxt[0]] - t[i]
        else:
            dt = 0.0
        labels[i] = "heating" if dt > tolerance_c else "cooling" if dt < -tolerance_c \
            else "isothermal"
        i += 1
    return labels


# --- temperature logs ----------------------------------------------------------
_LOG_FILE_COLS = ("file", "filename", "fname", "path", "name", "pattern", "image", "datafile",
                  "imagefile", "scanfile", "filepath")
_LOG_FRAME_COLS = ("frame", "scan", "run", "index", "idx", "frameno", "scanno", "framenumber",
                   "scannumber", "number", "no", "n", "frameindex", "scanid", "")


@dataclass
class _LogRow:
    key: str
    temperature_c: float | None
    time_s: float | None


def _read_temperature_log(path: Path, temperature_unit: str | None) -> tuple[list[_LogRow], str,
                                                                              str | None]:
    """Rows, key kind ("file" | "frame" | "order") and a unit note."""
    text = _decode_text(_read_bytes(path), path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    comments = [ln for ln in lines if ln.lstrip().startswith("#")]
    lines = [ln for ln in lines if not ln.lstrip().startswith("#")]
    if len(lines) < 2:
        raise SeriesError("temperature log has no header row and data rows", path=path)
    delim = max((",", ";", "\t"), key=lambda d: lines[0].count(d))
    if lines[0].count(delim) == 0:
        rows = [ln.split() for ln in lines]
    else:
        rows = list(csv.reader(lines, delimiter=delim))
    header = [h.strip() for h in rows[0]]
    body = [[c.strip() for c in r] for r in rows[1:] if any(c.strip() for c in r)]
    norm = [_norm_key(h)[0] for h in header]
    units = [_norm_key(h)[1] for h in header]
    fcol = next((i for i, k in enumerate(norm) if k in _LOG_FILE_COLS), None)
    kind = "file"
    if fcol is None:
        fcol = next((i for i, k in enumerate(norm) if k in _LOG_FRAME_COLS), None)
        kind = "frame"
    tcands = [i for i, k in enumerate(norm) if k in _T_KEYS]
    tcands.sort(key=lambda i: norm[i] in ("setpoint", "settemperature"))   # measured first
    tcol = tcands[0] if tcands else None
    if tcol is None:
        tcol = next((i for i, k in enumerate(norm) if k.startswith("temp") or k.startswith("t(")),
                    None)
    if tcol is None:
        raise SeriesError(f"temperature log has no temperature column (columns: {header})",
                          path=path)
    timecol = next((i for i, k in enumerate(norm) if k in _TIME_KEYS), None)
    if fcol is None:
        kind = "order"
    unit = temperature_unit or units[tcol]
    if unit is None:
        low = header[tcol].lower()
        if "°c" in low or "degc" in low or "celsius" in low:
            unit = "C"
        elif "kelvin" in low:
            unit = "K"
    if unit is None:
        for c in comments:
            m = re.search(r"\b(kelvin|celsius|°c|degc|deg c|k)\b", c, re.I)
            if m and re.search(r"temp|\bT\b", c, re.I):
                unit = "K" if m.group(1).lower() in ("k", "kelvin") else "C"
    out: list[_LogRow] = []
    raw_t: list[float | None] = []
    for r_i, r in enumerate(body, start=2):
        if len(r) <= max(tcol, fcol or 0):
            raise SeriesError(f"row {r_i}: too few columns", path=path)
        try:
            tv = float(r[tcol]) if r[tcol] not in ("", "nan", "NaN", "NA") else None
        except ValueError:
            raise SeriesError(f"row {r_i}: temperature {r[tcol]!r} is not a number",
                              path=path) from None
        if tv is not None and not math.isfinite(tv):
            tv = None
        raw_t.append(tv)
        tm = None
        if timecol is not None and timecol < len(r) and r[timecol]:
            with contextlib.suppress(ValueError):
                tm = float(r[timecol]) * _TIME_UNITS.get((units[timecol] or "s").lower(), 1.0)
        out.append(_LogRow(key=r[fcol] if fcol is not None else str(r_i - 2),
                           temperature_c=None, time_s=tm))
    note = None
    finite = [v for v in raw_t if v is not None]
    if unit is None:
        if finite and min(finite) > 200:
            unit = "K"
            note = (f"log {path.name}: temperature unit not stated; all values > 200 so they "
                    "were taken as K (pass temperature_unit='C' if they are °C)")
        else:
            unit = "C"
            note = (f"log {path.name}: temperature unit not stated; taken as °C (pass "
                    "temperature_unit='K' if they are kelvin)")
    for row, tv in zip(out, raw_t):
        row.temperature_c = None if tv is None else temperature_to_c(tv, unit)[0]
    return out, kind, note


def _match_log(frames: list[Path], rows: list[_LogRow], kind: str, log: Path
               ) -> list[_LogRow]:
    matched: list[_LogRow | None] = []
    if kind == "order":
        if len(rows) != len(frames):
            raise SeriesError(f"log has no file/frame column and {len(rows)} rows for "
                              f"{len(frames)} frames", path=log)
        return rows
    index: dict[str, list[_LogRow]] = {}
    if kind == "file" and rows and all(re.fullmatch(r"\s*\d+\s*", r.key) for r in rows):
        kind = "frame"                 # a "file" column holding frame numbers
    if kind == "file":
        for r in rows:
            for k in {Path(r.key).name.lower(), Path(r.key).stem.lower(), r.key.lower()}:
                index.setdefault(k, []).append(r)
        for f in frames:
            hit = index.get(f.name.lower()) or index.get(f.stem.lower())
            matched.append(hit[0] if hit and len(hit) == 1 else None)
            if hit and len(hit) > 1:
                raise SeriesError(f"frame {f.name} appears {len(hit)} times in the log", path=log)
    else:
        for r in rows:
            with contextlib.suppress(ValueError, OverflowError):
                index.setdefault(str(int(float(r.key))), []).append(r)
        for f in frames:
            num = _frame_number(f)
            hit = index.get(str(num)) if num is not None else None
            if hit and len(hit) > 1:
                raise SeriesError(f"frame number {num} appears {len(hit)} times in the log",
                                  path=log)
            matched.append(hit[0] if hit else None)
    missing = [f.name for f, m in zip(frames, matched) if m is None]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise SeriesError(f"{len(missing)} frame(s) have no row in the temperature log: "
                          f"{', '.join(missing[:10])}{more}", path=log)
    return matched  # type: ignore[return-value]


# --- frame sources ---------------------------------------------------------------
def list_frames(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (list, tuple)):
        files = [Path(s) for s in source]
        desc = "the given list"
    else:
        s = str(source)
        p = Path(s)
        if p.is_dir():
            files = [q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                     and q.suffix.lower() in PATTERN_EXTENSIONS
                     and not _looks_like_log(q)]
            desc = f"directory {p}"
        elif any(c in s for c in "*?["):
            files = [Path(q) for q in _glob.glob(s) if Path(q).is_file()]
            desc = f"glob {s}"
        elif p.is_file():
            files = [p]
            desc = str(p)
        else:
            raise SeriesError("no such file, directory or glob match", path=s)
        files.sort(key=lambda q: natural_sort_key(q.name))
    if not files:
        raise SeriesError(f"no pattern files in {desc}", path=str(source) if not isinstance(
            source, (list, tuple)) else None)
    return files


def _looks_like_log(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    if re.search(r"(log|temp|temperature|meta)", path.stem, re.I):
        return True
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with path.open(encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        toks = [_norm_key(t)[0] for t in re.split(r"[,;\t]", first)]
        return any(t in _LOG_FILE_COLS for t in toks)
    return False


def _is_stack_file(path: Path) -> bool:
    with contextlib.suppress(OSError):
        with path.open("rb") as fh:
            head = fh.read(8)
        return head.startswith(_HDF5_MAGIC) or head[:3] == b"CDF"
    return False


def iter_series_frames(source: str | Path | Sequence[str | Path], *,
                       temperatures: Sequence[float] | str | Path | None = None,
                       temperature_unit: str | None = None,
                       wavelength_angstrom: Any = None, force: bool = False,
                       instrument: str | Path | None = None, fmt: str | None = None,
                       axis: str | None = None, notes: list | None = None
                       ) -> Iterator[Pattern]:
    """Yield the frames of a series one at a time, in acquisition order, as `Pattern`s.

    source: a directory (pattern files, natural sort of names), a glob, a list of files
    (order kept), or one stacked HDF5/NeXus file.  Temperatures come from
    ``temperatures`` (a sequence in °C, or a CSV log path), else each file's header, else
    its name (``T153.5C``, ``25K``).  ``frame`` is the position in the series;
    ``meta["temperature_source"]`` says where T came from.  Each frame's λ is checked
    against ``wavelength_angstrom`` as in `read_pattern`.
    """
    notes = notes if notes is not None else []
    if not isinstance(source, (list, tuple)) and Path(str(source)).is_file() and \
            _is_stack_file(Path(str(source))):
        path = Path(str(source))
        if _is_netcdf(path):
            da = _read_netcdf_series(path, lazy=True)  # one frame at a time from the file
            for i in range(da.sizes["frame"]):
                yield series_frame(da, i)
            return
        with _reading(path, "NeXus series"):
            x, Y2, E2, ax, md, extra, ndim = _nx_read(path, axis=axis)
        tvals = _given_temperatures(temperatures, Y2.shape[0], temperature_unit, path, notes)
        for i in range(Y2.shape[0]):
            p = _nx_pattern(path, x, Y2, E2, ax, md, extra, i)
            p.frame = i
            p.meta["source_frame"] = i
            if tvals is not None:
                p.temperature_c = tvals[i]
                p.meta["temperature_source"] = "given"
            elif p.temperature_c is not None:
                p.meta["temperature_source"] = "file"
            p.meta["original_source"] = extra["source"][i] if "source" in extra \
                else f"{path}#{i}"
            if "temperature_source" in extra:
                p.meta["temperature_source"] = extra["temperature_source"][i]
            yield _apply_wavelength(p, wavelength_angstrom, force, False, path)
        return
    files = list_frames(source)
    log_rows: list[_LogRow] | None = None
    tvals = None
    if isinstance(temperatures, (str, Path)):
        log = Path(temperatures)
        with _reading(log, "temperature log", SeriesError):
            rows, kind, note = _read_temperature_log(log, temperature_unit)
            log_rows = _match_log(files, rows, kind, log)
        if note:
            notes.append(note)
        if len(rows) > len(files):
            notes.append(f"log {log.name}: {len(rows) - len(files)} row(s) match no frame file "
                         "(ignored)")
    else:
        tvals = _given_temperatures(temperatures, len(files), temperature_unit, None, notes)
    for i, f in enumerate(files):
        p = read_pattern(f, wavelength_angstrom=wavelength_angstrom, force=force, fmt=fmt,
                         instrument=instrument, axis=axis)
        p.frame = i
        if log_rows is not None:
            row = log_rows[i]
            if p.temperature_c is not None:
                p.meta["temperature_header_c"] = p.temperature_c
            p.temperature_c = row.temperature_c
            p.meta["temperature_source"] = "log"
            if row.time_s is not None:
                p.time_s = row.time_s
        elif tvals is not None:
            p.temperature_c = tvals[i]
            p.meta["temperature_source"] = "given"
        elif p.temperature_c is not None:
            p.meta["temperature_source"] = "header"
            t_name = temperature_from_name(f.name)
            if t_name is not None and abs(t_name - p.temperature_c) > 1.0:
                p.meta["temperature_from_name_c"] = t_name
                notes.append(f"{f.name}: header T {p.temperature_c:.2f} °C differs from the "
                             f"name's {t_name:.2f} °C; header used")
        else:
            t_name = temperature_from_name(f.name)
            if t_name is not None:
                p.temperature_c = t_name
                p.meta["temperature_source"] = "file name"
        yield p


def _given_temperatures(temperatures, n: int, unit: str | None, path, notes: list
                        ) -> list[float] | None:
    if temperatures is None:
        return None
    if isinstance(temperatures, (str, Path)):
        raise SeriesError("a temperature log cannot be combined with a stacked file; give a "
                          "sequence of temperatures", path=path)
    vals = [float(v) for v in temperatures]
    if len(vals) != n:
        raise SeriesError(f"{len(vals)} temperatures given for {n} frames", path=path)
    if unit is not None:
        vals = [temperature_to_c(v, unit)[0] for v in vals]
    return vals


def _iter_table_frames(path: Path, *, wavelength_angstrom, force, axis, notes
                       ) -> list[Pattern] | None:
    """Frames of a wide text table (x column + one intensity column per frame), or None."""
    text = _decode_text(_read_bytes(path), path)
    text, block = _strip_block_comments(text, path)
    header, rows, names = list(block), [], None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        toks = [t for t in _SPLIT_RE.split(line.lstrip("#!;' ")) if t]
        if line.startswith(_COMMENT_CHARS) or (not rows and toks and not _is_number(toks[0])):
            header.append(line)
            if toks and not any(_is_number(t) for t in toks[:1]) and "=" not in line and \
                    ":" not in line and len(toks) >= 3:
                names = toks
            continue
        rows.append((lineno, line))
    if not rows:
        raise EmptyPatternError("no numeric data lines", path=path)
    data = _parse_number_rows(rows, path, False)
    ncol = data.shape[1]
    sigma_like = names is not None and len(names) >= 3 and re.fullmatch(
        r"(sigma.*|e|esd|err.*|error|dy|s|σ.*)", names[2].lower())
    if ncol < 3 or (ncol == 3 and (names is None or sigma_like)):
        return None
    hdr = parse_header_lines(header)
    file_axis = hdr.axis
    if names and len(names) == ncol:
        ax = _axis_from_label(names[0])
        if ax and not math.isnan(ax[1]):
            file_axis = ax[0]
            data[:, 0] *= ax[1]
    the_axis = axis or file_axis or "two_theta_deg"
    frames = []
    for j in range(1, ncol):
        label = names[j] if names and len(names) == ncol else f"column {j + 1}"
        h = replace(hdr, raw=dict(hdr.raw), temperature_c=temperature_from_name(label),
                    temperature_note=None)
        p = _make_pattern(path, data[:, 0], data[:, j], None, the_axis, h, "table",
                          {"column": label})
        p.frame = j - 1
        if p.temperature_c is not None:
            p.meta["temperature_source"] = "column name"
        p.meta["original_source"] = f"{path}#{label}"
        frames.append(_apply_wavelength(p, wavelength_angstrom, force, False, path))
    return frames


def _is_netcdf(path: Path) -> bool:
    """netCDF by extension or by the classic magic bytes (read only the first bytes)."""
    with open(path, "rb") as fh:
        magic = fh.read(3)
    return magic == b"CDF" or path.suffix.lower() in (".nc", ".nc4", ".cdf")


def _read_netcdf_series(path: Path, *, lazy: bool = False):
    """A series written by `write_series` (netCDF). ``lazy``: leave the intensities in the file
    (frames are read when indexed), so that memory does not grow with the number of frames."""
    import xarray as xr
    with _reading(path, "a netCDF series", SeriesError):
        if lazy:
            da = xr.open_dataarray(path)
        else:
            with xr.open_dataarray(path) as da:
                da = da.load()
    if da.ndim != 2 or da.dims[0] != "frame" or da.dims[1] not in AXES:
        raise SeriesError(f"netCDF variable has dims {da.dims}; need ('frame', axis)", path=path)
    n = da.sizes["frame"]
    if "temperature_c" not in da.coords:
        da = da.assign_coords(temperature_c=("frame", np.full(n, np.nan)))
    if "segment" not in da.coords:
        da = da.assign_coords(segment=("frame", label_segments(
            da.temperature_c.values, float(da.attrs.get("segment_tolerance_c",
                                                         DEFAULT_HOLD_TOLERANCE_C)))))
    if "source" not in da.coords:
        da = da.assign_coords(source=("frame", [f"{path}#{i}" for i in range(n)]))
    return da


def series_frame(da, i: int) -> Pattern:
    """Frame ``i`` of a series DataArray as a `Pattern` (λ and T from coords/attrs)."""
    axis = da.dims[1]
    c = da.coords
    def _opt(name):
        if name in c:
            v = float(c[name].values[i])
            return v if math.isfinite(v) else None
        return None
    sig = np.asarray(c["sigma"].values[i], float) if "sigma" in c else None
    return Pattern(x=np.asarray(c[axis].values, float), intensity=np.asarray(da.values[i], float),
                   sigma=sig, axis=axis,
                   wavelength_angstrom=da.attrs.get("wavelength_angstrom"),
                   wavelength2_angstrom=da.attrs.get("wavelength2_angstrom"),
                   ka2_ratio=da.attrs.get("ka2_ratio"),
                   temperature_c=_opt("temperature_c"), time_s=_opt("time_s"),
                   source=str(c["source"].values[i]) if "source" in c else None, frame=i,
                   meta={"segment": str(c["segment"].values[i])} if "segment" in c else {})


def _same_grid(x: np.ndarray, x0: np.ndarray) -> bool:
    if x.shape != x0.shape:
        return False
    step = float(np.median(np.abs(np.diff(x0)))) if x0.size > 1 else 1.0
    return bool(np.max(np.abs(x - x0)) <= 1e-4 * step)


def read_series(source: str | Path | Sequence[str | Path], *,
                temperatures: Sequence[float] | str | Path | None = None,
                temperature_unit: str | None = None, wavelength_angstrom: Any = None,
                force: bool = False, instrument: str | Path | None = None,
                fmt: str | None = None, axis: str | None = None, regrid: bool = False,
                hold_tolerance_c: float = DEFAULT_HOLD_TOLERANCE_C, min_hold_frames: int = 3,
                require_wavelength: bool = False, lazy: bool = False):
    """A thermal series as an ``xarray.DataArray`` (dims ``("frame", axis)``, name "intensity").

    source: directory / glob / list of frame files (acquisition order: natural sort of
    names, or the list order — never sorted by temperature), a stacked NeXus/HDF5 file, a
    netCDF written by `write_series`, or one wide text table (x + one column per frame).
    Coords per frame: ``temperature_c`` (NaN if unknown), ``time_s`` (when known: header,
    log, or start timestamps relative to the first frame), ``segment`` (see
    `label_segments`, tolerance ``hold_tolerance_c`` °C), ``source``,
    ``temperature_source``; ``sigma`` (frame × x) when every frame has σ.
    Attrs: ``wavelength_angstrom`` (+ ``wavelength2_angstrom``, ``ka2_ratio``) when known,
    ``interpolation`` ("none" or what was done), ``segment_tolerance_c``, notes.
    Frames on different grids raise `SeriesError` unless ``regrid=True`` (linear
    interpolation onto frame 0's grid within the common range).  Frames with different λ
    raise `SeriesError` naming the files.  ``lazy=True`` leaves a netCDF series' intensities in the
    file (read per frame when indexed; for very long series).
    """
    import xarray as xr
    notes: list[str] = []
    src_path = None if isinstance(source, (list, tuple)) else Path(str(source))
    stored_attrs: dict = {}
    if src_path is not None and src_path.is_file() and _is_stack_file(src_path) and _is_netcdf(src_path):
        da = _read_netcdf_series(src_path, lazy=lazy)
        da.attrs["series_file"] = str(src_path)
        return da
    frames: list[Pattern] | None = None
    if src_path is not None and src_path.is_file() and not _is_stack_file(src_path):
        if _sniff(src_path, _read_bytes(src_path)[:4096]) == "columns":
            frames = _iter_table_frames(src_path, wavelength_angstrom=wavelength_angstrom,
                                        force=force, axis=axis, notes=notes)
            if frames is not None and temperatures is not None:
                tv = _given_temperatures(temperatures, len(frames), temperature_unit, src_path,
                                         notes)
                for p, t in zip(frames, tv):
                    p.temperature_c = t
                    p.meta["temperature_source"] = "given"
    if frames is None:
        frames = list(iter_series_frames(
            source, temperatures=temperatures, temperature_unit=temperature_unit,
            wavelength_angstrom=wavelength_angstrom, force=force, instrument=instrument,
            fmt=fmt, axis=axis, notes=notes))
    if src_path is not None and src_path.is_file() and _is_stack_file(src_path):
        with contextlib.suppress(Exception):
            _, _, _, _, _, extra, _ = _nx_read(src_path, axis=axis)
            stored_attrs = extra.get("xtal_attrs", {}) or {}
    if not frames:
        raise SeriesError("series has no frames", path=src_path)
    names = [p.meta.get("original_source") or p.source or f"frame {i}"
             for i, p in enumerate(frames)]
    # axis and wavelength consistency
    axes = {p.axis for p in frames}
    if len(axes) > 1:
        raise SeriesError(f"frames are on different axes {sorted(axes)}", path=src_path)
    the_axis = frames[0].axis
    ref = next((i for i, p in enumerate(frames) if p.wavelength_angstrom is not None), None)
    if ref is not None:
        l0 = frames[ref].wavelength_angstrom
        for i, p in enumerate(frames):
            if p.wavelength_angstrom is None:
                raise SeriesError(f"{names[i]} states no wavelength while {names[ref]} has "
                                  f"{l0} Å; pass wavelength_angstrom=", path=src_path)
            if abs(p.wavelength_angstrom - l0) > WAVELENGTH_RTOL * l0:
                raise SeriesError(f"frames have different wavelengths: {names[ref]} {l0} Å, "
                                  f"{names[i]} {p.wavelength_angstrom} Å", path=src_path)
    elif require_wavelength:
        raise MissingWavelengthError("no frame states a wavelength; pass wavelength_angstrom=",
                                     path=src_path)
    else:
        notes.append("no frame states a wavelength (d/Q conversions need wavelength_angstrom=)")
    # grids
    x0 = frames[0].x
    differ = [i for i, p in enumerate(frames) if not _same_grid(p.x, x0)]
    if differ and not regrid:
        raise SeriesError(f"{len(differ)} frame(s) are on a different x grid from {names[0]} "
                          f"(first: {names[differ[0]]}); pass regrid=True to interpolate "
                          "linearly onto a common grid", path=src_path)
    have_sigma = all(p.sigma is not None for p in frames)
    if differ:
        lo = max(float(p.x[0]) for p in frames)
        hi = min(float(p.x[-1]) for p in frames)
        grid = x0[(x0 >= lo) & (x0 <= hi)]
        if grid.size < 2:
            raise SeriesError("frames share no common x range to interpolate onto",
                              path=src_path)
        Y = np.vstack([np.interp(grid, p.x, p.intensity) for p in frames])
        S = np.vstack([np.interp(grid, p.x, p.sigma) for p in frames]) if have_sigma else None
        interpolation = (f"linear (numpy.interp) of {len(differ)} frame(s) "
                         f"[{', '.join(Path(names[i]).name for i in differ[:10])}] onto the grid "
                         f"of {Path(names[0]).name} restricted to the common range "
                         f"{lo:g}–{hi:g} ({grid.size} points); sigma interpolated linearly")
    else:
        grid = x0
        Y = np.vstack([p.intensity for p in frames])
        S = np.vstack([p.sigma for p in frames]) if have_sigma else None
        interpolation = stored_attrs.get("interpolation", "none")
    T = np.array([np.nan if p.temperature_c is None else p.temperature_c for p in frames])
    times = [p.time_s for p in frames]
    time_origin = None
    if any(t is None for t in times):
        stamps = [p.meta.get("timestamp") for p in frames]
        if all(stamps):
            with contextlib.suppress(ValueError, TypeError):
                dts = [_dt.datetime.fromisoformat(s) for s in stamps]
                times = [(d - dts[0]).total_seconds() for d in dts]
                time_origin = stamps[0]
    segments = label_segments(T, hold_tolerance_c, min_hold_frames)
    coords: dict = {
        "frame": np.arange(len(frames)),
        the_axis: grid,
        "temperature_c": ("frame", T),
        "segment": ("frame", segments),
        "source": ("frame", [str(n) for n in names]),
        "temperature_source": ("frame", [str(p.meta.get("temperature_source", "none"))
                                         for p in frames]),
    }
    if any(t is not None for t in times):
        coords["time_s"] = ("frame", np.array([np.nan if t is None else t for t in times]))
    if S is not None:
        coords["sigma"] = (("frame", the_axis), S)
    unit_notes = sorted({p.meta["temperature_unit_note"] for p in frames
                         if p.meta.get("temperature_unit_note")} |
                        {n for n in notes if "unit" in n})
    attrs: dict = {"axis": the_axis, "interpolation": interpolation,
                   "segment_tolerance_c": float(hold_tolerance_c),
                   "segment_min_hold_frames": int(min_hold_frames),
                   "n_frames": len(frames)}
    if ref is not None:
        f0 = frames[ref]
        attrs["wavelength_angstrom"] = f0.wavelength_angstrom
        if f0.wavelength2_angstrom is not None:
            attrs["wavelength2_angstrom"] = f0.wavelength2_angstrom
            if f0.ka2_ratio is not None:
                attrs["ka2_ratio"] = f0.ka2_ratio
    if unit_notes:
        attrs["temperature_unit_note"] = "; ".join(unit_notes)
    other = [n for n in notes if "unit" not in n]
    if other:
        attrs["notes"] = "; ".join(other)
    if time_origin:
        attrs["time_origin"] = time_origin
    if np.isnan(T).any():
        attrs["frames_without_temperature"] = int(np.isnan(T).sum())
    attrs["frame_meta_json"] = json.dumps(_json_safe(
        [{k: v for k, v in p.meta.items() if k != "header"} for p in frames]))
    for k, v in stored_attrs.items():          # attrs written by write_series (HDF5)
        attrs.setdefault(k, v)
    if src_path is not None and src_path.is_file():
        attrs["series_file"] = str(src_path)
    return xr.DataArray(Y, dims=("frame", the_axis), coords=coords, name="intensity",
                        attrs=attrs)


def _netcdf_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, (dict, list, tuple)):
            out[k] = json.dumps(_json_safe(v))
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
        else:
            out[k] = v
    return out


def write_series(da, path: str | Path, *, fmt: str | None = None, overwrite: bool = False
                 ) -> Path:
    """Write a series DataArray atomically as netCDF (.nc, netcdf4 engine) or NeXus HDF5 (.h5).

    Refuses to overwrite any of the series' source files (coord ``source``) or an existing
    file unless ``overwrite=True``.  `read_series` reads both back.
    """
    path = Path(path)
    kind = fmt or {".nc": "netcdf", ".nc4": "netcdf", ".h5": "nexus", ".hdf5": "nexus",
                   ".nxs": "nexus", ".hdf": "nexus"}.get(path.suffix.lower())
    if kind not in ("netcdf", "nexus"):
        raise PatternFormatError("series are written as .nc (netCDF) or .h5/.nxs (NeXus)",
                                 path=path)
    if da.ndim != 2 or da.dims[0] != "frame" or da.dims[1] not in AXES:
        raise SeriesError(f"DataArray dims {da.dims}; need ('frame', axis)", path=path)
    protected = []
    if "source" in da.coords:
        protected += [str(s).split("#", 1)[0] for s in da.coords["source"].values]
    if da.attrs.get("series_file"):
        protected.append(da.attrs["series_file"])
    axis = da.dims[1]

    def _writer(tmp: Path) -> None:
        if kind == "netcdf":
            out = da.copy()
            out.attrs = _netcdf_attrs({k: v for k, v in da.attrs.items() if k != "series_file"})
            out.to_netcdf(tmp, engine="netcdf4")
        else:
            c = da.coords
            per = {"temperature_c": (c["temperature_c"].values, "degC")} \
                if "temperature_c" in c else {}
            if "time_s" in c:
                per["time_s"] = (c["time_s"].values, "s")
            strings = {k: c[k].values for k in ("source", "segment", "temperature_source")
                       if k in c}
            attrs = {k: v for k, v in da.attrs.items() if k not in (
                "wavelength_angstrom", "wavelength2_angstrom", "ka2_ratio", "series_file")}
            _write_nxdata(tmp, np.asarray(c[axis].values, float), axis,
                          np.asarray(da.values, float),
                          np.asarray(c["sigma"].values, float) if "sigma" in c else None,
                          (da.attrs.get("wavelength_angstrom"),
                           da.attrs.get("wavelength2_angstrom"), da.attrs.get("ka2_ratio")),
                          per, strings, attrs, None)

    return atomic_write(path, _writer, overwrite=overwrite, protected=protected)
