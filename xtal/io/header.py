"""Header key/value parsing shared by every text reader: wavelength (Å, nm, m, keV), temperature
(°C, K), elapsed time (s), timestamps, axis, frame and xtal's meta line."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Iterable


from xtal.beam import HC_KEV_ANGSTROM, check_wavelength
from xtal.errors import XtalError
from xtal.io.pattern import AXES


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


KELVIN_OFFSET = 273.15   # 0 °C in K
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
                info.wavelength_angstrom = check_wavelength(_length_to_angstrom(v, unit))
        elif key in _WL2_KEYS and info.wavelength2_angstrom is None and v > 0:
            with contextlib.suppress(XtalError):
                info.wavelength2_angstrom = check_wavelength(_length_to_angstrom(v, unit))
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
            info.wavelength_angstrom = check_wavelength(HC_KEV_ANGSTROM / energy_kev)
    if info.wavelength2_angstrom is None:
        info.ka2_ratio = None
    return info


