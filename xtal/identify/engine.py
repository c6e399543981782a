"""The optimiser behind `WholePatternFit`: bounded Levenberg–Marquardt with variable projection.

The non-linear parameters (zero shift, profile, lattice) are refined; the linear ones (phase
scales ≥ 0 and background coefficients) are solved exactly at every step (Kaufman's Jacobian:
analytic profile derivatives, linear parameters projected out through the normal equations).
"""
from __future__ import annotations

from typing import Any

import numpy as np

def gram_of_active(gram: tuple[np.ndarray, np.ndarray] | None, active: list[int],
                    gbb: np.ndarray) -> np.ndarray:
    """AᵀWA for A = [the active phase columns, the background basis B], assembled from PᵀWP,
    PᵀWB (all phase columns) and BᵀWB."""
    if not active:
        return gbb.copy()
    gpp, gpb = gram
    k = len(active)
    out = np.empty((k + gbb.shape[0], k + gbb.shape[0]))
    out[:k, :k] = gpp[np.ix_(active, active)]
    out[:k, k:] = gpb[active]
    out[k:, :k] = gpb[active].T
    out[k:, k:] = gbb
    return out


def levenberg_marquardt(fitter: Any, g0: dict[str, float], q0: list[np.ndarray], *, free_global,
             refine_lattice: bool, max_strain: float, zero_max: float, max_iter: int,
             ftol: float = 1e-5):
    """Levenberg–Marquardt on the non-linear parameters, the linear ones solved exactly at every
    step (variable projection, Kaufman's Jacobian: analytic profile derivatives, linear
    parameters projected out via the normal equations). Returns (state, theta, H, success)."""
    fitter.setup(free_global, refine_lattice)
    models = fitter.models

    def profiles(g, qs, deriv):
        return [fitter.phase_eval(m, q, g, deriv, g.get(f"po{k}"))
                for k, (m, q) in enumerate(zip(models, qs))]

    def evaluate(theta, deriv=False):
        g, qs = fitter.unpack(theta, g0, q0)
        ev = profiles(g, qs, deriv)
        cols = [e["values"] for e in ev]
        s, b, calc = fitter.solve_linear(cols)
        fitter.nfev += 1
        r = fitter.yfit - calc
        # the weighted Gram blocks of these columns (PᵀWP, PᵀWB), kept for `normal`
        gram = fitter._last_normal if cols else None
        return dict(g=g, qs=qs, ev=ev, cols=cols, s=s, b=b, calc=calc, r=r, gram=gram,
                    cost=float(np.sum(fitter.w * r * r)), deriv=deriv)

    def with_derivatives(st):
        """The state of a point evaluated without derivatives, with them: the same profiles (the
        values do not depend on the flag), so scales, background and cost are kept."""
        if not st["deriv"]:
            st["ev"], st["deriv"] = profiles(st["g"], st["qs"], True), True
        return st

    def normal(st):
        """Projected Gauss–Newton matrix H and gradient of the cost (½ Σ w r²)."""
        s, ev = st["s"], st["ev"]
        n = fitter.x.size
        p = fitter.n_theta
        D = np.zeros((p, n))   # ∂calc/∂θ (rows)
        for i, e in enumerate(ev):
            if s[i] > 0:
                si, rows = s[i], e["rows"]
                for target, source in fitter.derivative_map[i]:
                    D[target] += si * rows[source]
        Dw = D * fitter.w[None, :]
        H = Dw @ D.T
        grad = -(Dw @ st["r"])
        active = [i for i in range(len(s)) if s[i] > 0]
        # Dᵀ W A for A = [active columns, B], a block at a time: A itself (n × (k + nb), built by
        # strided copies) would cost as much as the product
        DB = Dw @ fitter.B
        DA = np.concatenate([np.stack([Dw @ st["cols"][i] for i in active], axis=1), DB], axis=1) \
            if active else DB
        # AᵀWA from the Gram blocks `solve_linear` already formed (PᵀWP, PᵀWB) and BᵀWB
        AA = gram_of_active(st["gram"], active, fitter.Gbb_raw)
        AA += np.eye(AA.shape[0]) * 1e-12 * np.trace(AA)
        H = H - DA @ np.linalg.solve(AA, DA.T)
        H = 0.5 * (H + H.T)
        return H, grad

    theta = fitter.pack(g0, q0)
    lo, hi = fitter.bounds(max_strain, zero_max)
    theta = np.clip(theta, lo, hi)
    st = evaluate(theta, deriv=fitter.n_theta > 0)
    H = None
    success = True
    if fitter.n_theta > 0 and max_iter > 0:
        lam = 1e-3
        small = 0
        it = 0
        prev_pred = 0.0          # predicted gain of the last accepted step
        rejected = False         # the last trial step was rejected
        H, grad = normal(st)
        while it < max_iter:
            it += 1
            # parameters held at a bound by the gradient are left out of the step (active set)
            free = ~(((theta <= lo) & (grad > 0)) | ((theta >= hi) & (grad < 0)))
            step = np.zeros_like(theta)
            singular = False
            for _ in range(4):
                step[:] = 0.0
                if not np.any(free):
                    break
                Hf = H[np.ix_(free, free)]
                dH = np.diag(Hf).copy()
                dH[dH <= 0] = 1e-30
                try:
                    step[free] = -np.linalg.solve(Hf + lam * np.diag(dH), grad[free])
                except np.linalg.LinAlgError:
                    singular = True
                    break
                # a parameter on its bound that the step pushes outward is held (projected step)
                out = free & (((theta <= lo) & (step < 0)) | ((theta >= hi) & (step > 0)))
                if not np.any(out):
                    break
                free &= ~out
            if singular:
                lam *= 10
                continue
            new = np.clip(theta + step, lo, hi)
            dlt = new - theta
            # predicted decrease of Σw r² (Gauss–Newton model); nothing left to gain → converged
            pred = -(2.0 * float(grad @ dlt) + float(dlt @ H @ dlt))
            if 0.0 <= pred < 0.1 * ftol * st["cost"] and lam <= 1e-2:
                break
            # converging quadratically (the predicted gain fell 100-fold since the last accepted
            # step) and this step predicted to gain less than ftol of the cost: it is the last one,
            # evaluated without derivatives (they would only serve a step the tolerance does not
            # take); H of the point it left (a small fraction of a s.u. away, pred ≈ Δθᵀ H Δθ)
            # stays the curvature for the s.u.  A slowly falling prediction (a fit crawling along
            # a valley of a misfit-dominated χ²) never ends this way.
            last = (0.0 <= pred < ftol * st["cost"] and lam <= 1e-2
                    and pred < 0.01 * prev_pred)
            # after a rejected step the next trial is evaluated without derivatives as well
            # (rejections come in runs while λ grows): they are computed once it is accepted
            st2 = evaluate(new, deriv=not (last or rejected))
            if last and st["cost"] - st2["cost"] > 10.0 * ftol * st["cost"]:
                last = False     # the quadratic model was wrong about the gain: not converged
            if st2["cost"] < st["cost"]:
                rel = (st["cost"] - st2["cost"]) / max(st["cost"], 1e-300)
                theta, st, prev_pred, rejected = new, st2, pred, False
                if last:
                    break
                H, grad = normal(with_derivatives(st))
                lam = max(lam / 4.0, 1e-7)
                small = small + 1 if rel < ftol else 0
                if small >= (1 if ftol >= 1e-4 else 2):
                    break
            else:
                rejected = True
                lam *= 5.0
                if lam > 1e8 or 0.0 <= pred < 1e-4 * st["cost"]:
                    break   # no further progress above the numerical noise of the model
        else:
            success = False
    elif fitter.n_theta > 0:
        H, _ = normal(st)
    return st, theta, H, success
