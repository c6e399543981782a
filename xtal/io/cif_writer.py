"""CIF of a refined structure: cell, atoms with s.u., symmetry, and the refinement that gave them.

`refined_cif_text` writes one data block per refined phase of a `xtal.refine.RietveldResult`
(core + powder dictionaries: ``_pd_proc_ls_prof_wR_factor``, ``_refine_ls_shift/su_max``, …);
`write_refined_cif` writes it atomically. ``xtal.structures.read_cif`` reads it back.
"""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from xtal.io.writers import atomic_write
from xtal.structures.model import format_su


def _num(value: float, su: float | None, decimals: int = 6) -> str:
    if su is None:
        return f"{value:.{decimals}f}"
    return format_su(float(value), float(su))


def _block_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "phase"


def _refinement_lines(res: Any) -> list[str]:
    rad = res.radiation
    lines = [
        "_computing_structure_refinement   'xtal.refine.rietveld (least squares, Levenberg-Marquardt)'",
        f"_diffrn_radiation_wavelength      {rad.primary:.6f}",
        f"_pd_proc_ls_prof_R_factor         {res.rp:.5f}",
        f"_pd_proc_ls_prof_wR_factor        {res.rwp:.5f}",
        f"_pd_proc_ls_prof_wR_expected      {res.rexp:.5f}",
        f"_refine_ls_goodness_of_fit_all    {res.gof:.4f}",
        f"_refine_ls_number_parameters      {res.n_params}",
        f"_pd_proc_number_of_points         {res.n_points}",
        f"_pd_meas_2theta_range_min         {float(res.x_deg[0]):.4f}",
        f"_pd_meas_2theta_range_max         {float(res.x_deg[-1]):.4f}",
        f"_refine_ls_shift/su_max           {res.max_shift_over_su:.4f}",
        f"_refine_ls_number_restraints      {len(res.restraints)}",
        "_pd_proc_ls_background_function   'Chebyshev polynomial'",
        "_pd_proc_ls_profile_function      'pseudo-Voigt, Caglioti FWHM (U V W), constant eta'",
        "_refine_ls_weighting_scheme       sigma",
    ]
    details = [f"s.u. from the covariance scaled by chi2; Berar-Lelann factor {res.berar_lelann:.3f} "
               "(multiply s.u. by it for serially correlated residuals)",
               f"converged: {'yes' if res.converged else 'no'}; condition of the normal matrix "
               f"{res.condition:.3g}"]
    details += [w for w in res.warnings]
    lines.append("_refine_special_details")
    lines.append(";")
    lines += [d.replace(";", ",") for d in details]
    lines.append(";")
    return lines


def _phase_block(res: Any, ph: Any) -> list[str]:
    src = ph.source_phase
    out = [f"data_{_block_name(ph.id)}", f"_pd_phase_name  '{ph.name}'",
           f"_audit_creation_date  {_dt.date.today().isoformat()}"]
    names = ("_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha",
             "_cell_angle_beta", "_cell_angle_gamma")
    for tag, v, s in zip(names, ph.cell, ph.cell_su):
        out.append(f"{tag:<28s} {_num(v, s, 6)}")
    out.append(f"{'_cell_volume':<28s} {_num(ph.volume, ph.volume_su, 3)}")
    out.append(f"_symmetry_space_group_name_H-M  '{src.spacegroup_hm}'")
    if src.spacegroup_number:
        out.append(f"_space_group_IT_number  {src.spacegroup_number}")
    out += ["loop_", "_space_group_symop_id", "_space_group_symop_operation_xyz"]
    out += [f"{k + 1} '{op}'" for k, op in enumerate(src.symops)]
    out += _refinement_lines(res)
    if ph.po_axis is not None and ph.po_r is not None:
        out.append(f"_pd_proc_ls_pref_orient_corr  'March-Dollase r = {_num(ph.po_r, ph.po_r_su, 4)} "
                   f"along {ph.po_axis}'")
    out += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
            "_atom_site_fract_y", "_atom_site_fract_z", "_atom_site_occupancy",
            "_atom_site_adp_type", "_atom_site_U_iso_or_equiv"]
    by_label = {s.label: s for s in src.sites}
    refined = ph.structure()                       # refined Uij (with s.u.) where they were refined
    ref_by_label = {s.label: s for s in refined.sites}
    for s in ph.sites:
        orig = by_label[s.label]
        xyz = " ".join(_num(v, su, 5) for v, su in zip(s.frac, s.frac_su))
        occ = _num(s.occupancy, s.occupancy_su, 4)
        if s.uiso is not None:
            adp, u = "Uiso", _num(s.uiso, s.uiso_su, 5)
        else:
            ueq = refined.u_equivalent(ref_by_label[s.label])
            adp, u = "Uani", f"{ueq:.5f}" if ueq is not None else "?"
        out.append(f"{s.label} {orig.type_symbol or s.element} {xyz} {occ} {adp} {u}")
    aniso = [s for s in refined.sites if s.u_aniso is not None]
    if aniso:
        out += ["loop_", "_atom_site_aniso_label"] + [f"_atom_site_aniso_U_{k}" for k in
                                                     ("11", "22", "33", "12", "13", "23")]
        for a in aniso:
            sus = a.u_aniso_su or (None,) * 6
            out.append(f"{a.label} " + " ".join(_num(v, su, 5) for v, su in zip(a.u_aniso, sus)))
    return out


def refined_cif_text(res: Any) -> str:
    """CIF text (one block per phase) of a `RietveldResult`."""
    lines = ["# written by xtal (xtal.io.cif_writer) from a Rietveld refinement", ""]
    for ph in res.phases:
        lines += _phase_block(res, ph) + [""]
    return "\n".join(lines)


def write_refined_cif(res: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write `refined_cif_text` of ``res`` to ``path`` (atomically; refuses to overwrite unless told)."""
    text = refined_cif_text(res)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                        overwrite=overwrite)
