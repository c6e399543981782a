"""Issue 12: never lose a user's data, refuse impossible input, no hangs.

Every example of the issue is here: outputs over inputs / existing files (each command, refused
before any computation), SIGKILL during a run, impossible CIF numbers, downstream parameter ranges,
slot checks and batch geometry.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REF_STRUCTURES, REPO
from xtal.cli import main
from xtal.errors import (CifSyntaxError, GeometryError, IdentificationError, MissingWavelengthError,
                         OverwriteError, SeriesError, SimulationError, StructureValidationError,
                         SymmetryError, UnknownElementError, XtalError)
from xtal.structures import read_cif, read_cif_string
from xtal.util import TEMP_MARKER, OutputPlan, atomic_write_text

PBSO4 = REPO / "patterns" / "measured" / "lab_PbSO4_CuKa"
CUO = REF_STRUCTURES / "CuO.cif"
FEN4 = REF_STRUCTURES / "COD2242624_FeN4_P-1_SHELXL.cif"
NO_METAL = REF_STRUCTURES / "S2dipyridyl_P21c_SHELXL.cif"


class Called(AssertionError):
    pass


def _forbid(monkeypatch, module, name):
    """Replace module.name by a function that fails the test if the computation is reached."""
    def boom(*a, **k):
        raise Called(f"{module.__name__}.{name} was called: the refusal came too late")
    monkeypatch.setattr(module, name, boom)


# ------------------------------------------------------------------------------------------------
# OutputPlan
# ------------------------------------------------------------------------------------------------
def test_output_plan_rules(tmp_path):
    src = tmp_path / "in.cif"
    src.write_text("x")
    link = tmp_path / "hard.cif"
    os.link(src, link)
    existing = tmp_path / "old.xy"
    existing.write_text("old")
    plan = OutputPlan([src], force=True)
    plan.add(src)
    with pytest.raises(OverwriteError, match="input"):
        plan.check()
    plan = OutputPlan([src], force=True)
    plan.add(link)                          # a hard link to the input is the input
    with pytest.raises(OverwriteError, match="input"):
        plan.check()
    plan = OutputPlan([src])
    plan.add(tmp_path / "sub" / ".." / "in.cif")
    with pytest.raises(OverwriteError, match="input"):
        plan.check()
    plan = OutputPlan([src])
    plan.add(existing)
    with pytest.raises(OverwriteError, match="use --force") as exc:
        plan.check()
    assert "overwrite=True" not in str(exc.value)
    OutputPlan([src], force=True).add(existing)  # with force an existing (non-input) file is fine
    plan = OutputPlan([src], force=True)
    plan.add(tmp_path / "a.xy")
    plan.add(tmp_path / "." / "a.xy")
    with pytest.raises(OverwriteError, match="same file"):
        plan.check()
    with pytest.raises(XtalError, match="cannot write"):
        OutputPlan().add(tmp_path / "fig.cif", suffixes={".png"})
    assert existing.read_text() == "old" and src.read_text() == "x"


# ------------------------------------------------------------------------------------------------
# simulate
# ------------------------------------------------------------------------------------------------
def test_simulate_output_equal_to_input_cif_refused_even_with_force(tmp_path, capsys, monkeypatch):
    import xtal.simulate

    cif = tmp_path / "in.cif"
    shutil.copy(CUO, cif)
    before = cif.read_bytes()
    _forbid(monkeypatch, xtal.simulate, "simulate")
    assert main(["simulate", str(cif), "--wavelength", "1.5406", "--out", str(cif), "--force"]) == 2
    assert "input" in capsys.readouterr().err
    assert cif.read_bytes() == before
    os.link(cif, tmp_path / "alias.cif")
    assert main(["simulate", str(cif), "--wavelength", "1.5406", "--reflections",
                 str(tmp_path / "alias.cif"), "--force"]) == 2
    assert cif.read_bytes() == before


def test_simulate_existing_output_refused_before_computing(tmp_path, capsys, monkeypatch):
    import xtal.simulate

    out = tmp_path / "p.xy"
    out.write_text("keep me")
    _forbid(monkeypatch, xtal.simulate, "simulate")
    assert main(["simulate", str(CUO), "--wavelength", "1.5406", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "overwrite=True" not in err
    assert out.read_text() == "keep me"


def test_simulate_plot_with_a_non_figure_suffix_is_refused_up_front(tmp_path, capsys, monkeypatch):
    import xtal.simulate

    _forbid(monkeypatch, xtal.simulate, "simulate")
    assert main(["simulate", str(CUO), "--wavelength", "1.5406", "--plot", str(tmp_path / "out.cif")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "out.cif").exists()


def test_simulate_requires_a_wavelength(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(CUO)])
    assert exc.value.code == 2
    assert "--wavelength" in capsys.readouterr().err
    from xtal.simulate import simulate

    with pytest.raises(TypeError):
        simulate(read_cif(CUO))  # no silent Mo Kα default any more


def test_simulate_zero_and_scale_ranges(capsys):
    assert main(["simulate", str(CUO), "--wavelength", "1.5406", "--zero", "500"]) == 2
    assert "zero" in capsys.readouterr().err
    from xtal.simulate import simulate

    with pytest.raises(SimulationError, match="scale"):
        simulate(read_cif(CUO), 1.5406, scale=-1)


def test_simulate_with_force_replaces_an_output_but_never_the_input(tmp_path):
    out = tmp_path / "p.xy"
    out.write_text("old")
    assert main(["simulate", str(CUO), "--wavelength", "1.5406", "--range", "20", "40", "--out", str(out),
                 "--force"]) == 0
    text = out.read_text()
    assert text.startswith("#") and "1.5406" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.xy"]  # no temp file left


# ------------------------------------------------------------------------------------------------
# identify
# ------------------------------------------------------------------------------------------------
def _pbso4_copy(tmp_path) -> tuple[Path, Path]:
    src = tmp_path / "PBSO4.XRA"
    shutil.copy(PBSO4 / "PBSO4.XRA", src)
    return src, PBSO4 / "INST_XRY.PRM"


def test_identify_json_over_the_measurement_is_refused(tmp_path, capsys, monkeypatch):
    import xtal.identify
    import xtal.io

    src, inst = _pbso4_copy(tmp_path)
    before = src.read_bytes()
    _forbid(monkeypatch, xtal.identify, "identify")
    _forbid(monkeypatch, xtal.io, "read_pattern")
    for opt in ("--json", "--plot", "--report"):
        assert main(["identify", str(src), "--instrument", str(inst), "--library", "PbSO4",
                     opt, str(src), "--force"]) == 2
        assert src.read_bytes() == before
    # the instrument file is an input too
    inst_copy = tmp_path / "inst.json"
    shutil.copy(inst, inst_copy)
    assert main(["identify", str(src), "--instrument", str(inst_copy), "--json", str(inst_copy),
                 "--force"]) == 2
    assert inst_copy.read_bytes() == inst.read_bytes()


@pytest.mark.parametrize("opt,name", [("--json", "r.json"), ("--plot", "r.png"), ("--report", "r.md")])
def test_identify_existing_outputs_need_force(tmp_path, capsys, monkeypatch, opt, name):
    import xtal.identify

    src, inst = _pbso4_copy(tmp_path)
    out = tmp_path / name
    out.write_text("previous result")
    _forbid(monkeypatch, xtal.identify, "identify")
    assert main(["identify", str(src), "--instrument", str(inst), "--library", "PbSO4", opt, str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "previous result"


def test_identify_report_side_files_checked_and_bad_suffix(tmp_path, capsys, monkeypatch):
    import xtal.identify

    src, inst = _pbso4_copy(tmp_path)
    (tmp_path / "r.html").write_text("old html")      # --report r.md also writes r.html and r.png
    _forbid(monkeypatch, xtal.identify, "identify")
    assert main(["identify", str(src), "--instrument", str(inst), "--report", str(tmp_path / "r.md")]) == 2
    assert (tmp_path / "r.html").read_text() == "old html" and not (tmp_path / "r.md").exists()
    assert main(["identify", str(src), "--instrument", str(inst), "--plot", str(tmp_path / "out.cif")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["identify", str(src), "--instrument", str(inst), "--max-phases", "0"]) == 2


def test_identify_max_phases_zero_is_refused_by_the_library_function():
    from xtal.identify import identify

    with pytest.raises(IdentificationError, match="max_phases"):
        identify(object(), [read_cif(CUO)], max_phases=0)


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------
def test_geometry_outputs_checked_before_analysis(tmp_path, capsys, monkeypatch):
    import xtal.geometry

    cif = tmp_path / "fe.cif"
    shutil.copy(FEN4, cif)
    before = cif.read_bytes()
    js = tmp_path / "g.json"
    js.write_text("old")
    _forbid(monkeypatch, xtal.geometry, "analyse_geometry")
    assert main(["geometry", str(cif), "--json", str(js)]) == 2
    assert js.read_text() == "old"
    assert main(["geometry", str(cif), "--json", str(cif), "--force"]) == 2
    assert cif.read_bytes() == before
    # --report X.md writes X.png and X.html beside it: an input named X.png is protected too
    png_input = tmp_path / "g.png"
    png_input.write_text("an input")
    assert main(["geometry", str(cif), str(png_input), "--report", str(tmp_path / "g.md"), "--force"]) == 2
    assert png_input.read_text() == "an input"


def test_geometry_cutoff_nan_is_an_error(capsys):
    assert main(["geometry", str(FEN4), "--metal", "Fe", "--cutoff", "nan", "--no-chemenv"]) == 2
    assert "cutoff" in capsys.readouterr().err
    from xtal.geometry import analyse_geometry

    for bad in (float("nan"), float("inf"), -1.0, 0.0, 50.0):
        with pytest.raises(GeometryError):
            analyse_geometry(read_cif(FEN4), metals="Fe", cutoff_angstrom=bad, chemenv=False)


def test_geometry_batch_reports_each_failure_and_goes_on(tmp_path, capsys):
    """A batch: an impossible CIF fails, one has no Fe, one is analysed; exit 1 says some did not."""
    bad = tmp_path / "bad.cif"
    bad.write_text(_cuo(**{"_cell_formula_units_Z  4": "_cell_formula_units_Z  0"}))
    js = tmp_path / "g.json"
    rc = main(["geometry", str(bad), str(NO_METAL), str(FEN4), "--metal", "Fe", "--no-chemenv",
               "--json", str(js)])
    captured = capsys.readouterr()
    assert rc == 1                                     # some failed
    assert "_cell_formula_units_Z" in captured.err and "S2dipyridyl" in captured.err
    assert f"1 of 3 structure(s) failed: {bad}" in captured.err
    assert "1 of 3 structure(s) had no selected metal site; the other 1 were analysed" in captured.err
    assert "COD2242624_FeN4_P-1_SHELXL Fe" in captured.out   # the good file was analysed
    import json

    payload = json.loads(js.read_text())
    assert [s["phase"] for s in payload["structures"]] == ["COD2242624_FeN4_P-1_SHELXL"]
    assert payload["failed"] == [str(bad)]


# ------------------------------------------------------------------------------------------------
# series
# ------------------------------------------------------------------------------------------------
def test_series_existing_out_refused_before_any_frame_is_fitted(tmp_path, capsys, monkeypatch):
    import xtal.series

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("old report")
    _forbid(monkeypatch, xtal.series, "analyse_series")
    nc = REPO / "patterns" / "synthetic" / "series_Li2B12H12-DME-like_MoKa.nc"
    assert main(["series", str(nc), "--library", "dodecaborate", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "overwrite=True" not in err
    assert (out / "report.md").read_text() == "old report"


def test_series_out_equal_to_the_frame_directory_is_refused(tmp_path, capsys, monkeypatch):
    import xtal.series

    frames = _frames(tmp_path / "frames", 4)
    _forbid(monkeypatch, xtal.series, "analyse_series")
    assert main(["series", str(frames), "--library", "CuO", "--wavelength", "1.5406", "--out", str(frames),
                 "--force", "--no-progress"]) == 2
    assert "input directory" in capsys.readouterr().err
    assert sorted(p.name for p in frames.iterdir()) == [f"f{i:02d}.xy" for i in range(4)]


def _frames(d: Path, n: int, lam: float | None = None) -> Path:
    """n small two-column frames (CuO-like peaks), optionally with a wavelength header."""
    d.mkdir(parents=True, exist_ok=True)
    x = np.arange(20.0, 60.0, 0.02)
    for i in range(n):
        y = 100 + 1000 * np.exp(-0.5 * ((x - 35.5) / 0.05) ** 2) + 800 * np.exp(-0.5 * ((x - 38.7) / 0.05) ** 2)
        head = f"# wavelength = {lam}\n" if lam else ""
        (d / f"f{i:02d}.xy").write_text(head + "\n".join(f"{a:.3f} {b:.3f}" for a, b in zip(x, y)) + "\n")
    return d


def test_series_entry_checks(tmp_path):
    from xtal.series import analyse_series

    phases = [read_cif(CUO)]
    one = _frames(tmp_path / "one", 1, 1.5406)
    with pytest.raises(SeriesError, match="at least 2 frames"):
        analyse_series(one, phases)
    four = _frames(tmp_path / "four", 4, 1.5406)
    log = tmp_path / "log.csv"
    log.write_text("frame,temperature_C\n" + "".join(f"{i},{25 + 10 * i}\n" for i in range(10)))
    with pytest.raises(SeriesError, match="10 rows for 4 frames"):
        analyse_series(four, phases, temperatures=log)
    with pytest.raises(SeriesError, match="not a number"):
        analyse_series(four, phases, temperatures=[25.0, float("nan"), 50.0, 60.0])
    with pytest.raises(SeriesError, match="absolute zero"):
        analyse_series(four, phases, temperatures=[25.0, -400.0, 50.0, 60.0])
    with pytest.raises(SeriesError, match="3 temperatures given for 4 frames"):
        analyse_series(four, phases, temperatures=[25.0, 30.0, 35.0])
    bad_log = tmp_path / "bad_log.csv"
    bad_log.write_text("frame,temperature_C\n0,25\n1,-400\n2,30\n3,40\n")
    with pytest.raises(SeriesError, match="absolute zero"):
        analyse_series(four, phases, temperatures=bad_log)
    no_lambda = _frames(tmp_path / "nolam", 4)
    with pytest.raises(MissingWavelengthError):
        analyse_series(no_lambda, phases)


# ------------------------------------------------------------------------------------------------
# demo and library add
# ------------------------------------------------------------------------------------------------
def test_demo_refuses_a_non_empty_out_before_running(tmp_path, capsys, monkeypatch):
    import xtal.demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "README.md").write_text("mine")
    _forbid(monkeypatch, xtal.demo, "_step_library")
    assert main(["demo", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "README.md").read_text() == "mine"
    # with --force the demo may write there (its steps stubbed: only the overview is written)
    for name in ("_step_library", "_step_simulate", "_step_identify", "_step_series", "_step_coordination"):
        monkeypatch.setattr(xtal.demo, name, lambda lib, o, res, say: None)
    assert main(["demo", "--out", str(out), "--force"]) == 0
    assert (out / "README.md").read_text() != "mine"


def test_library_add_policy(tmp_path, capsys):
    from xtal.library import user_structures_dir

    udir = tmp_path / "u"
    udir.mkdir()
    src = udir / "CuO.cif"
    shutil.copy(CUO, src)
    before = src.read_bytes()
    # the source is the target (same directory, id = stem): refused even with --force
    assert main(["library", "add", str(src), "--id", "CuO", "--dir", str(udir), "--force"]) == 2
    assert "input" in capsys.readouterr().err and src.read_bytes() == before
    existing = udir / "mycuo.cif"
    existing.write_text("data_old\n")
    assert main(["library", "add", str(src), "--id", "mycuo", "--dir", str(udir)]) == 2
    assert existing.read_text() == "data_old\n"
    assert main(["library", "add", str(src), "--id", "mycuo", "--dir", str(udir), "--force"]) == 0
    assert "_cell_length_a" in existing.read_text()
    assert user_structures_dir().is_dir()


def test_library_add_wrong_cif_into_a_slot_is_refused_with_the_reason(tmp_path, capsys):
    udir = tmp_path / "u"
    assert main(["library", "add", str(REF_STRUCTURES / "PbSO4.cif"), "--id", "li2b12h12_2diglyme",
                 "--dir", str(udir)]) == 2
    err = capsys.readouterr().err
    assert "elements differ" in err and "C12 H40 B12 Li2 O6" in err and "--force" in err
    assert not (udir / "li2b12h12_2diglyme.cif").exists()
    assert main(["library", "add", str(REF_STRUCTURES / "PbSO4.cif"), "--id", "li2b12h12_2diglyme",
                 "--dir", str(udir), "--force"]) == 0
    assert (udir / "li2b12h12_2diglyme.cif").exists()


def test_slot_check_uses_ratios_and_the_published_m_o_range(tmp_path, monkeypatch):
    """A manifest with Mg slots: Mg–O 2.06 Å in the MgB12H12·12H2O CIF fits [1.958, 2.039] ± 0.05
    but not [2.378, 2.446]; a formula with 6 instead of 12 O per B12 is a different hydrate."""
    from xtal.library import LibraryEntry, SlotMismatchError, add_user_cif, check_entry_fit

    phase = read_cif(REF_STRUCTURES / "MgB12H12_12H2O_F4132.cif")

    def entry(formula, checks):
        return LibraryEntry(id="x", name="x", formula=formula, role="solvate", kind="slot", metal="Mg",
                            checks=checks)

    assert check_entry_fit(entry("B12 H36 Mg O12", {"M-O_angstrom": [1.958, 2.039], "cn": 6}), phase) == []
    far = check_entry_fit(entry("B12 H36 Mg O12", {"M-O_angstrom": [2.378, 2.446]}), phase)
    assert len(far) == 1 and "2.060" in far[0] and "outside" in far[0]
    assert "coordination number" in check_entry_fit(entry("B12 H36 Mg O12", {"cn": 4}), phase)[0]
    hydrate = check_entry_fit(entry("B12 H24 Mg O6", {}), phase)
    assert len(hydrate) == 1 and hydrate[0].startswith("O:B")
    assert check_entry_fit(entry("B12 H36 Mg2 O12", {}), phase)[0].startswith("Mg:B")
    # through add_user_cif with a manifest of our own
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "library.toml").write_text(textwrap.dedent("""
        [[phase]]
        id = "mg_slot"
        name = "Mg test slot"
        formula = "B12 H36 Mg O12"
        role = "solvate"
        kind = "slot"
        metal = "Mg"
        checks = { "M-O_angstrom" = [2.378, 2.446] }
        """))
    monkeypatch.setenv("XTAL_LIBRARY_DIR", str(lib))
    with pytest.raises(SlotMismatchError, match="Mg–O distances 2.060"):
        add_user_cif(REF_STRUCTURES / "MgB12H12_12H2O_F4132.cif", "mg_slot", directory=tmp_path / "u")
    assert not (tmp_path / "u" / "mg_slot.cif").exists()


# ------------------------------------------------------------------------------------------------
# SIGKILL: no partial, no visible temporary file
# ------------------------------------------------------------------------------------------------
def _run_and_kill(script: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == b"ready", (line, proc.stderr.read() if proc.poll() is not None else b"")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_during_an_atomic_write_leaves_no_visible_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "big.xy").write_text("previous")
    script = textwrap.dedent(f"""
        import sys, time
        from xtal.util import atomic_path
        with atomic_path({str(out / 'big.xy')!r}) as tmp:
            with open(tmp, "w") as fh:
                fh.write("partial " * 100000)
                fh.flush()
                print("ready", flush=True)
                time.sleep(60)
    """)
    _run_and_kill(script, tmp_path)
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["big.xy"] and (out / "big.xy").read_text() == "previous"
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all(TEMP_MARKER in n for n in leftovers)       # recognisable, hidden
    atomic_write_text(out / "other.txt", "x")             # the next write into the directory cleans up
    assert sorted(p.name for p in out.iterdir()) == ["big.xy", "other.txt"]


def test_sigkill_during_a_cli_run_leaves_no_output(tmp_path):
    cif = tmp_path / "in.cif"
    shutil.copy(CUO, cif)
    script = textwrap.dedent(f"""
        import time
        import xtal.simulate
        real = xtal.simulate.simulate
        def slow(*a, **k):
            print("ready", flush=True)
            time.sleep(60)
        xtal.simulate.simulate = slow
        from xtal.cli import main
        main(["simulate", {str(cif)!r}, "--wavelength", "1.5406", "--out", "p.xy", "--reflections", "r.csv",
              "--plot", "p.png"])
    """)
    _run_and_kill(script, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.cif"]


# ------------------------------------------------------------------------------------------------
# impossible CIF values: the specific error naming file and field
# ------------------------------------------------------------------------------------------------
CUO_TEXT = CUO.read_text()


def _cuo(**subs) -> str:
    t = CUO_TEXT
    for old, new in subs.items():
        assert old in t, old
        t = t.replace(old, new)
    return t


def _with_items(extra: str) -> str:
    return CUO_TEXT.replace("_chemical_formula_sum", extra + "\n_chemical_formula_sum")


U_COLS = "Uiso 0.001      4   \nO1"


@pytest.mark.parametrize("text,error,field", [
    (_cuo(**{"_cell_formula_units_Z  4": "_cell_formula_units_Z  0"}), StructureValidationError, "_cell_formula_units_Z"),
    (_cuo(**{"_cell_formula_units_Z  4": "_cell_formula_units_Z  -4"}), StructureValidationError, "_cell_formula_units_Z"),
    (_cuo(**{"Uiso 0.001      4   \nO1": "Uiso inf      4   \nO1"}), CifSyntaxError, "_atom_site_U_iso_or_equiv"),
    (_cuo(**{"Uiso 0.001      4   \nO1": "Uiso 50      4   \nO1"}), StructureValidationError, "_atom_site_U_iso_or_equiv"),
    (_cuo(**{"Uiso 0.001      4   \nO1": "Uiso 2.0e9999(3)      4   \nO1"}), CifSyntaxError, "_atom_site_U_iso_or_equiv"),
    (_cuo(**{"_cell_length_a  4.67951": "_cell_length_a  2.0e9999(3)"}), CifSyntaxError, "_cell_length_a"),
    (_cuo(**{"_chemical_formula_weight  79.55": "_chemical_formula_weight  -79.55"}), StructureValidationError,
     "_chemical_formula_weight"),
    (_cuo(**{"_chemical_formula_weight  79.55": "_chemical_formula_weight  0"}), StructureValidationError,
     "_chemical_formula_weight"),
    (_with_items("_exptl_crystal_density_diffrn 0"), StructureValidationError, "_exptl_crystal_density_diffrn"),
    (_with_items("_exptl_crystal_density_diffrn -6.5"), StructureValidationError, "_exptl_crystal_density_diffrn"),
    (_with_items("_diffrn_radiation_wavelength 0"), StructureValidationError, "_diffrn_radiation_wavelength"),
    (_with_items("_diffrn_radiation_wavelength -0.71"), StructureValidationError, "_diffrn_radiation_wavelength"),
    (_with_items("_diffrn_ambient_temperature -5"), StructureValidationError, "_diffrn_ambient_temperature"),
    (_cuo(**{"5  1/2+x,1/2+y,z": "5  1/2,1/2,1/2"}), SymmetryError, "_space_group_symop_operation_xyz"),
    (_cuo(**{"5  1/2+x,1/2+y,z": "5  x,x,x"}), SymmetryError, "_space_group_symop_operation_xyz"),
    (_cuo(**{"5  1/2+x,1/2+y,z": "5  2*x,y,z"}), SymmetryError, "_space_group_symop_operation_xyz"),
    (_cuo(**{"Cu1    Cu2+": "Cu1    Sx"}), UnknownElementError, "_atom_site_type_symbol"),
])
def test_impossible_cif_values_are_refused(tmp_path, text, error, field):
    path = tmp_path / "bad.cif"
    path.write_text(text)
    with pytest.raises(error) as exc:
        read_cif(path)
    assert exc.value.path == str(path) and exc.value.field == field, str(exc.value)


def test_unknown_element_error_names_the_symbol():
    with pytest.raises(UnknownElementError, match="'Sx'"):
        read_cif_string(_cuo(**{"Cu1    Cu2+": "Cu1    Sx"}))


def test_uaniso_inf_and_negative_are_refused_and_large_u_is_a_warning():
    aniso = ("\nloop_\n_atom_site_aniso_label\n_atom_site_aniso_U_11\n_atom_site_aniso_U_22\n"
             "_atom_site_aniso_U_33\n_atom_site_aniso_U_12\n_atom_site_aniso_U_13\n_atom_site_aniso_U_23\n"
             "Cu1 {u} 0.01 0.01 0 0 0\n")
    with pytest.raises(CifSyntaxError) as exc:
        read_cif_string(CUO_TEXT + aniso.format(u="inf"))
    assert exc.value.field == "_atom_site_aniso_U_11"
    with pytest.raises(StructureValidationError, match="U11"):
        read_cif_string(CUO_TEXT + aniso.format(u="-0.5"))
    # found by the fuzz run: U12 = 1e308 was accepted and made every intensity NaN
    with pytest.raises(StructureValidationError, match="U12"):
        read_cif_string(CUO_TEXT + aniso.format(u="0.01").replace("0.01 0 0 0", "0.01 1e308 0 0"))
    with pytest.raises(StructureValidationError, match="coordinate"):
        read_cif_string(_cuo(**{"Cu1    Cu2+ 0.25000": "Cu1    Cu2+ 1e308"}))
    p = read_cif_string(_cuo(**{"Uiso 0.001      4   \nO1": "Uiso 0.3      4   \nO1"}))
    assert any("very large" in w for w in p.warnings)


def test_operators_that_do_not_close_are_refused():
    # -x,-y,z+1/3 squared is z+2/3: a non-lattice translation, no space group
    text = _cuo(**{"2  -x,y,1/2-z": "2  -x,-y,1/3+z"})
    with pytest.raises(SymmetryError):
        read_cif_string(text)


def test_a_phase_edited_in_code_is_checked_at_simulate_and_geometry_entry():
    from dataclasses import replace

    from xtal.geometry import analyse_geometry
    from xtal.simulate import simulate

    cuo = read_cif(CUO)
    hot = replace(cuo, sites=[replace(cuo.sites[0], u_iso=50.0)] + cuo.sites[1:], _images=None)
    with pytest.raises(StructureValidationError, match="Uiso"):
        simulate(hot, 1.5406)
    zero = replace(cuo, z=0.0)
    with pytest.raises(StructureValidationError, match="Z"):
        analyse_geometry(zero, metals="Cu", chemenv=False)
    assert math.isfinite(simulate(cuo, 1.5406).intensity.max())


def test_library_check_reports_each_file_and_goes_on(tmp_path, capsys):
    bad = tmp_path / "bad.cif"
    bad.write_text(_cuo(**{"_cell_formula_units_Z  4": "_cell_formula_units_Z  0"}))
    assert main(["library", "check", str(bad), str(CUO)]) == 1
    out = capsys.readouterr().out
    assert "bad: ERROR" in out and "_cell_formula_units_Z" in out
    assert "CuO: ok" in out


def test_write_series_result_checks_every_name_before_writing_any(tmp_path):
    from xtal.report.series import write_series_result

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("old")

    class Boom:            # a result whose serialisation must never be reached
        def to_dataset(self):
            raise Called("write_series_result serialised before checking the outputs")

    with pytest.raises(OverwriteError, match="report.md"):
        write_series_result(Boom(), out)
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "old"
