"""Thermal series: frame listing, temperature logs and matching, segment labels, netCDF."""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import glob as _glob
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from xtal.beam import WAVELENGTH_RTOL, parse_radiation
from xtal.errors import EmptyPatternError, MissingWavelengthError, PatternFormatError, SeriesError
from xtal.io.columns import (_COMMENT_CHARS, _SPLIT_RE, _axis_from_label, _is_number,
                             _parse_number_rows, _strip_block_comments)
from xtal.io.common import (apply_radiation, decode_text, json_safe, make_pattern, read_bytes,
                            reading_errors)
from xtal.io.header import (_T_KEYS, _TIME_KEYS, _TIME_UNITS, _norm_key, parse_header_lines,
                            temperature_to_c)
from xtal.io.nexus import HDF5_MAGIC, _nx_pattern, _nx_read, _write_nxdata
from xtal.io.pattern import AXES, Pattern
from xtal.io.registry import PATTERN_EXTENSIONS, read_all_patterns, read_pattern, sniff_format
from xtal.io.writers import atomic_write


DEFAULT_HOLD_TOLERANCE_C = 0.5
GRID_RTOL = 1e-6

_T_IN_NAME = re.compile(
    r"(?:^|(?<=[_\-\s.]))(?:t|temp)?[_=]?(?P<v>[-+m]?\d+(?:[.p]\d+)?)\s*(?P<u>deg_?c|degc|°c|c|k)"
    r"(?=$|[_\-\s.])", re.I)


def natural_sort_key(s: str | Path) -> list:
    """Sort key that orders 'f2' before 'f10' (acquisition order of numbered frames)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def temperature_from_name(name: str) -> float | None:
    """°C from a file name token such as ``T153.5C``, ``25K``, ``T-10C``, ``T153p5C``."""
    stem = Path(name).name
    for suffix in PATTERN_EXTENSIONS:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    hits = list(_T_IN_NAME.finditer(stem))
    if not hits:
        return None
    m = hits[-1]
    v = float(m.group("v").replace("p", ".").replace("m", "-"))
    return temperature_to_c(v, "K" if m.group("u").lower() == "k" else "C")[0]


def _frame_number(path: Path) -> int | None:
    stem = _T_IN_NAME.sub("", Path(path).stem)
    nums = re.findall(r"\d+", stem)
    return int(nums[-1]) if nums else None


def label_segments(temperature_c: Sequence[float], tolerance_c: float = DEFAULT_HOLD_TOLERANCE_C,
                   min_hold_frames: int = 3, trend_frames: int = 5) -> list[str]:
    """Label each frame "heating", "cooling", "isothermal" or "unknown" (no temperature).

    The frames are cut, from the first, into longest runs whose temperatures span no more than
    ``tolerance_c`` (°C).  A run is a hold if it has at least ``min_hold_frames`` frames and does
    not drift: the line fitted through it changes by at most half the tolerance over the run.  A
    ramp finer than the tolerance per frame also makes runs within the tolerance, but each drifts
    by about the whole tolerance, so it stays a ramp however slow.  Every other frame takes the
    sign of the line through the frames outside holds within ``trend_frames`` of it
    ("isothermal" if that line is flat or the frame has no such neighbour).  The order of frames
    is never changed.
    """
    t = np.asarray(temperature_c, dtype=float)
    n = t.size
    labels = ["unknown"] * n
    in_hold = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        if not np.isfinite(t[i]):
            i += 1
            continue
        j = i
        lo = hi = t[i]
        while j + 1 < n and np.isfinite(t[j + 1]) and max(hi, t[j + 1]) - min(lo, t[j + 1]) \
                <= tolerance_c:
            j += 1
            lo, hi = min(lo, t[j]), max(hi, t[j])
        if j - i + 1 >= min_hold_frames and abs(_slope(t[i:j + 1])) * (j - i) <= 0.5 * tolerance_c:
            in_hold[i:j + 1] = True
        i = j + 1        # the next run starts after this one (a ramp is cut into short runs)
    for k in range(n):
        if not np.isfinite(t[k]):
            continue
        if in_hold[k]:
            labels[k] = "isothermal"
            continue
        near = np.arange(max(0, k - trend_frames), min(n, k + trend_frames + 1))
        near = near[np.isfinite(t[near]) & ~in_hold[near]]
        slope = _slope(t[near], near) if near.size >= 2 else 0.0
        labels[k] = "heating" if slope > 0 else "cooling" if slope < 0 else "isothermal"
    return labels


def _slope(y: np.ndarray, x: np.ndarray | None = None) -> float:
    """Least-squares slope of y against x (default: 0, 1, 2, …); 0 for fewer than two points."""
    x = np.arange(y.size, dtype=float) if x is None else np.asarray(x, dtype=float)
    if y.size < 2:
        return 0.0
    dx = x - x.mean()
    return float(np.sum(dx * (y - y.mean())) / np.sum(dx * dx))


# --- temperature logs ----------------------------------------------------------
_LOG_FILE_COLS = ("file", "filename", "fname", "path", "name", "pattern", "image", "datafile",
                  "imagefile", "scanfile", "filepath")
_LOG_FRAME_COLS = ("frame", "scan", "run", "index", "idx", "frameno", "scanno", "framenumber",
                   "scannumber", "number", "no", "n", "frameindex", "scanid", "")


@dataclass
class _LogRow:
    key: str
    temperature_c: float | None
    time_s: float | None


def _read_temperature_log(path: Path, temperature_unit: str | None) -> tuple[list[_LogRow], str,
                                                                              str | None]:
    """Rows, key kind ("file" | "frame" | "order") and a unit note."""
    text = decode_text(read_bytes(path), path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    comments = [ln for ln in lines if ln.lstrip().startswith("#")]
    lines = [ln for ln in lines if not ln.lstrip().startswith("#")]
    if len(lines) < 2:
        raise SeriesError("temperature log has no header row and data rows", path=path)
    delim = max((",", ";", "\t"), key=lambda d: lines[0].count(d))
    if lines[0].count(delim) == 0:
        rows = [ln.split() for ln in lines]
    else:
        rows = list(csv.reader(lines, delimiter=delim))
    header = [h.strip() for h in rows[0]]
    body = [[c.strip() for c in r] for r in rows[1:] if any(c.strip() for c in r)]
    norm = [_norm_key(h)[0] for h in header]
    units = [_norm_key(h)[1] for h in header]
    fcol = next((i for i, k in enumerate(norm) if k in _LOG_FILE_COLS), None)
    kind = "file"
    if fcol is None:
        fcol = next((i for i, k in enumerate(norm) if k in _LOG_FRAME_COLS), None)
        kind = "frame"
    tcands = [i for i, k in enumerate(norm) if k in _T_KEYS]
    tcands.sort(key=lambda i: norm[i] in ("setpoint", "settemperature"))   # measured first
    tcol = tcands[0] if tcands else None
    if tcol is None:
        tcol = next((i for i, k in enumerate(norm) if k.startswith("temp") or k.startswith("t(")),
                    None)
    if tcol is None:
        raise SeriesError(f"temperature log has no temperature column (columns: {header})",
                          path=path)
    timecol = next((i for i, k in enumerate(norm) if k in _TIME_KEYS), None)
    if fcol is None:
        kind = "order"
    unit = temperature_unit or units[tcol]
    if unit is None:
        low = header[tcol].lower()
        if "°c" in low or "degc" in low or "celsius" in low:
            unit = "C"
        elif "kelvin" in low:
            unit = "K"
    if unit is None:
        for c in comments:
            m = re.search(r"\b(kelvin|celsius|°c|degc|deg c|k)\b", c, re.I)
            if m and re.search(r"temp|\bT\b", c, re.I):
                unit = "K" if m.group(1).lower() in ("k", "kelvin") else "C"
    out: list[_LogRow] = []
    raw_t: list[float | None] = []
    for r_i, r in enumerate(body, start=2):
        if len(r) <= max(tcol, fcol or 0):
            raise SeriesError(f"row {r_i}: too few columns", path=path)
        try:
            tv = float(r[tcol]) if r[tcol] not in ("", "nan", "NaN", "NA") else None
        except ValueError:
            raise SeriesError(f"row {r_i}: temperature {r[tcol]!r} is not a number",
                              path=path) from None
        if tv is not None and not math.isfinite(tv):
            tv = None
        raw_t.append(tv)
        tm = None
        if timecol is not None and timecol < len(r) and r[timecol]:
            with contextlib.suppress(ValueError):
                tm = float(r[timecol]) * _TIME_UNITS.get((units[timecol] or "s").lower(), 1.0)
        out.append(_LogRow(key=r[fcol] if fcol is not None else str(r_i - 2),
                           temperature_c=None, time_s=tm))
    note = None
    finite = [v for v in raw_t if v is not None]
    if unit is None:
        if finite and min(finite) > 200:
            unit = "K"
            note = (f"log {path.name}: temperature unit not stated; all values > 200 so they "
                    "were taken as K (pass temperature_unit='C' if they are °C)")
        else:
            unit = "C"
            note = (f"log {path.name}: temperature unit not stated; taken as °C (pass "
                    "temperature_unit='K' if they are kelvin)")
    for row, tv in zip(out, raw_t):
        row.temperature_c = None if tv is None else temperature_to_c(tv, unit)[0]
    return out, kind, note


def _match_log(frames: list[Path], rows: list[_LogRow], kind: str, log: Path
               ) -> list[_LogRow]:
    matched: list[_LogRow | None] = []
    if kind == "order":
        if len(rows) != len(frames):
            raise SeriesError(f"log has no file/frame column and {len(rows)} rows for "
                              f"{len(frames)} frames", path=log)
        return rows
    index: dict[str, list[_LogRow]] = {}
    if kind == "file" and rows and all(re.fullmatch(r"\s*\d+\s*", r.key) for r in rows):
        kind = "frame"                 # a "file" column holding frame numbers
    if kind == "file":
        for r in rows:
            for k in {Path(r.key).name.lower(), Path(r.key).stem.lower(), r.key.lower()}:
                index.setdefault(k, []).append(r)
        for f in frames:
            hit = index.get(f.name.lower()) or index.get(f.stem.lower())
            matched.append(hit[0] if hit and len(hit) == 1 else None)
            if hit and len(hit) > 1:
                raise SeriesError(f"frame {f.name} appears {len(hit)} times in the log", path=log)
    else:
        for r in rows:
            with contextlib.suppress(ValueError, OverflowError):
                index.setdefault(str(int(float(r.key))), []).append(r)
        for f in frames:
            num = _frame_number(f)
            hit = index.get(str(num)) if num is not None else None
            if hit and len(hit) > 1:
                raise SeriesError(f"frame number {num} appears {len(hit)} times in the log",
                                  path=log)
            matched.append(hit[0] if hit else None)
    missing = [f.name for f, m in zip(frames, matched) if m is None]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise SeriesError(f"{len(missing)} frame(s) have no row in the temperature log: "
                          f"{', '.join(missing[:10])}{more}", path=log)
    return matched  # type: ignore[return-value]


# --- frame sources ---------------------------------------------------------------
def list_frames(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (list, tuple)):
        files = [Path(s) for s in source]
        desc = "the given list"
    else:
        s = str(source)
        p = Path(s)
        if p.is_dir():
            files = [q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                     and q.suffix.lower() in PATTERN_EXTENSIONS
                     and not _looks_like_log(q)]
            desc = f"directory {p}"
        elif any(c in s for c in "*?["):
            files = [Path(q) for q in _glob.glob(s) if Path(q).is_file()]
            desc = f"glob {s}"
        elif p.is_file():
            files = [p]
            desc = str(p)
        else:
            raise SeriesError("no such file, directory or glob match", path=s)
        files.sort(key=lambda q: natural_sort_key(q.name))
    if not files:
        raise SeriesError(f"no pattern files in {desc}", path=str(source) if not isinstance(
            source, (list, tuple)) else None)
    return files


def _looks_like_log(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    if re.search(r"(log|temp|temperature|meta)", path.stem, re.I):
        return True
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with path.open(encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        toks = [_norm_key(t)[0] for t in re.split(r"[,;\t]", first)]
        return any(t in _LOG_FILE_COLS for t in toks)
    return False


def _is_stack_file(path: Path) -> bool:
    with contextlib.suppress(OSError):
        with path.open("rb") as fh:
            head = fh.read(8)
        return head.startswith(HDF5_MAGIC) or head[:3] == b"CDF"
    return False


def iter_series_frames(source: str | Path | Sequence[str | Path], *,
                       temperatures: Sequence[float] | str | Path | None = None,
                       temperature_unit: str | None = None,
                       wavelength_angstrom: Any = None, force: bool = False,
                       instrument: str | Path | None = None, fmt: str | None = None,
                       axis: str | None = None, notes: list | None = None
                       ) -> Iterator[Pattern]:
    """Yield the frames of a series one at a time, in acquisition order, as `Pattern`s.

    source: a directory (pattern files, natural sort of names), a glob, a list of files
    (order kept), or one stacked HDF5/NeXus file.  Temperatures come from
    ``temperatures`` (a sequence in °C, or a CSV log path), else each file's header, else
    its name (``T153.5C``, ``25K``).  ``frame`` is the position in the series;
    ``meta["temperature_source"]`` says where T came from.  Each frame's λ is checked
    against ``wavelength_angstrom`` as in `read_pattern`.
    """
    notes = notes if notes is not None else []
    given = None if wavelength_angstrom is None else parse_radiation(wavelength_angstrom)
    if not isinstance(source, (list, tuple)) and Path(str(source)).is_file() and \
            _is_stack_file(Path(str(source))):
        path = Path(str(source))
        if _is_netcdf(path):
            da = _read_netcdf_series(path, lazy=True)  # one frame at a time from the file
            for i in range(da.sizes["frame"]):
                yield series_frame(da, i)
            return
        with reading_errors(path, "NeXus series"):
            x, Y2, E2, ax, md, extra, ndim = _nx_read(path, axis=axis)
        tvals = _given_temperatures(temperatures, Y2.shape[0], temperature_unit, path, notes)
        for i in range(Y2.shape[0]):
            p = _nx_pattern(path, x, Y2, E2, ax, md, extra, i)
            p.frame = i
            p.meta["source_frame"] = i
            if tvals is not None:
                p.temperature_c = tvals[i]
                p.meta["temperature_source"] = "given"
            elif p.temperature_c is not None:
                p.meta["temperature_source"] = "file"
            p.meta["original_source"] = extra["source"][i] if "source" in extra \
                else f"{path}#{i}"
            if "temperature_source" in extra:
                p.meta["temperature_source"] = extra["temperature_source"][i]
            yield apply_radiation(p, given, force=force, require=False, path=path)
        return
    if not isinstance(source, (list, tuple)) and Path(str(source)).is_file():
        blocks = read_all_patterns(Path(str(source)), fmt=fmt, axis=axis)
        if blocks is not None and len(blocks) > 1:
            yield from _block_frames(Path(str(source)), blocks, given=given, force=force,
                                     temperatures=temperatures, unit=temperature_unit,
                                     notes=notes)
            return
    files = list_frames(source)
    log_rows: list[_LogRow] | None = None
    tvals = None
    if isinstance(temperatures, (str, Path)):
        log = Path(temperatures)
        with reading_errors(log, "temperature log", SeriesError):
            rows, kind, note = _read_temperature_log(log, temperature_unit)
            log_rows = _match_log(files, rows, kind, log)
        if note:
            notes.append(note)
        if len(rows) > len(files):
            notes.append(f"log {log.name}: {len(rows) - len(files)} row(s) match no frame file "
                         "(ignored)")
    else:
        tvals = _given_temperatures(temperatures, len(files), temperature_unit, None, notes)
    for i, f in enumerate(files):
        p = read_pattern(f, wavelength_angstrom=given, force=force, fmt=fmt,
                         instrument=instrument, axis=axis)
        p.frame = i
        if log_rows is not None:
            row = log_rows[i]
            if p.temperature_c is not None:
                p.meta["temperature_header_c"] = p.temperature_c
            p.temperature_c = row.temperature_c
            p.meta["temperature_source"] = "log"
            if row.time_s is not None:
                p.time_s = row.time_s
        elif tvals is not None:
            p.temperature_c = tvals[i]
            p.meta["temperature_source"] = "given"
        elif p.temperature_c is not None:
            p.meta["temperature_source"] = "header"
            t_name = temperature_from_name(f.name)
            if t_name is not None and abs(t_name - p.temperature_c) > 1.0:
                p.meta["temperature_from_name_c"] = t_name
                notes.append(f"{f.name}: header T {p.temperature_c:.2f} °C differs from the "
                             f"name's {t_name:.2f} °C; header used")
        else:
            t_name = temperature_from_name(f.name)
            if t_name is not None:
                p.temperature_c = t_name
                p.meta["temperature_source"] = "file name"
        yield p


def _block_frames(path: Path, blocks: list[Pattern], *, given, force, temperatures, unit,
                  notes: list) -> Iterator[Pattern]:
    """The ranges/scans/blocks of one multi-block file (UXD, RAW, RAS, BRML, XRDML, pdCIF) as
    the frames of a series, in file order; T from ``temperatures`` or each block's header."""
    if isinstance(temperatures, (str, Path)):
        raise SeriesError("a temperature log cannot be matched to the ranges of one file; pass "
                          "a sequence of temperatures", path=path)
    tvals = _given_temperatures(temperatures, len(blocks), unit, path, notes)
    notes.append(f"{path.name}: {len(blocks)} {blocks[0].meta.get('format', '')} ranges/scans "
                 "read as frames")
    for i, p in enumerate(blocks):
        p.frame = i
        p.meta["source_frame"] = i
        p.meta["original_source"] = f"{path}#{i}"
        if tvals is not None:
            p.temperature_c = tvals[i]
            p.meta["temperature_source"] = "given"
        elif p.temperature_c is not None:
            p.meta["temperature_source"] = "header"
        yield apply_radiation(p, given, force=force, require=False, path=path)


def _given_temperatures(temperatures, n: int, unit: str | None, path, notes: list
                        ) -> list[float] | None:
    if temperatures is None:
        return None
    if isinstance(temperatures, (str, Path)):
        raise SeriesError("a temperature log cannot be combined with a stacked file; give a "
                          "sequence of temperatures", path=path)
    vals = [float(v) for v in temperatures]
    if len(vals) != n:
        raise SeriesError(f"{len(vals)} temperatures given for {n} frames", path=path)
    if unit is not None:
        vals = [temperature_to_c(v, unit)[0] for v in vals]
    return vals


def _iter_table_frames(path: Path, *, given, force, axis, notes
                       ) -> list[Pattern] | None:
    """Frames of a wide text table (x column + one intensity column per frame), or None."""
    text = decode_text(read_bytes(path), path)
    text, block = _strip_block_comments(text, path)
    header, rows, names = list(block), [], None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        toks = [t for t in _SPLIT_RE.split(line.lstrip("#!;' ")) if t]
        if line.startswith(_COMMENT_CHARS) or (not rows and toks and not _is_number(toks[0])):
            header.append(line)
            if toks and not any(_is_number(t) for t in toks[:1]) and "=" not in line and \
                    ":" not in line and len(toks) >= 3:
                names = toks
            continue
        rows.append((lineno, line))
    if not rows:
        raise EmptyPatternError("no numeric data lines", path=path)
    data = _parse_number_rows(rows, path, False)
    ncol = data.shape[1]
    sigma_like = names is not None and len(names) >= 3 and re.fullmatch(
        r"(sigma.*|e|esd|err.*|error|dy|s|σ.*)", names[2].lower())
    if ncol < 3 or (ncol == 3 and (names is None or sigma_like)):
        return None
    hdr = parse_header_lines(header)
    file_axis = hdr.axis
    if names and len(names) == ncol:
        ax = _axis_from_label(names[0])
        if ax and not math.isnan(ax[1]):
            file_axis = ax[0]
            data[:, 0] *= ax[1]
    the_axis = axis or file_axis or "two_theta_deg"
    frames = []
    for j in range(1, ncol):
        label = names[j] if names and len(names) == ncol else f"column {j + 1}"
        h = replace(hdr, raw=dict(hdr.raw), temperature_c=temperature_from_name(label),
                    temperature_note=None)
        p = make_pattern(path, data[:, 0], data[:, j], None, the_axis, h, "table",
                          {"column": label})
        p.frame = j - 1
        if p.temperature_c is not None:
            p.meta["temperature_source"] = "column name"
        p.meta["original_source"] = f"{path}#{label}"
        frames.append(apply_radiation(p, given, force=force, require=False, path=path))
    return frames


def _is_netcdf(path: Path) -> bool:
    """netCDF by extension or by the classic magic bytes (read only the first bytes)."""
    with open(path, "rb") as fh:
        magic = fh.read(3)
    return magic == b"CDF" or path.suffix.lower() in (".nc", ".nc4", ".cdf")


def _read_netcdf_series(path: Path, *, lazy: bool = False):
    """A series written by `write_series` (netCDF). ``lazy``: leave the intensities in the file
    (frames are read when indexed), so that memory does not grow with the number of frames."""
    import xarray as xr
    with reading_errors(path, "a netCDF series", SeriesError):
        if lazy:
            da = xr.open_dataarray(path)
        else:
            with xr.open_dataarray(path) as da:
                da = da.load()
    if da.ndim != 2 or da.dims[0] != "frame" or da.dims[1] not in AXES:
        raise SeriesError(f"netCDF variable has dims {da.dims}; need ('frame', axis)", path=path)
    n = da.sizes["frame"]
    if "temperature_c" not in da.coords:
        da = da.assign_coords(temperature_c=("frame", np.full(n, np.nan)))
    if "segment" not in da.coords:
        da = da.assign_coords(segment=("frame", label_segments(
            da.temperature_c.values, float(da.attrs.get("segment_tolerance_c",
                                                         DEFAULT_HOLD_TOLERANCE_C)))))
    if "source" not in da.coords:
        da = da.assign_coords(source=("frame", [f"{path}#{i}" for i in range(n)]))
    return da


def series_frame(da, i: int) -> Pattern:
    """Frame ``i`` of a series DataArray as a `Pattern` (λ and T from coords/attrs)."""
    axis = da.dims[1]
    c = da.coords
    def _opt(name):
        if name in c:
            v = float(c[name].values[i])
            return v if math.isfinite(v) else None
        return None
    sig = np.asarray(c["sigma"].values[i], float) if "sigma" in c else None
    return Pattern(x=np.asarray(c[axis].values, float), intensity=np.asarray(da.values[i], float),
                   sigma=sig, axis=axis,
                   wavelength_angstrom=da.attrs.get("wavelength_angstrom"),
                   wavelength2_angstrom=da.attrs.get("wavelength2_angstrom"),
                   ka2_ratio=da.attrs.get("ka2_ratio"),
                   temperature_c=_opt("temperature_c"), time_s=_opt("time_s"),
                   source=str(c["source"].values[i]) if "source" in c else None, frame=i,
                   meta={"segment": str(c["segment"].values[i])} if "segment" in c else {})


def _same_grid(x: np.ndarray, x0: np.ndarray) -> bool:
    if x.shape != x0.shape:
        return False
    step = float(np.median(np.abs(np.diff(x0)))) if x0.size > 1 else 1.0
    return bool(np.max(np.abs(x - x0)) <= 1e-4 * step)


def _common_wavelength(frames: list[Pattern], names: list, src_path, require: bool, notes: list
                       ) -> int | None:
    """Index of the first frame stating λ; every frame must state the same λ (within
    `xtal.beam.WAVELENGTH_RTOL`), else `SeriesError`.  None when no frame states one."""
    ref = next((i for i, p in enumerate(frames) if p.wavelength_angstrom is not None), None)
    if ref is not None:
        l0 = frames[ref].wavelength_angstrom
        for i, p in enumerate(frames):
            if p.wavelength_angstrom is None:
                raise SeriesError(f"{names[i]} states no wavelength while {names[ref]} has "
                                  f"{l0} Å; pass wavelength_angstrom=", path=src_path)
            if abs(p.wavelength_angstrom - l0) > WAVELENGTH_RTOL * l0:
                raise SeriesError(f"frames have different wavelengths: {names[ref]} {l0} Å, "
                                  f"{names[i]} {p.wavelength_angstrom} Å", path=src_path)
    elif require:
        raise MissingWavelengthError("no frame states a wavelength; pass wavelength_angstrom=",
                                     path=src_path)
    else:
        notes.append("no frame states a wavelength (d/Q conversions need wavelength_angstrom=)")
    return ref


def _stack(frames: list[Pattern], names: list, regrid: bool, src_path, stored_interpolation: str):
    """(grid, Y frame × x, S or None, interpolation note): the frames on one x grid; frames on
    another grid raise `SeriesError` unless ``regrid`` (linear interpolation onto frame 0's grid)."""
    x0 = frames[0].x
    differ = [i for i, p in enumerate(frames) if not _same_grid(p.x, x0)]
    if differ and not regrid:
        raise SeriesError(f"{len(differ)} frame(s) are on a different x grid from {names[0]} "
                          f"(first: {names[differ[0]]}); pass regrid=True to interpolate "
                          "linearly onto a common grid", path=src_path)
    have_sigma = all(p.sigma is not None for p in frames)
    if differ:
        lo = max(float(p.x[0]) for p in frames)
        hi = min(float(p.x[-1]) for p in frames)
        grid = x0[(x0 >= lo) & (x0 <= hi)]
        if grid.size < 2:
            raise SeriesError("frames share no common x range to interpolate onto",
                              path=src_path)
        Y = np.vstack([np.interp(grid, p.x, p.intensity) for p in frames])
        S = np.vstack([np.interp(grid, p.x, p.sigma) for p in frames]) if have_sigma else None
        interpolation = (f"linear (numpy.interp) of {len(differ)} frame(s) "
                         f"[{', '.join(Path(names[i]).name for i in differ[:10])}] onto the grid "
                         f"of {Path(names[0]).name} restricted to the common range "
                         f"{lo:g}–{hi:g} ({grid.size} points); sigma interpolated linearly")
    else:
        grid = x0
        Y = np.vstack([p.intensity for p in frames])
        S = np.vstack([p.sigma for p in frames]) if have_sigma else None
        interpolation = stored_interpolation
    return grid, Y, S, interpolation


def read_series(source: str | Path | Sequence[str | Path], *,
                temperatures: Sequence[float] | str | Path | None = None,
                temperature_unit: str | None = None, wavelength_angstrom: Any = None,
                force: bool = False, instrument: str | Path | None = None,
                fmt: str | None = None, axis: str | None = None, regrid: bool = False,
                hold_tolerance_c: float = DEFAULT_HOLD_TOLERANCE_C, min_hold_frames: int = 3,
                require_wavelength: bool = False, lazy: bool = False):
    """A thermal series as an ``xarray.DataArray`` (dims ``("frame", axis)``, name "intensity").

    source: directory / glob / list of frame files (acquisition order: natural sort of
    names, or the list order — never sorted by temperature), a stacked NeXus/HDF5 file, a
    netCDF written by `write_series`, or one wide text table (x + one column per frame).
    Coords per frame: ``temperature_c`` (NaN if unknown), ``time_s`` (when known: header,
    log, or start timestamps relative to the first frame), ``segment`` (see
    `label_segments`, tolerance ``hold_tolerance_c`` °C), ``source``,
    ``temperature_source``; ``sigma`` (frame × x) when every frame has σ.
    Attrs: ``wavelength_angstrom`` (+ ``wavelength2_angstrom``, ``ka2_ratio``) when known,
    ``interpolation`` ("none" or what was done), ``segment_tolerance_c``, notes.
    Frames on different grids raise `SeriesError` unless ``regrid=True`` (linear
    interpolation onto frame 0's grid within the common range).  Frames with different λ
    raise `SeriesError` naming the files.  ``lazy=True`` leaves a netCDF series' intensities in the
    file (read per frame when indexed; for very long series).
    """
    import xarray as xr
    notes: list[str] = []
    given = None if wavelength_angstrom is None else parse_radiation(wavelength_angstrom)
    src_path = None if isinstance(source, (list, tuple)) else Path(str(source))
    stored_attrs: dict = {}
    if src_path is not None and src_path.is_file() and _is_stack_file(src_path) and _is_netcdf(src_path):
        da = _read_netcdf_series(src_path, lazy=lazy)
        da.attrs["series_file"] = str(src_path)
        return da
    frames: list[Pattern] | None = None
    if src_path is not None and src_path.is_file() and not _is_stack_file(src_path):
        if sniff_format(src_path, read_bytes(src_path)[:4096]) == "columns":
            frames = _iter_table_frames(src_path, given=given,
                                        force=force, axis=axis, notes=notes)
            if frames is not None and temperatures is not None:
                tv = _given_temperatures(temperatures, len(frames), temperature_unit, src_path,
                                         notes)
                for p, t in zip(frames, tv):
                    p.temperature_c = t
                    p.meta["temperature_source"] = "given"
    if frames is None:
        frames = list(iter_series_frames(
            source, temperatures=temperatures, temperature_unit=temperature_unit,
            wavelength_angstrom=given, force=force, instrument=instrument,
            fmt=fmt, axis=axis, notes=notes))
    if src_path is not None and src_path.is_file() and _is_stack_file(src_path):
        with contextlib.suppress(Exception):
            _, _, _, _, _, extra, _ = _nx_read(src_path, axis=axis)
            stored_attrs = extra.get("xtal_attrs", {}) or {}
    if not frames:
        raise SeriesError("series has no frames", path=src_path)
    names = [p.meta.get("original_source") or p.source or f"frame {i}"
             for i, p in enumerate(frames)]
    # axis and wavelength consistency
    axes = {p.axis for p in frames}
    if len(axes) > 1:
        raise SeriesError(f"frames are on different axes {sorted(axes)}", path=src_path)
    the_axis = frames[0].axis
    ref = _common_wavelength(frames, names, src_path, require_wavelength, notes)
    # grids
    grid, Y, S, interpolation = _stack(frames, names, regrid, src_path,
                                       stored_attrs.get("interpolation", "none"))
    T = np.array([np.nan if p.temperature_c is None else p.temperature_c for p in frames])
    times = [p.time_s for p in frames]
    time_origin = None
    if any(t is None for t in times):
        stamps = [p.meta.get("timestamp") for p in frames]
        if all(stamps):
            with contextlib.suppress(ValueError, TypeError):
                dts = [_dt.datetime.fromisoformat(s) for s in stamps]
                times = [(d - dts[0]).total_seconds() for d in dts]
                time_origin = stamps[0]
    segments = label_segments(T, hold_tolerance_c, min_hold_frames)
    coords: dict = {
        "frame": np.arange(len(frames)),
        the_axis: grid,
        "temperature_c": ("frame", T),
        "segment": ("frame", segments),
        "source": ("frame", [str(n) for n in names]),
        "temperature_source": ("frame", [str(p.meta.get("temperature_source", "none"))
                                         for p in frames]),
    }
    if any(t is not None for t in times):
        coords["time_s"] = ("frame", np.array([np.nan if t is None else t for t in times]))
    if S is not None:
        coords["sigma"] = (("frame", the_axis), S)
    unit_notes = sorted({p.meta["temperature_unit_note"] for p in frames
                         if p.meta.get("temperature_unit_note")} |
                        {n for n in notes if "unit" in n})
    attrs: dict = {"axis": the_axis, "interpolation": interpolation,
                   "segment_tolerance_c": float(hold_tolerance_c),
                   "segment_min_hold_frames": int(min_hold_frames),
                   "n_frames": len(frames)}
    if ref is not None:
        f0 = frames[ref]
        attrs["wavelength_angstrom"] = f0.wavelength_angstrom
        if f0.wavelength2_angstrom is not None:
            attrs["wavelength2_angstrom"] = f0.wavelength2_angstrom
            if f0.ka2_ratio is not None:
                attrs["ka2_ratio"] = f0.ka2_ratio
    if unit_notes:
        attrs["temperature_unit_note"] = "; ".join(unit_notes)
    other = [n for n in notes if "unit" not in n]
    if other:
        attrs["notes"] = "; ".join(other)
    if time_origin:
        attrs["time_origin"] = time_origin
    if np.isnan(T).any():
        attrs["frames_without_temperature"] = int(np.isnan(T).sum())
    attrs["frame_meta_json"] = json.dumps(json_safe(
        [{k: v for k, v in p.meta.items() if k != "header"} for p in frames]))
    for k, v in stored_attrs.items():          # attrs written by write_series (HDF5)
        attrs.setdefault(k, v)
    if src_path is not None and src_path.is_file():
        attrs["series_file"] = str(src_path)
    return xr.DataArray(Y, dims=("frame", the_axis), coords=coords, name="intensity",
                        attrs=attrs)


def _netcdf_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, (dict, list, tuple)):
            out[k] = json.dumps(json_safe(v))
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
        else:
            out[k] = v
    return out


def write_series(da, path: str | Path, *, fmt: str | None = None, overwrite: bool = False
                 ) -> Path:
    """Write a series DataArray atomically as netCDF (.nc, netcdf4 engine) or NeXus HDF5 (.h5).

    Refuses to overwrite any of the series' source files (coord ``source``) or an existing
    file unless ``overwrite=True``.  `read_series` reads both back.
    """
    path = Path(path)
    kind = fmt or {".nc": "netcdf", ".nc4": "netcdf", ".h5": "nexus", ".hdf5": "nexus",
                   ".nxs": "nexus", ".hdf": "nexus"}.get(path.suffix.lower())
    if kind not in ("netcdf", "nexus"):
        raise PatternFormatError("series are written as .nc (netCDF) or .h5/.nxs (NeXus)",
                                 path=path)
    if da.ndim != 2 or da.dims[0] != "frame" or da.dims[1] not in AXES:
        raise SeriesError(f"DataArray dims {da.dims}; need ('frame', axis)", path=path)
    protected = []
    if "source" in da.coords:
        protected += [str(s).split("#", 1)[0] for s in da.coords["source"].values]
    if da.attrs.get("series_file"):
        protected.append(da.attrs["series_file"])
    axis = da.dims[1]

    def _writer(tmp: Path) -> None:
        if kind == "netcdf":
            out = da.copy()
            out.attrs = _netcdf_attrs({k: v for k, v in da.attrs.items() if k != "series_file"})
            out.to_netcdf(tmp, engine="netcdf4")
        else:
            c = da.coords
            per = {"temperature_c": (c["temperature_c"].values, "degC")} \
                if "temperature_c" in c else {}
            if "time_s" in c:
                per["time_s"] = (c["time_s"].values, "s")
            strings = {k: c[k].values for k in ("source", "segment", "temperature_source")
                       if k in c}
            attrs = {k: v for k, v in da.attrs.items() if k not in (
                "wavelength_angstrom", "wavelength2_angstrom", "ka2_ratio", "series_file")}
            _write_nxdata(tmp, np.asarray(c[axis].values, float), axis,
                          np.asarray(da.values, float),
                          np.asarray(c["sigma"].values, float) if "sigma" in c else None,
                          (da.attrs.get("wavelength_angstrom"),
                           da.attrs.get("wavelength2_angstrom"), da.attrs.get("ka2_ratio")),
                          per, strings, attrs, None)

    return atomic_write(path, _writer, overwrite=overwrite, protected=protected)
