"""Polyhedra: continuous shape measures against ideal polyhedra, L–M–L angles, and pymatgen ChemEnv
(optional, time-limited, in a child process)."""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from xtal.structures import Phase

__all__ = ["IDEAL_POLYHEDRA", "continuous_shape_measure", "polyhedron_verdict", "CHEMENV_NAMES"]

#: Largest CN for which every vertex permutation is tried; above it, assignment + rotation search.
_MAX_EXHAUSTIVE = 8


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
        **_large_polyhedra(tpr, sapr(), ring),
    }


def _large_polyhedra(tpr: np.ndarray, sap: np.ndarray, ring) -> dict[int, dict[str, np.ndarray]]:
    """Reference polyhedra for CN 9–12 (vertices on the unit sphere, equal edges where the shape allows)."""
    phi = (1 + math.sqrt(5)) / 2
    ico = _unit([p for a, b in itertools.product((1, -1), repeat=2)
                 for p in ((0, a, b * phi), (a, b * phi, 0), (b * phi, 0, a))])
    top = ico[np.argmax(ico[:, 2])]
    axis_ico = _rotate_to_z(ico, top)                      # two vertices on the z axis
    pap = axis_ico[np.abs(axis_ico[:, 2]) < 0.99]          # pentagonal antiprism = ico minus the poles
    cico = axis_ico[axis_ico[:, 2] < 0.99]                 # capped pentagonal antiprism = ico minus one
    coc = _unit([p for p in itertools.product((1, -1, 0), repeat=3) if sorted(map(abs, p)) == [0, 1, 1]])
    tt = _unit([p for p in set(itertools.permutations((3, 1, 1))) for sg in itertools.product((1, -1), repeat=3)
                for p in [tuple(v * g for v, g in zip(p, sg))] if np.prod(sg) > 0])
    rh = 2 / math.sqrt(5)                                  # hexagonal prism with square faces
    hpr = np.array(ring(6, rh / 2) + ring(6, -rh / 2)) * np.array([rh, rh, 1.0])
    r5 = 1 / math.sqrt(1 + math.sin(math.pi / 5) ** 2)     # pentagonal prism with square faces
    ppr = np.array(ring(5, r5 * math.sin(math.pi / 5)) + ring(5, -r5 * math.sin(math.pi / 5))) \
        * np.array([r5, r5, 1.0])
    caps3 = np.array([(math.cos(a), math.sin(a), 0.0) for a in (math.pi / 3, math.pi, 5 * math.pi / 3)])
    return {
        9: {"TCTPR-9 (tricapped trigonal prism)": np.vstack([tpr, caps3]),
            "CSAPR-9 (capped square antiprism)": np.vstack([sap, [(0, 0, 1)]])},
        10: {"PAPR-10 (pentagonal antiprism)": pap, "PPR-10 (pentagonal prism)": _unit(ppr),
             "BSAPR-10 (bicapped square antiprism)": np.vstack([sap, [(0, 0, 1), (0, 0, -1)]])},
        11: {"CPAPR-11 (capped pentagonal antiprism)": cico},
        12: {"IC-12 (icosahedron)": ico, "COC-12 (cuboctahedron)": coc,
             "TT-12 (truncated tetrahedron, Friauf)": tt, "HPR-12 (hexagonal prism)": _unit(hpr)},
    }


def _rotate_to_z(pts: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate ``pts`` so that the unit vector ``v`` points along +z (Rodrigues)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(v, z)
    s, c = np.linalg.norm(axis), float(v @ z)
    if s < 1e-12:
        return pts.copy()
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + s * kx + (1 - c) * kx @ kx
    return pts @ rot.T


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
    if n > _MAX_EXHAUSTIVE:
        return _cshm_search(q, p, 1 if centre is not None else 0)
    if n not in _PERMS:
        _PERMS[n] = np.array(list(itertools.permutations(range(n))), dtype=int)
    perms = _PERMS[n]
    off = 1 if centre is not None else 0
    p_lig = p[off:][perms]                                   # (P, n, 3)
    h = np.einsum("ik,pil->pkl", q[off:], p_lig)
    if off:
        h = h + np.outer(q[0], p[0])[None]
    # singular values only (no U, V: ~40 % of the time for CN 8's 40 320 permutations); the sign
    # of det(U)·det(Vᵀ) is that of det(H), here the triple product of its rows
    s = np.linalg.svd(h, compute_uv=False)
    sign = np.sign(np.einsum("pi,pi->p", h[:, 0], np.cross(h[:, 1], h[:, 2])))
    sigma = s[:, 0] + s[:, 1] + sign * s[:, 2]
    best = float(np.max(sigma))
    qq, pp = float(np.sum(q * q)), float(np.sum(p * p))
    return max(0.0, 100.0 * (1.0 - best * best / (qq * pp)))


def _kabsch_overlap(q: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray]:
    """max over proper rotations R of Σ q_i · R p_i (scale-free overlap), and that R."""
    u, s, vt = np.linalg.svd(p.T @ q)
    d = 1.0 if np.linalg.det(vt.T @ u.T) > 0 else -1.0
    return float(s[0] + s[1] + d * s[2]), vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def _cshm_search(q: np.ndarray, p: np.ndarray, off: int, n_starts: int = 120, seed: int = 7) -> float:
    """CShM for large CN: alternate optimal assignment (Hungarian) and optimal rotation (Kabsch) from
    many starting rotations (deterministic seed). Rows before ``off`` (the centre, if any) stay fixed."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.transform import Rotation

    qq, pp = float(np.sum(q * q)), float(np.sum(p * p))
    best = -np.inf
    for rot in Rotation.random(n_starts, random_state=seed).as_matrix():
        perm, val = None, -np.inf
        for _ in range(30):
            _, cols = linear_sum_assignment(-(q[off:] @ (p[off:] @ rot.T).T))
            if perm is not None and np.array_equal(cols, perm):
                break
            perm = cols
            val, rot = _kabsch_overlap(q, np.vstack([p[:off], p[off:][perm]]))
        best = max(best, val)
    return max(0.0, 100.0 * (1.0 - best * best / (qq * pp)))


def _shape_summary(vectors: list[np.ndarray]) -> dict[str, Any]:
    n = len(vectors)
    if not 3 <= n <= 12:
        return {"cshm": {}, "best": None, "best_cshm": None,
                "note": f"CShM computed for CN 3–12 only (CN = {n})"}
    pts = np.array(vectors)
    values = {name: round(continuous_shape_measure(pts, ideal, centre=np.zeros(3)), 3)
              for name, ideal in IDEAL_POLYHEDRA[n].items()}
    best = min(values, key=values.get)
    return {"cshm": values, "best": best, "best_cshm": values[best],
            "note": "xtal CShM: metal included, ideal polyhedra with unit M–L distances"}


#: ChemEnv symbols → the xtal reference polyhedron of the same shape (where xtal has one).
CHEMENV_NAMES = {"T:4": "T-4", "S:4": "SP-4", "SS:4": "SS-4", "T:5": "TBPY-5", "S:5": "SPY-5",
                 "PP:5": "PP-5", "O:6": "OC-6", "T:6": "TPR-6", "PP:6": "HP-6", "PB:7": "PBPY-7",
                 "ST:7": "CTPR-7", "ET:7": "COC-7", "C:8": "CU-8", "SA:8": "SAPR-8", "DD:8": "TDD-8",
                 "HB:8": "HBPY-8", "TT_1:9": "TCTPR-9", "C:9": "CSAPR-9", "PA:10": "PAPR-10",
                 "PP:10": "PPR-10", "SA:10": "BSAPR-10", "I:12": "IC-12", "C:12": "COC-12",
                 "TT:12": "TT-12", "H:12": "HPR-12"}


def polyhedron_verdict(poly: dict[str, Any], distances: list[float]) -> dict[str, Any]:
    """One verdict per site: xtal's lowest CShM among the reference polyhedra of that CN (the reason),
    ChemEnv as second opinion with its own CSM, and when they disagree a sentence saying which to
    trust and why. ``distances``: the counted M–L distances (Å)."""
    n = len(distances)
    ce = poly.get("chemenv") or {}
    envs = ce.get("environments") or []
    if not poly.get("best"):
        return {"shape": None, "reason": poly.get("note", "no polyhedron"), "second_opinion": None,
                "agree": None, "comment": ""}
    ranked = sorted(poly["cshm"].items(), key=lambda kv: kv[1])
    reason = (f"lowest continuous shape measure among the {len(ranked)} reference polyhedra of CN {n}: "
              f"{ranked[0][0]} S = {ranked[0][1]:.2f}"
              + (f" (next {ranked[1][0]} S = {ranked[1][1]:.2f})" if len(ranked) > 1 else ""))
    out = {"shape": ranked[0][0], "cshm": ranked[0][1], "reason": reason, "second_opinion": None,
           "agree": None, "comment": ""}
    if ce.get("status") != "ok" or not envs:
        out["comment"] = ("ChemEnv gave no second opinion (" + str(ce.get("status", "not run")) + ")")
        return out
    top = max(envs, key=lambda e: e.get("fraction", 1.0))
    sym, csm = str(top.get("ce_symbol")), float(top.get("csm", float("nan")))
    ce_cn = int(sym.split(":")[1]) if ":" in sym and sym.split(":")[1].isdigit() else None
    mapped = CHEMENV_NAMES.get(sym)
    out["second_opinion"] = {"ce_symbol": sym, "csm": round(csm, 3), "cn": ce_cn, "xtal_name": mapped}
    agree = mapped is not None and ranked[0][0].startswith(mapped + " ")
    out["agree"] = agree
    if agree:
        out["comment"] = f"ChemEnv agrees ({sym}, CSM {csm:.2f})."
        return out
    ce_d = sorted(top.get("distances") or [])
    dropped = [d for d in distances if all(abs(d - e) > 0.01 for e in ce_d)] if ce_d else []
    if ce_cn is not None and ce_cn != n:
        what = (f"ChemEnv ({sym}, CSM {csm:.2f}) describes a {ce_cn}-coordinate environment while xtal "
                f"counts {n} bonds by the stated coordination rule")
        if dropped and ce_cn < n and min(dropped) < max(ce_d):
            what += (f"; ChemEnv left out the bond(s) at {', '.join(f'{d:.3f}' for d in sorted(dropped))} Å, "
                     f"shorter than its own longest ({max(ce_d):.3f} Å)")
        out["comment"] = (what + ". Trust xtal's " + ranked[0][0] + ": it is measured on the ligand set "
                          "the rule counts, and a polyhedron that omits a shorter bond while keeping a "
                          "longer one is not the coordination polyhedron.")
    else:
        own = poly["cshm"].get(next((k for k in poly["cshm"] if mapped and k.startswith(mapped + " ")), ""), None)
        out["comment"] = (f"ChemEnv prefers {sym} (CSM {csm:.2f}) on the same CN; xtal's S for that shape is "
                          + (f"{own:.2f}" if own is not None else "not computed (no xtal reference)")
                          + f" vs {ranked[0][1]:.2f} for {ranked[0][0]}. Trust the lower measure on the same "
                          "ligands: xtal's, which minimises over all vertex assignments with the metal at the "
                          "centre; ChemEnv's CSM uses the ligand centroid and its own neighbour weighting.")
    return out


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
            ns = (lse.neighbors_sets[i] or [None])[0]
            dists = ([] if ns is None else
                     [float(np.linalg.norm(c - s[i].coords)) for c in ns.neighb_coords])
            out[lab] = [{"ce_symbol": e.get("ce_symbol"), "csm": float(e.get("csm")),
                         "fraction": float(e.get("ce_fraction", 1.0)), "distances": sorted(dists)}
                        for e in envs]
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
