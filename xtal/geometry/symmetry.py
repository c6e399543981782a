"""Symmetry for the coordination analysis: CIF symmetry codes, operators in the CIF's order, the
images of every site (`xtal.symmetry.expand_sites`), neighbour search and distance s.u."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import gemmi
import numpy as np

from xtal.errors import GeometryError
from xtal.structures import Phase
from xtal.symmetry import expand_sites, op_arrays

__all__ = ["parse_symop_code", "format_symop_code", "bond_from_code"]


def parse_symop_code(code: str | None) -> tuple[int, tuple[int, int, int]]:
    """``'2_656'`` -> (2, (1, 0, 1)); ``'.'``/``None``/``'1_555'`` -> (1, (0, 0, 0)).

    Operator numbers are 1-based; translations are the CIF ``klm`` digits minus 5. Also accepts
    ``'2'`` (no translation) and ``'2_6_5_6'``-style (for translations beyond ±4).
    """
    if code is None:
        return 1, (0, 0, 0)
    c = code.strip()
    if c in (".", "?", ""):
        return 1, (0, 0, 0)
    parts = c.split("_")
    try:
        n = int(parts[0])
        if len(parts) == 1:
            return n, (0, 0, 0)
        if len(parts) == 2 and len(parts[1]) == 3:
            return n, tuple(int(ch) - 5 for ch in parts[1])  # type: ignore[return-value]
        if len(parts) == 4:
            return n, tuple(int(p) - 5 for p in parts[1:])  # type: ignore[return-value]
    except ValueError:
        pass
    raise ValueError(f"not a CIF symmetry code: {code!r}")


def format_symop_code(op_number: int, translation: Sequence[int]) -> str:
    """(2, (1, 0, 1)) -> ``'2_656'``; identity without translation -> ``'.'``."""
    t = [int(v) for v in translation]
    if op_number == 1 and t == [0, 0, 0]:
        return "."
    if all(0 <= v + 5 <= 9 for v in t):
        return f"{op_number}_{''.join(str(v + 5) for v in t)}"
    return f"{op_number}_" + "_".join(str(v + 5) for v in t)


# ----------------------------------------------------------------------------------------------
# operators (CIF order), images, neighbour search, distance s.u.
# ----------------------------------------------------------------------------------------------
def _op_key(op: gemmi.Op) -> tuple:
    """Operator identity modulo lattice translations (no in-place wrapping of ``op``)."""
    return (tuple(tuple(r) for r in op.rot), tuple(t % op.DEN for t in op.tran))


def _raw_ops(phase: Phase, warnings: list[str]) -> tuple[list[gemmi.Op], str]:
    """Operators in the CIF's order as written (when they match the phase's group), else Phase.symops."""
    phase_ops = [gemmi.Op(s) for s in phase.symops]
    if phase.symops_as_written:
        try:
            ops = [gemmi.Op(t) for t in phase.symops_as_written]
        except (RuntimeError, ValueError):
            return phase_ops, "Phase.symops"
        unique: list[gemmi.Op] = []
        seen = set()
        for o in ops:
            key = _op_key(o)
            if key not in seen:
                seen.add(key)
                unique.append(o)
        if seen == {_op_key(o) for o in phase_ops} and len(unique) == len(phase_ops):
            return unique, f"CIF {phase.symops_tag} (as written)"
        warnings.append("the CIF's operator list does not match the phase's space group; symmetry "
                        "codes use the order of Phase.symops")
    return phase_ops, "Phase.symops"


def _param_groups(phase: Phase) -> list[tuple[list[int], float]]:
    """Independent cell parameters with their s.u.: [([indices], su)] (a=b=c tied by symmetry)."""
    su = list(phase.cell.su) + [None] * (6 - len(phase.cell.su))
    num = phase.spacegroup_number or 0
    c = phase.cell
    groups: list[list[int]]
    if 195 <= num <= 230:
        groups = [[0, 1, 2]]
    elif 75 <= num <= 142 or (143 <= num <= 194 and abs(c.gamma - 120) < 1e-3):
        groups = [[0, 1], [2]]
    elif 143 <= num <= 194:  # rhombohedral axes
        groups = [[0, 1, 2], [3, 4, 5]]
    else:
        groups = [[0], [1], [2]]
    covered = {i for g in groups for i in g}
    groups += [[i] for i in range(6) if i not in covered]
    out = []
    for g in groups:
        s = next((su[i] for i in g if su[i]), None)
        if s:
            out.append((g, float(s)))
    return out


#: calc flags of constrained (riding/calculated) atoms: their distances get no s.u. (as in SHELXL).
_RIDING_FLAGS = frozenset({"calc", "c", "r", "riding"})


class _Sym:
    """Operators, per-site images and neighbour search for one phase."""

    def __init__(self, phase: Phase, ops: list[gemmi.Op]):
        self.phase = phase
        self.ops = ops
        self.rot, self.tra = op_arrays(ops)
        self.orth = phase.cell.orthogonalization_matrix()
        self.sites = phase.sites
        self.elements = [s.element for s in phase.sites]
        recip_len = np.linalg.norm(np.linalg.inv(self.orth), axis=1)  # |a*|, |b*|, |c*|
        self.recip_len = recip_len
        images = expand_sites(phase.cell, phase.sites, ops)
        self.img_site = images.site_index
        self.img_op = images.op_index
        self.img_frac = images.op_frac

    def search(self, x: np.ndarray, cutoff: np.ndarray | float, mask: np.ndarray | None = None
               ) -> list[tuple[int, int, tuple[int, int, int], np.ndarray, float]]:
        """Images within ``cutoff`` of fractional point x: [(site, op_index, T, frac, distance)].

        ``cutoff`` is a scalar or one value per site. Sorted by distance.
        """
        sel = np.arange(len(self.img_site)) if mask is None else np.nonzero(mask[self.img_site])[0]
        if len(sel) == 0:
            return []
        cut_site = np.broadcast_to(np.asarray(cutoff, dtype=float), (len(self.sites),))
        cut = cut_site[self.img_site[sel]]
        cmax = float(np.max(cut))
        y = self.img_frac[sel]
        d = y - x
        base = -np.round(d)
        k = np.ceil(cmax * self.recip_len).astype(int) + 1
        shifts = np.array(list(itertools.product(*(range(-kk, kk + 1) for kk in k))), dtype=float)
        v = d[None, :, :] + base[None, :, :] + shifts[:, None, :]
        dist = np.linalg.norm(v @ self.orth.T, axis=2)
        hit_s, hit_i = np.nonzero(dist < cut[None, :])
        out = []
        for s_, i_ in zip(hit_s, hit_i):
            idx = sel[i_]
            t = base[i_] + shifts[s_]
            out.append((int(self.img_site[idx]), int(self.img_op[idx]),
                        tuple(int(round(q)) for q in t), self.img_frac[idx] + t, float(dist[s_, i_])))
        out.sort(key=lambda r: (r[4], r[0], r[1]))
        return out

    def position(self, site: int, op: int, t: Sequence[int]) -> np.ndarray:
        x = np.array(self.sites[site].frac, dtype=float)
        return self.rot[op] @ x + self.tra[op] + np.asarray(t, dtype=float)

    def distance_su(self, i: int, j: int, op: int, t: Sequence[int]) -> tuple[float, float | None]:
        """Distance (Å) from site i (identity) to image (op, t) of site j, and its s.u.

        σ²(d) = Σ_p (∂d/∂p)² σ²(p) over the independent parameters: fractional x, y, z of both sites
        (one set when i == j: the same coordinate appears at both ends) and the independent cell
        parameters (a = b = c tied where the lattice requires it). No covariance terms.
        """
        si, sj = self.sites[i], self.sites[j]
        xi = np.array(si.frac, dtype=float)
        y = self.position(j, op, t)
        riding = any((s.calc_flag or "").lower() in _RIDING_FLAGS and all(v is None for v in s.frac_su)
                     for s in (si, sj))
        df = y - xi
        r = self.orth @ df
        dist = float(np.linalg.norm(r))
        if dist < 1e-9:
            return dist, None
        g = self.orth.T @ r / dist                 # ∂d/∂(Δf)
        grad_j = self.rot[op].T @ g                # ∂d/∂x_j
        grad_i = -g                                # ∂d/∂x_i
        var = 0.0
        any_su = False
        if i == j:
            comb = grad_i + grad_j
            for k in range(3):
                s = si.frac_su[k]
                if s:
                    any_su = True
                    var += (comb[k] * s) ** 2
        else:
            for grad, site in ((grad_i, si), (grad_j, sj)):
                for k in range(3):
                    s = site.frac_su[k]
                    if s:
                        any_su = True
                        var += (grad[k] * s) ** 2
        groups = _param_groups(self.phase)
        if groups:
            any_su = True
            p0 = list(self.phase.cell.parameters)
            for idx, s in groups:
                h = 1e-4
                pp, pm = list(p0), list(p0)
                for q in idx:
                    pp[q] += h
                    pm[q] -= h
                dp = np.linalg.norm(np.array(gemmi.UnitCell(*pp).orth.mat.tolist()) @ df)
                dm = np.linalg.norm(np.array(gemmi.UnitCell(*pm).orth.mat.tolist()) @ df)
                var += ((dp - dm) / (2 * h) * s) ** 2
        return dist, (math.sqrt(var) if any_su and not riding else None)

    def coordinate_gradients(self, i: int, j: int, op: int, t: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """∂d/∂x_i and ∂d/∂x_j (Å per unit fractional coordinate) of the distance i → image (op, t) of j."""
        xi = np.array(self.sites[i].frac, dtype=float)
        r = self.orth @ (self.position(j, op, t) - xi)
        g = self.orth.T @ r / np.linalg.norm(r)
        return -g, self.rot[op].T @ g

    def code(self, op: int, t: Sequence[int]) -> str:
        return format_symop_code(op + 1, t)


def bond_from_code(phase: Phase, label1: str, label2: str, code: str | None,
                   _sym: _Sym | None = None) -> tuple[float, float | None]:
    """Distance and s.u. (Å) between site ``label1`` and the image ``code`` of site ``label2``."""
    sym = _sym or _Sym(phase, _raw_ops(phase, [])[0])
    idx = {s.label: k for k, s in enumerate(phase.sites)}
    if label1 not in idx or label2 not in idx:
        raise GeometryError(f"unknown site label {label1 if label1 not in idx else label2!r}",
                            path=phase.provenance.file)
    n, t = parse_symop_code(code)
    if not 1 <= n <= len(sym.ops):
        raise GeometryError(f"symmetry code {code!r} names operator {n} but the list has {len(sym.ops)}",
                            path=phase.provenance.file)
    return sym.distance_su(idx[label1], idx[label2], n - 1, t)
