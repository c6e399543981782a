"""Interactive, self-contained HTML pages (plotly) of the identification, series and geometry results.

Each page embeds plotly.js (``include_plotlyjs=True``): it opens from a file with no server and no
network. What a chemist can do on them: zoom (drag, double-click to reset), toggle phases in the
legend, read hkl / d / intensity of a reflection, frame / T / 2θ / intensity of a heat-map cell
and a lattice parameter with its s.u. on hover, and switch the intensity scale between linear,
√I and log. The matplotlib PNG/SVG figures stay the ones for papers.

The ``*_figure`` functions return ``plotly.graph_objects.Figure`` objects (tests read their dicts);
``write_*_html`` write the pages atomically.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xtal.report.units import (independent_lattice_parameters, temperature_unit, to_unit,
                               unit_label)

__all__ = ["identification_figure", "series_figures", "geometry_figure", "write_identification_html",
           "write_series_html", "write_geometry_html", "html_page"]

_COLORS = ["#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#2ca02c", "#7f7f7f"]
_LATTICE_UNITS = {"a": "Å", "b": "Å", "c": "Å", "alpha": "°", "beta": "°", "gamma": "°"}
AMORPHOUS_BAND_LEVEL = 0.15  # amorphous fraction from which a frame is drawn in the halo band
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ"}


def _go():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    return go, make_subplots


def _sqrt(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, float)
    return np.sign(y) * np.sqrt(np.abs(y))


def _list(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, float)]


def _arr(a) -> np.ndarray:
    """Float values for a page: orjson writes the array at C speed (NaN/inf as null, like `_list`);
    a plotly figure (`_Figure.to_plotly`) gets them back as `_list` lists."""
    return np.ascontiguousarray(a, dtype=float)


def _plain(v):
    """``v`` with every numpy array as plotly's figure dicts held it before: 1-D as `_list` (None
    for non-finite), more dimensions as nested lists."""
    if isinstance(v, np.ndarray):
        return _list(v) if v.ndim == 1 else v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class _Figure:
    """A figure as plain data: the layout of a plotly figure that holds no traces (cheap to build
    and validate) and the traces as dicts of numpy arrays. Plotly validates and deep-copies a
    trace's data element by element; the pages skip that (`html_page`), and `to_plotly` gives the
    validated figure with the same dict as before."""

    def __init__(self, base):
        self.base = base
        self.data: list[dict] = []
        self.layout: dict = {}          # top-level layout keys set after the base's

    def add_trace(self, trace: dict, row: int | None = None, col: int | None = None) -> None:
        trace = dict(trace)
        if row is not None:
            sub = self.base.get_subplot(row, col)
            trace["xaxis"] = sub.xaxis.plotly_name.replace("axis", "")
            trace["yaxis"] = sub.yaxis.plotly_name.replace("axis", "")
        self.data.append(trace)

    def to_dict(self) -> dict:
        layout = self.base.to_dict()["layout"]
        layout.update(self.layout)
        return {"data": self.data, "layout": layout}

    def to_plotly(self):
        """The validated ``plotly.graph_objects.Figure`` (tests read its ``to_dict()``)."""
        go, _ = _go()
        return go.Figure(_plain(self.to_dict()))


def _split_arrays(props: dict) -> tuple[dict, dict]:
    """(props without numpy arrays, the arrays), one level of nested dicts deep (``error_y.array``)."""
    small, big = {}, {}
    for k, v in props.items():
        if isinstance(v, np.ndarray):
            big[k] = v
        elif isinstance(v, dict) and any(isinstance(x, np.ndarray) for x in v.values()):
            small[k], big[k] = _split_arrays(v)
        else:
            small[k] = v
    return small, big


def _trace(kind: str, **props) -> dict:
    """A trace dict: plotly validates (and coerces: colour-scale names, titles) every property but
    the numpy arrays, which are added as they are."""
    go, _ = _go()
    small, big = _split_arrays(props)
    trace = getattr(go, kind)(**small).to_plotly_json()
    for k, v in big.items():
        trace[k] = {**trace.get(k, {}), **v} if isinstance(v, dict) else v
    return trace


def _scale_menu(traces_linear: list, traces_sqrt: list, n_total: int, axis: str = "yaxis",
                label: str = "intensity (counts)") -> dict:
    """A button row switching the scaled traces between linear, √I and log."""
    idx = [i for i, y in enumerate(traces_linear) if y is not None]

    def args(ys, kind, lab):
        return [{"y": [ys[i] for i in idx]}, {f"{axis}.type": kind, f"{axis}.title.text": lab,
                                              f"{axis}.autorange": True}, idx]

    return dict(type="buttons", direction="right", x=1.0, xanchor="right", y=1.01, yanchor="bottom",
                showactive=True, buttons=[
                    dict(label="linear", method="update", args=args(traces_linear, "linear", label)),
                    dict(label="√I", method="update", args=args(traces_sqrt, "linear", f"√({label})")),
                    dict(label="log", method="update", args=args(traces_linear, "log", f"{label}, log")),
                ])


# ------------------------------------------------------------------------------------------------
# identification
# ------------------------------------------------------------------------------------------------
class _ThreePanels:
    """A pattern figure in three panels (pattern, tick rows, difference); traces added with their
    intensities remember the linear and √I values for the intensity-scale menu."""

    def __init__(self, n_phases: int):
        _, make_subplots = _go()
        self.fig = _Figure(make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.02,
                                         row_heights=[0.62, 0.08 + 0.04 * n_phases, 0.22]))
        self.lin: list = []
        self.sq: list = []

    def add(self, trace: dict, row, scaled=None) -> None:
        self.fig.add_trace(trace, row=row, col=1)
        self.lin.append(None if scaled is None else _arr(scaled))
        self.sq.append(None if scaled is None else _arr(_sqrt(scaled)))

    def scale_menu(self) -> dict:
        return _scale_menu(self.lin, self.sq, len(self.fig.data))


def identification_figure(result: Any, *, hypothesis: int = 0):
    """Observed, calculated, background, one curve and one tick row per phase (legend-toggled
    together), difference; hover on a tick gives hkl, d, 2θ and relative intensity."""
    return _identification_figure(result, hypothesis=hypothesis).to_plotly()


def _identification_figure(result: Any, *, hypothesis: int = 0) -> _Figure:
    if not result.hypotheses:
        go, _ = _go()
        fig = _Figure(go.Figure())
        fig.add_trace(_trace("Scattergl", x=_arr(result.x_deg), y=_arr(result.observed), mode="lines",
                             name="observed", line=dict(color="black", width=1)))
        up = result.unexplained_peaks
        if up:
            fig.add_trace(_trace("Scatter", x=[p["two_theta"] for p in up],
                                 y=list(np.interp([p["two_theta"] for p in up], result.x_deg,
                                                  result.observed)),
                                 mode="markers", name="unexplained peak",
                                 marker=dict(symbol="triangle-down", color="crimson", size=9)))
        fig.base.update_layout(title="No library phase explains this pattern", xaxis_title="2θ (°)",
                               yaxis_title="intensity (counts)")
        return fig
    h = result.hypotheses[min(hypothesis, len(result.hypotheses) - 1)]
    f = h.fit
    n_ph = len(f.phases)
    panels = _ThreePanels(n_ph)
    fig, add = panels.fig, panels.add
    x = _arr(f.x_deg)

    add(_trace("Scattergl", x=x, y=_arr(f.observed), mode="markers", name="observed",
               marker=dict(color="black", size=3),
               hovertemplate="2θ %{x:.3f}°<br>I %{y:.0f}<extra>observed</extra>"), 1, f.observed)
    add(_trace("Scattergl", x=x, y=_arr(f.calculated), mode="lines", name="calculated",
               line=dict(color="#d62728", width=1.2),
               hovertemplate="2θ %{x:.3f}°<br>I %{y:.0f}<extra>calculated</extra>"), 1, f.calculated)
    add(_trace("Scattergl", x=x, y=_arr(f.background), mode="lines", name="background",
               line=dict(color="#2ca02c", width=1)), 1, f.background)
    for i, p in enumerate(f.phases):
        col = _COLORS[i % len(_COLORS)]
        wt = "" if p.weight_fraction is None else f": {100 * p.weight_fraction:.1f} wt%"
        name = f"{p.id}{' (MODEL)' if p.model else ''}{wt}"
        y = f.background + f.per_phase[p.id]
        add(_trace("Scattergl", x=x, y=_arr(y), mode="lines", name=name, legendgroup=p.id,
                   line=dict(color=col, width=1), opacity=0.8,
                   hovertemplate=f"{p.id}<br>2θ %{{x:.3f}}°<br>I %{{y:.0f}}<extra></extra>"), 1, y)
        refl = p.reflections or [{"hkl": (), "d_angstrom": float("nan"), "two_theta_deg": float(t),
                                  "intensity_pct": float("nan")} for t in p.reflections_two_theta_deg]
        custom = [[" ".join(str(v) for v in r["hkl"]), r["d_angstrom"], r["intensity_pct"]] for r in refl]
        add(_trace("Scatter", x=[r["two_theta_deg"] for r in refl], y=[n_ph - i] * len(refl),
                   mode="markers", name=f"{p.id} reflections", legendgroup=p.id, showlegend=False,
                   marker=dict(symbol="line-ns-open", size=14, color=col, line=dict(width=1.5)),
                   customdata=custom,
                   hovertemplate=(f"<b>{p.id}</b> (%{{customdata[0]}})<br>2θ %{{x:.3f}}°<br>"
                                  "d %{customdata[1]:.4f} Å<br>I %{customdata[2]:.1f} %<extra></extra>")),
            2)
    up = result.unexplained_peaks if hypothesis == 0 else []
    if up:
        ux = [p["two_theta"] for p in up]
        uy = np.interp(ux, f.x_deg, f.observed) * 1.05
        add(_trace("Scatter", x=ux, y=_arr(uy), mode="markers", name="unexplained peak",
                   marker=dict(symbol="triangle-down", color="crimson", size=10),
                   customdata=[[p["d"], p["intensity"]] for p in up],
                   hovertemplate="unexplained<br>2θ %{x:.3f}°<br>d %{customdata[0]:.4f} Å<br>"
                                 "I %{customdata[1]:.0f}<extra></extra>"), 1, uy)
    add(_trace("Scattergl", x=x, y=_arr(f.observed - f.calculated), mode="lines", name="obs − calc",
               line=dict(color="#1f77b4", width=1)), 3)
    lam = result.radiation
    title = (f"{' + '.join(h.ids)} — Rwp {100 * h.rwp:.2f} %, confidence {result.confidence}, "
             f"λ = {result.wavelength:.5f} Å" + (" (Kα1/Kα2)" if lam is not None and lam.is_doublet else ""))
    base = fig.base
    base.update_layout(title=dict(text=title, y=0.98), height=720, hovermode="closest",
                       legend=dict(orientation="h", y=-0.12), margin=dict(t=110))
    fig.layout["updatemenus"] = [panels.scale_menu()]
    base.update_yaxes(title_text="intensity (counts)", row=1, col=1)
    base.update_yaxes(tickvals=[n_ph - i for i in range(n_ph)], ticktext=[p.id for p in f.phases],
                      range=[0.4, n_ph + 0.6], row=2, col=1)
    base.update_yaxes(title_text="obs − calc", row=3, col=1)
    base.update_xaxes(title_text="2θ (°)", row=3, col=1)
    base.update_xaxes(range=[float(f.x_deg[0]), float(f.x_deg[-1])])
    return fig


# ------------------------------------------------------------------------------------------------
# series
# ------------------------------------------------------------------------------------------------
def _q(two_theta_deg: np.ndarray, wavelength: float | None) -> np.ndarray | None:
    if not wavelength:
        return None
    return 4 * np.pi * np.sin(np.radians(np.asarray(two_theta_deg, float) / 2)) / wavelength


def amorphous_band(result: Any) -> np.ndarray:
    """Frames in the amorphous halo's band (figures and pages alike): amorphous fraction at least
    AMORPHOUS_BAND_LEVEL (well above the few % a refined background leaves), and from an amorphous
    event on every frame that still shows a halo (> 5 %)."""
    am = np.nan_to_num(result.dataset["amorphous_fraction"].values.astype(float), nan=0.0)
    band = am >= AMORPHOUS_BAND_LEVEL
    for e in result.events:
        if e.get("kind") == "amorphous":
            band[int(e["frame"]):] |= am[int(e["frame"]):] > 0.05
    return band


def series_figures(result: Any, *, temperature: str | None = None) -> dict[str, Any]:
    """{"heatmap", "lattice", "fractions"} figures of a SeriesResult, temperatures in K or °C
    (``temperature``: "K", "C" or None = automatic: K for a series that goes below 0 °C)."""
    return {k: f.to_plotly() for k, f in _series_figures(result, temperature=temperature).items()}


def _series_figures(result: Any, *, temperature: str | None = None) -> dict[str, _Figure]:
    _, make_subplots = _go()
    ds = result.dataset
    unit = temperature_unit(result.temperature_c, temperature)
    T = to_unit(result.temperature_c, unit)
    frames = np.arange(result.n_frames)
    tlab = unit_label(unit)
    figs: dict[str, Any] = {}
    prefix = "SYNTHETIC series — " if result.synthetic else ""

    # heat map with phase bands (incl. the amorphous halo) to its right
    if result.heat_x is not None and np.isfinite(ds["heatmap"].values).any():
        img = ds["heatmap"].values.astype(float)
        pos = img[np.isfinite(img) & (img > 0)]
        floor = float(np.percentile(pos, 1)) if pos.size else 1.0
        logi = np.log10(np.clip(img, max(floor, 1e-9), None))
        y_by_t = np.all(np.isfinite(T)) and len(T) > 1 and (np.all(np.diff(T) > 0) or np.all(np.diff(T) < 0))
        y = T if y_by_t else frames
        ylab = tlab if y_by_t else "frame"
        x = np.asarray(result.heat_x, float)
        qx = _q(x, result.wavelength_angstrom)
        custom = np.stack([np.repeat(frames[:, None], x.size, 1), np.repeat(T[:, None], x.size, 1),
                           np.broadcast_to(x, img.shape), np.round(img, 1)], axis=-1)
        ids = [pid for j, pid in enumerate(result.phase_ids) if result.present[:, j].any()]
        am = ds["amorphous_fraction"].values.astype(float)
        halo_frames = amorphous_band(result)
        from xtal.report.series import _stand_ins

        stand_ins = dict(_stand_ins(ds.attrs))
        band_names = [pid + (" †" if pid in stand_ins else "") for pid in ids] + \
            (["amorphous halo"] if halo_frames.any() else [])
        fig = _Figure(make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.82, 0.18],
                                    horizontal_spacing=0.02))
        fig.add_trace(_trace("Heatmap", x=_arr(x), y=_arr(y), z=_arr(logi), colorscale="Viridis",
                             customdata=_arr(custom), name="log₁₀ I",
                             colorbar=dict(title="log₁₀ I", x=1.02),
                             hovertemplate=("frame %{customdata[0]:d}<br>T %{customdata[1]:.1f} "
                                            + unit + "<br>2θ %{customdata[2]:.3f}°<br>"
                                            "I %{customdata[3]:.0f}<extra></extra>")), row=1, col=1)
        for k, pid in enumerate(ids):
            j = result.phase_ids.index(pid)
            pres = result.present[:, j].astype(bool)
            info = result.phase_info.get(pid, {})
            lab = (pid + (" (MODEL)" if info.get("model") else "")
                   + (f" — stand-in for {stand_ins[pid]}" if pid in stand_ins else ""))
            yy = [float(v) if p else None for v, p in zip(y, pres)]
            fig.add_trace(_trace("Scatter", x=[k] * len(yy), y=yy, mode="lines+markers", name=lab,
                                 line=dict(color=_COLORS[k % len(_COLORS)], width=8),
                                 marker=dict(size=4), legendgroup=pid,
                                 hovertemplate=f"{lab}<br>present at %{{y:.1f}}<extra></extra>"),
                          row=1, col=2)
        if halo_frames.any():
            k = len(ids)
            yy = [float(v) if p else None for v, p in zip(y, halo_frames)]
            fig.add_trace(_trace("Scatter", x=[k] * len(yy), y=yy, mode="lines+markers", name="amorphous halo",
                                 line=dict(color="#7f7f7f", width=8, dash="dot"), marker=dict(size=4),
                                 customdata=_arr(am),
                                 hovertemplate="amorphous halo<br>fraction %{customdata:.2f}"
                                               "<extra></extra>"), row=1, col=2)
        base = fig.base
        base.update_xaxes(tickvals=list(range(len(band_names))), ticktext=band_names, tickangle=-60,
                          range=[-0.6, len(band_names) - 0.4], row=1, col=2)
        base.update_xaxes(title_text="2θ (°)", row=1, col=1)
        base.update_yaxes(title_text=ylab, row=1, col=1)
        buttons = [dict(label="2θ", method="update",
                        args=[{"x": [_arr(x)]}, {"xaxis.title.text": "2θ (°)", "xaxis.autorange": True}, [0]])]
        if qx is not None:
            buttons.append(dict(label="Q", method="update",
                                args=[{"x": [_arr(qx)]}, {"xaxis.title.text": "Q (Å⁻¹)",
                                                          "xaxis.autorange": True}, [0]]))
        base.update_layout(title=prefix + f"Intensity map, 2θ–{'T' if y_by_t else 'frame'} (T in {unit})",
                           height=650, legend=dict(orientation="h", y=-0.25))
        fig.layout["updatemenus"] = [dict(type="buttons", direction="right", x=0.82, y=1.01,
                                          xanchor="right", yanchor="bottom", buttons=buttons)]
        figs["heatmap"] = fig

    # lattice parameters vs T, with s.u., only the parameters free by symmetry
    ids = [pid for j, pid in enumerate(result.phase_ids) if result.present[:, j].any()]
    if ids:
        fig = _Figure(make_subplots(rows=len(ids), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                                    subplot_titles=ids))
        names = list(ds["lattice"].values)
        for r_, pid in enumerate(ids, 1):
            j = result.phase_ids.index(pid)
            pres = result.present[:, j].astype(bool)
            free = independent_lattice_parameters(result.phase_info.get(pid, {}).get("spacegroup_number"))
            for k, par in enumerate(free):
                i = names.index(par)
                v = ds["cell"].values[:, j, i].astype(float)
                s = ds["cell_su"].values[:, j, i].astype(float)
                v = np.where(pres, v, np.nan)
                ref = np.nanmean(v) if np.isfinite(v).any() else 1.0
                u = _LATTICE_UNITS[par]
                nm = _GREEK.get(par, par)
                fig.add_trace(_trace("Scatter", x=_arr(T), y=_arr(v / ref), mode="markers+lines",
                                     name=f"{pid} {nm}", legendgroup=pid,
                                     error_y=dict(type="data", array=_arr(s / ref), visible=True),
                                     customdata=_arr(np.stack([v, s, frames], 1)),
                                     hovertemplate=(f"{pid} {nm} = %{{customdata[0]:.5f}} ± "
                                                    f"%{{customdata[1]:.5f}} {u}<br>T %{{x:.1f}} {unit}"
                                                    "<br>frame %{customdata[2]:d}<extra></extra>")),
                              row=r_, col=1)
            fig.base.update_yaxes(title_text="x / mean(x)", row=r_, col=1)
        fig.base.update_xaxes(title_text=tlab, row=len(ids), col=1)
        fig.base.update_layout(title=prefix + f"Lattice parameters vs T ({unit}), relative, with s.u.",
                               height=260 * len(ids) + 120)
        figs["lattice"] = fig

        # weight fractions (crystalline) and, on its own axis, the amorphous fraction
        fig = _Figure(make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                                    vertical_spacing=0.06))
        for k, pid in enumerate(ids):
            wf = np.asarray(result.values("wf", pid), float)
            fig.add_trace(_trace("Scatter", x=_arr(T), y=_arr(wf), mode="lines+markers", name=pid,
                                 line=dict(color=_COLORS[k % len(_COLORS)]),
                                 hovertemplate=f"{pid}: %{{y:.3f}}<br>T %{{x:.1f}} {unit}<extra></extra>"),
                          row=1, col=1)
        fig.add_trace(_trace("Scatter", x=_arr(T), y=_arr(ds["amorphous_fraction"].values), mode="lines+markers",
                             name="amorphous fraction", line=dict(color="#7f7f7f", dash="dot")),
                      row=2, col=1)
        fig.base.update_yaxes(title_text="weight fraction (crystalline)", row=1, col=1)
        fig.base.update_yaxes(title_text="amorphous fraction", row=2, col=1)
        fig.base.update_xaxes(title_text=tlab, row=2, col=1)
        fig.base.update_layout(title=prefix + f"Phase fractions vs T ({unit})", height=560)
        figs["fractions"] = fig
    return figs


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------
def geometry_figure(results: Sequence[Any]):
    """M–X distances with s.u. per metal site; hover gives the ligand, its kind and symmetry code."""
    return _geometry_figure(results).to_plotly()


def _geometry_figure(results: Sequence[Any]) -> _Figure:
    go, _ = _go()
    fig = _Figure(go.Figure())
    kinds: dict[str, int] = {}
    cats = []
    for r in results:
        for site in r.sites:
            cat = f"{r.phase_id} {site.label}"
            cats.append(cat)
            for b in site.bonds:
                kinds.setdefault(b.kind, len(kinds))
    for kind, k in kinds.items():
        xs, ys, es, cd = [], [], [], []
        for r in results:
            for site in r.sites:
                for b in site.bonds:
                    if b.kind != kind:
                        continue
                    xs.append(f"{r.phase_id} {site.label}")
                    ys.append(float(b.distance))
                    es.append(float(b.su) if b.su is not None and math.isfinite(b.su) else 0.0)
                    cd.append([b.to, b.symop, site.cn,
                               "" if b.su is None else f"{b.su:.4f}"])
        fig.add_trace(_trace("Scatter", x=xs, y=ys, mode="markers", name=kind,
                             marker=dict(size=9, color=_COLORS[k % len(_COLORS)], opacity=0.8),
                             error_y=dict(type="data", array=es, visible=True), customdata=cd,
                             hovertemplate=("%{x}–%{customdata[0]} (%{customdata[1]})<br>"
                                            "d = %{y:.4f} ± %{customdata[3]} Å<br>CN %{customdata[2]}"
                                            f"<br>{html.escape(kind)}<extra></extra>")))
    fig.base.update_layout(title="Metal–ligand distances with s.u. (hover: ligand, symmetry code)",
                           xaxis=dict(title="metal site", categoryorder="array", categoryarray=cats),
                           yaxis_title="distance (Å)", height=560, hovermode="closest")
    return fig


# ------------------------------------------------------------------------------------------------
# pages
# ------------------------------------------------------------------------------------------------
def html_page(figures: Sequence[Any], *, title: str, intro_html: str = "") -> str:
    """One self-contained HTML page: plotly.js embedded once, then every figure (plotly figures, or
    `_Figure`s, written without plotly's per-element validation and copies)."""
    import plotly.io as pio

    parts = []
    for i, fig in enumerate(figures):
        spec = fig.to_dict() if isinstance(fig, _Figure) else fig
        parts.append(pio.to_html(spec, validate=False, full_html=False, include_plotlyjs=(i == 0),
                                 div_id=f"xtal-fig-{i}",
                                 config={"displaylogo": False, "scrollZoom": True,
                                         "toImageButtonOptions": {"format": "svg"}}))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>body{{font-family:-apple-system,'Segoe UI',"
            "Helvetica,Arial,sans-serif;max-width:80em;margin:1em auto;padding:0 1em;color:#222}"
            "p.help{color:#555}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{intro_html}\n<p class=\"help\">Drag to zoom, double-click to "
            "reset, click a legend entry to hide or show it; hover for values. Works offline.</p>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def _write(path, text: str, overwrite: bool = True) -> Path:
    from xtal.util import atomic_write_text, check_writable

    target = check_writable(path, overwrite=overwrite)
    return atomic_write_text(target, text)


def write_identification_html(result: Any, path, *, overwrite: bool = True) -> Path:
    """The identification's interactive page (pattern, per-phase toggles, hkl on hover)."""
    intro = (f"<p><b>Confidence: {html.escape(str(result.confidence))}.</b> "
             f"{html.escape(result.confidence_statement or '')}</p>")
    if result.warnings:
        intro += "<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings) + "</ul>"
    return _write(path, html_page([_identification_figure(result)], title="xtal phase identification",
                                  intro_html=intro), overwrite)


def write_series_html(result: Any, path, *, temperature: str | None = None, overwrite: bool = True) -> Path:
    """The thermal series' interactive page (heat map with bands, fractions, lattice vs T)."""
    figs = _series_figures(result, temperature=temperature)
    title = "xtal thermal series" + (" (SYNTHETIC data)" if result.synthetic else "")
    return _write(path, html_page(list(figs.values()), title=title), overwrite)


def refinement_figure(res: Any):
    """A Rietveld or Le Bail fit: observed, calculated, background, one tick row per phase (toggled
    with its curve), difference; linear/√I/log intensity."""
    return _refinement_figure(res).to_plotly()


def _refinement_figure(res: Any) -> _Figure:
    n_ph = len(res.phases)
    panels = _ThreePanels(n_ph)
    fig, add = panels.fig, panels.add
    x = _arr(res.x_deg)

    add(_trace("Scattergl", x=x, y=_arr(res.observed), mode="markers", name="observed",
               marker=dict(color="black", size=3)), 1, res.observed)
    add(_trace("Scattergl", x=x, y=_arr(res.calculated), mode="lines", name="calculated",
               line=dict(color="#d62728", width=1.2)), 1, res.calculated)
    add(_trace("Scattergl", x=x, y=_arr(res.background), mode="lines", name="background",
               line=dict(color="#2ca02c", width=1)), 1, res.background)
    for i, ph in enumerate(res.phases):
        col = _COLORS[i % len(_COLORS)]
        ticks = getattr(ph, "ticks_two_theta_deg", None)
        if ticks is None and getattr(ph, "two_theta_deg", None) is not None:      # Le Bail phase
            ticks = np.asarray(ph.two_theta_deg)[np.asarray(ph.in_range, bool)]
        ticks = [] if ticks is None else _arr(ticks)
        add(_trace("Scatter", x=ticks, y=[n_ph - i] * len(ticks), mode="markers", name=f"{ph.id} reflections",
                       legendgroup=ph.id, marker=dict(symbol="line-ns-open", size=14, color=col),
                       hovertemplate=f"<b>{ph.id}</b><br>2θ %{{x:.3f}}°<extra></extra>"), 2)
    add(_trace("Scattergl", x=x, y=_arr(res.observed - res.calculated), mode="lines", name="obs − calc",
               line=dict(color="#1f77b4", width=1)), 3)
    method = "Rietveld" if getattr(res, "method", None) == "rietveld" else "Le Bail"
    base = fig.base
    base.update_layout(title=f"{method}: {' + '.join(p.id for p in res.phases)} — Rwp {100 * res.rwp:.2f} %, "
                             f"χ² {res.chi2:.2f}", height=720, hovermode="closest",
                       legend=dict(orientation="h", y=-0.12))
    fig.layout["updatemenus"] = [panels.scale_menu()]
    base.update_yaxes(title_text="intensity (counts)", row=1, col=1)
    base.update_yaxes(tickvals=[n_ph - i for i in range(n_ph)], ticktext=[p.id for p in res.phases],
                      range=[0.4, n_ph + 0.6], row=2, col=1)
    base.update_xaxes(title_text="2θ (°)", row=3, col=1)
    return fig


def write_refinement_html(res: Any, path, *, overwrite: bool = True) -> Path:
    """The refinement's interactive page (Rietveld or Le Bail)."""
    return _write(path, html_page([_refinement_figure(res)], title="xtal refinement"), overwrite)


def write_geometry_html(results: Sequence[Any], path, *, overwrite: bool = True) -> Path:
    """The coordination geometry's interactive page (distances with s.u., hover details)."""
    return _write(path, html_page([_geometry_figure(results)], title="xtal coordination geometry"), overwrite)
