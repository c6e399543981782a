#!/usr/bin/env python3
"""Generate the bundled SYNTHETIC example data in ``patterns/synthetic/`` (fixed seeds, reproducible).

Everything written here is a SIMULATION made with `xtal.synth` from a stated recipe — never a
measurement.  The recipe travels with the data: in the ``#`` header of the ``.xye`` file (human-readable
lines plus the machine-readable ``meta`` JSON that `xtal.io.read_pattern` reads back) and in the
``program`` attribute of the netCDF series.

Outputs
-------
``mixture_aLi2B12H12-LiBH4-K2B12H12_MoKa.xye``
    α-Li2B12H12 (MODEL) 50 wt% + LiBH4 (RT, Pnma) 30 wt% + K2B12H12 (Fm-3) 20 wt%, λ = 0.71073 Å (Mo Kα
    weighted mean, single line), 2θ 3–40°, small lattice strains and zero shift, Chebyshev background,
    Poisson noise (seed 20260).
``series_Li2B12H12-DME-like_MoKa.nc``
    A Li2B12H12·n DME-like heating programme, 30 → 420 °C at 5 °C per frame (79 frames × 1801 points,
    float32): a STAND-IN solvate phase (the real hydrated dodecaborate [Mg(H2O)6][B12H12]·6H2O, because
    the Li2B12H12·1.5 DME CIF is an empty library slot) fades out between 140 and 150 °C while α-Li2B12H12
    (MODEL) grows in; α → β-Li2B12H12 (MODEL) at 310 °C with a +8.7 % cell-volume jump; β fades out
    between 350 and 370 °C while the γ-Li2B12H12−x halo at d = 6.4 Å (inside the published 5.85–7.00 Å)
    grows in from 345 °C.

Usage::

    python scripts/make_example_data.py            # writes into patterns/synthetic/ (replaces the files)
    python scripts/make_example_data.py --out DIR  # somewhere else (the tests do this to check reproducibility)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MIXTURE_FILE = "mixture_aLi2B12H12-LiBH4-K2B12H12_MoKa.xye"
SERIES_FILE = "series_Li2B12H12-DME-like_MoKa.nc"

#: the mixture recipe (Hill–Howard weight fractions of the crystalline phases)
MIXTURE = {
    "phases": ["alpha_li2b12h12", "libh4_rt", "k2b12h12"],
    "weight_fractions": [0.50, 0.30, 0.20],
    "strain": [0.002, -0.001, 0.0015],
    "wavelength_angstrom": 0.71073,
    "two_theta_range_deg": (3.0, 40.0),
    "step_deg": 0.01,
    "zero_shift_deg": 0.01,
    "fwhm_deg": 0.07,
    "eta": 0.5,
    "background": {"kind": "chebyshev", "coeffs": [400.0, -120.0, 40.0]},
    "counts_max": 2e4,
    "seed": 20260,
}

SERIES_SEED = 20261
STAND_IN_NOTE = ("STAND-IN: [Mg(H2O)6][B12H12]·6H2O (library id mgb12h12_12h2o, a real refined hydrated "
                 "dodecaborate) plays the Li2B12H12·1.5 DME solvate, whose CIF (CCDC 2489735–2489739) is "
                 "an empty library slot")


def mixture_pattern(lib):
    """The synthetic mixture as a `Pattern` (labelled synthetic; recipe in meta["program"])."""
    from xtal.synth import synthetic_pattern

    m = MIXTURE
    phases = [lib.phase(i) for i in m["phases"]]
    return synthetic_pattern(phases, m["weight_fractions"], wavelength_angstrom=m["wavelength_angstrom"],
                             two_theta_range_deg=m["two_theta_range_deg"], step_deg=m["step_deg"],
                             strain=m["strain"], zero_shift_deg=m["zero_shift_deg"], fwhm_deg=m["fwhm_deg"],
                             eta=m["eta"], background=m["background"], counts_max=m["counts_max"],
                             noise=True, seed=m["seed"])


def series_program(lib):
    """The Li2B12H12·n DME-like heating programme (`xtal.synth.SeriesProgram`)."""
    from xtal import synth

    alpha = lib.phase("alpha_li2b12h12")
    alpha_c = 3.0e-5            # linear expansion per °C (illustrative)
    # β at 310 °C: the α cell at 310 °C with an 8.7 % larger volume (Paskevicius et al. 2013)
    a310 = alpha.cell.a * (1 + alpha_c * (310.0 - 25.0)) * 1.087 ** (1 / 3)
    return synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=420.0, step_c=5.0, frame_time_s=60.0)],
        start_c=30.0,
        phases=[
            synth.PhaseStage(lib.phase("mgb12h12_12h2o"), disappear_c=150.0, fade_out_c=10.0,
                             alpha_per_c=4e-5, reversible=False,
                             stand_in_for="Li2B12H12·1.5 DME (solvate CIF not available: empty slot "
                                          "li2b12h12_1.5dme)"),
            synth.PhaseStage(alpha, appear_c=140.0, fade_in_c=10.0, disappear_c=310.0,
                             alpha_per_c=alpha_c, t0_c=25.0, reversible=False),
            synth.PhaseStage(lib.phase("beta_li2b12h12"), appear_c=310.0, disappear_c=370.0,
                             fade_out_c=20.0, alpha_per_c=4e-5, t0_c=310.0, reversible=False,
                             cell0=(a310, a310, a310, 90.0, 90.0, 90.0)),
        ],
        halos=[synth.HaloStage(name="gamma-Li2B12H12-x (H-poor, nanocrystalline)", d_angstrom=6.4,
                               fwhm_deg=3.0, appear_c=345.0, fade_in_c=25.0)],
        wavelength_angstrom=0.71073, two_theta_range_deg=(3.0, 30.0), step_deg=0.015, fwhm_deg=0.08,
        counts_max=2e4, background={"kind": "chebyshev", "coeffs": [300.0, -80.0, 30.0]},
        seed=SERIES_SEED,
        title="Li2B12H12·n DME-like heating programme (stand-in solvate → α → β → γ halo)")


def _relative_cif_paths(program: dict) -> dict:
    """Store CIF paths relative to the repository (no machine-specific absolute paths in bundled data)."""
    for ph in program.get("phases", []):
        info = ph.get("phase", ph)           # series stages nest the phase label under "phase"
        cif = info.get("cif")
        if cif:
            try:
                info["cif"] = Path(cif).resolve().relative_to(REPO).as_posix()
            except ValueError:
                info["cif"] = Path(cif).name
    return program


def _mixture_header(pattern) -> list[str]:
    rec = pattern.meta["program"]
    lines = [
        "SYNTHETIC powder pattern -- NOT a measurement.",
        "Generated by scripts/make_example_data.py with xtal.synth.synthetic_pattern "
        f"(fixed seed {rec['seed']}).",
        "Recipe (Hill-Howard weight fractions of the crystalline phases):",
    ]
    for p in rec["phases"]:
        tag = " -- MODEL structure, not a refinement" if p["model"] else ""
        lines.append(f"  {p['id']} ({p['name']}) {100 * p['weight_fraction']:.1f} wt%, cell a = "
                     f"{p['cell'][0]:.4f} A{tag}")
    lines += [
        f"Radiation Mo K-alpha weighted mean, single line {rec['wavelength_angstrom']} A; "
        f"2theta {rec['two_theta_range_deg'][0]}-{rec['two_theta_range_deg'][1]} deg, step {rec['step_deg']} deg.",
        f"Profile pseudo-Voigt FWHM {rec['fwhm_deg']} deg, eta {rec['eta']}; zero shift "
        f"{rec['zero_shift_deg']} deg; Chebyshev background {rec['background']['coeffs']}; Poisson noise.",
        "The machine-readable recipe is the meta JSON line below (meta.program).",
    ]
    return lines


def write_mixture(lib, out_dir: Path) -> Path:
    from xtal.io import write_pattern
    from xtal.util import atomic_write_text

    pat = mixture_pattern(lib)
    _relative_cif_paths(pat.meta["program"])
    target = out_dir / MIXTURE_FILE
    with tempfile.TemporaryDirectory() as td:
        tmp = write_pattern(pat, Path(td) / MIXTURE_FILE)
        body = tmp.read_text(encoding="utf-8")
    text = "".join(f"# {h}\n" for h in _mixture_header(pat)) + body
    return atomic_write_text(target, text)


def write_series_file(lib, out_dir: Path) -> Path:
    import numpy as np

    from xtal.io import write_series
    from xtal.synth import synthetic_series

    prog = series_program(lib)
    da = synthetic_series(prog, dtype=np.float32)
    da.attrs["program"] = json.dumps(_relative_cif_paths(json.loads(da.attrs["program"])))
    da.attrs["stand_in"] = STAND_IN_NOTE
    da.attrs["models"] = "alpha_li2b12h12, beta_li2b12h12 are structural MODELS (not refinements)"
    da.attrs["generated_by"] = f"scripts/make_example_data.py (xtal.synth.synthetic_series, seed {SERIES_SEED})"
    da.attrs["expected_events"] = json.dumps(prog.expected_events())
    return write_series(da, out_dir / SERIES_FILE, overwrite=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "patterns" / "synthetic",
                    help="output directory (default: patterns/synthetic/ of the repository)")
    args = ap.parse_args(argv)
    from xtal.library import Library

    lib = Library.bundled(user_dir=False)      # the bundled structures only, never the user's CIFs
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (write_mixture(lib, args.out), write_series_file(lib, args.out)):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
