"""Symmetry constraints of a refinement, derived from the space group (never hand-coded).

* `site_symmetry_ops` — the operators of the space group that leave a site in place (its
  site-symmetry group, modulo lattice translations), found by applying every operator of the
  phase (gemmi ``Op``) to the site;
* `allowed_shifts` — the basis N (3 × k) of the coordinate shifts that keep the site on its
  Wyckoff position: the null space of the stacked (R − I) of the site-symmetry operators, put in
  reduced row-echelon form so that each free parameter is one of x, y, z (e.g. ``x, 1/4, z`` →
  shifts of x and z; ``x, x, x`` → one shift applied to all three);
* `adp_constraints` — the basis (6 × k) of the anisotropic displacement tensors U (U11 U22 U33 U12
  U13 U23, CIF convention on a*, b*, c*) allowed at a site: U = A U Aᵀ for every site-symmetry
  operator (A = N⁻¹ R N, N = diag(a*, b*, c*), i.e. β = R β Rᵀ), null space of the stacked
  (M_A − I) in reduced row-echelon form, so each free parameter is one of the Uij (on a 3-fold
  along [111]: U11 = U22 = U33, U12 = U13 = U23 → parameters U11, U12).
"""
from __future__ import annotations

from typing import Sequence

import gemmi
import numpy as np
from scipy.linalg import null_space

#: tolerance (fractional) for a symmetry image to coincide with the site
SITE_TOL = 2e-3


def _rot_tran(op: gemmi.Op) -> tuple[np.ndarray, np.ndarray]:
    return (np.array(op.rot, dtype=float) / op.DEN, np.array(op.tran, dtype=float) / op.DEN)


def site_symmetry_ops(frac: Sequence[float], symops: Sequence[str], tol: float = SITE_TOL
                      ) -> list[np.ndarray]:
    """Rotation parts R of the operators that map ``frac`` onto itself (modulo lattice vectors)."""
    x = np.asarray(frac, dtype=float)
    out = []
    for s in symops:
        rot, tran = _rot_tran(gemmi.Op(s))
        dx = rot @ x + tran - x
        if np.all(np.abs(dx - np.rint(dx)) < tol):
            out.append(rot)
    return out


def _rref_basis(n: np.ndarray) -> np.ndarray:
    """Columns of ``n`` recombined so that the basis is in reduced row-echelon form (pivot = 1)."""
    a = n.T.copy()                       # k × dim
    k = a.shape[0]
    row = 0
    for col in range(a.shape[1]):
        if row >= k:
            break
        piv = row + int(np.argmax(np.abs(a[row:, col])))
        if abs(a[piv, col]) < 1e-8:
            continue
        a[[row, piv]] = a[[piv, row]]
        a[row] /= a[row, col]
        for r in range(k):
            if r != row:
                a[r] -= a[r, col] * a[row]
        row += 1
    a[np.abs(a) < 1e-10] = 0.0
    return a.T


def allowed_shifts(frac: Sequence[float], symops: Sequence[str], tol: float = SITE_TOL) -> np.ndarray:
    """Basis (3 × k, k = 0…3) of the coordinate shifts allowed by the site symmetry of ``frac``."""
    rots = site_symmetry_ops(frac, symops, tol)
    if not rots:
        return np.eye(3)
    m = np.concatenate([r - np.eye(3) for r in rots], axis=0)
    n = null_space(m, rcond=1e-8)
    if n.shape[1] == 0:
        return np.zeros((3, 0))
    return _rref_basis(n)


def coordinate_names(basis: np.ndarray) -> list[str]:
    """Names of the free coordinates of a site ("x", "y", "z" for each pivot of the basis)."""
    return pivot_names(basis, "xyz")


#: the six independent components of a symmetric 3 × 3 tensor, in the CIF order
UIJ_NAMES = ("U11", "U22", "U33", "U12", "U13", "U23")
_UIJ_INDEX = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def _sym6(u6: np.ndarray) -> np.ndarray:
    u = np.zeros((3, 3))
    for v, (i, j) in zip(u6, _UIJ_INDEX):
        u[i, j] = u[j, i] = v
    return u


def adp_constraints(frac: Sequence[float], symops: Sequence[str], reciprocal_lengths: Sequence[float],
                    tol: float = SITE_TOL) -> np.ndarray:
    """Basis (6 × k) of the Uij (U11 U22 U33 U12 U13 U23) allowed by the site symmetry of ``frac``;
    ``reciprocal_lengths``: a*, b*, c* (Å⁻¹) of the cell."""
    nst = np.asarray(reciprocal_lengths, dtype=float)
    rows = []
    for rot in site_symmetry_ops(frac, symops, tol):
        a = rot * nst[None, :] / nst[:, None]                 # N⁻¹ R N
        m = np.array([[u[i, j] for i, j in _UIJ_INDEX]
                      for u in (a @ _sym6(e) @ a.T for e in np.eye(6))]).T
        rows.append(m - np.eye(6))
    if not rows:
        return np.eye(6)
    n = null_space(np.concatenate(rows, axis=0), rcond=1e-8)
    return _rref_basis(n) if n.shape[1] else np.zeros((6, 0))


def pivot_names(basis: np.ndarray, names: Sequence[str]) -> list[str]:
    """Name of the pivot (first component equal to 1) of each column of an RREF basis."""
    return [names[int(np.argmax(np.abs(basis[:, j]) > 0.5))] for j in range(basis.shape[1])]
