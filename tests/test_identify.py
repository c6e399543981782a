"""Phase identification (issue 5): synthetic mixtures, real measured patterns, honesty, bad input.

Synthetic mixtures come from `xtal.synth.synthetic_pattern` with bundled real structures; the
fitting defaults (FWHM from the data, η = 0.5, zero shift 0, unstrained cells, Chebyshev
background) all differ from the generated values.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import REF_PATTERNS, REF_STRUCTURES
from xtal import identify as I
from xtal.report.identify import plot_identification, render_identification_markdown
from xtal.errors import IdentificationError, MissingWavelengthError, WavelengthMismatchError, XtalError
from xtal.library import Library
from xtal.io import Pattern, read_pattern
from xtal.synth import synthetic_pattern

# phases synthetic mixtures are drawn from (the rest of the bundled library are decoys only)
POOL = ["k2b12h12", "mgb12h12_12h2o", "libh4_rt", "libh4_ht", "PbSO4", "NAC", "CaF2", "CuCr2O4",
        "CuO", "BiFeO3", "Bi2Fe4O9", "Bi25FeO39", "CaNi_PO3_4", "NiO", "alpha_li2b12h12"]
RADIATION = [("CuKa", (10.0, 80.0), 0.014), ("MoKa", (4.0, 40.0), 0.0072), (0.41, (2.0, 26.0), 0.0048)]


@pytest.fixture(scope="module")
def bundled():
    phases = Library.bundled().phases()
    return phases, {p.id: p for p in phases}


@pytest.fixture(scope="module")
def reference_library():
    """Every reference CIF (ids = file stems): the real patterns are identified against all."""
    return Library.from_directory(REF_STRUCTURES).phases()


def _case(seed: int, by_id: dict):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.choice([1, 2, 2, 3]))
    ids = [str(i) for i in rng.choice(POOL, n, replace=False)]
    while True:
        w = rng.dirichlet(np.ones(n) * 2)
        if w.min() >= 0.1:
            break
    lam, tth, step = RADIATION[seed % 3]
    kw = dict(wavelength_angstrom=lam, two_theta_range_deg=tth, step_deg=step,
              strain=list(rng.uniform(-0.015, 0.015, n)),
              zero_shift_deg=float(rng.uniform(-0.05, 0.05)),
              fwhm_deg=float(rng.uniform(0.05, 0.14)), eta=float(rng.uniform(0.2, 0.8)),
              background={"kind": "chebyshev", "coeffs": list(
                  rng.uniform(50, 300) * np.array([1, rng.uniform(-.4, .4), rng.uniform(-.2, .2)]))},
              counts_max=float(rng.uniform(5e3, 3e4)), seed=seed)
    return ids, w, synthetic_pattern([by_id[i] for i in ids], list(w), **kw), kw


# ----------------------------------------------------------------------------------------------
# synthetic mixtures
# ----------------------------------------------------------------------------------------------
def test_synthetic_mixtures_top1_and_weight_fractions(bundled):
    """≥ 95 % of 40 seeded random mixtures (1–3 phases, 3 wavelengths, strain ±1.5 %, zero shift,
    width, η, background, noise) give the right phase set first; weight-fraction MAE ≤ 3 wt%."""
    phases, by_id = bundled
    n_cases, right, errors, failures = 40, 0, [], []
    for seed in range(n_cases):
        ids, w, pat, _ = _case(seed, by_id)
        res = I.identify(pat, phases)
        best = res.best
        got = set(best.ids) if best else set()
        if got == set(ids):
            right += 1
            wf = {p.id: p.weight_fraction for p in best.phases}
            errors += [abs(wf[i] - wi) for i, wi in zip(ids, w)]
        else:
            failures.append((seed, sorted(ids), sorted(got)))
    assert right / n_cases >= 0.95, failures
    mae = float(np.mean(errors))
    assert mae <= 0.03, mae
    # the fractions are far better than the requirement on this noise level
    assert mae < 0.01


def test_fit_phases_refines_cell_per_axis_with_su(bundled):
    """Orthorhombic CuCr2O4 with b ≠ c (as at low T) and a cubic NiO: the per-axis refinement
    recovers the generated cell within a few s.u. (and the s.u. are small but not zero).
    (The library cell has b ≈ c; the generated split keeps b > c, as a refinement from a
    neighbouring frame would: a pseudo-tetragonal cell cannot tell b from c by itself.)"""
    _, by_id = bundled
    cu, nio = by_id["CuCr2O4"], by_id["NiO"]
    a, b, c = cu.cell.a, cu.cell.b, cu.cell.c
    true_cu = (a * 1.004, b * 1.006, c * 0.998, 90.0, 90.0, 90.0)
    true_ni = tuple(v * 1.002 for v in nio.cell.parameters[:3]) + (90.0, 90.0, 90.0)
    pat = synthetic_pattern([cu, nio], [0.7, 0.3], wavelength_angstrom=0.413263,
                            two_theta_range_deg=(3, 26), step_deg=0.005, cells=[true_cu, true_ni],
                            zero_shift_deg=0.01, fwhm_deg=0.03, eta=0.3, counts_max=2e4, seed=3)
    fit = I.fit_phases(pat, [cu, nio], exact_profile=True)   # zero background: exact tails
    pc = fit.phase("CuCr2O4")
    assert pc.crystal_system == "orthorhombic"
    for k in range(3):
        su = pc.cell_su[k]
        assert su is not None and 0 < su < 1e-3
        assert abs(pc.cell[k] - true_cu[k]) < max(5 * su, 2e-4), (k, pc.cell[k], true_cu[k], su)
    pn = fit.phase("NiO")
    assert pn.strain[0] == pytest.approx(0.002, abs=2e-4)
    assert pn.cell_su[0] is not None and pn.cell_su[1] == pn.cell_su[0]
    assert pc.weight_fraction == pytest.approx(0.7, abs=0.02)
    assert fit.zero_shift_deg == pytest.approx(0.01, abs=0.005)
    assert fit.rwp < 1.3 * fit.rexp
    assert pc.volume_su is not None and pc.volume_su > 0
    # the default (windowed) profile gives the same cell
    fast = I.fit_phases(pat, [cu, nio]).phase("CuCr2O4")
    for k in range(3):
        assert abs(fast.cell[k] - pc.cell[k]) < 3 * pc.cell_su[k]


def test_fit_phases_from_neighbour_converges_in_few_evaluations(bundled):
    """Series use: the next frame (slightly expanded) started from the previous result converges
    in a few iterations to the right lattice."""
    _, by_id = bundled
    cu, nio = by_id["CuCr2O4"], by_id["NiO"]
    kw = dict(wavelength_angstrom=0.413263, two_theta_range_deg=(6, 26), step_deg=0.005,
              fwhm_deg=0.03, eta=0.4, counts_max=2e4)
    p0 = synthetic_pattern([cu, nio], [0.8, 0.2], strain=[0.0, 0.0], seed=1, **kw)
    p1 = synthetic_pattern([cu, nio], [0.8, 0.2], strain=[0.0005, 0.0004], seed=2, **kw)
    f0 = I.fit_phases(p0, [cu, nio])
    f1 = I.fit_phases(p1, [cu, nio], start=f0)
    assert f1.phase("CuCr2O4").strain[0] == pytest.approx(0.0005, abs=1e-4)
    assert f1.phase("NiO").strain[0] == pytest.approx(0.0004, abs=1e-4)
    assert f1.nfev <= 25    # few evaluations from the neighbour; wall time is in benchmarks/


def test_model_phase_is_flagged(bundled):
    phases, by_id = bundled
    model = by_id["alpha_li2b12h12"]
    assert model.is_model
    pat = synthetic_pattern([model, by_id["NiO"]], [0.6, 0.4], wavelength_angstrom="MoKa",
                            two_theta_range_deg=(4, 40), step_deg=0.0072, strain=[0.01, 0.0],
                            fwhm_deg=0.09, seed=5)
    res = I.identify(pat, phases)
    assert set(res.best.ids) == {"alpha_li2b12h12", "NiO"}
    # every MODEL phase of any reported hypothesis is listed (e.g. the β-Li2B12H12 model as an
    # alternative), and nothing else
    assert "alpha_li2b12h12" in res.model_phases
    assert all(by_id[i].is_model for i in res.model_phases)
    d = res.to_json_dict()
    flagged = [p for p in d["hypotheses"][0]["phases"] if p["model"]]
    assert [p["id"] for p in flagged] == ["alpha_li2b12h12"]
    assert any("MODEL" in w for w in d["warnings"])
    assert "MODEL" in render_identification_markdown(res)
    assert res.confidence != "high"      # a model phase never gets high confidence
    # the answer rests on a MODEL structure: the Le Bail positions check ran beside it and finds
    # both cells required by their peak positions alone
    pos = d["positions"]
    assert pos is not None and pos["reason"] == "a MODEL structure"
    assert set(pos["phases"]) == {"alpha_li2b12h12", "NiO"}
    assert all(v["required"] and v["significance"] > 5 for v in pos["phases"].values())
    assert pos["rwp_le_bail"] < 0.5           # a Le Bail fit, not a failure (its engine's Rwp is
    # still above the structure fit's here — 14.6 against 7.8 %: docs/identify.md, Limits)
    assert "Peak positions alone (Le Bail)" in render_identification_markdown(res)


def test_amorphous_halo_estimate(bundled):
    phases, by_id = bundled
    kw = dict(wavelength_angstrom="CuKa", two_theta_range_deg=(10, 80), step_deg=0.014,
              fwhm_deg=0.1, seed=7, background={"kind": "chebyshev", "coeffs": [150, -30, 10]})
    plain = synthetic_pattern([by_id["PbSO4"]], [1.0], **kw)
    halo = synthetic_pattern([by_id["PbSO4"]], [1.0], halo={"d_angstrom": 4.0, "fwhm_deg": 6.0,
                                                             "fraction": 0.25}, **kw)
    r0 = I.identify(plain, phases)
    r1 = I.identify(halo, phases)
    assert r0.best.ids == ["PbSO4"] and r1.best.ids == ["PbSO4"]
    assert r0.amorphous_fraction_estimate is None and r0.amorphous["detected"] is False
    assert r0.amorphous["upper_limit"] < 0.05
    assert r1.amorphous["detected"] and r1.amorphous["significance"] > 8
    assert r1.amorphous_fraction_estimate == pytest.approx(0.25, abs=0.08)
    assert any("amorphous" in w for w in r1.warnings)


# ----------------------------------------------------------------------------------------------
# real measured patterns, every reference structure present as a decoy
# ----------------------------------------------------------------------------------------------
def _ids(res):
    return set(res.best.ids)


def test_real_pbso4_lab_cu_doublet(reference_library):
    pat = read_pattern(REF_PATTERNS / "lab_PbSO4_CuKa" / "PBSO4.XRA",
                       instrument=REF_PATTERNS / "lab_PbSO4_CuKa" / "INST_XRY.PRM")
    res = I.identify(pat, reference_library)
    assert res.radiation.is_doublet and res.radiation.weights[1] == pytest.approx(0.5)
    assert _ids(res) == {"PbSO4"}
    best = res.best
    assert best.rwp < 0.15
    p = best.phases[0]
    assert p.cell[0] == pytest.approx(8.480, abs=0.01)     # published a = 8.480 Å
    assert all(abs(e) < 0.003 for e in p.strain)
    assert res.confidence in ("high", "medium")
    # the second hypothesis is far worse: no near tie
    assert len(res.hypotheses) == 1 or res.hypotheses[1].delta_score > 100
    # the width varies with 2θ (Caglioti U refined) and the Kα2 line matters
    assert best.fit.profile["U"] > 0.005
    phase = [ph for ph in reference_library if ph.id == "PbSO4"]
    single = I.fit_phases(pat, phase, wavelength=1.5405)
    assert not single.radiation.is_doublet
    assert single.rwp > 1.2 * best.rwp      # 0.161 vs 0.111


def test_real_nac_synchrotron(reference_library):
    pat = read_pattern(REF_PATTERNS / "sync_NAC_11BM" / "11BM_NAC.fxye")
    assert pat.wavelength_angstrom == pytest.approx(0.413909)
    res = I.identify(pat, reference_library)
    assert not res.radiation.is_doublet
    ids = _ids(res)
    assert "NAC" in ids and ids <= {"NAC", "CaF2"}           # CaF2: a known minor impurity
    wf = {p.id: p.weight_fraction for p in res.best.phases}
    assert wf["NAC"] > 0.95
    assert res.best.rwp < 0.15


def test_real_nac_fits_better_as_a_polarised_synchrotron_beam(reference_library):
    """11-BM is a horizontally polarised beam: modelling it so (fraction 0.99) fits the real NAC
    pattern better than the unpolarised lab-beam LP (measured: Rwp 11.5 % → 10.8 %)."""
    pat = read_pattern(REF_PATTERNS / "sync_NAC_11BM" / "11BM_NAC.fxye")
    phases = [p for p in reference_library if p.id in ("NAC", "CaF2")]
    lab = I.fit_phases(pat, phases)
    sync = I.fit_phases(pat, phases, polarization="synchrotron")
    assert sync.rwp < lab.rwp - 0.003
    wf = {p.id: p.weight_fraction for p in sync.phases}
    assert wf["NAC"] > 0.95


def test_real_bifeo3_against_bi_fe_o_candidates(reference_library):
    pat = read_pattern(REF_PATTERNS / "lab_BiFeO3_CuKa" / "BiFeO3.xy", wavelength_angstrom="CuKa")
    res = I.identify(pat, reference_library)
    ids = _ids(res)
    assert "BiFeO3" in ids
    assert ids <= {"BiFeO3", "Bi25FeO39", "Bi2Fe4O9"}
    wf = {p.id: p.weight_fraction for p in res.best.phases}
    assert wf["BiFeO3"] > 0.6
    assert res.best.rwp < 0.10


def test_real_cani_po3_4_with_nio(reference_library):
    pat = read_pattern(REF_PATTERNS / "lab_CaNiPO34_CuKa" / "CaNi_PO3_4_800C.xy",
                       wavelength_angstrom="CuKa")
    res = I.identify(pat, reference_library)
    assert _ids(res) == {"CaNi_PO3_4_C2c", "NiO_Fm-3m"}
    wf = {p.id: p.weight_fraction for p in res.best.phases}
    assert 0.02 < wf["NiO_Fm-3m"] < 0.15
    assert res.best.rwp < 0.08
    mono = res.best.phases[[p.id for p in res.best.phases].index("CaNi_PO3_4_C2c")]
    assert mono.crystal_system == "monoclinic" and mono.cell_su[4] is not None   # β refined


def test_absent_phase_is_unexplained_not_forced(reference_library):
    """Without PbSO4 in the library no hypothesis gets good confidence and the strongest
    PbSO4 peaks are listed as unexplained."""
    pat = read_pattern(REF_PATTERNS / "lab_PbSO4_CuKa" / "PBSO4.XRA",
                       instrument=REF_PATTERNS / "lab_PbSO4_CuKa" / "INST_XRY.PRM")
    lib = [p for p in reference_library if p.id != "PbSO4"]
    res = I.identify(pat, lib)
    assert res.confidence in ("low", "none")
    assert all(h.explained_fraction < 0.7 for h in res.hypotheses)
    # strongest observed peaks of PbSO4 (Cu Kα1): 29.7, 20.8, 43.7, 26.7, 27.7°
    listed = [p["two_theta"] for p in res.unexplained_peaks]
    found = [t for t in (29.68, 20.81, 43.72, 26.71, 27.69) if any(abs(t - x) < 0.15 for x in listed)]
    assert len(found) >= 4, (found, listed[:10])
    for p in res.unexplained_peaks[:5]:
        assert p["d"] == pytest.approx(1.5405 / (2 * math.sin(math.radians(p["two_theta"]) / 2)),
                                       rel=0.01)


# ----------------------------------------------------------------------------------------------
# contract, wavelength, output
# ----------------------------------------------------------------------------------------------
def test_json_contract_and_ranking(bundled):
    phases, by_id = bundled
    pat = synthetic_pattern([by_id["CaF2"], by_id["CuO"]], [0.5, 0.5], wavelength_angstrom="CuKa",
                            two_theta_range_deg=(20, 80), step_deg=0.014, fwhm_deg=0.1, seed=11)
    res = I.identify(pat, phases)
    d = json.loads(json.dumps(res.to_json_dict()))
    for key in ("wavelength", "hypotheses", "unexplained_peaks", "amorphous_fraction_estimate",
                "confidence", "warnings", "model_phases"):
        assert key in d
    assert d["wavelength"] == pytest.approx(1.5406, abs=1e-3)
    scores = [h["score"] for h in d["hypotheses"]]
    assert scores == sorted(scores) and len(scores) >= 2
    for h in d["hypotheses"]:
        assert {"phases", "rwp", "score"} <= set(h)
        for p in h["phases"]:
            assert {"id", "scale", "weight_fraction", "strain"} <= set(p)
            assert p["scale"] >= 0
        assert sum(p["weight_fraction"] for p in h["phases"]) == pytest.approx(1.0)
    assert {p["id"] for p in d["hypotheses"][0]["phases"]} == {"CaF2", "CuO"}
    assert d["confidence"] in ("high", "medium", "low", "none")


def test_wavelength_resolution_and_mismatch():
    x = np.linspace(10, 80, 500)
    pat = Pattern(x=x, intensity=np.ones_like(x), wavelength_angstrom=1.5406)
    r = I.radiation_from(pat, "CuKa")
    assert r.is_doublet and r.wavelengths[1] == pytest.approx(1.5444, abs=1e-3)
    assert r.weights[1] == pytest.approx(0.5, abs=0.05)
    assert not I.radiation_from(pat, 1.5406).is_doublet
    assert I.radiation_from(pat).primary == pytest.approx(1.5406)
    with pytest.raises(WavelengthMismatchError):
        I.radiation_from(pat, "MoKa")
    nolam = Pattern(x=x, intensity=np.ones_like(x))
    with pytest.raises(MissingWavelengthError):
        I.radiation_from(nolam)
    assert I.radiation_from(nolam, 0.413909).primary == pytest.approx(0.413909)
    assert I.radiation_from(nolam, "MoKa").primary == pytest.approx(0.7093, abs=1e-3)


def test_markdown_and_plot(bundled, tmp_path):
    phases, by_id = bundled
    pat = synthetic_pattern([by_id["PbSO4"], by_id["NiO"]], [0.8, 0.2], wavelength_angstrom="CuKa",
                            two_theta_range_deg=(15, 70), step_deg=0.014, fwhm_deg=0.1, seed=2)
    lib = [p for p in phases if p.id != "NiO"]          # NiO missing: its peaks are unexplained
    res = I.identify(pat, lib)
    md = render_identification_markdown(res)
    assert "# Phase identification" in md and "Unexplained peaks" in md and "PbSO4" in md
    assert any(abs(p["two_theta"] - 43.3) < 0.3 for p in res.unexplained_peaks)   # NiO (200)
    out = plot_identification(res, pat, tmp_path / "id.png")
    data = (tmp_path / "id.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    assert str(out).endswith("id.png")


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors(bundled):
    phases, by_id = bundled
    x = np.arange(10, 80, 0.02)
    rng = np.random.default_rng(0)
    flat = Pattern(x=x, intensity=rng.poisson(200, x.size).astype(float), wavelength_angstrom=1.5406)
    with pytest.raises(I.NoPeaksError):
        I.identify(flat, phases)
    zeros = Pattern(x=x, intensity=np.zeros_like(x), wavelength_angstrom=1.5406)
    with pytest.raises(I.NoSignalError):
        I.identify(zeros, phases)
    good = synthetic_pattern([by_id["CaF2"]], [1.0], wavelength_angstrom=1.5406,
                             two_theta_range_deg=(20, 80), step_deg=0.02, seed=1)
    with pytest.raises(I.EmptyLibraryError):
        I.identify(good, [])
    with pytest.raises(I.EmptyLibraryError):
        I.fit_phases(good, [])
    nolam = Pattern(x=good.x, intensity=good.intensity)
    with pytest.raises(MissingWavelengthError):
        I.identify(nolam, phases)
    with pytest.raises(IdentificationError):
        I.identify(good, [by_id["CaF2"], by_id["CaF2"]])       # duplicate ids
    for exc in (I.NoPeaksError, I.NoSignalError, I.EmptyLibraryError):
        assert issubclass(exc, IdentificationError) and issubclass(exc, XtalError)


def test_pybaselines_background_and_q_axis(bundled):
    """background="arpls"/"snip" (pybaselines, fixed) finds the same phases; a pattern on the Q
    axis without λ in the file is identified with the λ given by the caller."""
    phases, by_id = bundled
    pat = synthetic_pattern([by_id["CuO"], by_id["CaF2"]], [0.6, 0.4], wavelength_angstrom=0.7093,
                            two_theta_range_deg=(5, 40), step_deg=0.007, fwhm_deg=0.08, seed=4,
                            strain=[0.005, -0.004],
                            background={"kind": "chebyshev", "coeffs": [400, -120, 60]})
    for bg in ("arpls", "snip"):
        res = I.identify(pat, phases, background=bg)
        assert set(res.best.ids) == {"CuO", "CaF2"}, bg
        wf = {p.id: p.weight_fraction for p in res.best.phases}
        assert wf["CuO"] == pytest.approx(0.6, abs=0.05), bg
        assert res.best.fit.background_kind == "fixed"
    q = pat.q_inv_angstrom()
    qpat = Pattern(x=q, intensity=pat.intensity, sigma=pat.sigma, axis="q_inv_angstrom")
    res = I.identify(qpat, phases, wavelength=0.7093)
    assert set(res.best.ids) == {"CuO", "CaF2"}
    assert res.best.fit.x_deg[0] == pytest.approx(5.0, abs=1e-6)


def test_near_tie_alternatives_are_explicit(bundled):
    """The same structure under two ids (e.g. one phase from two sources) cannot be told apart:
    both single-phase hypotheses are reported, the second flagged as a near tie, no 'high'
    confidence, and the pair is not reported as a two-phase mixture."""
    from xtal.structures import read_cif

    phases, by_id = bundled
    twin = read_cif(REF_STRUCTURES / "NiO_Fm-3m.cif", phase_id="NiO_second_source")
    pat = synthetic_pattern([by_id["NiO"]], [1.0], wavelength_angstrom="CuKa",
                            two_theta_range_deg=(30, 100), step_deg=0.014, fwhm_deg=0.1, seed=8)
    res = I.identify(pat, phases + [twin])
    top = [h.ids for h in res.hypotheses[:2]]
    assert sorted(map(tuple, top)) == [("NiO",), ("NiO_second_source",)]
    assert res.hypotheses[1].near_tie and abs(res.hypotheses[1].delta_score) < 1.0
    assert res.confidence != "high"
    assert all(len(h.ids) == 1 for h in res.hypotheses if "NiO" in h.ids)
    assert res.to_json_dict()["hypotheses"][1]["near_tie"] is True


def test_blas_threads_restored_after_fit(bundled):
    """The fit runs with one OpenBLAS thread and gives the previous setting back."""
    _, by_id = bundled
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    pat = synthetic_pattern([by_id["NiO"]], [1.0], wavelength_angstrom="CuKa",
                            two_theta_range_deg=(30, 80), step_deg=0.02, seed=1)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        I.fit_phases(pat, [by_id["NiO"]])
        assert blas_threads() == before and before


def test_synchrotron_polarization_matters_for_weight_fractions():
    """A synchrotron pattern (99 % polarised) over a wide 2θ range: the fit with the stated
    polarisation recovers the recipe and fits better than one assuming an unpolarised lab beam
    (at 0.41 Å the LP difference is ≤ 6 % below 20° 2θ, so the fractions move little)."""
    lib = Library.bundled()
    phases = [lib.phase("NAC"), lib.phase("PbSO4")]
    pat = synthetic_pattern(phases, [0.6, 0.4], wavelength_angstrom=0.413909,
                            two_theta_range_deg=(3.0, 60.0), step_deg=0.005, fwhm_deg=0.02,
                            polarization="synchrotron", counts_max=2e5, seed=3)
    right = I.fit_phases(pat, phases, polarization="synchrotron")
    wrong = I.fit_phases(pat, phases)
    w_right = {p.id: p.weight_fraction for p in right.phases}
    w_wrong = {p.id: p.weight_fraction for p in wrong.phases}
    assert w_right["NAC"] == pytest.approx(0.6, abs=0.01)
    assert right.chi2 < 0.95 * wrong.chi2
    assert w_wrong["NAC"] == pytest.approx(0.6, abs=0.02)
    rad = I.radiation_from(pat, None, "synchrotron").to_json()
    assert "synchrotron" in rad["polarization"] and "0.99" in rad["polarization"]


def test_per_phase_size_broadening_is_chosen_for_the_broad_phase(bundled):
    """Two phases with different crystallite sizes (simulated independently with xtal.simulate:
    PbSO4 sharp, FWHM 0.08°; CuO broad, FWHM 0.30°, Poisson noise): the common profile cannot
    describe both, the search adds size broadening to CuO only, and its FWHM at the strongest
    reflection comes out near the simulated 0.30°."""
    from xtal.io import Pattern
    from xtal.simulate import simulate

    _, by_id = bundled
    kw = dict(eta=0.5)
    sharp = simulate(by_id["PbSO4"], 1.5406, (15.0, 80.0), 0.01, fwhm_deg=0.08, scale=0.6, **kw)
    broad = simulate(by_id["CuO"], 1.5406, (15.0, 80.0), 0.01, fwhm_deg=0.30, scale=1.0, **kw)
    mean = 4000.0 * (sharp.intensity / sharp.intensity.max()) + 2500.0 * (
        broad.intensity / broad.intensity.max()) + 150.0
    y = np.random.default_rng(11).poisson(mean).astype(float)
    pat = Pattern(x=sharp.two_theta_deg, intensity=y, sigma=np.sqrt(np.maximum(y, 1.0)),
                  wavelength_angstrom=1.5406, source="synthetic PbSO4 (sharp) + CuO (broad)")
    res = I.identify(pat, [by_id[i] for i in ("PbSO4", "CuO", "NiO", "CaF2", "NAC")])
    assert set(res.best.ids) == {"PbSO4", "CuO"}
    cuo, pbso4 = res.best.fit.phase("CuO"), res.best.fit.phase("PbSO4")
    assert pbso4.size_broadening is None and pbso4.size_broadening_deg == 0.0
    assert cuo.size_broadening is not None and cuo.size_broadening["scherrer_size_angstrom"] > 0
    assert cuo.fwhm_deg == pytest.approx(0.30, rel=0.3)
    assert pbso4.fwhm_deg == pytest.approx(0.08, rel=0.5)
    d = res.to_json_dict()["hypotheses"][0]["phases"]
    assert any(p["size_broadening"] for p in d)
