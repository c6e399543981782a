"""The `xtal` command end to end on bundled and reference data (numbers, not just exit codes)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import REF_STRUCTURES, REPO
from xtal.cli import main
from xtal.io import read_pattern

PBSO4 = REPO / "patterns" / "measured" / "lab_PbSO4_CuKa"


def test_simulate_writes_pattern_reflections_and_figure(tmp_path, capsys):
    out, refl, fig = tmp_path / "k.xye", tmp_path / "k.csv", tmp_path / "k.png"
    assert main(["simulate", "k2b12h12", "--wavelength", "0.71073", "--range", "5", "30", "--step", "0.01", "--out", str(out),
                 "--reflections", str(refl), "--plot", str(fig)]) == 0
    text = capsys.readouterr().out
    assert "(1 1 1)" in text
    pat = read_pattern(out)
    assert pat.wavelength_angstrom == pytest.approx(0.71073)
    assert len(pat.x) == 2501 and pat.x[0] == pytest.approx(5.0) and pat.x[-1] == pytest.approx(30.0)
    # K2B12H12 (111): d = a/sqrt(3) = 10.610/1.732 = 6.1257 Å -> 2θ = 2 asin(λ/2d) = 6.652°
    peak = pat.x[np.argmax(pat.intensity)]
    lines = [ln for ln in refl.read_text().splitlines() if not ln.startswith("#")]
    header = lines[0].split(",")
    rows = [dict(zip(header, ln.split(","))) for ln in lines[1:]]
    r111 = next(r for r in rows if (r["h"], r["k"], r["l"]) == ("1", "1", "1"))
    assert float(r111["d_angstrom"]) == pytest.approx(10.6100296668 / 3 ** 0.5, abs=1e-4)
    assert float(r111["two_theta_deg"]) == pytest.approx(6.6519, abs=2e-3)
    assert int(r111["multiplicity"]) == 8
    assert abs(peak - 6.652) < 0.02
    assert fig.stat().st_size > 10_000
    # refuses to overwrite without --force
    assert main(["simulate", "k2b12h12", "--wavelength", "0.71073", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_simulate_rejects_bad_wavelength(capsys):
    assert main(["simulate", "k2b12h12", "--wavelength", "-1"]) == 2
    assert "wavelength" in capsys.readouterr().err


def test_identify_real_pbso4_cli(tmp_path, capsys):
    js, md = tmp_path / "id.json", tmp_path / "id.md"
    assert main(["identify", str(PBSO4 / "PBSO4.XRA"), "--instrument", str(PBSO4 / "INST_XRY.PRM"),
                 "--library", "validation", "--json", str(js), "--report", str(md)]) == 0
    res = json.loads(js.read_text())
    assert res["wavelength"] == pytest.approx(1.5405, abs=1e-4)
    best = res["hypotheses"][0]
    assert [p["id"] for p in best["phases"]] == ["PbSO4"]
    assert best["rwp"] < 0.2
    assert (tmp_path / "id.html").read_text().count("data:image/png;base64,") == 1


def test_identify_without_wavelength_is_an_error(tmp_path, capsys):
    src = REPO.parent / "shared" / "reference" / "patterns" / "lab_BiFeO3_CuKa" / "BiFeO3.xy"
    assert main(["identify", str(src), "--library", "BiFeO3"]) == 2
    assert "wavelength" in capsys.readouterr().err.lower()


def test_identify_refuses_a_bad_workers_count_before_reading_anything(tmp_path, capsys, monkeypatch):
    import xtal.io

    def no_read(*args, **kwargs):
        raise AssertionError("the pattern was read before --workers was checked")

    monkeypatch.setattr(xtal.io, "read_pattern", no_read)
    assert main(["identify", str(PBSO4 / "PBSO4.XRA"), "--workers", "0", "--no-progress"]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_identify_library_directory_uses_file_stems(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("PbSO4.cif", "CuO.cif", "NiO_Fm-3m.cif"):
        shutil.copy(REF_STRUCTURES / name, lib / name.replace(".cif", "_mine.cif"))
    js = tmp_path / "id.json"
    assert main(["identify", str(PBSO4 / "PBSO4.XRA"), "--instrument", str(PBSO4 / "INST_XRY.PRM"),
                 "--library", str(lib), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["hypotheses"][0]["phases"][0]["id"] == "PbSO4_mine"


def test_geometry_cli_json_contract(tmp_path, capsys):
    js = tmp_path / "g.json"
    assert main(["geometry", str(REF_STRUCTURES / "COD2242624_FeN4_P-1_SHELXL.cif"), "--metal", "Fe",
                 "--no-chemenv", "--json", str(js), "--report", str(tmp_path / "g.md")]) == 0
    res = json.loads(js.read_text())
    fe = res["sites"][0]
    assert fe["element"] == "Fe" and fe["cn"] == 6
    # the CIF's own _geom_bond loop: Fe N1 . 1.707(10) and Fe N1 2_655 1.707(10)
    n1 = {b["symop"]: b for b in fe["bonds"] if b["to"] == "N1"}
    assert set(n1) == {".", "2_655"}
    assert n1["."]["distance"] == pytest.approx(1.707, abs=0.0015)
    assert 0.005 < n1["."]["su"] < 0.015
    assert (tmp_path / "g.html").exists() and (tmp_path / "g.png").exists()


def test_geometry_no_metal_is_a_clear_error(capsys):
    assert main(["geometry", str(REF_STRUCTURES / "S2dipyridyl_P21c_SHELXL.cif"), "--no-chemenv"]) == 2
    err = capsys.readouterr().err
    assert "S2dipyridyl_P21c_SHELXL.cif" in err and "no alkali" in err


SERIES_NC = REPO / "patterns" / "synthetic" / "series_Li2B12H12-DME-like_MoKa.nc"


def test_series_cli_on_bundled_synthetic_series(tmp_path, capsys):
    out = tmp_path / "ser"
    assert main(["series", str(SERIES_NC), "--library", "dodecaborate", "--out", str(out),
                 "--no-progress"]) == 0
    events = json.loads((out / "events.json").read_text())["events"]
    jumps = [e for e in events if e["kind"] == "jump" and e["phase"].startswith(("alpha", "beta"))]
    appear_beta = [e for e in events if e["kind"] == "appears" and e["phase"] == "beta_li2b12h12"]
    # programmed: alpha -> beta at 310 °C (8.7 % volume jump)
    assert appear_beta and abs(appear_beta[0]["T_C"] - 310) <= 5
    assert jumps and abs(jumps[0]["T_C"] - 310) <= 5
    html = (out / "report.html").read_text()
    assert "SYNTHETIC" in html and html.count("data:image/png;base64,") >= 3
    assert "Not searched" in html  # the empty solvate slots are named
    assert SERIES_NC.stat().st_size > 0


def test_lazy_netcdf_series_reads_frames_on_demand():
    from xtal.io import read_series

    lazy = read_series(SERIES_NC, lazy=True)
    eager = read_series(SERIES_NC)
    assert not lazy.variable._in_memory and eager.variable._in_memory
    assert lazy.shape == eager.shape == (79, 1801)
    assert np.array_equal(lazy.isel(frame=40).values, eager.isel(frame=40).values)
    assert lazy.attrs["wavelength_angstrom"] == pytest.approx(0.71073)


def test_geometry_batch_directory_with_metal_free_cif(tmp_path, capsys):
    """A directory batch analyses every CIF with a metal, names the metal-free one on stderr and exits 1."""
    import shutil
    for name in ("NAC.cif", "S2dipyridyl_P21c_SHELXL.cif", "CaF2.cif"):
        shutil.copy(REF_STRUCTURES / name, tmp_path / name)
    js = tmp_path / "out.json"
    assert main(["geometry", str(tmp_path), "--metal", "Na,Ca", "--no-chemenv", "--json", str(js)]) == 1
    captured = capsys.readouterr()
    assert "S2dipyridyl_P21c_SHELXL.cif" in captured.err and "no site matching" in captured.err
    assert "1 of 3 structure(s) had no selected metal site; the other 2 were analysed" in captured.err
    res = json.loads(js.read_text())
    assert sorted(r["phase"].split("_")[0] for r in res["structures"]) == ["CaF2", "NAC"]
    assert "NAC" in captured.out and "CaF2" in captured.out


# ------------------------------------------------------------------------------------------------
# issue 17: progress, interactive pages, the outputs in --help
# ------------------------------------------------------------------------------------------------
def test_identify_shows_progress_on_stderr_and_writes_the_interactive_page(tmp_path, capsys):
    rep = tmp_path / "pbso4.md"
    assert main(["identify", str(PBSO4 / "PBSO4.XRA"), "--instrument", str(PBSO4 / "INST_XRY.PRM"),
                 "--library", "PbSO4,CuO,NiO", "--report", str(rep)]) == 0
    cap = capsys.readouterr()
    assert "identify: screen of 3 phases" in cap.err and "final refinement" in cap.err
    assert "fits)" in cap.err and "identify:" not in cap.out          # progress never on stdout
    page = tmp_path / "pbso4.interactive.html"
    assert page.is_file() and f"interactive page: {page}" in cap.out
    text = page.read_text(encoding="utf-8")
    assert "js-plotly-plot" in text or "Plotly.newPlot" in text
    assert "PbSO4 reflections" in text
    assert main(["identify", str(PBSO4 / "PBSO4.XRA"), "--instrument", str(PBSO4 / "INST_XRY.PRM"),
                 "--library", "PbSO4", "--no-progress", "--html", str(tmp_path / "p.html")]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and (tmp_path / "p.html").is_file()


def test_help_and_formats_list_input_and_output_formats(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for s in ("Pattern formats", "xrdml", "Report outputs", "interactive.html", "series.html", ".svg"):
        assert s in out, s
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "Report outputs" in out and "bruker_raw" in out


def test_series_cli_temperature_unit(tmp_path, capsys):
    out = tmp_path / "serK"
    assert main(["series", str(SERIES_NC), "--library", "alpha_li2b12h12,beta_li2b12h12", "--out", str(out),
                 "--no-progress", "--temperature-unit", "K"]) == 0
    stdout = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "T range (K)" in md and "°C |" not in md
    ev = [ln for ln in stdout.splitlines() if "T = " in ln]
    assert ev and all(" K" in ln and "°C" not in ln for ln in ev)
    assert (out / "series.html").is_file()


def test_wrong_wavelength_hint_reaches_every_output(tmp_path, capsys):
    """issue 17: a Cu Kα pattern run as Mo Kα says so — on the terminal, in the report, on the page."""
    rep = tmp_path / "wrong.md"
    assert main(["identify", str(PBSO4 / "PBSO4.XRA"), "--wavelength", "0.71073", "--library", "PbSO4,CuO,NiO",
                 "--no-progress", "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "check the wavelength" in out and "Cu Kα" in out
    assert "check the wavelength" in rep.read_text(encoding="utf-8")
    assert "check the wavelength" in (tmp_path / "wrong.interactive.html").read_text(encoding="utf-8")
