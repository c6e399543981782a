"""Bruker/Siemens DIFFRAC-AT/plus UXD text (.uxd), every range.

Specification followed: the UXD description of the DIFFRAC^plus XCH manual as summarised in
xylib's ``uxd.cpp`` (LGPL; read as a description): ``;`` starts a comment; ``_KEY=value``
lines; file-scope keys first (``_WL1``, ``_WL2``, ``_WLRATIO``, ``_WL_UNIT``, ``_ANODE``);
each range starts with ``_DRIVE`` and its keys (``_START``, ``_STEPSIZE``, ``_STEPTIME``,
``_TEMPERATURE``, ``_RANGE_WL``…), then a data keyword: ``_COUNTS``/``_CPS`` (intensities
only, any number per line, x = start + i·step) or ``_2THETACOUNTS``/``_2THETACPS`` (2θ, I
pairs) / ``_2THETACOUNTSTIME`` (2θ, I, time).  ``_D-I`` and ``_2THETA-I`` introduce peak
lists, which are skipped.

Each range is one Pattern (``meta["range"]``, ``meta["n_ranges"]``, the range's keys);
several ranges need ``frame=`` (`read`) or `read_series` (`read_all`).  λ: ``_WL1`` (Kα1),
``_WL2`` with ``_WLRATIO`` (Kα2), a range's ``_RANGE_WL`` when no ``_WL1``; temperature from
a range's ``_TEMPERATURE``/``_TEMP`` (°C as DIFFRAC writes, unless a unit says otherwise).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import InvalidDataError, PatternFormatError
from xtal.io.common import choose_block, decode_text, header_info, make_pattern
from xtal.io.header import _num_and_unit, temperature_to_c
from xtal.io.pattern import Pattern

EXTENSIONS = (".uxd",)
_DATA_KEYS = {"COUNTS": 1, "COUNT": 1, "CPS": 1, "2THETACOUNTS": 2, "2THETACPS": 2,
              "2THETACOUNTSTIME": 3}
_PEAK_KEYS = ("D-I", "2THETA-I")
_TOKEN = re.compile(r"[,\s]+")


def _num(v: str | None) -> float | None:
    nu = _num_and_unit((v or "").strip().strip("'\""))
    return None if nu is None else nu[0]


def _ranges(text: str, path: Path) -> tuple[dict, list[tuple[dict, str, list[str]]]]:
    """(file keys, [(range keys, data keyword, data lines)])."""
    file_keys: dict[str, str] = {}
    ranges: list[tuple[dict, str, list[str]]] = []
    keys: dict[str, str] | None = None
    data: list[str] | None = None
    kind = ""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(";"):
            continue
        if s.startswith("_"):
            key, _, val = s[1:].partition("=")
            key = key.strip().upper()
            if key == "DRIVE":
                keys, data = {"DRIVE": val.strip().strip("'")}, None
            elif key in _DATA_KEYS or any(key.startswith(k) for k in _PEAK_KEYS):
                if keys is None:
                    raise PatternFormatError(f"UXD data keyword _{key} before any _DRIVE",
                                             path=path)
                data = [] if key in _DATA_KEYS else None
                kind = key
                if data is not None:
                    ranges.append((keys, kind, data))
                    keys = dict(keys)      # a further data section continues as a new range
            else:
                (file_keys if keys is None else keys)[key] = val.strip()
            continue
        if data is not None:
            data.append(s)
        elif keys is None or not any(kind.startswith(k) for k in _PEAK_KEYS):
            raise PatternFormatError(f"UXD: data line {s[:40]!r} outside a data section",
                                     path=path)
    return file_keys, ranges


def _range_pattern(path: Path, file_keys: dict, keys: dict, kind: str, lines: list[str],
                   i: int) -> Pattern:
    try:
        vals = np.array([float(t) for ln in lines for t in _TOKEN.split(ln) if t])
    except ValueError:
        raise PatternFormatError(f"UXD range {i}: non-numeric data", path=path) from None
    ncol = _DATA_KEYS[kind]
    if vals.size == 0 or vals.size % ncol:
        raise InvalidDataError(f"UXD range {i}: {vals.size} numbers under _{kind} (need a "
                               f"multiple of {ncol})", path=path)
    if ncol == 1:
        start, step = _num(keys.get("START", keys.get("2THETA"))), _num(keys.get("STEPSIZE"))
        if start is None or step is None:
            raise PatternFormatError(f"UXD range {i}: _COUNTS without _START/_STEPSIZE",
                                     path=path)
        x, y = start + step * np.arange(vals.size), vals
    else:
        x, y = vals[0::ncol], vals[1::ncol]
    unit = file_keys.get("WL_UNIT", "A").strip("'\" ").lower()
    scale = {"nm": 10.0, "a": 1.0, "å": 1.0}.get(unit, 1.0)
    l1 = _num(keys.get("WL1", file_keys.get("WL1")))
    l1 = l1 if l1 else _num(keys.get("RANGE_WL"))
    l2 = _num(keys.get("WL2", file_keys.get("WL2")))
    ratio = _num(keys.get("WLRATIO", file_keys.get("WLRATIO")))
    hdr = header_info(l1 * scale if l1 else None, l2 * scale if l2 else None, ratio)
    t = keys.get("TEMPERATURE", keys.get("TEMP"))
    nu = _num_and_unit(t.strip("'\"")) if t else None
    if nu is not None:
        hdr.temperature_c, _ = temperature_to_c(nu[0], nu[1] or "C")
    meta = {"range": i, "drive": keys.get("DRIVE"), "data_keyword": kind,
            "uxd_range_keys": {k: v for k, v in keys.items() if len(v) < 80},
            "sample": file_keys.get("SAMPLE", "").strip("'")}
    if kind.endswith("CPS"):
        meta["intensity_unit"] = "cps"
    return make_pattern(path, x, y, None, "two_theta_deg", hdr, "uxd", meta)


def read_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any) -> list[Pattern]:
    """Every range of a UXD file, in file order."""
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"UXD ranges are on 2θ, not {axis}", path=path)
    file_keys, ranges = _ranges(decode_text(data, path), path)
    out = [_range_pattern(path, file_keys, k, kind, lines, i)
           for i, (k, kind, lines) in enumerate(ranges)]
    for p in out:
        p.meta["n_ranges"] = len(out)
    return out


def sniff(path: Path, head: bytes) -> bool:
    """The first non-comment line is ``_FILEVERSION``, or a .uxd file with a ``_DRIVE`` key."""
    text = head.lstrip(b"\xef\xbb\xbf").decode("latin-1")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and
                  not ln.strip().startswith(";")), "")
    return first.upper().startswith("_FILEVERSION") or (
        path.suffix.lower() in EXTENSIONS and "_DRIVE" in text.upper())


def read(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
         **_: Any) -> Pattern:
    """One range of a UXD file (``frame``: range number; required when several)."""
    return choose_block(read_all(path, data, axis=axis), frame, path, "range")
