"""Crystal structures read from CIF with gemmi into one `Phase` model.

`read_cif` keeps what a crystallographer needs from a SHELXL/CCDC or literature CIF: cell with s.u.,
space group and its operators, every asymmetric-unit site (coordinates with s.u., occupancy, disorder
assembly/group, Uiso or Uij with s.u., riding flags), Z, formula, temperature and provenance. Problems
that do not prevent use become `Phase.warnings`; fatal ones raise a `CifError` subclass naming the file,
block and field.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from xtal.errors import (
    BlockNotFoundError,
    CifError,
    CifSyntaxError,
    EmptyFileError,
    MissingFieldError,
    OccupancyError,
    SymmetryError,
    UnknownElementError,
    XtalError,
)
from xtal.symmetry import CellImages, expand_sites, op_arrays, periodic_contacts

__all__ = [
    "Cell", "Site", "Provenance", "Phase", "AtomImage", "GeomBond", "MODEL_WARNING",
    "read_cif", "read_cif_string", "parse_su", "format_su", "parse_formula", "infer_z",
]

#: Said in every pattern, report and figure that uses a structural MODEL (Provenance.kind == "model").
MODEL_WARNING = ("MODEL structure, not a refinement: intensities depend on the modelled anion "
                 "orientation while peak positions follow the published cell")

#: Non-H atoms of different sites closer than this (Å), not explained by disorder, are reported.
MIN_NON_H_CONTACT_ANGSTROM = 0.5
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
    if su is None:
        return value, None
    decimals = len(fp) if fp else 0
    unc = int(su) * 10.0 ** (-decimals)
    if ex:
        unc *= 10.0 ** int(ex)
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


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
def read_cif(path: str | Path, block: str | None = None, *, phase_id: str | None = None,
             kind: str = "user", name: str | None = None) -> Phase:
    """Read one structure from a CIF file with gemmi.

    Parameters
    ----------
    path : CIF file.
    block : data-block name (without ``data_``); needed when the file holds several structures.
    phase_id : id of the phase (default: the file stem).
    kind : provenance kind: "refined", "model", "surrogate" or "user".
    name : human-readable name (default: CIF chemical name or block name).

    Returns
    -------
    Phase

    Raises
    ------
    CifError subclass naming file, block and field.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CifError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    text = _decode(raw, path)
    return read_cif_string(text, name=str(path), block=block,
                           phase_id=phase_id or path.stem, kind=kind, display_name=name)


def read_cif_string(text: str, *, name: str = "<string>", block: str | None = None,
                    phase_id: str | None = None, kind: str = "user",
                    display_name: str | None = None) -> Phase:
    """Read one structure from CIF text (see `read_cif`)."""
    if not text.strip():
        raise EmptyFileError("the file is empty", path=name)
    try:
        doc = gemmi.cif.read_string(text)
    except (ValueError, RuntimeError) as exc:
        raise CifSyntaxError(f"not valid CIF: {_clean_gemmi_message(exc)}", path=name) from exc
    if len(doc) == 0:
        raise EmptyFileError("no data block (data_...) in the file", path=name)
    blk = _choose_block(doc, block, name)
    try:
        phase = _phase_from_block(blk, name, phase_id or blk.name, kind)
    except XtalError:
        raise
    except Exception as exc:  # last resort: never let a malformed file escape as another type
        raise CifError(f"cannot interpret the structure ({type(exc).__name__}: {exc})",
                       path=name, block=blk.name) from exc
    if display_name:
        phase.name = display_name
    return phase


def _decode(raw: bytes, path: Path) -> str:
    if not raw.strip():
        raise EmptyFileError("the file is empty", path=path)
    if b"\x00" in raw:
        raise CifSyntaxError("binary data (NUL bytes): not a CIF text file", path=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        bad = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t\f")
        if bad > 0:
            raise CifSyntaxError("binary data (control characters): not a CIF text file", path=path)
        return text


def _clean_gemmi_message(exc: Exception) -> str:
    return str(exc).replace("string:", "line ")


def _is_structure_block(b: gemmi.cif.Block) -> bool:
    return b.find_value("_cell_length_a") is not None and bool(b.find_values("_atom_site_fract_x"))


def _choose_block(doc: gemmi.cif.Document, block: str | None, name: str) -> gemmi.cif.Block:
    names = [b.name for b in doc]
    if block is not None:
        wanted = block[5:] if block.lower().startswith("data_") else block
        b = doc.find_block(wanted)
        if b is None:
            raise BlockNotFoundError(f"no data block {wanted!r}; the file has {names}", path=name)
        return b
    candidates = [b for b in doc if _is_structure_block(b)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        if len(doc) == 1:
            return doc[0]  # let the field checks say what is missing
        raise MissingFieldError(f"no data block has a cell and atom sites (blocks: {names})",
                                path=name, field="_cell_length_a/_atom_site_fract_x")
    raise BlockNotFoundError(
        f"the file holds {len(candidates)} structures {[b.name for b in candidates]}; choose one by name",
        path=name)


class _Ctx:
    """File/block context used to build error messages."""

    def __init__(self, path: str, block: gemmi.cif.Block):
        self.path = path
        self.block = block

    def err(self, cls: type[CifError], msg: str, tag: str | None = None) -> CifError:
        return cls(msg, path=self.path, block=self.block.name, field=tag)

    def value(self, *tags: str) -> str | None:
        for t in tags:
            v = self.block.find_value(t)
            if v is not None:
                v = gemmi.cif.as_string(v)
                if v.strip() not in _NULL:
                    return v.strip()
        return None

    def number(self, *tags: str, required: bool = False) -> tuple[float | None, float | None]:
        for t in tags:
            v = self.block.find_value(t)
            if v is None:
                continue
            try:
                val, su = parse_su(v)
            except ValueError:
                raise self.err(CifSyntaxError, f"expected a number, found {v!r}", t) from None
            if val is not None:
                if not math.isfinite(val):
                    raise self.err(CifSyntaxError, f"not a finite number: {v!r}", t)
                return val, su
        if required:
            raise self.err(MissingFieldError, "required item is missing or unknown ('?')", tags[0])
        return None, None


def _phase_from_block(blk: gemmi.cif.Block, path: str, phase_id: str, kind: str) -> Phase:
    ctx = _Ctx(path, blk)
    warnings: list[str] = []

    # cell
    params, sus = [], []
    for tag in ("_cell_length_a", "_cell_length_b", "_cell_length_c",
                "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma"):
        val, su = ctx.number(tag, required=True)
        params.append(val)
        sus.append(su)
    for tag, v in zip(("_cell_length_a", "_cell_length_b", "_cell_length_c"), params[:3]):
        if not 0.5 < v < 1000:
            raise ctx.err(CifSyntaxError, f"cell length {v} Å is not physical", tag)
    for tag, v in zip(("_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma"), params[3:]):
        if not 5 < v < 175:
            raise ctx.err(CifSyntaxError, f"cell angle {v}° is not physical", tag)
    cell = Cell(*params, su=tuple(sus))
    if not cell.volume > 0 or not math.isfinite(cell.volume):
        raise ctx.err(CifSyntaxError, "cell angles do not form a valid cell", "_cell_angle_alpha")

    symops, hm, number, written, symop_tag = _read_symmetry(ctx, warnings)
    sites = _read_sites(ctx, warnings)

    z, _ = ctx.number("_cell_formula_units_Z")
    formula = ctx.value("_chemical_formula_sum")
    fw, _ = ctx.number("_chemical_formula_weight")
    temp, _ = ctx.number("_diffrn_ambient_temperature", "_cell_measurement_temperature")
    dens, _ = ctx.number("_exptl_crystal_density_diffrn")
    wl, _ = ctx.number("_diffrn_radiation_wavelength")
    name = (ctx.value("_chemical_name_common") or ctx.value("_chemical_name_systematic")
            or ctx.value("_chemical_name_mineral") or formula or blk.name)
    prov = Provenance(
        file=path, block=blk.name,
        doi=ctx.value("_journal_paper_doi", "_citation_doi"),
        ccdc=ctx.value("_database_code_depnum_ccdc_archive", "_database_code_CSD"),
        cod=ctx.value("_cod_database_code"),
        icsd=ctx.value("_database_code_ICSD"),
        source=_citation(ctx),
        kind=kind,
        note=ctx.value("_xtal_model_warning"),
    )
    phase = Phase(id=phase_id, name=name, block=blk.name, cell=cell, spacegroup_hm=hm,
                  spacegroup_number=number, symops=symops, sites=sites, z=z, formula_sum=formula,
                  formula_weight=fw, temperature_k=temp, density_stated=dens,
                  wavelength_angstrom=wl, provenance=prov, warnings=warnings,
                  symops_as_written=written, symops_tag=symop_tag, geom_bonds=_read_geom_bonds(blk))
    _set_multiplicities(phase)
    _validate(phase, ctx)
    return phase


def _read_geom_bonds(blk: gemmi.cif.Block) -> list[GeomBond]:
    """The ``_geom_bond`` loop as printed (the s.u. stays in the distance text)."""
    table = blk.find("_geom_bond_", ["atom_site_label_1", "atom_site_label_2", "distance",
                                     "?site_symmetry_2"])
    return [GeomBond(row.str(0), row.str(1), row.str(2), row.str(3) if row.has(3) else ".")
            for row in table]


def _printed_decimals(text: str) -> int:
    """Decimals printed in a CIF number ('0.2398(12)' -> 4)."""
    t = text.split("(")[0]
    return len(t.split(".")[1]) if "." in t else 0


def _citation(ctx: _Ctx) -> str | None:
    journal = ctx.value("_journal_name_full", "_journal_name_full_name")
    if journal is None:
        return None
    year = ctx.value("_journal_year") or ""
    vol = ctx.value("_journal_volume") or ""
    page = ctx.value("_journal_page_first") or ""
    return " ".join(journal.split()) + f" {vol} ({year}) {page}".rstrip()


_SYMOP_TAGS = ("_space_group_symop_operation_xyz", "_symmetry_equiv_pos_as_xyz")
_HM_TAGS = ("_space_group_name_H-M_alt", "_symmetry_space_group_name_H-M", "_space_group_name_H-M_ref")
_HALL_TAGS = ("_space_group_name_Hall", "_symmetry_space_group_name_Hall")
_NUM_TAGS = ("_space_group_IT_number", "_symmetry_Int_Tables_number")


def _read_symmetry(ctx: _Ctx, warnings: list[str]
                   ) -> tuple[list[str], str, int | None, list[str], str | None]:
    """Symmetry operators from the symop loop when present, else from Hall / H-M / number.

    Returns (group operators, H-M symbol, number, operators as written in the file, their tag).
    """
    ops: list[gemmi.Op] = []
    written: list[str] = []
    op_tag = None
    for tag in _SYMOP_TAGS:
        col = ctx.block.find_values(tag)
        if col:
            op_tag = tag
            for i, raw in enumerate(col):
                s = gemmi.cif.as_string(raw).strip()
                written.append(s)
                try:
                    ops.append(gemmi.Op(s))
                except (RuntimeError, ValueError) as exc:
                    raise ctx.err(SymmetryError, f"operator {i + 1} {s!r} cannot be parsed ({exc})",
                                  tag) from None
            break
    hm_text = ctx.value(*_HM_TAGS)
    hall_text = ctx.value(*_HALL_TAGS)
    num_val, _ = ctx.number(*_NUM_TAGS)
    named: gemmi.SpaceGroup | None = None
    if hall_text:
        try:
            named = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(hall_text))
        except (RuntimeError, ValueError):
            warnings.append(f"Hall symbol {hall_text!r} cannot be parsed")
    if named is None and hm_text:
        named = _spacegroup_from_name(hm_text)
        if named is None:
            warnings.append(f"H-M symbol {hm_text!r} is not a recognised space-group name")
    if named is None and num_val is not None:
        try:
            named = gemmi.find_spacegroup_by_number(int(num_val))
        except (RuntimeError, ValueError):
            named = None
    if ops:
        if not any(o.rot == gemmi.Op("x,y,z").rot and o.tran == [0, 0, 0] for o in ops):
            warnings.append("the symmetry-operator list has no identity x,y,z; added")
            ops.insert(0, gemmi.Op("x,y,z"))
        unique: dict[str, gemmi.Op] = {}
        for o in ops:
            unique.setdefault(o.triplet(), o)
        if len(unique) != len(ops):
            warnings.append(f"the symmetry-operator list repeats {len(ops) - len(unique)} operators; "
                            "duplicates ignored")
        ops = list(unique.values())
        try:
            group = gemmi.GroupOps(ops)
        except (RuntimeError, ValueError) as exc:
            raise ctx.err(SymmetryError, f"operators do not form a group ({exc})", op_tag) from None
        from_ops = gemmi.find_spacegroup_by_ops(group)
        n_listed = len(ops)
        if n_listed != len(group):
            warnings.append(f"{n_listed} operators listed but they generate {len(group)}; the generated "
                            "group is used")
        if from_ops is not None and named is not None and from_ops.number != named.number:
            warnings.append(f"space-group name/number ({named.xhm()}, No. {named.number}) disagrees with "
                            f"the operators ({from_ops.xhm()}, No. {from_ops.number}); the operators are used")
        if num_val is not None and from_ops is not None and int(num_val) != from_ops.number:
            warnings.append(f"space-group number {int(num_val)} disagrees with the operators "
                            f"(No. {from_ops.number}); the operators are used")
        symops = [o.triplet() for o in group]
        sg = from_ops or named
        if sg is not None:
            hm = sg.xhm()
            number = sg.number
        else:
            hm, number = hm_text or "unknown", int(num_val) if num_val else None
            warnings.append("operators do not match a tabulated space-group setting")
        return symops, hm, number, written, op_tag
    if named is None:
        raise ctx.err(SymmetryError, "no symmetry operators and no recognisable space-group "
                                     "name, Hall symbol or number", _SYMOP_TAGS[0])
    return [o.triplet() for o in named.operations()], named.xhm(), named.number, written, op_tag


def _spacegroup_from_name(text: str) -> gemmi.SpaceGroup | None:
    """gemmi space group from an H-M name, also in full ('F 2/m -3') or TeX-like ('F4_{1}32') form."""
    sg = gemmi.find_spacegroup_by_name(text)
    if sg is not None:
        return sg
    simplified = re.sub(r"_\{?(\d)\}?", r"\1", text)           # 4_{1} -> 41
    sg = gemmi.find_spacegroup_by_name(simplified)
    if sg is not None:
        return sg
    short = re.sub(r"\b[2346]1?/([mnabcde])", r"\1", simplified)  # full symbol 2/m -> m
    return gemmi.find_spacegroup_by_name(short)


_TYPE_RE = re.compile(r"^([A-Za-z]{1,2})(\d*)([+-]?)(\d*)")


def _element_of(type_symbol: str, ctx: _Ctx, tag: str) -> tuple[str, float | None]:
    """Element and formal charge from a type symbol ('Li1+', 'O2-', 'Fe3+', 'H', 'D')."""
    m = _TYPE_RE.match(type_symbol.strip())
    if not m:
        raise ctx.err(UnknownElementError, f"cannot read an element from {type_symbol!r}", tag)
    letters, d1, sign, d2 = m.groups()
    candidates = [letters[:1].upper() + letters[1:].lower(), letters[:1].upper()] if len(letters) == 2 \
        else [letters.upper()]
    for cand in candidates:
        if cand == "D" or gemmi.Element(cand).atomic_number > 0:
            charge = None
            if sign:
                mag = int(d1 or d2 or "1")
                charge = float(mag if sign == "+" else -mag)
            return cand, charge
    raise ctx.err(UnknownElementError, f"{type_symbol!r} is not a chemical element", tag)


def _read_sites(ctx: _Ctx, warnings: list[str]) -> list[Site]:
    blk = ctx.block
    table = blk.find("_atom_site_", ["label", "fract_x", "fract_y", "fract_z",
                                     "?type_symbol", "?occupancy", "?U_iso_or_equiv", "?B_iso_or_equiv",
                                     "?adp_type", "?disorder_assembly", "?disorder_group",
                                     "?calc_flag", "?thermal_displace_type",
                                     "?refinement_flags_posn"])
    if len(table) == 0:
        missing = [t for t in ("_atom_site_label", "_atom_site_fract_x", "_atom_site_fract_y",
                               "_atom_site_fract_z") if not blk.find_values(t)]
        raise ctx.err(MissingFieldError, "no atom sites with fractional coordinates",
                      ", ".join(missing) or "_atom_site_fract_x")
    sites: list[Site] = []
    seen: set[str] = set()

    def opt(row, i):
        return row.str(i) if row.has(i) and row[i] not in ("?", ".") else None

    for row in table:
        label = row.str(0)
        if label in seen:
            warnings.append(f"duplicate atom-site label {label!r}")
        seen.add(label)
        frac, frac_su = [], []
        decimals = tuple(_printed_decimals(row.str(j)) for j in (1, 2, 3))
        for j, tag in enumerate(("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")):
            try:
                v, s = parse_su(row[j + 1])
            except ValueError:
                raise ctx.err(CifSyntaxError, f"site {label}: coordinate {row[j + 1]!r} is not a number",
                              tag) from None
            if v is None or not math.isfinite(v):
                raise ctx.err(MissingFieldError, f"site {label}: coordinate is unknown", tag)
            frac.append(v)
            frac_su.append(s)
        type_symbol = opt(row, 4) or re.sub(r"[^A-Za-z].*$", "", label) or label
        element, charge = _element_of(type_symbol, ctx,
                                      "_atom_site_type_symbol" if row.has(4) else "_atom_site_label")
        occ, occ_su = 1.0, None
        if opt(row, 5) is not None:
            try:
                occ, occ_su = parse_su(row[5])
            except ValueError:
                raise ctx.err(CifSyntaxError, f"site {label}: occupancy {row[5]!r} is not a number",
                              "_atom_site_occupancy") from None
            occ = 1.0 if occ is None else occ
        dis_group = opt(row, 10)
        dis_assembly = opt(row, 9)
        if not (0.0 <= occ <= 1.0 + 1e-3) or not math.isfinite(occ):
            hint = " (no disorder group either)" if dis_group is None else ""
            raise ctx.err(OccupancyError, f"site {label}: occupancy {occ} is outside [0, 1]{hint}",
                          "_atom_site_occupancy")
        u_iso = u_su = None
        for idx, scale in ((6, 1.0), (7, 1.0 / (8 * math.pi ** 2))):
            if opt(row, idx) is not None:
                try:
                    u, us = parse_su(row[idx])
                except ValueError:
                    raise ctx.err(CifSyntaxError, f"site {label}: ADP {row[idx]!r} is not a number",
                                  "_atom_site_U_iso_or_equiv" if idx == 6 else "_atom_site_B_iso_or_equiv"
                                  ) from None
                if u is not None:
                    u_iso, u_su = u * scale, (us * scale if us is not None else None)
                    break
        if u_iso is not None and u_iso < 0:
            warnings.append(f"site {label}: negative Uiso {u_iso:.4f} Å² (non-positive-definite)")
        adp_type = opt(row, 8) or opt(row, 12)
        sites.append(Site(label=label, element=element, type_symbol=type_symbol, charge=charge,
                          frac=tuple(frac), frac_su=tuple(frac_su), occupancy=occ, occupancy_su=occ_su,
                          u_iso=u_iso, u_iso_su=u_su, adp_type=adp_type, disorder_assembly=dis_assembly,
                          disorder_group=dis_group, calc_flag=opt(row, 11),
                          refinement_flags_posn=opt(row, 13), frac_decimals=decimals))
    _read_aniso(ctx, sites, warnings)
    return sites


def _read_aniso(ctx: _Ctx, sites: list[Site], warnings: list[str]) -> None:
    blk = ctx.block
    by_label = {s.label: s for s in sites}
    for prefix, scale in (("U", 1.0), ("B", 1.0 / (8 * math.pi ** 2))):
        cols = [f"{prefix}_11", f"{prefix}_22", f"{prefix}_33", f"{prefix}_12", f"{prefix}_13", f"{prefix}_23"]
        table = blk.find("_atom_site_aniso_", ["label"] + cols)
        if len(table) == 0:
            continue
        for row in table:
            label = row.str(0)
            site = by_label.get(label)
            if site is None:
                warnings.append(f"anisotropic ADP for unknown site {label!r} ignored")
                continue
            vals, sus = [], []
            for j, c in enumerate(cols):
                try:
                    v, s = parse_su(row[j + 1])
                except ValueError:
                    raise ctx.err(CifSyntaxError, f"site {label}: {row[j + 1]!r} is not a number",
                                  f"_atom_site_aniso_{c}") from None
                if v is None:
                    break
                vals.append(v * scale)
                sus.append(s * scale if s is not None else None)
            if len(vals) == 6:
                site.u_aniso = tuple(vals)
                site.u_aniso_su = tuple(sus)
                if site.adp_type is None:
                    site.adp_type = "Uani"


# ----------------------------------------------------------------------------------------------
# symmetry expansion and validation
# ----------------------------------------------------------------------------------------------
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


def _validate(phase: Phase, ctx: _Ctx) -> None:
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
