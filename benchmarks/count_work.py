"""Work counts that do not depend on the machine's speed: phase evaluations of the whole-pattern fit,
with and without derivatives, for one workload.

    python benchmarks/count_work.py identify|real|cucr2o4|synthetic
    PYTHONPATH=/path/to/old/worktree python benchmarks/count_work.py cucr2o4     # another commit
    OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/count_work.py identify
        # instructions executed ("Collected"), deterministic with one BLAS thread (OpenBLAS's
        # idle threads spin, and valgrind counts the spinning: one commit's synthetic workload
        # counted 43.7e9 with its threads, 20.3e9 with one); ~50x slower

Workloads: ``identify`` (the bench pattern of `bench_identify.py` against the bundled library),
``real`` (the five real patterns of `tests/real_cases.py`), ``cucr2o4`` (the real CuCr2O4 11-BM
series, 17 frames, with CuO), ``synthetic`` (the first 250 frames of `bench_series.py`'s series,
8 phases; generate it first with that script). On this VM timings drift by up to 2× within
minutes; counts of the expensive operation (a phase evaluation with derivatives costs ~2× one
without) compare commits exactly.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))               # after PYTHONPATH: another commit's xtal wins

import xtal  # noqa: E402
from xtal.identify.fit import WholePatternFit  # noqa: E402


def run(workload: str) -> None:
    from xtal.library import Library

    if workload == "identify":
        from bench_identify import make_pattern

        from xtal import identify as I
        lib = Library.bundled(user_dir=False)
        I.identify(make_pattern(lib), lib.phases())
    elif workload == "real":
        from tests.real_cases import CASES

        from xtal import identify as I
        phases = Library.bundled(user_dir=False).phases()
        for read, _, _, pol in CASES.values():
            I.identify(read(), phases, polarization=pol)
    elif workload == "cucr2o4":
        from tests.conftest import REF_SERIES, REF_STRUCTURES

        from xtal import series
        from xtal.io import read_series
        from xtal.structures import read_cif
        phases = [read_cif(REF_STRUCTURES / "CuCr2O4.cif", phase_id="CuCr2O4"),
                  read_cif(REF_STRUCTURES / "CuO.cif", phase_id="CuO")]
        series.analyse_series(read_series(REF_SERIES / "CuCr2O4_11BM_6-289K"), phases,
                              progress=False, two_theta_range=(5.0, 25.0))
    else:
        import xarray as xr
        from bench_series import PHASES8

        from xtal import series
        path = Path("/tmp/xtal_bench_series/series_1000x4000.nc")
        if not path.exists():
            sys.exit(f"{path} missing: run benchmarks/bench_series.py --frames 1000 first")
        da = xr.open_dataarray(path)
        series.analyse_series(da.isel({da.dims[0]: slice(0, 250)}).load(),
                              Library.bundled().phases(PHASES8), progress=False, workers=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["identify", "real", "cucr2o4", "synthetic"])
    args = ap.parse_args()
    counts: collections.Counter = collections.Counter()
    original = WholePatternFit.phase_eval

    def counting(self, m, q, g, deriv=False, po_r=None):
        counts["with derivatives" if deriv else "values only"] += 1
        return original(self, m, q, g, deriv, po_r)

    WholePatternFit.phase_eval = counting
    run(args.workload)
    print(f"{args.workload} ({Path(xtal.__file__).parent}): phase evaluations "
          f"{counts['with derivatives']} with derivatives, {counts['values only']} values only")


if __name__ == "__main__":
    main()
