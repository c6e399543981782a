"""Benchmark of the fit's profile kernels on calls recorded from real fits (issue 16).

Run from the repository root:

    python benchmarks/bench_profiles.py --baseline DIR [--source demo|series] [--repeat 7]

1. Records every ``sample``-th call of `xtal.profiles._window` (the fit's windowed pseudo-Voigt
   with its derivatives) made while `identify` runs on the demo's three bundled patterns
   (``--source demo``) or while `analyse_series` runs on the demo's SYNTHETIC series
   (``--source series``).
2. Replays them, in this one process, through this tree's `xtal.profiles` and through the
   `xtal/profiles.py` of the baseline tree DIR (e.g. a ``git archive`` of an earlier commit),
   alternating, ``--repeat`` times; CPU time (``time.process_time``) per replay, median and min.
3. Does the same for `pseudo_voigt_profile` (the exact profile of the final refinement) on the
   recorded calls whose grid is uniform.
4. Checks that both give the same arrays (max |Δ| / max |value| over every output).

Alternating in one process is the fair comparison on a shared machine: both versions see the
same load, caches and memory.
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def record(source: str, sample: int) -> list:
    import xtal.profiles as P

    rec, count = [], [0]
    orig = P._window

    def spy(x, centres, areas, fwhm, eta, **k):
        count[0] += 1
        if count[0] % sample == 0:
            rec.append((x, centres, areas, fwhm, eta, k))
        return orig(x, centres, areas, fwhm, eta, **k)

    P._window = spy
    try:
        from xtal.library import Library
        lib = Library.bundled(user_dir=False)
        if source == "demo":
            from xtal.demo import demo_patterns
            from xtal.identify import identify
            phases = lib.phases()
            for dp in demo_patterns():
                identify(dp.read(), phases, polarization=dp.polarization)
        else:
            from xtal.demo import demo_series_path
            from xtal.io import read_series
            from xtal.series import analyse_series
            ids = [e.id for e in lib if e.group == "dodecaborate" and e.filled]
            analyse_series(read_series(demo_series_path()), lib.phases(ids), progress=False)
    finally:
        P._window = orig
    return rec


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def max_rel_diff(a, b) -> float:
    worst = 0.0
    for key in a:
        pairs = zip(a[key], b[key]) if isinstance(a[key], list) else [(a[key], b[key])]
        for u, v in pairs:
            scale = max(float(np.max(np.abs(u))), 1e-300)
            worst = max(worst, float(np.max(np.abs(u - v))) / scale)
    return worst


def replay(mods: dict, fn, calls: list, repeat: int) -> dict[str, list[float]]:
    times = {k: [] for k in mods}
    for _ in range(repeat):
        for k, m in mods.items():
            c = time.process_time()
            for args in calls:
                fn(m, args)
            times[k].append(time.process_time() - c)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, required=True, help="tree with the old xtal/profiles.py")
    ap.add_argument("--source", choices=["demo", "series"], default="demo")
    ap.add_argument("--sample", type=int, default=7, help="record every n-th call")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    import xtal.profiles as P

    calls = record(args.source, args.sample)
    base = load(args.baseline / "xtal" / "profiles.py", "baseline_profiles")
    mods = {"baseline": base, "this": P}
    n_el = 0
    for x, c, a, f, eta, k in calls:
        half = (P.WINDOW_FWHM if k["values"] else 4.0) * f
        n_el += int((np.searchsorted(x, c + half) - np.searchsorted(x, c - half)).sum())
    print(f"{len(calls)} recorded _window calls ({args.source}; {n_el / max(len(calls), 1):.0f} window "
          f"points per call on average), {args.repeat} alternating replays; python {sys.version.split()[0]}")
    w = replay(mods, lambda m, a: m._window(a[0], a[1], a[2], a[3], a[4], **a[5]), calls, args.repeat)
    diff = max(max_rel_diff(base._window(*c[:5], **c[5]), P._window(*c[:5], **c[5])) for c in calls)
    med = {k: statistics.median(v) for k, v in w.items()}
    print(f"_window: baseline median {med['baseline']:.3f} s (min {min(w['baseline']):.3f}), this "
          f"{med['this']:.3f} s (min {min(w['this']):.3f}) -> {med['this'] / med['baseline']:.2f}x; "
          f"max |Δ|/max {diff:.1e}")
    exact = [c[:5] for c in calls if P._is_uniform(c[0])]
    if exact:
        e = replay(mods, lambda m, a: m.pseudo_voigt_profile(*a), exact, args.repeat)
        same = all(np.array_equal(base.pseudo_voigt_profile(*a), P.pseudo_voigt_profile(*a)) for a in exact)
        med = {k: statistics.median(v) for k, v in e.items()}
        print(f"pseudo_voigt_profile ({len(exact)} calls): baseline {med['baseline']:.3f} s, this "
              f"{med['this']:.3f} s -> {med['this'] / med['baseline']:.2f}x; identical: {same}")


if __name__ == "__main__":
    random.seed(0)
    main()
