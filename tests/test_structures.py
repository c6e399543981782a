"""CIF ingestion: every reference CIF parses with its published cell volume, Z and formula;
malformed CIFs raise the specific XtalError naming file and field."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REF_STRUCTURES
from xtal.errors import (
    BlockNotFoundError, CifError, CifSyntaxError, EmptyFileError, MissingFieldError, OccupancyError,
    SymmetryError, UnknownElementError, XtalError,
)
from xtal.structures import format_su, parse_formula, parse_su, read_cif, read_cif_string

# Published numbers (the file's own _cell_volume, or V from the published a, b, c, angles by hand),
# Z and cell content per formula unit.
PUBLISHED = {
    "AlGa_amide_1b_P212121_SHELXL.cif": (1402.4, 0.3, 19, 4, {"C": 8, "H": 25, "Al": 0.844, "Ga": 1.156, "N": 3}),
    "Bi25FeO39.cif": (1058.4, 0.1, 197, 1, {"Bi": 25, "Fe": 1, "O": 39}),
    "Bi2Fe4O9.cif": (403.63, 0.01, 55, 2, {"Bi": 2, "Fe": 4, "O": 9}),
    "BiFeO3.cif": (374.94, 0.05, 161, 6, {"Bi": 1, "Fe": 1, "O": 3}),
    "COD2242624_FeN4_P-1_SHELXL.cif": (26.72, 0.02, 2, 1, {"Fe": 1, "N": 4}),
    "CaF2.cif": (163.185, 0.001, 225, 4, {"Ca": 1, "F": 2}),
    "CaNi_PO3_4_C2c.cif": (920.89, 0.01, 15, 4, {"Ca": 1, "Ni": 1, "P": 4, "O": 12}),
    "CuCr2O4.cif": (562.481, 0.001, 70, 8, {"Cu": 1, "Cr": 2, "O": 4}),
    "CuO.cif": (80.835, 0.001, 15, 4, {"Cu": 1, "O": 1}),
    # K2B12H12: a = 10.610 Å (Wunderlich & Lipscomb 1960): V = a^3; Z = 4 K2B12H12 per cell
    "K2B12H12_Fm-3.cif": (10.6100296668 ** 3, 0.01, 202, 8, {"K": 1, "B": 6, "H": 6}),
    # LiBH4 (Soulié et al. 2002): V = a b c (Pnma) and a^2 c sin(120°) (P63mc)
    "LiBH4_Pnma_RT.cif": (7.17858 * 4.43686 * 6.80321, 0.001, 62, 4, {"Li": 1, "B": 1, "H": 4}),
    "LiBH4_P63mc_HT.cif": (4.27631 ** 2 * 6.94844 * math.sin(math.radians(120)), 0.001, 186, 2,
                           {"Li": 1, "B": 1, "H": 4}),
    # [Mg(H2O)6][B12H12]·6H2O, F4132, a = 16.432 Å: cF488 = 8 Mg, 96 B, 96 O, 288 H
    "MgB12H12_12H2O_F4132.cif": (16.4321054599 ** 3, 0.01, 210, 8, {"Mg": 1, "B": 12, "O": 12, "H": 36}),
    "NAC.cif": (1077.275, 0.001, 199, 6, {"Na": 4 / 3, "Ca": 2, "Al": 4 / 3, "F": 28 / 3}),
    "NiO_Fm-3m.cif": (72.93, 0.001, 225, 4, {"Ni": 1, "O": 1}),
    "PbSO4.cif": (318.503, 0.001, 62, 4, {"Pb": 1, "S": 1, "O": 4}),
    "S2dipyridyl_P21c_SHELXL.cif": (2000.8, 0.3, 14, 8, {"C": 10, "H": 8, "N": 2, "S": 2}),
}


def all_reference_cifs():
    return sorted(p.name for p in REF_STRUCTURES.glob("*.cif"))


def test_every_reference_cif_is_covered():
    assert set(all_reference_cifs()) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reference_cif_cell_z_formula(name):
    volume, tol, sg_number, z, per_fu = PUBLISHED[name]
    phase = read_cif(REF_STRUCTURES / name)
    assert phase.volume == pytest.approx(volume, abs=tol)
    assert phase.spacegroup_number == sg_number
    assert phase.formula_units == pytest.approx(z, abs=1e-3)
    content = phase.formula_from_sites()
    for el, n in per_fu.items():
        assert content.get(el, 0.0) == pytest.approx(n * z, rel=2e-3), el
    assert set(content) == set(per_fu)


def test_mgb12h12_hard_case_rounded_special_position():
    """F4_{1}32 symbol (unparseable) with operators given; O2 on 48g with rounded coordinates."""
    p = read_cif(REF_STRUCTURES / "MgB12H12_12H2O_F4132.cif")
    assert len(p.cell_atoms()) == 8 + 96 + 96 + 288
    assert p.spacegroup_hm == "F 41 3 2"
    assert any("repeats" in w for w in p.warnings)  # the file lists 144 operators, 96 distinct
    assert not any("apart" in w for w in p.warnings)


def test_shelxl_sites_keep_su_disorder_and_adps():
    p = read_cif(REF_STRUCTURES / "AlGa_amide_1b_P212121_SHELXL.cif")
    assert p.cell.su[0] == pytest.approx(0.0008)
    assert p.cell.su[2] == pytest.approx(0.002)
    # volume s.u. propagated from the cell s.u. reproduces SHELXL's _cell_volume 1402.4(3)
    assert format_su(p.volume, p.cell.volume_su) == "1402.4(3)"
    al = next(s for s in p.sites if s.label == "Al1")
    assert al.frac == pytest.approx((0.2398, 0.4290, 0.0350))
    assert al.frac_su == pytest.approx((0.0012, 0.0009, 0.0005))
    assert al.occupancy == pytest.approx(0.844) and al.occupancy_su == pytest.approx(0.002)
    assert (al.disorder_assembly, al.disorder_group) == ("A", "1")
    assert al.u_aniso == pytest.approx((0.0313, 0.0283, 0.019, -0.0005, -0.0038, -0.0054))
    assert al.u_aniso_su[2] == pytest.approx(0.002)
    h = next(s for s in p.sites if s.label == "H1A")
    assert h.calc_flag == "calc" and h.is_riding and h.u_iso == pytest.approx(0.082)
    assert not al.is_riding
    assert p.temperature_k == pytest.approx(173)
    assert p.wavelength_angstrom == pytest.approx(0.71073)
    # Ueq from Uij (published Ueq 0.0260(8)) within its s.u.
    assert p.u_equivalent(al) == pytest.approx(0.0260, abs=0.0008)
    # no spurious close-contact warning: Al1/Ga1 are alternative positions (PART 1/2)
    assert not any("apart" in w for w in p.warnings)


def test_provenance_ids():
    cod = read_cif(REF_STRUCTURES / "COD2242624_FeN4_P-1_SHELXL.cif")
    assert cod.provenance.cod == "2242624"
    assert cod.provenance.doi == "10.1107/S2056989018012161"
    icsd = read_cif(REF_STRUCTURES / "BiFeO3.cif")
    assert icsd.provenance.icsd == "15299"


def test_to_pymatgen_carries_occupancy_and_adps():
    p = read_cif(REF_STRUCTURES / "AlGa_amide_1b_P212121_SHELXL.cif")
    s = p.to_pymatgen()
    comp = s.composition.as_dict()
    assert comp["Al"] == pytest.approx(4 * 0.844)
    assert comp["Ga"] == pytest.approx(4 * 1.156)
    assert len(s) == len(p.cell_atoms()) == 156
    u = [x for x, lab in zip(s.site_properties["u_iso"], s.site_properties["label"]) if lab == "H1A"]
    assert u == pytest.approx([0.082] * 4)
    # density from pymatgen's composition and volume agrees with ours and the CIF's 1.264
    assert float(s.density) == pytest.approx(p.density_calc, rel=1e-4)
    assert p.density_calc == pytest.approx(1.264, abs=0.002)


def test_beta_tensor_rotates_with_symmetry():
    """β of a symmetry image equals R β Rᵀ: the Ueq of every image is the same."""
    p = read_cif(REF_STRUCTURES / "AlGa_amide_1b_P212121_SHELXL.cif")
    betas = [im.beta for im in p.cell_atoms() if p.sites[im.site_index].label == "Ga2"]
    assert len(betas) == 4
    traces = [np.trace(b) for b in betas]
    assert np.allclose(traces, traces[0])
    assert not np.allclose(betas[0], betas[1])  # off-diagonal signs change


@pytest.mark.parametrize("text,expected", [
    ("0.2398(12)", (0.2398, 0.0012)), ("1402.4(3)", (1402.4, 0.3)), ("17.444(2)", (17.444, 0.002)),
    ("173(2)", (173.0, 2.0)), ("-0.0054(13)", (-0.0054, 0.0013)), ("1.5e-3(2)", (1.5e-3, 2e-4)),
    ("0.5", (0.5, None)), ("?", (None, None)), (".", (None, None)),
])
def test_parse_su(text, expected):
    v, s = parse_su(text)
    assert v == pytest.approx(expected[0])
    assert (s is None) == (expected[1] is None)
    if s is not None:
        assert s == pytest.approx(expected[1])


@pytest.mark.parametrize("value,su,text", [
    (2.01234, 0.00153, "2.0123(15)"), (1.958, 0.002, "1.958(2)"), (2.0391, 0.0019, "2.0391(19)"),
    (2.7284, 0.0021, "2.728(2)"), (120.45, 0.13, "120.45(13)"),
])
def test_format_su(value, su, text):
    assert format_su(value, su) == text


def test_parse_formula():
    assert parse_formula("C8 H25 Al0.84 Ga1.16 N3") == {"C": 8, "H": 25, "Al": 0.84, "Ga": 1.16, "N": 3}
    assert parse_formula("'B12 H36 Mg O12'") == {"B": 12, "H": 36, "Mg": 1, "O": 12}


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
GOOD = (REF_STRUCTURES / "PbSO4.cif").read_text()


def _write(tmp_path, text, name="bad.cif", mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def test_empty_file(tmp_path):
    p = _write(tmp_path, "")
    with pytest.raises(EmptyFileError, match="bad.cif.*empty"):
        read_cif(p)


def test_binary_garbage(tmp_path):
    p = _write(tmp_path, bytes(range(256)) * 10, mode="wb")
    with pytest.raises(CifSyntaxError, match="bad.cif.*binary"):
        read_cif(p)


def test_truncated_file(tmp_path):
    cut = GOOD[: GOOD.index("_atom_site_fract_x") + 3]
    p = _write(tmp_path, cut)
    with pytest.raises(CifError, match="bad.cif"):
        read_cif(p)


def test_missing_cell(tmp_path):
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith("_cell_length_b"))
    p = _write(tmp_path, text)
    with pytest.raises(MissingFieldError, match=r"bad.cif.*block pbso4-phase.*_cell_length_b"):
        read_cif(p)


def test_unknown_element(tmp_path):
    text = GOOD.replace("Pb     Pb ", "Pb     Xq ")
    assert text != GOOD
    p = _write(tmp_path, text)
    with pytest.raises(UnknownElementError, match=r"bad.cif.*_atom_site_type_symbol.*Xq"):
        read_cif(p)


def test_wrong_loop_column_count(tmp_path):
    lines = GOOD.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip().startswith("Pb "))
    lines[i] = lines[i] + " 0.1234"
    p = _write(tmp_path, "\n".join(lines))
    with pytest.raises(CifSyntaxError, match=r"bad.cif.*line \d+.*Wrong number of values"):
        read_cif(p)


def test_occupancy_above_one_without_disorder(tmp_path):
    text = (REF_STRUCTURES / "AlGa_amide_1b_P212121_SHELXL.cif").read_text()
    text = text.replace("N1 N 0.3043(4) 0.55591(18) -0.04642(13) 0.0375(5) Uani 1 1",
                        "N1 N 0.3043(4) 0.55591(18) -0.04642(13) 0.0375(5) Uani 1.7 1")
    p = _write(tmp_path, text)
    with pytest.raises(OccupancyError, match=r"bad.cif.*_atom_site_occupancy.*N1.*1.7.*no disorder"):
        read_cif(p)


def test_bad_symmetry_operator(tmp_path):
    text = GOOD.replace("1/2-x,1/2+y,1/2+z", "1/2-x,1/2+y")
    assert text != GOOD
    p = _write(tmp_path, text)
    with pytest.raises(SymmetryError, match=r"bad.cif.*_space_group_symop_operation_xyz.*operator 2"):
        read_cif(p)


def test_multiblock_choose_by_name(tmp_path):
    a = (REF_STRUCTURES / "CuO.cif").read_text().replace("data_2p10h", "data_cuo")
    b = (REF_STRUCTURES / "CaF2.cif").read_text()
    p = _write(tmp_path, a + "\n" + b, name="two.cif")
    with pytest.raises(BlockNotFoundError, match="two.cif.*2 structures.*choose"):
        read_cif(p)
    assert read_cif(p, block="CaF2").spacegroup_number == 225
    assert read_cif(p, block="data_cuo").spacegroup_number == 15
    with pytest.raises(BlockNotFoundError, match="no data block 'nope'"):
        read_cif(p, block="nope")


def test_symmetry_from_name_when_no_operators(tmp_path):
    start = GOOD.index("loop_\n    _space_group_symop_id")
    end = GOOD.index("# ATOMIC COORDINATES")
    text = GOOD[:start] + GOOD[end:]
    phase = read_cif(_write(tmp_path, text))
    assert len(phase.symops) == 8 and phase.spacegroup_number == 62
    assert phase.formula_from_sites()["O"] == pytest.approx(16)


def test_inconsistent_symmetry_is_reported(tmp_path):
    text = GOOD.replace('"P n m a"', '"P 21/c"')
    phase = read_cif(_write(tmp_path, text))
    assert any("disagrees with the operators" in w for w in phase.warnings)
    assert phase.spacegroup_number == 62


def test_close_contact_warning(tmp_path):
    lines = GOOD.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip().startswith("S "))
    parts = lines[i].split()
    parts[0] = "S9"
    parts[4] = f"{float(parts[4]) + 0.01:.4f}"
    lines.insert(i + 1, " ".join(parts))
    phase = read_cif(_write(tmp_path, "\n".join(lines)))
    assert any("S and S9" in w or "S9 and S" in w for w in phase.warnings)


# ---------------------------------------------------------------------------------------------
# property test: mutated real CIFs never raise anything but XtalError
# ---------------------------------------------------------------------------------------------
SEEDS = [(REF_STRUCTURES / n).read_text() for n in
         ("PbSO4.cif", "AlGa_amide_1b_P212121_SHELXL.cif", "K2B12H12_Fm-3.cif", "COD2242624_FeN4_P-1_SHELXL.cif")]


@st.composite
def mutated_cif(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "delete", "insert", "replace_number", "dup_line",
                                   "drop_line"]))
        n = len(text)
        if n == 0:
            break
        i = draw(st.integers(0, n - 1))
        if op == "truncate":
            text = text[:i]
        elif op == "delete":
            j = draw(st.integers(i, min(n, i + 200)))
            text = text[:i] + text[j:]
        elif op == "insert":
            junk = draw(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=20))
            text = text[:i] + junk + text[i:]
        elif op == "replace_number":
            junk = draw(st.sampled_from(["?", ".", "nan", "inf", "-1", "1e9", "(3)", "1.2.3", "'x'", "0"]))
            j = min(n, i + draw(st.integers(1, 8)))
            text = text[:i] + junk + text[j:]
        else:
            lines = text.splitlines()
            k = draw(st.integers(0, max(0, len(lines) - 1)))
            if op == "dup_line":
                lines.insert(k, lines[k] if lines else "")
            elif lines:
                lines.pop(k)
            text = "\n".join(lines)
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_cif())
def test_mutated_cifs_raise_only_xtal_errors(text):
    try:
        phase = read_cif_string(text, name="mutated.cif")
    except XtalError as exc:
        assert "mutated.cif" in str(exc)
        return
    assert phase.volume > 0


# ----------------------------------------------------------------------------------------------
# one vectorised symmetry expansion; contact validation with gemmi's neighbour search
# ----------------------------------------------------------------------------------------------
def _cif(name: str, cell: tuple[float, ...], atoms: list[tuple], *, symops: tuple[str, ...] = (),
         spacegroup: str | None = None) -> str:
    """A minimal CIF: cell (Å, °), operators or an H-M symbol, atoms (label, element, x, y, z)."""
    tags = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
    lines = [f"data_{name}"] + [f"_cell_{t} {v}" for t, v in zip(tags, cell)]
    if spacegroup:
        lines.append(f"_space_group_name_H-M_alt '{spacegroup}'")
    if symops:
        lines += ["loop_", "_space_group_symop_operation_xyz"] + [f"'{o}'" for o in symops]
    lines += ["loop_"] + [f"_atom_site_{t}" for t in ("label", "type_symbol", "fract_x", "fract_y", "fract_z")]
    lines += [" ".join(str(v) for v in atom) for atom in atoms]
    return "\n".join(lines) + "\n"


def _f43m_cif(n_sites: int, a_angstrom: float = 80.0) -> str:
    """F-43m with ``n_sites`` general positions on a 0.01 grid, x < y < z < 1/4 (distinct orbits,
    every pair of atoms ≥ 0.8 Å apart)."""
    from itertools import combinations

    grid = [round(0.03 + 0.01 * k, 2) for k in range(21)]
    atoms = [(f"C{k + 1}", "C", f"{x:.2f}", f"{y:.2f}", f"{z:.2f}")
             for k, (x, y, z) in enumerate(list(combinations(grid, 3))[:n_sites])]
    return _cif("big_f43m", (a_angstrom,) * 3 + (90,) * 3, atoms, spacegroup="F -4 3 m")


def test_48000_atom_cell_reads_and_passes_library_check(tmp_path, capsys):
    """500 general sites in F-43m: 48,000 atoms in the cell (timing: benchmarks/bench_structures.py)."""
    from xtal.cli import main

    path = tmp_path / "big_f43m.cif"
    path.write_text(_f43m_cif(500))
    p = read_cif(path)
    assert len(p.operations) == 96
    assert len(p.cell_atoms()) == 48_000
    assert {s.multiplicity for s in p.sites} == {96}
    assert not any("apart" in w for w in p.warnings)
    frac = np.array([im.frac for im in p.cell_atoms()])
    assert frac.min() >= 0.0 and frac.max() < 1.0
    assert len(np.unique(np.round(frac, 6), axis=0)) == 48_000
    assert main(["library", "check", str(path)]) == 0
    assert "big_f43m: " in capsys.readouterr().out


CONTACTS_CIF = _cif("contacts", (7.1, 8.3, 9.2, 71, 104, 97),
                    [("Na1", "Na", 0.2, 0.3, 0.4), ("K1", "K", 0.2, 0.3, 0.4), ("O1", "O", 0.995, 0.5, 0.02),
                     ("O2", "O", 0.03, 0.49, 0.99), ("S1", "S", 0.02, 0.0, 0.5), ("Ca1", "Ca", 0.6, 0.6, 0.6),
                     ("H1", "H", 0.6, 0.6, 0.61)], symops=("x, y, z", "-x, -y, -z"))


def test_close_contacts_across_cell_edges_triclinic():
    """Same warnings as the per-pair loop gave: coincident atoms, own images and neighbours across
    cell edges of a triclinic cell; H is never reported."""
    assert read_cif_string(CONTACTS_CIF).warnings == [
        "atoms Na1 and K1 are 0.000 Å apart (< 0.5 Å) without a disorder explanation",
        "atoms O1 and O1 are 0.391 Å apart (< 0.5 Å) without a disorder explanation",
        "atoms O1 and O2 are 0.445 Å apart (< 0.5 Å) without a disorder explanation",
        "atoms S1 and S1 are 0.284 Å apart (< 0.5 Å) without a disorder explanation"]


def test_cif_facts_kept_at_read_time():
    """Operators as written, the _geom_bond loop and printed coordinate precision live on the Phase."""
    p = read_cif(REF_STRUCTURES / "S2dipyridyl_P21c_SHELXL.cif")
    assert p.symops_tag == "_symmetry_equiv_pos_as_xyz"
    assert p.symops_as_written[3].replace(" ", "") == "x,-y-1/2,z-1/2"
    assert len(p.geom_bonds) > 10
    s1s2 = next(b for b in p.geom_bonds if (b.label_1, b.label_2) == ("S1A", "S2A"))
    assert s1s2.distance_text == "2.0222(5)"
    assert all(s.frac_decimals is not None and min(s.frac_decimals) >= 3 for s in p.sites)
