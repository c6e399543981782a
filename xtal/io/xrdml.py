"""PANalytical XRDML (namespace agnostic): Kα1/Kα2/ratio, 2θ start/end or listPositions."""
from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import EmptyPatternError, InvalidDataError, PatternFormatError
from xtal.beam import check_wavelength
from xtal.io.common import choose_block, decode_text, make_pattern
from xtal.io.header import HeaderInfo, _length_to_angstrom, _num_and_unit, _parse_timestamp, temperature_to_c
from xtal.io.pattern import Pattern


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


def _read_xrdml(path: Path, text: str, *, axis: str | None) -> list[Pattern]:
    """Every scan of a PANalytical .xrdml; namespaces ignored."""
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
            hdr.wavelength_angstrom = check_wavelength(vals["kAlpha1"])
        if vals.get("kAlpha2"):
            hdr.wavelength2_angstrom = check_wavelength(vals["kAlpha2"])
            hdr.ka2_ratio = vals.get("ratioKAlpha2KAlpha1")
        if "kBeta" in vals:
            meta["kbeta_angstrom"] = vals["kBeta"]
    scans = _find_all(root, "scan")
    if not scans:
        raise PatternFormatError("no <scan> element", path=path)
    meta["n_scans"] = len(scans)
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"XRDML scans are on 2θ, not {axis}", path=path)
    return [_scan(path, root, sc, HeaderInfo(**vars(hdr)), dict(meta, scan=i))
            for i, sc in enumerate(scans)]


def _scan(path: Path, root: ET.Element, sc: ET.Element, hdr: HeaderInfo, meta: dict) -> Pattern:
    """One <scan> of an XRDML file."""
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
    return make_pattern(path, x, y, None, "two_theta_deg", hdr, "xrdml", meta)


# --- registry entry ---------------------------------------------------------------
EXTENSIONS = (".xrdml",)


def sniff(path: Path, head: bytes) -> bool:
    """XML declaration, an ``<xrdMeasurements`` element, or the .xrdml extension."""
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<?xml") or b"<xrdMeasurements" in head or \
        path.suffix.lower() in EXTENSIONS


def read_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any) -> list[Pattern]:
    """Every scan of an XRDML file (an area scan / RSM holds one per ω step)."""
    return _read_xrdml(path, decode_text(data, path), axis=axis)


def read(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
         **_: Any) -> Pattern:
    """One scan of an XRDML file (``frame``: scan number; required when the file has several)."""
    return choose_block(read_all(path, data, axis=axis), frame, path, "scan")
