"""Reading one structure from CIF text with gemmi into a `Phase`: cell, symmetry (operators also as
written), sites with s.u. and ADPs, the ``_geom_bond`` loop, provenance. The file is read once."""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import gemmi

from xtal.cache import cache_dir, cached_json, code_fingerprint, text_cache_key
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
from xtal.structures.model import (_NULL, Cell, GeomBond, Phase, Provenance, Site, _set_multiplicities,
                                   parse_su, phase_from_record, phase_record)
from xtal.structures.validate import check_physical, checked_ops, validate

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

    def parse() -> Phase:
        return read_cif_string(text, name=str(path), block=block, phase_id=phase_id or path.stem,
                               kind=kind, display_name=name)

    if cache_dir() is None:
        return parse()
    # every command re-reads the library: its parsed phases come from the disk cache (xtal.cache),
    # keyed by the file's bytes and path, what was asked for and the parser's own source
    key = text_cache_key("phase", hashlib.sha256(raw).hexdigest(), str(path), block, phase_id, kind,
                         name, gemmi.__version__, code_fingerprint(*_PARSER_CODE))
    return phase_from_record(cached_json("phases", key, lambda: phase_record(parse())))


#: the modules whose source turns CIF text into a `Phase` (part of the disk-cache key of a record)
_PARSER_CODE = ("xtal.structures.cif", "xtal.structures.model", "xtal.structures.validate",
                "xtal.symmetry", "xtal.errors")


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
                raise self.err(CifSyntaxError, f"expected a finite number, found {v!r}", t) from None
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
    probe = ctx.value("_diffrn_radiation_probe", "_diffrn_radiation_type", "_pd_meas_radiation_type")
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
                  wavelength_angstrom=wl, radiation=probe, provenance=prov, warnings=warnings,
                  symops_as_written=written, symops_tag=symop_tag, geom_bonds=_read_geom_bonds(blk))
    check_physical(phase)   # impossible numbers are refused before anything is computed from them
    _set_multiplicities(phase)
    validate(phase)
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
        check_symops_each(ctx, written, op_tag)
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
        if n_listed != len(group) and from_ops is None:
            raise ctx.err(SymmetryError, f"the {n_listed} operators do not form a group: they generate "
                          f"{len(group)} operators that match no space group", op_tag)
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


def check_symops_each(ctx: _Ctx, written: list[str], tag: str | None) -> None:
    """Every listed operator a crystallographic isometry (closure is checked on the final group)."""
    def fatal(cls, msg, field):
        return ctx.err(cls, msg, tag or field)

    # all at once; the message numbers the operator as the former one-by-one check of
    # ["x,y,z", s] did ("operator 2")
    checked_ops(written, fatal, number=lambda i: 2)


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
    two = letters[:1].upper() + letters[1:].lower()
    if len(letters) == 2 and tag == "_atom_site_type_symbol":
        candidates = [two]   # 'Sx' is not silently read as S (labels like 'HA1' may still mean H)
    else:
        candidates = [two, letters[:1].upper()] if len(letters) == 2 else [letters.upper()]
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
