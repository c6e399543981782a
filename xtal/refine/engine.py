"""The least-squares engine shared by Rietveld and Le Bail: parameters, model, Jacobian, solve.

`Refinement` holds the prepared data, the phases (`model.PhaseSetup`), the radiation and a flat
list of `Param`. ``evaluate`` maps the refined values to the calculated pattern and (optionally) its
Jacobian; ``solve`` runs ``scipy.optimize.least_squares`` (trust-region reflective, bounds on the
profile) on the weighted residuals; ``statistics`` gives Rwp, Rp, Rexp, χ², the covariance scaled
by χ², the correlation matrix, the condition of the normal matrix and which parameters the data
cannot determine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from xtal.refine.model import (FD_STEP, PhaseSetup, apply_bodies, chebyshev_basis, fmult_of,
                               phase_peaks, po_factor, profile_matrix, shape_jacobian)

GLOBAL_KINDS = ("zero", "displacement", "U", "V", "W", "eta")
#: |correlation| above which a pair of parameters is flagged
CORRELATION_LIMIT = 0.95
#: a parameter whose share of the near-null eigenvectors of the scaled normal matrix (eigenvalue
#: below this fraction of the largest) exceeds ``NULL_SHARE`` is not determined by the data
NULL_EIGEN_FRACTION = 1e-7
NULL_SHARE = 0.1


@dataclass
class Param:
    """One parameter: ``kind`` says what it moves, ``phase``/``index``/``sub`` where."""

    name: str
    kind: str
    value: float
    refine: bool = True
    phase: int | None = None
    index: int = 0
    sub: int = 0
    lo: float = -np.inf
    hi: float = np.inf


@dataclass
class SolveReport:
    """How a `Refinement.solve` ended: status 1 converged (relative cost change < ftol), 2 no
    further decrease possible, 0 iteration limit."""

    status: int
    iterations: int
    nfev: int
    cost: float


class Refinement:
    """Data + phases + parameters; ``evaluate`` gives calc (and J), ``solve`` refines."""

    def __init__(self, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, phases: Sequence[PhaseSetup],
                 radiation: Any, params: list[Param], n_background: int):
        self.x, self.y, self.sigma = x, y, sigma
        self.w_sqrt = 1.0 / sigma
        self.phases = list(phases)
        self.rad = radiation
        self.params = params
        self.B = chebyshev_basis(x, n_background)
        self.xr = (float(x[0]), float(x[-1]))
        self.nfev = 0
        self.restraints: list = []          # `restraints.DistanceRestraint`, extra rows

    # --- parameter bookkeeping ----------------------------------------------------------------
    @property
    def free(self) -> list[int]:
        return [i for i, p in enumerate(self.params) if p.refine]

    def vector(self) -> np.ndarray:
        return np.array([self.params[i].value for i in self.free])

    def set_vector(self, theta: np.ndarray) -> None:
        for i, v in zip(self.free, theta):
            self.params[i].value = float(v)

    def find(self, kind: str, phase: int | None = None, index: int | None = None) -> list[int]:
        return [i for i, p in enumerate(self.params) if p.kind == kind and p.phase == phase
                and (index is None or p.index == index)]

    def state(self) -> dict[str, Any]:
        """Globals, background and per-phase (scale, q, po, sites) from the current values."""
        g = {k: 0.0 for k in GLOBAL_KINDS}
        bg = np.zeros(self.B.shape[1])
        ph = [{"scale": 1.0, "q": np.zeros(ps.lattice.n_params), "po": 1.0} for ps in self.phases]
        for p in self.params:
            if p.kind in GLOBAL_KINDS:
                g[p.kind] = p.value
            elif p.kind == "bg":
                bg[p.index] = p.value
            elif p.kind == "scale":
                ph[p.phase]["scale"] = p.value
            elif p.kind == "cell":
                ph[p.phase]["q"][p.index] = p.value
            elif p.kind == "po":
                ph[p.phase]["po"] = p.value
            elif p.kind == "xyz":
                self.phases[p.phase].sites[p.index].u[p.sub] = p.value
            elif p.kind == "uiso":
                self.phases[p.phase].sites[p.index].uiso = p.value
            elif p.kind == "uij":
                self.phases[p.phase].sites[p.index].v[p.sub] = p.value
            elif p.kind == "occ":
                self.phases[p.phase].sites[p.index].occ = p.value
            elif p.kind == "rb":
                body = self.phases[p.phase].bodies[p.index]
                if p.sub < 3:
                    body.angles[p.sub] = p.value
                elif p.sub == 3:
                    body.d_bb = p.value
                else:
                    body.d_bh = p.value
        for i, ps in enumerate(self.phases):
            apply_bodies(ps, ps.lattice.cell(ph[i]["q"]))
        return {"g": g, "bg": bg, "ph": ph}

    # --- model ------------------------------------------------------------------------------
    def phase_intensities(self, i: int, cell) -> np.ndarray:
        ps = self.phases[i]
        if ps.intensities is not None:
            return ps.intensities
        return fmult_of(ps, cell, ps.sites)

    def evaluate(self, jac: bool = False) -> dict[str, Any]:
        """Calculated pattern (and the Jacobian over the refined parameters) at the current values."""
        self.nfev += 1
        st = self.state()
        g = st["g"]
        calc = self.B @ st["bg"]
        free = self.free
        col = {pi: j for j, pi in enumerate(free)}
        J = np.zeros((self.x.size, len(free))) if jac else None
        per_phase, cache = [], []
        for i, ps in enumerate(self.phases):
            phs = st["ph"][i]
            cell = ps.lattice.cell(phs["q"])
            inten = self.phase_intensities(i, cell)
            po = po_factor(ps, phs["po"], cell)
            pk = phase_peaks(ps, phs["q"], g, self.rad, self.xr)
            phi = profile_matrix(self.x, pk, g["eta"])
            unit = inten[pk.ridx] * po[pk.ridx] * pk.lpw
            prof = phi @ unit
            per_phase.append(phs["scale"] * prof)
            calc = calc + phs["scale"] * prof
            cache.append((cell, inten, po, pk, phi, unit, prof))
            if jac:
                self._phase_jacobian(J, col, i, phs, g, cache[-1])
        if jac:
            for pi in self.find("bg"):
                if pi in col:
                    J[:, col[pi]] = self.B[:, self.params[pi].index]
        return {"calc": calc, "J": J, "per_phase": per_phase, "cache": cache, "state": st}

    def _phase_jacobian(self, J, col, i, phs, g, cached) -> None:
        cell, inten, po, pk, phi, unit, prof = cached
        ps = self.phases[i]
        s = phs["scale"]
        for pi in self.find("scale", i):
            if pi in col:
                J[:, col[pi]] += prof
        need_shape = any(pi in col for pi in [j for j, p in enumerate(self.params)
                         if p.kind in GLOBAL_KINDS or (p.kind == "cell" and p.phase == i)])
        if need_shape:
            sh = shape_jacobian(self.x, pk, s * unit, g["eta"])
            for k, kind in enumerate(("zero", "displacement")):
                for pi in self.find(kind):
                    if pi in col:
                        J[:, col[pi]] += sh["dcentre"][k]
            for pi in self.find("cell", i):
                if pi in col:
                    J[:, col[pi]] += sh["dcentre"][2 + self.params[pi].index]
            for k, kind in enumerate("UVW"):
                for pi in self.find(kind):
                    if pi in col:
                        J[:, col[pi]] += sh["dfwhm"][k]
            for pi in self.find("eta"):
                if pi in col:
                    J[:, col[pi]] += sh["eta"]
        for pi in self.find("po", i):
            if pi in col:
                h = FD_STEP["po"]
                dpo = (po_factor(ps, phs["po"] + h, cell) - po) / h
                J[:, col[pi]] += s * (phi @ (inten[pk.ridx] * dpo[pk.ridx] * pk.lpw))
        if ps.intensities is None:
            self._structure_jacobian(J, col, i, s, cell, inten, po, pk, phi)

    def _structure_jacobian(self, J, col, i, s, cell, inten, po, pk, phi) -> None:
        """Forward differences of mult·|F|² w.r.t. coordinates, Uiso, Uij and occupancies."""
        ps = self.phases[i]
        for pi, p in enumerate(self.params):
            if pi not in col or p.phase != i or p.kind not in ("xyz", "uiso", "uij", "occ", "rb"):
                continue
            h = FD_STEP[p.kind]
            if p.kind == "rb":          # a body moves several sites: re-apply the whole state
                p.value += h
                self.state()
                d_inten = (fmult_of(ps, cell, ps.sites) - inten) / h
                p.value -= h
                self.state()
                J[:, col[pi]] += s * (phi @ (d_inten[pk.ridx] * po[pk.ridx] * pk.lpw))
                continue
            site = ps.sites[p.index]
            saved = (site.u.copy(), site.uiso, site.v.copy(), site.occ)
            if p.kind == "xyz":
                site.u[p.sub] += h
            elif p.kind == "uiso":
                site.uiso += h
            elif p.kind == "uij":
                site.v[p.sub] += h
            else:
                site.occ += h
            d_inten = (fmult_of(ps, cell, ps.sites) - inten) / h
            site.u, site.uiso, site.v, site.occ = saved
            J[:, col[pi]] += s * (phi @ (d_inten[pk.ridx] * po[pk.ridx] * pk.lpw))

    # --- solve ------------------------------------------------------------------------------
    def _weighted(self, jac: bool):
        ev = self.evaluate(jac=jac)
        r = (self.y - ev["calc"]) * self.w_sqrt
        J = ev["J"] * self.w_sqrt[:, None] if jac else None
        if self.restraints:
            rr, Jr = self._restraint_rows(ev["state"], jac)
            r = np.concatenate([r, rr])
            J = np.concatenate([J, Jr]) if jac else None
        return r, J

    def _cells(self, st: dict) -> list:
        return [ps.lattice.cell(st["ph"][i]["q"]) for i, ps in enumerate(self.phases)]

    def _restraint_rows(self, st: dict, jac: bool):
        """(target − d)/σ of the distance restraints and, with ``jac``, ∂d/∂θ / σ (forward
        differences over the coordinate and rigid-body parameters)."""
        from xtal.refine.restraints import distances

        sig = np.array([r.sigma for r in self.restraints])
        d0 = distances(self.restraints, self.phases, self._cells(st))
        rows = (np.array([r.target for r in self.restraints]) - d0) / sig
        if not jac:
            return rows, None
        J = np.zeros((len(self.restraints), len(self.free)))
        for j, pi in enumerate(self.free):
            p = self.params[pi]
            if p.kind not in ("xyz", "rb"):
                continue
            h = FD_STEP[p.kind]
            p.value += h
            st2 = self.state()
            J[:, j] = (distances(self.restraints, self.phases, self._cells(st2)) - d0) / h / sig
            p.value -= h
        self.state()
        return rows, J

    def solve(self, max_iter: int = 40, ftol: float = 1e-6) -> SolveReport | None:
        """Levenberg–Marquardt (Marquardt's scaling, normal equations of the few parameters,
        bounds by clipping) on the free parameters; returns a `SolveReport`."""
        theta = self.vector()
        if theta.size == 0:
            return None
        lo = np.array([self.params[i].lo for i in self.free])
        hi = np.array([self.params[i].hi for i in self.free])
        theta = np.clip(theta, lo, hi)
        self.set_vector(theta)
        r, J = self._weighted(True)
        cost = float(r @ r)
        lam, it, status, small = 1e-3, 0, 0, 0
        while it < max_iter:
            it += 1
            A, grad = J.T @ J, J.T @ r
            d = np.sqrt(np.clip(np.diag(A), 1e-300, None))
            seen = d > 1e-12 * float(d.max())   # a parameter the data do not see at all is not moved
            step = np.zeros_like(theta)
            An = A[np.ix_(seen, seen)] / np.outer(d[seen], d[seen])
            try:
                step[seen] = np.linalg.solve(An + lam * np.eye(int(seen.sum())), grad[seen] / d[seen]) / d[seen]
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            new = np.clip(theta + step, lo, hi)
            self.set_vector(new)
            r2, _ = self._weighted(False)
            cost2 = float(r2 @ r2)
            if cost2 < cost:
                rel = (cost - cost2) / max(cost, 1e-300)
                theta, cost = new, cost2
                r, J = self._weighted(True)
                lam = max(lam / 5.0, 1e-9)
                small = small + 1 if rel < ftol else 0
                if small >= 2:          # two accepted steps in a row that no longer gain
                    status = 1
                    break
            else:
                self.set_vector(theta)
                lam *= 10.0
                if lam > 1e8:
                    status = 2        # no step lowers the cost: at the minimum within noise
                    break
        self.set_vector(theta)
        return SolveReport(status=status, iterations=it, nfev=self.nfev, cost=cost)

    def linear_start(self) -> float:
        """Scales and background by linear least squares at the current non-linear values;
        returns the weighted cost Σ w r² they give."""
        ev = self.evaluate()
        cols = [pp / max(self._scale(i), 1e-300) for i, pp in enumerate(ev["per_phase"])]
        A = np.concatenate([np.stack(cols, axis=1), self.B], axis=1) if cols else self.B
        Aw, yw = A * self.w_sqrt[:, None], self.y * self.w_sqrt
        N = Aw.T @ Aw                     # normal equations: a few columns, many points
        dn = np.sqrt(np.clip(np.diag(N), 1e-300, None))
        coef = np.linalg.solve(N / np.outer(dn, dn) + 1e-12 * np.eye(len(dn)), (Aw.T @ yw) / dn) / dn
        for i in range(len(cols)):
            for pi in self.find("scale", i):
                self.params[pi].value = float(max(coef[i], 1e-12))
        for pi in self.find("bg"):
            self.params[pi].value = float(coef[len(cols) + self.params[pi].index])
        r = yw - Aw @ np.concatenate([np.maximum(coef[:len(cols)], 1e-12), coef[len(cols):]])
        return float(r @ r)

    def _scale(self, i: int) -> float:
        idx = self.find("scale", i)
        return self.params[idx[0]].value if idx else 1.0

    # --- statistics -------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """Agreement factors, covariance (scaled by χ²), correlations, determinability, shift/s.u."""
        ev = self.evaluate(jac=True)
        r = (self.y - ev["calc"]) * self.w_sqrt
        n, p = self.x.size, len(self.free)
        dof = max(n - p, 1)
        chi2 = float(r @ r) / dof
        wy = float(np.sum((self.y * self.w_sqrt) ** 2))
        # Bérar & Lelann (J. Appl. Cryst. 24 (1991) 1): serially correlated residuals make the
        # χ²-scaled s.u. too small by √((1+ρ)/(1−ρ)), ρ = lag-1 autocorrelation of the residuals
        rho = float(np.clip(np.sum(r[1:] * r[:-1]) / max(float(r @ r), 1e-300), 0.0, 0.99))
        out = {"ev": ev, "rwp": math.sqrt(float(r @ r) / wy), "rexp": math.sqrt(dof / wy),
               "berar_lelann": math.sqrt((1.0 + rho) / (1.0 - rho)),
               "rp": float(np.sum(np.abs(self.y - ev["calc"])) / np.sum(np.abs(self.y))),
               "chi2": chi2, "n_points": n, "n_params": p}
        Jw = ev["J"] * self.w_sqrt[:, None]
        if self.restraints:
            rr, Jr = self._restraint_rows(ev["state"], True)
            Jw, r = np.concatenate([Jw, Jr]), np.concatenate([r, rr])
            out["restraint_residuals"] = rr
        A = Jw.T @ Jw
        dg = np.sqrt(np.clip(np.diag(A), 1e-300, None))
        An = A / np.outer(dg, dg)
        evals, evecs = np.linalg.eigh(An)
        out["condition"] = float(evals[-1] / max(evals[0], 1e-300))
        weak = evals < NULL_EIGEN_FRACTION * evals[-1]
        undetermined = np.sum(evecs[:, weak] ** 2, axis=1) > NULL_SHARE
        inv = np.linalg.pinv(An, rcond=1e-12) / np.outer(dg, dg)
        cov = inv * chi2
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        corr = cov / np.outer(np.where(sd > 0, sd, 1), np.where(sd > 0, sd, 1))
        step = inv @ (Jw.T @ r)                    # the Gauss–Newton step left at the end
        prm = [self.params[i] for i in self.free]
        at_bound = np.array([min(p.value - p.lo, p.hi - p.value) <= 1e-9 * (1 + abs(p.value))
                             for p in prm], dtype=bool)
        out.update(cov=cov, su=sd, corr=corr, undetermined=undetermined, at_bound=at_bound,
                   shift_over_su=np.where(at_bound, 0.0, np.abs(step) / np.where(sd > 0, sd, np.inf)))
        names = [self.params[i].name for i in self.free]
        pairs = []
        for a in range(p):
            for b in range(a + 1, p):
                if abs(corr[a, b]) > CORRELATION_LIMIT:
                    pairs.append((names[a], names[b], float(corr[a, b])))
        out["high_correlations"] = pairs
        return out
