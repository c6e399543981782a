"""Bruker/Siemens binary RAW (DIFFRAC-AT v1, v2; DIFFRAC plus "RAW1.01" v3; DIFFRAC.SUITE
"RAW4.00" v4) and Bruker BRML (DIFFRAC.SUITE zip of XML).

Specifications followed:

* RAW v1/v2/v3: the record layouts of *DIFFRAC^plus XCH V.5.0 Release 2002, User's Manual,
  Appendix A* as transcribed in xylib's ``bruker_raw.cpp`` (Marcin Wojdyr, LGPL; read as a
  description, no code copied).  v1: per range a 116-byte header (steps, time/step, step,
  scan mode, 2θ start, θ/χ/φ start, sample, Kα1, Kα2, "following range" flag) then float32
  counts.  v2: file header (range count at 4, λ1/λ2/ratio at 190/194/198), per range a
  header of stated length (steps, time/step, step, start, temperature in K at +42).  v3: a
  712-byte file header (range count at 12, λ average/Kα1/Kα2/Kβ/ratio as float64 at
  616..648), per range a 304-byte header (steps at 4, 2θ start at 16, step at 176,
  λ used at 240, supplementary header size at 256) then float32 counts.
* RAW v4: a 61-byte header then tagged segments (type, length): 10 = VarInfo, 30 = hardware
  configuration (λ average/Kα1/Kα2/Kβ/ratio float64 at +72..+104, anode at +116); a range
  starts with segment type 0 or 160: scan type at +32, start at +72, step at +80, steps at
  +88, time/step at +92, λ used at +112, datum size at +136, extra header size at +140,
  header 160 bytes; data float32.  Scan types other than coupled 2θ/θ ("Locked Coupled",
  "Unlocked Coupled", "Detector Scan", "2Theta", "TwoTheta") are refused by name.
* BRML: ``experimentCollection.xml``/``Experiment*/DataContainer.xml`` list the
  ``RawData*.xml`` files; in each, every ``DataRoute`` (``RouteFlag="Measured"`` ones when
  present) is one data set; ``DataViews`` say which comma-separated ``Datum`` field is 2θ
  (``FieldDefinitions FieldName="TwoTheta"`` inside the varying view) and which are counts
  (``RecordedRawDataView``); λ from ``WaveLengthAlpha1/Alpha2/Ratio`` of the tube.

Several ranges / data sets: `read` needs ``frame=``; `read_all` returns all (`read_series`).
Each Pattern carries ``meta["range"]``, ``meta["n_ranges"]``, the file version and the
scan type; λ (Kα1, Kα2, ratio) only when the file states it (v1 has no ratio: Kα1 only).
"""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import InvalidDataError, PatternFormatError
from xtal.io.common import choose_block, header_info, make_pattern, zip_members
from xtal.io.pattern import Pattern

RAW_EXTENSIONS = (".raw",)
BRML_EXTENSIONS = (".brml",)
_COUPLED = {"locked coupled", "unlocked coupled", "detector scan", "2theta", "twotheta",
            "coupled twotheta/theta", "lockedcoupled", "unlockedcoupled", "detectorscan"}


class _Buf:
    """Little-endian reads at absolute offsets, with a clear error past the end."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path = data, path

    def unpack(self, fmt: str, off: int):
        try:
            return struct.unpack_from("<" + fmt, self.data, off)[0]
        except struct.error:
            raise PatternFormatError(f"Bruker RAW file truncated (record at byte {off})",
                                     path=self.path) from None

    def text(self, off: int, n: int) -> str:
        return self.data[off:off + n].split(b"\0", 1)[0].decode("latin-1").strip()

    def floats(self, off: int, n: int, size: int = 4) -> np.ndarray:
        end = off + n * size
        if n < 0 or end > len(self.data):
            raise PatternFormatError(f"Bruker RAW file truncated: {n} points announced at byte "
                                     f"{off}, file has {len(self.data)} bytes", path=self.path)
        return np.frombuffer(self.data, "<f4" if size == 4 else "<f8", n, off).astype(float)


def raw_version(head: bytes) -> str | None:
    """"1", "2", "3" or "4" from the magic bytes, or None."""
    if head[:4] == b"RAW ":
        return "1"
    if head[:4] == b"RAW2":
        return "2"
    if head[:7] == b"RAW1.01":
        return "3"
    if head[:7] == b"RAW4.00":
        return "4"
    return None


def _block(path, x0, step, y, *, version, hdr, meta, i) -> Pattern:
    x = x0 + step * np.arange(y.size)
    meta = {"raw_version": version, "range": i, **meta}
    return make_pattern(path, x, y, None, "two_theta_deg", hdr, "bruker_raw", meta)


def _raw_v1(b: _Buf, path: Path) -> list[Pattern]:
    out, base, more = [], 0, 1        # base: where the range's "RAW " magic is (or would be)
    while more and base + 156 <= len(b.data):
        if out and b.data[base:base + 4] != b"RAW ":   # early files omit the magic later on
            base -= 4
        steps = b.unpack("I", base + 4)
        step, x0 = b.unpack("f", base + 12), b.unpack("f", base + 24)
        l1, l2 = b.unpack("f", base + 72), b.unpack("f", base + 76)
        more = b.unpack("I", base + 152)
        y = b.floats(base + 156, steps)
        hdr = header_info(l1, None)     # v1 states no Kα2/Kα1 ratio: Kα1 only
        meta = {"sample": b.text(base + 40, 32), "time_per_step_s": b.unpack("f", base + 8)}
        if l2 > 0:
            meta["kalpha2_angstrom_stated"] = l2
        out.append(_block(path, x0, step, y, version="1", hdr=hdr, meta=meta, i=len(out)))
        base += 156 + 4 * steps
    return out


def _raw_v2(b: _Buf, path: Path) -> list[Pattern]:
    n = b.unpack("H", 4)
    l1, l2, ratio = b.unpack("f", 190), b.unpack("f", 194), b.unpack("f", 198)
    off, out = 256, []
    for i in range(n):
        hlen, steps = b.unpack("H", off), b.unpack("H", off + 2)
        if hlen <= 48:
            raise PatternFormatError(f"Bruker RAW v2 range {i} header length {hlen}", path=path)
        step, x0 = b.unpack("f", off + 12), b.unpack("f", off + 16)
        t_k = b.unpack("H", off + 46)
        hdr = header_info(l1, l2, ratio, temperature_c=(t_k - 273.15) if t_k > 0 else None)
        y = b.floats(off + hlen, steps)
        out.append(_block(path, x0, step, y, version="2", hdr=hdr,
                          meta={"time_per_step_s": b.unpack("f", off + 8)}, i=i))
        off += hlen + 4 * steps
    return out


def _raw_v3(b: _Buf, path: Path) -> list[Pattern]:
    n = b.unpack("I", 12)
    l1, l2, ratio = b.unpack("d", 624), b.unpack("d", 632), b.unpack("d", 648)
    off, out = 712, []
    for i in range(n):
        hlen = b.unpack("I", off)
        if hlen != 304:
            raise PatternFormatError(f"Bruker RAW v3 range {i}: header length {hlen}, the "
                                     "specification says 304", path=path)
        steps, x0, step = b.unpack("I", off + 4), b.unpack("d", off + 16), b.unpack("d", off + 176)
        used = b.unpack("d", off + 240)
        supp = b.unpack("I", off + 256)
        y = b.floats(off + hlen + supp, steps)
        hdr = header_info(l1 if l1 > 0 else used, l2, ratio)
        meta = {"sample": b.text(326, 60), "time_per_step_s": b.unpack("f", off + 192),
                "used_lambda_angstrom": used}
        out.append(_block(path, x0, step, y, version="3", hdr=hdr, meta=meta, i=i))
        off += hlen + supp + 4 * steps
    return out


def _raw_v4(b: _Buf, path: Path) -> list[Pattern]:
    off, info, beam = 61, {}, (None, None, None)
    while True:
        seg = b.unpack("I", off)
        if seg in (0, 160):
            break
        slen = b.unpack("I", off + 4)
        if slen < 8:
            raise PatternFormatError(f"Bruker RAW v4 segment length {slen} at byte {off}",
                                     path=path)
        if seg == 10 and slen >= 36:
            info[b.text(off + 12, 24)] = b.text(off + 36, slen - 36)
        elif seg == 30 and slen >= 120:
            beam = (b.unpack("d", off + 80), b.unpack("d", off + 88), b.unpack("d", off + 104))
            info["ANODE"] = b.text(off + 116, 4)
        off += slen
    out = []
    while off + 160 <= len(b.data) and b.unpack("I", off) in (0, 160):
        scan = b.text(off + 32, 24)
        x0, step, steps = b.unpack("d", off + 72), b.unpack("d", off + 80), b.unpack("I", off + 88)
        used = b.unpack("d", off + 112)
        dsize, extra = b.unpack("I", off + 136), b.unpack("I", off + 140)
        data_off = off + 160 + extra
        if scan.strip().lower() not in _COUPLED:
            raise PatternFormatError(f"Bruker RAW v4 range {len(out)} is a {scan!r} scan; "
                                     "only coupled 2θ/θ and detector scans are read", path=path)
        if dsize not in (4, 8):
            raise PatternFormatError(f"Bruker RAW v4 datum size {dsize} (4 or 8 expected)",
                                     path=path)
        y = b.floats(data_off, steps, dsize)
        hdr = header_info(beam[0] if beam[0] else used, beam[1], beam[2], raw=info)
        meta = {"scan_type": scan, "time_per_step_s": b.unpack("f", off + 92),
                "sample": info.get("SAMPLEID", ""), "used_lambda_angstrom": used}
        out.append(_block(path, x0, step, y, version="4", hdr=hdr, meta=meta, i=len(out)))
        off = data_off + dsize * steps
    return out


def _with_count(blocks: list[Pattern]) -> list[Pattern]:
    for p in blocks:
        p.meta["n_ranges"] = len(blocks)
    return blocks


def read_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any) -> list[Pattern]:
    """Every range of a Bruker RAW file (v1–v4), in file order."""
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"Bruker RAW scans are on 2θ, not {axis}", path=path)
    v = raw_version(data[:8])
    if v is None:
        raise PatternFormatError("not a Bruker RAW file (no RAW/RAW2/RAW1.01/RAW4.00 magic)",
                                 path=path)
    b = _Buf(data, path)
    return _with_count({"1": _raw_v1, "2": _raw_v2, "3": _raw_v3, "4": _raw_v4}[v](b, path))


def sniff(path: Path, head: bytes) -> bool:
    return raw_version(head[:8]) is not None


def read(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
         **_: Any) -> Pattern:
    """One range of a Bruker RAW file (``frame``: range number; required when several)."""
    return choose_block(read_all(path, data, axis=axis), frame, path, "range")


# --- BRML ---------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def _value(root: ET.Element, name: str) -> float | None:
    e = _first(root, name)
    try:
        return float(e.get("Value")) if e is not None else None
    except (TypeError, ValueError):
        return None


def _datum_columns(route: ET.Element) -> tuple[int | None, int | None]:
    """(2θ field, counts field) of a DataRoute's comma-separated Datum from its DataViews."""
    x_col = y_col = None
    for view in (e for e in route.iter() if _local(e.tag) == "RawDataView"):
        start = int(view.get("Start", "0"))
        kind = view.get("{http://www.w3.org/2001/XMLSchema-instance}type", "")
        if kind.startswith("Varying"):
            names = [f.get("FieldName", "") for f in view.iter() if _local(f.tag) ==
                     "FieldDefinitions"]
            for j, nm in enumerate(names):
                if nm.replace(" ", "").lower() in ("twotheta", "2theta"):
                    x_col = start + j
        elif kind.startswith("Recorded") and y_col is None:
            y_col = start
    return x_col, y_col


def _brml_route(route: ET.Element, root: ET.Element, path: Path, i: int) -> Pattern:
    scan = _first(route, "ScanInformation")
    scan_name = scan.get("ScanName", "") if scan is not None else ""
    rows = [d.text.split(",") for d in route.iter() if _local(d.tag) == "Datum" and d.text]
    if not rows:
        raise PatternFormatError(f"BRML data set {i} has no <Datum> rows", path=path)
    arr = np.array(rows, dtype=float)
    x_col, y_col = _datum_columns(route)
    if x_col is None:        # older BRML without views: time, used, 2θ, θ, counts (xylib)
        if scan_name.replace(" ", "").lower() not in ("lockedcoupled", "unlockedcoupled",
                                                     "detectorscan", "twotheta"):
            raise PatternFormatError(f"BRML data set {i}: scan {scan_name!r} has no 2θ field; "
                                     "only 2θ scans are read", path=path)
        x_col = 2
    y_col = arr.shape[1] - 1 if y_col is None else y_col
    if max(x_col, y_col) >= arr.shape[1]:
        raise InvalidDataError(f"BRML data set {i}: Datum has {arr.shape[1]} fields", path=path)
    tube = _first(root, "Tube")
    src = tube if tube is not None else root
    hdr = header_info(_value(src, "WaveLengthAlpha1"), _value(src, "WaveLengthAlpha2"),
                      _value(src, "WaveLengthRatio"))
    meta = {"scan_type": scan_name, "range": i}
    return make_pattern(path, arr[:, x_col], arr[:, y_col], None, "two_theta_deg", hdr, "brml",
                        meta)


def read_brml_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any
                  ) -> list[Pattern]:
    """Every measured data set of a BRML file (RawData*.xml in name order, DataRoutes in order)."""
    if axis not in (None, "two_theta_deg"):
        raise PatternFormatError(f"BRML scans are on 2θ, not {axis}", path=path)
    zf, names = zip_members(data, path, r"(^|/)RawData\d*\.xml$", "Bruker BRML")
    out: list[Pattern] = []
    for name in names:
        try:
            root = ET.fromstring(zf.read(name))
        except ET.ParseError as exc:
            raise PatternFormatError(f"BRML {name}: malformed XML ({exc})", path=path) from None
        routes = [e for e in root.iter() if _local(e.tag) == "DataRoute"]
        measured = [r for r in routes if r.get("RouteFlag") == "Measured"] or routes
        for r in measured:
            p = _brml_route(r, root, path, len(out))
            p.meta["brml_member"] = name
            out.append(p)
    return _with_count(out)


def sniff_brml(path: Path, head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04" and (path.suffix.lower() in BRML_EXTENSIONS or
                                          b"Experiment" in head[:200])


def read_brml(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
              **_: Any) -> Pattern:
    """One data set of a BRML file (``frame``: data-set number; required when several)."""
    return choose_block(read_brml_all(path, data, axis=axis), frame, path, "data set")
