"""Comparison with the CIF's own ``_geom_bond`` loop (kept on the Phase at read time)."""
from __future__ import annotations

from typing import Any

import numpy as np

from xtal.geometry.symmetry import _raw_ops, _Sym, parse_symop_code
from xtal.structures import Phase, format_su, parse_su

__all__ = ["compare_cif_bonds"]


def _last_digit_units(text: str) -> float | None:
    """Value of one unit in the last decimal place of a CIF number ('2.027(9)' -> 0.001)."""
    t = text.split("(")[0]
    if "." not in t:
        return 1.0
    return 10.0 ** (-len(t.split(".")[1]))


def _printed_coordinate_rounding(phase: Phase) -> dict[str, np.ndarray]:
    """Half a unit in the last printed digit of each site's fractional coordinates (label -> 3-vector)."""
    out: dict[str, np.ndarray] = {}
    for site in phase.sites:
        if site.frac_decimals is not None:
            out[site.label] = np.array([0.5 * 10.0 ** (-dec) if dec < 6 else 0.0 for dec in site.frac_decimals])
    return out


def compare_cif_bonds(phase: Phase, *, _sym: _Sym | None = None) -> dict[str, Any] | None:
    """Recompute every bond of the CIF's ``_geom_bond_*`` loop; None when the file has no such loop.

    Returns ``{"n_listed", "n_compared", "max_abs_diff", "worst", "max_su_diff_last_digits",
    "n_su_compared", "symmetry_codes_found", "rows": [...]}``. Each row: label_1, label_2, symop, cif
    (text), cif_distance, cif_su, distance, su, diff, rounding_bound (how much |diff| the printed precision
    of the CIF's distance and coordinates allows: half a unit in the last digit of d plus the linear
    worst case of half a unit in the last digit of every coordinate), su_diff_last_digits, code_found (the
    code xtal's own neighbour search assigns to that image). ``max_diff_beyond_rounding`` = largest
    |diff| − rounding_bound (≤ 0 when every bond agrees to printed precision).
    """
    if not phase.geom_bonds:
        return None
    sym = _sym or _Sym(phase, _raw_ops(phase, [])[0])
    idx = {s.label: k for k, s in enumerate(phase.sites)}
    printed = _printed_coordinate_rounding(phase)
    rows = []
    for gb in phase.geom_bonds:
        l1, l2, dtext, code = gb.label_1, gb.label_2, gb.distance_text, gb.symmetry_code
        try:
            dval, dsu = parse_su(dtext)
        except ValueError:
            continue
        if dval is None or l1 not in idx or l2 not in idx:
            rows.append({"label_1": l1, "label_2": l2, "symop": code, "cif": dtext, "status": "unmatched"})
            continue
        n, t = parse_symop_code(code)
        d, su = sym.distance_su(idx[l1], idx[l2], n - 1, t)
        # which code does xtal's own search assign to that image?
        found = None
        target = sym.position(idx[l2], n - 1, t)
        x1 = np.array(phase.sites[idx[l1]].frac, dtype=float)
        for (j, op, tt, y, dd) in sym.search(x1, d + 0.05, mask=np.arange(len(phase.sites)) == idx[l2]):
            diff = y - target
            if np.linalg.norm(sym.orth @ (diff - np.round(diff))) < 1e-3 and abs(dd - d) < 1e-6:
                # the same atom: same position modulo the lattice AND same image
                if np.allclose(diff, 0, atol=1e-4):
                    found = sym.code(op, tt)
                    break
                found = found or sym.code(op, tt)
        unit = _last_digit_units(dtext)
        gi, gj = sym.coordinate_gradients(idx[l1], idx[l2], n - 1, t)
        ri, rj = printed.get(l1, np.zeros(3)), printed.get(l2, np.zeros(3))
        rounding = (float(np.sum(np.abs(gi + gj) * ri)) if idx[l1] == idx[l2]
                    else float(np.sum(np.abs(gi) * ri) + np.sum(np.abs(gj) * rj)))
        rounding += 0.5 * (unit or 0.0)
        su_diff = None
        if dsu is not None and su is not None and unit:
            su_diff = abs(round(su / unit) - round(dsu / unit))
        rows.append({"label_1": l1, "label_2": l2, "symop": code, "cif": dtext, "cif_distance": dval,
                     "cif_su": dsu, "distance": round(d, 6), "su": None if su is None else round(su, 6),
                     "text": format_su(d, su), "diff": round(d - dval, 6), "rounding_bound": round(rounding, 6),
                     "su_diff_last_digits": su_diff,
                     "code_found": found, "status": "ok"})
    ok = [r for r in rows if r["status"] == "ok"]
    worst = max(ok, key=lambda r: abs(r["diff"])) if ok else None
    su_rows = [r for r in ok if r["su_diff_last_digits"] is not None]
    excess = [abs(r["diff"]) - r["rounding_bound"] for r in ok]
    return {"n_listed": len(rows), "n_compared": len(ok),
            "max_abs_diff": None if worst is None else abs(worst["diff"]),
            "max_diff_beyond_rounding": max(excess) if excess else None,
            "worst": worst,
            "n_su_compared": len(su_rows),
            "max_su_diff_last_digits": max((r["su_diff_last_digits"] for r in su_rows), default=None),
            "symmetry_codes_found": sum(1 for r in ok if _same_code(r["code_found"], r["symop"])),
            "rows": rows}


def _same_code(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return parse_symop_code(a) == parse_symop_code(b)
