"""Benchmark: `xtal.simulate` on small cells against gemmi's structure-factor path (issue 16).

Run:  python benchmarks/bench_simulate_small.py [--repeat 7]

For each small reference structure (the CIFs in ../shared/reference/structures with ≤ 100 atoms in the
cell), the same pattern — λ = 0.71073 Å, 2–50° 2θ, step 0.01° (4 801 points), pseudo-Voigt FWHM 0.05°,
η 0.5, unpolarised — is made two ways in one process, alternating, best of ``--repeat``:

* gemmi path (baseline): `gemmi.read_small_structure`, the unique reflections
  (`gemmi.make_miller_array`, unique=True), |F|² from `StructureFactorCalculatorX.
  calculate_sf_from_small_structure` per reflection (gemmi's IT92 form factors and ADPs), the powder
  multiplicity from gemmi's point-group operators (Friedel pairs included), Lorentz-polarisation, and the
  profile by the same renderer xtal uses (`xtal.profiles.pseudo_voigt_profile`);
* xtal: `simulate(phase, 0.71073, ...)` on the `Phase` read once (as the library holds it), i.e. the
  reflection table (cached per phase is *not* used: ``reflections=None``) and the profile.

Printed: the times, the ratio xtal / gemmi (< 1: xtal faster), and the agreement of the two patterns
(max |Δ| / max after scaling to the same integral; form-factor tables differ slightly: IT92 in both,
xtal's own coefficients vs gemmi's).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import gemmi
import numpy as np

from xtal.profiles import pseudo_voigt_profile
from xtal.simulate import simulate
from xtal.structures import read_cif

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XTAL_SHARED_DIR", REPO.parent / "shared"))
STRUCTURES = SHARED / "reference" / "structures"
WAVELENGTH, RANGE, STEP, FWHM, ETA = 0.71073, (2.0, 50.0), 0.01, 0.05, 0.5


def gemmi_pattern(path: Path, x: np.ndarray) -> np.ndarray:
    """The baseline: gemmi structure factors of the unique reflections → powder pattern."""
    st = gemmi.read_small_structure(str(path))
    st.setup_cell_images()
    st.change_occupancies_to_crystallographic()   # gemmi sums over every operator: special positions
    sg = st.spacegroup
    ops = sg.operations()
    d_min = WAVELENGTH / (2 * np.sin(np.radians(RANGE[1] / 2)))
    hkl = np.asarray(gemmi.make_miller_array(st.cell, sg, d_min, 0, unique=True))
    calc = gemmi.StructureFactorCalculatorX(st.cell)
    f2 = np.array([abs(calc.calculate_sf_from_small_structure(st, list(h))) ** 2 for h in hkl.tolist()])
    rots = np.array([op.rot for op in ops.sym_ops]) // gemmi.Op.DEN
    rots = np.concatenate([rots, -rots])                      # Friedel: the Laue group
    eq = np.einsum("hj,rji->hri", hkl, rots)                  # h·R for every operator
    mult = np.array([len({tuple(v) for v in row}) for row in eq])
    d = np.array([st.cell.calculate_d(list(h)) for h in hkl.tolist()])
    tth = 2 * np.degrees(np.arcsin(WAVELENGTH / (2 * d)))
    th = np.radians(tth / 2)
    lp = (1 + np.cos(2 * th) ** 2) / (np.sin(th) ** 2 * np.cos(th))
    keep = (tth >= RANGE[0]) & (tth <= RANGE[1])
    return pseudo_voigt_profile(x, tth[keep], (f2 * mult * lp)[keep], FWHM, ETA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    x = np.arange(RANGE[0], RANGE[1] + STEP / 2, STEP)
    print(f"python {platform.python_version()}, numpy {np.__version__}, gemmi {gemmi.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, repeat {args.repeat} (best of)")
    print(f"pattern: {x.size} points {RANGE[0]}–{RANGE[1]}° 2θ, λ = {WAVELENGTH} Å, pV FWHM {FWHM}° η {ETA}")
    print("| structure | atoms in cell | reflections | gemmi path (ms) | xtal simulate (ms) | xtal / gemmi | "
          "max |Δ| / max |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for path in sorted(STRUCTURES.glob("*.cif")):
        phase = read_cif(path)
        n_atoms = len(phase.cell_atoms())
        if n_atoms > 100:
            continue
        try:
            y_ref = gemmi_pattern(path, x)
        except Exception as exc:  # noqa: BLE001 - a structure gemmi's small-structure path cannot take
            print(f"| {path.stem} | {n_atoms} | – | gemmi failed: {exc} | | | |")
            continue
        t_g, t_x = [], []
        for _ in range(args.repeat):
            t0 = time.process_time()
            gemmi_pattern(path, x)
            t1 = time.process_time()
            sim = simulate(phase, WAVELENGTH, RANGE, STEP, fwhm_deg=FWHM, eta=ETA, polarization="unpolarized")
            t2 = time.process_time()
            t_g.append(t1 - t0)
            t_x.append(t2 - t1)
        y = np.asarray(sim.intensity)
        agree = float(np.max(np.abs(y / y.sum() - y_ref / y_ref.sum())) / np.max(y_ref / y_ref.sum()))
        ratio = min(t_x) / min(t_g)
        worst = max(worst, ratio)
        print(f"| {path.stem} | {n_atoms} | {len(sim.reflections.hkl)} | {1e3 * min(t_g):.2f} | "
              f"{1e3 * min(t_x):.2f} | {ratio:.2f} | {agree:.1e} |")
    print(f"worst xtal / gemmi: {worst:.2f} (CPU time, process_time)")


if __name__ == "__main__":
    main()
