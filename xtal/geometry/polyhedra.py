"""Polyhedra: continuous shape measures against ideal polyhedra, L–M–L angles, and pymatgen ChemEnv
(optional, time-limited, in a child process)."""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from xtal.structures import Phase

__all__ = ["IDEAL_POLYHEDRA", "continuous_shape_measure"]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _ideal_polyhedra() -> dict[int, dict[str, np.ndarray]]:
    ring = lambda n, z=0.0, phase=0.0: [(math.cos(2 * math.pi * k / n + phase),  # noqa: E731
                                         math.sin(2 * math.pi * k / n + phase), z) for k in range(n)]
    tet = _unit([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)])
    octa = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)], float)
    # trigonal prism with all edges equal, vertices on the unit sphere
    r = math.sqrt(4 / 7)
    h = math.sqrt(3 / 7)  # edge: sqrt(3) r = 2 h, r^2 + h^2 = 1
    tpr = np.array([(r * math.cos(a), r * math.sin(a), z) for z in (h, -h)
                    for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)])
    sq = [(1, 0, 0), (0, 1, 0), (-1, 0, 0), (0, -1, 0)]
    # square antiprism with all edges equal, vertices on the unit sphere (solve for the height)
    def sapr():
        from scipy.optimize import brentq
        f = lambda hh: (math.sqrt(2) * math.sqrt(1 - hh * hh)) ** 2 - (  # noqa: E731
            (2 * (1 - hh * hh) * (1 - math.cos(math.pi / 4))) + 4 * hh * hh)
        hh = brentq(f, 0.05, 0.95)
        rr = math.sqrt(1 - hh * hh)
        top = [(rr * math.cos(k * math.pi / 2), rr * math.sin(k * math.pi / 2), hh) for k in range(4)]
        bot = [(rr * math.cos(k * math.pi / 2 + math.pi / 4), rr * math.sin(k * math.pi / 2 + math.pi / 4),
                -hh) for k in range(4)]
        return np.array(top + bot)
    ta, tb = math.radians(35.2), math.radians(73.5)   # Hoard–Silverton D2d dodecahedron
    tdd = np.array([(math.sin(ta), 0, math.cos(ta)), (-math.sin(ta), 0, math.cos(ta)),
                    (0, math.sin(ta), -math.cos(ta)), (0, -math.sin(ta), -math.cos(ta)),
                    (math.sin(tb), 0, -math.cos(tb)), (-math.sin(tb), 0, -math.cos(tb)),
                    (0, math.sin(tb), math.cos(tb)), (0, -math.sin(tb), math.cos(tb))])
    cube = _unit(list(itertools.product((1, -1), repeat=3)))
    ctpr = np.vstack([tpr, _unit([(-1, 0, 0)])])   # cap on the square face opposite the first vertex
    coc = np.vstack([octa, _unit([(1, 1, 1)])])
    return {
        3: {"TP-3 (trigonal planar)": np.array(ring(3)),
            "vT-3 (trigonal pyramid)": tet[:3],
            "mer-vOC-3 (T-shaped)": octa[[0, 1, 2]]},
        4: {"T-4 (tetrahedron)": tet,
            "SP-4 (square planar)": np.array(sq, float),
            "SS-4 (seesaw)": np.array([(0, 0, 1), (0, 0, -1), (1, 0, 0), (-0.5, math.sqrt(3) / 2, 0)]),
            "vTBPY-4 (trigonal pyramid)": np.array([(0, 0, 1)] + ring(3))},
        5: {"TBPY-5 (trigonal bipyramid)": np.array([(0, 0, 1), (0, 0, -1)] + ring(3)),
            "SPY-5 (square pyramid)": octa[[0, 1, 2, 3, 4]],
            "PP-5 (pentagon)": np.array(ring(5))},
        6: {"OC-6 (octahedron)": octa, "TPR-6 (trigonal prism)": tpr, "HP-6 (hexagon)": np.array(ring(6))},
        7: {"PBPY-7 (pentagonal bipyramid)": np.array([(0, 0, 1), (0, 0, -1)] + ring(5)),
            "COC-7 (capped octahedron)": coc, "CTPR-7 (capped trigonal prism)": ctpr},
        8: {"CU-8 (cube)": cube, "SAPR-8 (square antiprism)": sapr(),
            "TDD-8 (triangular dodecahedron)": tdd,
            "HBPY-8 (hexagonal bipyramid)": np.array([(0, 0, 1), (0, 0, -1)] + ring(6))},
    }


IDEAL_POLYHEDRA: dict[int, dict[str, np.ndarray]] = _ideal_polyhedra()
_PERMS: dict[int, np.ndarray] = {}


def continuous_shape_measure(ligands: np.ndarray, ideal: np.ndarray, centre: np.ndarray | None = None) -> float:
    """Continuous shape measure S (0 = ideal, 100 = maximal) of ligand positions vs an ideal polyhedron.

    Minimised over all vertex permutations, proper rotations and scale (Pinsky & Avnir 1998). When
    ``centre`` is given (the metal), it is included and matched to the centre of the ideal polyhedron.
    """
    q = np.asarray(ligands, dtype=float)
    p = np.asarray(ideal, dtype=float)
    n = len(q)
    if len(p) != n:
        raise ValueError("ligand count differs from the ideal polyhedron's")
    if centre is not None:
        q = np.vstack([np.asarray(centre, float)[None, :], q])
        p = np.vstack([np.zeros((1, 3)), p])
    q = q - q.mean(axis=0)
    p = p - p.mean(axis=0)
    if n not in _PERMS:
        _PERMS[n] = np.array(list(itertools.permutations(range(n))), dtype=int)
    perms = _PERMS[n]
    off = 1 if centre is not None else 0
    p_lig = p[off:][perms]                                   # (P, n, 3)
    h = np.einsum("ik,pil->pkl", q[off:], p_lig)
    if off:
        h = h + np.outer(q[0], p[0])[None]
    u, s, vt = np.linalg.svd(h)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sigma = s[:, 0] + s[:, 1] + sign * s[:, 2]
    best = float(np.max(sigma))
    qq, pp = float(np.sum(q * q)), float(np.sum(p * p))
    return max(0.0, 100.0 * (1.0 - best * best / (qq * pp)))


def _shape_summary(vectors: list[np.ndarray]) -> dict[str, Any]:
    n = len(vectors)
    if not 3 <= n <= 8:
        return {"cshm": {}, "best": None, "best_cshm": None,
                "note": f"CShM computed for CN 3–8 only (CN = {n})"}
    pts = np.array(vectors)
    values = {name: round(continuous_shape_measure(pts, ideal, centre=np.zeros(3)), 3)
              for name, ideal in IDEAL_POLYHEDRA[n].items()}
    best = min(values, key=values.get)
    return {"cshm": values, "best": best, "best_cshm": values[best],
            "note": "xtal CShM: metal included, ideal polyhedra with unit M–L distances"}


def _angles(vectors: list[np.ndarray]) -> dict[str, float | None]:
    if len(vectors) < 2:
        return {"min": None, "max": None, "mean": None, "n": 0}
    u = _unit(np.array(vectors))
    vals = [math.degrees(math.acos(max(-1.0, min(1.0, float(u[i] @ u[j])))))
            for i in range(len(u)) for j in range(i + 1, len(u))]
    return {"min": round(min(vals), 2), "max": round(max(vals), 2), "mean": round(float(np.mean(vals)), 2),
            "n": len(vals)}


# ----------------------------------------------------------------------------------------------
# ChemEnv (optional, time-limited, in a child process)
# ----------------------------------------------------------------------------------------------
def _chemenv_worker(phase: Phase, labels: list[str], queue) -> None:  # pragma: no cover - child process
    try:
        import warnings as _w
        _w.filterwarnings("ignore")
        from pymatgen.analysis.chemenv.coordination_environments.chemenv_strategies import (
            SimplestChemenvStrategy)
        from pymatgen.analysis.chemenv.coordination_environments.coordination_geometry_finder import (
            LocalGeometryFinder)
        from pymatgen.analysis.chemenv.coordination_environments.structure_environments import (
            LightStructureEnvironments)
        s = phase.to_pymatgen()
        if not s.is_ordered:
            queue.put({"error": "structure has partial occupancies; ChemEnv needs an ordered structure"})
            return
        idx = {}
        for i, site in enumerate(s):
            lab = site.properties.get("label")
            if lab in labels and lab not in idx:
                idx[lab] = i
        lgf = LocalGeometryFinder()
        lgf.setup_parameters(centering_type="centroid", include_central_site_in_centroid=True)
        lgf.setup_structure(s)
        se = lgf.compute_structure_environments( only_indices=list(idx.values()),
                                                maximum_distance_factor=1.41, get_from_hints=False)
        lse = LightStructureEnvironments.from_structure_environments(
            strategy=SimplestChemenvStrategy(), structure_environments=se)
        out = {}
        for lab, i in idx.items():
            envs = lse.coordination_environments[i] or []
            out[lab] = [{"ce_symbol": e.get("ce_symbol"), "csm": float(e.get("csm")),
                         "fraction": float(e.get("ce_fraction", 1.0))} for e in envs]
        queue.put({"result": out})
    except Exception as exc:  # noqa: BLE001 - report any failure to the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _run_chemenv(phase: Phase, labels: list[str], timeout_s: float) -> dict[str, Any]:
    import multiprocessing as mp
    import queue as _queue
    try:
        ctx = mp.get_context("fork")
    except ValueError:
        return {"status": "unavailable", "reason": "no fork start method on this platform"}
    q = ctx.Queue()
    proc = ctx.Process(target=_chemenv_worker, args=(phase, labels, q), daemon=True)
    proc.start()
    try:
        msg = q.get(timeout=timeout_s)
    except _queue.Empty:
        msg = None
    if proc.is_alive():
        proc.terminate()
    proc.join(1)
    if msg is None:
        return {"status": "timeout", "reason": f"ChemEnv did not finish within {timeout_s:g} s"}
    if "error" in msg:
        return {"status": "failed", "reason": msg["error"]}
    return {"status": "ok", "environments": msg["result"]}
