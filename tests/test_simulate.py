"""Tests of xtal.simulate: independent agreement with gemmi, multiplicities, LP, profiles, export."""
from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np
import pytest

from conftest import REF_STRUCTURES, REPO
from xtal.errors import OverwriteError, SimulationError, XtalError
from xtal.formfactors import DEUTERIUM_NOTE, FormFactorError, form_factor
from xtal.beam import (Polarization, convert_two_theta, d_from_two_theta, lorentz_polarization,
                       q_from_two_theta, two_theta_from_d, two_theta_from_q)
from xtal.errors import PatternFormatError
from xtal.io import write_reflections_csv, write_simulated
from xtal.profiles import pseudo_voigt_profile, pseudo_voigt_profile_loop, tch_fwhm_eta
from xtal.report.simulate import MODEL_FIGURE_TEXT, pattern_figure, plot_pattern
from xtal.simulate import (MODEL_WARNING, MarchDollase, ReflectionTable, d_spacings, multiplicities,
                           reflection_table, simulate, structure_factors)
from xtal.structures import read_cif, read_cif_string

LAM = 0.71073
ALPHA_MODEL = REPO / "structures" / "models" / "alpha_Li2B12H12_model.cif"


def _phase(name: str, kind: str = "refined"):
    return read_cif(REF_STRUCTURES / name, kind=kind)


@pytest.fixture(scope="module")
def cuo():
    return _phase("CuO.cif")


@pytest.fixture(scope="module")
def k2():
    return _phase("K2B12H12_Fm-3.cif")


# ------------------------------------------------------------------------------------------------
# independent structure-factor calculation (gemmi, IT92) — brute force over the full sphere
# ------------------------------------------------------------------------------------------------
def _gemmi_small_structure(phase) -> gemmi.SmallStructure:
    """SmallStructure with the phase's symmetry, occupancies and Uiso/Uij, set up for SF calculation."""
    ss = gemmi.SmallStructure()
    ss.cell = phase.cell.to_gemmi()
    ss.symops = list(phase.symops)
    ss.determine_and_set_spacegroup("S")
    for s in phase.sites:
        site = gemmi.SmallStructure.Site()
        site.label = s.label
        site.element = gemmi.Element("H" if s.element == "D" else s.element)
        site.fract = gemmi.Fractional(*s.frac)
        site.occ = s.occupancy
        site.u_iso = (s.u_iso or 0.0) if s.u_aniso is None else phase.u_equivalent(s)
        if s.u_aniso is not None:
            site.aniso = gemmi.SMat33d(*s.u_aniso)
        ss.add_site(site)
    ss.setup_cell_images()
    ss.change_occupancies_to_crystallographic()
    return ss


def _independent_peaks(phase, lo=2.0, hi=50.0, lam=LAM):
    """All hkl in the limiting sphere (no symmetry used), F from gemmi, LP written out here,
    intensities of reflections at the same 2θ summed: what a powder diffractometer records."""
    ss = _gemmi_small_structure(phase)
    cell = ss.cell
    calc = gemmi.StructureFactorCalculatorX(cell)
    d_min = lam / (2 * math.sin(math.radians(hi / 2)))
    lim = [int(math.ceil(x / d_min)) for x in (cell.a, cell.b, cell.c)]
    tts, ints = [], []
    for h, k, l in itertools.product(*[range(-m, m + 1) for m in lim]):
        if (h, k, l) == (0, 0, 0):
            continue
        d = cell.calculate_d([h, k, l])
        if d < d_min:
            continue
        tt = 2 * math.degrees(math.asin(lam / (2 * d)))
        if not lo <= tt <= hi:
            continue
        f2 = abs(calc.calculate_sf_from_small_structure(ss, [h, k, l])) ** 2
        th = math.radians(tt / 2)
        lp = (1 + math.cos(2 * th) ** 2) / 2 / (math.sin(th) ** 2 * math.cos(th))
        tts.append(tt)
        ints.append(f2 * lp)
    return _merge(np.array(tts), np.array(ints))


def _merge(tt, inten, tol=1e-6):
    order = np.argsort(tt)
    tt, inten = tt[order], inten[order]
    keys = np.concatenate([[0], np.cumsum(np.diff(tt) > tol)])
    n = keys[-1] + 1
    return (np.bincount(keys, tt, n) / np.bincount(keys, None, n), np.bincount(keys, inten, n))


AGREEMENT_PHASES = [
    ("alpha_Li2B12H12_model", ALPHA_MODEL),
    ("K2B12H12", REF_STRUCTURES / "K2B12H12_Fm-3.cif"),
    ("LiBH4_Pnma", REF_STRUCTURES / "LiBH4_Pnma_RT.cif"),
    ("LiBH4_P63mc", REF_STRUCTURES / "LiBH4_P63mc_HT.cif"),
    ("CuO", REF_STRUCTURES / "CuO.cif"),
    ("NAC", REF_STRUCTURES / "NAC.cif"),
]


@pytest.mark.parametrize("name,path", AGREEMENT_PHASES, ids=[p[0] for p in AGREEMENT_PHASES])
def test_independent_agreement_with_gemmi_it92(name, path):
    """Same IT92 form factors and ADPs: positions to 1e-4°, peaks > 5 % of max within 1 %."""
    if not path.exists():
        pytest.skip(f"{path} not present yet")
    phase = read_cif(path)
    rt = reflection_table(phase, LAM, (2, 50), form_factors="it92")
    t_ours, i_ours = _merge(rt.two_theta_deg, rt.intensity)
    t_ref, i_ref = _independent_peaks(phase)
    # every reference peak with non-negligible intensity is in our table, at the same position
    seen = i_ref > 1e-9 * i_ref.max()
    j = np.searchsorted(t_ours, t_ref[seen])
    j = np.clip(j, 1, len(t_ours) - 1)
    j = np.where(np.abs(t_ours[j - 1] - t_ref[seen]) < np.abs(t_ours[j] - t_ref[seen]), j - 1, j)
    assert np.max(np.abs(t_ours[j] - t_ref[seen])) < 1e-4
    # intensities (absolute scale, not normalised): both sides are m·|F|²·LP per cell
    strong = i_ref[seen] > 0.05 * i_ref.max()
    rel = i_ours[j][strong] / i_ref[seen][strong] - 1.0
    assert strong.sum() >= 2
    assert np.max(np.abs(rel)) < 0.01, (name, np.max(np.abs(rel)))
    # and the normalised sum of all peaks agrees too (no peak lost or invented)
    assert abs(i_ours.sum() / i_ref.sum() - 1) < 0.01


def test_uniform_uiso_scales_f_squared_by_the_debye_waller_factor(cuo):
    """A uniform Uiso multiplies every |F|² by exp(−16π²U s²) exactly."""
    u = 0.02
    hot = replace(cuo, sites=[replace(s, u_iso=u, u_aniso=None) for s in cuo.sites], _images=None)
    cold = replace(cuo, sites=[replace(s, u_iso=0.0, u_aniso=None) for s in cuo.sites], _images=None)
    rh = reflection_table(hot, LAM, (2, 50))
    rc = reflection_table(cold, LAM, (2, 50))
    s2 = 0.25 / rc.d_angstrom ** 2
    expected = np.exp(-16 * math.pi ** 2 * u * s2)
    big = rc.f_squared > 1e-3 * rc.f_squared.max()
    np.testing.assert_allclose(rh.f_squared[big] / rc.f_squared[big], expected[big], rtol=2e-5)


def test_single_and_double_precision_kernels_agree():
    phase = _phase("S2dipyridyl_P21c_SHELXL.cif")
    rt = reflection_table(phase, LAM, (2, 40))
    f1 = np.abs(structure_factors(phase, rt.hkl, precision="single")) ** 2
    f2 = np.abs(structure_factors(phase, rt.hkl, precision="double")) ** 2
    big = f2 > 1e-3 * f2.max()
    assert np.max(np.abs(f1[big] / f2[big] - 1)) < 1e-4
    assert np.max(np.abs(f1 - f2)) < 1e-5 * f2.max()


def test_engine_reproduces_pymatgen_xrdcalculator_with_its_own_physics(cuo):
    """With pymatgen's form factors and U = 0, xtal equals XRDCalculator (LP differs by the factor 2)."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    cold = replace(cuo, sites=[replace(s, u_iso=0.0, u_aniso=None) for s in cuo.sites], _images=None)
    rt = reflection_table(cold, LAM, (2, 50), form_factors="pymatgen")
    t, i = _merge(rt.two_theta_deg, rt.intensity, tol=1e-5)
    pat = XRDCalculator(wavelength=LAM).get_pattern(cold.to_pymatgen(), scaled=False, two_theta_range=(2, 50))
    keep = i / i.max() * 100 > XRDCalculator.SCALED_INTENSITY_TOL   # pymatgen drops tiny peaks
    t, i = t[keep], i[keep]
    assert len(pat.x) == len(t) > 50
    np.testing.assert_allclose(pat.x, t, atol=1e-8)
    np.testing.assert_allclose(pat.y / pat.y.max(), i / i.max(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(pat.y, 2 * i, rtol=1e-5)  # pymatgen's LP has no 1/2


def test_default_form_factors_are_it92_and_differ_from_pymatgen_for_h():
    s2 = np.array([0.0, 0.1])
    assert form_factor("H", s2)[0] == pytest.approx(1.0, abs=1e-3)
    it = form_factor("H", s2, "it92")[1]
    pm = form_factor("H", s2, "pymatgen")[1]
    assert it == pytest.approx(0.3016, abs=1e-3)
    assert pm == pytest.approx(0.2260, abs=1e-3)
    b = gemmi.Element("B").it92
    assert form_factor("B", np.array([0.04]))[0] == pytest.approx(
        sum(a * math.exp(-bb * 0.04) for a, bb in zip(b.a, b.b)) + b.c, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# multiplicities
# ------------------------------------------------------------------------------------------------
def _brute_multiplicity(phase, hkl):
    ops = [gemmi.Op(s) for s in phase.symops]
    rots = {tuple(np.array(o.rot).ravel() // o.DEN) for o in ops}
    mats = [np.array(r).reshape(3, 3) for r in rots]
    out = []
    for h in hkl:
        eq = set()
        for r in mats:
            g = tuple(int(v) for v in np.asarray(h) @ r)
            eq.add(g)
            eq.add(tuple(-v for v in g))  # Friedel
        out.append(len(eq))
    return np.array(out)


@pytest.mark.parametrize("name,expected_lattice", [("CuO.cif", "C"), ("S2dipyridyl_P21c_SHELXL.cif", "P"),
                                                    ("K2B12H12_Fm-3.cif", "F"), ("NAC.cif", "I"),
                                                    ("LiBH4_P63mc_HT.cif", "P")])
def test_multiplicity_matches_brute_force_enumeration(name, expected_lattice):
    phase = _phase(name)
    rt = reflection_table(phase, LAM, (2, 45))
    assert phase.spacegroup_hm.startswith(expected_lattice)
    np.testing.assert_array_equal(rt.multiplicity, _brute_multiplicity(phase, rt.hkl))
    # every allowed hkl of the sphere is one member of exactly one row's orbit
    gops = gemmi.GroupOps([gemmi.Op(s) for s in phase.symops])
    cell = phase.cell
    d_min, d_max = rt.d_range_angstrom
    lim = [int(math.ceil(x / d_min)) for x in (cell.a, cell.b, cell.c)]
    grid = np.array(list(itertools.product(*[range(-m, m + 1) for m in lim])))
    grid = grid[np.any(grid != 0, axis=1)]
    d = d_spacings(cell.parameters, grid)
    grid = grid[(d >= d_min) & (d <= d_max)]
    allowed = ~np.asarray(gops.systematic_absences(grid.astype(np.int32)), bool)
    assert rt.multiplicity.sum() == allowed.sum()


def test_monoclinic_multiplicities_are_not_cubic_permutations(cuo):
    rt = reflection_table(cuo, LAM, (2, 50))
    lookup = {tuple(h): m for h, m in zip(rt.hkl.tolist(), rt.multiplicity)}
    assert lookup[(1, 1, 1)] == 4 and lookup[(1, 1, -1)] == 4      # hkl, -h-k-l, h-kl, -hk-l
    assert lookup[(0, 2, 0)] == 2 and lookup[(2, 0, 0)] == 2       # ±(0k0), ±(h0l)
    assert (1, 0, 0) not in lookup and (0, 0, 1) not in lookup     # C-centring / c-glide absences


# ------------------------------------------------------------------------------------------------
# LP, axes, strain
# ------------------------------------------------------------------------------------------------
def test_lorentz_polarization_values():
    tt = np.array([20.0, 90.0])
    th = np.radians(tt / 2)
    lor = 1 / (np.sin(th) ** 2 * np.cos(th))
    np.testing.assert_allclose(lorentz_polarization(tt), lor * (1 + np.cos(np.radians(tt)) ** 2) / 2)
    assert lorentz_polarization(90.0, Polarization.synchrotron()) / lor[1] == pytest.approx(0.99)
    assert lorentz_polarization(90.0, Polarization.synchrotron(0.95)) / lor[1] == pytest.approx(0.95)
    # graphite monochromator for Mo Kα: 2θ_M = 12.16°
    cm = math.cos(math.radians(12.16)) ** 2
    val = lorentz_polarization(20.0, Polarization.monochromator(12.16)) / lor[0]
    assert val == pytest.approx((1 + cm * math.cos(math.radians(20)) ** 2) / (1 + cm))
    assert lorentz_polarization(90.0, "unpolarized") / lor[1] == pytest.approx(0.5)


def test_axes_conversions():
    tt = np.array([5.0, 20.0, 49.0])
    d = d_from_two_theta(tt, LAM)
    np.testing.assert_allclose(two_theta_from_d(d, LAM), tt, atol=1e-12)
    q = q_from_two_theta(tt, LAM)
    np.testing.assert_allclose(q, 2 * math.pi / d)
    np.testing.assert_allclose(two_theta_from_q(q, LAM), tt, atol=1e-12)
    cu = convert_two_theta(tt, LAM, 1.5406)
    np.testing.assert_allclose(d_from_two_theta(cu, 1.5406), d)
    assert np.isnan(convert_two_theta(np.array([120.0]), LAM, 1.5406))[0]  # d < λ/2: unreachable


def test_reflection_table_at_strain_and_wavelength(k2):
    rt = reflection_table(k2, LAM, (2, 50), d_min_angstrom=0.5)
    strained = rt.at(tuple(np.array(k2.cell.parameters) * [1.01, 1.01, 1.01, 1, 1, 1]))
    np.testing.assert_allclose(strained.d_angstrom, rt.d_angstrom * 1.01, rtol=1e-12)
    assert np.all(np.diff(strained.two_theta_deg) >= 0)
    cu = rt.at(wavelength_angstrom=1.5406, two_theta_range_deg=(5, 120))
    fresh = reflection_table(k2, 1.5406, (5, 120))
    assert len(cu) == len(fresh)
    o1 = np.lexsort((*cu.hkl.T[::-1], np.round(cu.two_theta_deg, 8)))
    o2 = np.lexsort((*fresh.hkl.T[::-1], np.round(fresh.two_theta_deg, 8)))
    np.testing.assert_array_equal(cu.hkl[o1], fresh.hkl[o2])
    np.testing.assert_allclose(cu.two_theta_deg[o1], fresh.two_theta_deg[o2], atol=1e-10)
    np.testing.assert_allclose(cu.intensity[o1], fresh.intensity[o2], rtol=1e-6)
    np.testing.assert_allclose(cu.intensity, cu.multiplicity * cu.f_squared * cu.lp)
    assert isinstance(cu, ReflectionTable) and cu.wavelength_angstrom == 1.5406


def test_march_dollase_preferred_orientation(cuo):
    po = MarchDollase(axis=(0, 0, 1), r=0.8)
    rt = reflection_table(cuo, LAM, (2, 50), preferred_orientation=po)
    plain = reflection_table(cuo, LAM, (2, 50))
    rows = {tuple(h): i for i, h in enumerate(rt.hkl.tolist())}
    # (0 0 2) is parallel to c*: factor r^-3 exactly
    assert rt.po[rows[(0, 0, 2)]] == pytest.approx(0.8 ** -3, rel=1e-9)
    assert rt.intensity[rows[(0, 0, 2)]] / plain.intensity[rows[(0, 0, 2)]] == pytest.approx(0.8 ** -3)
    # (0 2 0) is perpendicular to c* in a monoclinic b-unique cell: factor r^(3/2)
    assert rt.po[rows[(0, 2, 0)]] == pytest.approx(0.8 ** 1.5, rel=1e-9)
    assert np.all(rt.po > 0)


# ------------------------------------------------------------------------------------------------
# profiles
# ------------------------------------------------------------------------------------------------
def test_pseudo_voigt_is_area_normalised_and_has_the_given_fwhm():
    x = np.arange(-200.0, 200.0, 0.002)
    for eta in (0.0, 0.5, 1.0):
        y = pseudo_voigt_profile(x, [0.0], [3.0], [0.1], [eta])
        tail = 0.0 if eta == 0 else 3.0 * eta * (1 - 2 / math.pi * math.atan(2 * 200 / 0.1))
        assert y.sum() * 0.002 == pytest.approx(3.0 - tail, rel=1e-6)
        half = y.max() / 2
        above = x[y >= half]
        assert above[-1] - above[0] == pytest.approx(0.1, abs=0.0041)


def test_windowed_profile_equals_per_peak_loop():
    rng = np.random.default_rng(7)
    x = np.linspace(2, 50, 10000)
    n = 800
    c = rng.uniform(0, 52, n)
    a = rng.exponential(1.0, n) ** 3
    w = 0.005 + 0.4 * rng.random(n) ** 2     # from ~1 grid step to 0.4°
    e = rng.random(n)
    ref = pseudo_voigt_profile_loop(x, c, a, w, e)
    fast = pseudo_voigt_profile(x, c, a, w, e)
    assert np.max(np.abs(fast - ref)) <= 1e-6 * ref.max()
    lor = pseudo_voigt_profile(x, c, a, w, 1.0)     # pure Lorentzians: the hardest tails
    assert np.max(np.abs(lor - pseudo_voigt_profile_loop(x, c, a, w, 1.0))) <= 1e-6 * lor.max()
    # non-uniform grid: exact block evaluation
    xn = np.sort(rng.uniform(2, 50, 3000))
    assert np.max(np.abs(pseudo_voigt_profile(xn, c, a, w, e) - pseudo_voigt_profile_loop(xn, c, a, w, e))) \
        <= 1e-9 * ref.max()


def test_tch_limits():
    h, eta = tch_fwhm_eta(np.array([20.0]), 0.0, 0.0, 0.01, 0.0, 0.0)
    assert h[0] == pytest.approx(0.1) and eta[0] == pytest.approx(0.0)
    h, eta = tch_fwhm_eta(np.array([20.0]), 0.0, 0.0, 0.0, 0.05, 0.0)
    assert h[0] == pytest.approx(0.05 / math.cos(math.radians(10))) and eta[0] == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------------------------
# simulate
# ------------------------------------------------------------------------------------------------
def test_simulate_profile_integrates_to_the_reflection_intensities(k2):
    sim = simulate(k2, LAM, (2, 50), 0.002, fwhm_deg=0.05, eta=0.0)
    r = sim.reflections
    k = int(np.argmax(r.intensity))
    # the maximum of the profile sits on the strongest reflection
    assert abs(sim.two_theta_deg[np.argmax(sim.intensity)] - r.two_theta_deg[k]) < 0.002
    # a Gaussian peak region integrates to that reflection's intensity
    win = np.abs(sim.two_theta_deg - r.two_theta_deg[k]) < 0.15
    assert sim.intensity[win].sum() * 0.002 == pytest.approx(r.intensity[k], rel=1e-3)
    assert sim.x("d_angstrom")[0] == pytest.approx(LAM / (2 * math.sin(math.radians(1.0))))


def test_zero_shift_and_ka2_doublet(k2):
    base = simulate(k2, LAM, (5, 12), 0.001, fwhm_deg=0.03, eta=0.0)
    shifted = simulate(k2, LAM, (5, 12), 0.001, fwhm_deg=0.03, eta=0.0, zero_shift_deg=0.05)
    p0 = base.two_theta_deg[np.argmax(base.intensity)]
    p1 = shifted.two_theta_deg[np.argmax(shifted.intensity)]
    assert p1 - p0 == pytest.approx(0.05, abs=0.0011)
    l1, l2 = 0.709317, 0.713607
    dbl = simulate(k2, (l1, l2, 0.5), (5, 12), 0.001, fwhm_deg=0.01, eta=0.0)
    k = int(np.argmax(dbl.reflections.intensity))
    t1 = dbl.reflections.two_theta_deg[k]
    t2 = two_theta_from_d(dbl.reflections.d_angstrom[k], l2)
    y1 = np.interp(t1, dbl.two_theta_deg, dbl.intensity)
    y2 = np.interp(t2, dbl.two_theta_deg, dbl.intensity)
    assert y2 / y1 == pytest.approx(0.5 * dbl.reflections.lp[k] ** -1 * lorentz_polarization(t2), rel=0.03)
    assert dbl.meta["wavelength2_angstrom"] == l2


def test_pattern_converted_to_another_wavelength_keeps_d_and_area(k2):
    sim = simulate(k2, LAM, (3, 30), 0.002, fwhm_deg=0.05)
    cu = sim.at_wavelength(1.5406)
    assert cu.wavelength_angstrom == 1.5406
    dpk = d_from_two_theta(sim.two_theta_deg[np.argmax(sim.intensity)], LAM)
    dcu = d_from_two_theta(cu.two_theta_deg[np.argmax(cu.intensity)], 1.5406)
    assert dcu == pytest.approx(dpk, rel=1e-3)  # grid resolution
    raw = sim.at_wavelength(1.5406, resample=False)  # point by point: same d
    np.testing.assert_allclose(raw.d_angstrom, sim.d_angstrom, rtol=1e-12)
    area0 = np.trapezoid(sim.intensity, sim.two_theta_deg)
    area1 = np.trapezoid(cu.intensity, cu.two_theta_deg)
    assert area1 == pytest.approx(area0, rel=2e-3)


def test_model_phase_warnings_exports_and_figure(tmp_path):
    path = ALPHA_MODEL if ALPHA_MODEL.exists() else REF_STRUCTURES / "K2B12H12_Fm-3.cif"
    phase = read_cif(path, kind="model")
    assert phase.is_model
    sim = simulate(phase, LAM)
    assert any("intensities depend on the modelled anion orientation" in w for w in sim.warnings)
    assert any("peak positions follow the published cell" in w for w in sim.warnings)
    for fmt in ("xy", "xye", "csv", "cif"):
        out = write_simulated(sim, tmp_path / f"p.{fmt}")
        text = out.read_text()
        assert MODEL_WARNING in text
        assert "0.71073" in text
    # pdCIF is valid CIF with the wavelength and the profile loop
    doc = gemmi.cif.read(str(tmp_path / "p.cif"))
    blk = doc.sole_block()
    assert float(blk.find_value("_diffrn_radiation_wavelength")) == pytest.approx(LAM)
    col = blk.find_loop("_pd_calc_intensity_total")
    assert len(col) == len(sim.two_theta_deg)
    assert float(col[10]) == pytest.approx(sim.intensity[10], rel=1e-5)
    assert len(blk.find_loop("_refln_index_h")) == len(sim.reflections)
    # xy round trip
    data = np.loadtxt(tmp_path / "p.xy")
    np.testing.assert_allclose(data[:, 1], sim.intensity, rtol=1e-7)
    xye = np.loadtxt(tmp_path / "p.xye")
    np.testing.assert_allclose(xye[:, 2], np.sqrt(np.maximum(sim.intensity, 0)), rtol=1e-5)
    fig = pattern_figure(sim)
    texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    assert MODEL_FIGURE_TEXT in texts
    ax = fig.axes[0]
    assert ax.get_xlabel() == "2θ (°)" and ax.get_ylabel() == "Intensity (arb. units)"
    assert any("0.71073" in t for t in texts)
    png = plot_pattern(sim, tmp_path / "p.png")
    assert png.stat().st_size > 20000 and png.read_bytes()[:4] == b"\x89PNG"


def test_refined_phase_has_no_model_warning(cuo, tmp_path):
    sim = simulate(cuo, LAM)
    assert not any("MODEL" in w for w in sim.warnings)
    fig = pattern_figure(sim)
    assert MODEL_FIGURE_TEXT not in [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]


def test_writers_refuse_to_overwrite_and_are_atomic(cuo, tmp_path):
    sim = simulate(cuo, LAM)
    p = write_simulated(sim, tmp_path / "out.csv")
    first = p.read_text()
    assert first.startswith("#") and "wavelength_angstrom: 0.71073" in first
    assert "two_theta_deg,d_angstrom,q_inv_angstrom,intensity" in first
    with pytest.raises(OverwriteError):
        write_simulated(sim, tmp_path / "out.csv")
    with pytest.raises(XtalError, match="cannot write a figure"):
        plot_pattern(sim, p)  # a figure as .csv is refused before drawing
    assert p.read_text() == first
    sim2 = simulate(cuo, LAM, fwhm_deg=0.2)
    write_simulated(sim2, p, overwrite=True)
    assert p.read_text() != first
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.csv"]  # no temp files left
    t = write_reflections_csv(sim.reflections, tmp_path / "refl.csv")
    lines = [ln for ln in t.read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) == len(sim.reflections) + 1
    with pytest.raises(PatternFormatError):
        write_simulated(sim, tmp_path / "out.unknownext")


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, -1.0, 5.5, 0.01, float("nan"), "abc"])
def test_bad_wavelength(cuo, lam):
    with pytest.raises(SimulationError):
        simulate(cuo, lam)
    with pytest.raises(XtalError):
        reflection_table(cuo, lam)


@pytest.mark.parametrize("kw", [dict(two_theta_range=(30, 30)), dict(two_theta_range=(40, 10)),
                                dict(two_theta_range=(float("nan"), 10)), dict(two_theta_range=(5, 190)),
                                dict(step=0.0), dict(step=float("nan")), dict(fwhm_deg=float("nan")),
                                dict(fwhm_deg=-0.1), dict(eta=1.5), dict(eta=float("nan")),
                                dict(zero_shift_deg=float("inf")), dict(zero_shift_deg=500.0),
                                dict(scale=-1.0), dict(scale=0.0), dict(caglioti=(0.0, -1.0, 0.0)),
                                dict(tch=(0.0, 0.0, float("nan"), 0.0, 0.0)),
                                dict(polarization="laser"), dict(form_factors="waasmaier"),
                                dict(wavelength_angstrom=(0.7093, 0.7136, 2.0))])
def test_bad_parameters_raise_simulation_error(cuo, kw):
    with pytest.raises(SimulationError):
        simulate(cuo, **{"wavelength_angstrom": LAM, **kw})


def test_bad_profile_arrays():
    x = np.linspace(0, 10, 100)
    with pytest.raises(SimulationError):
        pseudo_voigt_profile(x, [1.0], [1.0], [0.0], [0.5])
    with pytest.raises(SimulationError):
        pseudo_voigt_profile(x, [np.nan], [1.0], [0.1], [0.5])
    with pytest.raises(SimulationError):
        pseudo_voigt_profile(x * np.nan, [1.0], [1.0], [0.1], [0.5])


_D_CIF = """data_test
_cell_length_a 5.0
_cell_length_b 5.0
_cell_length_c 5.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
Li1 Li 0 0 0 0.01
{h}1 {h} 0.5 0.5 0.5 0.02
"""


def test_deuterium_scatters_as_hydrogen_with_a_note():
    ph_d = read_cif_string(_D_CIF.format(h="D"))
    ph_h = read_cif_string(_D_CIF.format(h="H"))
    rd = reflection_table(ph_d, LAM)
    rh = reflection_table(ph_h, LAM)
    np.testing.assert_allclose(rd.intensity, rh.intensity)
    assert DEUTERIUM_NOTE in rd.warnings


def test_element_without_form_factor_raises(cuo):
    bad = replace(cuo, sites=[replace(cuo.sites[0], element="Es")] + cuo.sites[1:], _images=None)
    with pytest.raises(FormFactorError) as exc:
        reflection_table(bad, LAM)
    assert isinstance(exc.value, SimulationError) and "Es" in str(exc.value)
    unknown = replace(cuo, sites=[replace(cuo.sites[0], element="Xx")] + cuo.sites[1:], _images=None)
    with pytest.raises(XtalError, match="Xx"):   # refused at simulate's entry (UnknownElementError)
        simulate(unknown, LAM, form_factors="pymatgen")


def test_no_reflections_in_range_gives_empty_table_and_warning(cuo):
    sim = simulate(cuo, LAM, (0.5, 1.0), 0.01)
    assert len(sim.reflections) == 0
    assert np.all(sim.intensity == 0)
    assert any("no reflection" in w for w in sim.warnings)


def test_multiplicities_helper_direct():
    sg = gemmi.find_spacegroup_by_name("P 1 21/c 1")
    m = multiplicities(sg.operations(), np.array([[1, 2, 3], [1, 0, 2], [0, 3, 0]]))
    np.testing.assert_array_equal(m, [4, 2, 2])
    assert Path(__file__).exists()


def test_exports_round_trip_through_xtal_io_with_the_doublet(cuo, tmp_path):
    from xtal.io import read_pattern

    sim = simulate(cuo, (0.709317, 0.713607, 0.5), polarization=Polarization.synchrotron())
    for ext in ("xy", "xye", "csv"):
        pat = read_pattern(write_simulated(sim, tmp_path / f"d.{ext}"))
        assert pat.wavelength_angstrom == pytest.approx(0.709317)
        assert pat.wavelength2_angstrom == pytest.approx(0.713607)
        assert pat.ka2_ratio == pytest.approx(0.5)
        np.testing.assert_allclose(pat.intensity, sim.intensity, rtol=1e-6)
    blk = gemmi.cif.read(str(write_simulated(sim, tmp_path / "d.cif"))).sole_block()
    assert [float(v) for v in blk.find_loop("_diffrn_radiation_wavelength")] == [0.709317, 0.713607]
    assert float(blk.find_value("_diffrn_radiation_polarisn_ratio")) == pytest.approx(99.0)


def test_phase_to_gemmi_small_structure_gives_the_same_structure_factors(cuo):
    ss = cuo.to_gemmi_small_structure()
    assert ss.spacegroup is not None and len(ss.get_all_unit_cell_sites()) == len(cuo.cell_atoms())
    ss.change_occupancies_to_crystallographic()
    calc = gemmi.StructureFactorCalculatorX(ss.cell)
    rt = reflection_table(cuo, LAM, (2, 50))
    ref = np.array([abs(calc.calculate_sf_from_small_structure(ss, [int(v) for v in h])) ** 2 for h in rt.hkl])
    big = ref > 1e-3 * ref.max()
    np.testing.assert_allclose(rt.f_squared[big], ref[big], rtol=1e-4)


def test_simulation_matches_measured_synchrotron_pattern_of_nac():
    """Real data: NAC standard at APS 11-BM (λ = 0.413909 Å). Only scale, a Chebyshev background,
    zero shift, a TCH width pair and an isotropic cell factor are fitted — the structure (CIF with
    Uij) is not refined. Peak positions agree to < 0.002° and Rwp < 20 %."""
    from scipy.optimize import least_squares
    from scipy.signal import find_peaks

    from conftest import REF_PATTERNS
    from xtal.io import read_pattern

    pat = read_pattern(REF_PATTERNS / "sync_NAC_11BM" / "11BM_NAC.fxye")
    lam = pat.wavelength_angstrom
    m = (pat.x >= 2.5) & (pat.x <= 16.0)
    x, y = pat.x[m], pat.intensity[m]
    sig = pat.sigma[m] if pat.sigma is not None else np.sqrt(np.maximum(y, 1.0))
    phase = _phase("NAC.cif")
    rt = reflection_table(phase, lam, (2.0, 17.0), polarization=Polarization.synchrotron())
    # positions: every strong measured maximum has a simulated reflection within 0.002°
    pk, _ = find_peaks(y, prominence=0.05 * y.max())
    assert len(pk) >= 15
    near = [np.min(np.abs(rt.two_theta_deg - t)) for t in x[pk]]
    assert sum(n < 0.002 for n in near) >= len(pk) - 1  # one impurity peak (~7.5°) is allowed
    t = (x - x.mean()) / (x.max() - x.min()) * 2
    bkg = np.stack([np.polynomial.chebyshev.chebval(t, [0] * k + [1]) for k in range(6)], axis=1)

    def residual(p, full=False):
        zero, lw, gw, cf = p
        r = rt.at(tuple(np.array(phase.cell.parameters) * [cf, cf, cf, 1, 1, 1]))
        fw, eta = tch_fwhm_eta(r.two_theta_deg, 0.0, 0.0, gw ** 2, abs(lw), 0.0)
        prof = pseudo_voigt_profile(x, r.two_theta_deg + zero, r.intensity, fw, eta)
        a = np.column_stack([prof, bkg]) / sig[:, None]
        coef, *_ = np.linalg.lstsq(a, y / sig, rcond=None)
        return a @ coef - y / sig

    sol = least_squares(residual, [0.0, 0.002, 0.003, 1.0], x_scale=[1e-3, 1e-3, 1e-3, 1e-4])
    rwp = math.sqrt(np.sum(sol.fun ** 2) / np.sum((y / sig) ** 2))
    assert rwp < 0.20, rwp
    assert abs(sol.x[3] - 1.0) < 5e-4  # the CIF cell is this data set's cell


def test_non_tabulated_setting_uses_the_fallback_enumeration(cuo):
    """Operators in a setting gemmi does not tabulate (origin shifted by t): the box enumeration with
    canonical orbit members gives the same reflections, multiplicities and intensities."""
    from fractions import Fraction

    t = (Fraction(1, 8), Fraction(1, 4), Fraction(1, 3))
    ops = []
    for s in cuo.symops:
        op = gemmi.Op(s)
        rot = np.array(op.rot) // op.DEN
        tr = [Fraction(v, op.DEN) for v in op.tran]
        new_t = [tr[i] + t[i] - sum(int(rot[i][j]) * t[j] for j in range(3)) for i in range(3)]
        xyz = []
        for i in range(3):
            terms = "".join(f"{'+' if r > 0 else '-'}{'xyz'[j]}" for j, r in enumerate(rot[i]) if r)
            xyz.append(f"{terms.lstrip('+')}+{new_t[i] % 1}")
        ops.append(",".join(xyz))
    assert gemmi.find_spacegroup_by_ops(gemmi.GroupOps([gemmi.Op(o) for o in ops])) is None
    sites = [replace(s, frac=tuple((np.array(s.frac) + np.array([float(v) for v in t])) % 1.0))
             for s in cuo.sites]
    shifted = replace(cuo, symops=ops, sites=sites, _images=None)
    a = reflection_table(cuo, LAM, (2, 50))
    b = reflection_table(shifted, LAM, (2, 50))
    assert len(a) == len(b)
    ta, ia = _merge(a.two_theta_deg, a.intensity)
    tb, ib = _merge(b.two_theta_deg, b.intensity)
    np.testing.assert_allclose(ta, tb, atol=1e-9)
    np.testing.assert_allclose(ib, ia, rtol=1e-4, atol=1e-6 * ia.max())
    assert a.multiplicity.sum() == b.multiplicity.sum()


def test_reciprocal_metric_closed_form_equals_the_inverse_and_refuses_flat_cells():
    """G* in closed form (adjugate / det) equals numpy's inverse of G on random cells; a flat cell
    (α = β = γ = 120°, volume 0) is refused instead of giving a 1e13 metric."""
    from xtal.simulate import reciprocal_metric
    rng = np.random.default_rng(3)
    n = 0
    for _ in range(500):
        a, b, c = rng.uniform(2, 30, 3)
        al, be, ga = rng.uniform(60, 120, 3)
        ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
        g = np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])
        if np.linalg.det(g) < 1e-6 * (a * b * c) ** 2:
            continue
        n += 1
        inv = np.linalg.inv(g)
        assert np.allclose(reciprocal_metric((a, b, c, al, be, ga)), inv, rtol=1e-12, atol=1e-12 * np.abs(inv).max())
    assert n > 300
    with pytest.raises(SimulationError, match="not a valid unit cell"):
        reciprocal_metric((5, 5, 5, 120, 120, 120))
