"""What every reader shares: file access, value checks, the Pattern a reader returns, error wrapping."""
from __future__ import annotations

import contextlib
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from xtal.beam import Radiation, resolve_radiation
from xtal.errors import EmptyPatternError, InvalidDataError, PatternError, PatternFormatError, XtalError
from xtal.io.header import KELVIN_OFFSET, HeaderInfo
from xtal.io.pattern import Pattern

NEGATIVE_SIGMA_LIMIT = 5.0   # σ below zero beyond which a negative count is refused


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PatternError("file not found", path=path) from None
    except IsADirectoryError:
        raise PatternError("is a directory, not a pattern file", path=path) from None
    except OSError as exc:
        raise PatternError(f"cannot read file: {exc.strerror}", path=path) from None
    return data


def decode_text(data: bytes, path: Path) -> str:
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
                                   f"(x = {float(x[i]):g})", path=path)
    if x.size > 1:
        d = np.diff(x)
        if np.all(d < 0):
            x, y = x[::-1].copy(), y[::-1].copy()
            s = None if s is None else s[::-1].copy()
            meta.setdefault("repairs", []).append("x was strictly decreasing; reversed")
        elif not np.all(d > 0):
            i = int(np.flatnonzero(d <= 0)[0])
            raise InvalidDataError(f"x is not monotonic: data point {i + 2} (x = {float(x[i + 1]):g}) "
                                   f"follows x = {float(x[i]):g}", path=path)
    if s is not None:
        if np.any(s < 0):
            i = int(np.flatnonzero(s < 0)[0])
            raise InvalidDataError(f"negative sigma at data point {i + 1} (x = {float(x[i]):g})",
                                   path=path)
        neg = y < 0
        if neg.any():
            bad = neg & (-y > NEGATIVE_SIGMA_LIMIT * s)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidDataError(
                    f"negative counts inconsistent with their sigma at data point {i + 1}: "
                    f"{float(y[i]):g} ± {float(s[i]):g} (more than {NEGATIVE_SIGMA_LIMIT:g} σ below zero)",
                    path=path)
            meta["n_negative"] = int(neg.sum())
    elif np.any(y < 0):
        meta["n_negative"] = int((y < 0).sum())
    return x, y, s


def make_pattern(path: Path, x, y, s, axis: str, hdr: HeaderInfo, fmt: str,
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
    if axis == "two_theta_deg" and x.size and x[-1] > 180.0:
        raise InvalidDataError(f"2θ up to {float(x[-1]):g}° (beyond 180°): not a 2θ axis in "
                               "degrees (radians, Q, a channel number?); pass axis= or fix the "
                               "file", path=path)
    if hdr.temperature_c is not None and not hdr.temperature_c >= -KELVIN_OFFSET:
        raise InvalidDataError(f"temperature {hdr.temperature_c:g} °C is below 0 K", path=path)
    return Pattern(x=x, intensity=y, sigma=s, axis=axis,
                   wavelength_angstrom=hdr.wavelength_angstrom,
                   wavelength2_angstrom=hdr.wavelength2_angstrom,
                   ka2_ratio=hdr.ka2_ratio if hdr.wavelength2_angstrom else None,
                   temperature_c=hdr.temperature_c, time_s=hdr.time_s,
                   source=str(path), frame=hdr.frame, meta=meta)


def json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


_UNEXPECTED = (ValueError, LookupError, TypeError, OverflowError, UnicodeError,
               ET.ParseError, OSError, RuntimeError, AttributeError, ZeroDivisionError,
               MemoryError)


@contextlib.contextmanager
def reading_errors(path: Path | None, what: str, error: type[XtalError] = PatternFormatError):
    """Turn an unexpected low-level exception into an XtalError naming the file."""
    try:
        yield
    except XtalError:
        raise
    except _UNEXPECTED as exc:
        raise error(f"cannot read as {what}: {type(exc).__name__}: {exc}", path=path) from None


def _instrument_hint(path: Path) -> str:
    prms = sorted(q.name for q in path.parent.glob("*")
                  if q.suffix.lower() in (".prm", ".instprm", ".iparm"))
    return (f" (instrument file(s) next to it: {', '.join(prms)}; pass instrument=)"
            if prms else "")


def apply_radiation(p: Pattern, given: Radiation | None, *, force: bool, require: bool,
                    path: Path) -> Pattern:
    """Set the beam of a freshly read ``p`` from its file's λ and the ``given`` `Radiation`.

    The decision is `xtal.beam.resolve_radiation`; ``meta["wavelength_source"]`` records it
    (and ``meta["file_wavelength_angstrom"]`` when a forced value replaced the file's).
    No λ at all is an error only when ``require``.
    """
    file_wl = None if p.wavelength_angstrom is None else \
        (p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio)
    if file_wl is None and given is None and not require:
        return p
    rad, source = resolve_radiation(file_wl, given, force=force, source=path,
                                    hint=_instrument_hint(path))
    if source == "file":
        p.meta.setdefault("wavelength_source", source)
        return p
    if source == "file (user value agrees)":
        p.meta.setdefault("wavelength_source", source)
        if p.wavelength2_angstrom is None:
            _, p.wavelength2_angstrom, p.ka2_ratio = rad.as_tuple()
        return p
    if source.startswith("user (forced"):
        p.meta["file_wavelength_angstrom"] = p.wavelength_angstrom
    p.meta["wavelength_source"] = source
    p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio = rad.as_tuple()
    return p


def choose_block(blocks: list, frame: int | None, path: Path, what: str = "range") -> Any:
    """The one block of a multi-block file (ranges, scans, data sets, CIF blocks) to read.

    One block: it.  Several and ``frame`` None: `PatternFormatError` saying how many there are
    and how to choose (``frame=`` / ``--frame`` for one, `read_series` for all) — never a
    silent pick of the first.
    """
    n = len(blocks)
    if n == 0:
        raise EmptyPatternError(f"no {what} with data in the file", path=path)
    if frame is None:
        if n == 1:
            return blocks[0]
        raise PatternFormatError(
            f"the file holds {n} {what}s; pass frame=0..{n - 1} to read one, or read them all "
            "as a series with read_series(path)", path=path)
    if not 0 <= frame < n:
        raise PatternFormatError(f"{what} {frame} requested; the file holds {n} "
                                 f"(frame=0..{n - 1})", path=path)
    return blocks[frame]


def header_info(wl1: float | None = None, wl2: float | None = None, ratio: float | None = None,
                temperature_c: float | None = None, raw: dict | None = None) -> HeaderInfo:
    """A `HeaderInfo` for a reader that decodes the beam itself (binary/XML formats).

    λ values that are missing, zero or not X-ray/neutron lengths are dropped rather than
    invented; a Kα2 without a ratio is dropped (see `xtal.beam.resolve_radiation`).
    """
    from xtal.beam import check_wavelength

    def _ok(v):
        try:
            return check_wavelength(v) if v is not None and float(v) > 0 else None
        except (XtalError, TypeError, ValueError):
            return None
    h = HeaderInfo(raw=dict(raw or {}))
    h.wavelength_angstrom = _ok(wl1)
    l2 = _ok(wl2) if h.wavelength_angstrom is not None else None
    if l2 is not None and l2 != h.wavelength_angstrom and ratio is not None and \
            math.isfinite(ratio) and 0 < ratio <= 1:     # 0: a single line
        h.wavelength2_angstrom, h.ka2_ratio = l2, float(ratio)
    h.temperature_c = temperature_c
    return h


def zip_members(data: bytes, path: Path, member_re: str, what: str):
    """(open ZipFile, names matching ``member_re`` in natural order) of a zip-based format
    (BRML, RASX); a non-zip or a zip without such members is refused naming ``what``."""
    import io
    import re
    import zipfile
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PatternFormatError(f"not a {what} file (not a zip archive)", path=path) from None
    key = lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]  # noqa: E731
    names = sorted((n for n in zf.namelist() if re.search(member_re, n)), key=key)
    if not names:
        raise PatternFormatError(f"{what} archive without {member_re!r} members", path=path)
    return zf, names
