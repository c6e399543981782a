"""NeXus/HDF5 ``NXdata`` (``@signal``, ``@axes``), 1D or stacked 2D: reader and writer."""
from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import PatternFormatError
from xtal.io.columns import _axis_from_label
from xtal.io.common import json_safe, make_pattern
from xtal.io.header import HeaderInfo, temperature_to_c
from xtal.io.pattern import Pattern


# --- NeXus / HDF5 -------------------------------------------------------------
def _attr_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and (v.shape == () or v.size == 1):
        return _attr_str(v.reshape(())[()])   # a scalar, or a one-element array (DLS writes these)
    if isinstance(v, (np.bytes_,)):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


def _attr_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (np.ndarray, list, tuple)) and not (isinstance(v, np.ndarray) and v.shape == ()):
        return [_attr_str(a) or "" for a in v]
    s = _attr_str(v) or ""
    return [t for t in re.split(r"[:,\s]+", s) if t]


def _open_h5(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise PatternFormatError(f"not a readable HDF5/NeXus file ({exc})", path=path) from None


def _nx_class(obj) -> str:
    return _attr_str(obj.attrs.get("NX_class")) or ""


def _find_nxdata(f, path: Path):
    import h5py
    # follow @default chain first
    g = f
    for _ in range(4):
        d = _attr_str(g.attrs.get("default"))
        if not d or d not in g or not isinstance(g[d], h5py.Group):
            break
        g = g[d]
        if _nx_class(g) == "NXdata":
            return g
    found = []

    def _visit(name, obj):
        if isinstance(obj, h5py.Group) and _nx_class(obj) == "NXdata":
            found.append(obj)

    f.visititems(_visit)
    if not found:
        raise PatternFormatError("no NXdata group (with @NX_class = NXdata) in the HDF5 file",
                                 path=path)
    found.sort(key=lambda grp: grp.name)
    return found[0]


def _units_factor_length(units: str | None) -> float:
    u = (units or "angstrom").strip().lower()
    return {"angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "å": 1.0, "ang": 1.0, "nm": 10.0,
            "nanometer": 10.0, "nanometre": 10.0, "m": 1e10, "pm": 0.01}.get(u, float("nan"))


def _nx_axis(name: str, units: str | None) -> tuple[str, float]:
    """(axis, factor) for an NXdata axis dataset name and @units."""
    u = (units or "").strip().lower().replace(" ", "")
    if u in ("deg", "degree", "degrees", "°"):
        return "two_theta_deg", 1.0
    if u in ("rad", "radian", "radians"):
        return "two_theta_deg", float("nan")
    if u in ("1/angstrom", "angstrom^-1", "å^-1", "a^-1", "1/a", "1/å", "angstrom-1", "inv_angstrom"):
        return "q_inv_angstrom", 1.0
    if u in ("1/nm", "nm^-1", "nm-1", "inv_nm"):
        return "q_inv_angstrom", 0.1
    if u in ("angstrom", "å", "a"):
        return "d_angstrom", 1.0
    if u in ("nm",):
        return "d_angstrom", 10.0
    ax = _axis_from_label(name)
    if ax is None:
        raise PatternFormatError(f"NXdata axis {name!r} (units {units!r}) is not 2θ, Q or d")
    return ax


def _nx_scalar_with_units(ds) -> tuple[np.ndarray, str | None]:
    return np.atleast_1d(np.asarray(ds[()], dtype=float)), _attr_str(ds.attrs.get("units"))


def _nx_metadata(f, nxdata, path: Path) -> dict:
    """wavelength / temperature / time arrays found in the file."""
    import h5py
    out: dict = {}
    cands: dict[str, list] = {"wl": [], "wl2": [], "ratio": [], "t": [], "time": []}

    def _visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        leaf = name.rsplit("/", 1)[-1].lower()
        parent_cls = _nx_class(obj.parent)
        if leaf in ("wavelength", "incident_wavelength", "wavelength_angstrom", "lambda"):
            cands["wl"].append((0 if parent_cls in ("NXmonochromator", "NXbeam") else 1, obj))
        elif leaf in ("wavelength2", "wavelength2_angstrom"):
            cands["wl2"].append((0, obj))
        elif leaf in ("ka2_ratio",):
            cands["ratio"].append((0, obj))
        elif leaf in ("temperature", "temperature_c", "sample_temperature"):
            cands["t"].append((0 if parent_cls in ("NXsample", "NXdata") else 1, obj))
        elif leaf in ("time_s", "elapsed_time"):
            cands["time"].append((0, obj))

    f.visititems(_visit)
    for key in cands:
        cands[key].sort(key=lambda t: t[0])
    if cands["wl"]:
        vals, units = _nx_scalar_with_units(cands["wl"][0][1])
        fac = _units_factor_length(units)
        if math.isnan(fac):
            raise PatternFormatError(f"wavelength units {units!r} not understood", path=path)
        vals = vals * fac
        out["wavelength_angstrom"] = vals
    if cands["wl2"]:
        vals, units = _nx_scalar_with_units(cands["wl2"][0][1])
        out["wavelength2_angstrom"] = vals * _units_factor_length(units)
    if cands["ratio"]:
        out["ka2_ratio"] = _nx_scalar_with_units(cands["ratio"][0][1])[0]
    if cands["t"]:
        ds = cands["t"][0][1]
        vals, units = _nx_scalar_with_units(ds)
        name = ds.name.rsplit("/", 1)[-1].lower()
        if units is None and name.endswith("_c"):
            units = "C"
        conv = [temperature_to_c(float(v), units) for v in vals]
        out["temperature_c"] = np.array([c[0] for c in conv])
        notes = {c[1] for c in conv if c[1]}
        if notes:
            out["temperature_unit_note"] = "; ".join(sorted(notes))
    if cands["time"]:
        out["time_s"] = _nx_scalar_with_units(cands["time"][0][1])[0]
    return out


def _nx_read(path: Path, *, axis: str | None):
    """(x, Y 2D (frames, n), E or None, axis, per-frame meta dict, extra) from an NXdata."""
    import h5py
    with _open_h5(path) as f:
        g = _find_nxdata(f, path)
        sig_name = _attr_str(g.attrs.get("signal"))
        if sig_name is None or sig_name not in g:
            sig_name = None
            for k, obj in g.items():
                if isinstance(obj, h5py.Dataset) and obj.attrs.get("signal") is not None:
                    sig_name = k
            if sig_name is None:
                raise PatternFormatError(f"NXdata {g.name} has no @signal", path=path)
        sig = g[sig_name]
        Y = np.asarray(sig[()], dtype=float)
        if Y.ndim not in (1, 2) or Y.size == 0:
            raise PatternFormatError(f"NXdata signal {sig_name!r} has shape {Y.shape}; "
                                     "need 1D or 2D (frames × points)", path=path)
        axes = _attr_list(g.attrs.get("axes")) or _attr_list(sig.attrs.get("axes"))
        if not axes:
            raise PatternFormatError(f"NXdata {g.name} has no @axes", path=path)
        xname = axes[-1]
        if xname == "." or xname not in g:
            raise PatternFormatError(f"NXdata axis {xname!r} for the last dimension not found",
                                     path=path)
        xds = g[xname]
        x = np.asarray(xds[()], dtype=float)
        try:
            file_axis, factor = _nx_axis(xname, _attr_str(xds.attrs.get("units")))
        except PatternFormatError as exc:
            raise PatternFormatError(exc.message, path=path) from None
        x = np.degrees(x) if math.isnan(factor) else x * factor
        E = None
        for en in (f"{sig_name}_errors", "errors"):
            if en in g:
                E = np.asarray(g[en][()], dtype=float)
                break
        Y2 = np.atleast_2d(Y)
        E2 = None if E is None else np.atleast_2d(E)
        if x.shape != (Y2.shape[1],) or (E2 is not None and E2.shape != Y2.shape):
            raise PatternFormatError(f"NXdata shapes do not match: signal {Y.shape}, axis "
                                     f"{x.shape}", path=path)
        md = _nx_metadata(f, g, path)
        extra: dict = {"nxdata": g.name, "signal": sig_name}
        # per-frame string coordinates written by xtal
        for cname in ("source", "segment", "temperature_source"):
            if cname in g and g[cname].shape == (Y2.shape[0],):
                extra[cname] = [_attr_str(v) for v in g[cname][()]]
        if "xtal_attrs" in g.attrs:
            with contextlib.suppress(ValueError):
                extra["xtal_attrs"] = json.loads(_attr_str(g.attrs["xtal_attrs"]))
        if "xtal_meta" in g.attrs:
            with contextlib.suppress(ValueError):
                extra["meta"] = json.loads(_attr_str(g.attrs["xtal_meta"]))
    if axis is not None and axis != file_axis:
        raise PatternFormatError(f"axis={axis!r} given but the file declares {file_axis!r}",
                                 path=path)
    return x, Y2, E2, file_axis, md, extra, Y.ndim


def _frame_value(arr, i: int) -> float | None:
    if arr is None:
        return None
    a = np.atleast_1d(arr)
    v = float(a[i] if a.size > 1 else a[0])
    return None if not math.isfinite(v) else v


def _nx_pattern(path: Path, x, Y2, E2, ax, md, extra, i: int) -> Pattern:
    hdr = HeaderInfo(
        wavelength_angstrom=_frame_value(md.get("wavelength_angstrom"), i),
        wavelength2_angstrom=_frame_value(md.get("wavelength2_angstrom"), i),
        ka2_ratio=_frame_value(md.get("ka2_ratio"), i),
        temperature_c=_frame_value(md.get("temperature_c"), i),
        temperature_note=md.get("temperature_unit_note"),
        time_s=_frame_value(md.get("time_s"), i),
        meta=extra.get("meta"))
    if hdr.meta and "frame" in hdr.meta:
        hdr.meta = dict(hdr.meta)
        hdr.frame = hdr.meta.pop("frame")
    meta = {"nxdata": extra["nxdata"], "signal": extra["signal"]}
    if Y2.shape[0] > 1:
        meta["nx_frame"] = i
        hdr.frame = i
    p = make_pattern(path, x, Y2[i], None if E2 is None else E2[i], ax, hdr, "nexus", meta)
    return p


def _read_nexus(path: Path, *, axis: str | None, frame: int | None = None) -> Pattern:
    x, Y2, E2, ax, md, extra, ndim = _nx_read(path, axis=axis)
    if ndim == 2 and frame is None:
        if Y2.shape[0] == 1:
            frame = 0
        else:
            raise PatternFormatError(f"NXdata holds {Y2.shape[0]} frames; pass frame= or use "
                                     "read_series", path=path)
    return _nx_pattern(path, x, Y2, E2, ax, md, extra, frame or 0)




_AXIS_UNITS = {"two_theta_deg": "degree", "q_inv_angstrom": "1/angstrom", "d_angstrom": "angstrom"}


def _write_nxdata(tmp: Path, x: np.ndarray, axis: str, Y: np.ndarray, E: np.ndarray | None,
                  wl: tuple, per_frame: dict, strings: dict, attrs: dict, meta: dict | None
                  ) -> None:
    import h5py
    with h5py.File(tmp, "w") as f:
        f.attrs["default"] = "entry"
        f.attrs["creator"] = "xtal"
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        e.attrs["default"] = "data"
        d = e.create_group("data")
        d.attrs["NX_class"] = "NXdata"
        d.attrs["signal"] = "intensity"
        d.create_dataset("intensity", data=Y)
        if E is not None:
            d.create_dataset("intensity_errors", data=E)
        if Y.ndim == 2:
            d.attrs["axes"] = np.array(["frame", axis], dtype=h5py.string_dtype())
            d.create_dataset("frame", data=np.arange(Y.shape[0]))
            d.attrs["frame_indices"] = 0
        else:
            d.attrs["axes"] = np.array([axis], dtype=h5py.string_dtype())
        d.attrs[f"{axis}_indices"] = Y.ndim - 1
        xd = d.create_dataset(axis, data=x)
        xd.attrs["units"] = _AXIS_UNITS[axis]
        for name, (vals, units) in per_frame.items():
            ds = d.create_dataset(name, data=np.asarray(vals, float))
            if units:
                ds.attrs["units"] = units
            if Y.ndim == 2:
                d.attrs[f"{name}_indices"] = 0
        for name, vals in strings.items():
            d.create_dataset(name, data=np.array([str(v) for v in vals],
                                                 dtype=h5py.string_dtype()))
        if attrs:
            d.attrs["xtal_attrs"] = json.dumps(json_safe(attrs))
        if meta is not None:
            d.attrs["xtal_meta"] = json.dumps(json_safe(meta))
        l1, l2, r = wl
        if l1 is not None:
            ins = e.create_group("instrument")
            ins.attrs["NX_class"] = "NXinstrument"
            mono = ins.create_group("monochromator")
            mono.attrs["NX_class"] = "NXmonochromator"
            w = mono.create_dataset("wavelength", data=float(l1))
            w.attrs["units"] = "angstrom"
            if l2 is not None:
                w2 = mono.create_dataset("wavelength2", data=float(l2))
                w2.attrs["units"] = "angstrom"
                if r is not None:
                    mono.create_dataset("ka2_ratio", data=float(r))


# --- registry entry ---------------------------------------------------------------
EXTENSIONS = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff(path: Path, head: bytes) -> bool:
    """The HDF5 signature."""
    return head.startswith(HDF5_MAGIC)


def read(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
         **_: Any) -> Pattern:
    """NeXus NXdata → Pattern (``frame``: frame of a stacked 2D NXdata)."""
    return _read_nexus(path, axis=axis, frame=frame)
