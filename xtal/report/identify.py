"""Identification rendered: the Markdown report and the fit figure (observed, calculated,
difference, one tick row per phase, unexplained peaks)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from xtal.identify import IdentificationResult, unexplained_peaks


def _fmt_pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def render_identification_markdown(result: IdentificationResult) -> str:
    """Markdown report of an identification (hypotheses, phases, unexplained peaks, warnings)."""
    r = result
    rad = r.radiation
    lines = ["# Phase identification", ""]
    if r.source:
        lines.append(f"Pattern: `{r.source}`  ")
    if rad is not None and rad.is_doublet:
        lines.append(f"Radiation: Kα1/Kα2 doublet λ1 = {rad.wavelengths[0]:.5f} Å, "
                     f"λ2 = {rad.wavelengths[1]:.5f} Å, I2/I1 = {rad.weights[1]:.3f}  ")
    else:
        lines.append(f"Radiation: single wavelength λ = {r.wavelength:.6f} Å  ")
    lines += ["", f"**Confidence: {r.confidence}.** {r.confidence_statement}", ""]
    if r.model_phases:
        lines += ["> **MODEL:** " + ", ".join(r.model_phases)
                  + (" is a structural model" if len(r.model_phases) == 1 else " are structural models")
                  + ", not refined; presence and fractions are indicative only.", ""]
    if not r.hypotheses:
        lines += ["**No library phase explains this pattern.** No phase is claimed.", ""]
        if r.partial_matches:
            lines += ["Closest candidates (partial matches, *not accepted*):", "",
                      "| phases | Rwp % | reproduces % of the Bragg intensity |", "|---|---|---|"]
            lines += [f"| {' + '.join(h.ids)} | {100 * h.rwp:.1f} | {_fmt_pct(h.explained_fraction)} |"
                      for h in r.partial_matches]
            lines.append("")
    else:
        lines += ["## Hypotheses (best first; score = BIC, lower is better)", "",
                  "| # | phases | Rwp % | score | Δscore | explained % | note |",
                  "|---|---|---|---|---|---|---|"]
        for i, h in enumerate(r.hypotheses, 1):
            note = "near tie" if h.near_tie else ""
            if any(p.model for p in h.phases):
                note = (note + "; " if note else "") + "MODEL phase"
            lines.append(f"| {i} | {' + '.join(h.ids)} | {100 * h.rwp:.2f} | {h.score:.1f} | "
                         f"{h.delta_score:.1f} | {_fmt_pct(h.explained_fraction)} | {note} |")
        b = r.hypotheses[0]
        lines += ["", "## Best hypothesis: phases", "",
                  "| phase | wt % | ± | scale | a, b, c (Å) | α, β, γ (°) | strain a/b/c % | FWHM ° | model |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in b.phases:
            abc = ", ".join(_fmt_su(v, s) for v, s in zip(p.cell[:3], p.cell_su[:3]))
            ang = ", ".join(_fmt_su(v, s) for v, s in zip(p.cell[3:], p.cell_su[3:]))
            st = "/".join(f"{100 * e:+.2f}" for e in p.strain)
            lines.append(f"| {p.id} | {_fmt_pct(p.weight_fraction)} | {_fmt_pct(p.weight_fraction_su)} | "
                         f"{p.scale:.4g} | {abc} | {ang} | {st} | {p.fwhm_deg:.3f} | "
                         f"{'MODEL' if p.model else ''} |")
        f = b.fit
        po = [f"{p.id}: r = {_fmt_su(p.preferred_orientation['r'], p.preferred_orientation['r_su'])} along "
              f"[{' '.join(str(v) for v in p.preferred_orientation['axis'])}]"
              for p in b.phases if p.preferred_orientation]
        if po:
            lines += ["", "Preferred orientation (March–Dollase): " + "; ".join(po) + "  "]
        if f.displacement_su is not None:
            lines += [f"Sample displacement: {_fmt_su(f.displacement_deg, f.displacement_su)}° "
                      "(2θ shift at 2θ = 0, ∝ cos θ)  "]
        lines += ["", f"Zero shift {f.zero_shift_deg:+.4f}° · profile U = {f.profile['U']:.4g}, "
                  f"V = {f.profile['V']:.4g}, W = {f.profile['W']:.4g} deg², η = {f.profile['eta']:.3f} · "
                  f"Rwp {100 * f.rwp:.2f} % · Rexp {100 * f.rexp:.2f} % · χ² {f.chi2:.2f} · "
                  f"{f.n_points} points, {f.n_params} parameters", ""]
    lines += ["## Unexplained peaks", ""]
    if r.unexplained_peaks:
        lines += ["| 2θ (°) | d (Å) | intensity (counts) | relative |", "|---|---|---|---|"]
        for p in r.unexplained_peaks[:30]:
            lines.append(f"| {p['two_theta']:.3f} | {p['d']:.4f} | {p['intensity']:.0f} | "
                         f"{_fmt_pct(p.get('relative_intensity'))} % |")
    else:
        lines.append("None above the noise.")
    am = r.amorphous_fraction_estimate
    halo = r.amorphous or {}
    if am is not None:
        lines += ["", f"Amorphous content: {_fmt_pct(am)} ± {_fmt_pct(r.amorphous_fraction_su)} % — "
                  + (halo.get("statement") or "internal standard") + ".", ""]
    elif halo:
        lim = halo.get("upper_limit")
        lines += ["", "Amorphous content: not detected"
                  + (f" (< {_fmt_pct(lim)} %, 3σ)" if lim is not None else "") + ". "
                  + (halo.get("statement") or "") + ".", ""]
    if r.noise_model:
        lines += [f"Noise model: {r.noise_model}.", ""]
    if r.positions is not None:
        pc = r.positions
        lines += ["## Peak positions alone (Le Bail)", "",
                  f"Run because: {pc.reason}. {pc.statement}", "",
                  "| phase | required by positions | significance (σ) | Rwp without it |", "|---|---|---|---|"]
        lines += [f"| {pid} | {'yes' if v['required'] else 'no'} | {v['significance']:.1f} | "
                  f"{100 * v['rwp_without']:.2f} % |" for pid, v in pc.phases.items()]
        lines.append("")
    if r.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in r.warnings] + [""]
    return "\n".join(lines)


def _fmt_su(v: float, s: float | None) -> str:
    if s is None or not math.isfinite(s) or s <= 0:
        return f"{v:.5g}"
    try:
        from xtal.structures import format_su
        return format_su(v, s)
    except Exception:  # pragma: no cover
        return f"{v:.5f}({s:.1g})"


def plot_identification(result: IdentificationResult, pattern: Any, path: Any, *,
                        hypothesis: int = 0, overwrite: bool = False, intensity: str = "linear",
                        zoom: tuple[float, float] | None = None,
                        inset: tuple[float, float] | None = None) -> Any:
    """Figure of a hypothesis: observed, calculated, background, difference, per-phase tick rows
    and the unexplained peaks; written atomically to ``path`` (PNG/SVG/PDF by extension).

    intensity : "linear", "sqrt" (√I: weak peaks next to strong ones) or "log".
    zoom : (min, max) 2θ range shown (default: the whole pattern).
    inset : (min, max) 2θ window drawn magnified in an inset of the pattern panel.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from pathlib import Path

    from xtal.util import atomic_path, check_figure_path

    src = getattr(pattern, "source", None) or result.source
    target = check_figure_path(path, overwrite=overwrite, protected=(src,) if src else ())
    fig = identification_figure_mpl(result, pattern, hypothesis=hypothesis, intensity=intensity,
                                    zoom=zoom, inset=inset)
    ext = Path(str(target)).suffix.lstrip(".").lower() or "png"
    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight")
    finally:
        plt.close(fig)
    return target


_SCALES = {"linear": ("intensity (counts)", lambda y: y),
           "sqrt": ("√intensity (√counts)", lambda y: np.sign(y) * np.sqrt(np.abs(y))),
           "log": ("intensity (counts, log)", lambda y: y)}


def identification_figure_mpl(result: IdentificationResult, pattern: Any = None, *, hypothesis: int = 0,
                              intensity: str = "linear", zoom: tuple[float, float] | None = None,
                              inset: tuple[float, float] | None = None):
    """The matplotlib figure of ``plot_identification`` (tests read its artists)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if intensity not in _SCALES:
        raise ValueError(f"intensity must be one of {sorted(_SCALES)}, not {intensity!r}")
    ylab, tf = _SCALES[intensity]
    fig = plt.figure(figsize=(11, 7.5), dpi=110)
    plt.rcParams.update({"font.size": 11})
    synthetic = bool(getattr(pattern, "meta", None) and pattern.meta.get("synthetic"))
    if synthetic:
        fig.suptitle("SYNTHETIC pattern (xtal.synth, stated recipe) — not a measurement",
                     color="#b00000", fontweight="bold", fontsize=12)
    if not result.hypotheses:
        ax = fig.add_subplot(111)
        ax.plot(result.x_deg, tf(result.observed), color="k", lw=0.8, label="observed")
        for k, p in enumerate(result.unexplained_peaks):
            ax.axvline(p["two_theta"], color="crimson", ls=":", lw=0.8,
                       label="unexplained peak" if k == 0 else None)
        ax.set_xlabel("2θ (°)")
        ax.set_ylabel(ylab)
        ax.set_title("No library phase explains this pattern (dotted: unexplained peaks)")
        ax.legend()
    else:
        h = result.hypotheses[min(hypothesis, len(result.hypotheses) - 1)]
        f = h.fit
        n_ph = len(f.phases)
        gs = fig.add_gridspec(3, 1, height_ratios=[3.2, 0.35 * n_ph + 0.3, 1.0], hspace=0.05)
        ax = fig.add_subplot(gs[0])
        axt = fig.add_subplot(gs[1], sharex=ax)
        axd = fig.add_subplot(gs[2], sharex=ax)
        x = f.x_deg
        ax.plot(x, tf(f.observed), ".", color="k", ms=2, label="observed")
        ax.plot(x, tf(f.calculated), color="tab:red", lw=0.9, label="calculated", zorder=4)
        ax.plot(x, tf(f.background), color="tab:green", lw=0.9, label="background")
        colors = ["tab:purple", "tab:orange", "tab:cyan", "tab:brown", "tab:pink", "tab:olive"]
        for i, p in enumerate(f.phases):
            col = colors[i % len(colors)]
            ax.plot(x, tf(f.background + f.per_phase[p.id]), lw=0.6, color=col, alpha=0.7,
                    label=f"{p.id}{' (MODEL)' if p.model else ''}: {_fmt_pct(p.weight_fraction)} wt%")
            # ticks at the refined Kα1 positions
            tt = p.reflections_two_theta_deg
            axt.vlines(tt, n_ph - i - 0.4, n_ph - i + 0.4, color=col, lw=0.8)
        up = result.unexplained_peaks if hypothesis == 0 else unexplained_peaks(f)
        if up:
            yy = np.interp([p["two_theta"] for p in up], x, f.observed)
            ax.plot([p["two_theta"] for p in up], tf(yy * 1.04 + 0.02 * np.max(f.observed)), "v",
                    color="crimson", ms=7, label="unexplained peak")
        axt.set_yticks([n_ph - i for i in range(n_ph)])
        axt.set_yticklabels([p.id for p in f.phases], fontsize=9)
        axt.set_ylim(0.4, n_ph + 0.6)
        axd.plot(x, f.observed - f.calculated, color="tab:blue", lw=0.7)
        axd.axhline(0, color="grey", lw=0.5)
        axd.set_ylabel("obs − calc (counts)")
        axd.set_xlabel("2θ (°)")
        ax.set_ylabel(ylab)
        lam = result.radiation
        ttl = (f"{' + '.join(h.ids)} — Rwp {100 * h.rwp:.2f} %, confidence {result.confidence}"
               f", λ = {result.wavelength:.5f} Å" + (" (Kα1/Kα2)" if lam and lam.is_doublet else ""))
        ax.set_title(ttl, fontsize=11)
        ax.legend(fontsize=9, loc="upper right")
        plt.setp(ax.get_xticklabels(), visible=False)
        plt.setp(axt.get_xticklabels(), visible=False)
        ax.set_xlim(x[0], x[-1])
        if inset is not None:
            lo, hi = sorted(float(v) for v in inset)
            axi = ax.inset_axes([0.42, 0.42, 0.3, 0.5])
            m = (x >= lo) & (x <= hi)
            axi.plot(x[m], tf(f.observed[m]), ".", color="k", ms=2)
            axi.plot(x[m], tf(f.calculated[m]), color="tab:red", lw=0.9)
            axi.set_xlim(lo, hi)
            axi.set_title(f"{lo:g}–{hi:g}° (magnified)", fontsize=9)
            axi.tick_params(labelsize=8)
            if intensity == "log":
                axi.set_yscale("log")
            ax.indicate_inset_zoom(axi, edgecolor="0.4")
    if intensity == "log":
        fig.axes[0].set_yscale("log")
    if zoom is not None:
        fig.axes[0].set_xlim(*sorted(float(v) for v in zoom))
    return fig
