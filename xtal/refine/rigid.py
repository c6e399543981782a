"""Rigid body of a closo-[B12H12]²⁻ icosahedron.

`Icosahedron`: centre (fractional), orientation (three angles θ_k, rad: the rotation by the vector
Σ θ_k e_k acting on the fitted orientation, with e_k the body's Cartesian ``axes``), B–B edge and
B–H distance (Å); H radial from each B. The axes come from the site symmetry of the centre
(`symmetry_axes`): a turn about e is compatible with a site-symmetry operation R (Cartesian) iff the
axial vector e is invariant, det(R)·R e = e; the first axes span that invariant space (the angles
that may refine), the others complete an orthonormal basis and stay fixed at 0. Nothing is
hand-coded per space group: at a −3 site (α-Li2B12H12, Pa-3) one angle about the local [111]
refines, at m-3 (K2B12H12, Fm-3) none, on a general position all three. `fit_icosahedron` places the body on the B and H sites of a
phase (orientation by a Kabsch fit to the B atoms found around the centre, distances averaged).
In a refinement (`rietveld(..., rigid_bodies=[...])`) the body's parameters replace the
coordinates of the sites it covers: each asymmetric-unit site follows the vertex it sits on (the
shift is projected onto the site's symmetry-allowed shifts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

PHI = (1.0 + math.sqrt(5.0)) / 2.0


def _reference_vertices() -> np.ndarray:
    v = []
    for s1 in (1, -1):
        for s2 in (1, -1):
            v += [(0, s1, s2 * PHI), (s1, s2 * PHI, 0), (s2 * PHI, 0, s1)]
    return np.array(v, dtype=float) / 2.0        # edge length 1


REFERENCE = _reference_vertices()


def rotation(rotvec: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis × angle, rad; Rodrigues)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(rotvec, dtype=float)).as_matrix()


@dataclass
class Icosahedron:
    """A B12H12 icosahedron; ``b_sites``/``h_sites``: asymmetric-unit labels it carries, with the
    vertex each follows (set by `fit_icosahedron`)."""

    centre: np.ndarray
    angles: np.ndarray
    d_bb: float
    d_bh: float
    b_sites: dict[str, int] = field(default_factory=dict)
    h_sites: dict[str, int] = field(default_factory=dict)
    base: np.ndarray = field(default_factory=lambda: np.eye(3))   # orientation found by the fit
    #: Cartesian rotation axes (columns) of the three angles (`symmetry_axes`)
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))
    #: which angles the site symmetry of the centre lets refine (`symmetry_axes`)
    angle_free: list[bool] = field(default_factory=lambda: [True, True, True])
    #: Hermann–Mauguin symbol (or order) of the site symmetry of the centre
    site_symmetry: str = "1"

    def rotation(self) -> np.ndarray:
        """The body's orientation: rotation by Σ θ_k e_k after the fitted one."""
        return rotation(self.axes @ np.asarray(self.angles, dtype=float)) @ self.base

    def cartesian(self) -> tuple[np.ndarray, np.ndarray]:
        """B and H positions (Å) relative to the centre, 12 × 3 each."""
        rot = self.rotation()
        b = REFERENCE @ rot.T * self.d_bb
        u = b / np.linalg.norm(b, axis=1, keepdims=True)
        return b, b + u * self.d_bh

    def site_positions(self, orth: np.ndarray) -> dict[str, np.ndarray]:
        """Fractional position of every carried site (``orth``: columns a, b, c in Å)."""
        b, h = self.cartesian()
        inv = np.linalg.inv(orth)
        out = {lab: self.centre + inv @ b[k] for lab, k in self.b_sites.items()}
        out.update({lab: self.centre + inv @ h[k] for lab, k in self.h_sites.items()})
        return out


def _kabsch(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Rotation R minimising |R p_i − q_i|."""
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def fit_icosahedron(phase: Any, centre: Sequence[float], b_labels: Sequence[str],
                    h_labels: Sequence[str] = ()) -> Icosahedron:
    """The icosahedron on the B (and H) sites of ``phase`` around ``centre`` (fractional)."""
    orth = phase.cell.orthogonalization_matrix()
    c = np.asarray(centre, dtype=float)
    imgs = phase.cell_images()
    frac = np.asarray(imgs.frac, dtype=float)
    labels = [phase.sites[i].label for i in imgs.site_index]
    d = frac - c
    d -= np.rint(d)
    cart = d @ orth.T
    r = np.linalg.norm(cart, axis=1)
    is_b = np.array([lab in b_labels for lab in labels])
    order = np.argsort(np.where(is_b, r, np.inf))[:12]
    bpos = cart[order]
    d_bb = float(np.median(np.linalg.norm(bpos[:, None] - bpos[None], axis=2)[
        np.triu_indices(12, 1)][:30]))
    d_bb = float(np.mean(np.linalg.norm(bpos, axis=1))) / np.linalg.norm(REFERENCE[0])
    ref = REFERENCE * d_bb
    # correspondence: align one vertex and a neighbour, then match by nearest vertex, then Kabsch
    rot = np.eye(3)
    for _ in range(2):
        for cand in _frames(bpos, ref):
            match = np.argmin(np.linalg.norm((ref @ cand.T)[:, None] - bpos[None], axis=2), axis=0)
            if len(set(match)) == 12:
                rot = _kabsch(ref[match], bpos)
                break
    ico = Icosahedron(c, np.zeros(3), d_bb, 1.0, base=rot)
    b, _ = ico.cartesian()
    inv = np.linalg.inv(orth)
    for lab in b_labels:
        s = next(x for x in phase.sites if x.label == lab)
        ico.b_sites[lab] = _nearest(b, s.frac, c, orth)
    h_r = []
    for lab in h_labels:
        s = next(x for x in phase.sites if x.label == lab)
        k = _nearest(b, s.frac, c, orth)
        ico.h_sites[lab] = k
        dv = np.asarray(s.frac) - c
        dv -= np.rint(dv)
        h_r.append(np.linalg.norm(orth @ dv) - np.linalg.norm(b[k]))
    if h_r:
        ico.d_bh = float(np.mean(h_r))
    del inv
    ico.axes, ico.angle_free, ico.site_symmetry = symmetry_axes(c, phase)
    return ico


def symmetry_axes(centre: Sequence[float], phase: Any) -> tuple[np.ndarray, list[bool], str]:
    """Rotation axes of a rigid body centred at ``centre`` allowed by its site symmetry.

    Returns (axes, free, symbol): ``axes`` 3 × 3 Cartesian orthonormal columns, the first ones a
    basis of the axial vectors e with det(R)·R e = e for every site-symmetry rotation R of the
    space group (gemmi operators, `constraints.site_symmetry_ops`), the others completing the
    basis; ``free[k]``: angle k may refine; ``symbol``: Hermann–Mauguin point group of the site."""
    from scipy.linalg import null_space

    from xtal.refine.constraints import site_symmetry_ops

    orth = phase.cell.orthogonalization_matrix()
    rots = site_symmetry_ops(centre, phase.symops)
    cart = [np.linalg.det(r) * (orth @ r @ np.linalg.inv(orth)) for r in rots]
    if cart:
        allowed = null_space(np.concatenate([r - np.eye(3) for r in cart]), rcond=1e-8)
    else:
        allowed = np.eye(3)
    if allowed.shape[1] == 3:
        allowed = np.eye(3)
    for k in range(allowed.shape[1]):       # a readable sign: first non-zero component positive
        col = allowed[:, k]
        if col[np.argmax(np.abs(col) > 1e-8)] < 0:
            allowed[:, k] = -col
    rest = null_space(allowed.T) if allowed.shape[1] else np.eye(3)
    axes = np.concatenate([allowed, rest], axis=1)
    return axes, [k < allowed.shape[1] for k in range(3)], _point_group_symbol(rots)


def _point_group_symbol(rots: Sequence[np.ndarray]) -> str:
    import gemmi

    if not rots:
        return "1"
    ops = []
    for r in rots:
        op = gemmi.Op()
        op.rot = [[int(round(v * op.DEN)) for v in row] for row in r]
        ops.append(op)
    sg = gemmi.find_spacegroup_by_ops(gemmi.GroupOps(ops))
    return sg.point_group_hm() if sg is not None else f"order {len(rots)}"


def axis_direction(axis: np.ndarray, orth: np.ndarray) -> str:
    """A Cartesian axis as a direct-lattice direction [u v w] (integers when it is one)."""
    uvw = np.linalg.solve(orth, axis)
    uvw = uvw / np.max(np.abs(uvw))
    for n in range(1, 7):
        if np.allclose(uvw * n, np.rint(uvw * n), atol=1e-4):
            return "[" + " ".join(str(int(v)) for v in np.rint(uvw * n)) + "]"
    return "[" + " ".join(f"{v:.3f}" for v in uvw) + "]"


def _nearest(b: np.ndarray, frac: Sequence[float], c: np.ndarray, orth: np.ndarray) -> int:
    dv = np.asarray(frac, dtype=float) - c
    dv -= np.rint(dv)
    x = orth @ dv
    u = x / np.linalg.norm(x)
    return int(np.argmax(b @ u))


def _frames(bpos: np.ndarray, ref: np.ndarray):
    """Candidate rotations taking a reference vertex + neighbour onto an observed pair."""
    def frame(p, q):
        e1 = p / np.linalg.norm(p)
        e2 = q - e1 * (q @ e1)
        e2 /= np.linalg.norm(e2)
        return np.stack([e1, e2, np.cross(e1, e2)], axis=1)

    dref = np.linalg.norm(ref - ref[0], axis=1)
    nbr = [k for k in np.argsort(dref)[1:6]]
    dobs = np.linalg.norm(bpos - bpos[0], axis=1)
    j = int(np.argsort(dobs)[1])
    fo = frame(bpos[0], bpos[j])
    for k in nbr:
        yield fo @ frame(ref[0], ref[k]).T
