"""Checks of a freshly read `Phase`: formula × Z against the sites, density, and close contacts
between non-H atoms (gemmi neighbour search over the expanded cell). Problems become warnings."""
from __future__ import annotations

import numpy as np

from xtal.structures.model import Phase, Site, infer_z, parse_formula
from xtal.symmetry import periodic_contacts

#: Non-H atoms of different sites closer than this (Å), not explained by disorder, are reported.
MIN_NON_H_CONTACT_ANGSTROM = 0.5


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
