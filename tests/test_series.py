"""xtal.series: phase map of thermal series — real CuCr2O4 series and programmed synthetic series.

The synthetic programmes use real bundled structures as STAND-INS for the solvates (whose CIFs are
not available) and the α/β-Li2B12H12 MODELS; every number asserted below is compared with what the
programme states (``SeriesProgram.truth()`` / ``expected_events()``).
"""
from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from conftest import REF_SERIES, REF_STRUCTURES

from xtal import series, synth
from xtal.report.series import render_series_markdown, write_series_result
from xtal.errors import SeriesError
from xtal.library import Library
from xtal.structures import read_cif

CANDIDATES = ["mgb12h12_12h2o", "alpha_li2b12h12", "beta_li2b12h12", "k2b12h12", "libh4_rt", "libh4_ht"]


@pytest.fixture(scope="module")
def lib():
    return Library.bundled()


def _common(**kw):
    d = dict(wavelength_angstrom=0.71073, two_theta_range_deg=(4.0, 30.0), step_deg=0.01,
             fwhm_deg=0.06, counts_max=2e4,
             background={"kind": "chebyshev", "coeffs": [300.0, -80.0, 30.0]})
    d.update(kw)
    return d


def prog_dodecaborate(lib):
    """Stand-in solvate → α (150 °C) → β (310 °C, +8.7 % V) → γ-like halo (d = 6.4 Å), 5 °C steps."""
    alpha = lib.phase("alpha_li2b12h12")
    a310 = alpha.cell.a * (1 + 3e-5 * (310.0 - 25.0)) * 1.087 ** (1 / 3)
    return synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=400.0, step_c=5.0, frame_time_s=60.0)],
        start_c=100.0,
        phases=[synth.PhaseStage(lib.phase("mgb12h12_12h2o"), disappear_c=150.0, fade_out_c=10.0,
                                 alpha_per_c=4e-5, reversible=False,
                                 stand_in_for="Li2B12H12·1.5 DME (solvate CIF not available)"),
                synth.PhaseStage(alpha, appear_c=140.0, fade_in_c=10.0, disappear_c=310.0,
                                 alpha_per_c=3e-5, t0_c=25.0, reversible=False),
                synth.PhaseStage(lib.phase("beta_li2b12h12"), appear_c=310.0, disappear_c=370.0,
                                 fade_out_c=30.0, alpha_per_c=4e-5, t0_c=310.0, reversible=False,
                                 cell0=(a310, a310, a310, 90.0, 90.0, 90.0))],
        halos=[synth.HaloStage(name="gamma-Li2B12H12-x", d_angstrom=6.4, fwhm_deg=3.0, appear_c=340.0,
                               fade_in_c=30.0)],
        seed=1, title="stand-in solvate -> alpha -> beta -> gamma halo", **_common())


def prog_mixed_cooling(lib):
    """LiBH4 RT→HT mixed-phase window 100–120 °C, K2B12H12 spectator, heat to 200 °C, cool to 40 °C."""
    return synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=200.0, step_c=4.0, frame_time_s=60.0),
                  synth.Segment("cool", to_c=40.0, step_c=4.0, frame_time_s=60.0)],
        start_c=40.0,
        phases=[synth.PhaseStage(lib.phase("libh4_rt"), disappear_c=120.0, fade_out_c=20.0,
                                 alpha_per_c=5e-5),
                synth.PhaseStage(lib.phase("libh4_ht"), appear_c=100.0, fade_in_c=20.0,
                                 alpha_per_c=6e-5, t0_c=135.0),
                synth.PhaseStage(lib.phase("k2b12h12"), weight=0.6, alpha_per_c=2e-5)],
        seed=2, title="mixed-phase window and cooling", **_common())


def prog_hold(lib):
    """Stand-in diglyme solvate heated to 179 °C and held 40 min: amorphises during the hold."""
    return synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=179.0, step_c=3.0, frame_time_s=60.0),
                  synth.Segment("hold", duration_s=2400.0, frame_time_s=60.0),
                  synth.Segment("cool", to_c=100.0, step_c=5.0, frame_time_s=60.0)],
        start_c=110.0,
        phases=[synth.PhaseStage(lib.phase("k2b12h12"), disappear_s=3000.0, fade_out_s=300.0,
                                 alpha_per_c=3e-5,
                                 stand_in_for="Li2B12H12·2 diglyme (solvate CIF not available)"),
                synth.PhaseStage(lib.phase("libh4_ht"), weight=0.3, alpha_per_c=6e-5, t0_c=135.0)],
        halos=[synth.HaloStage(name="amorphous solvate", d_angstrom=7.5, fwhm_deg=4.0,
                               appear_s=2700.0, fade_in_s=300.0)],
        seed=3, title="isothermal hold at 179 C with amorphisation", **_common())


PROGRAMMES = {"dodecaborate": prog_dodecaborate, "mixed_cooling": prog_mixed_cooling, "hold": prog_hold}


@pytest.fixture(scope="module")
def analysed(lib):
    """Each programme generated and analysed once (sequential chain)."""
    out = {}
    phases = lib.phases(CANDIDATES)
    for name, make in PROGRAMMES.items():
        prog = make(lib)
        da = synth.synthetic_series(prog)
        out[name] = (prog, da, series.analyse_series(da, phases, progress=False))
    return out


# ----------------------------------------------------------------------------------------------
# presence model
# ----------------------------------------------------------------------------------------------
def test_viterbi_suppresses_blips_and_keeps_sustained_changes():
    e = np.array([-20.0] * 10 + [12.0] + [-20.0] * 10 + [30.0] * 10)
    p = series.viterbi_presence(e, switch_penalty=8.0)
    assert not p[10]                       # one frame with evidence 12 < 2×8: a blip
    assert not p[:21].any() and p[21:].all()
    e[10] = 17.0                           # > 2×penalty: the data demand it
    assert series.viterbi_presence(e, 8.0)[10]
    # a last-frame blip needs the same evidence as an interior one
    assert not series.viterbi_presence(np.array([-20.0] * 5 + [12.0]), 8.0)[-1]
    assert series.viterbi_presence(np.array([-20.0] * 5 + [17.0]), 8.0)[-1]
    # unknown frames (0) between evidence do not create switches
    q = series.viterbi_presence(np.array([50.0, 0, 0, 0, 50.0]), 8.0)
    assert q.all()


# ----------------------------------------------------------------------------------------------
# event location
# ----------------------------------------------------------------------------------------------
class _Frames:
    """What `events._locate_crossing` reads of a result: temperatures and times per frame."""

    def __init__(self, temperature_c):
        self.temperature_c = np.asarray(temperature_c, dtype=float)
        self.time_s = 10.0 * np.arange(self.temperature_c.size)


def _fade(n_frames, seed):
    """An abundance that fades linearly from 1 to 0 over frames 80–160 of `n_frames` (absent from
    frame 160), with noise of 2 % of its level: the half-level crossing is at frame 120."""
    i = np.arange(n_frames, dtype=float)
    w = np.clip((160.0 - i) / 80.0, 0.0, 1.0)
    w = w + np.random.default_rng(seed).normal(0.0, 0.02, n_frames)
    w[160:] = 0.0
    return w, np.full(n_frames, 0.02)


def test_gradual_disappearance_located_through_noise_with_its_sigma():
    """Walking from the last present frame, noise that dips on the way must not stop the search:
    the crossing comes from the frames of the whole fade, and σ from their scatter."""
    from xtal.series.events import _locate_crossing

    for seed in range(6):
        w, su = _fade(200, seed)
        kidx = np.arange(200)
        res = _Frames(100.0 + 0.2 * kidx)          # a fine ramp: 0.2 °C per frame
        loc = _locate_crossing(res, kidx, w, su, 160, 159, float(np.max(w[:160])))
        true_pos = 80.0 + 80.0 * (1 - 0.5 * np.max(w[:160]))  # where the line reaches half the max
        assert abs(loc["frame_position"] - true_pos) < 2.0, (seed, loc)
        sigma_frames = loc["sigma_C"] / 0.2
        assert 0.29 < sigma_frames < 2.0
        assert abs(loc["frame_position"] - true_pos) < 4 * sigma_frames
        assert loc["T_C"] == pytest.approx(100.0 + 0.2 * loc["frame_position"], abs=1e-3)
        assert not loc["isothermal"]               # 0.2 °C per frame is a ramp, not a hold


def test_sharp_change_interpolated_between_frames_and_hold_located_by_time():
    from xtal.series.events import _locate_crossing

    w = np.r_[np.zeros(50), np.ones(50)]
    kidx = np.arange(100)
    ramp = _locate_crossing(_Frames(20.0 + 2.0 * kidx), kidx, w, np.zeros(100), 49, 50, 1.0)
    assert ramp["frame_position"] == pytest.approx(49.5)
    assert ramp["T_C"] == pytest.approx(119.0)
    assert ramp["sigma_C"] == pytest.approx(2.0 / math.sqrt(12), abs=1e-4)
    assert not ramp["isothermal"]
    held = 179.0 + np.random.default_rng(1).normal(0.0, 0.05, 100)
    hold = _locate_crossing(_Frames(held), kidx, w, np.zeros(100), 49, 50, 1.0)
    assert hold["isothermal"] and hold["time_s"] == pytest.approx(495.0)


# ----------------------------------------------------------------------------------------------
# real series: CuCr2O4 (+ CuO), APS 11-BM, 6.8–288.7 K
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cucr2o4_result():
    from xtal.io import read_series

    da = read_series(REF_SERIES / "CuCr2O4_11BM_6-289K")
    phases = [read_cif(REF_STRUCTURES / "CuCr2O4.cif", phase_id="CuCr2O4"),
              read_cif(REF_STRUCTURES / "CuO.cif", phase_id="CuO")]
    return series.analyse_series(da, phases, progress=False, two_theta_range=(5.0, 25.0))


def test_cucr2o4_both_phases_tracked_in_every_frame(cucr2o4_result):
    res = cucr2o4_result
    assert res.n_frames == 17 and not res.skipped
    assert res.present.all(), "CuCr2O4 and CuO are in every frame of this series"
    assert res.wavelength_angstrom == pytest.approx(0.413263)
    wf = res.values("wf", "CuO")
    # CuO is a minor impurity (≈ 0.7 wt%) tracked at every temperature
    assert np.all((wf > 0.003) & (wf < 0.015))
    assert not [e for e in res.events if e["kind"] in ("appears", "disappears")]


def test_cucr2o4_lattice_low_and_high_temperature(cucr2o4_result):
    res = cucr2o4_result
    T_K = res.temperature_c + 273.15
    a, b, c = (res.values(k, "CuCr2O4") for k in "abc")
    # 6.8 K: the tutorial CIF (a 7.712699, b 8.543299, c 8.536427 Å, refined from these data) is reproduced
    assert T_K[0] == pytest.approx(6.778, abs=0.01)
    assert a[0] == pytest.approx(7.7127, abs=0.001)
    assert max(b[0], c[0]) == pytest.approx(8.5433, abs=0.001)
    assert min(b[0], c[0]) == pytest.approx(8.5364, abs=0.001)
    # orthorhombic: b ≠ c.  The CIF has 0.0069 Å; our fits give 0.0055–0.0069 Å depending on which
    # minimum the profile model reaches (the lower Rwp gives the smaller splitting)
    assert 0.0050 < abs(b[0] - c[0]) < 0.0075
    # 288.7 K: tetragonal-like, b = c within 0.001 Å (7× less than at 6.8 K), a has grown ≈ 0.85 %
    assert abs(b[-1] - c[-1]) < 0.001
    assert a[-1] / a[0] - 1 == pytest.approx(0.0085, abs=0.0010)
    # the volume grows with T and its s.u. are small
    v = res.values("vol", "CuCr2O4")
    assert v[-1] > v[5] > v[0]
    assert np.nanmax(res.values("vol_su", "CuCr2O4")) < 0.1


def test_cucr2o4_b_c_merging_located(cucr2o4_result):
    """The orthorhombic (Fddd, b ≠ c) → tetragonal-like (b = c) change of CuCr2O4.

    In this CIF setting a (7.71 Å) is the short, unique axis and b ≈ c ≈ √2·a_tetragonal; b and c
    merge on heating.  Suchomel et al., PRB 86, 054406 (2012) find CuCr2O4 tetragonal (I41/amd) at
    room temperature and orthorhombic (Fddd) below its magnetic ordering temperature (≈ 125–130 K;
    ferrimagnetic T_C = 122 K from magnetisation).  The series brackets the merging between the
    111.4 K frame (b − c = 0.0017 Å, > 10 σ) and the 122.7 K frame (unresolved).
    """
    res = cucr2o4_result
    m = [t for t in res.lattice_transitions if t["phase"] == "CuCr2O4"]
    assert len(m) == 1 and m[0]["axes"] == ["b", "c"] and m[0]["split_side"] == "low T"
    t_k = m[0]["T_merge_C"] + 273.15
    assert t_k == pytest.approx(117.1, abs=1.0)            # measured: 117.1 ± 3.3 K
    assert m[0]["sigma_C"] == pytest.approx(3.26, abs=0.3)  # bracket 111.4–122.7 K / √12
    assert 100.0 < t_k < 135.0                               # literature: ≈ 122–130 K
    # the splitting decreases on heating towards the transition
    split = np.array([s[1] for s in m[0]["splitting_angstrom"]])
    assert split[0] > 0.005 and split[5] < split[2] < split[0] and split[5] < 0.003


# ----------------------------------------------------------------------------------------------
# synthetic programmes
# ----------------------------------------------------------------------------------------------
def _match(found, exp, tol_c=5.0, tol_s=120.0):
    same = [e for e in found if e["phase"] == exp["phase"] and e["kind"] == exp["kind"]]
    for e in same:
        if e.get("isothermal"):
            if e["time_s"] is not None and abs(e["time_s"] - exp["time_mid_s"]) <= tol_s:
                return e
        elif e["T_C"] is not None and abs(e["T_C"] - exp["T_mid_C"]) <= tol_c:
            return e
    return None


@pytest.mark.parametrize("name", list(PROGRAMMES))
def test_programmed_transitions_recovered(analysed, name):
    prog, da, res = analysed[name]
    expected = prog.expected_events()
    assert expected
    for exp in expected:
        hit = _match(res.events, exp)
        assert hit is not None, f"{name}: {exp} not recovered; found {res.events}"
        if hit.get("isothermal"):
            assert hit["T_C"] == pytest.approx(179.0, abs=0.01)
        else:
            assert abs(hit["T_C"] - exp["T_mid_C"]) <= 5.0
            assert hit["sigma_C"] is not None and hit["sigma_C"] < 5.0
    # no appear/disappear event that was not programmed
    n_prog = sum(e["kind"] in ("appears", "disappears") for e in expected)
    n_found = sum(e["kind"] in ("appears", "disappears") for e in res.events)
    assert n_found == n_prog, res.events


@pytest.mark.parametrize("name", list(PROGRAMMES))
def test_no_unprogrammed_phase_and_lattice_within_0p05_percent(analysed, name):
    prog, da, res = analysed[name]
    tr = prog.truth()
    n = res.n_frames
    for j, pid in enumerate(res.phase_ids):
        want = tr.get(f"wf:{pid}", np.zeros(n)) > 0
        got = res.present[:, j]
        assert int(np.sum(got & ~want)) <= 1, f"{pid} reported where not programmed"
        # programmed presence is found except possibly one frame at the edge of a fade
        assert int(np.sum(want & ~got)) <= 1, f"{pid} missed"
        if not (got & want).any():
            continue
        cell = tr[f"cell:{pid}"]
        for key, k in (("a", 0), ("c", 2)):
            v = res.values(key, pid)
            ok = np.isfinite(v) & want
            err = np.abs(v[ok] / cell[ok, k] - 1)
            assert err.max() < 5e-4, f"{pid} {key}: max error {100 * err.max():.4f} %"


def test_volume_jump_and_amorphisation(analysed):
    prog, da, res = analysed["dodecaborate"]
    jumps = [e for e in res.events if e["kind"] == "jump"]
    assert len(jumps) == 1
    j = jumps[0]
    assert (j["from_phase"], j["phase"]) == ("alpha_li2b12h12", "beta_li2b12h12")
    assert j["volume_change_pct"] == pytest.approx(8.7, abs=0.2)   # programmed +8.7 % at 310 °C
    assert abs(j["T_C"] - 307.5) <= 5.0
    am = [e for e in res.events if e["kind"] == "amorphous"]
    assert len(am) == 1 and abs(am[0]["T_C"] - 355.0) <= 5.0
    assert am[0]["bragg_ratio_after_before"] < 0.3                  # Bragg collapse
    af = res.dataset["amorphous_fraction"].values
    assert af[-1] > 0.8 and np.all(af[:40] < 0.1)
    # thermal expansion of α recovered from the lattice vs T (programmed 3.0e-5 /K on a)
    ex = res.expansion["alpha_li2b12h12"]["a"]
    assert ex["alpha_per_K"] == pytest.approx(3.0e-5 / (1 + 3.0e-5 * (ex["T_ref_C"] - 25.0)), rel=0.03)


def test_cooling_segment_reversal(analysed):
    prog, da, res = analysed["mixed_cooling"]
    ev = [(e["phase"], e["kind"]) for e in res.events]
    assert ev.count(("libh4_rt", "appears")) == 1 and ev.count(("libh4_ht", "disappears")) == 1
    back = [e for e in res.events if e["phase"] == "libh4_rt" and e["kind"] == "appears"][0]
    assert back["frame"] > 50 and abs(back["T_C"] - 110.0) <= 5.0      # on cooling
    j = res.phase_ids.index("k2b12h12")
    assert res.present[:, j].all()
    # weight fractions in the mixed window follow the cross-fade
    tr = prog.truth()
    k = int(np.argmin(np.abs(res.temperature_c[:30] - 112.0)))
    wf_rt = res.values("wf", "libh4_rt")[k]
    wf_ht = res.values("wf", "libh4_ht")[k]
    true_ratio = tr["wf:libh4_ht"][k] / (tr["wf:libh4_ht"][k] + tr["wf:libh4_rt"][k])
    assert wf_ht / (wf_ht + wf_rt) == pytest.approx(true_ratio, abs=0.05)


def test_isothermal_hold_events_located_by_time(analysed):
    prog, da, res = analysed["hold"]
    ev = {e["kind"]: e for e in res.events}
    assert ev["disappears"]["isothermal"] and ev["amorphous"]["isothermal"]
    assert ev["disappears"]["time_s"] == pytest.approx(2850.0, abs=120.0)
    assert ev["amorphous"]["time_s"] == pytest.approx(2850.0, abs=120.0)
    assert ev["disappears"]["sigma_s"] < 60.0


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------
def test_write_outputs(analysed, tmp_path):
    import xarray as xr

    prog, da, res = analysed["dodecaborate"]
    files = write_series_result(res, tmp_path / "out")
    for name in ("series.nc", "phases.csv", "events.json", "report.md", "heatmap.png",
                 "heatmap_q.png", "fractions.png", "lattice.png", "waterfall.png"):
        assert (tmp_path / "out" / name).is_file(), name
    ds = xr.open_dataset(files["series.nc"])
    try:
        assert ds.sizes["frame"] == res.n_frames and ds.sizes["phase"] == len(CANDIDATES)
        for v in ("scale", "weight_fraction", "cell", "cell_su", "volume_angstrom3", "volume_su", "rwp",
                  "amorphous_fraction", "bragg_intensity", "present", "heatmap"):
            assert v in ds
        assert ds.attrs["synthetic"] == 1 and "program" in ds.attrs
        assert json.loads(ds.attrs["events"]) == json.loads(json.dumps(res.events))
    finally:
        ds.close()
    ev = json.loads((tmp_path / "out" / "events.json").read_text())
    assert set(ev) >= {"events", "skipped_frames"}
    for e in ev["events"]:
        assert e["kind"] in series.EVENT_KINDS and {"phase", "frame", "T_C", "sigma_C"} <= set(e)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "SYNTHETIC" in md and "MODEL" in md and "alpha_li2b12h12" in md
    csv = (tmp_path / "out" / "phases.csv").read_text().splitlines()
    assert csv[0].startswith("frame,temperature_c") and len(csv) > res.n_frames
    with pytest.raises(Exception):
        write_series_result(res, tmp_path / "out")     # never overwrites without overwrite=True


def test_dataset_values_match_records(analysed):
    prog, da, res = analysed["mixed_cooling"]
    ds = res.to_dataset()
    j = res.phase_ids.index("k2b12h12")
    assert np.allclose(ds["cell"].values[:, j, 0], res.values("a", "k2b12h12"), equal_nan=True)
    assert np.allclose(ds["temperature_c"].values, da["temperature_c"].values)


def test_result_is_a_dataset(analysed):
    """The result's layout: frame metadata as coordinates, phase ids as a coordinate, values of a
    phase NaN exactly where it is absent, series-level results as JSON attrs."""
    prog, da, res = analysed["mixed_cooling"]
    ds = res.dataset
    for c in ("temperature_c", "time_s", "segment", "source"):
        assert c in ds.coords and ds[c].dims == ("frame",)
    assert list(ds["phase"].values) == CANDIDATES and list(ds["lattice"].values) == list(series.LATTICE_NAMES)
    assert ds["cell"].dims == ("frame", "phase", "lattice") and ds["scale"].dims == ("frame", "phase")
    pres = ds["present"].values.astype(bool)
    assert np.array_equal(np.isfinite(ds["scale"].values), pres)
    assert np.array_equal(np.isfinite(ds["cell"].values[..., 0]), pres)
    assert (ds["scale"].values[pres] > 0).all()
    assert json.loads(res.to_dataset().attrs["events"]) == json.loads(json.dumps(res.events))


def test_identify_is_reached_only_through_the_fitting_seam():
    """Every use of xtal.identify in the series package goes through xtal/series/fitting.py."""
    import ast
    from pathlib import Path

    pkg = Path(series.__file__).parent
    for f in pkg.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        uses = {n for n in names if n.startswith("xtal.identify")}
        assert not uses or f.name == "fitting.py", f"{f.name} imports {uses}"


def test_series_package_renders_nothing():
    """The analysis never imports the report/figure code or matplotlib, and reports progress to a
    callback only."""
    import subprocess
    import sys

    code = ("import sys, xtal.series; "
            "bad = [m for m in sys.modules if m.startswith(('xtal.report', 'matplotlib', 'tqdm'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------------------------------------------
# parallel chunks and bad input
# ----------------------------------------------------------------------------------------------
def _small_programme(lib, **kw):
    return synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=150.0, step_c=5.0, frame_time_s=30.0)], start_c=60.0,
        phases=[synth.PhaseStage(lib.phase("libh4_rt"), disappear_c=110.0, alpha_per_c=5e-5),
                synth.PhaseStage(lib.phase("libh4_ht"), appear_c=110.0, alpha_per_c=6e-5, t0_c=135.0),
                synth.PhaseStage(lib.phase("k2b12h12"), weight=0.6, alpha_per_c=2e-5)],
        seed=7, **_common(two_theta_range_deg=(6.0, 24.0), **kw))


def test_fitting_seam_reuses_the_frame_preparation_and_equals_fit_phases(lib):
    """fit_frame prepares a frame once for all its fits (screen, fit, refits) and returns what
    xtal.identify.fit_phases returns for the same arguments."""
    from xtal.identify import fit_phases
    from xtal.series import fitting
    from xtal.io import series_frame

    pat = series_frame(synth.synthetic_series(_small_programme(lib)), 0)
    phases = lib.phases(["libh4_rt", "k2b12h12"])
    kw = dict(wavelength=None, polarization=None, start=None, refine_lattice=True,
              background="chebyshev", n_background=12, refine_profile="auto", strains=None,
              max_strain=0.05, two_theta_range=None, amorphous=True, max_iter=None)
    first = fitting._prepared(pat, None, None, None)
    assert fitting._prepared(pat, None, None, None) is first
    got = fitting.fit_frame(pat, phases, **kw)
    assert fitting._prepared(pat, None, None, None) is first
    ref = fit_phases(pat, phases, n_background=12)
    assert got.rwp == ref.rwp and got.rwp < 0.2
    for p, q in zip(got.phases, ref.phases):
        assert p.cell == q.cell and p.scale == q.scale and p.weight_fraction == q.weight_fraction
        assert p.reflections == [] and len(p.reflections_two_theta_deg) == 0   # not built for frames
        assert len(q.reflections) > 10 and len(q.reflections_two_theta_deg) == len(q.reflections)


SMALL_PHASES = ["libh4_rt", "libh4_ht", "k2b12h12"]


@pytest.fixture(scope="module")
def small_chunked(lib):
    """The small programme (19 frames) analysed once by 2 local worker processes in chunks of 8:
    (programme, series, result, progress calls). The chunk test checks it against the programme,
    the Dask test compares its cluster's result with it."""
    prog = _small_programme(lib)
    da = synth.synthetic_series(prog)
    calls = []
    res = series.analyse_series(da, lib.phases(SMALL_PHASES), progress=lambda done, n: calls.append((done, n)),
                                workers=2, chunk_size=8)
    return prog, da, res, calls


def test_a_chunk_taking_its_own_coarse_frame_fits_what_the_driver_would_start_it_with(lib):
    """A worker that starts a chunk at once takes the chunk's coarse frame itself
    (``run_chunk(coarse_head=True)`` from the coarse chain's state *before* that frame): its records
    and final state equal those of the chunk started from the driver's own coarse step. The chunk
    starts after libh4_rt → libh4_ht (110 °C), so that without the coarse step it would begin from
    the wrong phase set (checked too)."""
    from xtal.series.chain import Chain, SeriesOptions, coarse_step, run_chunk
    from xtal.series.source import FrameSource, heat_grid, reference_wavelength

    src = FrameSource(synth.synthetic_series(_small_programme(lib)), wavelength=None,
                      temperatures=None, instrument=None)
    phases, opts = lib.phases(SMALL_PHASES), SeriesOptions(n_background=12)
    heat_range, _, wl, _ = heat_grid(src, None, 600, reference_wavelength(None, src.attrs))
    coarse = Chain(phases, opts)
    before, _ = coarse_step(coarse, src.fetch([0])[0], 0, opts, heat_range, wl)
    after, _ = coarse_step(coarse, src.fetch([12])[12], 12, opts, heat_range, wl)   # 120 °C
    assert before["active"] == ["libh4_rt", "k2b12h12"] and after["active"] == ["libh4_ht", "k2b12h12"]
    items = src.fetch_items(12, 16)
    driver, end_driver = run_chunk(items, phases, opts, after, heat_range, wl)
    worker, end_worker = run_chunk(items, phases, opts, before, heat_range, wl, coarse_head=True)
    np.testing.assert_equal([(r.index, r.fitted, r.rwp, r.phase) for r in worker],   # NaN == NaN
                            [(r.index, r.fitted, r.rwp, r.phase) for r in driver])
    np.testing.assert_equal(end_worker, end_driver)
    assert all(r.fitted == ("libh4_ht", "k2b12h12") and r.rwp < 0.05 for r in driver)
    stale, _ = run_chunk(items, phases, opts, before, heat_range, wl)
    assert stale[0].fitted == ("libh4_rt", "k2b12h12") and stale[0].rwp > 0.2


def test_parallel_chunks_agree_with_programme(small_chunked):
    prog, _, res, calls = small_chunked
    assert calls[-1] == (res.n_frames, res.n_frames) and len(calls) == -(-res.n_frames // 8)
    tr = prog.truth()
    for j, pid in enumerate(res.phase_ids):
        assert np.array_equal(res.present[:, j], tr[f"wf:{pid}"] > 0), pid
    ev = [e for e in res.events if e["kind"] == "appears"]
    assert len(ev) == 1 and abs(ev[0]["T_C"] - 107.5) <= 5.0
    a = res.values("a", "k2b12h12")
    assert np.nanmax(np.abs(a / tr["cell:k2b12h12"][:, 0] - 1)) < 5e-4


def test_dask_scheduler_needs_dask(lib, monkeypatch):
    """Without dask.distributed (None in sys.modules makes its import fail) the error says what to
    install, instead of an ImportError from deep inside."""
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    prog = _small_programme(lib)
    da = synth.synthetic_series(prog, stop=10)
    with pytest.raises(SeriesError, match="dask"):
        series.analyse_series(da, lib.phases(["libh4_rt"]), progress=False,
                              scheduler="tcp://127.0.0.1:8786")


def _same_dataset(a, b):
    """Every variable equal: integers and labels exactly, floats to 1e-9 of the variable's largest
    magnitude with NaN where NaN (a million times below any s.u.). Worker processes of a Dask
    nanny run BLAS single-threaded, a process pool's do not, so a sum can differ in its last bits
    and the optimiser's path with it (seen: Rwp 0.04025255531110582 vs …583; a zero shift of
    1.3e-4° by 3e-15°, 2e-11 of the largest zero shift)."""
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        if x.dtype.kind in "fc":
            scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 0.0
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9 * scale, equal_nan=True,
                                       err_msg=name)
        else:
            assert np.array_equal(x, y), name


@pytest.mark.slow
def test_dask_local_cluster_gives_the_serial_result(lib, small_chunked):
    """A real dask.distributed LocalCluster (2 worker processes) through ``scheduler=ADDRESS``: the
    same Dataset as local worker processes with the same chunks (``small_chunked``: the whole small
    programme, 19 frames), and the serial chain's phases, events and lattice."""
    import dask.distributed as distributed    # the [dask] extra, pulled by [dev]: not skipped
    _, da, local, _ = small_chunked
    phases = lib.phases(SMALL_PHASES)
    serial = series.analyse_series(da, phases, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        done = []
        res = series.analyse_series(da, phases, progress=lambda d, n: done.append(d),
                                    scheduler=cluster.scheduler_address, chunk_size=8)
    assert done[-1] == res.n_frames == serial.n_frames > 2 * 8        # three chunks of 8 or fewer
    _same_dataset(res.dataset, local.dataset)
    assert np.array_equal(res.present, serial.present)
    assert [(e["phase"], e["kind"]) for e in res.events] == [(e["phase"], e["kind"]) for e in serial.events]
    a, a0 = res.values("a", "k2b12h12"), serial.values("a", "k2b12h12")
    np.testing.assert_allclose(a, a0, rtol=1e-4)


def test_nan_frames_skipped_or_masked_and_reported(lib, capsys):
    prog = _small_programme(lib)
    da = synth.synthetic_series(prog, stop=12).copy()
    da.values[4, :] = np.nan                  # a dead frame
    da.values[7, 100:110] = np.nan            # a detector gap (< 5 % of the points)
    from xtal.cli import _FrameBar

    bar = _FrameBar()                         # the CLI's progress callback
    res = series.analyse_series(da, lib.phases(["libh4_rt", "libh4_ht", "k2b12h12"]),
                                progress=bar)
    bar.close()
    cap = capsys.readouterr()
    assert "12/12" in cap.err and cap.out == ""     # tqdm bar of frames on stderr, nothing on stdout
    assert [s["frame"] for s in res.skipped] == [4]
    assert "NaN" in res.skipped[0]["reason"]
    assert res.status[7] == "ok" and any("masked" in n for n in res.notes)
    assert "frame 4" in render_series_markdown(res)
    assert not res.present[4].any()


def test_unreadable_frame_file_is_skipped_and_recorded(lib, tmp_path):
    from xtal.io import series_frame, write_pattern

    prog = _small_programme(lib)
    da = synth.synthetic_series(prog, stop=8)
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(8):
        p = series_frame(da, i)
        write_pattern(p, d / f"frame_{i:03d}_T{p.temperature_c:.1f}C.xy")
    bad = sorted(d.glob("*.xy"))[3]
    bad.write_text("this is not a pattern\n\x00\x01garbage\n")
    res = series.analyse_series(d, lib.phases(["libh4_rt", "k2b12h12"]), progress=False)
    assert res.n_frames == 8
    assert [s["frame"] for s in res.skipped] == [3]
    assert bad.name in res.skipped[0]["source"]
    assert res.status[4] == "ok"


def test_wavelength_mismatch_and_bad_temperatures_raise(lib, tmp_path):
    from xtal.io import series_frame

    prog = _small_programme(lib)
    da = synth.synthetic_series(prog, stop=6)
    frames = [series_frame(da, i) for i in range(6)]
    frames[3].wavelength_angstrom = 0.5
    with pytest.raises(SeriesError, match="wavelength"):
        series.analyse_series(frames, lib.phases(["libh4_rt", "k2b12h12"]), progress=False)
    with pytest.raises(SeriesError, match="temperatures"):
        series.analyse_series(da, lib.phases(["libh4_rt"]), temperatures=[20.0, 30.0],
                              progress=False)
    # a temperature log that does not match the frame files
    from xtal.io import write_pattern

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        write_pattern(frames[i] if i != 3 else series_frame(da, 3), d / f"scan_{i:03d}.xy")
    log = tmp_path / "log.csv"
    log.write_text("file,temperature_c\nscan_000.xy,20\nscan_001.xy,25\nother_007.xy,30\n")
    with pytest.raises(SeriesError):
        series.analyse_series(d, lib.phases(["libh4_rt"]), temperatures=log, progress=False)


def test_kalpha_doublet_series(lib):
    """A lab Cu Kα1/Kα2 series: the doublet is carried from the DataArray attrs into the fits."""
    prog = synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=150.0, step_c=10.0, frame_time_s=30.0)], start_c=60.0,
        phases=[synth.PhaseStage(lib.phase("libh4_rt"), disappear_c=110.0, alpha_per_c=5e-5),
                synth.PhaseStage(lib.phase("libh4_ht"), appear_c=110.0, alpha_per_c=6e-5, t0_c=135.0),
                synth.PhaseStage(lib.phase("k2b12h12"), weight=0.6, alpha_per_c=2e-5)],
        wavelength_angstrom="CuKa", two_theta_range_deg=(12.0, 60.0), step_deg=0.012, fwhm_deg=0.08,
        counts_max=2e4, seed=5)
    da = synth.synthetic_series(prog)
    assert da.attrs["wavelength2_angstrom"] == pytest.approx(1.5444, abs=1e-3)
    res = series.analyse_series(da, lib.phases(["libh4_rt", "libh4_ht", "k2b12h12"]), progress=False)
    tr = prog.truth()
    for j, pid in enumerate(res.phase_ids):
        assert np.array_equal(res.present[:, j], tr[f"wf:{pid}"] > 0), pid
        err = np.abs(res.values("a", pid) / tr[f"cell:{pid}"][:, 0] - 1)
        assert np.nanmax(err) < 2e-4, pid
    ev = {(e["phase"], e["kind"]): e for e in res.events}
    assert abs(ev[("libh4_ht", "appears")]["T_C"] - 105.0) <= 5.0     # between the 100 and 110 °C frames
    assert list(res.dataset["segment"].values[:2]) == ["heating", "heating"]


def test_float32_frames_travel_as_float32_and_fit_as_their_float64_values(lib):
    """Frames stored as float32 are handed to workers as float32 (half the bytes of a chunk), and
    the pattern a worker fits holds exactly the float64 values of the stored numbers; integer
    counts become float64."""
    from xtal.series.source import FrameSource, to_pattern

    da = synth.synthetic_series(_small_programme(lib), stop=4, dtype="float32")
    (i, item), = FrameSource(da).fetch_items(2, 3)
    assert item["y"].dtype == np.float32 and item["y"].nbytes == 4 * da.sizes["two_theta_deg"]
    pat = to_pattern(item, i, [], 0.05)
    assert pat.intensity.dtype == np.float64
    np.testing.assert_array_equal(pat.intensity, da.values[2].astype(np.float64))
    counts = da.copy(data=np.rint(da.values).astype(np.int32))
    (_, item), = FrameSource(counts).fetch_items(1, 2)
    assert item["y"].dtype == np.float64
    np.testing.assert_array_equal(item["y"], counts.values[1])


def test_frames_read_as_a_block_equal_frames_read_one_by_one(lib, tmp_path):
    """A run of frames of a lazily opened file is read in one block: every row, σ row and label
    equals the frame read alone; scattered frames still come one by one."""
    from xtal.io import read_series, write_series
    from xtal.series.source import FrameSource

    da = synth.synthetic_series(_small_programme(lib), stop=10).copy()
    da = da.assign_coords(sigma=(da.dims, np.sqrt(np.abs(da.values)) + 1.0))
    write_series(da, tmp_path / "s.nc")
    src = FrameSource(read_series(tmp_path / "s.nc", lazy=True))
    block = src.fetch_items(2, 9)
    assert [i for i, _ in block] == list(range(2, 9))
    for i, item in block:
        alone = src._frame_from_da(i)
        assert np.array_equal(item["y"], alone["y"]) and item["y"].dtype == alone["y"].dtype
        assert np.array_equal(item["sigma"], alone["sigma"]) and item["sigma"] is not None
        assert {k: v for k, v in item.items() if k not in ("x", "y", "sigma")} == \
            {k: v for k, v in alone.items() if k not in ("x", "y", "sigma")}
        np.testing.assert_array_equal(item["y"], da.values[i])
    scattered = src.fetch([0, 9])
    np.testing.assert_array_equal(scattered[9]["y"], da.values[9])
