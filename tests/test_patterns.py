"""xtal.io: readers on the real reference files, writers, wavelength policy, bad input."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtal.errors import (
    EmptyPatternError,
    InvalidDataError,
    MissingWavelengthError,
    OverwriteError,
    PatternError,
    PatternFormatError,
    WavelengthMismatchError,
    XtalError,
)
from xtal.io import (
    Pattern,
    atomic_write,
    parse_header_lines,
    read_gsas_instprm_wavelength,
    read_pattern,
    write_pattern,
)

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"
PAT = REF / "patterns"
NAC = PAT / "sync_NAC_11BM" / "11BM_NAC.fxye"
PBSO4 = PAT / "lab_PbSO4_CuKa" / "PBSO4.XRA"
PBSO4_PRM = PAT / "lab_PbSO4_CuKa" / "INST_XRY.PRM"
LAB6 = PAT / "lab_LaB6_SRM660" / "NIST660CBI.gsas"
BIFEO3 = PAT / "lab_BiFeO3_CuKa" / "BiFeO3.xy"
CANI = PAT / "lab_CaNiPO34_CuKa" / "CaNi_PO3_4_800C.xy"
XRDML = PAT / "lab_xrdml_GeO2-ZnO" / "GeO2-ZnO_700C_60min.xrdml"
CUCR = REF / "series" / "CuCr2O4_11BM_6-289K"


def _digest(path: Path) -> tuple[float, str]:
    return path.stat().st_mtime, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def nac() -> Pattern:
    return read_pattern(NAC)


# ---------------------------------------------------------------------------
# Real measured files: the numbers below were measured by inspecting the files
# ---------------------------------------------------------------------------
def test_nac_fxye_11bm(nac):
    # BANK record: 59497 points; the file holds 59498 rows (all kept, mismatch recorded)
    assert len(nac) == 59498
    assert nac.meta["nchan_header"] == 59497
    assert nac.meta["format"] == "gsas" and nac.meta["gsas_type"] == "FXYE"
    assert nac.wavelength_angstrom == pytest.approx(0.413909, abs=1e-9)
    assert nac.wavelength2_angstrom is None
    assert nac.temperature_c == pytest.approx(298.0 - 273.15)
    assert nac.x[0] == pytest.approx(0.50) and nac.x[-1] == pytest.approx(59.9893)  # centideg/100
    assert nac.sigma is not None and nac.sigma[0] == pytest.approx(16.08)
    assert nac.intensity[0] == pytest.approx(239.933)
    assert nac.meta["timestamp"] == "2012-11-29T18:07:11.025644"
    assert nac.axis == "two_theta_deg"


def test_nac_instrument_file_agrees():
    assert read_gsas_instprm_wavelength(PAT / "sync_NAC_11BM" / "11bm_gsas.prm") == \
        pytest.approx((0.413909, None, None))
    p = read_pattern(NAC, instrument=PAT / "sync_NAC_11BM" / "11bm_gsas.prm")
    assert p.wavelength_angstrom == pytest.approx(0.413909)


def test_pbso4_gsas_std_with_instrument_file():
    assert read_gsas_instprm_wavelength(PBSO4_PRM) == (1.5405, 1.5443, 0.5)
    p = read_pattern(PBSO4, instrument=PBSO4_PRM)
    assert p.meta["gsas_type"] == "STD"
    assert len(p) == 6001
    assert p.x[0] == pytest.approx(10.0) and p.x[-1] == pytest.approx(160.0)
    assert np.allclose(np.diff(p.x), 0.025)
    assert (p.wavelength_angstrom, p.wavelength2_angstrom, p.ka2_ratio) == (1.5405, 1.5443, 0.5)
    assert p.intensity[:3].tolist() == [179.0, 147.0, 165.0]
    assert p.intensity[-1] == 368.0                       # padding zeros after 6001 values dropped
    assert np.allclose(p.sigma[:3], np.sqrt([179.0, 147.0, 165.0]))
    assert "INST_XRY.PRM" in p.meta["wavelength_source"]


def test_pbso4_without_instrument_has_no_wavelength():
    p = read_pattern(PBSO4)
    assert p.wavelength_angstrom is None                  # "Cu Ka" in the title is not used
    with pytest.raises(MissingWavelengthError, match="INST_XRY.PRM"):
        read_pattern(PBSO4, require_wavelength=True)


def test_lab6_gsas_std():
    p = read_pattern(LAB6)
    assert len(p) == 8378
    assert p.x[0] == pytest.approx(15.0066)
    assert np.diff(p.x)[0] == pytest.approx(0.0131303)
    assert p.x[-1] == pytest.approx(15.0066 + 8377 * 0.0131303)
    assert p.intensity[0] == 2364 and p.intensity[-1] == 370
    assert p.wavelength_angstrom is None
    with pytest.raises(MissingWavelengthError):
        read_pattern(LAB6, require_wavelength=True)
    q = read_pattern(LAB6, wavelength_angstrom="CuKa", require_wavelength=True)
    assert (q.wavelength_angstrom, q.wavelength2_angstrom, q.ka2_ratio) == (1.540593, 1.544427, 0.5)


@pytest.mark.parametrize("path,n,first,last,y0", [
    (BIFEO3, 23928, 10.002717, 140.003372, 3195.0),
    (CANI, 8301, 9.90343322, 100.09488522, 3566.0),
])
def test_two_column_xy_need_explicit_wavelength(path, n, first, last, y0):
    p = read_pattern(path)
    assert len(p) == n and p.x[0] == pytest.approx(first) and p.x[-1] == pytest.approx(last)
    assert p.intensity[0] == y0 and p.sigma is None
    assert p.wavelength_angstrom is None
    with pytest.raises(MissingWavelengthError, match=path.name):
        read_pattern(path, require_wavelength=True)
    with pytest.raises(MissingWavelengthError):
        p.d_angstrom()
    q = read_pattern(path, wavelength_angstrom=1.5406, require_wavelength=True)
    assert q.meta["wavelength_source"] == "user"
    assert q.d_angstrom()[0] == pytest.approx(1.5406 / (2 * math.sin(math.radians(first / 2))))


def test_xrdml_kalpha_doublet():
    p = read_pattern(XRDML)
    assert p.meta["format"] == "xrdml"
    assert len(p) == 8301
    assert p.x[0] == pytest.approx(9.90343322) and p.x[-1] == pytest.approx(100.09488522)
    assert p.wavelength_angstrom == pytest.approx(1.5405980)
    assert p.wavelength2_angstrom == pytest.approx(1.5444260)
    assert p.ka2_ratio == pytest.approx(0.5)
    assert p.meta["kbeta_angstrom"] == pytest.approx(1.39225)
    assert p.meta["intended_wavelength"] == "K-Alpha 1"
    assert p.intensity[:3].tolist() == [2488.0, 2384.0, 2492.0]
    assert p.meta["counting_time_s"] == pytest.approx(13.77)
    assert p.meta["timestamp"].startswith("2024-04-12T11:05:06")


# ---------------------------------------------------------------------------
# Wavelength policy
# ---------------------------------------------------------------------------
def test_wavelength_mismatch_and_force():
    with pytest.raises(WavelengthMismatchError, match="11BM_NAC"):
        read_pattern(NAC, wavelength_angstrom=0.5)
    with pytest.raises(WavelengthMismatchError):
        read_pattern(NAC, wavelength_angstrom="CuKa")
    p = read_pattern(NAC, wavelength_angstrom=0.5, force=True)
    assert p.wavelength_angstrom == 0.5 and p.meta["file_wavelength_angstrom"] == 0.413909
    ok = read_pattern(NAC, wavelength_angstrom=0.41391)      # within WAVELENGTH_RTOL: the file's value
    assert ok.wavelength_angstrom == 0.413909
    with pytest.raises(WavelengthMismatchError):
        read_pattern(NAC, instrument=PBSO4_PRM)


def test_conversions_and_with_wavelength(nac):
    q = nac.q_inv_angstrom()
    d = nac.d_angstrom()
    assert np.allclose(q * d, 2 * np.pi)
    lam = nac.wavelength_angstrom
    assert d[100] == pytest.approx(lam / (2 * np.sin(np.radians(nac.x[100] / 2))))
    pq = nac.to_axis("q_inv_angstrom")
    assert pq.axis == "q_inv_angstrom" and np.allclose(pq.two_theta_deg(), nac.x)
    pd = nac.to_axis("d_angstrom")
    assert np.all(np.diff(pd.x) > 0)                       # re-ordered to increasing d
    assert np.allclose(pd.intensity[::-1], nac.intensity)
    back = pd.to_axis("two_theta_deg")
    assert np.allclose(back.x, nac.x) and np.allclose(back.intensity, nac.intensity)
    cu = nac.with_wavelength("CuKa1")
    assert cu.wavelength_angstrom == 1.540593 and cu.ka2_ratio is None
    # same d, new 2θ; 2θ beyond 180° at Cu is impossible: those points are dropped, counted
    n_keep = int(np.sum(nac.q_inv_angstrom() * 1.540593 / (4 * np.pi) <= 1))
    assert len(cu) == n_keep
    assert cu.meta.get("dropped_points", 0) == len(nac) - n_keep
    assert np.allclose(np.sort(cu.d_angstrom()), np.sort(d)[-n_keep:] if n_keep < len(d)
                       else np.sort(d))
    assert cu.x[0] == pytest.approx(2 * np.degrees(np.arcsin(1.540593 / (2 * d[0]))))
    with pytest.raises(MissingWavelengthError):
        read_pattern(BIFEO3).with_wavelength("MoKa")
    with pytest.raises(PatternError):
        nac.to_axis("energy_kev")


# ---------------------------------------------------------------------------
# Header parsing and the text readers on small real-looking files
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("lines,wl,tc", [
    (["# wavelength = 0.71073 A", "# T = 25 C"], 0.71073, 25.0),
    (["! lambda: 0.0710 nm", "! Temperature: 298.15 K"], 0.710, 25.0),
    (["# Wavelength: 1.5406e-10 m", "# temp (K) = 300"], 1.5406, 26.85),
    (["# Calibrated wavelength = 0.413263", "# Temp (K) =              6.778"], 0.413263,
     6.778 - 273.15),
    (["# wavelength_angstrom = 1.54", "# temperature_c = -10.5"], 1.54, -10.5),
    (["# lambda1 = 1.540593 Å", "# lambda2 = 1.544427 Å", "# ratio = 0.5", "# T/K = 100"],
     1.540593, -173.15),
])
def test_parse_header_lines(lines, wl, tc):
    h = parse_header_lines(lines)
    assert h.wavelength_angstrom == pytest.approx(wl)
    assert h.temperature_c == pytest.approx(tc)


def test_header_energy_and_precedence():
    h = parse_header_lines(["# Energy = 30 keV"])
    assert h.wavelength_angstrom == pytest.approx(12.398419843320026 / 30)
    h = parse_header_lines(["# energy (eV) = 30000", "# wavelength = 0.4"])
    assert h.wavelength_angstrom == 0.4                 # an explicit wavelength wins
    h = parse_header_lines(["# Time per step (sec) = 0.1", "# Scan time = APR 25, 2011 12:35:45",
                            "# elapsed time (min) = 2"])
    assert h.time_s == 120.0 and h.timestamp == "2011-04-25T12:35:45"


def test_header_without_temperature_unit_is_inferred_and_reported():
    h = parse_header_lines(["# T = 350"])
    assert h.temperature_c == pytest.approx(350 - 273.15) and "K" in h.temperature_note
    h = parse_header_lines(["# T = 35"])
    assert h.temperature_c == 35 and "°C" in h.temperature_note


def test_xye_with_hash_header(tmp_path):
    f = tmp_path / "sample.xye"
    f.write_text("# sample at 25 C\n# wavelength = 0.71073 A\n# T = 25 C\n"
                 "5.00 100 10\n5.01 110 10.5\n5.02 120 11\n")
    p = read_pattern(f)
    assert p.wavelength_angstrom == 0.71073 and p.temperature_c == 25.0
    assert p.sigma.tolist() == [10, 10.5, 11]


def test_topas_block_comment_and_bang(tmp_path):
    f = tmp_path / "topas.xy"
    f.write_text("/* TOPAS export\n   lambda: 0.0710 nm\n   Temperature: 298.15 K */\n"
                 "! note line\n10 5\n10.5 6\n11 7\n")
    p = read_pattern(f)
    assert p.wavelength_angstrom == pytest.approx(0.71)
    assert p.temperature_c == pytest.approx(25.0)
    assert len(p) == 3


def test_csv_with_column_names_and_decimal_comma(tmp_path):
    f = tmp_path / "pat.csv"
    f.write_text("# lambda = 1.5406\nangle,counts,esd\n10.0,100,10\n10.1,121,11\n")
    p = read_pattern(f)
    assert p.sigma.tolist() == [10, 11] and p.wavelength_angstrom == 1.5406
    g = tmp_path / "eu.csv"
    g.write_text("2theta;I\n10,5;100\n10,6;101\n")
    p = read_pattern(g)
    assert p.x.tolist() == [10.5, 10.6] and p.intensity.tolist() == [100, 101]


def test_csv_intensity_column_chosen_by_name(tmp_path):
    f = tmp_path / "cols.csv"
    f.write_text("tth,esd,counts\n10.0,3,9\n10.1,4,16\n")
    p = read_pattern(f)
    assert p.intensity.tolist() == [9, 16] and p.sigma.tolist() == [3, 4]


PYFAI = """# == pyFAI calibration ==
# Distance Sample to Detector: 0.2 m
# PONI: 1.000e-01, 1.000e-01 m
# Rotations: 0.000000 0.000000 0.000000 rad
#
# == Fit2d calibration ==
# Distance Sample-beamCenter: 200.000 mm
# Center: x=1000.000, y=1000.000 pix
# Tilt: 0.000 deg  TiltPlanRot: 0.000 deg
#
# Detector Detector	 Spline= None	 PixelSize= 1.000e-04, 1.000e-04 m
# Wavelength: 7.293188e-11 m
# Mask applied: False
# --> /data/frame_0001.edf
#       {col}             I          sigma
  1.000000e+00    5.000e+02    2.236e+01
  1.010000e+00    5.100e+02    2.258e+01
  1.020000e+00    5.200e+02    2.280e+01
"""


@pytest.mark.parametrize("col,axis,factor", [("2th_deg", "two_theta_deg", 1.0),
                                             ("q_nm^-1", "q_inv_angstrom", 0.1),
                                             ("q_A^-1", "q_inv_angstrom", 1.0),
                                             ("2th_rad", "two_theta_deg", 180 / np.pi)])
def test_pyfai_1d_output(tmp_path, col, axis, factor):
    f = tmp_path / "frame_0001.dat"
    f.write_text(PYFAI.format(col=col))
    p = read_pattern(f)
    assert p.meta["format"] == "pyfai"
    assert p.axis == axis
    assert p.x[0] == pytest.approx(1.0 * factor)
    assert p.wavelength_angstrom == pytest.approx(0.7293188)
    assert p.sigma[0] == pytest.approx(22.36)
    with pytest.raises(PatternFormatError):
        read_pattern(f, axis="d_angstrom")


def test_pyfai_unsupported_radial_unit(tmp_path):
    f = tmp_path / "r.dat"
    f.write_text(PYFAI.format(col="r_mm"))
    with pytest.raises(PatternFormatError, match="r_mm"):
        read_pattern(f)


XRDML_LIST = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5">
 <xrdMeasurement measurementType="Scan">
  <usedWavelength intended="K-Alpha">
   <kAlpha1 unit="nm">0.0709317</kAlpha1><kAlpha2 unit="nm">0.0713607</kAlpha2>
   <ratioKAlpha2KAlpha1>0.5</ratioKAlpha2KAlpha1>
  </usedWavelength>
  <scan appendNumber="0"><dataPoints>
   <positions axis="2Theta" unit="deg"><listPositions>30.0 20.0 10.0</listPositions></positions>
   <intensities unit="counts">3 2 1</intensities>
  </dataPoints></scan>
  <scan appendNumber="1"><dataPoints>
   <positions axis="2Theta" unit="deg"><startPosition>5</startPosition>
   <endPosition>6</endPosition></positions>
   <counts unit="counts">7 8 9</counts>
  </dataPoints></scan>
 </xrdMeasurement>
</xrdMeasurements>"""


def test_xrdml_variant_namespace_listpositions(tmp_path):
    f = tmp_path / "v15.xrdml"
    f.write_text(XRDML_LIST)
    with pytest.raises(PatternFormatError, match="2 scans; pass frame=0..1"):
        read_pattern(f)                  # two scans: never a silent pick of the first
    p = read_pattern(f, frame=0)
    assert p.wavelength_angstrom == pytest.approx(0.709317)
    assert p.wavelength2_angstrom == pytest.approx(0.713607)
    assert p.x.tolist() == [10.0, 20.0, 30.0] and p.intensity.tolist() == [1, 2, 3]
    assert p.meta["n_scans"] == 2 and "reversed" in p.meta["repairs"][0]
    g = tmp_path / "no_ext.txt"          # detected by content, not extension
    g.write_text(XRDML_LIST.replace(' xmlns="http://www.xrdml.com/XRDMeasurement/1.5"', ""))
    assert read_pattern(g, frame=1).meta["format"] == "xrdml"


def test_fit2d_chi(tmp_path):
    f = tmp_path / "a.chi"
    f.write_text("a.chi: integrated\n2-Theta Angle (Degrees)\nIntensity\n       3\n"
                 "  1.0  10.0\n  1.1  11.0\n  1.2  12.0\n")
    p = read_pattern(f)
    assert p.meta["format"] == "chi" and len(p) == 3 and p.axis == "two_theta_deg"
    g = tmp_path / "q.chi"
    g.write_text("q\nQ (nm^-1)\nIntensity\n 2\n 10 1\n 11 2\n")
    assert read_pattern(g).x.tolist() == [1.0, 1.1]
    bad = tmp_path / "bad.chi"
    bad.write_text("x\n2-Theta Angle (Degrees)\nIntensity\n 5\n 1 1\n 2 2\n")
    with pytest.raises(InvalidDataError, match="5 points"):
        read_pattern(bad)


def test_headerless_axis_stated_by_user(tmp_path):
    f = tmp_path / "q.xy"
    f.write_text("1.0 5\n2.0 6\n")
    p = read_pattern(f, axis="q_inv_angstrom")
    assert p.axis == "q_inv_angstrom"
    assert np.allclose(p.d_angstrom(), 2 * np.pi / np.array([1.0, 2.0]))  # no λ needed
    with pytest.raises(MissingWavelengthError):
        p.two_theta_deg()


def test_gsas_esd_and_fxy_banks(tmp_path):
    f = tmp_path / "e.gsa"
    f.write_text("title\nBANK 1 5 1 CONST 1000.0 5.0 0 0 ESD\n"
                 "   100.0    10.0   121.0    11.0   144.0    12.0   169.0    13.0   196.0    14.0\n")
    p = read_pattern(f)
    assert p.x.tolist() == [10.0, 10.05, 10.1, 10.15, 10.2]
    assert p.sigma.tolist() == [10, 11, 12, 13, 14]
    g = tmp_path / "f.gsas"
    g.write_text("title\nBANK 1 3 3 CONS 100 1 0 0 FXY\n100 5\n101 6\n102 7\n")
    q = read_pattern(g)
    assert q.x.tolist() == [1.0, 1.01, 1.02] and q.sigma is None
    tof = tmp_path / "t.gsa"
    tof.write_text("title\nBANK 1 3 3 RALF 1 2 3 4 ALT\n 1 2 3\n")
    with pytest.raises(PatternFormatError, match="RALF"):
        read_pattern(tof)
    two = tmp_path / "two.gsa"
    two.write_text("title\nBANK 1 2 2 CONS 100 1 0 0 FXY\n100 5\n101 6\n"
                   "BANK 2 2 2 CONS 200 1 0 0 FXY\n200 7\n201 8\n")
    assert read_pattern(two).x.tolist() == [1.0, 1.01]
    assert read_pattern(two, bank=2).intensity.tolist() == [7, 8]
    with pytest.raises(PatternFormatError, match="bank 3"):
        read_pattern(two, bank=3)


def test_gsas_dos_eof_and_instrument_line(tmp_path):
    prm = tmp_path / "inst.prm"
    prm.write_text((PAT / "sync_NAC_11BM" / "11bm_gsas.prm").read_text())
    f = tmp_path / "d.gsa"
    f.write_text("title\nInstrument parameter file:inst.prm\n"
                 "BANK 1 3 3 CONS 100 1 0 0 FXY\n100 5\n101 6\n102 7\n\x1a")
    p = read_pattern(f)
    assert len(p) == 3 and p.wavelength_angstrom == pytest.approx(0.413909)
    assert "inst.prm" in p.meta["wavelength_source"]


def test_gsas2_instprm(tmp_path):
    f = tmp_path / "i.instprm"
    f.write_text("#GSAS-II instrument parameter file\nType:PXC\nLam1:1.540593\nLam2:1.544427\n"
                 "I(L2)/I(L1):0.5\nZero:0.0\n")
    assert read_gsas_instprm_wavelength(f) == (1.540593, 1.544427, 0.5)
    g = tmp_path / "bad.prm"
    g.write_text("INS   BANK      1\nINS   HTYPE   PNTR\nINS  1 ICONS   7500.0  -2.0  3.0\n")
    with pytest.raises(PatternFormatError, match="time-of-flight"):
        read_gsas_instprm_wavelength(g)


# ---------------------------------------------------------------------------
# NeXus / HDF5
# ---------------------------------------------------------------------------
def _nx_file(path: Path, y, x, *, units="degrees", xname="two_theta", wl=None, wl_units="nm",
             temp=None, t_units="K", nxdata=True):
    with h5py.File(path, "w") as f:
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        d = e.create_group("reduced")
        if nxdata:
            d.attrs["NX_class"] = "NXdata"
            d.attrs["signal"] = "I"
            d.attrs["axes"] = [".", xname] if np.ndim(y) == 2 else [xname]
        d.create_dataset("I", data=y)
        d.create_dataset("I_errors", data=np.sqrt(np.abs(y)))
        xd = d.create_dataset(xname, data=x)
        xd.attrs["units"] = units
        if wl is not None:
            m = e.create_group("instrument").create_group("mono")
            m.attrs["NX_class"] = "NXmonochromator"
            w = m.create_dataset("wavelength", data=wl)
            w.attrs["units"] = wl_units
        if temp is not None:
            s = e.create_group("sample")
            s.attrs["NX_class"] = "NXsample"
            t = s.create_dataset("temperature", data=temp)
            t.attrs["units"] = t_units


def test_nexus_1d(tmp_path):
    f = tmp_path / "p.nxs"
    _nx_file(f, np.array([1.0, 2.0, 3.0]), np.array([10.0, 10.1, 10.2]), wl=0.0154056,
             temp=300.0)
    p = read_pattern(f)
    assert p.meta["format"] == "nexus" and p.axis == "two_theta_deg"
    assert p.wavelength_angstrom == pytest.approx(0.154056)
    assert p.temperature_c == pytest.approx(26.85)
    assert np.allclose(p.sigma, np.sqrt([1, 2, 3]))
    g = tmp_path / "q.h5"
    _nx_file(g, np.array([1.0, 2.0]), np.array([10.0, 20.0]), units="1/nm", xname="q")
    assert read_pattern(g).x.tolist() == [1.0, 2.0] and read_pattern(g).axis == "q_inv_angstrom"


def test_nexus_stacked_2d_is_a_series(tmp_path):
    from xtal.io import read_series
    f = tmp_path / "stack.h5"
    y = np.arange(12, dtype=float).reshape(3, 4) + 1
    _nx_file(f, y, np.array([5.0, 5.1, 5.2, 5.3]), wl=0.041, temp=[300.0, 310.0, 320.0])
    with pytest.raises(PatternFormatError, match="3 frames"):
        read_pattern(f)
    assert read_pattern(f, frame=1).intensity.tolist() == [5, 6, 7, 8]
    da = read_series(f)
    assert da.sizes["frame"] == 3
    assert np.allclose(da.temperature_c, np.array([300, 310, 320]) - 273.15)
    assert da.attrs["wavelength_angstrom"] == pytest.approx(0.41)
    assert list(da.segment.values) == ["heating"] * 3


def test_hdf5_without_nxdata(tmp_path):
    f = tmp_path / "plain.h5"
    _nx_file(f, np.array([1.0, 2.0]), np.array([1.0, 2.0]), nxdata=False)
    before = _digest(f)
    with pytest.raises(PatternFormatError, match="no NXdata") as ei:
        read_pattern(f)
    assert "plain.h5" in str(ei.value)
    assert _digest(f) == before


def test_truncated_hdf5_and_netcdf(tmp_path):
    from xtal.io import read_series
    good = tmp_path / "good.h5"
    _nx_file(good, np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(PatternFormatError, match="bad.h5"):
        read_pattern(bad)
    with pytest.raises(XtalError, match="bad.h5"):
        read_series(bad)
    nc = tmp_path / "bad.nc"
    nc.write_bytes(b"CDF\x01" + b"\x00" * 40)
    with pytest.raises(XtalError, match="bad.nc"):
        read_series(nc)
    with pytest.raises(PatternFormatError, match="read_series"):
        read_pattern(nc)


# ---------------------------------------------------------------------------
# Writers: round trips, atomicity, overwrite protection
# ---------------------------------------------------------------------------
def _assert_same(a: Pattern, b: Pattern, sigma=True):
    assert np.array_equal(a.x, b.x) and np.array_equal(a.intensity, b.intensity)
    if sigma:
        assert (a.sigma is None and b.sigma is None) or np.array_equal(a.sigma, b.sigma)
    for k in ("axis", "wavelength_angstrom", "wavelength2_angstrom", "ka2_ratio",
              "temperature_c", "time_s", "frame"):
        assert getattr(a, k) == getattr(b, k), k


@pytest.mark.parametrize("ext", [".xye", ".xy", ".csv", ".h5", ".nxs"])
def test_round_trip_pattern(tmp_path, ext):
    x = np.linspace(5, 6, 101) + 1e-13
    rng = np.random.default_rng(1)
    y = rng.random(101) * 1000 + 0.1
    p = Pattern(x=x, intensity=y, sigma=np.sqrt(y), wavelength_angstrom=1.540593,
                wavelength2_angstrom=1.544427, ka2_ratio=0.5, temperature_c=-12.25,
                time_s=61.5, frame=3, source=str(tmp_path / "orig.xye"),
                meta={"sample": "Li2B12H12", "run": 7})
    out = write_pattern(p, tmp_path / f"out{ext}")
    q = read_pattern(out)
    _assert_same(p, q, sigma=ext != ".xy")
    if ext == ".xy":
        assert q.sigma is None
    assert q.meta["sample"] == "Li2B12H12" and q.meta["run"] == 7
    assert q.source == str(out)


@pytest.mark.parametrize("axis", ["q_inv_angstrom", "d_angstrom"])
def test_round_trip_other_axes_without_wavelength(tmp_path, axis):
    p = Pattern(x=np.array([1.0, 2.0, 3.0]), intensity=np.array([4.0, 5.0, 6.0]), axis=axis)
    for ext in (".xye", ".csv", ".h5"):
        q = read_pattern(write_pattern(p, tmp_path / f"o{ext}"))
        _assert_same(p, q)
    with pytest.raises(MissingWavelengthError):
        read_pattern(tmp_path / "o.xye", require_wavelength=True)


def test_round_trip_real_file(tmp_path, nac):
    q = read_pattern(write_pattern(nac, tmp_path / "nac.xye"))
    _assert_same(nac, q)


def test_writer_refuses_to_overwrite(tmp_path):
    src = tmp_path / "in.xy"
    src.write_text("1 2\n2 3\n")
    p = read_pattern(src)
    before = _digest(src)
    with pytest.raises(OverwriteError, match="input"):
        write_pattern(p, src, overwrite=True)
    with pytest.raises(OverwriteError):
        write_pattern(p, tmp_path / "." / "in.xy", overwrite=True)
    assert _digest(src) == before
    out = write_pattern(p, tmp_path / "out.xy")
    with pytest.raises(OverwriteError, match="exists"):
        write_pattern(p, out)
    write_pattern(p, out, overwrite=True)
    with pytest.raises(PatternFormatError):
        write_pattern(p, tmp_path / "x.pdf")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("keep")

    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom, overwrite=True)
    assert target.read_text() == "keep"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["t.txt"]


# ---------------------------------------------------------------------------
# Bad files: each a specific XtalError naming the file, user files untouched
# ---------------------------------------------------------------------------
BAD = {
    "nan.xy": ("10 1\n10.1 nan\n10.2 3\n", InvalidDataError, "NaN"),
    "inf.xye": ("10 1 1\n10.1 inf 1\n", InvalidDataError, "NaN/inf"),
    "nonmono.xy": ("10 1\n10.2 2\n10.1 3\n", InvalidDataError, "not monotonic"),
    "dup.xy": ("10 1\n10 2\n", InvalidDataError, "not monotonic"),
    "missingcol.xye": ("10 1 1\n10.1 2\n10.2 3 1\n", InvalidDataError, "line 2"),
    "onecol.xy": ("10\n11\n", InvalidDataError, "one column"),
    "negative.xye": ("10 -500 10\n10.1 100 10\n", InvalidDataError, "negative counts"),
    "negsigma.xye": ("10 5 -1\n10.1 100 10\n", InvalidDataError, "negative sigma"),
    "empty.xy": ("", EmptyPatternError, "empty"),
    "blank.dat": ("\n   \n\t\n", EmptyPatternError, "empty"),
    "onlyheader.xy": ("# wavelength = 1.54\n# nothing else\n", EmptyPatternError, "no numeric"),
    "words.txt": ("hello world\nthis is not a pattern\n", EmptyPatternError, "no numeric"),
    "garbage.xy": (None, PatternFormatError, "binary"),
    "trunc.gsa": ("t\nBANK 1 20 2 CONST 1000 5 0 0 STD\n       1       2\n", InvalidDataError,
                  "truncated"),
    "badbank.gsas": ("t\nBANK x\n", PatternFormatError, "BANK"),
    "broken.xrdml": ("<?xml version='1.0'?><xrdMeasurements><scan>", PatternFormatError, "XML"),
    "nocounts.xrdml": ("<?xml version='1.0'?><a><scan><dataPoints><positions axis='2Theta'>"
                       "<startPosition>1</startPosition><endPosition>2</endPosition>"
                       "</positions></dataPoints></scan></a>", EmptyPatternError, "counts"),
    "comment.xy": ("/* never closed\n1 2\n", PatternFormatError, "unterminated"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files(tmp_path, name):
    content, exc, words = BAD[name]
    f = tmp_path / name
    if content is None:
        f.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    else:
        f.write_text(content)
    before = _digest(f)
    with pytest.raises(exc, match=words) as ei:
        read_pattern(f)
    assert name in str(ei.value)
    assert _digest(f) == before


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PatternError, match="not found"):
        read_pattern(tmp_path / "nope.xy")
    with pytest.raises(PatternError, match="directory"):
        read_pattern(tmp_path)


def test_repairs_are_documented(tmp_path):
    f = tmp_path / "rev.xy"
    f.write_text("10.2 3\n10.1 2\n10.0 1\n")
    p = read_pattern(f)
    assert p.x.tolist() == [10.0, 10.1, 10.2] and p.intensity.tolist() == [1, 2, 3]
    assert "reversed" in p.meta["repairs"][0]
    g = tmp_path / "bkgsub.xye"
    g.write_text("10 -5 10\n10.1 100 10\n")          # negative but consistent with zero
    q = read_pattern(g)
    assert q.meta["n_negative"] == 1


def test_pattern_constructor_validates():
    with pytest.raises(InvalidDataError):
        Pattern(x=np.array([1.0, np.nan]), intensity=np.array([1.0, 2.0]))
    with pytest.raises(InvalidDataError):
        Pattern(x=np.array([2.0, 1.0]), intensity=np.array([1.0, 2.0]))
    with pytest.raises(InvalidDataError):
        Pattern(x=np.array([1.0, 2.0]), intensity=np.array([1.0]))
    with pytest.raises(EmptyPatternError):
        Pattern(x=np.array([]), intensity=np.array([]))
    with pytest.raises(PatternError):
        Pattern(x=np.array([1.0]), intensity=np.array([1.0]), axis="energy")


# ---------------------------------------------------------------------------
# Fuzzing: mutated real files never raise anything but XtalError
# ---------------------------------------------------------------------------
def _seed_files() -> list[tuple[str, bytes]]:
    out = []
    for p, n in ((NAC, 3000), (PBSO4, 3000), (LAB6, 2500), (BIFEO3, 1500), (XRDML, 8000),
                 (CUCR / "OH_00.fxye", 2500)):
        data = p.read_bytes()
        if p == XRDML:
            out.append((p.name, data))
        else:
            cut = data[:n]
            out.append((p.name, cut[: cut.rfind(b"\n") + 1]))
    return out


SEEDS = _seed_files()
TOKENS = [b"nan", b"inf", b"-", b"BANK 1 3 3 CONST 1 2 0 0 STD\n", b"\x00", b"=", b":", b"#",
          b"/*", b"<", b"</scan>", b"\n", b" ", b"1e999", b",", b";", b"-1e5", b"\xff\xfe",
          b"FXYE", b"9999999999999999999999", b"e", b".", b"<?xml"]


@st.composite
def mutated(draw):
    name, data = draw(st.sampled_from(SEEDS))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 4))
        pos = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == 0 and buf:
            buf[pos] = draw(st.integers(0, 255))
        elif op == 1:
            buf[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == 2:
            end = pos + draw(st.integers(1, 200))
            del buf[pos:end]
        elif op == 3:
            buf = buf[:pos]
        else:
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=20))
    return name, bytes(buf)


@settings(max_examples=int(__import__("os").environ.get("XTAL_FUZZ", 300)), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_fuzzed_real_files_raise_only_xtal_errors(tmp_path_factory, case):
    name, data = case
    f = tmp_path_factory.mktemp("fuzz") / name
    f.write_bytes(data)
    try:
        p = read_pattern(f)
    except XtalError:
        return
    assert np.all(np.isfinite(p.x)) and np.all(np.diff(p.x) > 0)
    assert f.read_bytes() == data


# ---------------------------------------------------------------------------
# Thermal series
# ---------------------------------------------------------------------------
import types  # noqa: E402

import xarray as xr  # noqa: E402

from xtal.errors import SeriesError  # noqa: E402
from xtal.io import (  # noqa: E402
    iter_series_frames,
    label_segments,
    natural_sort_key,
    read_series,
    series_frame,
    temperature_from_name,
    write_series,
)

CUCR_T_K = [6.778, 16.702, 46.97, 75.42, 98.89, 111.43, 122.73, 134.02, 145.47, 156.9, 168.43,
            185.67, 203.0, 220.3, 243.4, 266.9, 288.7]
CUCR_FILES = ["OH_00", "OH_04", "OH_09", "OH_14", "OH_19", "OH_22", "OH_24", "OH_26", "OH_28",
              "OH_30", "OH_32", "OH_35", "OH_38", "OH_41", "OH_45", "OH_49", "OH_53"]


@pytest.fixture(scope="module")
def cucr():
    return read_series(CUCR)


def test_cucr2o4_series(cucr):
    da = cucr
    assert da.dims == ("frame", "two_theta_deg")
    assert da.sizes["frame"] == 17 and da.sizes["two_theta_deg"] == 12799
    assert [Path(s).stem for s in da.source.values] == CUCR_FILES      # acquisition order
    assert np.allclose(da.temperature_c.values + 273.15, CUCR_T_K)
    assert da.attrs["wavelength_angstrom"] == pytest.approx(0.413263)
    assert float(da.two_theta_deg[0]) == pytest.approx(0.5)
    assert float(da.two_theta_deg[-1]) == pytest.approx(26.096)
    assert np.allclose(np.diff(da.two_theta_deg.values), 0.002)
    assert set(da.segment.values) == {"heating"}
    assert da.attrs["interpolation"] == "none"
    assert "sigma" in da.coords and da.sigma.dims == ("frame", "two_theta_deg")
    # time from the 'Scan time' headers, relative to the first frame (a pause between ramps)
    assert da.time_s.values[0] == 0 and np.all(np.diff(da.time_s.values) > 0)
    assert da.time_s.values[-1] == pytest.approx(18407.883708, abs=1e-3)
    assert list(da.temperature_source.values) == ["header"] * 17


def test_cucr2o4_series_with_instrument_wavelength():
    da = read_series(sorted(CUCR.glob("*.fxye"))[:2], instrument=CUCR / "OH_00.prm")
    assert da.attrs["wavelength_angstrom"] == pytest.approx(0.413263)


def test_iter_series_frames_streams_patterns():
    gen = iter_series_frames(str(CUCR / "OH_0*.fxye"))
    assert isinstance(gen, types.GeneratorType)
    first = next(gen)
    assert isinstance(first, Pattern) and first.frame == 0
    assert Path(first.source).name == "OH_00.fxye"
    rest = list(gen)
    assert [Path(p.source).name for p in rest] == ["OH_04.fxye", "OH_09.fxye"]
    assert [p.frame for p in rest] == [1, 2]


def test_series_round_trip_netcdf_and_hdf5(tmp_path, cucr):
    for name in ("s.nc", "s.h5"):
        out = write_series(cucr, tmp_path / name)
        back = read_series(out)
        assert back.dims == cucr.dims
        assert np.array_equal(back.values, cucr.values)
        assert np.array_equal(back.two_theta_deg.values, cucr.two_theta_deg.values)
        for c in ("temperature_c", "time_s", "sigma"):
            assert np.array_equal(back[c].values, cucr[c].values), c
        for c in ("segment", "source", "temperature_source"):
            assert [str(v) for v in back[c].values] == [str(v) for v in cucr[c].values], c
        assert back.attrs["wavelength_angstrom"] == cucr.attrs["wavelength_angstrom"]
        assert back.attrs["interpolation"] == "none"
        p = series_frame(back, 3)
        assert p.wavelength_angstrom == pytest.approx(0.413263)
        assert p.temperature_c == pytest.approx(75.42 - 273.15)
        with pytest.raises(OverwriteError):
            write_series(back, out, overwrite=True)        # never over the series' own file
    with pytest.raises(OverwriteError, match="exists"):
        write_series(cucr, tmp_path / "s.nc")


def test_write_series_refuses_source_frames(tmp_path):
    for i, t in enumerate((20, 30)):
        _frame(tmp_path / f"f_{i}_T{t}C.xye", np.linspace(10, 11, 11), wl=1.5406)
    da = read_series(tmp_path)
    src = tmp_path / "f_0_T20C.xye"
    before = _digest(src)
    with pytest.raises(OverwriteError, match="input"):
        write_series(da, src.with_suffix(".xye").with_name("f_0_T20C.xye"), fmt="netcdf",
                     overwrite=True)
    assert _digest(src) == before
    with pytest.raises(PatternFormatError):
        write_series(da, tmp_path / "s.xye")


def _frame(path: Path, x, *, wl=None, header=(), y=None):
    lines = [f"# wavelength = {wl}"] if wl else []
    lines += [f"# {h}" for h in header]
    y = np.full(len(x), 100.0) if y is None else y
    lines += [f"{a!r} {b!r} {math.sqrt(b)!r}" for a, b in zip(np.asarray(x, float).tolist(),
                                                            np.asarray(y, float).tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


RAMP = [25.0, 50.0, 75.0, 100.0, 100.0, 100.2, 100.1, 99.9, 80.0, 60.0, 40.0]


def _ramp_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    x = np.linspace(10, 12, 21)
    for i, t in enumerate(RAMP):
        _frame(d / f"run_{i + 1:04d}_T{t}C.xye", x, wl=0.71073)
    return d


def test_series_ramp_hold_cool_from_file_names(tmp_path):
    d = _ramp_dir(tmp_path)
    mtimes = {p.name: _digest(p) for p in d.iterdir()}
    da = read_series(d)
    assert da.sizes["frame"] == len(RAMP)
    assert np.allclose(da.temperature_c, RAMP)                # order kept, never sorted by T
    assert list(da.segment.values) == ["heating"] * 3 + ["isothermal"] * 5 + ["cooling"] * 3
    assert list(da.temperature_source.values) == ["file name"] * len(RAMP)
    assert da.attrs["segment_tolerance_c"] == 0.5
    assert da.attrs["wavelength_angstrom"] == 0.71073
    assert {p.name: _digest(p) for p in d.iterdir()} == mtimes


def test_natural_sort_not_lexical(tmp_path):
    x = np.linspace(1, 2, 5)
    for n, t in ((10, 5), (2, 300), (1, 400)):
        _frame(tmp_path / f"frame_{n}_{t}K.xy", x, wl=1.0)
    da = read_series(tmp_path)
    assert [Path(s).name for s in da.source.values] == ["frame_1_400K.xy", "frame_2_300K.xy",
                                                        "frame_10_5K.xy"]
    assert np.allclose(da.temperature_c + 273.15, [400, 300, 5])
    assert list(da.segment.values) == ["cooling"] * 3
    assert sorted(["f10", "f2", "f1"], key=natural_sort_key) == ["f1", "f2", "f10"]


def test_temperature_from_name():
    assert temperature_from_name("run_0012_T153.5C.xye") == 153.5
    assert temperature_from_name("frame_25K.xy") == pytest.approx(25 - 273.15)
    assert temperature_from_name("s_T-10C.xy") == -10
    assert temperature_from_name("s_T153p5C.xy") == 153.5
    assert temperature_from_name("OH_00.fxye") is None
    assert temperature_from_name("sample_ABC.xy") is None


def test_label_segments_rules():
    assert label_segments([]) == []
    assert label_segments([20.0]) == ["isothermal"]
    assert label_segments([20, 20.1, 19.9, 20.2]) == ["isothermal"] * 4
    assert label_segments([20, 40, np.nan, 60]) == ["heating", "heating", "unknown", "heating"]
    assert label_segments([100, 90, 80], tolerance_c=0.5) == ["cooling"] * 3
    # a steady ramp is a ramp however fine its steps against the tolerance: its runs within the
    # tolerance drift by about the whole tolerance, a hold's do not
    slow = [20, 20.2, 20.4, 20.6, 20.8]
    assert label_segments(slow, tolerance_c=0.1) == ["heating"] * 5
    assert label_segments(slow, tolerance_c=1.0) == ["heating"] * 5
    # a beamline-like programme: 0.19 °C per frame up, a 30-frame hold with 0.05 °C of read-back
    # noise, the same rate down (it once came out "isothermal" from end to end)
    up = 25.0 + 0.19 * np.arange(100)
    held = up[-1] + 0.19 + np.random.default_rng(0).normal(0.0, 0.05, 30)
    down = held[-1] - 0.19 * np.arange(1, 50)
    lab = label_segments(np.r_[up, held, down])
    assert lab[:98] == ["heating"] * 98
    assert lab[100:130] == ["isothermal"] * 30
    assert lab[133:] == ["cooling"] * 46


@pytest.mark.parametrize("header,values,expect_k,note", [
    ("file,T(K)", [300, 310, 320], True, False),
    ("filename;temperature_C", [25, 30, 35], False, False),
    ("scan,temp", [300, 310, 320], True, True),          # no unit, > 200: inferred K, reported
    ("Frame\tTemp", [25, 30, 35], False, True),           # no unit: taken as °C, reported
])
def test_series_with_log(tmp_path, header, values, expect_k, note):
    d = tmp_path / "frames"
    d.mkdir()
    x = np.linspace(5, 6, 11)
    names = []
    for i in range(3):
        names.append(_frame(d / f"scan_{i + 1:03d}.xy", x, wl=0.5).name)
    sep = "," if "," in header else ";" if ";" in header else "\t"
    log = tmp_path / "log.csv"
    keys = names if header.lower().startswith("file") else [str(i + 1) for i in range(3)]
    log.write_text(header + "\n" + "\n".join(f"{k}{sep}{v}" for k, v in zip(keys, values)) + "\n")
    da = read_series(d, temperatures=log)
    expect = np.array(values) - (273.15 if expect_k else 0)
    assert np.allclose(da.temperature_c, expect)
    assert ("temperature_unit_note" in da.attrs) == note
    if note and expect_k:
        assert "> 200" in da.attrs["temperature_unit_note"]
    assert list(da.temperature_source.values) == ["log"] * 3


def test_log_that_misses_frames(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        _frame(d / f"p{i}.xy", np.linspace(1, 2, 5), wl=1.0)
    log = tmp_path / "temps.csv"
    log.write_text("file,T_C,time_s\np0.xy,20,0\np2.xy,40,60\n")
    with pytest.raises(SeriesError, match="p1.xy") as ei:
        read_series(d, temperatures=log)
    assert "temps.csv" in str(ei.value)
    log.write_text("file,temperature\np0.xy,20\n")
    with pytest.raises(SeriesError, match="2 frame"):
        read_series(d, temperatures=log)
    log.write_text("file,pressure\np0.xy,1\n")
    with pytest.raises(SeriesError, match="no temperature column"):
        read_series(d, temperatures=log)


def test_log_numeric_file_column_and_setpoint(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in (7, 8):
        _frame(d / f"img_{i:05d}.xy", np.linspace(1, 2, 5), wl=1.0)
    log = tmp_path / "run.csv"
    log.write_text("file;setpoint (C);T_sample (C)\n7;100;98.5\n8;100;99.5\n")
    da = read_series(d, temperatures=log)
    assert da.temperature_c.values.tolist() == [98.5, 99.5]


def test_log_time_column_and_extra_rows(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(2):
        _frame(d / f"p{i}.xy", np.linspace(1, 2, 5), wl=1.0)
    log = tmp_path / "temps.csv"
    log.write_text("# temperatures in K\nfilename,T,time (min)\np0,300,0\np1,305,2\np9,310,4\n")
    da = read_series(d, temperatures=log)
    assert np.allclose(da.temperature_c, [300 - 273.15, 305 - 273.15])
    assert da.time_s.values.tolist() == [0.0, 120.0]
    assert "match no frame" in da.attrs["notes"]


def test_series_given_temperatures_and_headers(tmp_path):
    x = np.linspace(1, 2, 5)
    for i, t in enumerate((20, 25)):
        _frame(tmp_path / f"a{i}.xy", x, wl=1.0, header=[f"Temperature: {t + 273.15} K"])
    da = read_series(tmp_path)
    assert np.allclose(da.temperature_c, [20, 25])
    da = read_series(tmp_path, temperatures=[1.0, 2.0])
    assert da.temperature_c.values.tolist() == [1.0, 2.0]
    with pytest.raises(SeriesError, match="3 temperatures"):
        read_series(tmp_path, temperatures=[1.0, 2.0, 3.0])


def test_series_empty_directory(tmp_path):
    (tmp_path / "notes.md").write_text("no patterns here")
    with pytest.raises(SeriesError, match="no pattern files"):
        read_series(tmp_path)
    with pytest.raises(SeriesError):
        read_series(str(tmp_path / "*.xye"))
    with pytest.raises(SeriesError):
        read_series(tmp_path / "missing_dir")


def test_series_different_wavelengths(tmp_path):
    x = np.linspace(1, 2, 5)
    _frame(tmp_path / "a1.xy", x, wl=0.71073)
    _frame(tmp_path / "a2.xy", x, wl=1.5406)
    with pytest.raises(SeriesError, match="a1.xy.*a2.xy"):
        read_series(tmp_path)
    _frame(tmp_path / "a2.xy", x)  # now: no λ in one frame
    with pytest.raises(SeriesError, match="a2.xy"):
        read_series(tmp_path)
    da = read_series(tmp_path, wavelength_angstrom=0.71073)
    assert da.attrs["wavelength_angstrom"] == 0.71073


def test_series_grids_need_regrid(tmp_path):
    _frame(tmp_path / "g1.xye", np.linspace(10, 12, 21), wl=1.0, y=np.linspace(1, 21, 21))
    _frame(tmp_path / "g2.xye", np.linspace(10.05, 12.05, 21), wl=1.0, y=np.linspace(1, 21, 21))
    with pytest.raises(SeriesError, match="regrid=True"):
        read_series(tmp_path)
    da = read_series(tmp_path, regrid=True)
    assert "linear" in da.attrs["interpolation"] and "g2.xye" in da.attrs["interpolation"]
    assert float(da.two_theta_deg[0]) == pytest.approx(10.1)
    assert float(da.two_theta_deg[-1]) == pytest.approx(12.0)
    assert da.values[1, 0] == pytest.approx(1.5)      # interpolated between 1 and 2
    # identical grids within tolerance need no regridding
    _frame(tmp_path / "g2.xye", np.linspace(10, 12, 21) + 1e-9, wl=1.0)
    assert read_series(tmp_path).attrs["interpolation"] == "none"


def test_series_from_wide_table(tmp_path):
    f = tmp_path / "table.dat"
    rows = "\n".join(f"{10 + i * 0.1!r} {i + 1} {i + 2} {i + 3}" for i in range(5))
    f.write_text("# wavelength = 0.5\n# 2theta T25C T50C T75C\n" + rows + "\n")
    da = read_series(f)
    assert da.sizes["frame"] == 3
    assert da.temperature_c.values.tolist() == [25.0, 50.0, 75.0]
    assert da.attrs["wavelength_angstrom"] == 0.5
    assert da.values[:, 0].tolist() == [1, 2, 3]


def test_series_from_single_two_column_file(tmp_path):
    f = _frame(tmp_path / "one_T30C.xye", np.linspace(1, 2, 5), wl=1.0)
    da = read_series(f)
    assert da.sizes["frame"] == 1 and da.temperature_c.values.tolist() == [30.0]


def test_series_xarray_contract(cucr):
    assert isinstance(cucr, xr.DataArray) and cucr.name == "intensity"
    for c in ("temperature_c", "time_s", "segment", "source"):
        assert cucr[c].dims == ("frame",)


# ---------------------------------------------------------------------------
# Property tests: round trips of arbitrary valid patterns; fuzzed temperature logs
# ---------------------------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def patterns(draw):
    n = draw(st.integers(1, 40))
    steps = draw(st.lists(st.floats(1e-3, 3, allow_nan=False), min_size=n, max_size=n))
    x = draw(st.floats(0.01, 50)) + np.cumsum(steps)
    y = np.array(draw(st.lists(st.floats(0, 1e7, allow_nan=False), min_size=n, max_size=n)))
    sig = None if draw(st.booleans()) else np.sqrt(y) + 1
    wl = draw(st.one_of(st.none(), st.floats(0.1, 3.0)))
    return Pattern(x=x, intensity=y, sigma=sig, wavelength_angstrom=wl,
                   temperature_c=draw(st.one_of(st.none(), st.floats(-270, 2000))),
                   time_s=draw(st.one_of(st.none(), st.floats(0, 1e6))),
                   frame=draw(st.one_of(st.none(), st.integers(0, 10**6))),
                   meta={"label": draw(st.text(max_size=20))})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(p=patterns(), ext=st.sampled_from([".xye", ".csv", ".h5", ".xy"]))
def test_round_trip_property(tmp_path_factory, p, ext):
    out = write_pattern(p, tmp_path_factory.mktemp("rt") / f"p{ext}")
    q = read_pattern(out)
    _assert_same(p, q, sigma=ext != ".xy")
    assert q.meta["label"] == p.meta["label"]


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("fileTtempK,;\t\n 0123456789.-_xyC#")),
                    max_size=120))
def test_fuzzed_logs_raise_only_series_errors(tmp_path_factory, text):
    from xtal.io import read_series
    d = tmp_path_factory.mktemp("flog")
    for i in range(2):
        _frame(d / f"f{i}.xy", np.linspace(1, 2, 4), wl=1.0)
    log = d.parent / f"{d.name}_log.csv"
    log.write_text(text)
    try:
        da = read_series(d, temperatures=log)
    except XtalError:
        return
    assert da.sizes["frame"] == 2


@pytest.mark.parametrize("name", ["m.nc", "m.h5"])
def test_minimal_foreign_series_round_trip(tmp_path, name):
    """A DataArray built elsewhere (e.g. xtal.synth) with only T: coords are completed."""
    da = xr.DataArray(np.arange(15.0).reshape(3, 5), dims=("frame", "q_inv_angstrom"),
                      coords={"q_inv_angstrom": np.linspace(1, 2, 5),
                              "temperature_c": ("frame", [30.0, 30.1, 29.9])},
                      attrs={"wavelength_angstrom": 0.71073, "synthetic": "yes"})
    back = read_series(write_series(da, tmp_path / name))
    assert back.dims == ("frame", "q_inv_angstrom")
    assert np.array_equal(back.values, da.values)
    assert list(back.segment.values) == ["isothermal"] * 3
    assert back.attrs["wavelength_angstrom"] == 0.71073 and back.attrs["synthetic"] == "yes"
    assert [str(s) for s in back.source.values] == [f"{tmp_path / name}#{i}" for i in range(3)]
    with pytest.raises(SeriesError):
        write_series(da.isel(frame=0), tmp_path / "x.nc")
