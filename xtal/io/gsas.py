"""GSAS powder files (.fxye .gsa .gsas .gss .xra) and instrument parameter files (.prm, .instprm)."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from xtal.beam import check_wavelength, parse_radiation
from xtal.errors import EmptyPatternError, InvalidDataError, PatternFormatError, WavelengthError
from xtal.io.columns import _parse_number_rows
from xtal.io.common import decode_text, make_pattern, read_bytes
from xtal.io.header import parse_header_lines
from xtal.io.pattern import Pattern


# --- GSAS -------------------------------------------------------------------
def read_gsas_instprm_wavelength(prm_path: str | Path) -> tuple[float, float | None, float | None]:
    """(λ1 Å, λ2 Å or None, I(λ2)/I(λ1) or None) from a GSAS instrument file.

    Reads the ``INS  n ICONS`` record (fixed columns 10 wide: λ1, λ2, zero, -, POLA,
    IPOLA(5), KRATIO; whitespace split as fallback) of bank 1 for constant-wavelength
    histograms, or the ``Lam``/``Lam1``/``Lam2``/``I(L2)/I(L1)`` lines of a GSAS-II
    ``.instprm``.  λ2 = 0 means a single wavelength.
    """
    path = Path(prm_path)
    text = decode_text(read_bytes(path), path)
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
        return _instrument_lines(l1, l2, r, path)
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
        return _instrument_lines(l1, l2, r, path)
    raise PatternFormatError("no ICONS record (or Lam/Lam1 line): no wavelength in the "
                             "instrument file", path=path)


def _instrument_lines(l1: float, l2: float | None, r: float | None, path: Path
                      ) -> tuple[float, float | None, float | None]:
    """Checked (λ1 Å, λ2 Å or None, ratio or None); λ2 ≤ 0 means one line, a λ2 without ratio is kept."""
    l2 = l2 if l2 and l2 > 0 else None
    try:
        if l2 is not None and r is None:
            return check_wavelength(l1), check_wavelength(l2), None
        return parse_radiation((l1, l2, r)).as_tuple()
    except WavelengthError as exc:
        raise WavelengthError(exc.message, path=path) from None


def _fixed_width_values(body: list[tuple[int, str]], kind: str, path: Path
                       ) -> tuple[list[float], list[float]]:
    """Intensities and σ of STD (10 fields of I2+F6: count, value; σ = √(I/count)) or ESD
    (5 pairs of F8: value, σ) records."""
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
    return ys, ss


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
        what = "time-of-flight data are not supported" if bintyp in ("SLOG", "TIME_MAP", "RALF") \
            else "not supported"
        raise PatternFormatError(f"GSAS bank type {bintyp}: {what}; only constant-wavelength "
                                 "CONST/CONS banks are read", path=path)
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
        ys, ss = _fixed_width_values(body, kind, path)
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
    return make_pattern(path, x, y, s, "two_theta_deg", hdr, "gsas", meta)


# --- registry entry ---------------------------------------------------------------
EXTENSIONS = (".fxye", ".gsa", ".gsas", ".gss", ".xra")
_SNIFF_EXT = {*EXTENSIONS, ".fxy", ".esd", ".std"}


def sniff(path: Path, head: bytes) -> bool:
    """A ``BANK n`` line, or a GSAS extension and the word BANK."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").decode("latin-1")
    return bool(re.search(r"^BANK\s+\d+", text, re.M)) or (
        path.suffix.lower() in _SNIFF_EXT and "BANK" in text)


def read(path: Path, data: bytes, *, axis: str | None = None, bank: int | None = None,
         **_: Any) -> Pattern:
    """GSAS powder file → Pattern (``bank``: bank number, default the first).

    The first record is an 80-character free title: stray control bytes there (NUL and
    others, written by some instruments) are blanked, as GSAS itself ignores the title."""
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    title = bytes(c if c >= 32 or c in b"\t\r" else 32 for c in data[:end])
    return _read_gsas(path, decode_text(title + data[end:], path), axis=axis, bank=bank)
