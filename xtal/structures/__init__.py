"""Crystal structures read from CIF with gemmi into one `Phase` model.

`read_cif` keeps what a crystallographer needs from a SHELXL/CCDC or literature CIF: cell with s.u.,
space group and its operators, every asymmetric-unit site (coordinates with s.u., occupancy, disorder
assembly/group, Uiso or Uij with s.u., riding flags), Z, formula, temperature and provenance. Problems
that do not prevent use become `Phase.warnings`; fatal ones raise a `CifError` subclass naming the file,
block and field.

Modules: `model` (the classes, numbers with s.u.), `cif` (reading), `validate` (checks after reading).
"""
from __future__ import annotations

from xtal.structures.cif import read_cif, read_cif_string
from xtal.structures.model import (AVOGADRO, MODEL_WARNING, AtomImage, Cell, GeomBond, Phase, Provenance, Site,
                                   format_su, infer_z, parse_formula, parse_su)
from xtal.structures.validate import MIN_NON_H_CONTACT_ANGSTROM

__all__ = [
    "Cell", "Site", "Provenance", "Phase", "AtomImage", "GeomBond", "MODEL_WARNING",
    "read_cif", "read_cif_string", "parse_su", "format_su", "parse_formula", "infer_z",
    "MIN_NON_H_CONTACT_ANGSTROM", "AVOGADRO",
]
