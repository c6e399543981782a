"""Coordination geometry (issue 7): distances with s.u. and symmetry codes vs SHELXL, CN, donors,
disorder, bond-valence sums, polyhedra, reports."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import BUNDLED_STRUCTURES, HANG_GUARD_S, REF_STRUCTURES
from xtal.errors import GeometryError
from xtal.geometry import (
    IDEAL_POLYHEDRA,
    NoMetalError,
    analyse_geometry,
    bond_from_code,
    bv_parameter,
    compare_cif_bonds,
    compare_metals,
    continuous_shape_measure,
    format_symop_code,
    parse_symop_code,
)
from xtal.report.geometry import plot_distance_distributions, render_geometry_html, render_geometry_markdown
from xtal.structures import read_cif, read_cif_string

SHELXL_CIFS = ["AlGa_amide_1b_P212121_SHELXL.cif", "S2dipyridyl_P21c_SHELXL.cif",
               "COD2242624_FeN4_P-1_SHELXL.cif"]
ALPHA_MODEL = BUNDLED_STRUCTURES / "models" / "alpha_Li2B12H12_model.cif"


def ref(name):
    return read_cif(REF_STRUCTURES / name)


# ----------------------------------------------------------------------------------------------
# symmetry codes
# ----------------------------------------------------------------------------------------------
def test_symop_code_round_trip():
    assert parse_symop_code("2_656") == (2, (1, 0, 1))
    assert parse_symop_code(".") == (1, (0, 0, 0))
    assert parse_symop_code("1_555") == (1, (0, 0, 0))
    assert parse_symop_code("3_10_5_5") == (3, (5, 0, 0))
    assert format_symop_code(2, (1, 0, 1)) == "2_656"
    assert format_symop_code(1, (0, 0, 0)) == "."
    assert format_symop_code(1, (-1, 0, 0)) == "1_455"
    with pytest.raises(ValueError):
        parse_symop_code("x,y,z")


# ----------------------------------------------------------------------------------------------
# agreement with SHELXL's own _geom_bond loops
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHELXL_CIFS)
def test_every_geom_bond_reproduced(name):
    """Every listed bond: distance to the precision the CIF prints, the same symmetry code from xtal's
    own neighbour search, and ≤ 0.001 Å wherever the CIF's digits allow that comparison."""
    chk = compare_cif_bonds(ref(name))
    assert chk is not None
    rows = chk["rows"]
    assert chk["n_compared"] == chk["n_listed"] == len(rows) > 10
    for r in rows:
        assert r["status"] == "ok", r
        # printed precision of d and of the coordinates bounds the achievable agreement
        assert abs(r["diff"]) <= r["rounding_bound"] + 1e-4, r
        if r["rounding_bound"] < 0.0012:          # CIF with 4 decimals in d and coordinates
            assert abs(r["diff"]) <= 0.001, r
        assert r["code_found"] is not None and parse_symop_code(r["code_found"]) == parse_symop_code(r["symop"]), r
    assert chk["symmetry_codes_found"] == chk["n_compared"]
    assert chk["max_diff_beyond_rounding"] <= 1e-4


def test_geom_bond_metal_bonds_and_su_algaamide():
    chk = compare_cif_bonds(ref("AlGa_amide_1b_P212121_SHELXL.cif"))
    by = {(r["label_1"], r["label_2"]): r for r in chk["rows"]}
    # metal–N bonds, CIF values 2.027(9), 2.205(12), 2.211(11), 2.064(2)
    assert by[("Al1", "N2")]["distance"] == pytest.approx(2.027, abs=0.0011)
    assert by[("Al1", "N1")]["distance"] == pytest.approx(2.205, abs=0.0015)
    assert by[("Al1", "N3")]["distance"] == pytest.approx(2.211, abs=0.0011)
    assert by[("Ga2", "N2")]["distance"] == pytest.approx(2.064, abs=0.0005)
    assert by[("Ga2", "N2")]["su"] == pytest.approx(0.002, abs=0.0006)
    # s.u. within one unit of the last digit for every bond SHELXL gives an s.u. for
    assert chk["n_su_compared"] == 24
    assert chk["max_su_diff_last_digits"] <= 1
    # riding C–H: SHELXL prints no s.u.; neither does xtal
    assert by[("C1", "H1A")]["cif_su"] is None and by[("C1", "H1A")]["su"] is None


def test_geom_bond_su_s2dipyridyl():
    chk = compare_cif_bonds(ref("S2dipyridyl_P21c_SHELXL.cif"))
    sd = [r["su_diff_last_digits"] for r in chk["rows"] if r["su_diff_last_digits"] is not None]
    assert len(sd) == 30
    # SHELXL uses the full covariance matrix, xtal cannot: 28 of 30 agree within 1, none beyond 2
    assert sum(1 for v in sd if v <= 1) >= 28
    assert max(sd) <= 2
    s1s2 = next(r for r in chk["rows"] if (r["label_1"], r["label_2"]) == ("S1A", "S2A"))
    assert s1s2["text"] == "2.0222(5)" and s1s2["cif"] == "2.0222(5)"


def test_symop_order_as_written_in_cif():
    """'x, -y-1/2, z-1/2' keeps its translation: codes are relative to the operator as written."""
    p = ref("S2dipyridyl_P21c_SHELXL.cif")
    r = analyse_geometry(p, metals="S1A", cutoff_angstrom=2.1, chemenv=False)
    assert r.symop_source.startswith("CIF")
    assert r.symops[3] == "x,-y-1/2,z-1/2"
    # image 4_556 of S1A = (x, -y-1/2, z-1/2) + (0, 0, 1)
    x, y, z = p.sites[[s.label for s in p.sites].index("S1A")].frac
    orth = p.cell.orthogonalization_matrix()
    expect = np.linalg.norm(orth @ (np.array([x, -y - 0.5, z + 0.5]) - np.array([x, y, z])))
    d, _ = bond_from_code(p, "S1A", "S1A", "4_556")
    assert d == pytest.approx(expect, abs=1e-9)


def test_su_same_atom_at_both_ends_numerical():
    """N1–N1 (2_544) in FeN4: one coordinate set at both ends; s.u. = numerical derivative result."""
    p = ref("COD2242624_FeN4_P-1_SHELXL.cif")
    d0, su = bond_from_code(p, "N1", "N1", "2_544")
    assert d0 == pytest.approx(1.277, abs=0.003)
    k = [s.label for s in p.sites].index("N1")
    site = p.sites[k]
    var = 0.0
    for axis in range(3):
        h = 1e-6
        f = list(site.frac)
        f[axis] += h
        site.frac = tuple(f)
        d1, _ = bond_from_code(p, "N1", "N1", "2_544")
        f[axis] -= h
        site.frac = tuple(f)
        var += ((d1 - d0) / h * site.frac_su[axis]) ** 2
    a, b, c, al, be, ga = p.cell.parameters
    for i, s in enumerate(p.cell.su):
        q = [a, b, c, al, be, ga]
        q[i] += 1e-5
        import gemmi
        df = np.array([-2 * v for v in site.frac]) + np.array([0, -1, -1]) * 1.0
        d_q = np.linalg.norm(np.array(gemmi.UnitCell(*q).orth.mat.tolist()) @ df)
        var += ((d_q - d0) / 1e-5 * s) ** 2
    assert su == pytest.approx(math.sqrt(var), rel=1e-3)
    assert su == pytest.approx(0.0254, abs=0.0005)  # SHELXL (full covariance) prints 1.277(14)


# ----------------------------------------------------------------------------------------------
# bond-valence sums
# ----------------------------------------------------------------------------------------------
def test_bv_parameters_from_the_complete_table():
    """Same first-listed IUCr rows as the old hand subset; pairs the table lacks (Li–H) now come from
    Brese & O'Keeffe's universal parameters (pymatgen's data file) instead of being None (issue 18)."""
    assert (bv_parameter("Li", 1, "O")["r0"], bv_parameter("Li", 1, "O")["b"]) == (1.466, 0.37)
    assert bv_parameter("Na", 1, "O")["r0"] == 1.803
    assert bv_parameter("K", 1, "O")["r0"] == 2.132
    assert bv_parameter("Na", 1, "F")["r0"] == 1.677
    assert bv_parameter("K", 1, "H")["r0"] == 2.10
    assert bv_parameter("Ga", 3, "N")["valence"] == 9          # only an unspecified-state row exists
    li_h = bv_parameter("Li", 1, "H")                          # not in the IUCr table
    assert li_h["table"] == "universal" and li_h["r0"] == pytest.approx(1.3795, abs=1e-3)
    assert "Brown and Altermatt" in bv_parameter("Li", 1, "O")["reference"]


def test_bvs_na_in_nac_hand_checked():
    """Na1 in Na2Ca3Al2F14: 1 F at 2.1877, 3 at 2.3624, 3 at 2.5723 Å; R0(Na–F) = 1.677, b = 0.37."""
    r = analyse_geometry(ref("NAC.cif"), metals="Na", chemenv=False)
    na = r.sites[0]
    d = sorted(b.distance for b in na.donors())
    assert d == pytest.approx([2.1877, 2.3624, 2.3624, 2.3624, 2.5723, 2.5723, 2.5723], abs=2e-4)
    hand = math.exp((1.677 - 2.1877) / 0.37) + 3 * math.exp((1.677 - 2.3624) / 0.37) \
        + 3 * math.exp((1.677 - 2.5723) / 0.37)
    assert hand == pytest.approx(0.989, abs=0.001)
    assert na.bvs == pytest.approx(hand, abs=0.01)
    assert 0.85 <= na.bvs <= 1.15               # monovalent cation
    assert na.cn == 7
    assert all(b.su is None for b in na.bonds)  # NAC.cif has no coordinate s.u.
    assert any("no coordinate s.u." in w for w in r.warnings)


def test_bvs_mg_water_and_ca():
    r = analyse_geometry(ref("MgB12H12_12H2O_F4132.cif"), chemenv=False)
    mg = r.sites[0]
    assert mg.cn == 6 and {b.kind for b in mg.donors()} == {"water"}
    assert mg.polyhedron["best"].startswith("OC-6") and mg.polyhedron["best_cshm"] < 0.01
    assert mg.bvs == pytest.approx(6 * math.exp((1.693 - 2.0599) / 0.37), abs=0.01)   # 2.226
    ca = analyse_geometry(ref("CaF2.cif"), chemenv=False).sites[0]
    assert ca.cn == 8 and ca.polyhedron["best"].startswith("CU-8")
    assert ca.bvs == pytest.approx(8 * math.exp((1.842 - 2.3662) / 0.37), abs=0.01)   # 1.94


def test_k2b12h12_hydride_bvs_and_contacts():
    # as refined (normalisation off): the X-ray H positions of Wunderlich & Lipscomb (1960)
    r = analyse_geometry(ref("K2B12H12_Fm-3.cif"), chemenv=False, normalise_h=False)
    k = r.sites[0]
    assert k.cn == 12
    assert {b.kind for b in k.donors()} == {"hydride-H"}
    cage = [b for b in k.bonds if b.kind == "cage-B"]
    assert len(cage) == 12 and min(b.distance for b in cage) == pytest.approx(3.4135, abs=2e-4)
    assert all(b.molecule and b.molecule.startswith("B12H12") for b in k.donors())
    assert len(k.ligands) == 4 and all(lig["denticity"] == 3 for lig in k.ligands)
    # 12 K–H at 2.9239 Å with the Brese & O'Keeffe K–H(−1) R0 = 2.10 Å
    assert k.bvs == pytest.approx(12 * math.exp((2.10 - 2.9239) / 0.37), abs=0.01)     # 1.295
    assert "indicative" in k.bvs_note


@pytest.mark.skipif(not ALPHA_MODEL.exists(), reason="α-Li2B12H12 model not bundled yet")
def test_alpha_li2b12h12_model():
    p = read_cif(ALPHA_MODEL, kind="model")
    r = analyse_geometry(p, chemenv=False)
    li = r.sites[0]
    assert r.model and r.warnings[0].startswith("MODEL")
    # issue 18: the coordination rule is s ≥ 0.04 v.u. (Li–H from Brese & O'Keeffe's universal
    # parameters, R0 = 1.3795 Å), so the three 2.378 Å Li···H (s = 0.067 v.u.) now count with the three
    # at 2.050 Å: CN 6 (was 3 under the old r_cov + 0.75 Å cutoff), BVS defined and indicative.
    assert li.cn == 6 and all(b.kind == "hydride-H" for b in li.donors())
    assert [round(b.distance, 3) for b in li.donors()] == [2.050] * 3 + [2.378] * 3
    assert li.bvs == pytest.approx(3 * math.exp((1.3795 - 2.0499) / 0.37)
                                   + 3 * math.exp((1.3795 - 2.3783) / 0.37), abs=0.005)   # 0.692
    assert "indicative" in li.bvs_note and r.hydrogen["normalised"] is False    # models untouched
    assert li.anion_coordination["cn"] == 3 and li.anion_coordination["hapticity"] == "κ2×3"
    md = render_geometry_markdown([r])
    assert "MODEL — NOT A REFINED STRUCTURE" in md


# ----------------------------------------------------------------------------------------------
# disorder, partial occupancy, bad input
# ----------------------------------------------------------------------------------------------
def test_disorder_parts_never_mixed_algaamide():
    r = analyse_geometry(ref("AlGa_amide_1b_P212121_SHELXL.cif"), metals=["Al", "Ga"],
                         cutoff_angstrom=3.0, chemenv=False)
    sites = {s.label: s for s in r.sites}
    assert set(sites) == {"Al1", "Ga1", "Ga2"}
    # Al1 (PART 1) and Ga1 (PART 2) are alternatives 0.14 Å apart: never neighbours of each other
    assert "Ga1" not in {b.to for b in sites["Al1"].bonds}
    assert "Al1" not in {b.to for b in sites["Ga1"].bonds}
    al = sites["Al1"]
    d = {b.to: b for b in al.donors()}
    assert set(d) >= {"N1", "N2", "N3", "H1'", "H2'"}
    assert d["H1'"].kind == "hydride-H"
    assert d["N2"].text == "2.027(10)"        # SHELXL: 2.027(9) with covariance


LI_PARTS_CIF = """
data_li_parts
_cell_length_a 10.000(2)
_cell_length_b 10.000(2)
_cell_length_c 10.000(2)
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_space_group_name_H-M_alt 'P 1'
_space_group_IT_number 1
loop_
_space_group_symop_operation_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_disorder_assembly
_atom_site_disorder_group
Li1 Li 0.5000(1) 0.5000(1) 0.5000(1) 1 . .
O1 O 0.7000(2) 0.5000(2) 0.5000(2) 0.6 A 1
O2 O 0.5000(2) 0.7100(2) 0.5000(2) 0.4 A 2
O3 O 0.5000(2) 0.5000(2) 0.3050(2) 1 . .
Na1 Na 0.0000 0.0000 0.0000 0.7 . .
"""


def test_disorder_alternatives_and_su_by_hand():
    p = read_cif_string(LI_PARTS_CIF, name="li_parts.cif")
    r = analyse_geometry(p, metals="Li", chemenv=False)
    li = r.sites[0]
    assert li.cn_alternatives == {"A:1": 2, "A:2": 2}
    assert li.cn == 2                               # major alternative A:1 (occupancy 0.6)
    assert {b.to for b in li.donors()} == {"O1", "O3"}
    s = lambda d: math.exp((1.466 - d) / 0.37)      # noqa: E731
    assert li.bvs_alternatives["A:1"] == pytest.approx(s(2.0) + s(1.95), abs=1e-4)
    assert li.bvs_alternatives["A:2"] == pytest.approx(s(2.1) + s(1.95), abs=1e-4)
    o1 = next(b for b in li.bonds if b.to == "O1")
    # σ² = (a σx(O1))² + (a σx(Li))² + (Δx σa)² = 0.002² + 0.001² + (0.2·0.002)²
    assert o1.su == pytest.approx(math.sqrt(0.002 ** 2 + 0.001 ** 2 + 0.0004 ** 2), rel=1e-4)
    assert o1.text == "2.000(2)"
    # partial occupancy without a disorder group: warned
    assert any("Na1" in w and "no disorder group" in w for w in r.warnings)
    rn = analyse_geometry(p, metals="Na", chemenv=False)
    assert any("partial occupancy" in w for w in rn.sites[0].warnings)


def test_no_metal_raises_naming_file():
    p = ref("S2dipyridyl_P21c_SHELXL.cif")
    with pytest.raises(NoMetalError) as exc:
        analyse_geometry(p, chemenv=False)
    assert "S2dipyridyl_P21c_SHELXL.cif" in str(exc.value)
    assert isinstance(exc.value, GeometryError)
    r = analyse_geometry(p, chemenv=False, no_metal="empty")
    assert r.sites == [] and "no alkali/alkaline-earth metal" in r.message
    with pytest.raises(NoMetalError):
        analyse_geometry(ref("NAC.cif"), metals="Li", chemenv=False)


# ----------------------------------------------------------------------------------------------
# polyhedra
# ----------------------------------------------------------------------------------------------
def test_cshm_reference_values():
    p4 = IDEAL_POLYHEDRA[4]
    # square vs tetrahedron: 33.33 (Pinsky & Avnir); trigonal prism vs octahedron (with centre): 16.74
    assert continuous_shape_measure(p4["SP-4 (square planar)"], p4["T-4 (tetrahedron)"]) == pytest.approx(33.333, abs=0.01)
    p6 = IDEAL_POLYHEDRA[6]
    assert continuous_shape_measure(p6["TPR-6 (trigonal prism)"], p6["OC-6 (octahedron)"],
                                    centre=np.zeros(3)) == pytest.approx(16.74, abs=0.01)
    rng = np.random.default_rng(1)
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot *= np.sign(np.linalg.det(rot))
    moved = 2.1 * p6["OC-6 (octahedron)"][[3, 0, 5, 1, 4, 2]] @ rot.T
    assert continuous_shape_measure(moved, p6["OC-6 (octahedron)"], centre=np.zeros(3)) < 1e-8


def _cshm_full_svd(q: np.ndarray, p: np.ndarray) -> float:
    """The CShM by the full SVD of every permutation's H (the formula before issue 16), with centre."""
    import itertools

    q = np.vstack([np.zeros((1, 3)), q])
    p = np.vstack([np.zeros((1, 3)), p])
    q, p = q - q.mean(0), p - p.mean(0)
    best = -np.inf
    for perm in itertools.permutations(range(1, len(q))):
        u, s, vt = np.linalg.svd(q.T @ p[[0, *perm]])
        best = max(best, s[0] + s[1] + np.sign(np.linalg.det(u) * np.linalg.det(vt)) * s[2])
    return max(0.0, 100.0 * (1.0 - best * best / (np.sum(q * q) * np.sum(p * p))))


def test_cshm_singular_values_only_match_the_full_svd():
    """Distorted (and mirrored: improper) polyhedra, CN 4–6: equal to the full-SVD value to 1e-9."""
    rng = np.random.default_rng(3)
    for n in (4, 5, 6):
        for name, ideal in IDEAL_POLYHEDRA[n].items():
            lig = 2.0 * ideal + rng.normal(scale=0.15, size=ideal.shape)
            for q in (lig, lig * [1, 1, -1]):
                got = continuous_shape_measure(q, ideal, centre=np.zeros(3))
                assert got == pytest.approx(_cshm_full_svd(q, ideal), abs=1e-9), name
                assert 0.05 < got < 60, name


def test_chemenv_agrees_with_own_cshm_fen4():
    r = analyse_geometry(ref("COD2242624_FeN4_P-1_SHELXL.cif"), metals="Fe", chemenv=True,
                         chemenv_timeout_s=HANG_GUARD_S)
    fe = r.sites[0]
    assert fe.cn == 6 and fe.polyhedron["best"].startswith("OC-6")
    assert fe.bonds[0].text == "1.707(8)"
    ce = fe.polyhedron["chemenv"]
    if ce["status"] != "ok":
        pytest.skip(f"ChemEnv unavailable: {ce}")
    env = ce["environments"][0]
    assert env["ce_symbol"] == "O:6"
    assert env["csm"] == pytest.approx(fe.polyhedron["best_cshm"], abs=0.01)   # 0.453


def test_chemenv_failure_is_reported():
    r = analyse_geometry(ref("AlGa_amide_1b_P212121_SHELXL.cif"), metals="Ga2", chemenv=True,
                         chemenv_timeout_s=HANG_GUARD_S)
    ce = r.sites[0].polyhedron["chemenv"]
    assert ce["status"] == "failed" and "partial occupancies" in ce["reason"]
    assert any("ChemEnv did not work" in w for w in r.warnings)
    assert r.sites[0].polyhedron["best"].startswith("T-4")


# ----------------------------------------------------------------------------------------------
# comparison, JSON, reports, figure
# ----------------------------------------------------------------------------------------------
def test_compare_metals_published_range():
    r = analyse_geometry(ref("MgB12H12_12H2O_F4132.cif"), chemenv=False)
    ok = compare_metals([r], {"MgB12H12_12H2O_F4132": {"Mg": (2.0, 2.1)}})[0]
    assert ok["metal"] == "Mg" and ok["m_o_min"] == pytest.approx(2.0599, abs=1e-4)
    assert ok["within_published"] is True
    bad = compare_metals([r], {"MgB12H12_12H2O_F4132": (2.10, 2.20)})[0]
    assert bad["within_published"] is False
    assert compare_metals([r])[0]["published_m_o"] is None


def test_json_contract_markdown_html_and_figure(tmp_path):
    results = [analyse_geometry(ref("NAC.cif"), chemenv=False),
               analyse_geometry(ref("K2B12H12_Fm-3.cif"), chemenv=False),
               analyse_geometry(ref("AlGa_amide_1b_P212121_SHELXL.cif"), metals="Ga2", chemenv=False)]
    d = json.loads(json.dumps(results[0].to_json_dict()))
    site = d["sites"][[s["label"] for s in d["sites"]].index("Na1")]
    assert site["cn"] == 7 and site["bvs"] == pytest.approx(0.989, abs=0.01)
    bond = site["bonds"][0]
    assert set(bond) >= {"to", "symop", "distance", "su", "kind"}
    assert bond["to"] == "F3" and bond["symop"] == "13_444" and bond["distance"] == pytest.approx(2.1877, abs=1e-4)
    al = results[2].to_json_dict()
    assert al["cif_bond_check"]["n_compared"] == 44
    assert al["sites"][0]["bonds"][-1]["su"] is not None
    md = render_geometry_markdown(results, figure="geom.png")
    assert "| F3 | 13_444 | 2.1877 |" in md and "![" in md and "Comparison per metal" in md
    assert "largest |Δd|" in md
    html = render_geometry_html(results, figure="geom.png")
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html
    out = plot_distance_distributions(results, tmp_path / "geom.png")
    assert out.stat().st_size > 20_000
    assert out.read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------------
# donor classification on a built (synthetic, clearly not measured) Li–diglyme/water complex
# ----------------------------------------------------------------------------------------------
def _diglyme_local() -> list[tuple[str, np.ndarray]]:
    """All-trans diglyme (C1 O1 C2 C3 O2 C4 C5 O3 C6) in a local frame: chain along x, zigzag in y,
    O2 at the origin with its outward bisector along +y. Approximate geometry (1.47 Å, 112°)."""
    heavy = ["C", "O", "C", "C", "O", "C", "C", "O", "C"]
    half = math.radians(56.0)
    step, amp = 1.47 * math.sin(half), 1.47 * math.cos(half)
    pos = [np.array([(k - 4) * step, 0.0 if k % 2 == 0 else -amp, 0.0]) for k in range(9)]
    atoms = [(el, p) for el, p in zip(heavy, pos)]
    z = np.array([0.0, 0.0, 1.0])
    for k, (el, p) in enumerate(zip(heavy, pos)):
        if el != "C":
            continue
        nbrs = [pos[q] for q in (k - 1, k + 1) if 0 <= q < 9]
        if len(nbrs) == 2:   # CH2
            b = -sum((n - p) / np.linalg.norm(n - p) for n in nbrs)
            b /= np.linalg.norm(b)
            for sgn in (1, -1):
                atoms.append(("H", p + 1.09 * (0.577 * b + sgn * 0.816 * z)))
        else:                # CH3
            a = -(nbrs[0] - p) / np.linalg.norm(nbrs[0] - p)
            e1 = np.cross(a, z)
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(a, e1)
            for phi in (0.0, 2.0944, 4.1888):
                atoms.append(("H", p + 1.09 * (0.334 * a + 0.943 * (math.cos(phi) * e1 + math.sin(phi) * e2))))
    return atoms


def _li_diglyme_water_cif() -> str:
    centre = np.array([10.0, 10.0, 10.0])
    dirs = [np.array([1.0, 0.0, 0.0]), np.array([-0.5, 0.866025, 0.0]), np.array([-0.5, -0.866025, 0.0])]
    atoms = [("Li1", "Li", centre)]
    for m, d in enumerate(dirs[:2]):
        rot = np.column_stack([np.array([0.0, 0.0, 1.0]), -d, np.cross(np.array([0.0, 0.0, 1.0]), -d)])
        o2 = centre + 1.96 * d
        counts: dict[str, int] = {}
        for el, p in _diglyme_local():
            counts[el] = counts.get(el, 0) + 1
            atoms.append((f"{el}{counts[el]}{'AB'[m]}", el, o2 + rot @ p))
    ow = centre + 1.95 * dirs[2]
    atoms.append(("O1W", "O", ow))
    for sgn, lab in ((1, "H1W"), (-1, "H2W")):
        v = 0.96 * (math.cos(math.radians(52)) * dirs[2] + sgn * math.sin(math.radians(52)) * np.array([0, 0, 1.0]))
        atoms.append((lab, "H", ow + v))
    lines = ["data_li_diglyme_built", "_cell_length_a 20.0", "_cell_length_b 20.0", "_cell_length_c 20.0",
             "_cell_angle_alpha 90", "_cell_angle_beta 90", "_cell_angle_gamma 90",
             "_space_group_name_H-M_alt 'P 1'", "loop_", "_space_group_symop_operation_xyz", "'x, y, z'",
             "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
             "_atom_site_fract_y", "_atom_site_fract_z"]
    for lab, el, p in atoms:
        f = p / 20.0
        lines.append(f"{lab} {el} {f[0]:.5f} {f[1]:.5f} {f[2]:.5f}")
    return "\n".join(lines) + "\n"


def test_ether_o_water_and_molecules_on_built_complex():
    p = read_cif_string(_li_diglyme_water_cif(), name="li_diglyme_built.cif")
    r = analyse_geometry(p, chemenv=False)
    li = r.sites[0]
    kinds = sorted((b.kind, b.to) for b in li.donors())
    assert kinds == [("ether-O", "O2A"), ("ether-O", "O2B"), ("water", "O1W")]
    assert li.cn == 3
    names = sorted(lig["name"] for lig in li.ligands)
    assert names == ["diglyme", "diglyme", "water"]
    assert {lig["formula"] for lig in li.ligands} == {"C6H14O3", "H2O"}
    assert sorted(b.molecule for b in li.donors()) == ["diglyme#1", "diglyme#2", "water#1"]
    assert li.coordination_mode.startswith("2 ether-O, 1 water from 2 diglyme (κ1+κ1), 1 water (κ1)")
    assert li.polyhedron["best"].startswith("TP-3") and li.polyhedron["best_cshm"] < 0.01
    assert li.bvs == pytest.approx(2 * math.exp((1.466 - 1.96) / 0.37) + math.exp((1.466 - 1.95) / 0.37),
                                   abs=1e-3)


def test_libh4_li_hydride_contacts_with_su():
    """HT-LiBH4 (P63mc, Soulié et al. 2002): six Li···H–B at 2.305(14)/2.306(14) Å, three Li···B at 2.496 Å
    listed as contacts (H as refined: normalisation off). Li–H(−1) is not in the IUCr table: the BVS uses
    Brese & O'Keeffe's universal R0 = 1.3795 Å and is flagged indicative (was undefined before issue 18)."""
    r = analyse_geometry(ref("LiBH4_P63mc_HT.cif"), chemenv=False, normalise_h=False)
    li = r.sites[0]
    assert li.cn == 6
    assert [b.text for b in li.donors()] == ["2.305(14)"] * 2 + ["2.306(14)"] * 4
    assert sorted(b.kind for b in li.bonds if b.kind not in ("hydride-H",)) == ["borane-B"] * 3
    assert li.bvs == pytest.approx(0.491, abs=0.002) and "indicative" in li.bvs_note
    assert li.bv_parameters[0]["table"] == "universal"
    assert all(lig["name"] == "BH4(-)" for lig in li.ligands)


def test_molecule_named_when_h_not_modelled():
    text = "\n".join(ln for ln in _li_diglyme_water_cif().splitlines()
                     if not (ln.startswith("H") and not ln.startswith("H1W") and not ln.startswith("H2W")))
    p = read_cif_string(text + "\n", name="li_diglyme_noH.cif")
    li = analyse_geometry(p, chemenv=False).sites[0]
    assert sorted(b.kind for b in li.donors()) == ["ether-O", "ether-O", "water"]
    assert sorted(lig["name"] for lig in li.ligands) == ["diglyme (H not modelled)"] * 2 + ["water"]


# ----------------------------------------------------------------------------------------------
# a CIF is read once: geometry needs nothing from the file afterwards
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHELXL_CIFS)
def test_geometry_needs_no_file_after_reading(name, tmp_path):
    import shutil

    copy = tmp_path / name
    shutil.copy(REF_STRUCTURES / name, copy)
    p = read_cif(copy)
    copy.unlink()
    expected = compare_cif_bonds(ref(name))
    assert compare_cif_bonds(p) == expected
    metals = {"AlGa_amide_1b_P212121_SHELXL.cif": "Ga2", "S2dipyridyl_P21c_SHELXL.cif": "S1A",
              "COD2242624_FeN4_P-1_SHELXL.cif": "Fe"}[name]
    r = analyse_geometry(p, metals=metals, cutoff_angstrom=2.5, chemenv=False)
    r0 = analyse_geometry(ref(name), metals=metals, cutoff_angstrom=2.5, chemenv=False)
    assert r.symop_source.startswith("CIF")
    assert r.cif_bond_check == expected
    d, d0 = r.to_json_dict(), r0.to_json_dict()
    d.pop("file"), d0.pop("file")
    assert d == d0


def test_analysis_imports_no_rendering():
    """xtal.geometry analyses only: no xtal.report, no matplotlib (rendering is xtal.report.geometry)."""
    import subprocess
    import sys

    code = ("import sys, xtal.geometry; "
            "bad = [m for m in sys.modules if m.startswith(('matplotlib', 'xtal.report'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
