"""Checks of a freshly read `Phase`: formula × Z against the sites, density, and close contacts
between non-H atoms (gemmi neighbour search over the expanded cell). Problems become warnings."""
from __future__ import annotations

import math

import gemmi
import numpy as np

from xtal.errors import OccupancyError, StructureValidationError, SymmetryError, UnknownElementError
from xtal.structures.model import Phase, Site, infer_z, parse_formula
from xtal.symmetry import periodic_contacts

#: Non-H atoms of different sites closer than this (Å), not explained by disorder, are reported.
MIN_NON_H_CONTACT_ANGSTROM = 0.5

#: Physical ranges of a structure's numbers.  Outside FATAL ranges a `Phase` is refused (the
#: specific `CifError` subclass naming file, block and field); outside DOUBTFUL ones it is kept with
#: a warning.  U in Å² (B = 8π²U): U = 0.2 Å² is already a very soft, liquid-like atom; 1 Å² means an
#: r.m.s. displacement of 1 Å, which is no longer an atom at a site (and simulate's Debye–Waller
#: factor then wipes out its scattering).
U_MAX_ANGSTROM2 = 1.0
U_DOUBTFUL_ANGSTROM2 = 0.2
#: Slightly negative U values occur in published refinements (e.g. the reference CuCr2O4, O:
#: Uiso = -0.004 Å², a refinement artefact within its error); they are kept with a warning.  Below
#: −U_NEGATIVE_TOLERANCE the value is refused.
U_NEGATIVE_TOLERANCE_ANGSTROM2 = 0.02
Z_MAX = 1000.0
#: Fractional coordinates are within a cell or two of the origin; 1e308 is not a position.
FRAC_MAX = 100.0
TEMPERATURE_MAX_K = 5000.0
DENSITY_MAX_G_CM3 = 30.0
WAVELENGTH_RANGE_ANGSTROM = (0.01, 10.0)
#: Orders of crystallographic rotations (R^n = I).
_CRYSTALLOGRAPHIC_ORDERS = (1, 2, 3, 4, 6)


def check_physical(phase: Phase) -> None:
    """Refuse a `Phase` holding an impossible number; warn about doubtful ones.

    Fatal: Z ≤ 0 or > `Z_MAX` or non-finite; formula weight or stated density ≤ 0 (or density
    > `DENSITY_MAX_G_CM3`); a wavelength outside `WAVELENGTH_RANGE_ANGSTROM`; a temperature ≤ 0 K or
    > `TEMPERATURE_MAX_K`; a cell length ≤ 0 or non-finite; a coordinate non-finite; an occupancy
    outside [0, 1]; a coordinate beyond ±`FRAC_MAX`; a |Uij| (i ≠ j) > `U_MAX_ANGSTROM2`; Uiso or a Uii < −`U_NEGATIVE_TOLERANCE_ANGSTROM2`, non-finite or
    > `U_MAX_ANGSTROM2`; a Uij non-finite; an
    element symbol gemmi does not know; a symmetry operator that is not a crystallographic
    isometry (integer rotation matrix with det ±1 and order 1, 2, 3, 4 or 6) or an operator set
    that does not close into a group.  Doubtful (warning): Uiso or Ueq > `U_DOUBTFUL_ANGSTROM2`;
    a non-positive-definite Uij tensor; a non-integer Z.
    """
    path = phase.provenance.file if phase.provenance else None

    def fatal(cls, msg: str, field: str):
        return cls(msg, path=path, block=phase.block, field=field)

    c = phase.cell
    for name, v in zip(("a", "b", "c", "alpha", "beta", "gamma"), c.parameters):
        if not math.isfinite(v) or v <= 0:
            raise fatal(StructureValidationError, f"cell {name} = {v} is not physical",
                        f"_cell_{'length' if name in 'abc' else 'angle'}_{name}")
    if phase.z is not None:
        if not math.isfinite(phase.z) or phase.z <= 0 or phase.z > Z_MAX:
            raise fatal(StructureValidationError, f"Z = {phase.z:g} is not physical (0 < Z ≤ {Z_MAX:g})",
                        "_cell_formula_units_Z")
        if abs(phase.z - round(phase.z)) > 1e-6:
            _warn(phase, f"Z = {phase.z:g} is not an integer")
    for value, field, what in ((phase.formula_weight, "_chemical_formula_weight", "formula weight"),
                               (phase.density_stated, "_exptl_crystal_density_diffrn", "density")):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise fatal(StructureValidationError, f"{what} {value:g} must be > 0", field)
    if phase.density_stated is not None and phase.density_stated > DENSITY_MAX_G_CM3:
        raise fatal(StructureValidationError, f"density {phase.density_stated:g} g/cm³ exceeds "
                    f"{DENSITY_MAX_G_CM3:g} (denser than any solid)", "_exptl_crystal_density_diffrn")
    lam = phase.wavelength_angstrom
    lo, hi = WAVELENGTH_RANGE_ANGSTROM
    if lam is not None and not (lo <= lam <= hi):
        raise fatal(StructureValidationError, f"wavelength {lam:g} Å is not an X-ray/neutron wavelength "
                    f"({lo}–{hi} Å)", "_diffrn_radiation_wavelength")
    t = phase.temperature_k
    if t is not None and not (0 < t <= TEMPERATURE_MAX_K):
        raise fatal(StructureValidationError, f"temperature {t:g} K is not physical "
                    f"(0 < T ≤ {TEMPERATURE_MAX_K:g} K)", "_diffrn_ambient_temperature")
    for s in phase.sites:
        _check_site(phase, s, fatal)
    check_symops(phase.symops, fatal)


def _warn(phase: Phase, text: str) -> None:
    if text not in phase.warnings:
        phase.warnings.append(text)


def _check_site(phase: Phase, s: Site, fatal) -> None:
    if s.element != "D" and gemmi.Element(s.element).atomic_number == 0:
        raise fatal(UnknownElementError, f"site {s.label}: {s.element!r} is not a chemical element",
                    "_atom_site_type_symbol")
    if not all(math.isfinite(v) and abs(v) <= FRAC_MAX for v in s.frac):
        raise fatal(StructureValidationError, f"site {s.label}: coordinate {s.frac} is not a finite "
                    f"fractional coordinate (|x| ≤ {FRAC_MAX:g})", "_atom_site_fract_x")
    if not (math.isfinite(s.occupancy) and 0.0 <= s.occupancy <= 1.0 + 1e-3):
        raise fatal(OccupancyError, f"site {s.label}: occupancy {s.occupancy} is outside [0, 1]",
                    "_atom_site_occupancy")
    if s.u_iso is not None:
        if not math.isfinite(s.u_iso) or s.u_iso < -U_NEGATIVE_TOLERANCE_ANGSTROM2 \
                or s.u_iso > U_MAX_ANGSTROM2:
            raise fatal(StructureValidationError, f"site {s.label}: Uiso {s.u_iso:g} Å² is not physical "
                        f"({-U_NEGATIVE_TOLERANCE_ANGSTROM2:g} ≤ U ≤ {U_MAX_ANGSTROM2:g} Å²)",
                        "_atom_site_U_iso_or_equiv")
        if s.u_iso < 0:
            _warn(phase, f"site {s.label}: negative Uiso {s.u_iso:.4f} Å² (non-positive-definite)")
        if s.u_iso > U_DOUBTFUL_ANGSTROM2:
            _warn(phase, f"site {s.label}: Uiso {s.u_iso:.3f} Å² is very large (> {U_DOUBTFUL_ANGSTROM2} Å²)")
    if s.u_aniso is not None:
        u = s.u_aniso
        if not all(math.isfinite(v) for v in u):
            raise fatal(StructureValidationError, f"site {s.label}: anisotropic U {u} is not finite",
                        "_atom_site_aniso_U_11")
        if max(abs(v) for v in u[3:]) > U_MAX_ANGSTROM2:
            raise fatal(StructureValidationError, f"site {s.label}: U12/U13/U23 {u[3:]} exceed "
                        f"{U_MAX_ANGSTROM2:g} Å² in magnitude", "_atom_site_aniso_U_12")
        if min(u[:3]) < -U_NEGATIVE_TOLERANCE_ANGSTROM2 or max(u[:3]) > U_MAX_ANGSTROM2:
            raise fatal(StructureValidationError, f"site {s.label}: U11/U22/U33 {u[:3]} outside "
                        f"[{-U_NEGATIVE_TOLERANCE_ANGSTROM2:g}, {U_MAX_ANGSTROM2:g}] Å²",
                        "_atom_site_aniso_U_11")
        if max(u[:3]) > U_DOUBTFUL_ANGSTROM2:
            _warn(phase, f"site {s.label}: a Uii of {max(u[:3]):.3f} Å² is very large "
                         f"(> {U_DOUBTFUL_ANGSTROM2} Å²)")
        m = np.array([[u[0], u[3], u[4]], [u[3], u[1], u[5]], [u[4], u[5], u[2]]])
        if np.linalg.eigvalsh(m).min() <= 0:  # in the cell's (near-orthogonal) frame: a hint only
            _warn(phase, f"site {s.label}: anisotropic U tensor is not positive definite")


def checked_ops(symops, fatal, *, number=lambda i: i + 1) -> list:
    """The parsed operators, each checked to be a crystallographic isometry (integer rotation
    matrix, det ±1, order 1, 2, 3, 4 or 6); the first operator that is not raises ``fatal``
    (``number(i)``: how the message numbers operator i).

    The rotation checks run on all operators at once (one batched determinant and matrix power
    instead of a loop per operator); the operator reported, and its message, are those of a
    check one operator after the other.
    """
    den = gemmi.Op.DEN
    texts = list(symops)
    ops, parse_error = [], None
    for i, text in enumerate(texts):
        try:
            ops.append(gemmi.Op(text))
        except (RuntimeError, ValueError) as exc:
            parse_error = (i, text, exc)
            break
    if ops:
        rot = np.array([o.rot for o in ops])                       # (n, 3, 3), in 1/DEN
        non_integer = np.any(rot % den, axis=(1, 2))
        r = rot // den
        dets = np.linalg.det(r)
        eye = np.eye(3, dtype=int)
        order = np.zeros(len(ops), dtype=int)                      # 0: not within 1..6
        power = np.broadcast_to(eye, r.shape)
        for n in range(1, 7):
            power = power @ r
            hit = (order == 0) & np.all(power == eye, axis=(1, 2))
            order[hit] = n
        crystallographic = np.isin(order, _CRYSTALLOGRAPHIC_ORDERS)
        for i, text in enumerate(texts[:len(ops)]):
            if non_integer[i]:
                raise fatal(SymmetryError, f"operator {text!r} has a non-integer rotation matrix",
                            "_space_group_symop_operation_xyz")
            det = round(dets[i])
            if abs(det) != 1:
                raise fatal(SymmetryError, f"operator {text!r} is not an isometry (det of its rotation "
                            f"part = {det}, must be ±1)", "_space_group_symop_operation_xyz")
            if not crystallographic[i]:
                raise fatal(SymmetryError, f"operator {text!r} is not a crystallographic rotation "
                            "(order not 1, 2, 3, 4 or 6)", "_space_group_symop_operation_xyz")
    if parse_error is not None:
        i, text, exc = parse_error
        raise fatal(SymmetryError, f"operator {number(i)} {text!r} cannot be parsed ({exc})",
                    "_space_group_symop_operation_xyz") from None
    return ops


#: Operator lists (as written) that passed `check_symops`: the check is a pure function of the text, so
#: a list seen before is not checked again (every simulation re-validates its Phase; the closure test
#: of a 192-operator group is most of a small cell's simulation time). Bounded, cleared when full.
_GOOD_OPERATOR_LISTS: set[tuple[tuple[str, ...], bool]] = set()
_GOOD_OPERATOR_LISTS_MAX = 1024


def check_symops(symops, fatal, *, closure: bool = True) -> None:
    """Each operator a crystallographic isometry, and (``closure``) the set closed under composition.

    A list that passed is remembered in the process and, in the on-disk cache (`xtal.cache`,
    keyed by the operator text and xtal's version), across processes: every command reads its
    library CIFs again, and their closure tests were a third of the library's load time."""
    key = (tuple(str(t) for t in symops), closure)
    if key in _GOOD_OPERATOR_LISTS:
        return
    from xtal.cache import cached_arrays, text_cache_key

    def check() -> tuple[np.ndarray]:
        _check_symops(symops, fatal, closure=closure)     # raises on a bad list: nothing stored
        return (np.ones(1, dtype=np.int8),)

    cached_arrays("symops", text_cache_key("symops", repr(key)), ("ok",), check)
    if len(_GOOD_OPERATOR_LISTS) >= _GOOD_OPERATOR_LISTS_MAX:
        _GOOD_OPERATOR_LISTS.clear()
    _GOOD_OPERATOR_LISTS.add(key)


def _check_symops(symops, fatal, *, closure: bool) -> None:
    ops = checked_ops(symops, fatal)
    den = gemmi.Op.DEN
    if not ops:
        raise fatal(SymmetryError, "no symmetry operators", "_space_group_symop_operation_xyz")
    if not closure:
        return
    # closure, vectorised: rotations R (integers) and translations t (in 1/DEN), all pairs at once
    rots = np.array([np.array(o.rot) // den for o in ops])                  # (n, 3, 3)
    trans = np.array([o.tran for o in ops]) % den                           # (n, 3)
    n = len(ops)
    if np.abs(rots).max() > 7:
        raise fatal(SymmetryError, "a rotation matrix has entries beyond ±7: not a crystallographic "
                    "operator", "_space_group_symop_operation_xyz")
    # all products as two float matrix products (BLAS; integers ≤ 7 × 3 terms, so exact)
    rf = rots.astype(float)
    rows = rf.reshape(n * 3, 3)                                              # [(a, i), j]
    prod_r = np.rint((rows @ rf.transpose(1, 0, 2).reshape(3, n * 3))       # R_a R_b
                     .reshape(n, 3, n, 3).transpose(0, 2, 1, 3)).astype(np.int64)
    prod_t = (np.rint((rows @ trans.T.astype(float)).reshape(n, 3, n).transpose(0, 2, 1))
              .astype(np.int64) + trans[:, None, :]) % den                  # R_a t_b + t_a

    def code(r, t):  # one int64 per operator: 9 rotation entries (4 bits) + 3 translations (5 bits)
        r = (r.reshape(-1, 9).astype(np.int64) + 8) % 16  # products of entries ≤ 7 may exceed: wrap
        t = t.reshape(-1, 3).astype(np.int64)
        return (r * (16 ** np.arange(9, dtype=np.int64))).sum(1) * 32 ** 3 + (t * 32 ** np.arange(3)).sum(1)

    listed, made = code(rots, trans), code(prod_r, prod_t)
    missing = ~np.isin(made, listed) | (np.abs(prod_r.reshape(n * n, 9)) > 7).any(1)
    if missing.any():
        a, b = divmod(int(np.argmax(missing)), n)
        prod = (ops[a] * ops[b]).wrap().triplet()
        raise fatal(SymmetryError, f"the operators do not form a group: {ops[a].triplet()} × "
                    f"{ops[b].triplet()} = {prod} is not in the list", "_space_group_symop_operation_xyz")


def validate(phase: Phase) -> None:
    """Append to ``phase.warnings`` what does not add up (Z, formula, density, contacts)."""
    w = phase.warnings
    content = phase.formula_from_sites()
    stated = parse_formula(phase.formula_sum) if phase.formula_sum else {}
    if stated:
        z = phase.z
        if z is None:
            z = infer_z(stated, content)
            if z is not None:
                w.append(f"Z not given; inferred Z = {z:g} from formula and sites")
                if abs(z - round(z)) > 0.02:
                    w.append(f"inferred Z = {z:.3f} is not an integer")
        if z and infer_z(stated, content) is not None and z > 1 \
                and abs(infer_z(stated, content) - 1.0) < 0.02:
            w.append(f"_chemical_formula_sum appears to give the cell content, not one formula unit "
                     f"(Z = {z:g}); the sites agree with the formula as cell content")
        elif z:
            for el in sorted(set(stated) | set(content)):
                expect = stated.get(el, 0.0) * z
                got = content.get(el, 0.0)
                if el in ("H", "D") and got == 0 and expect > 0:
                    w.append(f"formula has {expect:g} H per cell but no H sites are modelled")
                    continue
                tol = max(0.02 * expect, 0.05 * max(1.0, z))
                if abs(expect - got) > tol:
                    w.append(f"formula × Z gives {el} {expect:g} per cell but the sites give {got:.3f}")
    if phase.density_stated:
        dc = phase.density_calc
        if abs(dc - phase.density_stated) > 0.02 * phase.density_stated:
            w.append(f"calculated density {dc:.3f} g/cm³ differs from stated {phase.density_stated:.3f}")
    _check_contacts(phase)


def _check_contacts(phase: Phase) -> None:
    """Warn about non-H atoms of different sites closer than MIN_NON_H_CONTACT_ANGSTROM."""
    images = phase.cell_images()
    heavy = np.array([not phase.sites[i].is_hydrogen for i in images.site_index], dtype=bool)
    heavy_idx = np.nonzero(heavy)[0]
    if len(heavy_idx) < 2:
        return
    limit = MIN_NON_H_CONTACT_ANGSTROM
    reported: set[tuple[str, str]] = set()
    for i, j, dist in periodic_contacts(phase.cell, images.frac[heavy_idx], limit):
        a = phase.sites[images.site_index[heavy_idx[i]]]
        b = phase.sites[images.site_index[heavy_idx[j]]]
        if _explained_by_disorder(a, b):
            continue
        key = tuple(sorted((a.label, b.label)))
        if key in reported:
            continue
        reported.add(key)
        phase.warnings.append(f"atoms {a.label} and {b.label} are {dist:.3f} Å apart "
                              f"(< {limit} Å) without a disorder explanation")


def _explained_by_disorder(a: Site, b: Site) -> bool:
    if a is b:
        return a.occupancy < 1.0 or a.in_disorder  # a site disordered about a special position
    if a.in_disorder and b.in_disorder and a.disorder_group != b.disorder_group \
            and (a.disorder_assembly == b.disorder_assembly):
        return True
    if a.in_disorder and a.disorder_group.startswith("-"):
        return True
    # mixed-occupancy site (e.g. Al/Ga on one position) or partial occupancies that add to ≤ 1
    return a.occupancy + b.occupancy <= 1.0 + 1e-2
