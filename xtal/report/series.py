"""Outputs of a thermal-series analysis (`xtal.series.SeriesResult`): the Markdown report and the
files — series.nc (the result Dataset), phases.csv, events.json, figures, report.md."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import re

import numpy as np

from xtal.report.units import independent_lattice_parameters, temperature_unit, to_unit
from xtal.series import LATTICE_NAMES

__all__ = ["render_series_markdown", "phases_rows", "write_series_result", "PHASES_CSV_COLUMNS"]

PHASES_CSV_COLUMNS = (["frame", "temperature_c", "time_s", "segment", "status", "phase", "present",
                       "scale", "scale_su", "weight_fraction", "weight_fraction_su"]
                      + [c for n in LATTICE_NAMES for c in (n, n + "_su")]
                      + ["volume_angstrom3", "volume_su", "rwp", "amorphous_fraction",
                         "bragg_intensity"])


def _fmt(v, nd=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{nd}f}"


def phases_rows(result) -> list[dict]:
    """Long table: one row per frame and present phase (what phases.csv holds); a frame with no
    present phase (skipped, or amorphous) has one row with an empty phase."""
    ds = result.dataset
    base_vars = ("temperature_c", "time_s", "segment", "status", "rwp", "amorphous_fraction",
                 "bragg_intensity")
    phase_vars = ("scale", "scale_su", "weight_fraction", "weight_fraction_su", "volume_angstrom3",
                  "volume_su")
    col = {v: ds[v].values for v in base_vars + phase_vars}
    cell, cell_su = ds["cell"].values, ds["cell_su"].values
    present = result.present & (ds["status"].values == "ok")[:, None]
    ids = result.phase_ids
    rows = []
    for k in range(result.n_frames):
        base = dict({"frame": k}, **{v: col[v][k] for v in base_vars})
        js = np.flatnonzero(present[k])
        if not js.size:
            rows.append(dict(base, phase="", present=0))
        for j in js:
            row = dict(base, phase=ids[j], present=1, **{v: col[v][k, j] for v in phase_vars})
            row.update({n: cell[k, j, i] for i, n in enumerate(LATTICE_NAMES)})
            row.update({n + "_su": cell_su[k, j, i] for i, n in enumerate(LATTICE_NAMES)})
            rows.append(row)
    return rows


#: Every file `write_series_result` (and `xtal series`, which adds report.html) may write.
SERIES_OUTPUT_NAMES = ("series.nc", "phases.csv", "events.json", "heatmap.png", "heatmap_q.png",
                       "fractions.png", "lattice.png", "waterfall.png", "report.md", "report.html",
                       "series.html")


def write_series_result(result, outdir: str | Path, *, overwrite: bool = False, figures: bool = True,
                        waterfall: bool = True, temperature: str | None = None,
                        interactive: bool = True) -> dict[str, Path]:
    """Write series.nc, phases.csv, events.json, report.md, PNG figures and the interactive page
    series.html into `outdir`; temperatures of the report and figures in ``temperature`` ("K", "C",
    None/"auto": K for a series below 0 °C). The data files keep °C (``temperature_c``).

    Every name of `SERIES_OUTPUT_NAMES` is checked before the first is written: an existing one
    without ``overwrite`` leaves the directory untouched."""
    from xtal.io import atomic_write
    from xtal.util import OutputPlan, atomic_write_text, check_writable

    out = Path(outdir)
    plan = OutputPlan(force=overwrite)
    plan.add_dir(out, SERIES_OUTPUT_NAMES, what="series output directory")
    plan.check()
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    ds = result.to_dataset()
    written["series.nc"] = atomic_write(out / "series.nc",
                                        lambda p: ds.to_netcdf(p, engine="netcdf4"),
                                        overwrite=overwrite)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PHASES_CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in phases_rows(result):
        w.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
                    for k, v in r.items()})
    check_writable(out / "phases.csv", overwrite=overwrite)
    written["phases.csv"] = atomic_write_text(out / "phases.csv", buf.getvalue())
    check_writable(out / "events.json", overwrite=overwrite)
    written["events.json"] = atomic_write_text(out / "events.json",
                                               json.dumps(result.events_json(), indent=2))
    figs = {}
    if figures:
        from xtal.report.series_figures import write_series_figures

        figs = write_series_figures(result, out, overwrite=overwrite, waterfall=waterfall,
                                    temperature=temperature)
        written.update(figs)
    if interactive:
        from xtal.report.interactive import write_series_html

        written["series.html"] = write_series_html(result, out / "series.html", temperature=temperature,
                                                   overwrite=overwrite)
    check_writable(out / "report.md", overwrite=overwrite)
    written["report.md"] = atomic_write_text(
        out / "report.md", render_series_markdown(result, figures=figs, temperature=temperature,
                                                  interactive="series.html" if interactive else None))
    return written


def _pct(v, nd=2):
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.{nd}f} %"


def grouped_notes(notes: list[str]) -> list[str]:
    """Notes once each: "frame k: text" notes with the same text become "frames 1, 4, 7: text",
    a repeated note gets its count."""
    order: list[str] = []
    frames: dict[str, list[str]] = {}
    count: dict[str, int] = {}
    for n_ in notes:
        m = re.match(r"frame (\d+): (.*)$", n_, re.S)
        key = m.group(2) if m else n_
        if key not in count:
            order.append(key)
            count[key], frames[key] = 0, []
        count[key] += 1
        if m:
            frames[key].append(m.group(1))
    out = []
    for key in order:
        f = frames[key]
        if f:
            out.append(f"frame{'s' if len(f) > 1 else ''} {', '.join(f)}: {key}")
        else:
            out.append(key + (f" ({count[key]} frames)" if count[key] > 1 else ""))
    return out


def _stand_ins(attrs: dict) -> list[tuple[str, str]]:
    try:
        prog = json.loads(attrs.get("program", "{}")) if isinstance(attrs.get("program"), str) else {}
        return [(p["phase"]["id"], p["stand_in_for"]) for p in prog.get("phases", [])
                if p.get("stand_in_for")]
    except (ValueError, KeyError, TypeError):
        return []


def _header(r, unit: str) -> list[str]:
    L = ["# Thermal series — phase map" + (" (SYNTHETIC data)" if r.synthetic else ""), ""]
    if r.synthetic:
        L += ["> **SYNTHETIC series**: generated by `xtal.synth` from a stated programme, not "
              "measured. The programme is stored in `series.nc` (attribute `program`).", ""]
    stand_ins = _stand_ins(r.dataset.attrs)
    if stand_ins:
        L += ["> **Stand-ins** in the programme: " + "; ".join(
            f"{pid} stands in for {what}" for pid, what in stand_ins) + ".", ""]
    found = [pid for j, pid in enumerate(r.phase_ids) if r.present[:, j].any()]
    models = [pid for pid, i in r.phase_info.items() if i.get("model") and pid in found]
    if models:
        L += ["> **Structural MODELS** (coordinates built for this project, not refined) found in "
              "this series: " + ", ".join(models) + ". Their intensities are indicative; cells and "
              "phase presence are still meaningful.", ""]
    T = r.temperature_c
    ok = r.status == "ok"
    L.append(f"- frames: {r.n_frames} ({int(ok.sum())} fitted, {len(r.skipped)} skipped)")
    if np.isfinite(T).any():
        Tu = to_unit(T, unit)
        L.append(f"- temperature: {np.nanmin(Tu):.1f} – {np.nanmax(Tu):.1f} {unit}")
    if r.wavelength_angstrom:
        L.append(f"- wavelength: {r.wavelength_angstrom:.6f} Å")
    rw = r.dataset["rwp"].values[ok]
    if rw.size:
        L.append(f"- Rwp: median {_pct(float(np.median(rw)))}, max {_pct(float(np.max(rw)))}")
    L += [f"- method: per-frame whole-pattern fits (xtal.identify) with continuity, Viterbi phase "
          f"presence (switch penalty {r.options.get('switch_penalty')}), "
          f"elapsed {r.elapsed_s:.1f} s", ""]
    return L


def _phases_section(r, unit: str) -> list[str]:
    T = to_unit(r.temperature_c, unit)
    L = ["## Phases", "", f"| phase | name | kind | frames present | T range ({unit}) | max weight fraction |",
         "|---|---|---|---|---|---|"]
    found = []
    for j, pid in enumerate(r.phase_ids):
        pres = r.present[:, j]
        if not pres.any():
            continue
        found.append(pid)
        info = r.phase_info[pid]
        kind = (info.get("kind") or "") + (" **MODEL**" if info.get("model") else "")
        tr = f"{np.nanmin(T[pres]):.1f} – {np.nanmax(T[pres]):.1f}" if np.isfinite(T[pres]).any() else "–"
        wf = float(np.nanmax(r.values("wf", pid)))
        L.append(f"| {pid} | {info.get('name', '')} | {kind} | {int(pres.sum())} | {tr} | {_fmt(wf, 3)} |")
    if not found:
        L.append("| – | no library phase found in any frame | | | | |")
    absent = [pid + (" (MODEL)" if r.phase_info[pid].get("model") else "")
              for pid in r.phase_ids if pid not in found]
    if absent:
        L += ["", "Searched, not found in any frame: " + ", ".join(absent) + "."]
    return L + [""]


def _events_section(r, unit: str) -> list[str]:
    L = ["## Events", ""]
    if not r.events:
        return L + ["No phase appears or disappears inside the series.", ""]
    L += [f"| phase | event | frame | T ({unit}) | σ (K) | time (s) | note |", "|---|---|---|---|---|---|---|"]
    for e in r.events:
        note = []
        if e.get("isothermal"):
            note.append("during isothermal hold (located by time)")
        if e["kind"] == "jump":
            note.append(f"ΔV = {e.get('volume_change_pct')} %"
                        + (f" from {e['from_phase']}" if e.get("from_phase") else ""))
        if e["kind"] == "amorphous":
            note.append(f"amorphous fraction max {e.get('amorphous_fraction_max')}")
        phase, kind = e["phase"], e["kind"]
        if kind == "amorphous":    # not "amorphous | amorphous": the halo is not a library phase
            phase, kind = "(amorphous halo)", "amorphisation"
        L.append(f"| {phase} | {kind} | {e['frame']} | {_fmt(to_unit(e.get('T_C'), unit))} | "
                 f"{_fmt(e.get('sigma_C'))} | {_fmt(e.get('time_s'), 0)} | {'; '.join(note)} |")
    return L + [""]


def _transitions_section(r, unit: str) -> list[str]:
    if not r.lattice_transitions:
        return []
    L = ["## Lattice transitions (axis merging)", ""]
    for t in r.lattice_transitions:
        if t.get("T_merge_C") is None:
            L.append(f"- {t['phase']}: {'/'.join(t['axes'])} — {t.get('note', 'no merging')}")
            continue
        u = (lambda v: to_unit(v, unit))
        s = (f"- {t['phase']}: {t['axes'][0]} and {t['axes'][1]} merge between "
             f"{u(t['T_last_split_C']):.1f} and {u(t['T_first_merged_C']):.1f} {unit} → "
             f"**T = {u(t['T_merge_C']):.1f} ± {t['sigma_C']:.1f} {unit}**"
             f" ({t['split_side']} side split)")
        if t.get("T_meanfield_C") is not None:
            s += (f"; mean-field fit Δ² ∝ (T_s − T) on the last split frames: T_s = "
                  f"{u(t['T_meanfield_C']):.1f} ± {t['sigma_meanfield_C']:.1f} {unit}")
        if t.get("resolved_beyond_bracket_C"):
            s += (" — splitting resolved again at " + ", ".join(f"{u(v):.1f}" for v in
                  t["resolved_beyond_bracket_C"]) + f" {unit} (noise or re-entrance: judge)")
        L.append(s)
    return L + [""]


def _expansion_section(r, unit: str) -> list[str]:
    L = ["## Thermal expansion (within each phase's range)", ""]
    if not r.expansion:
        return L + ["Not enough frames per phase.", ""]
    L += [f"| phase | parameter | α (10⁻⁶/K) | s.u. | T range ({unit}) | frames | order |",
          "|---|---|---|---|---|---|---|"]
    for pid, d in r.expansion.items():
        # the parameters free by symmetry (a cubic phase: a and V, not a, b and c thrice)
        free = set(independent_lattice_parameters(r.phase_info.get(pid, {}).get("spacegroup_number")))
        for key, top in d.items():
            if key in LATTICE_NAMES and key not in free:
                continue
            for v in top.get("segments", [top]):   # one row per side of a lattice transition
                L.append(_expansion_row(pid, key, v, unit))
    return L + [""]


def _expansion_row(pid: str, key: str, v: dict, unit: str) -> str:
    a = v["alpha_per_K"]
    return (f"| {pid} | {key} | {_fmt(a * 1e6 if a is not None else None, 2)} | "
            f"{_fmt(v['alpha_su'] * 1e6 if v['alpha_su'] is not None else None, 2)} | "
            f"{_fmt(to_unit(v['T_range_C'][0], unit), 1)} – "
            f"{_fmt(to_unit(v['T_range_C'][1], unit), 1)} | "
            f"{v['n_frames']} | {v['order']} |")


def render_series_markdown(result, *, figures: dict | None = None, temperature: str | None = None,
                           interactive: str | None = None) -> str:
    """A Markdown report: phases (MODEL/synthetic labels), events, expansion, transitions, skipped
    frames; every temperature in one unit (``temperature``: "K", "C" or None = K for cryo data)."""
    r = result
    unit = temperature_unit(r.temperature_c, temperature)
    L = (_header(r, unit) + _phases_section(r, unit) + _events_section(r, unit)
         + _transitions_section(r, unit) + _expansion_section(r, unit))
    if interactive:
        L += [f"Interactive page (zoom, hover, phase bands, lattice with s.u.): [{interactive}]({interactive})", ""]
    L += ["## Skipped frames", ""]
    skipped = r.skipped
    L += [f"- frame {s['frame']} ({s['source']}): {s['reason']}" for s in skipped] or ["None."]
    if r.notes:
        L += ["", "## Notes", ""] + [f"- {n_}" for n_ in grouped_notes(r.notes)[:50]]
    if figures:
        L += ["", "## Figures", ""]
        for name, p in figures.items():
            L += [f"![{name}]({Path(p).name})", ""]
    L += ["", "Files: `series.nc` (xarray Dataset), `phases.csv`, `events.json`."]
    return "\n".join(L) + "\n"
