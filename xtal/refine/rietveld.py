"""Rietveld refinement of one or several structures against one powder pattern.

Parameters (names as ``phase:kind`` or ``phase:site:coordinate``): scale, cell (by crystal system),
zero, sample displacement (Bragg–Brentano, Δ2θ = D·cosθ), Chebyshev background, Caglioti U, V, W
and pseudo-Voigt η, March–Dollase r; per site the coordinates allowed by its site symmetry
(`constraints.allowed_shifts`), Uiso and occupancy. Refinement is staged as in practice: profile,
cell and background first with the structure fixed, then the structure added. s.u. come from the
covariance scaled by χ²; parameters the data cannot determine (a near-null direction of the
normal matrix) get no s.u. and are listed in ``undetermined``; pairs with |correlation| > 0.95 are
flagged.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from xtal.errors import XtalError
from xtal.identify.prepare import default_n_background, initial_width, prepare_pattern, radiation_from
from xtal.beam import two_theta_from_d
from xtal.refine.dispersion import anomalous_dispersion
from xtal.refine.engine import Param, Refinement
from xtal.refine.model import PhaseSetup, setup_phase, two_theta_dmin
from xtal.refine.result import RefinedPhase, RefinedSite, RietveldResult
from xtal.simulate import cell_volume

#: what `rietveld` refines unless told otherwise
DEFAULT_REFINE = ("scale", "background", "zero", "cell", "profile", "xyz", "uiso")
_STRUCTURE = ("xyz", "uiso", "uij", "occ", "rb")
#: rigid-body angles: turns about the body's ``axes`` (`rigid.symmetry_axes`)
ANGLE_NAMES = ("rot1", "rot2", "rot3")
#: the stages of a refinement from scratch (label, parameter kinds held): peak positions and
#: intensities first, then the width, then its angle dependence, then the structure
_STAGES = (("scale, background, zero, cell", ("U", "V", "W", "eta", "po", *_STRUCTURE)),
           ("+ W, eta", ("U", "V", "po", *_STRUCTURE)),
           ("+ U, V, preferred orientation", _STRUCTURE))


class RefinementError(XtalError):
    """A refinement that cannot be set up (no phase, unknown parameter group, …)."""


def build_params(phases: Sequence[PhaseSetup], n_background: int, refine: Sequence[str], *,
                 width: float, eta: float = 0.5, displacement: bool = False,
                 structure_of: Sequence[str] | None = None) -> list[Param]:
    """The flat parameter list, with ``refine`` flags from the groups in ``refine``; the structure
    groups (xyz, uiso, occ) only for the phases in ``structure_of`` (None: all)."""
    on = set(refine)
    unknown = on - {"scale", "background", "zero", "displacement", "cell", "profile", "po", "rigid",
                    *_STRUCTURE}
    if unknown:
        raise RefinementError(f"unknown parameter group(s) {sorted(unknown)}")
    prm = [Param("zero", "zero", 0.0, "zero" in on, lo=-1.0, hi=1.0),
           Param("displacement", "displacement", 0.0, displacement or "displacement" in on, lo=-1.0, hi=1.0),
           Param("U", "U", 0.0, "profile" in on, lo=-0.5, hi=2.0),
           Param("V", "V", 0.0, "profile" in on, lo=-1.0, hi=1.0),
           Param("W", "W", width * width, "profile" in on, lo=-1.0, hi=4.0),
           Param("eta", "eta", eta, "profile" in on, lo=0.0, hi=1.0)]
    prm += [Param(f"bg{k}", "bg", 0.0, "background" in on, index=k) for k in range(n_background)]
    for i, ps in enumerate(phases):
        pid = ps.id
        st = on if structure_of is None or pid in structure_of else on - {*_STRUCTURE, "rigid"}
        prm.append(Param(f"{pid}:scale", "scale", 1.0, "scale" in on, phase=i, lo=0.0))
        for k, nm in enumerate(ps.lattice.names):
            prm.append(Param(f"{pid}:{nm}", "cell", 0.0, "cell" in on, phase=i, index=k, lo=-0.1, hi=0.1))
        if ps.po_axis is not None:
            prm.append(Param(f"{pid}:po_r", "po", 1.0, "po" in on, phase=i, lo=0.2, hi=5.0))
        carried = {lab for b in ps.bodies for lab in (*b.b_sites, *b.h_sites)}
        for k, b in enumerate(ps.bodies):
            for sub, (nm, v) in enumerate(zip((*ANGLE_NAMES, "dBB", "dBH"),
                                              (*b.angles, b.d_bb, b.d_bh))):
                free = "rigid" in st and (sub >= 3 or b.angle_free[sub])
                prm.append(Param(f"{pid}:body{k}:{nm}", "rb", float(v), free, phase=i,
                                 index=k, sub=sub, lo=-math.pi if sub < 3 else 0.5,
                                 hi=math.pi if sub < 3 else 2.5))
        for j, s in enumerate(ps.sites):
            for k, cn in enumerate(s.names):
                prm.append(Param(f"{pid}:{s.label}:{cn}", "xyz", float(s.u[k]),
                                 "xyz" in st and s.label not in carried, phase=i,
                                 index=j, sub=k, lo=-0.15, hi=0.15))
            if not s.aniso:
                prm.append(Param(f"{pid}:{s.label}:Uiso", "uiso", s.uiso, "uiso" in st, phase=i, index=j,
                                 lo=-0.05, hi=0.5))
            for k, un in enumerate(s.uij_names):
                prm.append(Param(f"{pid}:{s.label}:{un}", "uij", float(s.v[k]), "uij" in st, phase=i,
                                 index=j, sub=k, lo=-0.5, hi=0.5))
            prm.append(Param(f"{pid}:{s.label}:occ", "occ", s.occ, "occ" in st, phase=i, index=j,
                             lo=0.0, hi=2.0))
    return prm


def start_values(ref: Refinement, start: Any) -> None:
    """Seed the parameters from a previous `RietveldResult` (same names) or a {name: value} map."""
    if start is None:
        return
    values = ({p["name"]: p["value"] for p in start.params} if hasattr(start, "params") else dict(start))
    for p in ref.params:
        if p.name in values and np.isfinite(values[p.name]):
            p.value = float(values[p.name])


def rietveld(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None, polarization: Any = None,
             two_theta_range: tuple[float, float] | None = None,
             refine: Sequence[str] = DEFAULT_REFINE, n_background: int | None = None,
             preferred_orientation: Mapping[str, Sequence[int]] | None = None,
             start: Any = None, staged: bool = True, max_iter: int = 40,
             fwhm_deg: float | None = None, eta: float = 0.5,
             structure_of: Sequence[str] | None = None, max_strain: float = 0.015,
             rigid_bodies: Mapping[str, Sequence[Any]] | None = None,
             restraints: Sequence[tuple] = (), anomalous: bool = True) -> RietveldResult:
    """Rietveld refinement of ``phases`` (``xtal.structures.Phase``) against ``pattern``.

    ``refine``: groups among "scale", "background", "zero", "displacement", "cell", "profile"
    (U, V, W, η), "po" (March–Dollase r; axes in ``preferred_orientation`` {phase id: hkl}),
    "xyz", "uiso", "uij" (the Uij of the sites that have them, constrained by their site
    symmetry: `constraints.adp_constraints`), "occ" (for the phases in ``structure_of``, None:
    all), "rigid" (the
    ``rigid_bodies`` {phase id: [`rigid.Icosahedron`]}: orientation, B–B and B–H distances; the
    sites they carry do not refine on their own). ``restraints``: (phase id, site A, site B,
    target Å, σ Å) distance restraints (extra least-squares rows). ``start``: a previous result (sequential refinement) or {name: value}.
    ``staged``: profile/cell/background first, structure second (skipped when ``start`` is given).
    Without ``start`` each phase's cell is first placed by a scan of isotropic strain within
    ±``max_strain`` (a CIF cell from another temperature is often off by more than a peak width).
    ``anomalous``: f′ + i f″ of every element at the primary λ (Chantler, `dispersion`) in the
    structure factors (False: f0 only, as ``xtal.simulate``).
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise RefinementError("no phase to refine")
    rad = radiation_from(pattern, wavelength, polarization)
    data = prepare_pattern(pattern, two_theta_range, rad)
    dmin = two_theta_dmin(float(data.x[-1]), rad)
    po = dict(preferred_orientation or {})
    setups = [setup_phase(p, dmin, po.get(str(p.id))) for p in phases]
    for ps in setups:
        ps.bodies = list((rigid_bodies or {}).get(ps.id, []))
        if anomalous:
            ps.dispersion = anomalous_dispersion((st.element for st in ps.phase.sites), rad.primary)
    nb = n_background or default_n_background(data.x)
    width = fwhm_deg or initial_width(data)
    params = build_params(setups, nb, refine, width=width, eta=eta, structure_of=structure_of)
    ref = Refinement(data.x, data.y, data.sigma, setups, rad, params, nb)
    start_values(ref, start)
    if restraints:
        from xtal.refine.restraints import build_restraints

        ref.state()
        ref.restraints = build_restraints(setups, restraints)
    stages = []
    if start is None:
        if "cell" in refine:
            strain_scan(ref, max_strain)
        ref.linear_start()
    if staged and start is None:
        wanted = {p.name: p.refine for p in ref.params}
        for label, held in _STAGES:
            for p in ref.params:
                p.refine = wanted[p.name] and p.kind not in held
            if not any(p.refine for p in ref.params) or all(
                    p.refine == wanted[p.name] for p in ref.params):
                continue
            res = ref.solve(max_iter=min(max_iter, 25), ftol=1e-4)
            stages.append({"stage": label, "iterations": res.iterations if res else 0, "rwp": _rwp(ref)})
        for p in ref.params:
            p.refine = wanted[p.name]
    res = ref.solve(max_iter=max_iter)
    stages.append({"stage": "all", "iterations": res.iterations if res else 0, "rwp": _rwp(ref)})
    out = make_result(ref, res, stages)
    out.source = data.source
    out.elapsed_s = time.perf_counter() - t0
    return out


def strain_scan(ref: Refinement, max_strain: float, n: int = 41) -> None:
    """Place each phase's cell at the isotropic strain (grid over ±``max_strain``) that best fits
    with the scales and background solved linearly; one phase at a time, others as they are.

    The grid step moves high-angle peaks by more than a narrow (synchrotron) width, so the scan is
    done with peaks broadened to that shift; when a phase had to move, the refinement starts
    from the broad width (the next stages narrow it)."""
    if max_strain <= 0:
        return
    w_idx = ref.find("W")[0]
    w0 = ref.params[w_idx].value
    step = 2.0 * max_strain / (n - 1)
    tan_hi = math.tan(math.radians(float(np.percentile(ref.x, 75)) / 2.0))
    fwhm_scan = math.degrees(2.0 * step * tan_hi)
    ref.params[w_idx].value = max(w0, fwhm_scan ** 2)
    moved = False
    for i, ps in enumerate(ref.phases):
        idx = [k for k in ref.find("cell", i) if ps.lattice.names[ref.params[k].index] in ("a", "b", "c")]
        if not idx:
            continue
        best, best_cost = 0.0, np.inf
        for eps in np.linspace(-max_strain, max_strain, n):
            for k in idx:
                ref.params[k].value = float(eps)
            cost = ref.linear_start()
            if cost < best_cost:
                best, best_cost = float(eps), cost
        moved |= abs(best) > 0.5 * step
        for k in idx:
            ref.params[k].value = best
    if not moved:
        ref.params[w_idx].value = w0


def _rwp(ref: Refinement) -> float:
    r = (ref.y - ref.evaluate()["calc"]) * ref.w_sqrt
    return float(math.sqrt(r @ r / np.sum((ref.y * ref.w_sqrt) ** 2)))


def cell_and_su(ps: PhaseSetup, q: np.ndarray, cov_q: np.ndarray | None):
    """Cell, its s.u. (a, b, c, α, β, γ) and volume with s.u. from the strain covariance."""
    cell = ps.lattice.cell(q)
    if cov_q is None or len(q) == 0:
        return cell, (None,) * 6, cell_volume(cell), None
    jac = np.zeros((7, len(q)))
    for k in range(len(q)):
        q2 = np.array(q, dtype=float)
        q2[k] += 1e-7
        c2 = ps.lattice.cell(q2)
        jac[:6, k] = (np.array(c2) - np.array(cell)) / 1e-7
        jac[6, k] = (cell_volume(c2) - cell_volume(cell)) / 1e-7
    var = np.einsum("ik,kl,il->i", jac, cov_q, jac)
    su = tuple(float(math.sqrt(v)) if v > 1e-30 else None for v in var[:6])
    return cell, su, cell_volume(cell), float(math.sqrt(max(var[6], 0.0)))


def _propagated_su(basis: np.ndarray, cov: np.ndarray | None, n: int) -> tuple:
    """s.u. of the components basis @ v from the covariance of v (None: not refined/determined, or 0)."""
    if cov is None:
        return (None,) * n
    var = np.einsum("ik,kl,il->i", basis, cov, basis)
    return tuple(float(math.sqrt(v)) if v > 1e-30 else None for v in var)


def _site_results(ref: Refinement, i: int, su_of) -> list[RefinedSite]:
    ps = ref.phases[i]
    sites = []
    for j, s in enumerate(ps.sites):
        idx = [k for k, p in enumerate(ref.params) if p.phase == i and p.index == j and p.kind == "xyz"]
        fsu = _propagated_su(s.basis, su_of.cov_block(idx), 3)
        ui = [k for k in ref.find("uiso", i, j)]
        oc = [k for k in ref.find("occ", i, j)]
        site = RefinedSite(s.label, ps.phase.sites[j].element, tuple(float(v) for v in s.frac()),
                           fsu, None if s.aniso else s.uiso, su_of(ui[0]) if ui else None, s.occ,
                           su_of(oc[0]) if oc else None, list(s.names))
        if s.aniso:
            site.u_aniso = tuple(float(v) for v in s.uij())
            site.u_aniso_su = _propagated_su(s.uij_basis, su_of.cov_block(ref.find("uij", i, j)), 6)
            site.free_uij = list(s.uij_names)
        sites.append(site)
    return sites


class _SU:
    """s.u. and covariance blocks by parameter index (None for fixed or undetermined ones)."""

    def __init__(self, ref: Refinement, stats: dict):
        self.pos = {pi: j for j, pi in enumerate(ref.free)}
        self.stats = stats

    def __call__(self, pi: int) -> float | None:
        j = self.pos.get(pi)
        if j is None or self.stats["undetermined"][j]:
            return None
        return float(self.stats["su"][j])

    def cov_block(self, idx: list[int]) -> np.ndarray | None:
        js = [self.pos.get(pi) for pi in idx]
        if not idx or any(j is None for j in js) or any(self.stats["undetermined"][j] for j in js):
            return None
        return self.stats["cov"][np.ix_(js, js)]


def make_result(ref: Refinement, res: Any, stages: list[dict]) -> RietveldResult:
    """Statistics, s.u., refined phases and curves from the final state of a refinement."""
    stats = ref.statistics()
    su_of = _SU(ref, stats)
    ev = stats["ev"]
    st = ev["state"]
    phases = []
    for i, ps in enumerate(ref.phases):
        cidx = ref.find("cell", i)
        cov_q = su_of.cov_block(cidx) if cidx else None
        cell, csu, vol, vsu = cell_and_su(ps, st["ph"][i]["q"], cov_q)
        sc = ref.find("scale", i)[0]
        po = ref.find("po", i)
        tt = two_theta_from_d(ps.lattice.d_spacings(cell), ref.rad.primary) + st["g"]["zero"]
        inr = np.isfinite(tt) & (tt >= ref.xr[0]) & (tt <= ref.xr[1])
        phases.append(RefinedPhase(
            ps.id, str(getattr(ps.phase, "name", "") or ps.id), str(ps.phase.spacegroup_hm), tuple(cell),
            csu, vol, vsu, ref.params[sc].value, su_of(sc), _site_results(ref, i, su_of), ps.po_axis,
            ref.params[po[0]].value if po else None, su_of(po[0]) if po else None,
            ps.hkl[inr].astype(int), tt[inr], ps.phase))
    names = [ref.params[i].name for i in ref.free]
    params = [{"name": p.name, "kind": p.kind, "value": p.value, "refined": p.refine,
               "su": su_of(k), "determined": not (p.refine and su_of(k) is None)}
              for k, p in enumerate(ref.params)]
    undetermined = [n for n, u in zip(names, stats["undetermined"]) if u]
    for prm in params:
        prm["su_corrected"] = prm["su"] * stats["berar_lelann"] if prm["su"] is not None else None
    warnings = []
    if undetermined:
        warnings.append("not determined by the data (no s.u. reported): " + ", ".join(undetermined))
    bound = [n for n, b in zip(names, stats["at_bound"]) if b]
    if bound:
        warnings.append("held at a bound (s.u. not meaningful): " + ", ".join(bound))
    for a, b, c in stats["high_correlations"]:
        warnings.append(f"|correlation| {abs(c):.3f} between {a} and {b}")
    maxshift = float(np.max(stats["shift_over_su"], initial=0.0))
    converged = bool(res is None or (res.status > 0 and maxshift < 0.1))
    if not converged:
        warnings.append(f"not converged: status {getattr(res, 'status', None)}, max shift/s.u. {maxshift:.3g}")
    glob = {k: (ref.params[ref.find(k)[0]].value, su_of(ref.find(k)[0]))
            for k in ("zero", "displacement", "U", "V", "W", "eta")}
    bg = ref.B @ st["bg"]
    return RietveldResult(
        params=params, phases=phases, rwp=stats["rwp"], rp=stats["rp"], rexp=stats["rexp"],
        chi2=stats["chi2"], n_points=stats["n_points"], n_params=stats["n_params"],
        correlation=stats["corr"], correlation_names=names, condition=stats["condition"],
        high_correlations=stats["high_correlations"], undetermined=undetermined, converged=converged,
        nfev=ref.nfev, max_shift_over_su=maxshift, x_deg=ref.x, observed=ref.y, calculated=ev["calc"],
        background=bg, sigma=ref.sigma, per_phase={ps.id: c for ps, c in zip(ref.phases, ev["per_phase"])},
        radiation=ref.rad, global_params=glob, warnings=warnings, stages=stages,
        berar_lelann=stats["berar_lelann"], restraints=_restraint_report(ref, st),
        rigid_bodies=_body_report(ref, params),
        dispersion={ps.id: dict(ps.dispersion) for ps in ref.phases})


def _body_report(ref: Refinement, params: list[dict]) -> list[dict]:
    """Per rigid body: centre, site symmetry, and for each angle its axis and what fixed it
    ("refined" with s.u.; "fixed by site symmetry"; "not determined by the data"; "held")."""
    from xtal.refine.rigid import axis_direction
    from xtal.structures.model import Cell

    out = []
    for i, ps in enumerate(ref.phases):
        orth = Cell(*ps.phase.cell.parameters).orthogonalization_matrix()
        for k, body in enumerate(ps.bodies):
            rows = []
            for nm in (*ANGLE_NAMES, "dBB", "dBH"):
                prm = next(p for p in params if p["name"] == f"{ps.id}:body{k}:{nm}")
                sub = len(rows)
                if sub < 3 and not body.angle_free[sub]:
                    status = f"fixed by site symmetry ({body.site_symmetry})"
                elif not prm["refined"]:
                    status = "held (not refined)"
                elif not prm["determined"]:
                    status = "not determined by the data"
                else:
                    status = "refined"
                rows.append({"name": prm["name"], "value": prm["value"], "su": prm["su"], "status": status,
                             "axis": axis_direction(body.axes[:, sub], orth) if sub < 3 else None})
            out.append({"phase": ps.id, "body": k, "centre": tuple(float(v) for v in body.centre),
                        "site_symmetry": body.site_symmetry, "params": rows})
    return out


def _restraint_report(ref: Refinement, st: dict) -> list[dict]:
    if not ref.restraints:
        return []
    from xtal.refine.restraints import distances

    d = distances(ref.restraints, ref.phases, [ps.lattice.cell(st["ph"][i]["q"])
                                               for i, ps in enumerate(ref.phases)])
    return [{"pair": r.label, "target": r.target, "sigma": r.sigma, "value": float(v)}
            for r, v in zip(ref.restraints, d)]
