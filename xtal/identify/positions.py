"""Presence judged by peak positions alone: a Le Bail check beside the structure-based fit.

Where structure intensities cannot be trusted — a MODEL structure (its atoms placed by a
crystal-chemical rule, not refined), or a textured sample whose intensities the March–Dollase term
had to bend — the identification's answer rests on a fit whose misfit is partly the model's. The
intensity-free check asks only whether each accepted phase's *cell* is needed: a Le Bail fit
(`xtal.refine.le_bail`, free intensities on the phases' cells, seeded from the identification's
cells, zero and profile) with all accepted phases, and one without each phase. A phase is
*required by its positions* when removing it raises the weighted residual sum by at least
``Z_REQUIRED``² times the reduced χ² of the full Le Bail fit (so misfit raises the bar).

The result is reported beside the structure-based fit (JSON ``positions``); it does not change the
answer by itself — a phase that the positions do not require is flagged in the warnings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: significance (σ, after scaling by the reduced χ²) with which a phase's cell must be needed
Z_REQUIRED = 5.0


@dataclass
class PositionsCheck:
    """Le Bail (positions only) beside the structure-based fit of the best hypothesis."""

    rwp_le_bail: float
    rwp_structure: float
    rexp: float
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)   # id → required, z, rwp_without
    reason: str = ""                    # why the check was run
    statement: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        f = lambda v: None if v is None or not math.isfinite(v) else float(v)  # noqa: E731
        return {"rwp_le_bail": f(self.rwp_le_bail), "rwp_structure": f(self.rwp_structure),
                "rexp": f(self.rexp), "reason": self.reason, "statement": self.statement,
                "phases": {k: {"required": bool(v["required"]), "significance": f(v["significance"]),
                               "rwp_without": f(v["rwp_without"])} for k, v in self.phases.items()}}


def _weighted_sum(res: Any, sigma: np.ndarray) -> float:
    r = (res.observed - res.calculated) / sigma
    return float(r @ r)


def positions_check(data: Any, rad: Any, phases: list[Any], fit: Any, reason: str = "",
                    max_cycles: int = 6) -> PositionsCheck:
    """Le Bail fits of ``phases`` (library `Phase` objects of the best hypothesis) to the prepared
    data ``data`` (`PreparedData`) with radiation ``rad``, seeded from the identification's
    ``fit`` (`FitResult`); one more fit without each phase when there are several. Returns a
    `PositionsCheck`.
    """
    from xtal.refine import le_bail

    full = le_bail(data, phases, rad, start=fit, max_cycles=max_cycles)
    s_full = _weighted_sum(full, data.sigma)
    dof = max(data.x.size - 4 * len(phases) - 10, 1)
    chi_red = max(s_full / dof, 1.0)
    out: dict[str, dict[str, Any]] = {}
    for k, ph in enumerate(phases):
        if len(phases) == 1:
            # a single phase: its cell against the background alone
            s_without = float(np.sum(((data.y - full.background) / data.sigma) ** 2))
            rwp_without = math.sqrt(s_without / float(np.sum((data.y / data.sigma) ** 2)))
        else:
            rest = [p for j, p in enumerate(phases) if j != k]
            start = {"zero": full.zero_shift_deg, **full.profile}
            sub = le_bail(data, rest, rad, start=start, max_cycles=max_cycles)
            s_without, rwp_without = _weighted_sum(sub, data.sigma), sub.rwp
        z = math.sqrt(max(s_without - s_full, 0.0) / chi_red)
        out[str(ph.id)] = {"required": z >= Z_REQUIRED, "significance": z, "rwp_without": rwp_without}
    weak = [pid for pid, v in out.items() if not v["required"]]
    statement = (f"Le Bail (peak positions only): Rwp {full.rwp:.1%} against {fit.rwp:.1%} for the "
                 "structure-based fit; " + (
                     "every accepted phase is required by its peak positions." if not weak else
                     "not required by peak positions: " + ", ".join(weak) + "."))
    return PositionsCheck(full.rwp, fit.rwp, fit.rexp, out, reason, statement)
