"""Coordination geometry of metal sites: neighbours with s.u., CN, donors, polyhedra, bond valence.

For every selected metal site (default: all alkali and alkaline-earth sites) `analyse_geometry` finds all
neighbours within a cutoff across symmetry and cell boundaries, labels each with its CIF symmetry code
(``_geom_bond_site_symmetry_2`` notation, e.g. ``2_656``; ``.`` for the identity without translation),
propagates the distance s.u. from the cell and coordinate s.u. (no covariance, as SHELXL/PLATON do when
the covariance matrix is not available), classifies donors (ether-O of which molecule, water, hydride-H of
B12H12, cage-B, other), gives CN and bond-valence sums per disorder alternative, an angular summary and
continuous shape measures (own implementation; pymatgen ChemEnv where it works), and compares with the
CIF's own ``_geom_bond_*`` loop when the file has one.

Symmetry codes are numbered in the order of the CIF's symmetry-operator list *as written*
(``Phase.symops_as_written``, kept at read time, so that translations such as ``x,-y-1/2,z-1/2`` keep
their offsets); when the file had no operator loop the order of ``Phase.symops`` is used. Nothing here
reads or writes a file: the ``_geom_bond`` loop and printed precisions also come from the Phase, and the
reports and figure are rendered by `xtal.report.geometry`.
Bond-valence parameters: the IUCr bvparm table (2011 edition, shipped whole as ``xtal/data/bvparm2011.cif``),
else Brese & O'Keeffe's universal parameters from pymatgen; H normalisation in `hydrogen`, cluster-anion
centroid coordination in `clusters`, riding-model thermal correction of the BVS in `thermal`.

Modules: `symmetry` (codes, images, neighbour search, distance s.u.), `chemistry` (covalent graph,
molecules, donor kinds), `polyhedra` (CShM, angles, ChemEnv), `bondvalence` (parameters, sums),
`cifcheck` (comparison with ``_geom_bond``), `model` (result classes), `analysis` (the steps).
"""
from __future__ import annotations

from xtal.geometry.analysis import (DISTANCE_FACTOR, HYDRIDE_TOLERANCE_ANGSTROM, RADII_TOLERANCE_ANGSTROM,
                                    analyse_geometry, compare_metals, published_m_o_ranges)
from xtal.geometry.bondvalence import (ANION_VALENCE, BV_CUTOFF_VALENCE, bv_parameter, oxidation_states,
                                       load_bv_parameters)
from xtal.geometry.chemistry import COVALENT_TOLERANCE_ANGSTROM, MOLECULE_NAMES, NON_METALS
from xtal.geometry.cifcheck import compare_cif_bonds
from xtal.geometry.clusters import anion_coordination
from xtal.geometry.hydrogen import NEUTRON_XH_ANGSTROM, normalise_hydrogens
from xtal.geometry.model import (CONTACT_KINDS, DEFAULT_METALS, METAL_ORDER, Bond, GeometryResult,
                                 NoMetalError, SiteGeometry)
from xtal.geometry.polyhedra import IDEAL_POLYHEDRA, continuous_shape_measure
from xtal.geometry.symmetry import bond_from_code, format_symop_code, parse_symop_code

__all__ = [
    "Bond", "SiteGeometry", "GeometryResult", "NoMetalError",
    "analyse_geometry", "compare_metals", "bv_parameter", "load_bv_parameters", "continuous_shape_measure",
    "IDEAL_POLYHEDRA", "parse_symop_code", "format_symop_code", "compare_cif_bonds",
    "bond_from_code", "DEFAULT_METALS", "published_m_o_ranges", "CONTACT_KINDS", "METAL_ORDER",
    "oxidation_states", "normalise_hydrogens", "NEUTRON_XH_ANGSTROM", "anion_coordination", "ANION_VALENCE", "NON_METALS", "COVALENT_TOLERANCE_ANGSTROM", "BV_CUTOFF_VALENCE",
    "RADII_TOLERANCE_ANGSTROM", "HYDRIDE_TOLERANCE_ANGSTROM", "DISTANCE_FACTOR", "MOLECULE_NAMES",
]
