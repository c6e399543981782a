"""Interatomic distance restraints: extra least-squares rows (d_target − d) / σ.

A restraint names two sites of one phase; at set-up the symmetry image of the second site
nearest to the first is chosen (space-group operator + lattice translation, gemmi ops) and kept,
so the restrained distance follows both sites as they refine. Rows and their derivatives (forward
differences over the refined coordinate and rigid-body parameters) are added by `engine`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gemmi
import numpy as np


@dataclass
class DistanceRestraint:
    phase: int
    site_a: int
    site_b: int
    rot: np.ndarray
    tran: np.ndarray
    target: float
    sigma: float
    label: str


def _image(frac_a: np.ndarray, frac_b: np.ndarray, symops: Sequence[str], orth: np.ndarray):
    best = None
    for s in symops:
        op = gemmi.Op(s)
        rot = np.array(op.rot, dtype=float) / op.DEN
        tran = np.array(op.tran, dtype=float) / op.DEN
        y = rot @ frac_b + tran
        shift = -np.rint(y - frac_a)
        d = float(np.linalg.norm(orth @ (y + shift - frac_a)))
        if d > 1e-4 and (best is None or d < best[0]):
            best = (d, rot, tran + shift)
    return best


def build_restraints(phases: Sequence[Any], specs: Sequence[tuple]) -> list[DistanceRestraint]:
    """``specs``: (phase id, label A, label B, target Å, σ Å) → restraints on the nearest image."""
    out = []
    ids = [ps.id for ps in phases]
    for pid, la, lb, target, sigma in specs:
        i = ids.index(str(pid))
        ps = phases[i]
        labels = [s.label for s in ps.sites]
        a, b = labels.index(la), labels.index(lb)
        orth = ps.phase.cell.orthogonalization_matrix()
        _, rot, tran = _image(ps.sites[a].frac(), ps.sites[b].frac(), ps.phase.symops, orth)
        out.append(DistanceRestraint(i, a, b, rot, tran, float(target), float(sigma), f"{la}–{lb}"))
    return out


def distances(restraints: Sequence[DistanceRestraint], phases: Sequence[Any], cells: Sequence[Any]
              ) -> np.ndarray:
    """Current restrained distances (Å)."""
    from xtal.structures.model import Cell

    out = np.zeros(len(restraints))
    for k, r in enumerate(restraints):
        ps = phases[r.phase]
        orth = Cell(*(float(v) for v in cells[r.phase])).orthogonalization_matrix()
        xa = ps.sites[r.site_a].frac()
        xb = r.rot @ ps.sites[r.site_b].frac() + r.tran
        out[k] = float(np.linalg.norm(orth @ (xb - xa)))
    return out
