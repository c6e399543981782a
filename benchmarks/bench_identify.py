"""Benchmark of `xtal identify`: the whole command, and `identify` inside one process.

Run from the repository root:

    python benchmarks/bench_identify.py [--repeat 3] [--inprocess]

**Command** (default; issue 16): `xtal identify PATTERN --json OUT` in a fresh process (imports,
reading the pattern, loading the 19-phase bundled library, reflection tables, the fit, the JSON),
5000 points (a labelled synthetic 3-phase mixture, Cu Kα1/Kα2, 2θ 10–80°), wall and CPU time of
the child process:

* *no cache*: ``XTAL_CACHE_DIR=off`` (every process recomputes every reflection table, as before
  the on-disk cache);
* *cold*: an empty cache directory (computes and stores the tables);
* *warm*: the same directory again (reads them);
* *warm, 2 workers*: the same with ``--workers 2`` (the search's independent fits shared with a
  forked process; the other rows use ``--workers 1``).

Baselines, pymatgen computing the sticks of the same library phases at the same λ and 2θ range (what
a pymatgen-based tool computes before it fits anything), two ways:

* *whole process* (the same kind of measurement as the xtal command, a fresh ``python -c`` child per
  round, alternating with the xtal children): import pymatgen, read each phase's CIF with
  `CifParser`, `XRDCalculator.get_pattern`.  This is the scale of the issue's own baseline (it gave
  identify 4.4 s CPU = 0.68 of pymatgen's time, i.e. pymatgen ≈ 6.5 s CPU on that machine);
* *sticks alone*, in this process: `get_pattern` of the structures xtal has already read
  (`Phase.to_pymatgen`), without pymatgen's import or CIF parsing.
Also measured: ``python -X importtime``-free import time of the modules each command needs.

**In process** (``--inprocess``): `identify` of the same pattern against a 12-phase library; the
first call includes the reflection tables, the median is over the following calls; and
`fit_phases` started from a neighbouring result (the per-frame cost of a series).
"""
from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xtal
from xtal import identify as I
from xtal.io import write_pattern
from xtal.library import Library
from xtal.synth import synthetic_pattern

LIBRARY_IDS = ["PbSO4", "NiO", "CuO", "CaF2", "NAC", "BiFeO3", "Bi2Fe4O9", "Bi25FeO39",
               "CuCr2O4", "k2b12h12", "libh4_rt", "libh4_ht"]
TRUE = (["PbSO4", "CuO", "k2b12h12"], [0.5, 0.3, 0.2])
RANGE = (10.0, 80.0)


def make_pattern(lib):
    by_id = {p.id: p for p in lib.phases(TRUE[0])}
    return synthetic_pattern([by_id[i] for i in TRUE[0]], TRUE[1], wavelength_angstrom="CuKa",
                             two_theta_range_deg=RANGE, step_deg=0.014, strain=[0.004, -0.006, 0.01],
                             zero_shift_deg=0.03, fwhm_deg=0.09, eta=0.6,
                             background={"kind": "chebyshev", "coeffs": [200, -40, 15]},
                             counts_max=2e4, seed=42)


def _child(args: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def pymatgen_sticks(phases, wavelength: float) -> tuple[float, float]:
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    t, c = time.perf_counter(), time.process_time()
    calc = XRDCalculator(wavelength=wavelength)
    for p in phases:
        calc.get_pattern(p.to_pymatgen(), scaled=False, two_theta_range=RANGE)
    return time.perf_counter() - t, time.process_time() - c


# the whole pymatgen job in a child process: imports, CIFs, sticks (argv: λ, 2θ min, 2θ max, CIFs)
PYMATGEN_PROCESS = """
import sys, warnings
warnings.filterwarnings("ignore")
from pymatgen.io.cif import CifParser
from pymatgen.analysis.diffraction.xrd import XRDCalculator
calc = XRDCalculator(wavelength=float(sys.argv[1]))
lo, hi = float(sys.argv[2]), float(sys.argv[3])
n = 0
for path in sys.argv[4:]:
    structure = CifParser(path).parse_structures(primitive=False)[0]
    n += len(calc.get_pattern(structure, scaled=False, two_theta_range=(lo, hi)).x)
print(n)
"""


def command_benchmark(repeat: int) -> None:
    # the bytecode of xtal's modules, as an installed package has it: with
    # PYTHONDONTWRITEBYTECODE set (as in some containers) an edited module would otherwise be
    # compiled again by every child process (~0.1 s per command after editing the fit's modules)
    compileall.compile_dir(str(Path(xtal.__file__).parent), quiet=1)
    lib = Library.bundled(user_dir=False)
    phases = lib.phases()
    pat = make_pattern(lib)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pfile = write_pattern(pat, tmp / "mix.xye")
        # --force: the JSON of the previous run is replaced (the CLI refuses to overwrite otherwise)
        cmd = [sys.executable, "-m", "xtal.cli", "identify", str(pfile), "--json", str(tmp / "o.json"),
               "--force", "--no-progress"]
        base_env = dict(os.environ, XTAL_USER_STRUCTURES=str(tmp / "user"))
        print(f"pattern: {pat.x.size} points, 2θ {RANGE[0]:g}–{RANGE[1]:g}°, Cu Kα1/Kα2; library: "
              f"{len(phases)} bundled phases; load average {os.getloadavg()[0]:.2f}")
        rows: dict[str, list[tuple[float, float]]] = {"no cache": [], "cold": [], "warm": [],
                                                      "warm, 2 workers": []}
        one, two = cmd + ["--workers", "1"], cmd + ["--workers", "2"]
        pm_cmd = [sys.executable, "-c", PYMATGEN_PROCESS, "1.540593", str(RANGE[0]), str(RANGE[1]),
                  *(str(lib.entries[p.id].cif) for p in phases)]
        pm_process = []
        for k in range(repeat):
            pm_process.append(_child(pm_cmd, base_env))
            cdir = tmp / f"cache{k}"
            rows["no cache"].append(_child(one, dict(base_env, XTAL_CACHE_DIR="off")))
            rows["cold"].append(_child(one, dict(base_env, XTAL_CACHE_DIR=str(cdir))))
            for name in (("warm", "warm, 2 workers") if k % 2 == 0 else ("warm, 2 workers", "warm")):
                rows[name].append(_child(two if "2" in name else one,
                                         dict(base_env, XTAL_CACHE_DIR=str(cdir))))
        # as the command imports them: `xtal.cli.main` starts the BLAS with one thread
        imp = _child([sys.executable, "-c", "import xtal.cli, xtal.identify, xtal.io, xtal.library"],
                     dict(base_env, OPENBLAS_NUM_THREADS="1"))
        bare = _child([sys.executable, "-c", "pass"], base_env)
        pm = [pymatgen_sticks(phases, 1.540593) for _ in range(max(1, repeat // 2))]
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in rows.items()}
    pmw, pmc = min(w for w, _ in pm), min(c for _, c in pm)
    ppw = statistics.median(w for w, _ in pm_process)
    ppc = statistics.median(c for _, c in pm_process)
    print(f"`xtal identify` (median of {repeat}, wall / CPU s):")
    for k, (w, c) in med.items():
        print(f"  {k:15s} {w:6.2f} / {c:5.2f}")
    print(f"  warm vs no cache: wall {med['no cache'][0] / med['warm'][0]:.2f}x, "
          f"CPU {med['no cache'][1] / med['warm'][1]:.2f}x")
    print(f"  imports of the identify path: {imp[0]:.2f} s wall / {imp[1]:.2f} s CPU "
          f"(bare interpreter {bare[0]:.2f} / {bare[1]:.2f})")
    print(f"pymatgen, whole process (import, CifParser, XRDCalculator sticks of the same {len(phases)} "
          f"phases; median of {repeat}): {ppw:.2f} s wall / {ppc:.2f} s CPU")
    for k in ("warm", "warm, 2 workers"):
        print(f"  whole `xtal identify` ({k}) / whole pymatgen process: wall {med[k][0] / ppw:.2f}, "
              f"CPU {med[k][1] / ppc:.2f}")
    print(f"pymatgen XRDCalculator sticks alone of the same {len(phases)} phases, same λ and range (best of "
          f"{len(pm)}): {pmw:.2f} s wall / {pmc:.2f} s CPU")
    for k in ("warm", "warm, 2 workers"):
        print(f"  whole `xtal identify` ({k}) / pymatgen sticks alone: wall {med[k][0] / pmw:.2f}, "
              f"CPU {med[k][1] / pmc:.2f}")


def inprocess_benchmark(repeat: int) -> None:
    lib = Library.bundled(user_dir=False)
    phases = lib.phases(LIBRARY_IDS)
    by_id = {p.id: p for p in phases}
    pat = make_pattern(lib)
    ids, wf = TRUE
    print(f"pattern: {pat.x.size} points, library: {len(phases)} phases, truth: "
          + ", ".join(f"{i} {w:.0%}" for i, w in zip(ids, wf)))
    I.clear_cache()
    t = time.perf_counter()
    res = I.identify(pat, phases)
    cold = time.perf_counter() - t
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        res = I.identify(pat, phases)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    best = res.best
    print(f"identify: first call (incl. reflection tables) {cold:.3f} s; "
          f"median of {repeat} {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}); CPU median {statistics.median(cpu):.3f} s; "
          f"{res.n_fits} fits")
    print("best: " + " + ".join(f"{p.id} {p.weight_fraction:.1%}" for p in best.phases)
          + f"; Rwp {best.rwp:.2%}; confidence {res.confidence}")
    fit = best.fit
    sub = [by_id[i] for i in best.ids]
    tt = []
    for _ in range(repeat):
        t = time.perf_counter()
        I.fit_phases(pat, sub, start=fit)
        tt.append(time.perf_counter() - t)
    print(f"fit_phases(start=previous), {len(sub)} phases, {pat.x.size} points: "
          f"median {statistics.median(tt) * 1e3:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--inprocess", action="store_true", help="time identify() inside one process")
    args = ap.parse_args()
    (inprocess_benchmark if args.inprocess else command_benchmark)(args.repeat)


if __name__ == "__main__":
    main()
