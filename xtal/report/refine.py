"""Rendering of refinements: Markdown report and the standard Rietveld figure (observed, calculated,
background, difference curve, one tick row per phase); Le Bail and sequential summaries."""
from __future__ import annotations

from typing import Any

import numpy as np

from xtal.structures.model import format_su


def _v(value: float | None, su: float | None, nd: int = 5) -> str:
    if value is None:
        return "—"
    return format_su(float(value), su) if su else f"{value:.{nd}f}"


def render_rietveld_markdown(res: Any, title: str = "Rietveld refinement") -> str:
    """Markdown: agreement, convergence, phases (cell, atoms with s.u.), globals, diagnostics."""
    rad = res.radiation
    out = [f"# {title}", "",
           f"Data: `{res.source}` — {res.n_points} points, 2θ {res.x_deg[0]:.3f}–{res.x_deg[-1]:.3f}°, "
           f"λ = {rad.primary:.5f} Å{' (Kα1/Kα2)' if rad.is_doublet else ''}, {rad.polarization.describe()}.",
           "", "| Rwp | Rp | Rexp | χ² | parameters | converged | max shift/s.u. | Bérar–Lelann factor |",
           "|---|---|---|---|---|---|---|---|",
           f"| {100 * res.rwp:.2f} % | {100 * res.rp:.2f} % | {100 * res.rexp:.2f} % | {res.chi2:.3f} | "
           f"{res.n_params} | {'yes' if res.converged else 'NO'} | {res.max_shift_over_su:.3g} | "
           f"{res.berar_lelann:.2f} |", ""]
    if res.stages:
        out += ["Stages: " + "; ".join(f"{s['stage']}: Rwp {100 * s['rwp']:.2f} % ({s['iterations']} it.)"
                                       for s in res.stages), ""]
    for ph in res.phases:
        out += [f"## {ph.id} ({ph.spacegroup})", "",
                "a, b, c (Å), α, β, γ (°): " + ", ".join(_v(v, s, 5) for v, s in zip(ph.cell, ph.cell_su))
                + f"; V = {_v(ph.volume, ph.volume_su, 3)} Å³; scale {ph.scale:.4g}", ""]
        out += [_dispersion_line(res, ph.id), ""]
        if ph.po_axis is not None:
            out += [f"March–Dollase r along {ph.po_axis}: {_v(ph.po_r, ph.po_r_su, 4)}", ""]
        out += ["| site | x | y | z | occ | Uiso (Å²) |", "|---|---|---|---|---|---|"]
        for s in ph.sites:
            xyz = " | ".join(_v(v, su, 5) for v, su in zip(s.frac, s.frac_su))
            out.append(f"| {s.label} | {xyz} | {_v(s.occupancy, s.occupancy_su, 3)} | "
                       f"{_v(s.uiso, s.uiso_su, 4)} |")
        out.append("")
        aniso = [s for s in ph.sites if getattr(s, "u_aniso", None) is not None]
        if aniso:
            out += ["| site | U11 | U22 | U33 | U12 | U13 | U23 (Å²) | free by site symmetry |",
                    "|---|---|---|---|---|---|---|---|"]
            out += [f"| {s.label} | " + " | ".join(_v(v, su, 4) for v, su in zip(s.u_aniso, s.u_aniso_su))
                    + f" | {', '.join(s.free_uij) or 'none'} |" for s in aniso]
            out.append("")
    if res.restraints:
        out += ["## Distance restraints", "", "| pair | target (Å) | σ (Å) | refined (Å) |", "|---|---|---|---|"]
        out += [f"| {r['pair']} | {r['target']:.3f} | {r['sigma']:.3f} | {r['value']:.3f} |" for r in res.restraints]
        out.append("")
    for b in getattr(res, "rigid_bodies", []):
        centre = ", ".join(f"{v:.4f}" for v in b["centre"])
        out += [f"## Rigid body {b['body']} of {b['phase']} (centre {centre}, site symmetry {b['site_symmetry']})",
                "", "Angles are turns (rad) about the axes shown, after the fitted orientation; "
                "distances in Å.", "", "| parameter | axis | value | determined? |", "|---|---|---|---|"]
        out += [f"| {p['name']} | {p['axis'] or '—'} | {_v(p['value'], p['su'], 4)} | {p['status']} |"
                for p in b["params"]]
        out.append("")
    g = res.global_params
    out += ["## Instrument and profile", "", "| parameter | value |", "|---|---|"]
    out += [f"| {k} | {_v(v, s, 5)} |" for k, (v, s) in g.items()]
    out += ["", "## Diagnostics", "", f"Condition number of the scaled normal matrix: {res.condition:.3g}.", ""]
    if res.undetermined:
        out.append("**Not determined by the data (reported without s.u.):** " + ", ".join(res.undetermined))
        out.append("")
    if res.warnings:
        out += [f"- {w}" for w in res.warnings] + [""]
    out.append("s.u. are from the covariance scaled by χ²; for serially correlated profile residuals "
               "multiply them by the Bérar–Lelann factor above.")
    return "\n".join(out) + "\n"


def _dispersion_line(res: Any, pid: str) -> str:
    from xtal.refine.dispersion import describe

    return describe(getattr(res, "dispersion", {}).get(pid, {}), res.radiation.primary)


def render_lebail_markdown(res: Any) -> str:
    out = ["# Le Bail fit", "", f"Rwp {100 * res.rwp:.2f} %, Rexp {100 * res.rexp:.2f} %, χ² {res.chi2:.3f}; "
           f"{res.cycles} cycles, converged: {'yes' if res.converged else 'no'}; "
           f"zero {_v(res.zero_shift_deg, res.zero_shift_su, 4)}°", ""]
    for ph in res.phases:
        out.append(f"- {ph.id}: " + ", ".join(_v(v, s, 5) for v, s in zip(ph.cell, ph.cell_su))
                   + f"; {int(np.sum(ph.in_range))} reflections in range")
    return "\n".join(out + [f"- warning: {w}" for w in res.warnings]) + "\n"


def render_sequential_markdown(ds: Any, parametric: dict | None = None, merging: dict | None = None) -> str:
    """Table of the refined cells vs T (with s.u.), the parametric fit and the axis merging."""
    out = ["# Sequential refinement", "", f"Order: {ds.attrs.get('order')}; refined: {ds.attrs.get('refine')}.", ""]
    for pid in ds["phase"].values:
        out += [f"## {pid}", "", "| frame | T (K) | a | b | c | V | Rwp |", "|---|---|---|---|---|---|---|"]
        for k in ds["frame"].values:
            c = ds["cell"].sel(frame=k, phase=pid)
            s = ds["cell_su"].sel(frame=k, phase=pid)
            cells = " | ".join(_v(float(c.sel(axis=a)), float(s.sel(axis=a)), 5) for a in ("a", "b", "c", "volume"))
            out.append(f"| {k} | {float(ds['temperature_k'][k]):.1f} | {cells} | {100 * float(ds['rwp'][k]):.2f} % |")
        out.append("")
    if parametric:
        out += [f"## Parametric cell(T) of {parametric['phase']} (order {parametric['order']})", "",
                "| axis | T0 (K) | value at T0 | α (1/K) | χ² | frames |", "|---|---|---|---|---|---|"]
        for ax in ("a", "b", "c", "volume"):
            if ax in parametric:
                p = parametric[ax]
                out.append(f"| {ax} | {p['T0_K']:.1f} | {_v(p['value_at_T0'], p['value_su'])} | "
                           f"{_v(p['alpha_per_K'], p['alpha_su'], 8)} | {p['chi2']:.2f} | {p['n']} |")
        out.append("")
    if merging and merging.get("T_merge_C") is not None:
        out += [f"Axes {merging['axes']} merge at {merging['T_merge_C'] + 273.15:.1f} K "
                f"(± {merging['sigma_C']:.1f} K, bracket {merging['T_last_split_C'] + 273.15:.1f}–"
                f"{merging['T_first_merged_C'] + 273.15:.1f} K)."]
    return "\n".join(out) + "\n"


def rietveld_figure(res: Any, *, title: str | None = None):
    """The standard Rietveld plot as a matplotlib Figure (the caller saves or shows it)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n_ph = len(res.phases)
    fig = plt.figure(figsize=(11, 7.5), dpi=110)
    gs = fig.add_gridspec(3, 1, height_ratios=[3.2, 0.35 * n_ph + 0.3, 1.0], hspace=0.05)
    ax, axt = fig.add_subplot(gs[0]), None
    axt = fig.add_subplot(gs[1], sharex=ax)
    axd = fig.add_subplot(gs[2], sharex=ax)
    x = res.x_deg
    ax.plot(x, res.observed, "+", color="k", ms=3, mew=0.6, label="observed")
    ax.plot(x, res.calculated, color="tab:red", lw=0.9, label="calculated", zorder=4)
    ax.plot(x, res.background, color="tab:green", lw=0.8, label="background")
    _tick_rows(axt, [(ph.id, ph.ticks_two_theta_deg) for ph in res.phases])
    _difference_panel(axd, x, res.observed - res.calculated)
    ax.set_ylabel("intensity")
    ax.set_title(title or f"{' + '.join(ph.id for ph in res.phases)} — Rwp {100 * res.rwp:.2f} %, "
                 f"χ² {res.chi2:.2f}", fontsize=11)
    ax.legend(fontsize=9, loc="upper right")
    plt.setp(ax.get_xticklabels(), visible=False)
    plt.setp(axt.get_xticklabels(), visible=False)
    ax.set_xlim(x[0], x[-1])
    return fig


_TICK_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:cyan")


def _tick_rows(axt, rows: list[tuple[str, Any]]) -> None:
    """One row of reflection ticks per phase, top row first."""
    n = len(rows)
    levels = np.arange(n, 0, -1)
    for (label, pos), level, colour in zip(rows, levels, _TICK_COLOURS * (n // 5 + 1)):
        axt.vlines(pos, level - 0.4, level + 0.4, color=colour, lw=0.8)
    axt.set(yticks=levels, ylim=(0.4, n + 0.6))
    axt.set_yticklabels([label for label, _ in rows], fontsize=9)


def _difference_panel(axd, x, diff) -> None:
    axd.axhline(0.0, color="grey", lw=0.5)
    axd.plot(x, diff, color="tab:blue", lw=0.7)
    axd.set(xlabel="2θ (°)", ylabel="obs − calc")


def plot_rietveld(res: Any, path: Any, *, overwrite: bool = True, title: str | None = None) -> Any:
    """`rietveld_figure` written atomically to ``path`` (format by extension)."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    from xtal.util import atomic_path, check_writable

    target = check_writable(path, overwrite=overwrite, protected=(res.source,) if res.source else ())
    fig = rietveld_figure(res, title=title)
    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=Path(str(target)).suffix.lstrip(".").lower() or "png",
                        bbox_inches="tight")
    finally:
        plt.close(fig)
    return target
