"""xtal.synth: synthetic patterns and series follow the stated recipe and are labelled synthetic."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xtal.errors import SimulationError
from xtal.structures import read_cif

from conftest import BUNDLED_STRUCTURES

synth = pytest.importorskip("xtal.synth")
pytest.importorskip("xtal.simulate")

REF = BUNDLED_STRUCTURES / "reference"


@pytest.fixture(scope="module")
def cucr2o4():
    return read_cif(REF / "CuCr2O4.cif", phase_id="CuCr2O4")


@pytest.fixture(scope="module")
def cuo():
    return read_cif(REF / "CuO.cif", phase_id="CuO")


@pytest.fixture(scope="module")
def k2b12h12():
    return read_cif(REF / "K2B12H12_Fm-3.cif", phase_id="k2b12h12")


@pytest.fixture(scope="module")
def libh4():
    return (read_cif(REF / "LiBH4_Pnma_RT.cif", phase_id="libh4_rt"),
            read_cif(REF / "LiBH4_P63mc_HT.cif", phase_id="libh4_ht"))


def _pattern(phases, wf, **kw):
    base = dict(wavelength_angstrom=0.71073, two_theta_range_deg=(8.0, 30.0), step_deg=0.005,
                fwhm_deg=0.05, noise=False)
    base.update(kw)
    return synth.synthetic_pattern(phases, wf, **base)


def _strongest_peak_2theta(phase, lam, lo, hi):
    from xtal.simulate import reflection_table

    t = reflection_table(phase, wavelength_angstrom=lam, two_theta_range_deg=(lo, hi))
    i = int(np.argmax(np.asarray(t.intensity)))
    return float(np.asarray(t.two_theta_deg)[i])


def test_pattern_is_labelled_synthetic_with_recipe(k2b12h12):
    p = _pattern([k2b12h12], [1.0])
    assert p.meta["synthetic"] is True
    prog = p.meta["program"]
    assert prog["synthetic"] is True and "SYNTHETIC" in prog["label"]
    assert prog["phases"][0]["id"] == "k2b12h12"
    assert prog["wavelength_angstrom"] == pytest.approx(0.71073)
    json.dumps(prog)  # JSON-able
    assert p.axis == "two_theta_deg" and p.wavelength_angstrom == pytest.approx(0.71073)
    # noise-free: maximum equals counts_max (no background)
    assert p.intensity.max() == pytest.approx(1e4, rel=1e-9)


def test_peak_position_strain_and_zero_shift(k2b12h12):
    t0 = _strongest_peak_2theta(k2b12h12, 0.71073, 8.0, 30.0)
    p = _pattern([k2b12h12], [1.0])
    assert p.x[np.argmax(p.intensity)] == pytest.approx(t0, abs=0.006)
    # +1 % isotropic strain moves the peak to the Bragg angle of d·1.01, plus the zero shift
    d = 0.71073 / (2 * math.sin(math.radians(t0 / 2)))
    t1 = 2 * math.degrees(math.asin(0.71073 / (2 * d * 1.01)))
    p2 = _pattern([k2b12h12], [1.0], strain=[0.01], zero_shift_deg=0.05)
    assert p2.x[np.argmax(p2.intensity)] == pytest.approx(t1 + 0.05, abs=0.006)
    assert p2.meta["program"]["phases"][0]["cell"][0] == pytest.approx(10.610 * 1.01, rel=1e-4)


def test_hill_howard_weight_fractions_recovered_by_linear_decomposition(cucr2o4, cuo):
    """The mixture equals S1·P1 + S2·P2 of the single-phase patterns with W ∝ S·(ZM)·V."""
    kw = dict(wavelength_angstrom=0.413263, two_theta_range_deg=(4.0, 20.0), step_deg=0.004,
              fwhm_deg=0.02)
    mix = _pattern([cucr2o4, cuo], [0.7, 0.3], **kw)
    p1 = _pattern([cucr2o4], [1.0], **kw)
    p2 = _pattern([cuo], [1.0], **kw)
    A = np.stack([p1.intensity, p2.intensity], axis=1)
    c, *_ = np.linalg.lstsq(A, mix.intensity, rcond=None)
    s = [c[0] * p1.meta["program"]["phases"][0]["scale"], c[1] * p2.meta["program"]["phases"][0]["scale"]]
    zmv = [cucr2o4.cell_mass_dalton * cucr2o4.volume, cuo.cell_mass_dalton * cuo.volume]
    w = np.array(s) * np.array(zmv)
    w /= w.sum()
    assert w == pytest.approx([0.7, 0.3], abs=1e-6)
    # the recipe's own scales obey the same convention
    ph = mix.meta["program"]["phases"]
    w2 = np.array([ph[i]["scale"] * zmv[i] for i in range(2)])
    assert w2 / w2.sum() == pytest.approx([0.7, 0.3], abs=1e-9)


def test_kalpha_doublet(k2b12h12):
    lam1, lam2 = 1.540593, 1.544414
    p = _pattern([k2b12h12], [1.0], wavelength_angstrom=(lam1, lam2, 0.5),
                 two_theta_range_deg=(60.0, 80.0), step_deg=0.002, fwhm_deg=0.03)
    assert p.wavelength2_angstrom == pytest.approx(lam2) and p.ka2_ratio == pytest.approx(0.5)
    t1 = _strongest_peak_2theta(k2b12h12, lam1, 60.0, 80.0)
    d = lam1 / (2 * math.sin(math.radians(t1 / 2)))
    t2 = 2 * math.degrees(math.asin(lam2 / (2 * d)))
    assert t2 - t1 > 0.15  # resolved at this angle
    i1 = p.intensity[np.argmin(abs(p.x - t1))]
    i2 = p.intensity[np.argmin(abs(p.x - t2))]
    assert i2 / i1 == pytest.approx(0.5, abs=0.05)
    # tube names resolve to the same doublet family
    q = _pattern([k2b12h12], [1.0], wavelength_angstrom="CuKa", two_theta_range_deg=(60.0, 80.0))
    assert q.wavelength2_angstrom is not None and q.ka2_ratio == pytest.approx(0.5)


def test_halo_fraction_and_background(k2b12h12):
    kw = dict(two_theta_range_deg=(2.0, 60.0), step_deg=0.01)
    pure = _pattern([k2b12h12], [1.0], **kw)
    halo = _pattern([k2b12h12], [1.0], halo={"d_angstrom": 6.4, "fwhm_deg": 2.0, "fraction": 0.3}, **kw)
    # the halo's centre sits at 2θ(d = 6.4 Å)
    centre = 2 * math.degrees(math.asin(0.71073 / (2 * 6.4)))
    # same Bragg scale up to the normalisation: compare the shape of the two
    k = halo.meta["program"]["phases"][0]["scale"] / pure.meta["program"]["phases"][0]["scale"]
    h = halo.intensity - k * pure.intensity
    assert abs(halo.x[np.argmax(h)] - centre) < 0.05
    frac = h.sum() / halo.intensity.sum()
    assert frac == pytest.approx(0.3, abs=0.01)
    bg = _pattern([k2b12h12], [1.0], background={"kind": "constant", "level": 123.0}, **kw)
    assert np.min(bg.intensity - k * 0 - pure.intensity) == pytest.approx(123.0, abs=1e-6)
    only_halo = _pattern([], [], halo={"d_angstrom": 6.4, "fwhm_deg": 3.0, "fraction": 1.0}, **kw)
    assert only_halo.meta["program"]["amorphous_fraction"] == 1.0
    assert abs(only_halo.x[np.argmax(only_halo.intensity)] - centre) < 0.05


def test_noise_is_poisson_and_seeded(k2b12h12):
    a = _pattern([k2b12h12], [1.0], noise=True, seed=3)
    b = _pattern([k2b12h12], [1.0], noise=True, seed=3)
    c = _pattern([k2b12h12], [1.0], noise=True, seed=4)
    mu = _pattern([k2b12h12], [1.0], noise=False)
    assert np.array_equal(a.intensity, b.intensity) and not np.array_equal(a.intensity, c.intensity)
    assert np.all(a.intensity == np.round(a.intensity))
    big = mu.intensity > 1000
    z = (a.intensity[big] - mu.intensity[big]) / np.sqrt(mu.intensity[big])
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.15
    assert a.sigma == pytest.approx(np.sqrt(np.maximum(a.intensity, 1.0)))


@pytest.mark.parametrize("kwargs", [
    dict(weight_fractions=[-0.1]),
    dict(weight_fractions=[0.5, 0.5]),
    dict(weight_fractions=[1.0], wavelength_angstrom=-1.0),
    dict(weight_fractions=[1.0], wavelength_angstrom="Unobtainium"),
    dict(weight_fractions=[1.0], two_theta_range_deg=(30.0, 10.0)),
    dict(weight_fractions=[0.0]),
])
def test_bad_recipes_raise(k2b12h12, kwargs):
    wf = kwargs.pop("weight_fractions")
    with pytest.raises(SimulationError):
        _pattern([k2b12h12], wf, **kwargs)


# ----------------------------------------------------------------------------------------------
# series
# ----------------------------------------------------------------------------------------------
def _program(libh4, k2b12h12, **kw):
    rt, ht = libh4
    base = dict(
        segments=[synth.Segment("ramp", to_c=150.0, step_c=5.0, frame_time_s=30.0),
                  synth.Segment("hold", duration_s=300.0, frame_time_s=30.0),
                  synth.Segment("cool", to_c=50.0, step_c=5.0, frame_time_s=30.0)],
        phases=[synth.PhaseStage(rt, disappear_c=110.0, alpha_per_c=3e-5, reversible=True),
                synth.PhaseStage(ht, appear_c=110.0, alpha_per_c=4e-5, t0_c=110.0),
                synth.PhaseStage(k2b12h12, weight=0.5, disappear_c=140.0, fade_out_c=20.0,
                                 alpha_per_c=1e-5, reversible=False)],
        halos=[synth.HaloStage(d_angstrom=6.4, fwhm_deg=3.0, appear_c=120.0, fade_in_c=20.0,
                               weight=0.5)],
        wavelength_angstrom=0.71073, two_theta_range_deg=(8.0, 24.0), step_deg=0.01,
        fwhm_deg=0.06, title="test programme")
    base.update(kw)
    return synth.SeriesProgram(**base)


def test_series_frames_coords_and_label(libh4, k2b12h12):
    prog = _program(libh4, k2b12h12)
    da = synth.synthetic_series(prog)
    fr = prog.frames()
    n_ramp, n_hold, n_cool = 25, 10, 20
    assert da.dims == ("frame", "two_theta_deg")
    assert da.sizes["frame"] == n_ramp + n_hold + n_cool + 1
    T = da["temperature_c"].values
    assert T[0] == 25.0 and T[n_ramp] == 150.0 and T[n_ramp + n_hold - 1] == 150.0 and T[-1] == 50.0
    assert np.all(np.diff(da["time_s"].values) == 30.0)
    assert list(np.unique(da["program_segment"].values)) == ["0:ramp", "1:hold", "2:cool"]
    seg = da["segment"].values
    assert seg[5] == "heating" and seg[n_ramp + 3] == "isothermal" and seg[-3] == "cooling"
    assert da.attrs["synthetic"] == 1 and "SYNTHETIC" in da.attrs["title"]
    prog_json = json.loads(da.attrs["program"])
    assert prog_json["synthetic"] is True
    assert [p["phase"]["id"] for p in prog_json["phases"]] == ["libh4_rt", "libh4_ht", "k2b12h12"]
    assert prog_json["phases"][1]["alpha_per_c"] == 4e-5
    assert np.array_equal(fr["temperature_c"], T)


def test_series_truth_windows_reversibility(libh4, k2b12h12):
    prog = _program(libh4, k2b12h12)
    tr = prog.truth()
    T = tr["temperature_c"]
    heating = np.arange(len(T)) < 25
    # RT LiBH4 below 110 °C on heating, back on cooling (reversible)
    assert np.all((tr["wf:libh4_rt"] > 0) == (T < 110.0))
    # K2B12H12 decomposes (irreversible): gone after 140 °C and does not come back on cooling
    assert np.all(tr["wf:k2b12h12"][~heating] == 0)
    # halo grows 120→140 °C and stays
    assert tr["amorphous_fraction"][-1] > 0.2
    tot = sum(tr[f"wf:{i}"] for i in ("libh4_rt", "libh4_ht", "k2b12h12")) + tr["amorphous_fraction"]
    assert tot == pytest.approx(np.ones_like(T))
    # a(T) = a0 (1 + alpha (T - T0))
    a0 = libh4[1].cell.a
    assert tr["cell:libh4_ht"][25][0] == pytest.approx(a0 * (1 + 4e-5 * 40.0))
    ev = prog.expected_events()
    kinds = {(e["phase"], e["kind"]) for e in ev}
    assert ("libh4_rt", "disappears") in kinds and ("libh4_rt", "appears") in kinds
    assert ("k2b12h12", "disappears") in kinds and ("amorphous", "amorphous") in kinds


def test_series_lattice_follows_programme(libh4, k2b12h12):
    """The strongest HT-LiBH4 peak moves as programmed between 110 and 150 °C (noise-free)."""
    rt, ht = libh4
    prog = synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=150.0, step_c=40.0)],
        phases=[synth.PhaseStage(ht, alpha_per_c=1e-4, t0_c=110.0)],
        start_c=110.0, wavelength_angstrom=0.71073, two_theta_range_deg=(8.0, 24.0),
        step_deg=0.001, fwhm_deg=0.05, noise=False, background=None)
    da = synth.synthetic_series(prog)
    t0 = _strongest_peak_2theta(ht, 0.71073, 8.0, 24.0)
    tops = [float(da.two_theta_deg[int(np.argmax(da.values[i]))]) for i in range(2)]
    assert tops[0] == pytest.approx(t0, abs=0.002)
    d = 0.71073 / (2 * math.sin(math.radians(t0 / 2)))
    t1 = 2 * math.degrees(math.asin(0.71073 / (2 * d * (1 + 1e-4 * 40.0))))
    assert tops[1] == pytest.approx(t1, abs=0.002)


def test_iter_frames_equal_series_frames(libh4, k2b12h12):
    prog = _program(libh4, k2b12h12)
    da = synth.synthetic_series(prog, start=20, stop=24)
    frames = list(synth.iter_synthetic_frames(prog, start=20, stop=24))
    assert [i for i, _ in frames] == [20, 21, 22, 23]
    for (i, y), row in zip(frames, da.values):
        assert np.array_equal(y, row)


def test_bad_programmes_raise(libh4, k2b12h12):
    with pytest.raises(SimulationError):
        _program(libh4, k2b12h12, segments=[synth.Segment("cool", to_c=200.0)]).frames()
    with pytest.raises(SimulationError):
        _program(libh4, k2b12h12, segments=[synth.Segment("hold")]).frames()
    with pytest.raises(SimulationError):
        _program(libh4, k2b12h12, segments=[synth.Segment("anneal", to_c=10.0)]).frames()
    rt, _ = libh4
    empty = synth.SeriesProgram(segments=[synth.Segment("ramp", to_c=100.0, step_c=10.0)],
                                phases=[synth.PhaseStage(rt, disappear_c=50.0)])
    with pytest.raises(SimulationError, match="no phase"):
        empty.truth()
