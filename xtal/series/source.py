"""Frames of a series: from a DataArray (possibly lazily backed by netCDF), a path, or a list.

`FrameSource` gives uniform, index-based access to frames (a DataArray is sliced, files are read
with `xtal.io.iter_series_frames`), `to_pattern` turns a fetched item into a `Pattern`, and
`frame_meta` reads what a frame states about itself (temperature, time, segment, source).  All the
wavelength handling of the series (the reference λ and the per-frame check) lives here, in
`reference_wavelength` and `check_wavelength`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xtal.beam import WAVELENGTH_RTOL, parse_radiation
from xtal.errors import PatternError, SeriesError, WavelengthMismatchError, XtalError

__all__ = ["FrameSource", "FrameWavelengthError", "to_pattern", "frame_meta", "binned_intensity",
           "heat_grid", "reference_wavelength", "check_wavelength"]

#: relative tolerance on λ between the frames of one series


class FrameWavelengthError(SeriesError):
    """A frame's wavelength differs from the series' (never skipped: the series is inconsistent)."""


# ----------------------------------------------------------------------------------------------
# wavelength (the one place the series resolves and compares λ)
# ----------------------------------------------------------------------------------------------
def reference_wavelength(wavelength, attrs: dict) -> float | None:
    """λ (Å) the series is analysed with: the one given, else the DataArray's attribute."""
    if wavelength is not None:
        return parse_radiation(wavelength).primary
    v = attrs.get("wavelength_angstrom")
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def check_wavelength(pat, ref: float | None, i: int) -> None:
    """Raise `FrameWavelengthError` when frame i's λ differs from the series' λ."""
    lam = getattr(pat, "wavelength_angstrom", None)
    if ref is None or lam is None:
        return
    if abs(lam - ref) > WAVELENGTH_RTOL * ref:   # the reader's tolerance (xtal.beam)
        raise FrameWavelengthError(f"frame {i}: wavelength {lam} Å differs from the series' {ref} Å "
                                   "(frames of one series must share λ)",
                                   path=getattr(pat, "source", None))


# ----------------------------------------------------------------------------------------------
# entry checks (before any frame is fitted)
# ----------------------------------------------------------------------------------------------
#: Fewest frames a series analysis accepts (one frame has no series: use identify).
MIN_FRAMES = 2
#: Absolute zero in °C: no temperature may lie below it.
ABSOLUTE_ZERO_C = -273.15


def check_temperatures(temperatures, n_frames: int, paths=None) -> None:
    """Temperatures given for the series: one per frame, finite and above absolute zero.

    ``temperatures`` is a sequence (°C) or a log file (read here once more only to count and check
    its rows: a log with more or fewer rows than frames is refused, not silently matched).
    """
    if temperatures is None:
        return
    if isinstance(temperatures, (str, Path)):
        from xtal.io.series import _read_temperature_log

        log = Path(temperatures)
        try:
            rows, _kind, _note = _read_temperature_log(log, None)
        except XtalError:
            raise
        except (OSError, ValueError) as exc:
            raise SeriesError(f"cannot read the temperature log: {exc}", path=log) from None
        if paths is not None and len(rows) != n_frames:
            raise SeriesError(f"the temperature log has {len(rows)} rows for {n_frames} frames; give "
                              "one row per frame", path=log)
        values = [(f"row {k + 2}", r.temperature_c) for k, r in enumerate(rows)]
        where = log
    else:
        try:
            vals = [float(v) for v in temperatures]
        except (TypeError, ValueError):
            raise SeriesError("temperatures must be numbers (°C)", field="temperatures") from None
        if len(vals) != n_frames:
            raise SeriesError(f"{len(vals)} temperatures given for {n_frames} frames",
                              field="temperatures")
        values = [(f"frame {k}", v) for k, v in enumerate(vals)]
        where = None
    for name, t in values:
        if t is None or not math.isfinite(t):
            raise SeriesError(f"{name}: the temperature is missing or not a number", path=where,
                              field="temperature")
        if t < ABSOLUTE_ZERO_C:
            raise SeriesError(f"{name}: {t:g} °C is below absolute zero", path=where, field="temperature")


# ----------------------------------------------------------------------------------------------
# sources
# ----------------------------------------------------------------------------------------------
class FrameSource:
    """Uniform access to frames: fetch by index (DataArray slices, files streamed in order)."""

    def __init__(self, series, *, wavelength=None, temperatures=None, instrument=None):
        import xarray as xr

        from xtal import io as patterns

        self.patterns = patterns
        self.da = None
        self.paths: list | None = None
        self.items: list | None = None
        self.attrs: dict = {}
        self.wavelength = wavelength
        self.temperatures = temperatures
        self.instrument = instrument
        self.temps = None
        self.notes: list[str] = []
        if isinstance(series, xr.DataArray):
            self._init_dataarray(series, temperatures)
        elif isinstance(series, (str, Path)):
            p = Path(series)
            if p.is_file() and p.suffix.lower() in (".nc", ".nc4", ".h5", ".hdf5", ".nxs", ".hdf"):
                da = patterns.read_series(p, temperatures=temperatures, wavelength_angstrom=wavelength,
                                          lazy=True)
                self._init_dataarray(da, None)
            else:
                self.paths = patterns.list_frames(p)
                if self.paths is None:
                    self.items = list(patterns.iter_series_frames(p, temperatures=temperatures,
                                                                  wavelength_angstrom=wavelength))
                    self.n = len(self.items)
                else:
                    self.n = len(self.paths)
        elif isinstance(series, (list, tuple)):
            if series and all(isinstance(s, (str, Path)) for s in series):
                self.paths = [Path(s) for s in series]
                self.n = len(self.paths)
            else:
                self.items = list(series)
                self.n = len(self.items)
        else:
            raise SeriesError(f"cannot analyse a series given as {type(series).__name__}; give a "
                              "DataArray, a path or a list of Patterns")
        if self.n == 0:
            raise SeriesError("the series has no frames")
        if self.n < MIN_FRAMES:
            raise SeriesError(f"a thermal series needs at least {MIN_FRAMES} frames, got {self.n}; "
                              "use `xtal identify` for a single pattern")
        check_temperatures(temperatures, self.n, self.paths)

    def _init_dataarray(self, da, temperatures) -> None:
        if da.ndim != 2 or da.dims[0] != "frame":
            raise SeriesError(f"series DataArray has dims {da.dims}; need ('frame', axis)")
        self.da = da
        self.attrs = dict(da.attrs)
        self.n = int(da.sizes["frame"])
        if temperatures is not None:
            t = np.asarray(list(temperatures), float)
            if t.size != self.n:
                raise SeriesError(f"{t.size} temperatures given for {self.n} frames")
            self.temps = t
        # per-frame coordinates and the x axis, read once (small; the intensities stay lazy)
        self._cc = {k: np.asarray(v.values) for k, v in da.coords.items()
                    if v.ndim == 1 and v.dims[0] == "frame"}
        self._x = np.asarray(da.coords[da.dims[1]].values, float)

    def _frames_from_da(self, idx: list[int]) -> dict[int, dict]:
        """Frames idx (sorted) of the DataArray.  A run of frames is read as one block (one read of
        a lazily backed file instead of one per frame, ~1 ms each); scattered frames one by one."""
        if not idx:
            return {}
        lo, hi = idx[0], idx[-1] + 1
        if len(idx) == 1 or hi - lo > 2 * len(idx):
            return {i: self._frame_from_da(i) for i in idx}
        sel = {"frame": slice(lo, hi)}
        y = _stored_floats(self.da.isel(sel).values)
        sig = (_stored_floats(self.da.coords["sigma"].isel(sel).values)
               if "sigma" in self.da.coords else None)
        # each frame's row is a view of the block (rows do not overlap; no second copy of it)
        return {i: self._frame_from_da(i, y[i - lo], None if sig is None else sig[i - lo])
                for i in idx}

    def _frame_from_da(self, i: int, y: np.ndarray | None = None,
                       sig: np.ndarray | None = None) -> dict:
        """Frame i as a dict of arrays and metadata (`y`, `sig`: its row when already read)."""
        da, c = self.da, self._cc

        def opt(name):
            if name in c:
                try:
                    v = float(c[name][i])
                except (TypeError, ValueError):
                    return None
                return v if math.isfinite(v) else None
            return None

        if y is None:
            y = _stored_floats(da.isel(frame=i).values)
            if "sigma" in da.coords:
                sig = _stored_floats(da.coords["sigma"].isel(frame=i).values)   # one row (lazy files)
        meta = {"segment": str(c["segment"][i])} if "segment" in c else {}
        src = str(c["source"][i]) if "source" in c else f"frame {i}"
        t = self.temps[i] if self.temps is not None else opt("temperature_c")
        return dict(x=self._x, y=y, sigma=sig,
                    axis=da.dims[1], temperature_c=t, time_s=opt("time_s"), source=src, meta=meta,
                    wavelength_angstrom=self.attrs.get("wavelength_angstrom"),
                    wavelength2_angstrom=self.attrs.get("wavelength2_angstrom"),
                    ka2_ratio=self.attrs.get("ka2_ratio"))

    def _frames_from_paths(self, idx: Sequence[int]) -> dict:
        """Read frames idx (sorted) of a file list; unreadable files become error dicts."""
        out = {}
        todo = list(idx)
        temps = self.temperatures
        while todo:
            files = [self.paths[i] for i in todo]
            tsel = None
            if temps is not None and not isinstance(temps, (str, Path)):
                tv = list(temps)
                if len(tv) != self.n:
                    raise SeriesError(f"{len(tv)} temperatures given for {self.n} frames")
                tsel = [tv[i] for i in todo]
            it = self.patterns.iter_series_frames(
                files, temperatures=tsel if tsel is not None else temps,
                wavelength_angstrom=self.wavelength, instrument=self.instrument)
            k = 0
            try:
                for p in it:
                    out[todo[k]] = p
                    k += 1
                todo = []
            except SeriesError:
                raise
            except XtalError as exc:
                if not isinstance(exc, PatternError) or isinstance(exc, WavelengthMismatchError):
                    raise
                out[todo[k]] = {"error": f"{type(exc).__name__}: {exc}", "source": str(files[k])}
                todo = todo[k + 1:]
        return out

    def fetch(self, idx: Sequence[int]) -> dict[int, Any]:
        """Frames by index: dict index -> Pattern, dict of arrays, or {"error": ...}."""
        idx = sorted(set(int(i) for i in idx))
        if self.da is not None:
            return self._frames_from_da(idx)
        if self.items is not None:
            return {i: self.items[i] for i in idx}
        return self._frames_from_paths(idx)

    def fetch_items(self, a: int, b: int) -> list[tuple[int, Any]]:
        """Frames a..b-1 as (index, item) pairs."""
        got = self.fetch(range(a, b))
        return [(i, got[i]) for i in range(a, b)]


def _stored_floats(values) -> np.ndarray:
    """Intensities as stored when they are floating point (float32 stays float32: half the bytes
    to send to a worker; `Pattern` makes them float64, exactly), else as float64."""
    v = np.asarray(values)
    return v if v.dtype.kind == "f" else v.astype(float)


def to_pattern(item, i: int, notes: list, max_nan_fraction: float):
    """A Pattern from a fetched item, masking a few NaN points; raises XtalError when unusable."""
    from xtal.io import Pattern

    if isinstance(item, dict) and "error" in item:
        raise SeriesError(item["error"], path=item.get("source"))
    if not isinstance(item, dict):
        return item
    x, y, s = item["x"], item["y"], item["sigma"]
    bad = ~np.isfinite(y) | ~np.isfinite(x)
    if s is not None:
        bad |= ~np.isfinite(s)
    if bad.all():
        raise SeriesError(f"frame {i}: no finite intensity (all NaN)", path=item.get("source"))
    frac = bad.mean()
    if frac > max_nan_fraction:
        raise SeriesError(f"frame {i}: {100 * frac:.1f} % of the points are NaN/inf "
                          f"(more than {100 * max_nan_fraction:.0f} %)", path=item.get("source"))
    if bad.any():
        notes.append(f"frame {i}: {int(bad.sum())} NaN/inf points masked")
        x, y = x[~bad], y[~bad]
        s = s[~bad] if s is not None else None
    return Pattern(x=x, intensity=y, sigma=s, axis=item["axis"],
                   wavelength_angstrom=item["wavelength_angstrom"],
                   wavelength2_angstrom=item["wavelength2_angstrom"], ka2_ratio=item["ka2_ratio"],
                   temperature_c=item["temperature_c"], time_s=item["time_s"],
                   source=item["source"], frame=i, meta=item["meta"])


def frame_meta(item, i: int) -> dict:
    """What a fetched item states about its frame: temperature_c, time_s, segment, source."""
    def g(name, default=float("nan")):
        v = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
        return default if v is None else v

    meta = item.get("meta", {}) if isinstance(item, dict) else getattr(item, "meta", {}) or {}
    seg = str(meta.get("segment", "")) if isinstance(meta, dict) else ""
    t, ts = g("temperature_c"), g("time_s")
    return {"temperature_c": float(t) if t is not None else float("nan"),
            "time_s": float(ts) if ts is not None else float("nan"),
            "segment": seg, "source": str(g("source", f"frame {i}"))}


def binned_intensity(pattern, bins: int, lo_hi: tuple[float, float] | None) -> np.ndarray | None:
    """The frame's intensity averaged in `bins` 2θ bins over lo_hi (the heat-map row)."""
    if not bins:
        return None
    x = np.asarray(pattern.two_theta_deg(), float)
    y = np.asarray(pattern.intensity, float)
    lo, hi = lo_hi if lo_hi else (x[0], x[-1])
    edges = np.linspace(lo, hi, bins + 1)
    s, _ = np.histogram(x, edges, weights=y)
    n, _ = np.histogram(x, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s / n).astype(np.float32)


def heat_grid(src: FrameSource, two_theta_range, heatmap_bins: int, wl_ref: float | None):
    """From the first readable frame: the heat-map 2θ range and bin centres, the reference λ (when
    not known yet) and whether the frames say they are synthetic."""
    for i in range(src.n):
        try:
            p0 = to_pattern(src.fetch([i])[i], i, [], 1.0)
        except XtalError:
            continue
        x0 = np.asarray(p0.two_theta_deg(), float)
        lo_hi = (float(x0[0]), float(x0[-1])) if two_theta_range is None else tuple(two_theta_range)
        heat_x = None
        if heatmap_bins and lo_hi:
            e = np.linspace(lo_hi[0], lo_hi[1], heatmap_bins + 1)
            heat_x = 0.5 * (e[1:] + e[:-1])
        wl = wl_ref if wl_ref is not None else p0.wavelength_angstrom
        return lo_hi, heat_x, wl, bool(p0.meta.get("synthetic"))
    raise SeriesError("no frame of the series can be read")
