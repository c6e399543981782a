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

``--fits-only``: instead of the whole demo, the demo's compute core in one process — `identify`
of the three bundled demo patterns against the bundled library (no reports, no figures).
"""
from __future__ import annotations

import argparse
import json
import os
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


def run(tree: Path, script: str, workers: int = 1) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), XTAL_DEMO_WORKERS=str(workers),
               XTAL_USER_STRUCTURES=str(Path(tempfile.gettempdir()) / "xtal-bench-no-user"))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        # cwd = the empty temporary directory: `python -c` puts the cwd first on sys.path, which
        # must not shadow the tree given by PYTHONPATH
        out = subprocess.run([sys.executable, "-c", script, str(Path(tmp) / "demo")], env=env,
                             cwd=tmp, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
    rec = json.loads(out.strip().splitlines()[-1])
    rec["wall"] = wall
    rec["load"] = os.getloadavg()[0]
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--baseline", type=Path, default=None, help="another tree to compare with")
    ap.add_argument("--fits-only", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="XTAL_DEMO_WORKERS of the runs (default 1)")
    args = ap.parse_args()
    script = FITS if args.fits_only else DEMO
    trees = ([("baseline", args.baseline)] if args.baseline else []) + [("this", ROOT)]
    runs: dict[str, list[dict]] = {k: [] for k, _ in trees}
    print(f"{'fits only' if args.fits_only else f'xtal demo, workers={args.workers}'}: "
          f"{args.repeat} × {len(trees)} runs, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for _ in range(args.repeat):
        for name, tree in trees:
            rec = run(tree, script, args.workers)
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


if __name__ == "__main__":
    main()
