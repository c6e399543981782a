"""Identification on REAL measured patterns (issue 13): phase sets, phantoms, amorphous, negative controls.

Cases: the measured patterns of ../shared/reference/patterns (with every reference structure as a
decoy) and the XRed laboratory patterns of ../shared/reference/patterns_xred (their own CIFs plus all
the others as decoys). Each case is also run with its true phases removed (negative control: the
answer must be confidence "none"). Nothing here is tuned: it measures.

    python benchmarks/eval_identify_real.py [--only NAME ...] [--no-negative] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "reference"

from xtal.identify import identify  # noqa: E402
from xtal.io import read_pattern  # noqa: E402
from xtal.structures import read_cif  # noqa: E402


@dataclass
class Case:
    name: str
    pattern: Path
    truth: set[str]                      # phases that must be found
    allowed: set[str] = field(default_factory=set)   # may be found (impurities)
    wavelength: object = None
    instrument: Path | None = None
    polarization: str | None = None


def _xred_cases(lib_ids: dict[str, Path]) -> list[Case]:
    out = []
    for folder in sorted((SHARED / "patterns_xred").glob("*/**/")):
        data = [p for p in folder.glob("*.csv")]
        cifs = sorted(folder.glob("*.cif"))
        if not data or not cifs:
            continue
        truth = {_cif_id(c) for c in cifs}
        out.append(Case(f"xred/{folder.relative_to(SHARED / 'patterns_xred')}", data[0], truth,
                        wavelength="CuKa"))
    return out


def _cif_id(path: Path) -> str:
    rel = path.relative_to(SHARED)
    return str(rel.with_suffix("")).replace("patterns_xred/", "").replace("structures/", "")


def cases() -> list[Case]:
    p = SHARED / "patterns"
    ref = [
        Case("PbSO4", p / "lab_PbSO4_CuKa/PBSO4.XRA", {"PbSO4"}, instrument=p / "lab_PbSO4_CuKa/INST_XRY.PRM"),
        Case("NAC", p / "sync_NAC_11BM/11BM_NAC.fxye", {"NAC"}, allowed={"CaF2"},
             polarization="synchrotron"),
        Case("BiFeO3", p / "lab_BiFeO3_CuKa/BiFeO3.xy", {"BiFeO3"}, allowed={"Bi2Fe4O9", "Bi25FeO39"},
             wavelength="CuKa"),
        Case("CaNi(PO3)4", p / "lab_CaNiPO34_CuKa/CaNi_PO3_4_800C.xy", {"CaNi_PO3_4"}, allowed={"NiO"},
             wavelength="CuKa"),
        Case("LaB6", p / "lab_LaB6_SRM660/NIST660CBI.gsas", {"LaB6"}, wavelength="CuKa"),
        Case("GeO2-ZnO (no library phase)", p / "lab_xrdml_GeO2-ZnO/GeO2-ZnO_700C_60min.xrdml", set()),
    ]
    return ref


def library() -> dict[str, object]:
    phases = {}
    for cif in sorted((SHARED / "structures").glob("*.cif")):
        if "SHELXL" in cif.name:
            continue          # molecular single-crystal structures: not powder decoys
        pid = cif.stem.replace("_Fm-3m", "").replace("_C2c", "")
        phases[pid] = cif
    # standards shipped with xtal that ../shared/reference/structures lacks (LaB6, SRM 660)
    phases["LaB6"] = REPO / "structures" / "reference" / "LaB6.cif"
    for cif in sorted((SHARED / "patterns_xred").rglob("*.cif")):
        phases[_cif_id(cif)] = cif
    out = {}
    for pid, path in phases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[pid] = read_cif(path, phase_id=pid)
            except Exception as exc:  # noqa: BLE001 - report, keep going
                print(f"  library: {pid} not read ({type(exc).__name__}: {exc})", file=sys.stderr)
    return out


def _key(ph) -> tuple[str, int | None]:
    """Same compound and space group: two library entries of one phase (from two sources)."""
    return _formula(ph), getattr(ph, "spacegroup_number", None)


def _formula(ph) -> str:
    """Reduced composition (pymatgen) of a phase: polymorphs share it, so a negative control removes
    every library entry of the true compound, not just the file that was named."""
    try:
        from pymatgen.core import Composition

        return Composition({el: n for el, n in ph.formula_from_sites().items() if el not in ("H", "D")}
                           ).reduced_formula
    except Exception:  # noqa: BLE001
        return str(ph.id)


def run_case(case: Case, lib: dict, *, remove_truth: bool = False) -> dict:
    gone = {_formula(lib[t]) for t in case.truth if t in lib} if remove_truth else set()
    # (the negative control removes every polymorph of the true compounds: nothing may explain it)
    phases = [ph for pid, ph in lib.items()
              if not (remove_truth and (pid in case.truth or _formula(ph) in gone))]
    pat = read_pattern(case.pattern, instrument=case.instrument)
    t0 = time.perf_counter()
    res = identify(pat, phases, wavelength=case.wavelength, polarization=case.polarization)
    dt = time.perf_counter() - t0
    found = set(res.best.ids) if res.best and res.confidence != "none" else set()
    # an entry of the same compound and space group from another source counts as that phase
    alias = {pid: t for pid in found for t in case.truth | case.allowed
             if t in lib and pid in lib and _key(lib[pid]) == _key(lib[t])}
    found_as = {alias.get(pid, pid) for pid in found}
    missing = (case.truth - found_as) if not remove_truth else set()
    extra = found_as - case.truth - case.allowed
    if remove_truth or not case.truth:
        ok = res.confidence == "none" and not found
    else:
        ok = not missing and not extra
    b = res.best
    return {"case": case.name + (" [truth removed]" if remove_truth else ""), "ok": ok,
            "found": sorted(found), "missing": sorted(missing), "extra": sorted(extra),
            "confidence": res.confidence,
            "amorphous": res.amorphous_fraction_estimate,
            "rwp": b.fit.rwp if b else None, "rexp": b.fit.rexp if b else None,
            "fractions": {p.id: p.weight_fraction for p in b.phases} if b else {},
            "noise": getattr(b.fit, "noise_model", None) if b else None,
            "explained_fraction": b.explained_fraction if b else None,
            "explained_signal": res.explained_signal,
            "strong_unexplained": sum(p["relative_intensity"] >= 0.05 for p in res.unexplained_peaks),
            "max_unexplained": max((p["relative_intensity"] for p in res.unexplained_peaks), default=0.0),
            "max_strain": max((abs(e) for p in b.phases for e in p.strain), default=0.0) if b else None,
            "seconds": round(dt, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="substrings of case names")
    ap.add_argument("--no-negative", action="store_true", help="skip the truth-removed controls")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    lib = library()
    all_cases = cases() + _xred_cases(lib)
    if args.only:
        all_cases = [c for c in all_cases if any(s in c.name for s in args.only)]
    rows = []
    print(f"library: {len(lib)} phases; {len(all_cases)} cases")
    for c in all_cases:
        runs = [False] if args.no_negative or not c.truth else [False, True]
        for neg in runs:
            try:
                r = run_case(c, lib, remove_truth=neg)
            except Exception as exc:  # noqa: BLE001 - a failing case is a result
                r = {"case": c.name + (" [truth removed]" if neg else ""), "ok": False,
                     "error": f"{type(exc).__name__}: {exc}"}
            rows.append(r)
            am = r.get("amorphous")
            print(f"{'OK ' if r['ok'] else 'BAD'} {r['case']:<55} {r.get('confidence', '-'):<7} "
                  f"found={r.get('found')} extra={r.get('extra')} missing={r.get('missing')} "
                  f"amorph={'-' if am is None else f'{100 * am:.1f}%'} "
                  f"Rwp={r.get('rwp') and round(100 * r['rwp'], 1)} Rexp={r.get('rexp') and round(100 * r['rexp'], 1)} "
                  f"{r.get('seconds', '')}s {r.get('error', '')}", flush=True)
    n_ok = sum(r["ok"] for r in rows)
    amorph = [r["case"] for r in rows if (r.get("amorphous") or 0) > 0.02]
    print(f"\n{n_ok}/{len(rows)} cases right (phase set, or 'none' where nothing in the library fits); "
          f"amorphous > 2 % claimed on {len(amorph)} crystalline samples: {amorph}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
