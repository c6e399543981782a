"""The one symmetry expansion of xtal and periodic contact search.

`expand_sites` applies every operator to every site at once (numpy) and merges images of one site
closer than `SAME_ATOM_TOLERANCE_ANGSTROM`; `xtal.structures.Phase.cell_atoms` (operators in group
order) and `xtal.geometry` (operators in the CIF's order, for symmetry codes) both use it.
`periodic_contacts` finds close pairs across cell boundaries with gemmi's neighbour search.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import gemmi
import numpy as np

if TYPE_CHECKING:
    from xtal.structures import Cell, Site

__all__ = ["SAME_ATOM_TOLERANCE_ANGSTROM", "CellImages", "op_arrays", "expand_sites", "periodic_contacts"]

#: Images of one site closer than this (Å) are the same atom (special position, rounded coordinates).
SAME_ATOM_TOLERANCE_ANGSTROM = 0.1


@dataclass(frozen=True)
class CellImages:
    """All atoms of the unit cell as arrays, one row per atom (site-major, operators in the given order).

    ``op_frac`` is the operator applied to the site (not wrapped); ``frac = op_frac + translation`` lies
    in [0, 1).
    """

    site_index: np.ndarray   # (n,) int
    op_index: np.ndarray     # (n,) int, index into the operator list used
    op_frac: np.ndarray      # (n, 3) float
    frac: np.ndarray         # (n, 3) float
    translation: np.ndarray  # (n, 3) int

    def __len__(self) -> int:
        return len(self.site_index)


def op_arrays(ops: Sequence[gemmi.Op]) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (k, 3, 3) and translation (k, 3) parts of operators, as fractions."""
    rot = np.array([o.rot for o in ops], dtype=float).reshape(-1, 3, 3) / gemmi.Op.DEN
    tran = np.array([o.tran for o in ops], dtype=float).reshape(-1, 3) / gemmi.Op.DEN
    return rot, tran


#: sites per chunk in `expand_sites` are limited so that one chunk's operator-pair array stays small
_PAIR_BUDGET = 2_000_000


def expand_sites(cell: Cell, sites: Sequence[Site], ops: Sequence[gemmi.Op]) -> CellImages:
    """Apply every operator to every site at once; images of one site closer than
    `SAME_ATOM_TOLERANCE_ANGSTROM` are one atom, the first operator (in ``ops`` order) keeping it."""
    rot, tran = op_arrays(ops)
    orth = cell.orthogonalization_matrix()
    x = np.array([s.frac for s in sites], dtype=float).reshape(-1, 3)
    y = (rot[None, :, :, :] @ x[:, None, :, None])[..., 0] + tran[None, :, :]   # (m, k, 3)
    n_ops = len(ops)
    kept = np.zeros((len(sites), n_ops), dtype=bool)
    chunk = max(1, _PAIR_BUDGET // max(1, n_ops * n_ops))
    for lo in range(0, len(sites), chunk):
        d = y[lo:lo + chunk, :, None, :] - y[lo:lo + chunk, None, :, :]          # (c, k, k, 3)
        d -= np.round(d)
        close = np.linalg.norm(d @ orth.T, axis=-1) < SAME_ATOM_TOLERANCE_ANGSTROM
        keep = kept[lo:lo + chunk]
        for k in range(n_ops):   # an image is new unless an earlier *kept* image is the same atom
            keep[:, k] = ~np.any(close[:, k, :k] & keep[:, :k], axis=1)
    site_index, op_index = np.nonzero(kept)
    op_frac = y[site_index, op_index]
    shift = np.floor(op_frac + 1e-9)
    return CellImages(site_index=site_index, op_index=op_index, op_frac=op_frac,
                      frac=op_frac - shift, translation=-shift.astype(int))


def periodic_contacts(cell: Cell, frac: np.ndarray, cutoff_angstrom: float
                      ) -> list[tuple[int, int, float]]:
    """Pairs (i, j, distance Å), i < j, of points ``frac`` (n, 3) closer than ``cutoff_angstrom`` across
    cell boundaries (gemmi.NeighborSearch + ContactSearch in P1), sorted by (i, j)."""
    st = gemmi.Structure()
    st.cell = cell.to_gemmi()
    st.spacegroup_hm = "P 1"
    model, chain, res = gemmi.Model("1"), gemmi.Chain("A"), gemmi.Residue()
    res.name, res.seqid = "X", gemmi.SeqId(1, " ")
    orth = cell.orthogonalization_matrix()
    for k, p in enumerate(np.asarray(frac, dtype=float) @ orth.T):
        atom = gemmi.Atom()
        atom.pos, atom.serial, atom.occ, atom.element = gemmi.Position(*p), k, 1.0, gemmi.Element("C")
        res.add_atom(atom)
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    ns = gemmi.NeighborSearch(st[0], st.cell, max(cutoff_angstrom, 1.0)).populate()
    search = gemmi.ContactSearch(cutoff_angstrom)
    search.ignore = gemmi.ContactSearch.Ignore.Nothing
    search.min_occupancy = 0.0
    pairs = {}
    for c in search.find_contacts(ns):
        i, j = sorted((c.partner1.atom.serial, c.partner2.atom.serial))
        if i != j and c.dist < pairs.get((i, j), math.inf):
            pairs[(i, j)] = c.dist
    return [(i, j, d) for (i, j), d in sorted(pairs.items())]
