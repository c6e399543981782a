"""Benchmark of `xtal.heap.keep_freed_memory` (glibc malloc keeps freed memory for reuse).

Run from the repository root:

    python benchmarks/bench_heap.py [--runs 2] [--cases PbSO4 NAC BiFeO3 LaB6 bench5000 series250]

Each case runs in a fresh process, malloc's defaults (``XTAL_MALLOC=default``) and the tuned
malloc (the child calls `keep_freed_memory` first, as `xtal.cli.main` does) alternating, ``--runs``
times: CPU seconds of the work, minor page faults and peak RSS of the process, and a check that
both give the same answer.  Cases: `identify` of the real patterns of ``tests/real_cases.py``
against the whole bundled library; ``bench5000`` the 5 000-point synthetic pattern of
`bench_identify.py`; ``series250`` `analyse_series` of the 250-frame synthetic series of
`bench_series.py` (8 phases; generated once into ``--dir``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r}); sys.path.insert(0, {repo!r} + "/benchmarks")
if {tuned!r}:
    from xtal.heap import keep_freed_memory
    assert keep_freed_memory()
from xtal.library import Library
case = {case!r}
if case == "series250":
    import xarray as xr
    from xtal import series
    from bench_series import PHASES8
    phases = Library.bundled(user_dir=False).phases(PHASES8)
    da = xr.open_dataarray({series_path!r})
    t = time.process_time()
    res = series.analyse_series(da, phases, progress=False, workers=1)
    cpu = time.process_time() - t
    answer = [len(res.events), round(float(res.dataset["rwp"].sum()), 9)]
else:
    from xtal import identify as I
    if case == "bench5000":
        from bench_identify import make_pattern
        pat, pol = make_pattern(Library.bundled(user_dir=False)), None
    else:
        from tests.real_cases import CASES
        reader, _truth, _allowed, pol = CASES[case]
        pat = reader()
    phases = Library.bundled(user_dir=False).phases()
    t = time.process_time()
    res = I.identify(pat, phases, polarization=pol)
    cpu = time.process_time() - t
    answer = [(p.id, round(p.weight_fraction, 9)) for p in res.best.phases] if res.best else []
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"cpu": cpu, "faults": ru.ru_minflt, "rss_mb": ru.ru_maxrss / 1024, "answer": answer}}))
"""


def child(case: str, tuned: bool, series_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") and k.endswith("_"))}
    env["XTAL_MALLOC"] = "tuned" if tuned else "default"
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), tuned=tuned, case=case,
                                                             series_path=str(series_path))],
                         capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=["PbSO4", "NAC", "BiFeO3", "LaB6", "bench5000",
                                                   "series250"])
    ap.add_argument("--dir", default="/tmp/xtal_bench_series")
    a = ap.parse_args(argv)
    series_path = Path(a.dir) / "series_250x4000.nc"
    if "series250" in a.cases and not series_path.exists():
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_series import generate
        series_path.parent.mkdir(parents=True, exist_ok=True)
        generate(series_path, 250, 4000)
    rows: dict[tuple[str, bool], list[dict]] = {}
    for _ in range(a.runs):
        for case in a.cases:
            for tuned in (False, True):
                r = child(case, tuned, series_path)
                rows.setdefault((case, tuned), []).append(r)
                print(f"  {case:10s} {'kept' if tuned else 'default':8s} CPU {r['cpu']:6.2f} s, "
                      f"{r['faults']:8d} faults, peak RSS {r['rss_mb']:5.0f} MB", file=sys.stderr)
    print("| case | CPU default → kept (s) | ratio | page faults default → kept | peak RSS (MB) | same answer |")
    print("|---|---|---|---|---|---|")
    for case in a.cases:
        d, k = rows[(case, False)], rows[(case, True)]
        cd, ck = statistics.median(r["cpu"] for r in d), statistics.median(r["cpu"] for r in k)
        fd, fk = statistics.median(r["faults"] for r in d), statistics.median(r["faults"] for r in k)
        md, mk = max(r["rss_mb"] for r in d), max(r["rss_mb"] for r in k)
        same = all(r["answer"] == d[0]["answer"] for r in d + k)
        print(f"| {case} | {cd:.2f} → {ck:.2f} | {cd / ck:.2f}× | {fd:,.0f} → {fk:,.0f} | "
              f"{md:.0f} → {mk:.0f} | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
