"""Fuzzing the structure entry point with mutated real CIFs (and the pattern readers through
`read_pattern`).

Every real CIF of ../shared/reference/structures and of the bundled library is mutated (numbers
replaced by impossible or extreme values, operators rewritten, element symbols changed, lines
deleted/duplicated, text truncated or garbled).  For every case:

* the only exception allowed is an `XtalError` subclass;
* no case takes more than 10 s (hypothesis ``deadline``);
* the ORACLE: a Phase that *is* returned holds only physically possible numbers (Z > 0, finite
  non-negative-within-tolerance U, occupancy in [0, 1], positive cell, a closed group of
  crystallographic isometries, known elements, positive density/weight/λ/T), and a reflection table
  simulated from it is finite.  Accepting an impossible value fails the test.

Profiles: ``XTAL_FUZZ_EXAMPLES`` (default 100 per test, derandomised, ≈ 30 s in CI);
``python benchmarks/fuzz_inputs.py`` runs ≥ 10,000 cases and records the result in
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import math
import os
import re

import gemmi
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BUNDLED_STRUCTURES, REF_PATTERNS, REF_STRUCTURES, REPO
from xtal.errors import XtalError
from xtal.structures import read_cif_string
from xtal.structures.validate import U_MAX_ANGSTROM2, U_NEGATIVE_TOLERANCE_ANGSTROM2

EXAMPLES = int(os.environ.get("XTAL_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=10_000, derandomize=os.environ.get("XTAL_FUZZ_RANDOM") is None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None)

SEED_FILES = sorted(REF_STRUCTURES.glob("*.cif")) + sorted(BUNDLED_STRUCTURES.glob("models/*.cif"))
SEEDS = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in SEED_FILES}

NUMBER_RE = re.compile(r"(?<![A-Za-z_])-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?:\(\d+\))?")
EVIL_NUMBERS = ["0", "-4", "-1", "-0.0", "1e-300", "50", "1e9999", "2.0e9999(3)", "-2.0e9999(3)", "inf",
                "-inf", "nan", "NaN", "?", ".", "1e308", "123456789012345678901234567890", "0.2(999999)",
                "1.5(2)", "-273.16", "0.99999", "1.0001", "3", "0.3", "-0.03", "1e-9", "7", "0.5"]
TRIPLET_PARTS = ["x", "-x", "y", "-y", "z", "-z", "2*x", "x+y", "x-y", "-x+y", "1/2", "1/3", "x+1/2",
                 "-y+1/4", "z+1/3", "0", "x*y", "", "x,"]
SYMOP_RE = re.compile(r"^(\s*\d*\s*)'?([-+xyz0-9/*., ]+,[-+xyz0-9/*., ]+,[-+xyz0-9/*., ]+)'?\s*$", re.M)
SITE_TAGS = ["_cell_formula_units_Z", "_exptl_crystal_density_diffrn", "_chemical_formula_weight",
             "_diffrn_radiation_wavelength", "_diffrn_ambient_temperature", "_cell_length_a",
             "_cell_angle_beta", "_space_group_IT_number"]


@st.composite
def mutated_cif(draw) -> str:
    name = draw(st.sampled_from(sorted(SEEDS)))
    text = SEEDS[name]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["number", "number", "number", "symop", "element", "item",
                                     "delete", "duplicate", "truncate", "garble"]))
        text = _mutate(draw, kind, text)
    return text


def _mutate(draw, kind: str, text: str) -> str:
    if kind == "number":
        hits = list(NUMBER_RE.finditer(text))
        if hits:
            m = hits[draw(st.integers(0, len(hits) - 1))]
            text = text[:m.start()] + draw(st.sampled_from(EVIL_NUMBERS)) + text[m.end():]
    elif kind == "symop":
        hits = list(SYMOP_RE.finditer(text))
        if hits:
            m = hits[draw(st.integers(0, len(hits) - 1))]
            trip = ",".join(draw(st.sampled_from(TRIPLET_PARTS)) for _ in range(3))
            text = text[:m.start(2)] + trip + text[m.end(2):]
    elif kind == "element":
        hits = list(re.finditer(r"(?m)^(\s*[A-Z][a-z]?\d+[A-Za-z]?\s+)([A-Z][a-z]?\d?[+-]?)(\s)", text))
        if hits:
            m = hits[draw(st.integers(0, len(hits) - 1))]
            sym = draw(st.sampled_from(["Sx", "Xx", "Q", "D", "H", "Og", "Zz", "Li", "X1", "OW", "Cu9+"]))
            text = text[:m.start(2)] + sym + text[m.end(2):]
    elif kind == "item":
        tag = draw(st.sampled_from(SITE_TAGS))
        value = draw(st.sampled_from(EVIL_NUMBERS))
        text = re.sub(rf"(?m)^{re.escape(tag)}\s+\S+.*$", "", text) + f"\n{tag} {value}\n"
    elif kind in ("delete", "duplicate"):
        lines = text.splitlines()
        if lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines = lines[:i] + lines[i + 1:] if kind == "delete" else lines[:i + 1] + lines[i:]
            text = "\n".join(lines)
    elif kind == "truncate":
        text = text[:draw(st.integers(0, len(text)))]
    elif kind == "garble":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(min_size=1, max_size=20)) + text[i:]
    return text


def assert_physical(phase) -> None:
    """The oracle: fails when a returned Phase holds an impossible value."""
    c = phase.cell
    assert all(math.isfinite(v) and v > 0 for v in (c.a, c.b, c.c)), c
    assert all(0 < v < 180 for v in (c.alpha, c.beta, c.gamma)), c
    assert math.isfinite(phase.volume) and phase.volume > 0
    assert phase.z is None or (math.isfinite(phase.z) and phase.z > 0), phase.z
    for v in (phase.formula_weight, phase.density_stated, phase.wavelength_angstrom, phase.temperature_k):
        assert v is None or (math.isfinite(v) and v > 0), v
    assert phase.sites
    for s in phase.sites:
        assert s.element == "D" or gemmi.Element(s.element).atomic_number > 0, s.element
        assert all(math.isfinite(v) and abs(v) <= 100 for v in s.frac), s
        assert 0.0 <= s.occupancy <= 1.0 + 1e-3, s
        if s.u_iso is not None:
            assert math.isfinite(s.u_iso) and -U_NEGATIVE_TOLERANCE_ANGSTROM2 <= s.u_iso <= U_MAX_ANGSTROM2, s
        if s.u_aniso is not None:
            assert all(math.isfinite(v) for v in s.u_aniso), s
            assert all(-U_NEGATIVE_TOLERANCE_ANGSTROM2 <= v <= U_MAX_ANGSTROM2 for v in s.u_aniso[:3]), s
            assert all(abs(v) <= U_MAX_ANGSTROM2 for v in s.u_aniso[3:]), s
    ops = [gemmi.Op(t) for t in phase.symops]
    keys = {o.triplet() for o in ops}
    for o in ops:
        r = np.array(o.rot)
        assert not np.any(r % gemmi.Op.DEN), o.triplet()
        assert abs(round(np.linalg.det(r // gemmi.Op.DEN))) == 1, o.triplet()
    for a in ops[:12]:          # closure (sampled: the full check is in check_symops)
        for b in ops:
            assert (a * b).wrap().triplet() in keys, (a.triplet(), b.triplet())
    assert math.isfinite(phase.density_calc) and phase.density_calc > 0


def _check_one(text: str) -> None:
    try:
        phase = read_cif_string(text, name="fuzz.cif")
    except XtalError:
        return
    assert_physical(phase)
    from xtal.simulate import reflection_table

    try:
        rt = reflection_table(phase, 1.5406, (10.0, 40.0))
    except XtalError:
        return
    assert np.all(np.isfinite(rt.intensity)) and np.all(rt.intensity >= 0)


@FUZZ
@given(mutated_cif())
def test_mutated_cifs_raise_only_xtal_errors_and_never_yield_impossible_phases(text):
    _check_one(text)


def test_seeds_are_real_and_pass_the_oracle():
    """The unmutated seeds: all read (no silent skip), all physical."""
    assert len(SEEDS) >= 15
    for name, text in SEEDS.items():
        assert_physical(read_cif_string(text, name=name))


@pytest.mark.parametrize("text", [
    SEEDS["CuO.cif"].replace("_cell_formula_units_Z  4", "_cell_formula_units_Z  -4"),
    SEEDS["CuO.cif"].replace("Uiso 0.001      4   \nO1", "Uiso 50      4   \nO1"),
    SEEDS["CuO.cif"] + "\n_diffrn_ambient_temperature -5\n",
    SEEDS["CuO.cif"].replace("Uiso 0.001      4   \nO1", "Uiso -0.5      4   \nO1"),
])
def test_the_oracle_would_catch_an_accepted_impossible_value(text):
    """Guard that the oracle is not vacuous: parse without the physical check and the oracle fails."""
    import xtal.structures.cif as cif

    real = cif.check_physical
    cif.check_physical = lambda phase: None
    real_each = cif.check_symops_each
    cif.check_symops_each = lambda *a, **k: None
    try:
        try:
            phase = read_cif_string(text, name="fuzz.cif")
        except XtalError:
            pytest.fail("this case should only be caught by the physical checks")
        with pytest.raises(AssertionError):
            assert_physical(phase)
    finally:
        cif.check_physical = real
        cif.check_symops_each = real_each


# ------------------------------------------------------------------------------------------------
# pattern readers, only through the public read_pattern (the readers belong to another change)
# ------------------------------------------------------------------------------------------------
PATTERN_SEEDS = sorted(p for p in list(REF_PATTERNS.rglob("*")) + list((REPO / "patterns").rglob("*"))
                       if p.is_file() and p.suffix.lower() in (".xy", ".xye", ".dat", ".csv", ".xrdml", ".gsa", ".gsas", ".xra",
                                                                ".fxye", ".raw", ".txt", ".chi")
                       and p.stat().st_size < 400_000)


@st.composite
def mutated_pattern(draw) -> tuple[str, bytes]:
    path = draw(st.sampled_from(PATTERN_SEEDS))
    text = path.read_text(encoding="latin-1")
    for _ in range(draw(st.integers(1, 3))):
        text = _mutate(draw, draw(st.sampled_from(["number", "number", "delete", "duplicate", "truncate",
                                                   "garble"])), text)
    return path.suffix, text.encode("latin-1", errors="replace")


@FUZZ
@given(mutated_pattern())
def test_mutated_patterns_raise_only_xtal_errors(tmp_path_factory, case):
    from xtal.io import read_pattern

    suffix, data = case
    path = tmp_path_factory.mktemp("pat") / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        p = read_pattern(path, wavelength_angstrom=1.5406)
    except XtalError:
        return
    x, y = np.asarray(p.x, float), np.asarray(p.intensity, float)
    assert len(x) == len(y) and len(x) > 0
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))


def test_pattern_seeds_exist():
    assert len(PATTERN_SEEDS) >= 5, PATTERN_SEEDS
