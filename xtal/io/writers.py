"""Writers of measured patterns (xye, xy, csv, NeXus) and the atomic write every io writer goes through."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable, Iterable


from xtal.errors import PatternFormatError
from xtal.util import atomic_path, check_writable
from xtal.io.common import json_safe
from xtal.io.nexus import _write_nxdata
from xtal.io.pattern import Pattern


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
    out.append("meta = " + json.dumps(json_safe(meta), ensure_ascii=True))
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


