"""Files xtal recognises but does not read: refused by the name of their format, not by a line
number of the column reader they would otherwise fall through to."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from xtal.errors import PatternFormatError

#: (test on the first bytes and the path, message)
_KNOWN: tuple[tuple[Any, str], ...] = (
    (lambda h, p: h[:4] in (b"V3RD", b"V5RD") or p.suffix.lower() == ".rd",
     "Philips/PANalytical binary RD/SD is not read; export the scan as XRDML or xy"),
    (lambda h, p: h[:4] in (b"II*\0", b"MM\0*") or p.suffix.lower() in (".tif", ".tiff",
                                                                      ".edf", ".cbf", ".img"),
     "this is a 2D detector image, not a 1D powder pattern; integrate it first (e.g. pyFAI)"),
    (lambda h, p: h[:4] == b"PK\x03\x04",
     "a zip archive that is neither Bruker BRML nor Rigaku RASX is not read"),
    (lambda h, p: h[:2] == b"\x1f\x8b", "a gzip-compressed file: decompress it first"),
    (lambda h, p: p.suffix.lower() == ".gpx",
     "a GSAS-II project (.gpx) is not read; export the histogram (e.g. as .fxye or .xye)"),
    (lambda h, p: re.match(rb"\s*#F\s|\s*#S\s+\d+", h) is not None and
     len(re.findall(rb"^#S\s+\d+", h, re.M)) > 1,
     "a SPEC file with several scans is not read; export one scan as columns"),
)


def _match(path: Path, head: bytes) -> str | None:
    return next((msg for test, msg in _KNOWN if test(head, path)), None)


def sniff(path: Path, head: bytes) -> bool:
    return _match(path, head) is not None


def read(path: Path, data: bytes, **_: Any):
    raise PatternFormatError(_match(path, data[:16384]) or "format not read", path=path)
