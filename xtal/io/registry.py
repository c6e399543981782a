"""Format registry: sniff a file's content, dispatch to its format's reader, decide the beam once.

Adding a format is one module exposing ``sniff(path, head_bytes) -> bool`` and
``read(path, data, *, axis, **options) -> Pattern``, plus one line in `FORMATS`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from xtal.beam import parse_radiation, resolve_radiation
from xtal.errors import EmptyPatternError, PatternError, PatternFormatError
from xtal.io import bruker, columns, gsas, nexus, pdcif, rigaku, unsupported, uxd, xrdml
from xtal.io.common import apply_radiation, read_bytes, reading_errors
from xtal.io.pattern import AXES, Pattern

__all__ = ["Format", "FORMATS", "WRITE_FORMATS", "PATTERN_EXTENSIONS", "sniff_format", "read_pattern",
           "read_all_patterns", "formats_table"]

SNIFF_BYTES = 16384   # bytes of the file a sniffer sees


@dataclass(frozen=True)
class Format:
    """A readable format: ``sniff(path, head_bytes) -> bool`` and ``read(path, data, *, axis,
    **options) -> Pattern``; ``extensions`` are those a directory listing picks up as frames."""

    name: str
    sniff: Callable[[Path, bytes], bool]
    read: Callable[..., Pattern]
    extensions: tuple[str, ...] = ()
    read_all: Callable[..., list[Pattern]] | None = None   # multi-range/scan/block formats
    title: str = ""                                         # for `xtal formats` and the docs


def _is_netcdf(path: Path, head: bytes) -> bool:
    return head[:3] == b"CDF"


def _no_netcdf(path: Path, data: bytes, **_: Any) -> Pattern:
    raise PatternFormatError("a netCDF file is a series: use read_series", path=path)


#: In sniffing order: the first format whose ``sniff`` says yes reads the file.
FORMATS: tuple[Format, ...] = (
    Format("nexus", nexus.sniff, nexus.read, nexus.EXTENSIONS,
           title="NeXus/HDF5 NXdata (1D or stacked 2D)"),
    Format("netcdf", _is_netcdf, _no_netcdf, title="netCDF series (read_series)"),
    Format("bruker_raw", bruker.sniff, bruker.read, bruker.RAW_EXTENSIONS, bruker.read_all,
           "Bruker/Siemens RAW v1, v2, v3 (RAW1.01), v4 (RAW4.00), all ranges"),
    Format("brml", bruker.sniff_brml, bruker.read_brml, bruker.BRML_EXTENSIONS,
           bruker.read_brml_all, "Bruker BRML (DIFFRAC.SUITE zip of XML), all data sets"),
    Format("rasx", rigaku.sniff_rasx, rigaku.read_rasx, rigaku.RASX_EXTENSIONS,
           rigaku.read_rasx_all, "Rigaku RASX (SmartLab Studio II zip), all profiles"),
    Format("xrdml", xrdml.sniff, xrdml.read, xrdml.EXTENSIONS, xrdml.read_all,
           "PANalytical XRDML (Kα1/Kα2/ratio), all scans"),
    Format("ras", rigaku.sniff_ras, rigaku.read_ras, rigaku.RAS_EXTENSIONS, rigaku.read_ras_all,
           "Rigaku RAS (SmartLab/MiniFlex text), all scans"),
    Format("uxd", uxd.sniff, uxd.read, uxd.EXTENSIONS, uxd.read_all,
           "Bruker/Siemens UXD text (_COUNTS, _2THETACOUNTS…), all ranges"),
    Format("pdcif", pdcif.sniff, pdcif.read, pdcif.EXTENSIONS, pdcif.read_all,
           "powder CIF (_pd_meas_*, _pd_proc_*, _pd_calc_*), all profile blocks"),
    Format("gsas", gsas.sniff, gsas.read, gsas.EXTENSIONS,
           title="GSAS constant-wavelength STD/ESD/FXY/FXYE banks"),
    Format("unsupported", unsupported.sniff, unsupported.read),   # refused by name
    Format("chi", columns.sniff_chi, columns.read_chi, columns.CHI_EXTENSIONS,
           title="Fit2D .chi"),
    Format("columns", columns.sniff, columns.read, columns.EXTENSIONS,   # fallback: any text
           title="column text x y [σ] (xy, xye, csv, dat, txt, pyFAI 1D)"),
)
_ALIASES = {"xy": "columns", "xye": "columns", "csv": "columns", "pyfai": "columns",
            "dat": "columns", "txt": "columns"}
# extensions a directory listing takes as frames; .cif is left out (often a structure CIF)
PATTERN_EXTENSIONS = tuple(e for f in FORMATS for e in f.extensions if e != ".cif")


def _format(name: str, path: Path) -> Format:
    name = _ALIASES.get(name, name)
    for f in FORMATS:
        if f.name == name:
            return f
    raise PatternFormatError(f"unknown format {name!r}", path=path)


def sniff_format(path: Path, data: bytes) -> str:
    """Name of the format of ``data`` (the file's bytes, or its first `SNIFF_BYTES`)."""
    head = data[:SNIFF_BYTES]
    return next(f.name for f in FORMATS if f.sniff(path, head))


def format_of(path: str | Path, fmt: str | None = None) -> Format:
    """The `Format` that reads ``path`` (by ``fmt`` or by content)."""
    path = Path(path)
    return _format(fmt or sniff_format(path, read_bytes(path)), path)


def read_all_patterns(path: str | Path, *, fmt: str | None = None, axis: str | None = None
                      ) -> list[Pattern] | None:
    """Every range/scan/block of a multi-block file as Patterns (beam as the file states it),
    or None when the file's format holds one pattern per file."""
    path = Path(path)
    data = read_bytes(path)
    reader = _format(fmt or sniff_format(path, data), path)
    if reader.read_all is None:
        return None
    with reading_errors(path, reader.name):
        return reader.read_all(path, data, axis=axis)


def read_pattern(path: str | Path, *, wavelength_angstrom: Any = None, force: bool = False,
                 fmt: str | None = None, require_wavelength: bool = False,
                 instrument: str | Path | None = None, axis: str | None = None,
                 bank: int | None = None, frame: int | None = None,
                 columns: tuple | None = None) -> Pattern:
    """Read one measured pattern.

    fmt: "columns" | "gsas" | "xrdml" | "chi" | "nexus" (None: detect by content/extension).
    wavelength_angstrom: Å, tube name, (λ1, λ2, ratio) or `Radiation`; parsed once by
    `xtal.beam.parse_radiation` and checked against the file's by `xtal.beam.resolve_radiation`
    (a difference beyond `xtal.beam.WAVELENGTH_RTOL` raises unless ``force``).
    instrument: GSAS .prm/.instprm giving λ when the data file has none.
    axis: the x axis of a headerless column file ("two_theta_deg" default, "q_inv_angstrom",
    "d_angstrom"); a contradiction with the file's declared axis raises.
    bank: GSAS bank number; frame: which of several ranges/scans/blocks (RAW, BRML, UXD,
    RAS/RASX, XRDML, pdCIF, stacked NXdata) — a file holding several refuses to guess.
    columns: (x, y[, sigma]) as 0-based indices or names, for a column text file whose
    columns are not evident from a header (more than 3 unnamed, or no intensity name).
    """
    path = Path(path)
    given = None if wavelength_angstrom is None else parse_radiation(wavelength_angstrom)
    if axis is not None and axis not in AXES:
        raise PatternError(f"unknown axis {axis!r}; use one of {AXES}", path=path)
    data = read_bytes(path)
    if not data.strip():
        raise EmptyPatternError("file is empty", path=path)
    reader = _format(fmt or sniff_format(path, data), path)
    with reading_errors(path, reader.name):
        if columns is not None and reader.name != "columns":
            raise PatternFormatError(f"columns= applies to column text; this is a {reader.name} "
                                     "file", path=path)
        p = reader.read(path, data, axis=axis, bank=bank, frame=frame, columns=columns)
    if instrument is not None:
        _apply_instrument(p, instrument, force, path)
    return apply_radiation(p, given, force=force, require=require_wavelength, path=path)


def _apply_instrument(p: Pattern, instrument: str | Path, force: bool, path: Path) -> None:
    """The instrument file's λ replaces the data file's (after the same consistency check)."""
    inst = replace(parse_radiation(gsas.read_gsas_instprm_wavelength(instrument)),
                   label=f"instrument file {Path(instrument).name}")
    if p.wavelength_angstrom is not None:
        resolve_radiation((p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio), inst,
                          force=force, source=path)
    p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio = inst.as_tuple()
    p.meta["wavelength_source"] = inst.label
    p.meta["instrument"] = str(instrument)



#: What xtal writes: (name, extensions, what).
WRITE_FORMATS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("xy", (".xy",), "pattern: x y, '#' header with λ, T, axis"),
    ("xye", (".xye",), "pattern: x y σ"),
    ("csv", (".csv",), "pattern: comma-separated with a header row"),
    ("nexus", (".h5", ".hdf5", ".nxs"), "pattern or series: NeXus NXdata"),
    ("netcdf", (".nc",), "series: xarray netCDF (write_series)"),
    ("pdcif", (".cif", ".pdcif"), "simulated pattern: powder CIF (xtal simulate --out)"),
)


def formats_table() -> str:
    """The formats read and written, with their extensions (README, ``xtal formats``, --help)."""
    rows = [("read", f.name, " ".join(f.extensions) or "(by content)", f.title)
            for f in FORMATS if f.title]
    rows += [("write", n, " ".join(ext), what) for n, ext, what in WRITE_FORMATS]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{'':{w[0]}}  {'format':{w[1]}}  {'extensions':{w[2]}}  description"]
    lines += [f"{a:{w[0]}}  {b:{w[1]}}  {c:{w[2]}}  {d}" for a, b, c, d in rows]
    lines.append("Files with several ranges/scans/blocks (RAW, BRML, UXD, RAS/RASX, XRDML, "
                 "pdCIF) need frame= (--frame) or read_series; the content decides the format, "
                 "not the extension.")
    return "\n".join(lines)
