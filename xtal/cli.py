"""The `xtal` command: thin argument parsing that calls the library modules."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from xtal.errors import XtalError

__all__ = ["main"]


def _print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print rows as an aligned text table. columns: (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        line = []
        for key, _, fmt in columns:
            v = r.get(key)
            line.append("" if v is None else (format(v, fmt) if fmt else str(v)))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for k, line in enumerate(cells):
        print("  ".join(s.ljust(w) for s, w in zip(line, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


LIBRARY_COLUMNS = [("id", "id", ""), ("formula", "formula", ""), ("spacegroup", "space group", ""),
                   ("cell", "a, b, c (Å)", ""), ("angles", "α, β, γ (°)", ""),
                   ("volume_angstrom3", "V/Å³", ".1f"), ("z", "Z", "g"), ("kind", "kind", "")]


def _library_rows(rows: list[dict]) -> list[dict]:
    """The library table narrowed for a terminal (≤ 120 characters): one cell column (a single
    value for a cubic cell), angles only when not all 90°, the kind in one word; density and
    source are in `xtal library show ID`."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("a") is not None:
            abc = [r["a"], r["b"], r["c"]]
            same = max(abc) - min(abc) < 1e-6
            r["cell"] = ", ".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in (abc[:1] if same else abc))
            ang = [r["alpha"], r["beta"], r["gamma"]]
            r["angles"] = ("90" if all(abs(v - 90) < 1e-6 for v in ang)
                           else ", ".join(f"{v:.1f}".rstrip("0").rstrip(".") for v in ang))
        r["kind"] = {"model": "MODEL"}.get(r.get("kind"), r.get("kind")) if r.get("a") is not None \
            else "empty slot"
        out.append(r)
    return out


# ------------------------------------------------------------------------------------------------
# library
# ------------------------------------------------------------------------------------------------
def _cmd_library(args: argparse.Namespace) -> int:
    from xtal.library import Library, add_user_cif

    if args.library_cmd == "list":
        lib = Library.bundled()
        # the empty slots have no cell: they are listed below the table, not as blank rows
        _print_table(_library_rows([r for r in lib.table() if r.get("a") is not None]), LIBRARY_COLUMNS)
        empty = lib.empty_slots()
        import textwrap

        if empty:
            print("\n" + textwrap.fill(f"{len(empty)} empty slot(s): {', '.join(e.id for e in empty)} — "
                                       "supply the CIFs with `xtal library add FILE.cif --id ID`.", 100))
        models = [e.id for e in lib if e.kind == "model" and e.filled]
        if models:
            print(textwrap.fill(f"MODEL structures (not refinements): {', '.join(models)}.", 100))
        return 0
    if args.library_cmd == "show":
        from xtal.structures import format_su

        lib = Library.bundled()
        e = lib.entry(args.id)
        print(f"{e.id}: {e.name}\n  formula  {e.formula}\n  role     {e.role}\n  kind     {e.status}")
        print(f"  notes    {e.notes}")
        for k, v in e.provenance.items():
            print(f"  {k:8s} {_plain(v)}")
        if e.checks:
            print("  checks   " + "; ".join(f"{k.replace('_angstrom', ' (Å)').replace('_', ' ')}: {_plain(v)}"
                                       for k, v in e.checks.items()))
        if e.filled:
            p = lib.phase(e.id)
            c = p.cell
            print(f"  CIF      {e.cif} (block {p.block})")
            vol = format_su(p.volume, c.volume_su) if c.volume_su else f"{p.volume:.3f}"
            print(f"  cell     a={c.a:.5f} b={c.b:.5f} c={c.c:.5f} Å  α={c.alpha:.3f} β={c.beta:.3f} "
                  f"γ={c.gamma:.3f}°  V={vol} Å³")
            print(f"  group    {p.spacegroup_hm} (No. {p.spacegroup_number}), {len(p.symops)} operators")
            z = f"{p.formula_units:g}" if p.formula_units else "not given"
            t = f"{p.temperature_k:g} K" if p.temperature_k else "not given"
            print(f"  Z        {z}   density {p.density_calc:.4f} g/cm³   T {t}")
            print(f"  sites    {len(p.sites)} in the asymmetric unit, {len(p.cell_atoms())} in the cell")
            for w in p.warnings:
                print(f"  warning  {w}")
        return 0
    if args.library_cmd == "add":
        target = add_user_cif(args.file, args.id, block=args.block, overwrite=args.force,
                              accept_mismatch=args.force,
                              directory=Path(args.dir) if args.dir else None)
        print(f"added {args.file} as {args.id!r}: {target}")
        return 0
    if args.library_cmd == "check":
        return _check_files(args.files)
    raise AssertionError(args.library_cmd)


def _plain(v) -> str:
    """A value for a person, not a Python repr: lists joined, dicts as 'key: value'."""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_plain(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "–".join(_plain(x) for x in v) if len(v) == 2 and all(isinstance(x, (int, float)) for x in v) \
            else ", ".join(_plain(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _check_files(files: Sequence[str]) -> int:
    """Parse and validate CIFs (or the whole library); one line per problem; exit 1 on fatal ones."""
    from xtal.library import Library
    from xtal.structures import read_cif

    fatal = 0
    if files:
        targets = [(Path(f).stem, lambda f=f: read_cif(f)) for f in files]
    else:
        lib = Library.bundled()
        targets = []
        for e in lib:
            if e.filled:
                targets.append((e.id, lambda i=e.id: lib.phase(i)))
            else:
                print(f"{e.id}: EMPTY SLOT (no CIF yet)")
    for name, load in targets:
        try:
            p = load()
        except XtalError as exc:
            print(f"{name}: ERROR {exc}")
            fatal += 1
            continue
        if not p.warnings:
            print(f"{name}: ok ({p.spacegroup_hm}, V = {p.volume:.2f} Å³, Z = {p.formula_units:g})"
                  if p.formula_units else f"{name}: ok")
        for w in p.warnings:
            print(f"{name}: warning: {w}")
    return 1 if fatal else 0


def _load_phase(spec: str, *, block: str | None = None):
    """A phase from a CIF path or a library id."""
    from xtal.library import Library
    from xtal.structures import read_cif

    p = Path(spec)
    if p.suffix.lower() == ".cif" or p.is_file():
        return read_cif(p, block=block)
    return Library.bundled().phase(spec)


def _outputs_report(md_text: str, report: str | None, title: str, plan) -> None:
    from xtal.report import write_report

    if report:
        md = Path(report)
        html = md.with_suffix(".html")
        write_report(md_text, md, html_path=html, title=title, overwrite=True, protected=plan.inputs)
        print(f"report: {md} and {html}")


def _input_path(spec: str | None) -> Path | None:
    """A command-line input that is a file (a CIF path, not a library id), else None."""
    if spec is None:
        return None
    p = Path(spec)
    return p if p.exists() else None


def _library_inputs(spec: str | None) -> list[Path]:
    """CIF files or directories named in --library (they are inputs of the run)."""
    if not spec:
        return []
    out = []
    for part in str(spec).split(","):
        p = Path(part.strip())
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(p.glob("*.cif"))
    return out


def _plan(inputs, force: bool, input_dirs=()):
    from xtal.util import OutputPlan

    return OutputPlan([p for p in inputs if p is not None], force=force, input_dirs=input_dirs)


REPORT_SUFFIXES = {".md"}
JSON_SUFFIXES = {".json"}


# ------------------------------------------------------------------------------------------------
# simulate
# ------------------------------------------------------------------------------------------------
POLARIZATION_HELP = ("beam polarisation for the LP factor: unpolarized (lab tube, default), "
                     "synchrotron[:FRACTION] (default fraction 0.99), monochromator:2THETA_M")


def _polarization_arg(text: str | None):
    """--polarization text through the one parser, `xtal.beam.parse_polarization`; not given → None."""
    from xtal.beam import parse_polarization

    return None if text is None else parse_polarization(text)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from xtal.io import write_reflections_csv, write_simulated
    from xtal.io.simulated import SIMULATED_SUFFIXES
    from xtal.report.simulate import plot_pattern
    from xtal.simulate import MarchDollase, simulate
    from xtal.util import FIGURE_SUFFIXES

    plan = _plan([_input_path(args.structure)], args.force)
    out = plan.add(args.out, what="--out", suffixes=SIMULATED_SUFFIXES)
    refl_out = plan.add(args.reflections, what="--reflections", suffixes={".csv"})
    plot_out = plan.add(args.plot, what="--plot", suffixes=FIGURE_SUFFIXES)
    plan.check()  # before reading or computing anything
    phase = _load_phase(args.structure, block=args.block)
    po = None
    if args.march_dollase:
        h, k, l, r = args.march_dollase
        po = MarchDollase(axis=(int(h), int(k), int(l)), r=r)
    sim = simulate(phase, args.wavelength, tuple(args.range), args.step, fwhm_deg=args.fwhm, eta=args.eta,
                   caglioti=tuple(args.uvw) if args.uvw else None, tch=tuple(args.tch) if args.tch else None,
                   zero_shift_deg=args.zero, polarization=_polarization_arg(args.polarization),
                   preferred_orientation=po, form_factors=args.form_factors)
    for w in sim.warnings:
        print(f"warning: {w}")
    refl = sim.reflections
    lam2 = sim.meta["wavelength2_angstrom"]
    print(f"{phase.id}: {len(refl)} independent reflections in {args.range[0]}–{args.range[1]}° 2θ at "
          f"λ = {sim.wavelength_angstrom} Å"
          + (f" + Kα2 {lam2} Å (ratio {sim.meta['ka2_ratio']})" if lam2 else ""))
    order = list(reversed(refl.intensity.argsort()))[:8]
    for i in sorted(order, key=lambda i: refl.two_theta_deg[i]):
        h, k, l = refl.hkl[i]
        print(f"  ({h:d} {k:d} {l:d})  d = {refl.d_angstrom[i]:.4f} Å  2θ = {refl.two_theta_deg[i]:.3f}°  "
              f"m = {refl.multiplicity[i]}  I = {100 * refl.intensity[i] / refl.intensity.max():.1f}")
    if out:
        print(f"pattern: {write_simulated(sim, out, overwrite=args.force, protected=plan.inputs)}")
    if refl_out:
        print(f"reflections: {write_reflections_csv(refl, refl_out, overwrite=args.force, protected=plan.inputs)}")
    if plot_out:
        print(f"figure: {plot_pattern(sim, plot_out, overwrite=args.force)}")
    return 0


# ------------------------------------------------------------------------------------------------
# identify
# ------------------------------------------------------------------------------------------------
def _library_phases(spec: str | None):
    """Phases for --library: 'bundled' (default), a group, comma-separated ids/CIF files, or a directory."""
    from xtal.errors import LibraryError
    from xtal.library import Library

    lib = Library.bundled().select(spec)
    phases = lib.phases()
    empty = [e.id for e in lib if not e.filled]
    if not phases:
        raise LibraryError(f"the library selection {spec!r} holds no structure"
                           + (f" (empty slots: {', '.join(empty)})" if empty else ""))
    return phases, empty


def _identify_workers(asked: int | None) -> int:
    """--workers, or the default: a second process only where it can run beside this one (fork
    available, ≥ 2 CPUs for this process, a 1-minute load average leaving one of them free)."""
    if asked is not None:
        if asked < 1:
            from xtal.errors import IdentificationError

            raise IdentificationError(f"--workers must be at least 1, got {asked}", field="--workers")
        return asked
    from xtal.identify.search import fork_workers_available

    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float(ncpu)
    return 2 if ncpu >= 2 and load <= ncpu - 1 and fork_workers_available() else 1


def _cmd_identify(args: argparse.Namespace) -> int:
    from xtal.identify import identify
    from xtal.io import read_pattern
    from xtal.util import FIGURE_SUFFIXES, atomic_write_text, check_writable

    plan = _plan([Path(args.pattern), _input_path(args.instrument), *_library_inputs(args.library)],
                 args.force)
    json_out = plan.add(args.json, what="--json", suffixes=JSON_SUFFIXES)
    report = plan.add(args.report, what="--report", suffixes=REPORT_SUFFIXES)
    plot = plan.add(args.plot or (report.with_suffix(".png") if report else None), what="--plot",
                    suffixes=FIGURE_SUFFIXES)
    if report:
        plan.add(report.with_suffix(".html"), what="--report (HTML)")
    page = plan.add(args.html or (_interactive_path(args.report) if args.report else None),
                    what="--html", suffixes=(".html", ".htm"))
    plan.check()  # before reading the pattern or fitting anything
    if args.max_phases is not None and args.max_phases < 1:
        from xtal.errors import IdentificationError

        raise IdentificationError(f"--max-phases must be at least 1, got {args.max_phases}",
                                  field="--max-phases")
    workers = _identify_workers(args.workers)     # a bad --workers is refused before any work
    pattern = read_pattern(args.pattern, instrument=args.instrument, frame=args.frame,
                           columns=_columns_arg(args.columns))
    phases, empty = _library_phases(args.library)
    bar = None if args.no_progress else _StageProgress("identify")
    try:
        result = identify(pattern, phases, wavelength=args.wavelength, max_phases=args.max_phases,
                          polarization=_polarization_arg(args.polarization), progress=bar,
                          positions={"auto": "auto", "always": True, "never": False}[args.positions],
                          workers=workers)
    finally:
        if bar is not None:
            bar.close()
    best = result.best
    print(f"{args.pattern}: λ = {result.wavelength} Å; {len(phases)} library phases; confidence "
          f"{result.confidence}: {result.confidence_statement}")
    for rank, h in enumerate(result.hypotheses, 1):
        parts = ", ".join(f"{p.id} {100 * p.weight_fraction:.1f} wt%" if p.weight_fraction is not None
                          else p.id for p in h.phases)
        print(f"  #{rank}  Rwp = {100 * h.rwp:.2f} %  score = {h.score:.1f}  {parts or '(no phase)'}")
    if result.unexplained_peaks:
        print("  unexplained peaks (2θ °, d Å): " + ", ".join(
            f"{p['two_theta']:.3f} ({p['d']:.3f})" for p in result.unexplained_peaks[:10]))
    if result.positions is not None:
        print(f"  {result.positions.statement}")
    for w in result.warnings:
        print(f"  warning: {w}")
    if empty:
        print(f"  not searched (empty library slots): {', '.join(empty)}")
    if best is None:
        print("  no library phase explains the pattern")
    if json_out:
        payload = result.to_json_dict()
        payload["empty_slots"] = empty
        check_writable(json_out, overwrite=args.force, protected=tuple(plan.inputs))
        atomic_write_text(json_out, json.dumps(payload, indent=2))
        print(f"json: {json_out}")
    if plot or args.report:     # imported only when asked for: markdown, matplotlib
        from xtal.report.identify import plot_identification, render_identification_markdown
    if plot:
        plot_identification(result, pattern, plot, overwrite=args.force, intensity=args.intensity,
                            zoom=tuple(args.zoom) if args.zoom else None,
                            inset=tuple(args.inset) if args.inset else None)
        print(f"figure: {plot}")
    if args.report:
        md = render_identification_markdown(result)
        if plot:
            md += f"\n\n![observed, calculated and difference]({Path(plot).resolve()})\n" \
                if Path(plot).resolve().parent != Path(args.report).resolve().parent else \
                f"\n\n![observed, calculated and difference]({Path(plot).name})\n"
        if empty:
            md += ("\n\n**Not searched — empty library slots** (supply the CIFs): " + ", ".join(empty) + "\n")
        _outputs_report(md, args.report, "xtal phase identification", plan)
    if page:
        from xtal.report.interactive import write_identification_html

        check_writable(page, overwrite=args.force, protected=tuple(plan.inputs))
        print(f"interactive page: {write_identification_html(result, page)}")
    return 0


def _interactive_path(report: str) -> Path:
    """The interactive page written beside a report: report.md → report.interactive.html."""
    return Path(report).with_suffix(".interactive.html")


class _StageProgress:
    """`identify` progress callback: one rewritten stderr line, stage and number of fits."""

    def __init__(self, what: str):
        self.what, self.width = what, 0

    def __call__(self, stage: str, n_fits: int) -> None:
        line = f"{self.what}: {stage} ({n_fits} fits)"
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = max(self.width, len(line))

    def close(self) -> None:
        if self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------
def _cmd_geometry(args: argparse.Namespace) -> int:
    from xtal.geometry import CONTACT_KINDS, analyse_geometry
    from xtal.report.geometry import bvs_check_text, plot_distance_distributions, render_geometry_markdown
    from xtal.util import atomic_write_text, check_writable

    from xtal.library import Library

    specs = [str(f) for spec in args.structures
             for f in (sorted(Path(spec).glob("*.cif")) if Path(spec).is_dir() else [spec])]
    batch = len(specs) > 1 or any(Path(spec).is_dir() for spec in args.structures)
    plan = _plan([_input_path(s) for s in specs], args.force)
    json_out = plan.add(args.json, what="--json", suffixes=JSON_SUFFIXES)
    report = plan.add(args.report, what="--report", suffixes=REPORT_SUFFIXES)
    if report:
        plan.add(report.with_suffix(".html"), what="--report (HTML)")
        plan.add(report.with_suffix(".png"), what="--report (figure)")
    page = plan.add(args.html or (_interactive_path(args.report) if args.report else None),
                    what="--html", suffixes=(".html", ".htm"))
    plan.check()  # before any structure is read
    published = Library.bundled().published_ranges()
    results, no_metal, failed = [], [], []
    h_mode = {"auto": None, "normalise": True, "as-refined": False}[args.h_positions]
    for spec in specs:   # a batch completes the other structures when one fails or has no metal (exit 1)
        try:
            phase = _load_phase(spec, block=args.block)
            r = analyse_geometry(phase, metals=args.metal, cutoff_angstrom=args.cutoff,
                                 chemenv=not args.no_chemenv, no_metal="empty" if batch else "raise",
                                 normalise_h=h_mode)
        except XtalError as exc:
            if not batch:
                raise
            failed.append(spec)
            print(f"xtal: error: {exc}", file=sys.stderr)
            continue
        (results if r.sites else no_metal).append(r)
    for r in results:
        for site in r.to_json_dict()["sites"]:
            bonds = ", ".join(f"{b['to']}({b['symop']}) {b['text']} {b['kind']}"
                              for b in site["bonds"] if b["kind"] not in CONTACT_KINDS)
            print(f"{r.phase_id} {site['label']}: CN {site['cn']}, BVS "
                  f"{site['bvs'] if site['bvs'] is not None else 'n/a'}: {bonds}")
            check = site.get("bvs_check") or {}
            if check.get("within") is False:
                print(f"  {bvs_check_text(site['element'], check)}")
    if json_out and results:
        payload = results[0].to_json_dict() if not batch else \
            {"structures": [r.to_json_dict() for r in results]}
        if failed:
            payload["failed"] = failed
        check_writable(json_out, overwrite=args.force, protected=tuple(plan.inputs))
        atomic_write_text(json_out, json.dumps(payload, indent=2))
        print(f"json: {json_out}")
    if report and results:
        figure = report.with_suffix(".png")
        plot_distance_distributions(results, figure, published=published, overwrite=args.force)
        _outputs_report(render_geometry_markdown(results, figure=figure.name, published=published),
                        args.report, "xtal coordination geometry", plan)
    if page and results:
        from xtal.report.interactive import write_geometry_html

        check_writable(page, overwrite=args.force, protected=tuple(plan.inputs))
        print(f"interactive page: {write_geometry_html(results, page)}")
    for r in no_metal:
        print(f"xtal geometry: {r.file or r.phase_id}: {r.message}", file=sys.stderr)
    if failed:
        print(f"xtal geometry: {len(failed)} of {len(specs)} structure(s) failed: {', '.join(failed)}",
              file=sys.stderr)
    if no_metal:
        print(f"xtal geometry: {len(no_metal)} of {len(specs)} structure(s) had no selected metal site; "
              f"the other {len(results)} were analysed", file=sys.stderr)
    if no_metal or failed:
        return 1 if results else 2
    return 0


# ------------------------------------------------------------------------------------------------
# series
# ------------------------------------------------------------------------------------------------
class _FrameBar:
    """`analyse_series` progress callback: a tqdm bar of frames on stderr."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="frame", desc="series")
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_series(args: argparse.Namespace) -> int:
    from xtal.report import markdown_to_html
    from xtal.report.series import SERIES_OUTPUT_NAMES, write_series_result
    from xtal.series import analyse_series
    from xtal.util import atomic_write_text

    src = Path(args.source)
    plan = _plan([src if src.is_file() else None, _input_path(args.temperatures), _input_path(args.instrument),
                  *_library_inputs(args.library)], args.force, input_dirs=[src] if src.is_dir() else [])
    plan.add_dir(args.out, SERIES_OUTPUT_NAMES, what="--out")
    plan.check()  # before any frame is read or fitted
    phases, empty = _library_phases(args.library)
    bar = None if args.no_progress else _FrameBar()
    try:
        result = analyse_series(args.source, phases, wavelength=args.wavelength,
                                polarization=_polarization_arg(args.polarization),
                                temperatures=args.temperatures, instrument=args.instrument,
                                progress=bar, workers=args.workers, scheduler=args.scheduler)
    finally:
        if bar is not None:
            bar.close()
    written = write_series_result(result, args.out, overwrite=args.force, temperature=args.temperature_unit)
    md_path = written["report.md"]
    html = md_path.with_suffix(".html")
    md = md_path.read_text(encoding="utf-8")
    if empty:
        md += "\n\n**Not searched — empty library slots** (supply the CIFs): " + ", ".join(empty) + "\n"
        atomic_write_text(md_path, md)
    atomic_write_text(html, markdown_to_html(md, base_dir=md_path.parent, title="xtal thermal series"))
    written["report.html"] = html
    from xtal.report.units import temperature_unit, to_unit

    unit = temperature_unit(result.temperature_c, args.temperature_unit)
    for ev in result.events:
        where = (f"T = {to_unit(ev['T_C'], unit):.1f} ± {ev['sigma_C']:.1f} {unit}"
                 if ev.get("T_C") is not None else "")
        if ev.get("time_s") is not None:
            where += f" (t = {ev['time_s']:.0f} s)"
        print(f"  {ev['phase']}: {ev['kind']} at frame {ev['frame']} {where}")
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


# ------------------------------------------------------------------------------------------------
# refine
# ------------------------------------------------------------------------------------------------
def _cmd_refine(args: argparse.Namespace) -> int:
    from xtal.io import read_pattern
    from xtal.io.cif_writer import write_refined_cif
    from xtal.refine import le_bail, rietveld
    from xtal.report.interactive import write_refinement_html
    from xtal.report.refine import plot_rietveld, render_lebail_markdown, render_rietveld_markdown
    from xtal.structures import read_cif
    from xtal.util import FIGURE_SUFFIXES

    plan = _plan([Path(args.pattern), _input_path(args.instrument), *(Path(c) for c in args.cif)],
                 args.force)
    cif_out = None if args.lebail else plan.add(args.write_cif, what="--write-cif", suffixes=(".cif",))
    report = plan.add(args.report, what="--report", suffixes=REPORT_SUFFIXES)
    if report:
        plan.add(report.with_suffix(".html"), what="--report (HTML)")
    plot = None if args.lebail else plan.add(
        args.plot or (report.with_suffix(".png") if report else None), what="--plot",
        suffixes=FIGURE_SUFFIXES)
    page = plan.add(args.html or (_interactive_path(args.report) if args.report else None),
                    what="--html", suffixes=(".html", ".htm"))
    plan.check()  # before reading anything or refining
    pattern = read_pattern(args.pattern, instrument=args.instrument)
    phases = [read_cif(c) for c in args.cif]
    rng = tuple(args.range) if args.range else None
    pol = _polarization_arg(args.polarization)
    if args.lebail:
        lb = le_bail(pattern, phases, wavelength=args.wavelength, polarization=pol, two_theta_range=rng)
        print(f"Le Bail: Rwp = {100 * lb.rwp:.2f} %, χ² = {lb.chi2:.3f}, {lb.cycles} cycles, "
              f"{lb.elapsed_s:.2f} s")
        for ph in lb.phases:
            print(f"  {ph.id}: cell " + ", ".join(f"{v:.5f}" for v in ph.cell[:3]))
        _outputs_report(render_lebail_markdown(lb), args.report, "xtal Le Bail fit", plan)
        if page:
            print(f"interactive page: {write_refinement_html(lb, page, overwrite=args.force)}")
        return 0
    refine = [g.strip() for g in args.refine.split(",")] if args.refine else None
    kw = {"refine": refine} if refine else {}
    po = {}
    for spec in args.po or []:
        pid, _, hkl = spec.partition(":")
        po[pid] = tuple(int(v) for v in hkl.split(","))
    res = rietveld(pattern, phases, wavelength=args.wavelength, polarization=pol, two_theta_range=rng,
                   preferred_orientation=po or None, **kw)
    print(f"Rietveld: Rwp = {100 * res.rwp:.2f} %, Rexp = {100 * res.rexp:.2f} %, χ² = {res.chi2:.3f}, "
          f"converged: {res.converged}, {res.elapsed_s:.2f} s")
    for ph in res.phases:
        print(f"  {ph.id}: cell " + ", ".join(f"{v:.5f}" for v in ph.cell[:3]))
    for w in res.warnings:
        print(f"  warning: {w}")
    if cif_out:
        print(f"cif: {write_refined_cif(res, cif_out, overwrite=args.force)}")
    if plot:
        print(f"figure: {plot_rietveld(res, plot, overwrite=args.force)}")
    if report:
        md = render_rietveld_markdown(res) + (f"\n![Rietveld plot]({Path(plot).name})\n" if plot else "")
        _outputs_report(md, args.report, "xtal Rietveld refinement", plan)
    if page:
        print(f"interactive page: {write_refinement_html(res, page, overwrite=args.force)}")
    return 0


# ------------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from xtal.demo import run_demo

    run_demo(Path(args.out), overwrite=args.force)
    return 0


def _columns_arg(text: str | None) -> tuple | None:
    """``--columns X,Y[,S]`` → (x, y[, σ]) with integers where the item is an index."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)


REPORT_OUTPUTS = """Report outputs:
  report.md + report.html   Markdown and one self-contained HTML file (figures embedded)  --report
  *.interactive.html        interactive page, offline (plotly): zoom, hover hkl/d/I or frame/T/2θ/I,
                            phase toggles, linear/√I/log; series.html for a series      --html
  .png .svg .pdf            matplotlib figures for papers (format by suffix)            --plot
  .json                     the result as data                                          --json
  series: series.nc (xarray), phases.csv, events.json, heatmap/fractions/lattice PNGs, report, series.html"""


def _cmd_formats(args: argparse.Namespace) -> int:
    from xtal.io.registry import formats_table

    print(formats_table())
    print()
    print(REPORT_OUTPUTS)
    return 0


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------
class _TopParser(argparse.ArgumentParser):
    """The `xtal` parser: its epilog (the formats table, which imports every reader) is built only
    when the help is shown, not on every command."""

    def format_help(self) -> str:
        if self.epilog is None:
            from xtal.io.registry import formats_table
            self.epilog = "Pattern formats:\n" + formats_table() + "\n\n" + REPORT_OUTPUTS
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `xtal` (sub-commands and their options)."""
    parser = _TopParser(prog="xtal", description="Crystallography and powder diffraction of "
                        "metal dodecaborates and their glyme solvates.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=argparse.ArgumentParser)

    p_lib = sub.add_parser("library", help="the structure library")
    lsub = p_lib.add_subparsers(dest="library_cmd", required=True)
    lsub.add_parser("list", help="table of all phases")
    p_show = lsub.add_parser("show", help="one phase in detail")
    p_show.add_argument("id")
    p_add = lsub.add_parser("add", help="add a CIF (fills a slot or replaces a model with the same id)")
    p_add.add_argument("file")
    p_add.add_argument("--id", required=True)
    p_add.add_argument("--block", help="data block to take from a multi-block CIF")
    p_add.add_argument("--dir", help="user structure directory (default $XTAL_USER_STRUCTURES or ~/.xtal/structures)")
    p_add.add_argument("--force", action="store_true", help="replace an existing user CIF with this id, and "
                       "add a CIF that does not match the slot's formula or published M–O distances")
    p_check = lsub.add_parser("check", help="parse and validate CIFs (default: the whole library)")
    p_check.add_argument("files", nargs="*")
    p_lib.set_defaults(func=_cmd_library)

    p_sim = sub.add_parser("simulate", help="simulate a powder pattern (reflection table + profile)")
    p_sim.add_argument("structure", metavar="CIF_OR_ID")
    p_sim.add_argument("--block", help="data block of a multi-block CIF")
    p_sim.add_argument("--wavelength", required=True,
                       help="λ in Å, or a tube name (CuKa, MoKa, … = Kα1/Kα2 doublet; CuKa1 = Kα1 only); "
                            "required (the source study used 0.71073, Mo Kα mean)")
    p_sim.add_argument("--range", nargs=2, type=float, default=[2.0, 50.0], metavar=("MIN", "MAX"),
                       help="2θ range in degrees")
    p_sim.add_argument("--step", type=float, default=0.01, help="2θ step in degrees")
    prof = p_sim.add_mutually_exclusive_group()
    prof.add_argument("--fwhm", type=float, help="constant FWHM in degrees (default 0.08)")
    prof.add_argument("--uvw", nargs=3, type=float, metavar=("U", "V", "W"), help="Caglioti U V W (deg²)")
    prof.add_argument("--tch", nargs=5, type=float, metavar=("U", "V", "W", "X", "Y"),
                      help="Thompson–Cox–Hastings U V W (deg²) X Y (deg)")
    p_sim.add_argument("--eta", type=float, help="pseudo-Voigt Lorentzian fraction (default 0.5)")
    p_sim.add_argument("--zero", type=float, default=0.0, help="zero shift in degrees 2θ")
    p_sim.add_argument("--polarization", help=POLARIZATION_HELP)
    p_sim.add_argument("--march-dollase", nargs=4, type=float, metavar=("H", "K", "L", "R"),
                       help="March–Dollase preferred orientation along hkl with ratio r")
    p_sim.add_argument("--form-factors", choices=["it92", "pymatgen"], default="it92")
    p_sim.add_argument("--out", help="profile output: .xy, .xye, .csv or .cif (pdCIF)")
    p_sim.add_argument("--reflections", help="reflection table CSV")
    p_sim.add_argument("--plot", help="figure (PNG/PDF/SVG)")
    p_sim.add_argument("--force", action="store_true", help="replace existing output files")
    p_sim.set_defaults(func=_cmd_simulate)

    p_id = sub.add_parser("identify", help="identify library phases in a measured pattern")
    p_id.add_argument("pattern")
    p_id.add_argument("--wavelength", help="λ in Å (single line) or a tube name (CuKa, MoKa, … = Kα1/Kα2); "
                                           "default: the file's (an error if the file has none)")
    p_id.add_argument("--instrument", help="GSAS instrument parameter file holding the wavelength")
    p_id.add_argument("--frame", type=int, help="which range/scan/block of a file that holds several")
    p_id.add_argument("--columns", metavar="X,Y[,S]",
                      help="x, intensity[, σ] columns of a text table (0-based indices or names)")
    p_id.add_argument("--library", default="bundled",
                      help="bundled (default), a group (dodecaborate, validation), ids or CIF files "
                           "separated by commas, or a directory of CIFs (ids = file stems)")
    p_id.add_argument("--max-phases", type=int, default=5)
    p_id.add_argument("--polarization", help=POLARIZATION_HELP)
    p_id.add_argument("--json", help="write the JSON result here")
    p_id.add_argument("--report", help="Markdown report (+ .html and figure beside it)")
    p_id.add_argument("--plot", help="figure (PNG/PDF/SVG): observed, calculated, difference, ticks")
    p_id.add_argument("--force", action="store_true", help="replace existing output files")
    p_id.add_argument("--intensity", choices=("linear", "sqrt", "log"), default="linear",
                      help="intensity scale of the figure (sqrt: weak peaks beside strong ones)")
    p_id.add_argument("--zoom", nargs=2, type=float, metavar=("MIN", "MAX"), help="2θ range of the figure")
    p_id.add_argument("--inset", nargs=2, type=float, metavar=("MIN", "MAX"),
                      help="2θ window drawn magnified in an inset of the figure")
    p_id.add_argument("--html", help="interactive page (zoom, hover hkl, phase toggles, √I/log); default "
                                     "with --report: REPORT.interactive.html")
    p_id.add_argument("--positions", choices=("auto", "always", "never"), default="auto",
                      help="Le Bail check of the answer by peak positions alone, beside the structure-"
                           "based fit (auto: when it rests on a MODEL structure; always: also for textured answers)")
    p_id.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p_id.add_argument("--workers", type=int, default=None,
                      help="processes for the search's independent fits (the answer is the same for "
                           "any number); default: 2 on Linux when 2 CPUs are available and the load "
                           "average leaves one free, else 1")
    p_id.set_defaults(func=_cmd_identify)

    p_ser = sub.add_parser("series", help="phase map of an in-situ thermal series")
    p_ser.add_argument("source", metavar="DIR_OR_FILE", help="directory/glob of frames, or one 2D file (.nc/.h5)")
    p_ser.add_argument("--wavelength", help="λ in Å or tube name, when the frames do not state it")
    p_ser.add_argument("--temperatures", metavar="LOG.csv", help="temperature log (file/frame and T columns)")
    p_ser.add_argument("--instrument", help="GSAS instrument parameter file holding the wavelength")
    p_ser.add_argument("--library", default="bundled", help="as for `xtal identify`")
    p_ser.add_argument("--polarization", help=POLARIZATION_HELP)
    p_ser.add_argument("--out", required=True, metavar="OUTDIR")
    p_ser.add_argument("--workers", type=int, default=1, help="parallel processes (frames in chunks)")
    p_ser.add_argument("--scheduler", help="Dask distributed scheduler address tcp://host:port")
    p_ser.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_ser.add_argument("--temperature-unit", choices=("auto", "K", "C"), default="auto",
                       help="temperatures in the report, figures and pages: K, °C, or auto (default: K "
                            "when the series goes below 0 °C, °C otherwise)")
    p_ser.add_argument("--force", action="store_true", help="replace existing outputs in OUTDIR")
    p_ser.set_defaults(func=_cmd_series)

    p_demo = sub.add_parser("demo", help="the whole workflow on the bundled data (library, simulation, "
                                         "identification, thermal series, coordination)")
    p_demo.add_argument("--out", default="xtal-demo", metavar="DIR", help="output directory (default xtal-demo/)")
    p_demo.add_argument("--force", action="store_true",
                        help="write into an existing non-empty DIR, replacing the demo's own files")
    p_demo.set_defaults(func=_cmd_demo)

    p_geo = sub.add_parser("geometry", help="coordination geometry: M–X distances with s.u., CN, polyhedra, BVS")
    p_geo.add_argument("structures", nargs="+", metavar="CIF_OR_ID")
    p_geo.add_argument("--metal", help="elements or site labels, e.g. Li or Li,Na (default: alkali/alkaline-earth)")
    p_geo.add_argument("--cutoff", type=float, help="one M–X cutoff in Å (default: bond-valence based)")
    p_geo.add_argument("--block", help="data block of a multi-block CIF")
    p_geo.add_argument("--json", help="write the JSON result here")
    p_geo.add_argument("--report", help="write a Markdown report here (+ .html and .png beside it)")
    p_geo.add_argument("--html", help="interactive page of the distances (default with --report: "
                                      "REPORT.interactive.html)")
    p_geo.add_argument("--no-chemenv", action="store_true", help="skip pymatgen ChemEnv (faster)")
    p_geo.add_argument("--h-positions", choices=("auto", "normalise", "as-refined"), default="auto",
                       help="H positions: auto (default) normalises X–H to neutron distances unless the CIF "
                            "is neutron data; normalise or as-refined force it")
    p_geo.add_argument("--force", action="store_true", help="replace existing output files")
    p_geo.set_defaults(func=_cmd_geometry)

    p_fmt = sub.add_parser("formats", help="the pattern formats read and written, with extensions")
    p_fmt.set_defaults(func=_cmd_formats)
    p_ref = sub.add_parser("refine", help="Rietveld refinement (or --lebail extraction) of CIF structures")
    p_ref.add_argument("pattern")
    p_ref.add_argument("--cif", action="append", required=True, help="a phase's CIF (repeat for several)")
    p_ref.add_argument("--instrument", help="GSAS instrument parameter file holding the wavelength")
    p_ref.add_argument("--wavelength", help="λ in Å or tube name, when the file does not state it")
    p_ref.add_argument("--polarization", help=POLARIZATION_HELP)
    p_ref.add_argument("--range", nargs=2, type=float, metavar=("LO", "HI"), help="2θ range (°)")
    p_ref.add_argument("--refine", help="parameter groups, comma-separated (scale,background,zero,"
                                        "displacement,cell,profile,po,xyz,uiso,occ)")
    p_ref.add_argument("--po", action="append", metavar="PHASE:h,k,l", help="March–Dollase axis of a phase")
    p_ref.add_argument("--lebail", action="store_true", help="Le Bail extraction instead of Rietveld")
    p_ref.add_argument("--write-cif", help="write the refined structure(s) here")
    p_ref.add_argument("--report", help="Markdown report (+ .html and figure beside it)")
    p_ref.add_argument("--plot", help="Rietveld figure")
    p_ref.add_argument("--html", help="interactive page (zoom, hover, √I/log); default with --report: "
                                      "REPORT.interactive.html")
    p_ref.add_argument("--force", action="store_true", help="replace existing output files")
    p_ref.set_defaults(func=_cmd_refine)
    return parser


def _version() -> str:
    from xtal import __version__

    return f"xtal {__version__}"


#: BLAS thread pools the command starts with one thread (unless the user's environment says
#: otherwise): its fits run with one BLAS thread anyway (tall-thin products, `xtal.identify.blas`)
#: and series / identify parallelise over processes, while OpenBLAS starting a thread per core at
#: NumPy's import costs 0.1–0.2 s of CPU per command (benchmarks/RESULTS.md, issue 16).
ONE_BLAS_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    from xtal.heap import keep_freed_memory

    if "numpy" not in sys.modules:       # only before NumPy (and its BLAS) is loaded
        for var in ONE_BLAS_THREAD_ENV:
            os.environ.setdefault(var, "1")
    keep_freed_memory()      # this process is the command's: reuse freed memory (xtal.heap)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XtalError as exc:
        print(f"xtal: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
