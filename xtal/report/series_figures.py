"""Figures of a thermal-series analysis (`xtal.series.SeriesResult`; read from its Dataset).

heat map (log intensity, 2θ × frame, with phase-existence bars, the temperature programme and event
lines), phase fractions vs T, lattice parameters / volume vs T, waterfall.  Synthetic series and
structural MODELS are labelled on every figure.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from xtal.report.series import _stand_ins

__all__ = ["plot_heatmap", "plot_fractions", "plot_lattice", "plot_waterfall", "write_series_figures"]

_FONT = 11


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": _FONT, "axes.titlesize": _FONT + 1, "axes.labelsize": _FONT,
                         "legend.fontsize": _FONT - 1})
    return plt


def _label(res, pid: str, *, short: bool = False) -> str:
    """Phase label: MODEL marked; a stand-in says what it stands in for (``short``: a † mark, the
    text going into a footnote, for the narrow band labels)."""
    info = res.phase_info.get(pid, {})
    stand = dict(_stand_ins(res.dataset.attrs)).get(pid)
    mark = (" †" if short else f" — stand-in for {stand}") if stand else ""
    return pid + (" (MODEL)" if info.get("model") else "") + mark


def _temps(res, temperature: str | None):
    """(temperatures in the chosen unit, unit, axis label): K for a cryo series unless told."""
    from xtal.report.units import temperature_unit, to_unit, unit_label

    unit = temperature_unit(res.temperature_c, temperature)
    return to_unit(res.temperature_c, unit), unit, unit_label(unit)


def _title(res, text: str) -> str:
    return ("SYNTHETIC series — " if res.synthetic else "") + text


def _monotonic(t: np.ndarray) -> bool:
    t = t[np.isfinite(t)]
    if t.size < 2:
        return False
    d = np.diff(t)
    return bool(np.all(d > 0) or np.all(d < 0))


def _colors(n):
    plt = _mpl()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def plot_heatmap(res, *, cmap: str = "viridis", x_axis: str = "two_theta", temperature: str | None = None):
    """Heat map of log10 intensity with phase-existence bars, the temperature programme and event lines.

    x: 2θ (°) or, with ``x_axis="q"``, Q = 4π sinθ/λ (Å⁻¹).  y: temperature when it changes
    monotonically (a plain ramp: a 2θ–T map), otherwise the frame index (holds, cooling), with T(frame)
    in the right-hand panel.
    """
    plt = _mpl()
    if res.heat_x is None or not np.isfinite(res.dataset["heatmap"].values).any():
        raise ValueError("the result holds no heat-map data (heatmap_bins=0)")
    img = res.dataset["heatmap"].values.astype(float)
    pos = img[np.isfinite(img) & (img > 0)]
    floor = np.percentile(pos, 1) if pos.size else 1.0
    logi = np.log10(np.clip(img, max(floor, 1e-9), None))
    frames = _frames(res)
    T, unit, tlab = _temps(res, temperature)
    by_t = _monotonic(T)
    ycen = T if by_t else frames
    ylab = tlab if by_t else "frame"

    def edges(c):
        c = np.asarray(c, float)
        if c.size == 1:
            return np.array([c[0] - 0.5, c[0] + 0.5])
        m = 0.5 * (c[1:] + c[:-1])
        return np.concatenate([[c[0] - (m[0] - c[0])], m, [c[-1] + (c[-1] - m[-1])]])

    x = res.heat_x
    xlab = "2θ (°)"
    if x_axis == "q":
        if not res.wavelength_angstrom:
            raise ValueError("a Q axis needs the wavelength")
        x = 4 * np.pi * np.sin(np.radians(x) / 2) / res.wavelength_angstrom
        xlab = "Q (Å⁻¹)"
    elif x_axis != "two_theta":
        raise ValueError(f"x_axis must be 'two_theta' or 'q', not {x_axis!r}")
    if res.wavelength_angstrom:
        xlab += f"   (λ = {res.wavelength_angstrom:.5f} Å)"
    present = [pid for j, pid in enumerate(res.phase_ids) if res.present[:, j].any()]
    from xtal.report.interactive import amorphous_band

    halo = amorphous_band(res)
    nb = len(present) + int(halo.any())
    fig = plt.figure(figsize=(11, 7), constrained_layout=True)
    gs = fig.add_gridspec(1, 3, width_ratios=[6, max(0.35 * nb, 0.6), 1.4])
    ax0 = fig.add_subplot(gs[0])
    ye = edges(ycen)
    im = ax0.pcolormesh(edges(x), ye, logi, cmap=cmap, shading="flat", rasterized=True)
    if ye[0] > ye[-1]:
        ax0.invert_yaxis()
    ax0.set_xlabel(xlab)
    ax0.set_ylabel(ylab)
    cb = fig.colorbar(im, ax=ax0, location="right", fraction=0.05, pad=0.01)
    cb.set_label("log10 intensity (counts)")
    ax0.set_title(_title(res, "intensity map" + (" (2θ–T)" if by_t and x_axis != "q" else "")))
    ev_col = {"appears": "lime", "disappears": "orange", "jump": "red", "amorphous": "magenta"}

    def ypos(fp):
        f = _frame_at(res, fp)
        return float(np.interp(f, frames, T)) if by_t else f

    for e in res.events:
        ax0.axhline(ypos(e.get("frame_position", e["frame"])), color=ev_col.get(e["kind"], "w"),
                    lw=1.0, ls="--", alpha=0.9)
    merges = [t for t in getattr(res, "lattice_transitions", []) if t.get("T_merge_C") is not None]
    for t in merges:
        tm = t["T_merge_C"] + (273.15 if unit == "K" else 0.0)
        yv = tm if by_t else float(np.interp(tm, T, frames)) if _monotonic(T) else None
        if yv is not None:
            ax0.axhline(yv, color="cyan", lw=1.2, ls=":")
    # phase-existence bars
    ax1 = fig.add_subplot(gs[1], sharey=ax0)
    cols = _colors(len(res.phase_ids))
    for m, pid in enumerate(present):
        j = res.phase_ids.index(pid)
        pr = res.present[:, j]
        for k in np.flatnonzero(pr):
            lo, hi = sorted((ye[k], ye[k + 1]))
            ax1.add_patch(plt.Rectangle((m - 0.4, lo), 0.8, hi - lo, color=cols[j], lw=0))
    names = [_label(res, p, short=True) for p in present]
    stand = [(p, w) for p, w in _stand_ins(res.dataset.attrs) if p in present]
    if stand:
        fig.text(0.0, 1.0, "† " + "; ".join(f"{p} stands in for {w}" for p, w in stand),
                 fontsize=_FONT - 2, ha="left", va="bottom")
    if halo.any():     # the amorphous halo has a band too
        for k in np.flatnonzero(halo):
            lo, hi = sorted((ye[k], ye[k + 1]))
            ax1.add_patch(plt.Rectangle((len(present) - 0.4, lo), 0.8, hi - lo, facecolor="0.75",
                                        edgecolor="0.35", hatch="//", lw=0))
        names.append("amorphous halo")
    ax1.set_xlim(-0.6, max(nb, 1) - 0.4)
    ax1.set_xticks(range(nb))
    ax1.set_xticklabels(names, rotation=90)
    ax1.tick_params(axis="y", labelleft=False)
    ax1.set_title("phases")
    # temperature programme (on a T axis: the acquisition order instead)
    ax2 = fig.add_subplot(gs[2], sharey=ax0)
    px = frames if by_t else T
    ax2.plot(px, ycen, color="k", lw=1.5, marker="." if len(frames) < 60 else None)
    bad = np.flatnonzero(res.status != "ok")
    if bad.size:
        ax2.plot(px[bad], ycen[bad], "rx", ms=8, label="skipped frame")
        ax2.legend(loc="lower right")
    ax2.set_xlabel("frame" if by_t else tlab)
    ax2.tick_params(axis="y", labelleft=False)
    ax2.set_title("programme")
    ax2.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, ls="--", label=k) for k, c in ev_col.items()
               if any(e["kind"] == k for e in res.events)]
    handles += [Line2D([], [], color="cyan", ls=":", label=f"{t['phase']}: {'='.join(t['axes'])} merge")
                for t in merges]
    if handles:   # below the figure: a legend inside the map hid the data under it
        fig.legend(handles=handles, loc="outside lower center", title="events", ncols=min(len(handles), 5))
    return fig


def _frames(res) -> np.ndarray:
    return res.dataset["frame"].values.astype(float)


def _frame_at(res, pos: float) -> float:
    frames = _frames(res)
    i = int(np.floor(pos))
    if i >= frames.size - 1:
        return float(frames[-1])
    return float(frames[i] + (pos - i) * (frames[i + 1] - frames[i]))


def _xaxis(res, temperature: str | None = None):
    T, _, tlab = _temps(res, temperature)
    if _monotonic(T):
        return T, tlab
    return _frames(res), "frame"


def plot_fractions(res, *, temperature: str | None = None):
    """Weight fraction of every present phase (± s.u.) and, on its own axis below, the amorphous
    fraction (it is not a fraction of the crystalline part)."""
    plt = _mpl()
    x, xl = _xaxis(res, temperature)
    T, _, tlab = _temps(res, temperature)
    fig, (ax, axa) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, height_ratios=[3, 1.2],
                                  constrained_layout=True)
    cols = _colors(len(res.phase_ids))
    for j, pid in enumerate(res.phase_ids):
        if not res.present[:, j].any():
            continue
        w = res.values("wf", pid)
        s = res.values("wf_su", pid)
        ax.errorbar(x, w, yerr=np.where(np.isfinite(s), s, 0), fmt="o-", ms=3, lw=1.2,
                    color=cols[j], label=_label(res, pid), capsize=0)
    af = res.dataset["amorphous_fraction"].values
    axa.plot(x, af, "k--", lw=1.2, label="amorphous fraction (halo / total)")
    axa.set_ylabel("amorphous fraction")
    axa.set_ylim(-0.03, max(0.1, float(np.nanmax(af)) * 1.1) if np.isfinite(af).any() else 1.0)
    axa.grid(alpha=0.3)
    axa.legend(loc="upper left")
    axa.set_xlabel(xl)
    ax.set_ylim(-0.03, 1.05)
    ax.set_ylabel("weight fraction (Hill–Howard, crystalline)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(_title(res, "phase fractions"))
    if xl == "frame":
        tx = ax.twinx()
        tx.plot(x, T, color="0.5", lw=1)
        tx.set_ylabel(tlab, color="0.4")
    return fig


def plot_lattice(res, *, temperature: str | None = None):
    """a, b, c (Å) and V (Å³) vs T per present phase, with s.u. (open symbols: cooling/hold frames)."""
    plt = _mpl()
    pids = [pid for j, pid in enumerate(res.phase_ids) if res.present[:, j].any()]
    if not pids:
        raise ValueError("no phase present in any frame")
    T, _, tlab = _temps(res, temperature)
    fig, axes = plt.subplots(len(pids), 2, figsize=(11, 3.2 * len(pids) + 0.6), squeeze=False,
                             constrained_layout=True)
    heating = np.r_[True, np.diff(T) > 0.05] if T.size else np.array([], bool)
    for row, pid in enumerate(pids):
        axl, axv = axes[row]
        firsts = {}
        for key in ("a", "b", "c"):
            v = res.values(key, pid)
            if np.isfinite(v).any():
                firsts[key] = float(v[np.isfinite(v)][0])
        for key, c in zip(("a", "b", "c"), ("C0", "C1", "C2")):
            v = res.values(key, pid)
            s = res.values(key + "_su", pid)
            if not np.isfinite(v).any():
                continue
            if key != "a":
                va = res.values("a", pid)
                if np.allclose(v[np.isfinite(v)], va[np.isfinite(v)], rtol=1e-7):
                    continue  # constrained equal by symmetry
            # axes within 1 % share one reference, so that a splitting / merging shows
            near = [firsts[k] for k in firsts if abs(firsts[k] / firsts[key] - 1) < 0.01]
            ref = float(np.mean(near))
            rel, srel = 100 * (v / ref - 1), 100 * np.nan_to_num(s) / ref
            axl.errorbar(T[heating], rel[heating], yerr=srel[heating], fmt="o-", ms=3, lw=0.8,
                         color=c, label=f"{key} (ref. {ref:.4f} Å)")
            if (~heating).any():
                axl.errorbar(T[~heating], rel[~heating], yerr=srel[~heating], fmt="o", ms=4,
                             mfc="none", color=c)
        axl.set_xlabel(tlab)
        axl.set_ylabel("Δp / p (%)")
        axl.set_title(_title(res, _label(res, pid) + ": lattice parameters"))
        axl.legend(loc="best")
        axl.grid(alpha=0.3)
        v = res.values("vol", pid)
        s = res.values("vol_su", pid)
        axv.errorbar(T[heating], v[heating], yerr=np.nan_to_num(s[heating]), fmt="s", ms=3,
                     color="C3", label="V (heating)")
        if (~heating).any():
            axv.errorbar(T[~heating], v[~heating], yerr=np.nan_to_num(s[~heating]), fmt="s", ms=4,
                         mfc="none", color="C3", label="V (cooling / hold)")
        ex = res.expansion.get(pid, {}).get("vol")
        if ex and ex.get("alpha_per_K") is not None:
            axv.text(0.02, 0.95, f"α_V = {ex['alpha_per_K'] * 1e6:.1f}({ex['alpha_su'] * 1e6:.1f})"
                     " ×10⁻⁶ K⁻¹", transform=axv.transAxes, va="top")
        axv.set_xlabel(tlab)
        axv.set_ylabel("cell volume (Å³)")
        axv.legend(loc="lower right")
        axv.grid(alpha=0.3)
    return fig


def plot_waterfall(res, *, max_curves: int = 30, offset: float | None = None,
                   temperature: str | None = None):
    """Offset patterns (binned) every n-th frame, coloured by temperature."""
    plt = _mpl()
    if res.heat_x is None:
        raise ValueError("the result holds no heat-map data")
    heat = res.dataset["heatmap"].values
    rows = np.flatnonzero(np.isfinite(heat).any(axis=1))
    if not rows.size:
        raise ValueError("the result holds no heat-map data")
    step = max(1, int(np.ceil(rows.size / max_curves)))
    sel = rows[::step]
    top = np.nanmax(heat[sel])
    off = offset if offset is not None else 0.35 * top
    T_all, _, tlab = _temps(res, temperature)
    T = T_all[sel]
    cmap = plt.get_cmap("cividis")
    tmin, tmax = (np.nanmin(T), np.nanmax(T)) if np.isfinite(T).any() else (0, 1)
    fig, ax = plt.subplots(figsize=(9, 8), constrained_layout=True)
    for m, (k, t) in enumerate(zip(sel, T)):
        c = cmap((t - tmin) / (tmax - tmin) if tmax > tmin and np.isfinite(t) else 0.5)
        ax.plot(res.heat_x, heat[k] + m * off, color=c, lw=0.8)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(tmin, tmax))
    fig.colorbar(sm, ax=ax, label=tlab)
    ax.set_xlabel("2θ (°)")
    ax.set_ylabel(f"intensity (counts) + offset (every {step} frame{'s' if step > 1 else ''})")
    ax.set_title(_title(res, "waterfall"))
    return fig


def write_series_figures(res, outdir, *, overwrite: bool = False, waterfall: bool = True,
                         dpi: int = 120, temperature: str | None = None) -> dict[str, Path]:
    """Save the figures as PNG (atomic writes); returns {name: path}."""
    from xtal.io import atomic_write

    plt = _mpl()
    out = Path(outdir)
    made = {}
    t = temperature
    makers = [("heatmap.png", lambda r: plot_heatmap(r, temperature=t)),
              ("heatmap_q.png", lambda r: plot_heatmap(r, x_axis="q", temperature=t)),
              ("fractions.png", lambda r: plot_fractions(r, temperature=t)),
              ("lattice.png", lambda r: plot_lattice(r, temperature=t))]
    if waterfall:
        makers.append(("waterfall.png", lambda r: plot_waterfall(r, temperature=t)))
    for name, fn in makers:
        try:
            fig = fn(res)
        except ValueError:
            continue
        made[name] = atomic_write(out / name, lambda p, f=fig: f.savefig(p, dpi=dpi, format="png", bbox_inches="tight"),
                                  overwrite=overwrite)
        plt.close(fig)
    return made
