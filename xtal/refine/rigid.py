"""Rigid body of a closo-[B12H12]²⁻ icosahedron.

`Icosahedron`: centre (fractional), orientation (three angles, rad; R = Rz(γ)·Ry(β)·Rx(α) acting on
the reference orientation with vertices along (0, ±1, ±φ) and cyclic permutations), B–B edge and
B–H distance (Å); H radial from each B. `fit_icosahedron` places the body on the B and H sites of a
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


def rotation(angles: Sequence[float]) -> np.ndarray:
    a, b, g = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(g), -math.sin(g), 0], [math.sin(g), math.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


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
    #: which angles the site symmetry of the centre lets refine (`symmetry_free_angles`)
    angle_free: list[bool] = field(default_factory=lambda: [True, True, True])

    def cartesian(self) -> tuple[np.ndarray, np.ndarray]:
        """B and H positions (Å) relative to the centre, 12 × 3 each."""
        rot = rotation(self.angles) @ self.base
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
    ico.angle_free = symmetry_free_angles(ico, phase)
    return ico


def symmetry_free_angles(ico: Icosahedron, phase: Any, tol: float = 1e-6) -> list[bool]:
    """Which of the three angles can turn the body without breaking the site symmetry of its
    centre (the rotated vertex set must still map onto itself under every site-symmetry op)."""
    from xtal.refine.constraints import site_symmetry_ops

    orth = phase.cell.orthogonalization_matrix()
    ops = [orth @ r @ np.linalg.inv(orth) for r in site_symmetry_ops(ico.centre, phase.symops)]
    free = []
    for k in range(3):
        saved = ico.angles.copy()
        ico.angles[k] += 1e-3
        b, _ = ico.cartesian()
        ico.angles = saved
        worst = max(float(np.max(np.min(np.linalg.norm((b @ r.T)[:, None] - b[None], axis=2), axis=1)))
                    for r in ops) if ops else 0.0
        free.append(worst < tol)
    return free


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
