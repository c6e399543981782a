"""Powder CIF (pdCIF) patterns, every data block with a profile, parsed with gemmi's CIF parser.

Specification followed: the IUCr powder CIF dictionary (pdCIF, cif_pd.dic 2.x; Toby,
"CIF applications. XV. pdCIF", J. Appl. Cryst. 1998):

* x: a loop column ``_pd_meas_2theta_scan`` / ``_pd_meas_2theta_corrected`` /
  ``_pd_proc_2theta_corrected`` / ``_pd_meas_angle_2theta`` (°), ``_pd_proc_d_spacing`` (Å),
  ``_pd_proc_recip_len_Q`` (Å⁻¹); or, without one, an evenly stepped grid from
  ``_pd_meas_2theta_range_min/max/inc`` (for measured intensities) or
  ``_pd_proc_2theta_range_*`` (for processed ones).  ``_pd_meas_time_of_flight`` is refused
  (time-of-flight data are not supported).
* intensity, in this order of preference: ``_pd_meas_counts_total``,
  ``_pd_meas_intensity_total``, ``_pd_proc_intensity_total``, ``_pd_proc_intensity_net``,
  and only when none is present ``_pd_calc_intensity_total`` (``meta["intensity_kind"]``
  says "calculated").  σ: the standard uncertainty written in parentheses (``119(17)``);
  never derived from a weight or from √counts.
* λ: ``_diffrn_radiation_wavelength`` (a single value, or a loop with
  ``_diffrn_radiation_wavelength_id``/``_wt``: λ1 the first row, Kα2 the second with ratio
  wt2/wt1); when the block with the profile states none and the file's other blocks state
  exactly one, that one (``meta["wavelength_source_block"]``).  Temperature:
  ``_diffrn_ambient_temperature`` (K).

Several blocks with a profile need ``frame=`` (`read`) or `read_series` (`read_all`); a CIF
without any profile but with a structure is refused as "a structure CIF, not a powder pattern".
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import InvalidDataError, PatternFormatError
from xtal.io.common import choose_block, header_info, make_pattern
from xtal.io.pattern import Pattern

EXTENSIONS = (".cif", ".pdcif", ".rtv")
_X_TAGS = (("_pd_meas_2theta_scan", "two_theta_deg"), ("_pd_meas_2theta_corrected", "two_theta_deg"),
           ("_pd_proc_2theta_corrected", "two_theta_deg"), ("_pd_meas_angle_2theta", "two_theta_deg"),
           ("_pd_proc_d_spacing", "d_angstrom"), ("_pd_proc_recip_len_q", "q_inv_angstrom"))
_Y_TAGS = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total",
           "_pd_proc_intensity_net", "_pd_calc_intensity_total")
_NUM_SU = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+))(?:[eE]([-+]?\d+))?(?:\((\d+)\))?$")


def _values(col) -> tuple[np.ndarray, np.ndarray | None]:
    """Numbers and their parenthesised standard uncertainties (None when no value has one)."""
    v = np.full(len(col), np.nan)
    su = np.full(len(col), np.nan)
    for i, s in enumerate(col):
        m = _NUM_SU.match(s)
        if not m:
            continue
        mant, exp, esd = m.groups()
        scale = 10.0 ** int(exp) if exp else 1.0
        v[i] = float(mant) * scale
        if esd is not None:
            decimals = len(mant.split(".", 1)[1]) if "." in mant else 0
            su[i] = int(esd) * 10.0 ** -decimals * scale
    return v, (su if np.isfinite(su).any() else None)


def _pair(block, tag: str) -> float | None:
    v = block.find_value(tag)
    if v is None:
        return None
    m = _NUM_SU.match(v.strip())
    return float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0) if m else None


def _wavelength(block) -> tuple[float | None, float | None, float | None]:
    col = block.find_values("_diffrn_radiation_wavelength")
    if len(col) == 0:
        return None, None, None
    lams = [_values([c])[0][0] for c in col]
    if len(lams) == 1:
        return lams[0], None, None
    wt = block.find_values("_diffrn_radiation_wavelength_wt")
    w = [_values([c])[0][0] for c in wt] if len(wt) == len(lams) else []
    ratio = w[1] / w[0] if len(w) >= 2 and w[0] else None
    return lams[0], lams[1], ratio


def _profile(block, path: Path) -> dict | None:
    """x, y, σ, axis and notes of a block's profile, or None when the block has none."""
    if block.find_values("_pd_meas_time_of_flight") or block.find_values(
            "_pd_proc_time_of_flight"):
        raise PatternFormatError(f"pdCIF block {block.name}: time-of-flight data are not "
                                 "supported", path=path)
    ytag = next((t for t in _Y_TAGS if len(block.find_values(t))), None)
    if ytag is None:
        return None
    y, s = _values(block.find_values(ytag))
    xtag = next(((t, ax) for t, ax in _X_TAGS if len(block.find_values(t))), None)
    if xtag is not None:
        x, _ = _values(block.find_values(xtag[0]))
        axis, xsrc = xtag[1], xtag[0]
        if len(x) != len(y):
            raise InvalidDataError(f"pdCIF block {block.name}: {xtag[0]} and {ytag} are in "
                                   "different loops of different lengths", path=path)
    else:
        pref = ("_pd_meas" if ytag.startswith("_pd_meas") else "_pd_proc")
        ranges = [pref, "_pd_proc" if pref == "_pd_meas" else "_pd_meas"]
        lo = hi = inc = None
        for r in ranges:
            lo, hi, inc = (_pair(block, f"{r}_2theta_range_{k}") for k in ("min", "max", "inc"))
            if None not in (lo, hi, inc):
                xsrc = f"{r}_2theta_range_min/max/inc"
                break
        else:
            raise PatternFormatError(f"pdCIF block {block.name}: {ytag} without an x column or "
                                     "_pd_meas_2theta_range_min/max/inc", path=path)
        n = int(round((hi - lo) / inc)) + 1
        if n != len(y):
            raise InvalidDataError(f"pdCIF block {block.name}: the 2θ range {lo:g}..{hi:g} step "
                                   f"{inc:g} gives {n} points, the loop has {len(y)}", path=path)
        x, axis = lo + inc * np.arange(n), "two_theta_deg"
    return {"x": x, "y": y, "s": s, "axis": axis, "x_source": xsrc, "y_source": ytag}


def _is_structure(block) -> bool:
    return bool(block.find_values("_atom_site_fract_x")) or block.find_value(
        "_cell_length_a") is not None


def read_all(path: Path, data: bytes, *, axis: str | None = None, **_: Any) -> list[Pattern]:
    """Every data block of a pdCIF that holds a profile, in file order."""
    import gemmi
    try:
        doc = gemmi.cif.read_string(data.decode("utf-8", errors="replace"))
    except (ValueError, RuntimeError) as exc:
        raise PatternFormatError(f"not a readable CIF: {str(exc)[:200]}", path=path) from None
    found = [(b, _profile(b, path)) for b in doc]
    profiles = [(b, pr) for b, pr in found if pr is not None]
    if not profiles:
        if any(_is_structure(b) for b in doc):
            raise PatternFormatError("this is a structure CIF, not a powder pattern (no "
                                     "_pd_meas_*/_pd_proc_* profile)", path=path)
        raise PatternFormatError("CIF without a powder profile (_pd_meas_*/_pd_proc_*)",
                                 path=path)
    beams = {_wavelength(b) for b in doc if _wavelength(b)[0] is not None}
    out = []
    for i, (b, pr) in enumerate(profiles):
        if axis is not None and axis != pr["axis"]:
            raise PatternFormatError(f"axis={axis!r} given but pdCIF block {b.name} is on "
                                     f"{pr['axis']}", path=path)
        wl = _wavelength(b)
        meta = {"cif_block": b.name, "block": i, "x_source": pr["x_source"],
                "intensity_source": pr["y_source"],
                "intensity_kind": "calculated" if "calc" in pr["y_source"] else "observed"}
        if wl[0] is None and len(beams) == 1:
            wl = next(iter(beams))
            meta["wavelength_source_block"] = "another block of the file"
        t_k = _pair(b, "_diffrn_ambient_temperature")
        hdr = header_info(*wl, temperature_c=None if t_k is None else t_k - 273.15)
        out.append(make_pattern(path, pr["x"], pr["y"], pr["s"], pr["axis"], hdr, "pdcif", meta))
    for p in out:
        p.meta["n_blocks"] = len(out)
    return out


def sniff(path: Path, head: bytes) -> bool:
    """A CIF: ``data_`` at the start of a line and either ``_pd_`` or a .cif extension."""
    text = head.decode("latin-1")
    has_data = re.search(r"^\s*data_", text, re.M | re.I) is not None
    return has_data and ("_pd_" in text or path.suffix.lower() in EXTENSIONS)


def read(path: Path, data: bytes, *, axis: str | None = None, frame: int | None = None,
         **_: Any) -> Pattern:
    """One profile block of a pdCIF (``frame``: block number; required when several)."""
    return choose_block(read_all(path, data, axis=axis), frame, path, "data block")
