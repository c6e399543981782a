"""Rigaku RAS (SmartLab/MiniFlex text, Shift-JIS) and RASX (SmartLab Studio II zip), every scan.

Specification followed: Rigaku's RAS layout (as written by SmartLab Guidance / MiniFlex
Guidance and documented in Rigaku's "RAS file format" notes): ``*RAS_DATA_START``, then per
scan ``*RAS_HEADER_START`` … ``*KEY "value"`` lines … ``*RAS_HEADER_END``,
``*RAS_INT_START``, rows ``x intensity attenuation`` and ``*RAS_INT_END``; the file ends with
``*RAS_DATA_END``.  The third column is the attenuator correction factor: the intensity is
column 2 × column 3 (1.000 when no attenuator was in the beam).  λ from
``*HW_XG_WAVE_LENGTH_ALPHA1``/``ALPHA2`` (RAS states no Kα2/Kα1 ratio, so Kα1 only, Kα2 kept
in ``meta``); the scanned axis from ``*MEAS_SCAN_AXIS_X_INTERNAL``/``*MEAS_SCAN_AXIS_X``
(a 2θ-type axis is read; ω, χ, φ… scans are refused by name); ``*MEAS_SCAN_UNIT_Y``
(counts / cps) goes to ``meta["intensity_unit"]``.

RASX: a zip archive with ``Data<i>/Profile<j>.txt`` (tab-separated x, intensity,
attenuation) and ``Data<i>/MesurementConditions<i>.xml`` (sic; ``Measurement…`` accepted):
``HWConfigurations/XrayGenerator/WavelengthKalpha1``/``…Kalpha2`` and
``ScanInformation/AxisName``.  Several scans/profiles need ``frame=`` (`read`) or
`read_series` (`read_all`).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import InvalidDataError, PatternFormatError
from xtal.io.common import choose_block, header_info, make_pattern, zip_members
from xtal.io.pattern import Pattern

RAS_EXTENSIONS = (".ras",)
RASX_EXTENSIONS = (".rasx",)
_TWO_THETA_AXES = {"twothetatheta", "twotheta", "2-theta", "2theta", "theta/2-theta",
                   "twothetaomega", "2-theta/omega", "2theta/omega", "twothetachiphi",
                   "2-theta/theta", "theta/2theta", "2theta/theta", "twothetaomegachiphi"}


def _decode(data: bytes) -> str:
    for enc in ("utf-8", "shift_jis", "cp932"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _check_axis(axis_name: str, path: Path, i: int) -> None:
    a = axis_name.replace(" ", "").lower()
    if a and a not in _TWO_THETA_AXES:
        raise PatternFormatError(f"Rigaku scan {i} is a {axis_name!r} scan, not a 2θ powder "
                                 "scan; xtal reads 2θ scans only", path=path)


def _table(rows: list[str], path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        arr = np.array([[float(t) for t in r.replace(",", " ").split()] for r in rows if r.strip()])
    except ValueError:
        raise PatternFormatError(f"{what}: non-numeric data row", path=path) from None
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise InvalidDataError(f"{what}: need rows of x, intensity[, attenuation]", path=path)
    y = arr[:, 1] * arr[:, 2] if arr.shape[1] >= 3 else arr[:, 1]
    return arr[:, 0], y


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def _ras_scans(text: str, path: Path) -> list[tuple[dict, list[str]]]:
    scans, keys, rows, in_int = [], {}, None, False
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("*"):
            tag = s.split(None, 1)[0][1:]
            if tag == "RAS_HEADER_START":
                keys = {}
            elif tag == "RAS_INT_START":
                rows, in_int = [], True
            elif tag == "RAS_INT_END":
                scans.append((keys, rows or []))
                in_int = False
            elif not tag.startswith("RAS_"):
                m = re.match(r'\*(\S+)\s+"(.*)"\s*$', s)
                if m:
                    keys[m.group(1)] = m.group(2)
            continue
        if in_int:
            rows.append(s)
        else:
            raise PatternFormatError(f"Rigaku RAS: data row {s[:30]!r} outside "
                                     "*RAS_INT_START/*RAS_INT_END", path=path)
    if in_int:
        raise PatternFormatError("Rigaku RAS: *RAS_INT_START without *RAS_INT_END (truncated "
                                 "file)", path=path)
    return scans


def read_ras_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any
                 ) -> list[Pattern]:
    """Every scan of a Rigaku RAS file, in file order."""
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"Rigaku RAS scans are read on 2θ, not {axis}", path=path)
    out = []
    for i, (keys, rows) in enumerate(_ras_scans(_decode(data), path)):
        _check_axis(keys.get("MEAS_SCAN_AXIS_X_INTERNAL") or keys.get("MEAS_SCAN_AXIS_X", ""),
                    path, i)
        x, y = _table(rows, path, f"Rigaku RAS scan {i}")
        l1 = _float(keys.get("HW_XG_WAVE_LENGTH_ALPHA1"))
        hdr = header_info(l1, None)
        meta = {"scan": i, "sample": keys.get("FILE_SAMPLE", ""),
                "intensity_unit": keys.get("MEAS_SCAN_UNIT_Y"),
                "wave_type": keys.get("MEAS_COND_XG_WAVE_TYPE"),
                "kalpha2_angstrom_stated": _float(keys.get("HW_XG_WAVE_LENGTH_ALPHA2")),
                "timestamp_start": keys.get("MEAS_SCAN_START_TIME")}
        out.append(make_pattern(path, x, y, None, "two_theta_deg", hdr, "ras", meta))
    if not out:
        raise PatternFormatError("Rigaku RAS file without a *RAS_INT_START data section",
                                 path=path)
    for p in out:
        p.meta["n_scans"] = len(out)
    return out


def sniff_ras(path: Path, head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"*RAS_")


def read_ras(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
             **_: Any) -> Pattern:
    """One scan of a RAS file (``frame``: scan number; required when several)."""
    return choose_block(read_ras_all(path, data, axis=axis), frame, path, "scan")


# --- RASX ---------------------------------------------------------------------
def _xml_values(xml: bytes) -> dict[str, str]:
    """First text of every local tag name (namespaces ignored)."""
    vals: dict[str, str] = {}
    for el in ET.fromstring(xml).iter():
        name = el.tag.rsplit("}", 1)[-1]
        if el.text and el.text.strip() and name not in vals:
            vals[name] = el.text.strip()
    return vals


def read_rasx_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any
                  ) -> list[Pattern]:
    """Every profile of a Rigaku RASX archive (Data<i>/Profile<j>.txt in numeric order)."""
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"Rigaku RASX scans are read on 2θ, not {axis}", path=path)
    zf, profiles = zip_members(data, path, r"Profile\d*\.txt$", "Rigaku RASX")
    out = []
    for name in profiles:
        folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        cond = next((n for n in zf.namelist() if n.startswith(folder) and
                     re.search(r"Me(a)?surementConditions\d*\.xml$", n)), None)
        try:
            vals = _xml_values(zf.read(cond)) if cond else {}
        except ET.ParseError as exc:
            raise PatternFormatError(f"RASX {cond}: malformed XML ({exc})", path=path) from None
        _check_axis(vals.get("AxisName", ""), path, len(out))
        text = _decode(zf.read(name))
        x, y = _table(text.splitlines(), path, f"Rigaku RASX {name}")
        hdr = header_info(_float(vals.get("WavelengthKalpha1")), None)
        meta = {"scan": len(out), "rasx_member": name, "sample": vals.get("SampleName", ""),
                "intensity_unit": vals.get("IntensityUnit"), "wave_type": vals.get("WaveType"),
                "kalpha2_angstrom_stated": _float(vals.get("WavelengthKalpha2"))}
        out.append(make_pattern(path, x, y, None, "two_theta_deg", hdr, "rasx", meta))
    for p in out:
        p.meta["n_scans"] = len(out)
    return out


def sniff_rasx(path: Path, head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04" and (path.suffix.lower() in RASX_EXTENSIONS or
                                          re.search(rb"Data\d+/", head[:200]) is not None)


def read_rasx(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
              **_: Any) -> Pattern:
    """One profile of a RASX file (``frame``: scan number; required when several)."""
    return choose_block(read_rasx_all(path, data, axis=axis), frame, path, "scan")
