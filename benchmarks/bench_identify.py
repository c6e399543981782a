"""Benchmark of `xtal.identify.identify`: one pattern (5000 points) against a 12-phase library.

Run from the repository root:

    python benchmarks/bench_identify.py [--repeat 7]

The pattern is a labelled synthetic 3-phase mixture (xtal.synth; Cu Kα1/Kα2, 2θ 10–80°, 5000
points, strained cells, zero shift, Chebyshev background, Poisson noise). The library is 12
bundled phases (the 3 present + 9 decoys). The first call includes building the reflection
tables of the 12 phases (cached per phase afterwards); the median is over the following calls.
Also timed: `fit_phases` started from a neighbouring result (the per-frame cost of a series).
"""
from __future__ import annotations

import argparse
import statistics
import time

from xtal import identify as I
from xtal.library import Library
from xtal.synth import synthetic_pattern

LIBRARY_IDS = ["PbSO4", "NiO", "CuO", "CaF2", "NAC", "BiFeO3", "Bi2Fe4O9", "Bi25FeO39",
               "CuCr2O4", "k2b12h12", "libh4_rt", "libh4_ht"]
TRUE = (["PbSO4", "CuO", "k2b12h12"], [0.5, 0.3, 0.2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    lib = Library.bundled()
    phases = lib.phases(LIBRARY_IDS)
    by_id = {p.id: p for p in phases}
    ids, wf = TRUE
    pat = synthetic_pattern([by_id[i] for i in ids], wf, wavelength_angstrom="CuKa",
                            two_theta_range_deg=(10.0, 80.0), step_deg=0.014, strain=[0.004, -0.006, 0.01],
                            zero_shift_deg=0.03, fwhm_deg=0.09, eta=0.6,
                            background={"kind": "chebyshev", "coeffs": [200, -40, 15]},
                            counts_max=2e4, seed=42)
    print(f"pattern: {pat.x.size} points, library: {len(phases)} phases, truth: "
          + ", ".join(f"{i} {w:.0%}" for i, w in zip(ids, wf)))
    I.clear_cache()
    t = time.perf_counter()
    res = I.identify(pat, phases)
    cold = time.perf_counter() - t
    times, cpu = [], []
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        res = I.identify(pat, phases)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    best = res.best
    print(f"identify: first call (incl. reflection tables) {cold:.3f} s; "
          f"median of {args.repeat} {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}); CPU median {statistics.median(cpu):.3f} s; "
          f"{res.n_fits} fits")
    print("best: " + " + ".join(f"{p.id} {p.weight_fraction:.1%}" for p in best.phases)
          + f"; Rwp {best.rwp:.2%}; confidence {res.confidence}")
    # series use: the same phases, started from the previous result
    fit = best.fit
    sub = [by_id[i] for i in best.ids]
    tt = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        I.fit_phases(pat, sub, start=fit)
        tt.append(time.perf_counter() - t)
    print(f"fit_phases(start=previous), {len(sub)} phases, {pat.x.size} points: "
          f"median {statistics.median(tt) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
