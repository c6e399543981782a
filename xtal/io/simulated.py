"""Writers of simulated patterns (xy, xye, csv, pdCIF via gemmi) and reflection tables; atomic, never
overwriting an existing file unless asked.  Analysis modules (`xtal.simulate`) compute; these write."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import gemmi
import numpy as np

from xtal.errors import PatternFormatError
from xtal.io.writers import atomic_write
from xtal.simulate import ReflectionTable, SimulatedPattern
from xtal.structures import MODEL_WARNING

__all__ = ["SIMULATED_SUFFIXES", "write_simulated", "write_xy", "write_xye", "write_csv", "write_pdcif",
           "write_reflections_csv"]

_SIM_FORMATS = {".xy": "xy", ".xye": "xye", ".csv": "csv", ".cif": "pdcif", ".pdcif": "pdcif",
                ".dat": "xy", ".txt": "xy"}
#: Suffixes `write_simulated` can produce (the CLI refuses any other before simulating).
SIMULATED_SUFFIXES = frozenset(_SIM_FORMATS)


def write_simulated(sim: SimulatedPattern, path: str | Path, fmt: str | None = None, *,
                    overwrite: bool = False, protected=()) -> Path:
    """Write a simulated pattern as ``xy``, ``xye``, ``csv`` or ``pdcif`` (default from the extension)."""
    p = Path(path)
    fmt = (fmt or _SIM_FORMATS.get(p.suffix.lower(), "")).lower()
    writers = {"xy": write_xy, "xye": write_xye, "csv": write_csv, "pdcif": write_pdcif, "cif": write_pdcif}
    if fmt not in writers:
        raise PatternFormatError(f"unknown output format {fmt or p.suffix!r} (xy, xye, csv, pdcif)",
                                 path=p, field="fmt")
    return writers[fmt](sim, p, overwrite=overwrite, protected=protected)


def _write_text(path: str | Path, text: str, overwrite: bool, protected=()) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite,
                        protected=protected)


def _csv_text(header_lines: list[str], columns: list[str], rows) -> str:
    """'#' header lines, a column-name row, then the rows (already formatted)."""
    buf = io.StringIO()
    for line in header_lines:
        buf.write(f"# {line}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def _write_columns(sim: SimulatedPattern, path: str | Path, *, overwrite: bool, with_sigma: bool,
                   protected=()) -> Path:
    buf = io.StringIO()
    header = sim.header_lines()
    if with_sigma:
        header = header + ["sigma: sqrt(I) (calculated pattern; Poisson-like placeholder)"]
    for line in header:
        buf.write(f"# {line}\n")
    for t, i in zip(sim.two_theta_deg, sim.intensity):
        sig = f" {math.sqrt(max(i, 0.0)):.6g}" if with_sigma else ""
        buf.write(f"{t:.6f} {i:.8g}{sig}\n")
    return _write_text(path, buf.getvalue(), overwrite, protected)


def write_xy(sim: SimulatedPattern, path: str | Path, *, overwrite: bool = False, protected=()) -> Path:
    """Two columns 2θ (°), intensity; '#' header with λ, units and warnings."""
    return _write_columns(sim, path, overwrite=overwrite, with_sigma=False, protected=protected)


def write_xye(sim: SimulatedPattern, path: str | Path, *, overwrite: bool = False, protected=()) -> Path:
    """Three columns 2θ, I, σ with σ = sqrt(max(I, 0)) (a calculated pattern has no error; Poisson-like)."""
    return _write_columns(sim, path, overwrite=overwrite, with_sigma=True, protected=protected)


def write_csv(sim: SimulatedPattern, path: str | Path, *, overwrite: bool = False, protected=()) -> Path:
    """CSV: '#' header (λ, units, warnings), then two_theta_deg, d_angstrom, q_inv_angstrom, intensity."""
    tt, d, q, inten = sim.two_theta_deg, sim.d_angstrom, sim.q_inv_angstrom, sim.intensity
    rows = ([f"{tt[i]:.6f}", f"{d[i]:.6f}", f"{q[i]:.6f}", f"{inten[i]:.8g}"] for i in range(len(tt)))
    columns = ["two_theta_deg", "d_angstrom", "q_inv_angstrom", "intensity"]
    return _write_text(path, _csv_text(sim.header_lines(), columns, rows), overwrite, protected)


def write_pdcif(sim: SimulatedPattern, path: str | Path, *, overwrite: bool = False, protected=()) -> Path:
    """pdCIF written with gemmi's CIF writer: wavelength, calculated profile and reflection list."""
    q = gemmi.cif.quote
    doc = gemmi.cif.Document()
    name = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in (sim.phase_id or "pattern"))
    blk = doc.add_new_block(f"{name}_sim")
    blk.set_pair("_pd_block_id", q(f"{name}_simulated"))
    blk.set_pair("_pd_phase_name", q(sim.phase_name or sim.phase_id or "?"))
    blk.set_pair("_diffrn_radiation_probe", "x-ray")
    if sim.meta.get("wavelength2_angstrom"):
        loop = blk.init_loop("_diffrn_radiation_", ["wavelength", "wavelength_id", "wavelength_wt"])
        loop.add_row([f"{sim.wavelength_angstrom:.6f}", "1", "1.0"])
        loop.add_row([f"{sim.meta['wavelength2_angstrom']:.6f}", "2", f"{sim.meta.get('ka2_ratio', 0.5):.4f}"])
    else:
        blk.set_pair("_diffrn_radiation_wavelength", f"{sim.wavelength_angstrom:.6f}")
    pol = sim.reflections.polarization
    if pol.kind == "synchrotron" and pol.fraction < 1.0:
        # CIF: ratio of the components perpendicular and parallel to the scattering plane
        blk.set_pair("_diffrn_radiation_polarisn_ratio", f"{pol.fraction / (1.0 - pol.fraction):.4g}")
    blk.set_pair("_xtal_lp_polarization", q(pol.describe()))
    blk.set_pair("_pd_calc_method", q("xtal.simulate: " + "; ".join(
        line for line in sim.header_lines() if line.startswith(("profile", "LP", "zero")))))
    for i, w in enumerate(sim.warnings):
        blk.set_pair(f"_xtal_warning_{i + 1}", q(w))
    if sim.is_model:
        blk.set_pair("_xtal_model_warning", q(MODEL_WARNING))
    blk.set_pair("_pd_meas_number_of_points", str(len(sim.two_theta_deg)))
    blk.set_pair("_pd_meas_2theta_range_min", f"{sim.two_theta_deg[0]:.6f}")
    blk.set_pair("_pd_meas_2theta_range_max", f"{sim.two_theta_deg[-1]:.6f}")
    if len(sim.two_theta_deg) > 1:
        blk.set_pair("_pd_meas_2theta_range_inc",
                     f"{(sim.two_theta_deg[-1] - sim.two_theta_deg[0]) / (len(sim.two_theta_deg) - 1):.6f}")
    loop = blk.init_loop("_pd_", ["meas_2theta_scan", "calc_intensity_total"])
    for t, i in zip(sim.two_theta_deg, sim.intensity):
        loop.add_row([f"{t:.5f}", f"{i:.6g}"])
    r = sim.reflections
    rl = blk.init_loop("_refln_", ["index_h", "index_k", "index_l", "d_spacing", "F_squared_calc",
                                   "symmetry_multiplicity"])
    for k in range(len(r)):
        rl.add_row([str(int(r.hkl[k, 0])), str(int(r.hkl[k, 1])), str(int(r.hkl[k, 2])),
                    f"{r.d_angstrom[k]:.6f}", f"{r.f_squared[k]:.6g}", str(int(r.multiplicity[k]))])
    text = doc.as_string()
    header = "".join(f"# {line}\n" for line in sim.header_lines())
    return _write_text(path, header + text, overwrite, protected)


def write_reflections_csv(table: ReflectionTable, path: str | Path, *, overwrite: bool = False,
                          protected=()) -> Path:
    """CSV of a reflection table (d Å, 2θ °, Q Å⁻¹, …); header lines start with '#' and state λ and units."""
    po = table.po if table.po is not None else np.ones(len(table))
    rows = ([*map(int, table.hkl[i]), f"{table.d_angstrom[i]:.6f}", f"{table.two_theta_deg[i]:.6f}",
             f"{table.q_inv_angstrom[i]:.6f}", int(table.multiplicity[i]), f"{table.f_squared[i]:.6g}",
             f"{table.lp[i]:.6g}", f"{po[i]:.6g}", f"{table.intensity[i]:.6g}"] for i in range(len(table)))
    columns = ["h", "k", "l", "d_angstrom", "two_theta_deg", "q_inv_angstrom", "multiplicity",
               "f_squared", "lp", "po", "intensity"]
    return _write_text(path, _csv_text(table.header_lines(), columns, rows), overwrite, protected)
