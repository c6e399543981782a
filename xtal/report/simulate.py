"""Simulated patterns rendered: the figure with hkl labels (and the MODEL banner where it applies)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from xtal.simulate import SimulatedPattern
from xtal.util import atomic_path, check_figure_path

MODEL_FIGURE_TEXT = "MODEL structure — intensities depend on modelled anion orientation"


def _hkl_label(hkl) -> str:
    """'1 1 \bar{1}' style label (mathtext overbar for negative indices)."""
    parts = [rf"$\bar{{{-int(v)}}}$" if v < 0 else str(int(v)) for v in hkl]
    return " ".join(parts)


def plot_pattern(sim: SimulatedPattern, path: str | Path, *, overwrite: bool = False,
                 label_top: int = 12, dpi: int = 200, title: str | None = None) -> Path:
    """Publication-ready PNG/PDF/SVG of the profile with hkl tick marks (matplotlib, Agg backend).

    Format from the extension; refuses to overwrite an existing file unless ``overwrite``."""
    p = check_figure_path(path, overwrite=overwrite)   # a figure as .cif is refused before drawing
    fig = pattern_figure(sim, label_top=label_top, dpi=dpi, title=title)
    fmt = p.suffix.lower().lstrip(".") or "png"
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format=fmt)
    return p


def pattern_figure(sim: SimulatedPattern, *, label_top: int = 12, dpi: int = 200, title: str | None = None):
    """The matplotlib `Figure` drawn by `plot_pattern` (not attached to pyplot: no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.6), dpi=dpi)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(111)
    x, y = sim.two_theta_deg, sim.intensity
    ymax = float(y.max()) if len(y) and y.max() > 0 else 1.0
    yn = y / ymax * 100.0
    lam_txt = f"λ = {sim.wavelength_angstrom:.5f} Å"
    ax.plot(x, yn, color="#1f3b73", lw=1.0, label=f"simulated ({lam_txt})")
    r = sim.reflections
    shift = sim.meta.get("zero_shift_deg", 0.0)
    tick_y0, tick_y1 = -9.0, -3.0
    if len(r):
        pos = r.two_theta_deg + shift
        ax.vlines(pos, tick_y0, tick_y1, color="#b22222", lw=0.7, label=f"{sim.phase_id} reflections")
        # label the strongest reflections (by integrated intensity) that are not too crowded
        order = np.argsort(-r.intensity)
        placed: list[float] = []
        span = x[-1] - x[0]
        for k in order[: max(0, label_top) * 3]:
            if len(placed) >= label_top or r.intensity[k] <= 0:
                break
            if any(abs(pos[k] - q) < 0.012 * span for q in placed):
                continue
            placed.append(pos[k])
            ipk = int(np.clip(np.searchsorted(x, pos[k]), 0, len(x) - 1))
            lo_i, hi_i = max(0, ipk - 3), min(len(x), ipk + 4)
            top = float(yn[lo_i:hi_i].max())
            ax.annotate(_hkl_label(r.hkl[k]), (pos[k], top), xytext=(0, 4), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7.5, rotation=90, color="#333333")
    if sim.reflections_ka2 is not None and len(sim.reflections_ka2):
        ax.vlines(sim.reflections_ka2.two_theta_deg + shift, tick_y0, tick_y1 - 3, color="#e08080", lw=0.5,
                  label="Kα2")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(-11.0, 132.0)
    ax.set_xlabel("2θ (°)", fontsize=12)
    ax.set_ylabel("Intensity (arb. units)", fontsize=12)
    ax.tick_params(labelsize=10)
    ax.axhline(0.0, color="0.7", lw=0.5)
    ttl = title or f"{sim.phase_name or sim.phase_id} — simulated powder pattern, {lam_txt}"
    if sim.is_model:
        fig.suptitle(ttl, fontsize=12)
        ax.set_title(MODEL_FIGURE_TEXT, fontsize=10.5, color="#b00000", fontweight="bold")
    else:
        ax.set_title(ttl, fontsize=12)
    ax.legend(fontsize=9, loc="upper right", frameon=False)
    return fig


def _cell_text(c) -> str:
    """'a = 9.577 Å' (cubic), 'a = 4.276, c = 6.948 Å' (a = b), else a, b, c (+ the angles ≠ 90°)."""
    same = lambda u, v: abs(u - v) < 1e-4
    if same(c.a, c.b) and same(c.a, c.c):
        t = f"a = {c.a:.3f} Å"
    elif same(c.a, c.b):
        t = f"a = {c.a:.3f}, c = {c.c:.3f} Å"
    else:
        t = f"a = {c.a:.3f}, b = {c.b:.3f}, c = {c.c:.3f} Å"
    ang = [f"{n} = {v:.2f}°" for n, v in (("α", c.alpha), ("β", c.beta), ("γ", c.gamma))
           if not (same(v, 90.0) or same(v, 120.0))]
    return t + (", " + ", ".join(ang) if ang else "")


def plot_stacked_patterns(sims: list[SimulatedPattern], phases: list, path: Path, *,
                          two_theta_range_deg: tuple[float, float] = (3.0, 40.0),
                          title: str | None = None) -> Path:
    """Stacked stick/profile panels (one per phase) on a common 2θ axis, d-spacing on top;
    MODEL structures in red and labelled."""
    from matplotlib.figure import Figure

    lam = sims[0].wavelength_angstrom
    lo, hi = two_theta_range_deg
    n = len(sims)
    fig = Figure(figsize=(10.0, 1.75 * n + 1.5), dpi=130)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(n, 1, sharex=True)
    axes = np.atleast_1d(axes)
    for k, (ax, sim, ph) in enumerate(zip(axes, sims, phases)):
        x, y = sim.two_theta_deg, sim.intensity
        m = (x >= lo) & (x <= hi)
        ymax = float(y[m].max()) if m.any() and y[m].max() > 0 else 1.0
        col = "#b00000" if sim.is_model else "#1f3b73"
        ax.plot(x[m], 100 * y[m] / ymax, color=col, lw=0.9)
        r = sim.reflections
        sel = (r.two_theta_deg >= lo) & (r.two_theta_deg <= hi)
        if sel.any():
            # sticks: integrated intensity relative to the strongest reflection in the window, drawn below 0
            rel = r.intensity[sel] / r.intensity[sel].max()
            ax.vlines(r.two_theta_deg[sel], -4 - 16 * rel, -4, color="0.35", lw=0.8)
            order = np.argsort(-r.intensity[sel])[:4]
            tt_sel, hkl_sel = r.two_theta_deg[sel], r.hkl[sel]
            placed = []
            for i in order:
                if any(abs(tt_sel[i] - q) < 0.6 for q in placed):
                    continue
                placed.append(tt_sel[i])
                j = int(np.clip(np.searchsorted(x, tt_sel[i]), 0, len(x) - 1))
                top = 100 * float(y[max(0, j - 3): j + 4].max()) / ymax
                ax.annotate(_hkl_label(hkl_sel[i]), (tt_sel[i], min(top, 100)), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.2")
        label = ph.name if not sim.is_model else ph.name.replace(" (MODEL)", "") + " — MODEL, not refined"
        ax.text(0.995, 0.9, f"{label}\n{ph.spacegroup_hm.replace(' ', '')}, {_cell_text(ph.cell)}",
                transform=ax.transAxes, ha="right", va="top", fontsize=9.5, color=col,
                fontweight="bold" if sim.is_model else "normal",
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1.5))
        ax.set_ylim(-24, 125)
        ax.set_yticks([0, 50, 100])
        ax.axhline(0, color="0.8", lw=0.5)
        ax.set_ylabel("I (% of max)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.set_xlim(lo, hi)
    axes[-1].set_xlabel(f"2θ (°)   λ = {lam:.5f} Å", fontsize=11)

    def tt_to_d(t):
        t = np.clip(np.asarray(t, float), 0.3, 179.0)
        return lam / (2 * np.sin(np.radians(t) / 2))

    def d_to_tt(dd):
        dd = np.clip(np.asarray(dd, float), lam / 1.999, 1e4)
        return 2 * np.degrees(np.arcsin(lam / (2 * dd)))

    top = axes[0].secondary_xaxis("top", functions=(tt_to_d, d_to_tt))
    top.set_xticks([10, 6, 4, 3, 2, 1.5, 1.2])
    top.set_xlabel("d (Å)", fontsize=10)
    top.tick_params(labelsize=9)
    fig.suptitle((title or "Simulated powder patterns") + " (profile: line; reflections: sticks "
                 "below 0)\nred = structural MODEL (intensities indicative only)", fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
