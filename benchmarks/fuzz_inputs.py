"""Long fuzz run of the input entry points (tests/test_fuzz.py with many more examples).

    python benchmarks/fuzz_inputs.py                # 10,000 mutated CIFs + 2,000 mutated patterns
    python benchmarks/fuzz_inputs.py --cif 20000 --patterns 0

Runs the hypothesis tests of tests/test_fuzz.py with ``XTAL_FUZZ_EXAMPLES`` raised and random
(not derandomised) generation, prints hypothesis' statistics (cases run, time per case, failures)
and the wall time.  Results are recorded by hand in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = {"cif": "tests/test_fuzz.py::test_mutated_cifs_raise_only_xtal_errors_and_never_yield_impossible_phases",
         "patterns": "tests/test_fuzz.py::test_mutated_patterns_raise_only_xtal_errors"}


def run(test: str, examples: int) -> int:
    env = dict(os.environ, XTAL_FUZZ_EXAMPLES=str(examples), XTAL_FUZZ_RANDOM="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--hypothesis-show-statistics", test], cwd=REPO, env=env,
                          capture_output=True, text=True)
    dt = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    keep = [ln for ln in out.splitlines() if "passing" in ln or "Typical runtimes" in ln
            or "Stopped because" in ln or " passed" in ln or " failed" in ln or "Falsifying" in ln]
    print(f"== {test}  ({examples} examples requested, {dt:.0f} s wall)")
    print("\n".join(keep[-40:]))
    if proc.returncode:
        print(out[-6000:])
    return proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cif", type=int, default=10_000, help="mutated CIFs (0: skip)")
    ap.add_argument("--patterns", type=int, default=2_000, help="mutated pattern files (0: skip)")
    a = ap.parse_args()
    rc = 0
    if a.cif:
        rc |= run(TESTS["cif"], a.cif)
    if a.patterns:
        rc |= run(TESTS["patterns"], a.patterns)
    return rc


if __name__ == "__main__":
    sys.exit(main())
