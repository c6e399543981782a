"""The structure model: `Cell`, `Site`, `Phase` (and what it keeps from the CIF), numbers with
standard uncertainties, formulas, and the unit-cell atoms from `xtal.symmetry.expand_sites`."""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import gemmi
import numpy as np

from xtal.symmetry import CellImages, expand_sites, op_arrays

#: Said in every pattern, report and figure that uses a structural MODEL (Provenance.kind == "model").
MODEL_WARNING = ("MODEL structure, not a refinement: intensities depend on the modelled anion "
                 "orientation while peak positions follow the published cell")
AVOGADRO = 6.02214076e23

_NULL = {"?", ".", ""}


# ----------------------------------------------------------------------------------------------
# numbers with standard uncertainties
# ----------------------------------------------------------------------------------------------
_SU_RE = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?(?:\((\d+)\))?$")


def parse_su(text: str | None) -> tuple[float | None, float | None]:
    """Parse a CIF number such as ``0.2398(12)`` into (value, s.u.).

    Returns ``(None, None)`` for CIF nulls ``?`` and ``.``; s.u. is None when not given.
    Raises ValueError for text that is not a number.
    """
    if text is None:
        return None, None
    t = text.strip().strip("'\"")
    if t in _NULL:
        return None, None
    m = _SU_RE.match(t)
    if not m or (m.group(2) == "" and not m.group(3)):
        raise ValueError(f"not a number: {text!r}")
    sign, ip, fp, ex, su = m.groups()
    value = float(f"{sign}{ip or '0'}.{fp or '0'}" + (f"e{ex}" if ex else ""))
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    if su is None:
        return value, None
    decimals = len(fp) if fp else 0
    try:
        unc = int(su) * 10.0 ** (int(ex or 0) - decimals)
    except OverflowError:
        raise ValueError(f"s.u. of {text!r} is not a finite number") from None
    if not math.isfinite(unc):
        raise ValueError(f"s.u. of {text!r} is not a finite number")
    return value, unc


def format_su(value: float, su: float | None, max_su_digits: int = 2) -> str:
    """Format a value with its s.u. in crystallographers' notation, e.g. ``2.0123(15)``.

    The s.u. is rounded to two significant digits when its first two digits are < 20 (the IUCr
    "rule of 19"), otherwise to one digit; the value is given to the same decimal place.
    """
    if su is None or su <= 0 or not math.isfinite(su):
        return f"{value:.4f}"
    exponent = math.floor(math.log10(su))
    digits = 2 if su / 10 ** exponent < 2.0 else 1
    digits = min(digits, max_su_digits)
    decimals = max(0, -(exponent - digits + 1))
    su_int = round(su * 10 ** decimals)
    if su_int >= 10 ** digits * (2 if digits == 2 else 1) and digits == 2:
        pass
    return f"{value:.{decimals}f}({su_int})"


_FORMULA_RE = re.compile(r"([A-Z][a-z]?)([+-]?\d*\.?\d*)")


def parse_formula(text: str) -> dict[str, float]:
    """Parse a Hill-style formula such as ``'C8 H25 Al0.84 Ga1.16 N3'`` into {element: count}."""
    out: dict[str, float] = defaultdict(float)
    cleaned = text.replace("'", " ").replace('"', " ")
    for tok in cleaned.replace("(", " ").replace(")", " ").split():
        for sym, num in _FORMULA_RE.findall(tok):
            out[sym] += float(num) if num not in ("", "+", "-", ".") else 1.0
    return dict(out)


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """Unit cell: lengths in Å, angles in degrees, with s.u. (None where not given)."""

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    su: tuple[float | None, ...] = (None,) * 6

    @property
    def parameters(self) -> tuple[float, float, float, float, float, float]:
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    def to_gemmi(self) -> gemmi.UnitCell:
        return gemmi.UnitCell(*self.parameters)

    @property
    def volume(self) -> float:
        """Cell volume (Å³)."""
        return self.to_gemmi().volume

    @property
    def volume_su(self) -> float | None:
        """s.u. of the volume (Å³) from the cell s.u. (uncorrelated, numerical derivatives)."""
        if all(s is None for s in self.su):
            return None
        var = 0.0
        p = list(self.parameters)
        for i, s in enumerate(self.su):
            if not s:
                continue
            q = list(p)
            h = 1e-6 * max(1.0, abs(p[i]))
            q[i] += h
            dv = (gemmi.UnitCell(*q).volume - gemmi.UnitCell(*p).volume) / h
            var += (dv * s) ** 2
        return math.sqrt(var)

    def orthogonalization_matrix(self) -> np.ndarray:
        """Matrix whose columns are the real-space basis vectors a, b, c in Å (gemmi convention)."""
        return np.array(self.to_gemmi().orth.mat.tolist(), dtype=float)


@dataclass
class Site:
    """One asymmetric-unit site as written in the CIF. ADPs in Å²; Uij order U11 U22 U33 U12 U13 U23."""

    label: str
    element: str
    type_symbol: str
    charge: float | None
    frac: tuple[float, float, float]
    frac_su: tuple[float | None, float | None, float | None]
    occupancy: float = 1.0
    occupancy_su: float | None = None
    u_iso: float | None = None
    u_iso_su: float | None = None
    u_aniso: tuple[float, ...] | None = None
    u_aniso_su: tuple[float | None, ...] | None = None
    adp_type: str | None = None
    disorder_assembly: str | None = None
    disorder_group: str | None = None
    calc_flag: str | None = None
    refinement_flags_posn: str | None = None
    multiplicity: int = 1
    #: decimals printed for fract_x, y, z in the CIF (None: not read from a file)
    frac_decimals: tuple[int, int, int] | None = None

    @property
    def is_riding(self) -> bool:
        """A calculated (riding) position, SHELXL style: calc flag with posn flag R, or flag R."""
        return (self.calc_flag == "R"
                or (self.calc_flag in ("calc", "c") and "R" in (self.refinement_flags_posn or "")))

    @property
    def is_hydrogen(self) -> bool:
        return self.element in ("H", "D")

    @property
    def in_disorder(self) -> bool:
        return self.disorder_group not in (None, "0")


@dataclass
class AtomImage:
    """One atom of the full unit cell: a symmetry image of an asymmetric-unit site."""

    site_index: int
    frac: np.ndarray
    op_index: int
    translation: tuple[int, int, int]
    beta: np.ndarray | None  # anisotropic β tensor (dimensionless) rotated by the operator


@dataclass(frozen=True)
class GeomBond:
    """One row of the CIF's ``_geom_bond`` loop as printed (labels, distance text with s.u., code)."""

    label_1: str
    label_2: str
    distance_text: str          # e.g. "2.027(9)"
    symmetry_code: str = "."    # _geom_bond_site_symmetry_2, e.g. "2_656"


@dataclass
class Provenance:
    """Where a structure comes from and what it is (refined, model, surrogate, user)."""

    file: str | None = None
    block: str | None = None
    doi: str | None = None
    ccdc: str | None = None
    cod: str | None = None
    icsd: str | None = None
    source: str | None = None
    kind: str = "user"
    note: str | None = None


@dataclass
class Phase:
    """A crystalline phase read from CIF (see module docstring)."""

    id: str
    name: str
    block: str
    cell: Cell
    spacegroup_hm: str
    spacegroup_number: int | None
    symops: list[str]
    sites: list[Site]
    z: float | None = None
    formula_sum: str | None = None
    formula_weight: float | None = None
    temperature_k: float | None = None
    density_stated: float | None = None
    wavelength_angstrom: float | None = None
    #: ``_diffrn_radiation_probe`` / ``_diffrn_radiation_type`` as written (e.g. "x-ray", "Mo Kα", "neutron")
    radiation: str | None = None
    provenance: Provenance = field(default_factory=Provenance)
    warnings: list[str] = field(default_factory=list)
    #: symmetry operators exactly in the order the file writes them (for codes such as ``2_656``);
    #: empty when the file has no operator loop
    symops_as_written: list[str] = field(default_factory=list)
    #: the CIF tag the operators were read from (None when the file has no operator loop)
    symops_tag: str | None = None
    #: rows of the file's ``_geom_bond`` loop (empty when it has none)
    geom_bonds: list[GeomBond] = field(default_factory=list)
    _images: CellImages | None = field(default=None, repr=False, compare=False)
    _atoms: list[AtomImage] | None = field(default=None, repr=False, compare=False)

    # -- derived quantities -------------------------------------------------------------------
    @property
    def volume(self) -> float:
        """Cell volume (Å³)."""
        return self.cell.volume

    @property
    def is_model(self) -> bool:
        return self.provenance.kind == "model"

    @property
    def operations(self) -> list[gemmi.Op]:
        return [gemmi.Op(s) for s in self.symops]

    def cell_images(self) -> CellImages:
        """All atoms of the unit cell as arrays (`expand_sites` with `operations`), computed once."""
        if self._images is None:
            self._images = expand_sites(self.cell, self.sites, self.operations)
        return self._images

    def cell_atoms(self) -> list[AtomImage]:
        """All atoms of the unit cell (fractional coordinates in [0, 1)), images of one site merged."""
        if self._atoms is None:
            self._atoms = _atom_images(self)
        return self._atoms

    def formula_from_sites(self) -> dict[str, float]:
        """Cell content {element: occupancy-weighted count} from the sites and the space group."""
        out: dict[str, float] = defaultdict(float)
        for s in self.sites:
            out[s.element] += s.occupancy * s.multiplicity
        return dict(out)

    @property
    def cell_mass_dalton(self) -> float:
        """Mass of the cell contents from the sites (g/mol per cell)."""
        return sum(n * gemmi.Element(el).weight for el, n in self.formula_from_sites().items())

    @property
    def density_calc(self) -> float:
        """Density from the modelled sites (g/cm³)."""
        return self.cell_mass_dalton / AVOGADRO / (self.volume * 1e-24)

    @property
    def formula_units(self) -> float | None:
        """Z: the stated value, else inferred from the formula and the site content."""
        if self.z:
            return self.z
        if not self.formula_sum:
            return None
        return infer_z(parse_formula(self.formula_sum), self.formula_from_sites())

    def to_gemmi_small_structure(self) -> gemmi.SmallStructure:
        """A gemmi SmallStructure with the asymmetric unit (occupancy and Uiso/Ueq set) and its space
        group, cell images set up. Occupancies are chemical; call
        ``change_occupancies_to_crystallographic()`` before gemmi's structure-factor calculators."""
        ss = gemmi.SmallStructure()
        ss.name = self.block
        ss.cell = self.cell.to_gemmi()
        hall = gemmi.find_spacegroup_by_ops(gemmi.GroupOps(self.operations))
        if hall is not None:
            ss.spacegroup_hm = hall.xhm()
        # gemmi expands the cell from ss.spacegroup, which setting the H-M text alone leaves unset
        ss.symops = list(self.symops)
        ss.determine_and_set_spacegroup("S")
        ss.setup_cell_images()
        for s in self.sites:
            site = gemmi.SmallStructure.Site()
            site.label = s.label
            site.type_symbol = s.type_symbol
            site.element = gemmi.Element(s.element)
            site.fract = gemmi.Fractional(*s.frac)
            site.occ = s.occupancy
            site.u_iso = self.u_equivalent(s) or 0.0
            if s.u_aniso is not None:
                u = s.u_aniso
                site.aniso = gemmi.SMat33d(u[0], u[1], u[2], u[3], u[4], u[5])
            ss.add_site(site)
        return ss

    def u_equivalent(self, site: Site) -> float | None:
        """Uiso, or Ueq = trace(U_cart)/3 from Uij (Å²)."""
        if site.u_aniso is None:
            return site.u_iso
        return float(np.trace(self.u_cartesian(site)) / 3.0)

    def u_cartesian(self, site: Site) -> np.ndarray:
        """Cartesian U tensor (Å²) of a site with Uij."""
        assert site.u_aniso is not None
        u11, u22, u33, u12, u13, u23 = site.u_aniso
        u = np.array([[u11, u12, u13], [u12, u22, u23], [u13, u23, u33]])
        orth = self.cell.orthogonalization_matrix()
        recip = np.linalg.inv(orth).T  # columns a*, b*, c*
        n = np.diag(np.linalg.norm(recip, axis=0))
        return orth @ n @ u @ n @ orth.T

    def to_pymatgen(self):
        """pymatgen `Structure` of the full unit cell.

        Partially occupied sites become disordered species with their occupancy. Site properties:
        ``label``, ``u_iso`` (Uiso or Ueq, Å²; None if not given), ``u_aniso`` (6-tuple U11 U22 U33
        U12 U13 U23 of the asymmetric-unit site, or None), ``beta`` (3×3 β tensor rotated to the
        image, or None), ``disorder_group`` and ``occupancy``.
        """
        from pymatgen.core import Lattice, Structure

        lattice = Lattice.from_parameters(*self.cell.parameters)
        species, coords = [], []
        props: dict[str, list[Any]] = {k: [] for k in
                                       ("label", "u_iso", "u_aniso", "beta", "disorder_group", "occupancy")}
        for img in self.cell_atoms():
            s = self.sites[img.site_index]
            el = "H" if s.element == "D" else s.element
            species.append({el: s.occupancy})
            coords.append(img.frac)
            props["label"].append(s.label)
            props["u_iso"].append(self.u_equivalent(s))
            props["u_aniso"].append(s.u_aniso)
            props["beta"].append(img.beta)
            props["disorder_group"].append(s.disorder_group)
            props["occupancy"].append(s.occupancy)
        return Structure(lattice, species, coords, site_properties=props)

    def summary(self) -> dict[str, Any]:
        """Plain dict for tables and JSON."""
        return {
            "id": self.id, "name": self.name, "block": self.block,
            "formula": self.formula_sum, "spacegroup": self.spacegroup_hm,
            "spacegroup_number": self.spacegroup_number,
            "a": self.cell.a, "b": self.cell.b, "c": self.cell.c,
            "alpha": self.cell.alpha, "beta": self.cell.beta, "gamma": self.cell.gamma,
            "volume_angstrom3": self.volume, "z": self.formula_units,
            "density_calc_g_cm3": self.density_calc, "kind": self.provenance.kind,
            "source": self.provenance.source or self.provenance.doi or self.provenance.file,
            "warnings": list(self.warnings),
        }


def _beta_tensor(cell: Cell, u_aniso: tuple[float, ...]) -> np.ndarray:
    """β_ij = 2π² a*_i a*_j U_ij (dimensionless), exponent −hᵀβh."""
    u11, u22, u33, u12, u13, u23 = u_aniso
    u = np.array([[u11, u12, u13], [u12, u22, u23], [u13, u23, u33]])
    rc = cell.to_gemmi().reciprocal()
    astar = np.array([rc.a, rc.b, rc.c])
    return 2 * math.pi ** 2 * u * np.outer(astar, astar)


def _atom_images(phase: Phase) -> list[AtomImage]:
    """`Phase.cell_images` as `AtomImage` objects, with β tensors rotated to each image."""
    images = phase.cell_images()
    rot, _ = op_arrays(phase.operations)
    betas: list[np.ndarray | None] = [None] * len(images)
    aniso = np.array([phase.sites[i].u_aniso is not None for i in images.site_index], dtype=bool)
    if aniso.any():
        site_beta = {i: _beta_tensor(phase.cell, s.u_aniso) for i, s in enumerate(phase.sites)
                     if s.u_aniso is not None}
        sel = np.nonzero(aniso)[0]
        r = rot[images.op_index[sel]]
        b = np.array([site_beta[i] for i in images.site_index[sel]])
        rotated = r @ b @ np.transpose(r, (0, 2, 1))
        for n, k in enumerate(sel):
            betas[k] = rotated[n]
    return [AtomImage(int(si), images.frac[k], int(op), tuple(int(t) for t in images.translation[k]), betas[k])
            for k, (si, op) in enumerate(zip(images.site_index, images.op_index))]


def _set_multiplicities(phase: Phase) -> None:
    counts = np.bincount(phase.cell_images().site_index, minlength=len(phase.sites))
    for i, s in enumerate(phase.sites):
        s.multiplicity = int(counts[i])


def infer_z(stated: dict[str, float], content: dict[str, float]) -> float | None:
    """Z from a formula unit {el: n} and the cell content (median over non-H elements)."""
    ratios = [content.get(el, 0.0) / n for el, n in stated.items() if n > 0 and el not in ("H", "D")]
    if not ratios:
        ratios = [content.get(el, 0.0) / n for el, n in stated.items() if n > 0]
    if not ratios or min(ratios) <= 0:
        return None
    return float(np.median(ratios))


# ----------------------------------------------------------------------------------------------
# plain records (the on-disk cache of parsed CIFs, `xtal.structures.cif.read_cif`)
# ----------------------------------------------------------------------------------------------
def phase_record(phase: Phase) -> dict[str, Any]:
    """A `Phase` as plain JSON-able data (everything read from the file; nothing derived)."""
    rec = {f.name: getattr(phase, f.name) for f in fields(Phase) if f.compare}
    rec["cell"] = asdict(phase.cell)
    rec["sites"] = [asdict(s) for s in phase.sites]
    rec["provenance"] = asdict(phase.provenance)
    rec["geom_bonds"] = [asdict(b) for b in phase.geom_bonds]
    return rec


def phase_from_record(rec: dict[str, Any]) -> Phase:
    """The `Phase` of a `phase_record` (equal to the one recorded: tuples restored)."""
    rec = dict(rec)
    rec["cell"] = _from_fields(Cell, rec["cell"])
    rec["sites"] = [_from_fields(Site, s) for s in rec["sites"]]
    rec["provenance"] = Provenance(**rec["provenance"])
    rec["geom_bonds"] = [GeomBond(**b) for b in rec["geom_bonds"]]
    return Phase(**rec)


def _from_fields(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` with the lists of JSON turned back into the tuples the class declares."""
    tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
    return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()})
