"""Refinement: Le Bail extraction, Rietveld refinement of structures, sequential and parametric
refinement of a series.

``constraints``  site-symmetry shifts and Uij constraints from the space group (null spaces of
                 R − I and of U ↦ A U Aᵀ − U, via gemmi ops)
``dispersion``   f′ + i f″ of the elements at λ (Chantler tables via xraydb)
``model``        reflections, lattice by crystal system, structure factors, peaks, profile matrix
``engine``       `Refinement`: parameters, calculated pattern and Jacobian, Levenberg–Marquardt,
                 statistics (covariance × χ², correlations, undetermined parameters)
``lebail``       `le_bail`: free intensities on given cells (Le Bail partition + least squares)
``rietveld``     `rietveld`: scale, cell, zero, displacement, background, profile, March–Dollase,
                 coordinates, Uiso, Uij, occupancies, anomalous dispersion (default on)
``rigid``        `Icosahedron` (B12H12 rigid body), `fit_icosahedron`, `symmetry_axes` (the
                 turns the site symmetry of the centre allows)
``restraints``   distance restraints as extra least-squares rows
``sequential``   `refine_sequential` (xarray.Dataset frame × phase × param), `parametric_cell`,
                 `axis_merging`
``result``       `RietveldResult`, `RefinedPhase`, `RefinedSite`, `LeBailResult`, `LeBailPhase`

Writers: ``xtal.io.cif_writer``; rendering: ``xtal.report.refine``.
"""
from xtal.refine.constraints import allowed_shifts, site_symmetry_ops
from xtal.refine.lebail import LE_BAIL_REFINE, le_bail
from xtal.refine.result import LeBailPhase, LeBailResult, RefinedPhase, RefinedSite, RietveldResult
from xtal.refine.rietveld import DEFAULT_REFINE, RefinementError, rietveld
from xtal.refine.sequential import SEQ_REFINE, axis_merging, parametric_cell, refine_sequential

__all__ = [
    "allowed_shifts", "site_symmetry_ops", "le_bail", "rietveld", "refine_sequential",
    "parametric_cell", "axis_merging", "RietveldResult", "RefinedPhase", "RefinedSite",
    "LeBailResult", "LeBailPhase", "RefinementError", "DEFAULT_REFINE", "LE_BAIL_REFINE", "SEQ_REFINE",
]
