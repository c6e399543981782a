"""The on-disk cache (xtal.cache): same reflections cold and warm, keyed by the CIF's content, safe
against corrupt entries, and where the user asked for it; parsed CIFs that equal a fresh parse;
operator lists that passed their group check remembered across processes, failing ones never."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REF_STRUCTURES, REPO

from xtal import cache
from xtal.identify import model
from xtal.library import Library
from xtal.structures import cif as cif_reader
from xtal.structures import read_cif, read_cif_string
from xtal.structures.model import phase_from_record, phase_record


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("XTAL_CACHE_DIR", str(d))
    model.clear_cache()
    yield d
    model.clear_cache()


def _cif(phase_id):
    return Library.bundled(user_dir=False).entry(phase_id).cif


def _rows(hkl, fm):
    """Reflections as a sorted set of rows (the order of a list is not part of its meaning)."""
    a = np.column_stack([hkl, fm])
    return a[np.lexsort(a.T[::-1])]


def _same(a, b):
    """Same reflections; |F|² to 1e-7 (structure-factor phases are float32 and a table computed to
    another d_min is evaluated in other blocks: differences of ~1e-8 relative)."""
    ra, rb = _rows(*a), _rows(*b)
    np.testing.assert_array_equal(ra[:, :3], rb[:, :3])
    np.testing.assert_allclose(ra[:, 3], rb[:, 3], rtol=1e-7)


def _entries(d, kind="reflections"):
    return sorted((d / kind).rglob("*.npz"))


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XTAL_CACHE_DIR", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x"
    monkeypatch.setenv("XTAL_CACHE_DIR", "off")
    assert cache.cache_dir() is None
    monkeypatch.delenv("XTAL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "xtal"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "xtal"


def test_cold_and_warm_reflections_are_identical(cache_dir):
    phase = read_cif(_cif("PbSO4"), phase_id="PbSO4")
    cold = model.cached_reflections(phase, 0.9)
    assert len(_entries(cache_dir)) == 1
    model.clear_cache()                                  # a new process: memory empty, disk warm
    warm = model.cached_reflections(phase, 0.9)
    direct = model._base_reflections(phase, 0.9)         # no cache at all
    np.testing.assert_array_equal(cold[0], warm[0])
    np.testing.assert_array_equal(cold[1], warm[1])
    _same(cold, direct)
    # a slightly larger d_min is served by the same entry, filtered to d ≥ d_min
    h2, f2 = model.cached_reflections(phase, 0.95)
    assert len(_entries(cache_dir)) == 1 and 0 < len(h2) < len(cold[0])
    _same((h2, f2), model._base_reflections(phase, 0.95))


def test_a_changed_cif_or_an_edited_phase_is_a_new_entry(cache_dir, tmp_path):
    src = tmp_path / "p.cif"
    shutil.copy(_cif("NiO"), src)
    p1 = read_cif(src, phase_id="NiO")
    k1 = cache.phase_cache_key(p1, "reflections", 1.0)
    assert k1 == cache.phase_cache_key(read_cif(src, phase_id="NiO"), "reflections", 1.0)
    assert k1 != cache.phase_cache_key(p1, "reflections", 0.9)
    src.write_text(src.read_text() + "\n# a comment changes the content hash\n")
    assert cache.phase_cache_key(read_cif(src, phase_id="NiO"), "reflections", 1.0) != k1
    p3 = read_cif(src, phase_id="NiO")
    k3 = cache.phase_cache_key(p3, "reflections", 1.0)
    p3.sites[0].occupancy = 0.5
    assert cache.phase_cache_key(p3, "reflections", 1.0) != k3


def test_a_corrupt_entry_is_ignored_and_rewritten(cache_dir):
    phase = read_cif(_cif("NiO"), phase_id="NiO")
    good = model.cached_reflections(phase, 0.8)
    (entry,) = _entries(cache_dir)
    entry.write_bytes(b"not an npz file")
    model.clear_cache()
    again = model.cached_reflections(phase, 0.8)
    np.testing.assert_array_equal(good[0], again[0])
    np.testing.assert_array_equal(good[1], again[1])
    with np.load(entry) as z:                            # rewritten as a valid entry
        assert z["hkl"].shape == (len(z["fmult"]), 3) and len(z["fmult"]) >= len(good[1])


def test_a_disabled_or_unwritable_cache_still_computes(monkeypatch, tmp_path):
    phase = read_cif(_cif("NiO"), phase_id="NiO")
    monkeypatch.setenv("XTAL_CACHE_DIR", "off")
    model.clear_cache()
    off = model.cached_reflections(phase, 0.8)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XTAL_CACHE_DIR", str(blocker / "sub"))
    model.clear_cache()
    bad = model.cached_reflections(phase, 0.8)
    model.clear_cache()
    np.testing.assert_array_equal(off[0], bad[0])


def test_processes_writing_the_same_entries_at_once_leave_valid_entries(cache_dir):
    code = ("from xtal.library import Library\nfrom xtal.identify import model\n"
            "for p in Library.bundled().phases(['PbSO4', 'NiO', 'CuO']):\n"
            "    model.cached_reflections(p, 0.9)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO) for _ in range(3)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    entries = _entries(cache_dir)
    assert len(entries) == 3
    assert not [p for p in cache_dir.rglob("*") if p.name.startswith(".tmp-")]
    from xtal.library import Library
    for p in Library.bundled().phases(["PbSO4", "NiO", "CuO"]):
        model.clear_cache()
        _same(model.cached_reflections(p, 0.9), model._base_reflections(p, 0.9))


def test_checked_operator_lists_are_remembered_on_disk_and_bad_ones_never(cache_dir, monkeypatch):
    from xtal.errors import SymmetryError
    from xtal.structures import validate

    def fatal(cls, msg, field):
        return cls(msg)

    group = ["x,y,z", "-x,-y,-z", "-x,y+1/2,-z+1/2", "x,-y+1/2,z+1/2"]     # P 1 21/c 1
    monkeypatch.setattr(validate, "_GOOD_OPERATOR_LISTS", set())
    validate.check_symops(group, fatal)
    assert len(_entries(cache_dir, "symops")) == 1
    # another process (an empty in-process memo) reads the entry and does not check again
    monkeypatch.setattr(validate, "_GOOD_OPERATOR_LISTS", set())
    calls = []
    real = validate._check_symops
    monkeypatch.setattr(validate, "_check_symops", lambda *a, **k: calls.append(a) or real(*a, **k))
    validate.check_symops(group, fatal)
    assert calls == []
    # a list that is not a group raises every time and leaves no entry
    bad = ["x,y,z", "-x,y+1/2,-z+1/2", "x+1/2,y,z"]    # products such as -x-1/2,y+1/2,-z+1/2 missing
    for _ in range(2):
        with pytest.raises(SymmetryError, match="do not form a group"):
            validate.check_symops(bad, fatal)
    assert len(_entries(cache_dir, "symops")) == 1 and len(calls) == 2


# --- parsed CIFs ---------------------------------------------------------------------------------
def test_every_real_structure_survives_its_cache_record():
    """The record a parsed phase is cached as gives back an equal Phase (cell with s.u., sites with
    their tuples, ADPs, disorder, operators as written, _geom_bond rows, provenance, warnings)."""
    import json

    paths = sorted(REF_STRUCTURES.glob("*.cif"))
    assert len(paths) >= 15
    for path in paths:
        phase = read_cif_string(path.read_text(), name=str(path), phase_id=path.stem)
        back = phase_from_record(json.loads(json.dumps(phase_record(phase))))
        assert back == phase, path.name
        assert type(back.sites[0].frac) is tuple and type(back.cell.su) is tuple


def test_a_warm_read_does_not_parse_and_equals_a_fresh_parse(cache_dir, monkeypatch, tmp_path):
    src = tmp_path / "AlGa.cif"
    shutil.copy(REF_STRUCTURES / "AlGa_amide_1b_P212121_SHELXL.cif", src)
    cold = read_cif(src, phase_id="AlGa")
    assert len(_entries(cache_dir, "phases")) == 1
    fresh = read_cif_string(src.read_text(), name=str(src), phase_id="AlGa")

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again although the cache holds the phase")

    monkeypatch.setattr(cif_reader, "read_cif_string", no_parse)
    warm = read_cif(src, phase_id="AlGa")
    assert warm == cold == fresh and warm is not cold
    assert warm.warnings == fresh.warnings and warm.provenance.file == str(src)
    with pytest.raises(AssertionError):            # another id (or block, kind, name) is parsed
        read_cif(src, phase_id="other")
    # a changed file is a new entry, with the new numbers
    src.write_text(src.read_text().replace("_cell_length_a", "_cell_length_a 7.5\n#", 1))
    monkeypatch.undo()
    monkeypatch.setenv("XTAL_CACHE_DIR", str(cache_dir))
    changed = read_cif(src, phase_id="AlGa")
    assert changed.cell.a == 7.5 != cold.cell.a
    assert len(_entries(cache_dir, "phases")) == 2       # the failed read stored nothing


def test_a_corrupt_phase_entry_is_reparsed(cache_dir):
    good = read_cif(_cif("NiO"), phase_id="NiO")
    (entry,) = _entries(cache_dir, "phases")
    entry.write_bytes(b"\x93NUMPY truncated")
    assert read_cif(_cif("NiO"), phase_id="NiO") == good
    with np.load(entry) as z:                            # rewritten as a valid entry
        assert z["json"].ndim == 0
