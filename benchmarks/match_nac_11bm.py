"""Does a simulated pattern match real data?  NAC (Na2Ca3Al2F14) standard, APS 11-BM, λ = 0.413909 Å.

Run:  python benchmarks/match_nac_11bm.py [--max-2theta 25] [--plot fit.png]

The structure (GSAS-II CIF with Uij) is NOT refined. Fitted: scale, 6-term Chebyshev background
(linear least squares), zero shift, TCH Gaussian W and Lorentzian X widths, an isotropic cell factor.
Prints Rwp and the largest position mismatch of the measured maxima. Quoted in docs/simulation.md;
`tests/test_simulate.py::test_simulation_matches_measured_synchrotron_pattern_of_nac` asserts it.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import find_peaks

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XTAL_SHARED_DIR", REPO.parent / "shared"))

from xtal.io import read_pattern  # noqa: E402
from xtal.beam import Polarization  # noqa: E402
from xtal.simulate import pseudo_voigt_profile, reflection_table, tch_fwhm_eta  # noqa: E402
from xtal.structures import read_cif  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-2theta", type=float, default=2.5)
    ap.add_argument("--max-2theta", type=float, default=25.0)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args(argv)
    pat = read_pattern(SHARED / "reference" / "patterns" / "sync_NAC_11BM" / "11BM_NAC.fxye")
    lam = pat.wavelength_angstrom
    m = (pat.x >= args.min_2theta) & (pat.x <= args.max_2theta)
    x, y = pat.x[m], pat.intensity[m]
    sig = pat.sigma[m] if pat.sigma is not None else np.sqrt(np.maximum(y, 1.0))
    phase = read_cif(SHARED / "reference" / "structures" / "NAC.cif")
    rt = reflection_table(phase, lam, (max(0.5, args.min_2theta - 1), args.max_2theta + 1),
                          polarization=Polarization.synchrotron())
    t = (x - x.mean()) / (x.max() - x.min()) * 2
    bkg = np.stack([np.polynomial.chebyshev.chebval(t, [0] * k + [1]) for k in range(6)], axis=1)

    def model(p):
        zero, lw, gw, cf = p
        r = rt.at(tuple(np.array(phase.cell.parameters) * [cf, cf, cf, 1, 1, 1]))
        fw, eta = tch_fwhm_eta(r.two_theta_deg, 0.0, 0.0, gw ** 2, abs(lw), 0.0)
        prof = pseudo_voigt_profile(x, r.two_theta_deg + zero, r.intensity, fw, eta)
        a = np.column_stack([prof, bkg]) / sig[:, None]
        coef, *_ = np.linalg.lstsq(a, y / sig, rcond=None)
        return a @ coef * sig, r

    sol = least_squares(lambda p: (model(p)[0] - y) / sig, [0.0, 0.002, 0.003, 1.0],
                        x_scale=[1e-3, 1e-3, 1e-3, 1e-4])
    calc, r = model(sol.x)
    rwp = math.sqrt(np.sum(((y - calc) / sig) ** 2) / np.sum((y / sig) ** 2))
    pk, _ = find_peaks(y, prominence=0.05 * y.max())
    near = np.array([np.min(np.abs(r.two_theta_deg + sol.x[0] - v)) for v in x[pk]])
    print(f"NAC 11-BM, λ = {lam} Å, 2θ {args.min_2theta}–{args.max_2theta}°, {len(x)} points")
    print(f"fitted: zero {sol.x[0]:+.5f}°, Lorentzian X {abs(sol.x[1]):.5f}°, Gaussian W^1/2 {sol.x[2]:.5f}°, "
          f"cell factor {sol.x[3]:.6f}")
    print(f"Rwp = {rwp:.1%}; measured maxima (> 5 % prominence): {len(pk)}; within 0.002° of a reflection: "
          f"{int((near < 0.002).sum())}; unexplained: {[round(float(v), 3) for v in x[pk][near >= 0.002]]}")
    if args.plot:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 4), dpi=150, layout="constrained")
        ax = fig.add_subplot(111)
        ax.plot(x, y, "k.", ms=1.5, label="measured (11-BM)")
        ax.plot(x, calc, "r-", lw=0.7, label=f"xtal simulation, Rwp {rwp:.1%}")
        ax.plot(x, y - calc - 0.1 * y.max(), "b-", lw=0.5, label="difference")
        ax.set_xlabel("2θ (°)")
        ax.set_ylabel("Intensity (counts)")
        ax.set_title(f"NAC standard, λ = {lam} Å")
        ax.legend(frameon=False)
        fig.savefig(args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
