"""xtal.beam: tube table, wavelength and polarisation parsers, the one file-vs-given decision."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from xtal import beam
from xtal.beam import (TUBES, WAVELENGTH_LIMITS_ANGSTROM, WAVELENGTH_RTOL, Polarization, Radiation,
                       parse_polarization, parse_radiation, resolve_radiation)
from xtal.errors import (MissingWavelengthError, PatternError, PolarizationError, SeriesError, SimulationError,
                         WavelengthError, WavelengthMismatchError)
from xtal.io import read_gsas_instprm_wavelength, read_pattern

PAT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "patterns"
PBSO4 = PAT / "lab_PbSO4_CuKa" / "PBSO4.XRA"
PBSO4_PRM = PAT / "lab_PbSO4_CuKa" / "INST_XRY.PRM"


# ---------------------------------------------------------------------------
# parse_radiation
# ---------------------------------------------------------------------------
def test_parse_radiation_tubes_and_numbers():
    assert parse_radiation("CuKa").as_tuple() == (1.540593, 1.544427, 0.5)
    assert parse_radiation("CuKa1").as_tuple() == (1.540593, None, None)
    assert parse_radiation("MoKa").as_tuple()[:2] == (0.709317, 0.713607)
    l1, l2, _ = parse_radiation("MoKa").as_tuple()
    assert (2 * l1 + l2) / 3 == pytest.approx(0.71073, abs=3e-5)   # weighted mean
    assert parse_radiation("MoKa").mean_wavelength_angstrom == pytest.approx(0.71073, abs=3e-5)
    for tube in ("CoKa", "FeKa", "CrKa", "AgKa", "co-ka1", "Cu"):
        assert parse_radiation(tube).primary in [v[0] for v in TUBES.values()]
    assert parse_radiation("Cu").is_doublet and not parse_radiation("CuKa1").is_doublet
    assert parse_radiation(0.71073).as_tuple() == (0.71073, None, None)
    assert parse_radiation("0.5").as_tuple() == (0.5, None, None)
    assert parse_radiation((0.709317, 0.713607, 0.5)).weights == (1.0, 0.5)
    assert parse_radiation((0.41, None, None)).wavelengths == (0.41,)
    rad = parse_radiation("CuKa")
    assert parse_radiation(rad) is rad                              # passed through


@pytest.mark.parametrize("bad", ["XxKa", "copper", -1.0, 0.0, float("nan"), None, "1e9", True,
                                 0.01, 5.5, (1.54, 1.544, 2.0), (1.54, 1.544, float("nan")),
                                 (1.54, 1.544, -0.1), (1.54, 1.544), (), (1, 2, 3, 4)])
def test_parse_radiation_bad_input_is_a_wavelength_error(bad):
    with pytest.raises(WavelengthError) as exc:
        parse_radiation(bad)
    # readers expect a PatternError, simulation a SimulationError: the same error is both
    assert isinstance(exc.value, PatternError) and isinstance(exc.value, SimulationError)


def test_limits_are_the_xray_powder_range():
    lo, hi = WAVELENGTH_LIMITS_ANGSTROM
    assert parse_radiation(lo).primary == lo and parse_radiation(hi).primary == hi
    for t in TUBES.values():
        assert lo < t[0] < hi


def test_radiation_to_json_keys():
    j = parse_radiation("CuKa", "synchrotron").to_json()
    assert j == {"wavelength_angstrom": 1.540593, "label": "CuKa", "wavelength2_angstrom": 1.544427,
                 "ka2_ratio": 0.5, "polarization": Polarization.synchrotron().describe()}
    single = Radiation((0.41,), (1.0,), "file").to_json()
    assert set(single) == {"wavelength_angstrom", "label", "polarization"}
    assert single["polarization"] == Polarization().describe()


# ---------------------------------------------------------------------------
# parse_polarization: CLI and API vocabulary give identical objects
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,obj", [
    (None, Polarization.unpolarized()),
    ("unpolarized", Polarization.unpolarized()),
    ("unpolarised", Polarization.unpolarized()),
    ("lab", Polarization.unpolarized()),
    ("synchrotron", Polarization.synchrotron()),
    ("synchrotron:0.95", Polarization.synchrotron(0.95)),
    ("0.95", Polarization.synchrotron(0.95)),
    ("monochromator:26.57", Polarization.monochromator(26.57)),
])
def test_parse_polarization_vocabulary(text, obj):
    assert parse_polarization(text) == obj
    assert parse_polarization(obj) is obj
    assert parse_polarization(text).factor(40.0) == pytest.approx(obj.factor(40.0))


def test_cli_uses_the_same_polarization_parser():
    from xtal.cli import _polarization_arg

    for text in ("unpolarized", "lab", "synchrotron", "synchrotron:0.95", "monochromator:26.57"):
        assert _polarization_arg(text) == parse_polarization(text)
    assert _polarization_arg(None) is None          # not given: the callee's documented default


@pytest.mark.parametrize("bad", ["laser", "synchrotron:abc", "synchrotron:1.5", "monochromator",
                                 "monochromator:200", "unpolarized:3", 3.0, "-0.2"])
def test_parse_polarization_bad_input(bad):
    with pytest.raises(PolarizationError):
        parse_polarization(bad)


def test_lorentz_polarization_same_formula():
    tt = np.array([20.0, 90.0])
    th = np.radians(tt / 2)
    lab = (1 + np.cos(np.radians(tt)) ** 2) / 2 / (np.sin(th) ** 2 * np.cos(th))
    assert np.allclose(beam.lorentz_polarization(tt), lab)
    assert np.allclose(beam.lorentz_polarization(tt, "lab"), lab)


def test_bragg_conversions_round_trip():
    d = np.array([1.0, 2.0, 3.5])
    tt = beam.two_theta_from_d(d, 1.5406)
    assert np.allclose(beam.d_from_two_theta(tt, 1.5406), d)
    q = beam.q_from_two_theta(tt, 1.5406)
    assert np.allclose(q, 2 * math.pi / d)
    assert np.allclose(beam.two_theta_from_q(q, 1.5406), tt)
    assert np.isnan(beam.two_theta_from_d([0.5], 1.5406)[0])          # d < λ/2
    assert np.allclose(beam.convert_two_theta(beam.convert_two_theta(tt, 1.5406, 0.7093), 0.7093, 1.5406),
                       tt)


# ---------------------------------------------------------------------------
# resolve_radiation: the one decision, the same in read_pattern
# ---------------------------------------------------------------------------
def test_tolerance_accepts_kalpha1_vs_mean_and_refuses_another_tube():
    for el in ("Cu", "Mo"):
        l1, l2, r = TUBES[el]
        mean = (l1 + r * l2) / (1 + r)
        assert abs(mean - l1) / l1 < WAVELENGTH_RTOL
    assert abs(TUBES["Co"][0] - TUBES["Fe"][0]) / TUBES["Fe"][0] > 10 * WAVELENGTH_RTOL


def test_resolve_radiation_cases():
    cu = parse_radiation("CuKa")
    with pytest.raises(MissingWavelengthError):
        resolve_radiation(None, None)
    assert resolve_radiation(None, cu) == (cu, "user")
    rad, src = resolve_radiation((1.5406, None, None), None)
    assert (rad.as_tuple(), src) == ((1.5406, None, None), "file")
    rad, src = resolve_radiation((1.5406, None, None), cu)      # file's λ1, the tube's Kα2 added
    assert rad.as_tuple() == (1.5406, 1.544427, 0.5) and src == "file (user value agrees)"
    rad, src = resolve_radiation((0.71073, None, None), parse_radiation("MoKa"))   # file states the mean
    assert rad.as_tuple() == TUBES["Mo"] and "weighted mean" in src
    with pytest.raises(WavelengthMismatchError, match="data.xy"):
        resolve_radiation((1.5406, None, None), parse_radiation("MoKa"), source="data.xy")
    rad, src = resolve_radiation((1.5406, None, None), parse_radiation("MoKa"), force=True)
    assert rad.primary == 0.709317 and src.startswith("user (forced")


def _xye(path: Path, wavelength_line: str) -> Path:
    x = np.linspace(10, 20, 11)
    path.write_text(wavelength_line + "\n" + "\n".join(f"{v} {100 + v} 10" for v in x) + "\n")
    return path


@pytest.mark.parametrize("given,same", [(1.542, True), ("1.542", True), ("CuKa", True),
                                        ("CuKa1", True), ("MoKa", False), (1.60, False)])
def test_read_pattern_and_resolve_radiation_make_the_same_decision(tmp_path, given, same):
    """A file stating 1.5406 Å: 1.542 (and the Cu tube) is the same beam, Mo Kα or 1.60 Å is not."""
    f = _xye(tmp_path / "p.xye", "# wavelength = 1.5406")
    cases = [(f, {}, (1.5406, None, None)),
             (PBSO4, {"instrument": PBSO4_PRM}, read_gsas_instprm_wavelength(PBSO4_PRM))]
    for path, kw, file_wl in cases:
        if same:
            rad, source = resolve_radiation(file_wl, parse_radiation(given))
            p = read_pattern(path, wavelength_angstrom=given, **kw)
            assert p.wavelength_angstrom == rad.primary == file_wl[0]   # the file's more precise λ
            assert (p.wavelength2_angstrom, p.ka2_ratio) == rad.as_tuple()[1:]
        else:
            with pytest.raises(WavelengthMismatchError):
                resolve_radiation(file_wl, parse_radiation(given))
            with pytest.raises(WavelengthMismatchError):
                read_pattern(path, wavelength_angstrom=given, **kw)
    if same:
        assert read_pattern(f, wavelength_angstrom=given).meta["wavelength_source"] == source


def test_read_pattern_bad_wavelength_text_names_the_problem(tmp_path):
    f = _xye(tmp_path / "p.xye", "# wavelength = 1.5406")
    with pytest.raises(WavelengthError, match="unknown wavelength 'copper'"):
        read_pattern(f, wavelength_angstrom="copper")


@pytest.fixture(scope="module")
def nio_frames():
    """Three small SYNTHETIC NiO patterns whose files would state λ = 1.5406 Å (one line)."""
    from xtal.library import Library
    from xtal.synth import synthetic_pattern

    nio = Library.bundled().phase("NiO")
    pats = [synthetic_pattern([nio], [1.0], wavelength_angstrom=1.5406, two_theta_range_deg=(30, 80),
                              step_deg=0.02, seed=k) for k in range(3)]
    for k, p in enumerate(pats):
        p.temperature_c = 25.0 + 10 * k
    return nio, pats


@pytest.mark.parametrize("given,accepted", [("1.542", True), ("CuKa1", True), ("MoKa", False),
                                            (1.60, False)])
def test_identify_series_and_simulate_decide_alike(nio_frames, given, accepted):
    """Issue 11: one tolerance. `1.542` against a pattern stating 1.5406 Å is the same beam for
    identify, for a series, for the reader and for simulate's parser; Mo Kα is refused by all."""
    from xtal.identify import identify
    from xtal.series import analyse_series
    from xtal.simulate import simulate

    nio, pats = nio_frames
    decision = {}
    try:
        res = identify(pats[0], [nio], wavelength=given)
        decision["identify"] = res.best is not None and res.best.ids == ["NiO"]
    except WavelengthMismatchError:
        decision["identify"] = False
    try:
        sr = analyse_series(pats, [nio], wavelength=given)
        decision["series"] = bool(sr.present.all())
    except (WavelengthMismatchError, SeriesError):
        decision["series"] = False
    try:
        beam.resolve_radiation(pats[0].wavelength_lines, beam.parse_radiation(given))
        decision["resolve_radiation"] = True
    except WavelengthMismatchError:
        decision["resolve_radiation"] = False
    assert set(decision.values()) == {accepted}, decision
    # simulate parses the same text to the same beam as the others
    sim = simulate(nio, wavelength_angstrom=given, two_theta_range=(30, 80), step=0.02)
    assert sim.wavelength_angstrom == pytest.approx(beam.parse_radiation(given).primary)
