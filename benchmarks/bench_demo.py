"""Benchmark of `xtal demo` (issue 16): CPU time of each step, optionally against another tree.

Run from the repository root:

    python benchmarks/bench_demo.py [--repeat 3] [--baseline DIR] [--workers 1|2] [--fits-only]

Each run is a fresh process (``PYTHONPATH`` = the tree) that calls `xtal.demo.run_demo` into an
empty temporary directory and reports the CPU time (``time.process_time``) of every step and of
the whole process, plus its wall time. With ``--baseline DIR`` (e.g. a ``git archive`` of an
earlier commit unpacked in DIR) the runs alternate baseline / this tree, so both see the same
load; the medians and the ratio this/baseline are printed. On a shared machine compare CPU times,
never wall times, and only within one invocation.

``--workers W`` sets ``XTAL_DEMO_WORKERS`` (default 1: every step in the measured process, so the
per-step CPU times are complete). With 2 the series and coordination steps run in a forked child:
their per-step CPU is then not seen, ``process`` is the parent's CPU and ``total`` adds the
children's (``resource.RUSAGE_CHILDREN``).

``--keep DIR``: keep each run's demo directory under DIR; with ``--baseline`` the last run of
each tree is then compared (`compare_outputs`): every non-image file equal once the tree and output
paths and the timings are masked, the interactive pages' embedded plotly data equal as numbers
(however encoded), the PNGs equal pixel for pixel.

``--parts``: with ``--baseline``, the parts of the demo this branch changed, baseline and this
tree's code alternating in one process on the demo's own results (captured from one demo run):
the three kinds of interactive page (``xtal.report.interactive`` of each tree) and the coordination
geometry of every bundled phase (``analyse_geometry`` with the baseline's or this tree's
``continuous_shape_measure`` and ``_Sym.search``). Less sensitive to the machine's load than whole runs.

``--fits-only``: instead of the whole demo, the demo's compute core in one process — `identify`
of the three bundled demo patterns against the bundled library (no reports, no figures).
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEMO = r"""
import json, resource, sys, time
import xtal.demo as D
cpu = {}
for name in ["_step_library", "_step_simulate", "_step_identify", "_step_series",
             "_step_coordination"]:
    f = getattr(D, name)
    def w(*a, f=f, name=name, **k):
        c = time.process_time()
        try:
            return f(*a, **k)
        finally:
            cpu[name[6:]] = time.process_time() - c
    setattr(D, name, w)
res = D.run_demo(sys.argv[1], overwrite=True, progress=False, log=lambda *a: None)
cpu["process"] = time.process_time()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu["total"] = cpu["process"] + ru.ru_utime + ru.ru_stime
ident = res.numbers.get("identify", {})
print(json.dumps({"xtal": D.__file__, "cpu": cpu, "check": {k: [v.get("best"), {p: round(w, 8) for p, w in
                                              (v.get("weight_fractions") or {}).items()}]
                                         for k, v in ident.items() if isinstance(v, dict)}},
                 default=str))
"""

FITS = r"""
import json, sys, time
from xtal.demo import demo_patterns
from xtal.identify import identify
from xtal.library import Library
lib = Library.bundled(user_dir=False)
phases = lib.phases()
pats = [(dp, dp.read()) for dp in demo_patterns()]
identify(pats[-1][1], phases)        # imports, reflection tables
cpu, check = {}, {}
for dp, pat in pats:
    c = time.process_time()
    r = identify(pat, phases, polarization=dp.polarization)
    cpu[dp.name] = time.process_time() - c
    check[dp.name] = [(p.id, round(p.weight_fraction, 8)) for p in r.best.phases]
cpu["process"] = time.process_time()
import xtal
print(json.dumps({"xtal": xtal.__file__, "cpu": cpu, "check": check}))
"""


PARTS = r"""
import importlib.util, json, sys, tempfile, time
from pathlib import Path
import xtal.demo as D
import xtal.geometry.polyhedra as P, xtal.geometry.symmetry as S
import xtal.report.interactive as I

def load(name, tree, rel):
    spec = importlib.util.spec_from_file_location(name, Path(tree) / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

base = sys.argv[2]
BI = load("base_interactive", base, "xtal/report/interactive.py")
BP = load("base_polyhedra", base, "xtal/geometry/polyhedra.py")
BS = load("base_symmetry", base, "xtal/geometry/symmetry.py")
calls, originals = [], {}
for name in ("write_identification_html", "write_series_html", "write_geometry_html"):
    originals[name] = getattr(I, name)
    def w(*a, f=originals[name], name=name, **k):
        calls.append((name, a, k))
        return f(*a, **k)
    setattr(I, name, w)
D.run_demo(sys.argv[1], overwrite=True, progress=False, log=lambda *a: None)
for name, f in originals.items():
    setattr(I, name, f)
from xtal.geometry import analyse_geometry
from xtal.library import Library
phases = Library.bundled(user_dir=False).phases()
this_kernels = (P.continuous_shape_measure, S._Sym.search)
cpu = {}
with tempfile.TemporaryDirectory() as tmp:
    for rep in range(3):
        for tree, mod, kernels in (("baseline", BI, (BP.continuous_shape_measure, BS._Sym.search)),
                                   ("this", I, this_kernels)):
            spent = dict.fromkeys(originals, 0.0)
            for name, a, k in calls:
                c = time.process_time()
                getattr(mod, name)(a[0], Path(tmp) / f"{tree}.html", **{**k, "overwrite": True})
                spent[name] += time.process_time() - c
            for name, v in spent.items():
                cpu.setdefault(f"{tree} {name[6:]}", []).append(v)
            P.continuous_shape_measure, S._Sym.search = kernels
            c = time.process_time()
            for ph in phases:
                analyse_geometry(ph, chemenv=False, no_metal="empty")
            cpu.setdefault(f"{tree} analyse_geometry", []).append(time.process_time() - c)
            P.continuous_shape_measure, S._Sym.search = this_kernels
print(json.dumps({"xtal": D.__file__, "cpu": cpu, "n_pages": len(calls)}))
"""


def parts(baseline: Path) -> None:
    """Print the ``--parts`` comparison (see the module doc)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), XTAL_DEMO_WORKERS="1",
               XTAL_USER_STRUCTURES=str(Path(tempfile.gettempdir()) / "xtal-bench-no-user"))
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", PARTS, str(Path(tmp) / "demo"), str(baseline.resolve())],
                             env=env, cwd=tmp, check=True, capture_output=True, text=True).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    print(f"parts of the demo, {rec['n_pages']} pages, 3 alternating repeats, load {os.getloadavg()[0]:.2f}; "
          "CPU s, median (sum over the demo's calls):")
    kinds = sorted({k.split(" ", 1)[1] for k in rec["cpu"]})
    for kind in kinds:
        b, t = (statistics.median(rec["cpu"][f"{tree} {kind}"]) for tree in ("baseline", "this"))
        print(f"  {kind:28s} baseline {b:6.3f}  this {t:6.3f}  ratio {t / b:.2f}")


def run(tree: Path, script: str, workers: int = 1, keep: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), XTAL_DEMO_WORKERS=str(workers),
               XTAL_USER_STRUCTURES=str(Path(tempfile.gettempdir()) / "xtal-bench-no-user"))
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = keep if keep is not None else Path(tmp) / "demo"
        t = time.perf_counter()
        # cwd = the empty temporary directory: `python -c` puts the cwd first on sys.path, which
        # must not shadow the tree given by PYTHONPATH
        out = subprocess.run([sys.executable, "-c", script, str(out_dir)], env=env,
                             cwd=tmp, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
    rec = json.loads(out.strip().splitlines()[-1])
    rec["wall"] = wall
    rec["load"] = os.getloadavg()[0]
    return rec


_STEPS = "library|simulate|identify|series|coordination|total"


def _masked(data: bytes, out: Path, tree: Path) -> str:
    """A demo file's text with its output and tree paths and the timings masked."""
    t = data.decode("utf-8", "replace").replace(str(out), "OUT").replace(str(tree), "TREE")
    t = re.sub(r'("elapsed_s": ?)[0-9.e-]+', r"\1X", t)
    t = re.sub(r"elapsed [0-9.]+ s", "elapsed X s", t)
    t = re.sub(rf'("({_STEPS})": )[0-9.]+', r"\1X", t)
    t = re.sub(rf"(\| ({_STEPS}) \| )[0-9.]+", r"\1X", t)
    return re.sub(rf"(<td>({_STEPS})</td>\s*<td>)[0-9.]+", r"\1X", t)


def _plots(text: str) -> list:
    """[data, layout] of every Plotly.newPlot call of a page, typed arrays decoded."""
    def decode(v):
        if isinstance(v, dict):
            if {"dtype", "bdata"} <= set(v):
                import numpy as np
                a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
                return a.reshape([int(n) for n in str(v.get("shape", a.size)).split(",")]).tolist()
            return {k: decode(x) for k, x in v.items()}
        return [decode(x) for x in v] if isinstance(v, list) else v

    dec, out = json.JSONDecoder(), []
    for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text):
        data, pos = dec.raw_decode(text, m.end())
        layout, _ = dec.raw_decode(text, re.compile(r"\s*,\s*").match(text, pos).end())
        out.append(decode([data, layout]))
    return out


def _equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def compare_outputs(a: Path, b: Path, tree_a: Path, tree_b: Path) -> list[str]:
    """The files that differ in substance between two demo directories (see the module doc)."""
    import numpy as np
    from PIL import Image

    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    bad = [f"only in one: {sorted(set(files) ^ set(p.relative_to(b) for p in b.rglob('*') if p.is_file()))}"]
    bad = bad if bad[0] != "only in one: []" else []
    for rel in files:
        if not (b / rel).exists():
            continue
        if rel.suffix == ".png":
            same = np.array_equal(np.asarray(Image.open(a / rel)), np.asarray(Image.open(b / rel)))
        elif rel.suffix == ".svg":
            continue                # matplotlib writes ids and dates into SVGs
        else:
            ta, tb = _masked((a / rel).read_bytes(), a, tree_a), _masked((b / rel).read_bytes(), b, tree_b)
            same = ta == tb
            if not same and "Plotly.newPlot" in ta:
                strip = re.compile(r"Plotly\.newPlot\(.*?\)\s*};", re.S)
                same = strip.sub("", ta) == strip.sub("", tb) and _equal(_plots(ta), _plots(tb))
        if not same:
            bad.append(str(rel))
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--baseline", type=Path, default=None, help="another tree to compare with")
    ap.add_argument("--fits-only", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="XTAL_DEMO_WORKERS of the runs (default 1)")
    ap.add_argument("--parts", action="store_true", help="the changed parts only (needs --baseline)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the demo directories here and compare the trees' last ones")
    args = ap.parse_args()
    if args.parts:
        parts(args.baseline)
        return
    script = FITS if args.fits_only else DEMO
    trees = ([("baseline", args.baseline)] if args.baseline else []) + [("this", ROOT)]
    runs: dict[str, list[dict]] = {k: [] for k, _ in trees}
    print(f"{'fits only' if args.fits_only else f'xtal demo, workers={args.workers}'}: "
          f"{args.repeat} × {len(trees)} runs, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for _ in range(args.repeat):
        for name, tree in trees:
            keep = None
            if args.keep is not None and not args.fits_only:
                keep = args.keep / f"{name}-{len(runs[name])}"
            rec = run(tree, script, args.workers, keep)
            rec["out"] = keep
            if not runs[name]:
                print(f"  {name}: {rec['xtal']}")
            runs[name].append(rec)
            steps = ", ".join(f"{k} {v:.2f}" for k, v in rec["cpu"].items())
            print(f"  {name:8s} load {rec['load']:.2f}: CPU s {steps}; wall {rec['wall']:.1f} s")
    keys = list(runs[trees[-1][0]][0]["cpu"])
    keys = [k for k in keys if all(k in r["cpu"] for rs in runs.values() for r in rs)]
    print("median CPU (s):")
    med = {name: {k: statistics.median(r["cpu"][k] for r in rs) for k in keys} for name, rs in runs.items()}
    for k in keys:
        line = "  " + f"{k:12s}" + "  ".join(f"{name} {med[name][k]:6.2f}" for name in runs)
        if args.baseline:
            line += f"  ratio {med['this'][k] / med['baseline'][k]:.2f}"
        print(line)
    line = "  wall        " + "  ".join(f"{name} {statistics.median(r['wall'] for r in rs):6.2f}"
                                      for name, rs in runs.items())
    print(line + (f"  ratio {statistics.median(r['wall'] for r in runs['this']) / statistics.median(r['wall'] for r in runs['baseline']):.2f}" if args.baseline else ""))
    if args.baseline:
        same = all(r["check"] == runs["baseline"][0]["check"] for rs in runs.values() for r in rs)
        print(f"identified phases and weight fractions (to 1e-8) "
              f"identical in every run: {same}")
        if not same:
            for name, rs in runs.items():
                print(f"  {name}: {rs[0]['check']}")
        if args.keep is not None and not args.fits_only:
            bad = compare_outputs(runs["baseline"][-1]["out"], runs["this"][-1]["out"],
                                  args.baseline.resolve(), ROOT)
            print("demo outputs of the last runs: " + ("the same (paths and timings masked; pages "
                  "compared by their plot data; PNGs pixel by pixel)" if not bad else f"DIFFER: {bad}"))


if __name__ == "__main__":
    main()
