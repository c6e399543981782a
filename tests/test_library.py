"""The bundled library: manifest, slots, models, user CIFs and the `xtal library` CLI."""
from __future__ import annotations

import shutil

import pytest

from conftest import REF_STRUCTURES
from xtal.cli import main
from xtal.errors import EmptySlotError, LibraryError, OverwriteError, UnknownPhaseError
from xtal.library import SlotMismatchError, MODEL_WARNING, Library, add_user_cif

SOLVATE_SLOTS = {"li2b12h12_2diglyme", "li2b12h12_1.5dme", "na2b12h12_4diglyme_rt",
                 "na2b12h12_2diglyme_ht", "k2b12h12_4diglyme",
                 # issue 18: solvates the study follows by in-situ PXRD without a structure
                 "li2b12h12_n_dmso", "li2b12h12_n_def", "li2b12h12_n_h2o"}


@pytest.fixture()
def lib():
    return Library.bundled()


def test_manifest_has_the_five_solvate_slots_with_published_checks(lib):
    slots = {e.id for e in lib if e.kind == "slot" and e.role == "solvate"}
    assert slots == SOLVATE_SLOTS
    assert lib.entry("li2b12h12_2diglyme").checks["M-O_angstrom"] == [1.958, 2.039]
    assert lib.entry("na2b12h12_4diglyme_rt").checks["M-O_angstrom"] == [2.378, 2.446]
    assert lib.entry("k2b12h12_4diglyme").checks["M-O_angstrom"] == [2.728, 2.844]
    for sid in SOLVATE_SLOTS:
        assert not lib.entry(sid).filled
        assert "EMPTY SLOT" in lib.entry(sid).status
        with pytest.raises(EmptySlotError, match=sid):
            lib.phase(sid)


def test_every_bundled_reference_cif_is_in_the_manifest(lib):
    bundled = {e.cif.name for e in lib if e.filled}
    assert {p.name for p in REF_STRUCTURES.glob("*.cif")} <= bundled


def test_every_filled_entry_parses_with_provenance(lib):
    for e in lib:
        assert e.provenance.get("source"), e.id
        if e.filled:
            p = lib.phase(e.id)
            assert p.volume > 0 and p.formula_units
            assert p.provenance.kind == e.kind


def test_models_are_labelled_loudly(lib):
    # β: α expanded to the 310 °C transition (assumed α_L = 3.5e-5 /K), then the 8.7 % jump (issue 18)
    for pid, a in (("alpha_li2b12h12", 9.577), ("beta_li2b12h12", 9.577 * (1 + 3.5e-5 * 285) * 1.087 ** (1 / 3))):
        p = lib.phase(pid)
        assert p.is_model
        assert p.warnings[0] == MODEL_WARNING
        assert p.cell.a == pytest.approx(a, abs=2e-3)
        assert p.spacegroup_number == 205
        content = p.formula_from_sites()
        assert content["Li"] == pytest.approx(8) and content["B"] == pytest.approx(48)
        assert content["H"] == pytest.approx(48)
        assert "MODEL" in lib.entry(pid).cif.read_text()[:2000]
    beta, alpha = lib.phase("beta_li2b12h12"), lib.phase("alpha_li2b12h12")
    assert beta.volume / alpha.volume == pytest.approx(1.087 * (1 + 3.5e-5 * 285) ** 3, abs=1e-3)


def test_z_from_the_library_formula_when_the_cif_has_none(lib):
    """The AFLOW K2B12H12 CIF gives formula 'B6 H6 K' and no Z; the library formula K2B12H12 gives
    the published Z = 4 (Wunderlich & Lipscomb 1960)."""
    k = lib.phase("k2b12h12")
    assert k.formula_units == 4
    assert any("library formula" in w for w in k.warnings)
    assert not any(w.startswith("Z not given") for w in k.warnings)
    assert lib.phase("PbSO4").formula_units == 4  # stated in the CIF, untouched


def test_unknown_id(lib):
    with pytest.raises(UnknownPhaseError, match="no phase 'nope'"):
        lib.phase("nope")


def test_user_cif_fills_a_slot_without_code_change(tmp_path, monkeypatch):
    user = tmp_path / "user"
    monkeypatch.setenv("XTAL_USER_STRUCTURES", str(user))
    src = tmp_path / "my_ccdc_file.cif"
    shutil.copy(REF_STRUCTURES / "AlGa_amide_1b_P212121_SHELXL.cif", src)
    before = src.read_bytes()
    # an Al/Ga amide is not K2B12H12·4 diglyme: refused with the reason, nothing written
    with pytest.raises(SlotMismatchError, match="elements differ"):
        add_user_cif(src, "k2b12h12_4diglyme")
    assert not (user / "k2b12h12_4diglyme.cif").exists()
    out = add_user_cif(src, "k2b12h12_4diglyme", accept_mismatch=True)   # --force
    assert out == user / "k2b12h12_4diglyme.cif"
    assert src.read_bytes() == before  # the user's file is untouched
    lib = Library.bundled()
    e = lib.entry("k2b12h12_4diglyme")
    assert e.filled and e.replaces == "slot" and "user CIF" in e.status
    assert lib.phase("k2b12h12_4diglyme").volume == pytest.approx(1402.4, abs=0.3)
    with pytest.raises(OverwriteError, match="exists"):
        add_user_cif(src, "k2b12h12_4diglyme")


def test_user_cif_replaces_a_model(tmp_path, monkeypatch):
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("XTAL_USER_STRUCTURES", str(user))
    shutil.copy(REF_STRUCTURES / "K2B12H12_Fm-3.cif", user / "alpha_li2b12h12.cif")
    lib = Library.bundled()
    p = lib.phase("alpha_li2b12h12")
    assert not p.is_model and p.provenance.kind == "user"
    assert lib.entry("alpha_li2b12h12").replaces == "model"


def test_add_rejects_bad_cif(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 5\n")
    with pytest.raises(Exception) as info:
        add_user_cif(bad, "x", directory=tmp_path / "u")
    assert "bad.cif" in str(info.value)
    assert not (tmp_path / "u" / "x.cif").exists()


def test_from_directory_uses_file_stems(tmp_path):
    for n in ("CuO.cif", "PbSO4.cif"):
        shutil.copy(REF_STRUCTURES / n, tmp_path / n)
    lib = Library.from_directory(tmp_path)
    assert sorted(lib.entries) == ["CuO", "PbSO4"]
    assert lib.phase("CuO").id == "CuO"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LibraryError, match="no \\*.cif"):
        Library.from_directory(empty)


def test_select(lib):
    assert sorted(lib.select("CuO,NiO").entries) == ["CuO", "NiO"]
    val = lib.select("validation")
    assert "PbSO4" in val.entries and "alpha_li2b12h12" not in val.entries


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_library_list(capsys):
    assert main(["library", "list"]) == 0
    out = capsys.readouterr().out
    assert "alpha_li2b12h12" in out and "MODEL" in out
    assert "11 empty slot(s)" in out  # eight solvates, Na2B12H12 RT and HT, Li2B10H10 (issue 18: +5)
    line = next(ln for ln in out.splitlines() if ln.startswith("k2b12h12 "))
    assert "1194.4" in line and "F m -3" in line
    # issue 17: a terminal-wide table (was ~260 characters), a cubic cell given once
    assert max(len(ln) for ln in out.splitlines()) <= 120
    assert "10.61, 10.61" not in line and " 10.61 " in line
    assert not any(ln.startswith("li2b12h12_2diglyme ") for ln in out.splitlines())  # no blank rows


def test_cli_library_show_reads_like_text(capsys):
    """issue 17: no Python dict, 'Z 4' not 'Z 4.0', 'T not given' not 'T not given K'."""
    assert main(["library", "show", "alpha_li2b12h12"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "[" not in out
    assert "Z        4 " in out and "T not given" in out and "not given K" not in out
    assert main(["library", "show", "li2b12h12_2diglyme"]) == 0
    out = capsys.readouterr().out
    checks = [ln for ln in out.splitlines() if ln.startswith("  checks")]
    assert checks and "{" not in checks[0] and "'" not in checks[0] and "M-O (Å): 1.958–2.039" in checks[0]


def test_cli_library_show_did_you_mean(capsys):
    assert main(["library", "show", "PbS04"]) == 2
    assert "did you mean 'PbSO4'?" in capsys.readouterr().err
    assert main(["library", "show", "K2B12H12"]) == 2
    assert "did you mean 'k2b12h12'" in capsys.readouterr().err


def test_cli_library_show(capsys):
    assert main(["library", "show", "NAC"]) == 0
    out = capsys.readouterr().out
    assert "I 21 3" in out and "V=1077.275" in out


def test_cli_library_check(tmp_path, capsys):
    good = tmp_path / "good.cif"
    shutil.copy(REF_STRUCTURES / "CuO.cif", good)
    bad = tmp_path / "bad.cif"
    bad.write_text("")
    assert main(["library", "check", str(good)]) == 0
    assert main(["library", "check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "good: ok" in out and "bad: ERROR" in out and "empty" in out
    assert main(["library", "check"]) == 0
    assert "li2b12h12_2diglyme: EMPTY SLOT" in capsys.readouterr().out


def test_cli_error_exit_code(capsys):
    assert main(["library", "show", "nope"]) == 2
    assert "no phase 'nope'" in capsys.readouterr().err
