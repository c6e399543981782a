"""Instrument and beamline formats (issue 14): the real files of ../shared/reference/formats read
with the points, range, end values and λ their PROVENANCE.md states, or refused by name; and
multi-range/scan/block files of every format built by their specification."""
from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from conftest import REFERENCE
from xtal.errors import InvalidDataError, PatternFormatError, XtalError
from xtal.io import read_pattern, read_series, write_pattern
from xtal.io.pattern import Pattern

FMT = REFERENCE / "formats"


def _check(p, n, x0, x1, y0=None, y1=None, wl=None, axis="two_theta_deg"):
    assert len(p) == n
    assert p.axis == axis
    assert p.x[0] == pytest.approx(x0, abs=1e-4) and p.x[-1] == pytest.approx(x1, abs=1e-4)
    if y0 is not None:
        assert p.intensity[0] == pytest.approx(y0)
    if y1 is not None:
        assert p.intensity[-1] == pytest.approx(y1)
    if wl is None:
        assert p.wavelength_angstrom is None
    else:
        assert p.wavelength_angstrom == pytest.approx(wl)


# --- the real files --------------------------------------------------------------------------
def test_xrdml_area_scan_needs_a_choice():
    f = FMT / "xrdtools__test_area.xrdml"
    with pytest.raises(PatternFormatError, match="76 scans; pass frame=0..75"):
        read_pattern(f)
    p = read_pattern(f, frame=0)
    _check(p, 75, 73.04, 78.96, 13.0, 4.0, 1.540598)
    assert p.sigma is None and p.meta["n_scans"] == 76 and p.meta["scan"] == 0
    da = read_series(f, regrid=True)
    assert da.sizes["frame"] == 76


def test_gsas_title_with_nul_bytes_is_read():
    p = read_pattern(FMT / "gsas2tut__La7Ca3MnO3_50k.gsas")
    _check(p, 3296, 3.0, 167.75, 344.0, 876.0)
    assert p.sigma is not None and np.all(p.sigma > 0)


def test_gsas_tof_refused_by_name():
    with pytest.raises(PatternFormatError, match="time-of-flight data are not supported"):
        read_pattern(FMT / "gsas2tut__PG3_22048.gsa")


def test_sbi3_xye():
    p = read_pattern(FMT / "xrdconv__SbI3.xye")
    _check(p, 1399, 10.0001, 59.9875, 1493.0, 72.0)
    assert p.sigma[[0, -1]] == pytest.approx([38.639358, 8.485281])


@pytest.mark.parametrize("name,fmt", [("xrdconv__SbI3.raw", "bruker_raw"),
                                      ("xrdconv__SbI3.brml", "brml")])
def test_bruker_raw_and_brml_agree_with_the_xye(name, fmt):
    xye = read_pattern(FMT / "xrdconv__SbI3.xye")
    p = read_pattern(FMT / name)
    assert p.meta["format"] == fmt
    _check(p, 1399, 10.0001, 59.9875, 1493.0, 72.0, 1.5406)
    assert p.wavelength2_angstrom == pytest.approx(1.54439) and p.ka2_ratio == pytest.approx(0.5)
    assert np.allclose(p.x, xye.x, atol=1e-4)
    assert np.array_equal(p.intensity, xye.intensity)


def test_pyfai_caked_refused_with_how_to_choose():
    f = FMT / "lightform__pixium_03150.dat"
    with pytest.raises(PatternFormatError, match=r"37 unnamed numeric columns.*columns=\(x, y"):
        read_pattern(f)
    p = read_pattern(f, columns=(0, 1))
    _check(p, 5000, 2.0006, 7.99940095, 1.98253202, 2.7606945)
    assert p.sigma is None and len(p.meta["ignored_columns"]) == 35


def test_ssrl_csv_hash_header_names_tth():
    f = FMT / "ssrl__lab6_th3_scan1.csv"
    with pytest.raises(PatternFormatError, match="no column named as the intensity.*1=tth"):
        read_pattern(f)
    p = read_pattern(f, columns=("tth", "Detector"))
    _check(p, 61, 5.0, 50.0)
    assert p.meta["columns"][:2] == ["#", "tth"]


def test_xpdfsuite_iq_spec_header():
    p = read_pattern(FMT / "pyscatt__B3_Bronze-3nm_ss_001.iq")
    _check(p, 1495, 0.111649, 22.9943, 0.0, 29939.5, 0.1, axis="q_inv_angstrom")
    assert p.meta["column_roles"] == {"x": 0, "y": 1}


def test_nexus_motor_scan_refused_with_a_reason():
    with pytest.raises(PatternFormatError, match="NXdata /entry1/.* has no @signal"):
        read_pattern(FMT / "nexus__538039.nxs")


def test_rigaku_ras():
    p = read_pattern(FMT / "pyscatt__TiO2-1-6h.ras")
    assert p.meta["format"] == "ras"
    _check(p, 4251, 5.0, 90.0, 398.0, 67.0, 1.540593)
    assert p.wavelength2_angstrom is None          # RAS states no Kα2/Kα1 ratio: not invented
    assert p.meta["kalpha2_angstrom_stated"] == pytest.approx(1.544414)


def test_uxd_wavelength():
    p = read_pattern(FMT / "xylib__BT86_.UXD")
    assert p.meta["format"] == "uxd"
    _check(p, 2374, 3.0, 40.0, 187.0, 269.0, 1.5406)
    assert p.wavelength2_angstrom == pytest.approx(1.54439) and p.ka2_ratio == 0.5


def test_pdcif_alumina():
    p = read_pattern(FMT / "pdcif__ALUMINA.cif")
    assert p.meta["format"] == "pdcif"
    _check(p, 3300, 3.0, 167.95, 119.0, 203.0, 1.5402)
    assert p.sigma[[0, -1]] == pytest.approx([17.0, 14.0])
    assert p.meta["x_source"].startswith("_pd_meas_2theta_range")


# --- formats by their specification: several ranges / scans / blocks ------------------------
def _raw_v1(ranges):
    out = b""
    for i, (x0, step, y) in enumerate(ranges):
        h = bytearray(156)
        h[0:4] = b"RAW "
        struct.pack_into("<IffIIf", h, 4, len(y), 1.0, step, 0, 0, x0)
        struct.pack_into("<ff", h, 72, 1.5406, 1.54439)
        struct.pack_into("<I", h, 152, 1 if i < len(ranges) - 1 else 0)
        out += bytes(h) + np.asarray(y, "<f4").tobytes()
    return out


def _raw_v2(ranges):
    h = bytearray(256)
    h[0:4] = b"RAW2"
    struct.pack_into("<H", h, 4, len(ranges))
    struct.pack_into("<fff", h, 190, 0.70930, 0.71359, 0.5)
    out = bytes(h)
    for x0, step, y in ranges:
        r = bytearray(64)
        struct.pack_into("<HH", r, 0, 64, len(y))
        struct.pack_into("<fff", r, 8, 2.0, step, x0)
        struct.pack_into("<H", r, 46, 300)
        out += bytes(r) + np.asarray(y, "<f4").tobytes()
    return out


def _raw_v3(ranges):
    h = bytearray(712)
    h[0:7] = b"RAW1.01"
    struct.pack_into("<I", h, 12, len(ranges))
    struct.pack_into("<ddddd", h, 616, 1.5418, 1.5406, 1.54439, 1.39222, 0.5)
    out = bytes(h)
    for x0, step, y in ranges:
        r = bytearray(304)
        struct.pack_into("<IIdd", r, 0, 304, len(y), x0 / 2, x0)
        struct.pack_into("<d", r, 176, step)
        struct.pack_into("<I", r, 256, 8)
        out += bytes(r) + b"\0" * 8 + np.asarray(y, "<f4").tobytes()
    return out


RANGES = [(10.0, 0.5, [1, 2, 3]), (10.0, 0.5, [5, 6, 7])]   # e.g. one scan at two temperatures


@pytest.mark.parametrize("build,wl,ratio", [(_raw_v1, 1.5406, None), (_raw_v2, 0.7093, 0.5),
                                            (_raw_v3, 1.5406, 0.5)])
def test_bruker_raw_versions_several_ranges(tmp_path, build, wl, ratio):
    f = tmp_path / "multi.raw"
    f.write_bytes(build(RANGES))
    with pytest.raises(PatternFormatError, match="2 ranges"):
        read_pattern(f)
    p = read_pattern(f, frame=1)
    assert p.x.tolist() == [10.0, 10.5, 11.0] and p.intensity.tolist() == [5, 6, 7]
    assert p.wavelength_angstrom == pytest.approx(wl, rel=1e-5) and p.ka2_ratio == ratio
    da = read_series(f)
    assert da.sizes["frame"] == 2 and da.values[1].tolist() == [5, 6, 7]


def test_bruker_raw_truncated_is_refused(tmp_path):
    f = tmp_path / "cut.raw"
    f.write_bytes(_raw_v3(RANGES)[:-6])
    with pytest.raises(PatternFormatError, match="truncated"):
        read_pattern(f, frame=1)


def test_uxd_several_ranges_counts_and_pairs(tmp_path):
    f = tmp_path / "multi.uxd"
    f.write_text("; test\n_FILEVERSION=1\n_WL1=1.540600\n_WL2=1.544390\n_WLRATIO=0.5\n"
                 "_DRIVE='COUPLED'\n_STEPSIZE=0.5\n_START=10.0\n_TEMPERATURE=25\n_COUNTS\n"
                 "  1  2  3  4\n  5  6\n"
                 "_DRIVE='COUPLED'\n_TEMPERATURE=125\n_2THETACOUNTS\n10.0 7\n10.5 8\n11.0 9\n")
    with pytest.raises(PatternFormatError, match="2 ranges"):
        read_pattern(f)
    p0, p1 = read_pattern(f, frame=0), read_pattern(f, frame=1)
    assert p0.x == pytest.approx([10.0, 10.5, 11.0, 11.5, 12.0, 12.5])
    assert p0.intensity.tolist() == [1, 2, 3, 4, 5, 6] and p0.temperature_c == 25
    assert p1.x.tolist() == [10.0, 10.5, 11.0] and p1.temperature_c == 125
    assert p1.wavelength2_angstrom == pytest.approx(1.54439) and p1.ka2_ratio == 0.5
    da = read_series(f, regrid=True)
    assert da.sizes["frame"] == 2 and da["temperature_c"].values.tolist() == [25, 125]


RAS_SCAN = ('*RAS_HEADER_START\n*HW_XG_WAVE_LENGTH_ALPHA1 "1.540593"\n'
            '*MEAS_SCAN_AXIS_X_INTERNAL "{axis}"\n*RAS_HEADER_END\n*RAS_INT_START\n'
            '{rows}*RAS_INT_END\n')


def test_ras_several_scans_and_attenuator(tmp_path):
    rows = "10.0 100 1.000\n10.1 50 10.000\n10.2 30 1.000\n"
    f = tmp_path / "two.ras"
    f.write_bytes(("*RAS_DATA_START\n" + RAS_SCAN.format(axis="TwoThetaTheta", rows=rows) * 2
                   + "*RAS_DATA_END\n").encode("shift_jis"))
    with pytest.raises(PatternFormatError, match="2 scans"):
        read_pattern(f)
    p = read_pattern(f, frame=1)
    assert p.intensity.tolist() == [100, 500, 30]          # counts × attenuation factor
    assert p.wavelength_angstrom == pytest.approx(1.540593)
    g = tmp_path / "omega.ras"
    g.write_text("*RAS_DATA_START\n" + RAS_SCAN.format(axis="Omega", rows=rows))
    with pytest.raises(PatternFormatError, match="'Omega' scan, not a 2θ powder scan"):
        read_pattern(g)


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def test_rasx_profiles(tmp_path):
    cond = ("<?xml version='1.0'?><MeasurementConditions><HWConfigurations><XrayGenerator>"
            "<WavelengthKalpha1>1.540593</WavelengthKalpha1><WavelengthKalpha2>1.544414"
            "</WavelengthKalpha2></XrayGenerator></HWConfigurations><ScanInformation>"
            "<AxisName>TwoThetaTheta</AxisName></ScanInformation></MeasurementConditions>")
    f = tmp_path / "a.rasx"
    f.write_bytes(_zip({"Data0/MesurementConditions0.xml": cond,
                        "Data0/Profile0.txt": "5.0\t10\t1\n5.02\t12\t2\n5.04\t9\t1\n"}))
    p = read_pattern(f)
    assert p.meta["format"] == "rasx"
    assert p.x.tolist() == [5.0, 5.02, 5.04] and p.intensity.tolist() == [10, 24, 9]
    assert p.wavelength_angstrom == pytest.approx(1.540593) and p.wavelength2_angstrom is None


def _brml_raw(x0, counts):
    data = "".join(f"<Datum>1,1,{x0 + 0.1 * i:.4f},{(x0 + 0.1 * i) / 2:.4f},{c}</Datum>"
                   for i, c in enumerate(counts))
    return ("<?xml version='1.0'?><RawData xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'>"
            "<DataRoutes><DataRoute RouteFlag='Measured'><ScanInformation ScanName='LockedCoupled'/>"
            "<DataViews><RawDataView xsi:type='VaryingRawDataView' Start='2' Length='2'>"
            "<Varying><FieldDefinitions FieldName='TwoTheta'/><FieldDefinitions FieldName='Theta'/>"
            "</Varying></RawDataView><RawDataView xsi:type='RecordedRawDataView' Start='4' "
            "Length='1'/></DataViews>" + data + "</DataRoute></DataRoutes><FixedInformation><Tube>"
            "<WaveLengthAlpha1 Value='1.78897'/><WaveLengthAlpha2 Value='1.79285'/>"
            "<WaveLengthRatio Value='0.5'/></Tube></FixedInformation></RawData>")


def test_brml_several_data_sets(tmp_path):
    f = tmp_path / "two.brml"
    f.write_bytes(_zip({"Experiment0/RawData0.xml": _brml_raw(10.0, [1, 2, 3]),
                        "Experiment0/RawData1.xml": _brml_raw(20.0, [4, 5, 6])}))
    with pytest.raises(PatternFormatError, match="2 data sets"):
        read_pattern(f)
    p = read_pattern(f, frame=1)
    assert p.x == pytest.approx([20.0, 20.1, 20.2]) and p.intensity.tolist() == [4, 5, 6]
    assert p.wavelength_angstrom == pytest.approx(1.78897) and p.ka2_ratio == 0.5


PDCIF_BLOCK = """data_{name}
_diffrn_radiation_wavelength 0.41
_diffrn_ambient_temperature {t_k}
loop_
_pd_meas_2theta_scan
_pd_meas_counts_total
{rows}
"""


def test_pdcif_several_blocks_with_esd(tmp_path):
    rows = "1.00 100(10)\n1.01 121(11)\n1.02 0.5(2)\n"
    f = tmp_path / "two.cif"
    f.write_text(PDCIF_BLOCK.format(name="a", t_k=300, rows=rows)
                 + PDCIF_BLOCK.format(name="b", t_k=400, rows=rows))
    with pytest.raises(PatternFormatError, match="2 data blocks"):
        read_pattern(f)
    p = read_pattern(f, frame=1)
    assert p.intensity.tolist() == [100, 121, 0.5]
    assert p.sigma == pytest.approx([10, 11, 0.2])
    assert p.temperature_c == pytest.approx(126.85) and p.wavelength_angstrom == 0.41
    assert read_series(f)["temperature_c"].values == pytest.approx([26.85, 126.85])


def test_structure_cif_refused_by_name(tmp_path):
    f = tmp_path / "s.cif"
    f.write_text("data_x\n_cell_length_a 5.0\nloop_\n_atom_site_label\n_atom_site_fract_x\n"
                 "Si 0.0\n")
    with pytest.raises(PatternFormatError, match="structure CIF, not a powder pattern"):
        read_pattern(f)


def test_pdcif_written_by_simulate_is_read(tmp_path):
    from xtal.io import write_pdcif
    from xtal.simulate import simulate
    from xtal.structures.cif import read_cif
    phase = read_cif(REFERENCE / "structures" / "K2B12H12_Fm-3.cif")
    sim = simulate(phase, (1.5406, 1.54439, 0.5), (10, 40), 0.02, fwhm_deg=0.1)
    out = write_pdcif(sim, tmp_path / "sim.cif")
    p = read_pattern(out)
    assert len(p) == len(sim.two_theta_deg) and p.meta["intensity_kind"] == "calculated"
    assert p.x == pytest.approx(sim.two_theta_deg, abs=1e-6)
    assert p.wavelength_angstrom == pytest.approx(1.5406, rel=1e-6)
    assert p.wavelength2_angstrom == pytest.approx(1.54439) and p.ka2_ratio == pytest.approx(0.5)


# --- writers round-trip with the wavelength ---------------------------------------------------
@pytest.mark.parametrize("ext", [".xy", ".xye", ".csv", ".h5"])
def test_writers_round_trip_wavelength(tmp_path, ext):
    p = Pattern(x=np.linspace(5, 50, 46), intensity=np.arange(46.0) + 1, sigma=np.ones(46),
                wavelength_angstrom=1.5406, wavelength2_angstrom=1.54439, ka2_ratio=0.5,
                temperature_c=-100.0)
    q = read_pattern(write_pattern(p, tmp_path / f"p{ext}"))
    assert q.wavelength_angstrom == pytest.approx(1.5406)
    assert q.wavelength2_angstrom == pytest.approx(1.54439) and q.ka2_ratio == pytest.approx(0.5)
    assert q.x == pytest.approx(p.x) and q.intensity == pytest.approx(p.intensity)
    assert q.temperature_c == pytest.approx(-100.0)


# --- text as people write it ------------------------------------------------------------------
def test_eight_numbers_on_a_line_refused(tmp_path):
    f = tmp_path / "line.xy"
    f.write_text("10 20 30 40 50 60 70 80\n")
    with pytest.raises(PatternFormatError, match="single line of 8 numbers"):
        read_pattern(f)


def test_four_unnamed_columns_refused_then_chosen(tmp_path):
    f = tmp_path / "four.dat"
    f.write_text("\n".join(f"{10 + i} {i * 2} {i + 1} {i * 3}" for i in range(5)))
    with pytest.raises(PatternFormatError, match="4 unnamed numeric columns"):
        read_pattern(f)
    p = read_pattern(f, columns=(0, 3, 2))
    assert p.intensity.tolist() == [0, 3, 6, 9, 12] and p.sigma.tolist() == [1, 2, 3, 4, 5]


def test_named_columns_any_order(tmp_path):
    f = tmp_path / "named.csv"
    f.write_text("counts;esd;2theta\n5,5;1,0;10,0\n6,5;1,5;10,5\n7,5;2,0;11,0\n")
    p = read_pattern(f)
    assert p.x.tolist() == [10.0, 10.5, 11.0] and p.intensity.tolist() == [5.5, 6.5, 7.5]
    assert p.sigma.tolist() == [1.0, 1.5, 2.0]


def test_title_and_lone_number_lines_are_header(tmp_path):
    f = tmp_path / "t.xy"
    f.write_text("My sample, 3 h at 500 C\n1.5406\n\t10.0\t5\n\t10.1\t6\n\t10.2\t7\n")
    p = read_pattern(f)
    assert len(p) == 3 and p.x[0] == 10.0
    assert p.meta["first_line_number"] == 1.5406 and p.wavelength_angstrom is None


def test_descending_x_reversed_and_said(tmp_path):
    f = tmp_path / "d.xy"
    f.write_text("! comment\n30 1\n20 2\n10 3\n")
    p = read_pattern(f)
    assert p.x.tolist() == [10, 20, 30] and p.intensity.tolist() == [3, 2, 1]
    assert "reversed" in p.meta["repairs"][0]


def test_two_theta_beyond_180_and_below_zero_kelvin_refused(tmp_path):
    f = tmp_path / "big.xy"
    f.write_text("100 1\n200 2\n")
    with pytest.raises(InvalidDataError, match="beyond 180"):
        read_pattern(f)
    g = tmp_path / "cold.xy"
    g.write_text("# T = -5 K\n10 1\n20 2\n")
    with pytest.raises(InvalidDataError, match="below 0 K"):
        read_pattern(g)
    with pytest.raises(XtalError, match="ratio"):
        Pattern(x=[1.0, 2.0], intensity=[1.0, 2.0], wavelength_angstrom=1.54,
                wavelength2_angstrom=1.544, ka2_ratio=float("inf"))


def test_messages_carry_no_numpy_reprs(tmp_path):
    f = tmp_path / "nm.xy"
    f.write_text("10 1\n20 2\n15 3\n")
    with pytest.raises(InvalidDataError) as exc:
        read_pattern(f)
    assert "np.float64" not in str(exc.value) and "15" in str(exc.value)


def test_large_text_parsed_by_numpy_block(tmp_path):
    n = 200_000
    f = tmp_path / "big.xye"
    x = np.linspace(1, 150, n)
    np.savetxt(f, np.c_[x, np.full(n, 7.0), np.ones(n)], header="2theta I sigma")
    p = read_pattern(f)
    assert len(p) == n and p.x[-1] == pytest.approx(150) and p.sigma[0] == 1.0


@pytest.mark.parametrize("name,data,match", [
    ("a.rd", b"V3RD\0\0\1\2", "Philips"),
    ("frame.tif", b"II*\0\x08\0\0\0", "2D detector image"),
    ("a.zip", _zip({"x.txt": "1 2"}), "neither Bruker BRML nor Rigaku RASX"),
    ("p.gpx", b"\x80\x04binary pickle", "GSAS-II project"),
])
def test_unsupported_refused_by_name(tmp_path, name, data, match):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(PatternFormatError, match=match):
        read_pattern(f)


def test_comma_separated_integers_first_line_is_not_a_decimal_comma(tmp_path):
    """`10,29` then `10.02,31`: two comma-separated columns (XRed's data.csv), not one number
    written with a decimal comma; a file without any '.' and `d,d d,d` fields is decimal-comma."""
    f = tmp_path / "data.csv"
    f.write_text("10,29\r\n10.02,31\r\n10.04,41\r\n10.06,33\r\n")
    p = read_pattern(f, wavelength_angstrom="CuKa")
    assert p.x.tolist() == [10.0, 10.02, 10.04, 10.06] and p.intensity.tolist() == [29, 31, 41, 33]
    g = tmp_path / "comma.txt"
    g.write_text("".join(f"{10 + k / 50:.2f} {100 + k}.5\n".replace(".", ",") for k in range(20)))
    q = read_pattern(g, wavelength_angstrom="CuKa")
    assert q.x[1] == 10.02 and q.intensity[0] == 100.5
