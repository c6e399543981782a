"""Benchmark of the compiled profile kernel (the C extension `xtal._window`) against the NumPy form.

Run from the repository root (the extension is built by ``pip install -e .`` with a C compiler):

    python benchmarks/bench_kernel.py [--repeat 9] [--identify BiFeO3 NAC] [--runs 2]

1. ``xtal.profiles._window`` with values and derivatives on four grids the size of real patterns
   (random peaks, the same arguments for both forms; best of ``--repeat``, wall time in this
   process): the NumPy form (``_COMPILED = [None]``) against the kernel.
2. With ``--identify CASE ...``: `identify` of the real patterns of ``tests/real_cases.py`` against
   the whole bundled library, one fresh process per run (each compiled run loads the extension),
   NumPy and compiled alternating, ``--runs`` times; CPU seconds of the call.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# (grid points, step °, peaks, FWHM °): BiFeO3 search copy, BiFeO3 lab data, the 5 000-point
# synthetic command pattern, NAC 11-BM (narrow synchrotron peaks)
GRIDS = [(2991, 0.0435, 664, 0.14), (23928, 0.0054, 664, 0.14), (5000, 0.014, 600, 0.09),
         (59498, 0.001, 400, 0.006)]

CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.real_cases import CASES
from xtal.library import Library
from xtal import identify as I, profiles as P
if {numpy!r}:
    P._COMPILED[:] = [None]
reader, _truth, _allowed, pol = CASES[{case!r}]
pat, phases = reader(), Library.bundled(user_dir=False).phases()
t = time.process_time()
res = I.identify(pat, phases, polarization=pol)
print(time.process_time() - t, "+".join(res.best.ids) if res.best else "-",
      "xtal._window" in sys.modules)
"""


def kernel_table(repeat: int) -> None:
    from xtal import profiles as P

    if P._compiled_window() is None:
        sys.exit("the C extension xtal._window is not built (no C compiler at install?)")
    rng = np.random.default_rng(1)
    print("| grid (points) | window points | NumPy (ms) | compiled (ms) | ratio |")
    print("|---|---|---|---|---|")
    for n, step, npk, fw in GRIDS:
        x = 10.0 + np.arange(n) * step
        c = np.sort(rng.uniform(x[0] - 0.5, x[-1] + 0.5, npk))
        a, f = rng.uniform(0.1, 10.0, npk), fw * rng.uniform(0.8, 1.2, npk)
        dc, df = rng.normal(size=(npk, 3)), rng.normal(size=(npk, 3))
        kernel = P._compiled_window()
        times = {"numpy": [], "compiled": []}
        for _ in range(repeat):
            for form in times:
                P._COMPILED[:] = [None if form == "numpy" else kernel]
                t = time.perf_counter()
                P._window(x, c, a, f, 0.6, dcentre=dc, dfwhm=df, derivatives=True, values=True)
                times[form].append(time.perf_counter() - t)
        P._COMPILED[:] = [kernel]
        half = P.WINDOW_FWHM * f
        pts = int((np.searchsorted(x, c + half) - np.searchsorted(x, c - half)).sum())
        tn, tc = min(times["numpy"]), min(times["compiled"])
        print(f"| {n} | {pts} | {1e3 * tn:.2f} | {1e3 * tc:.2f} | {tn / tc:.2f} |")


def identify_runs(cases: list[str], runs: int) -> None:
    for case in cases:
        out = {"numpy": [], "compiled": []}
        for _ in range(runs):
            for form in out:
                code = CHILD.format(repo=str(REPO), numpy=form == "numpy", case=case)
                r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True, cwd=REPO)
                cpu, ids, loaded = r.stdout.split()
                out[form].append(float(cpu))
                print(f"{case} {form:8s} {float(cpu):6.2f} s CPU  {ids}  extension loaded: {loaded}")
        print(f"{case}: NumPy {' / '.join(f'{v:.2f}' for v in out['numpy'])} s, compiled "
              f"{' / '.join(f'{v:.2f}' for v in out['compiled'])} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--identify", nargs="*", default=[], help="real cases (tests/real_cases.py)")
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    kernel_table(a.repeat)
    if a.identify:
        identify_runs(a.identify, a.runs)


if __name__ == "__main__":
    main()
