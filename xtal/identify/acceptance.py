"""Acceptance rules of the hypothesis search, unexplained peaks and the confidence statement.

A phase is added to a hypothesis only if it lowers the BIC, lowers Rwp, carries visible intensity,
is not pushed to its strain bound and explains a peak its parent fit left unexplained
(``docs/identify.md`` gives the reasons).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from xtal import numeric
from xtal.identify.prepare import smooth
from xtal.identify.result import NEAR_TIE_DELTA, FitResult, Hypothesis
from xtal.numeric import find_peaks


def positive_support(col: np.ndarray, resid_pos: np.ndarray) -> float:
    tot = float(np.sum(col))
    if tot <= 0:
        return 0.0
    return float(np.sum(np.minimum(col, resid_pos)) / tot)


def unexplained_peaks(fit: FitResult, *, nsig: float = 6.0, min_relative: float = 0.02,
                      fwhm_deg: float | None = None) -> list[dict[str, float]]:
    """Peaks in the residual of ``fit`` that no phase explains.

    A residual maximum counts if it rises ``nsig`` noise σ (of the smoothed residual) above zero,
    is at least ``min_relative`` of the strongest observed net peak, and is not merely the misfit
    of a stronger calculated peak at the same place (< 35 % of the calculated net height there).
    """
    x = fit.x_deg
    step = float(np.median(np.diff(x)))
    fw = fwhm_deg or math.sqrt(max(fit.profile.get("W", 0.01), 1e-8))
    fw = max(fw, 2 * step)
    spts = max(0.5, fw / 2.355 / step)
    r = fit.observed - fit.calculated
    rs = smooth(r, spts)
    sig = fit.sigma if fit.sigma is not None else np.sqrt(np.maximum(fit.calculated, 1.0))
    neff = max(1.0, 2.0 * math.sqrt(math.pi) * spts)
    noise = smooth(sig, spts) / math.sqrt(neff)
    net_obs = smooth(fit.observed - fit.background, spts)
    top = float(np.max(net_obs)) if net_obs.size else 0.0
    calc_net = fit.calculated - fit.background
    idx = find_peaks(rs, prominence=nsig * float(np.median(noise)), distance=max(1, int(fw / step)))
    out = []
    lam = fit.wavelength_angstrom
    for i in idx:
        h = float(rs[i])
        if h < nsig * noise[i] or h < min_relative * top:
            continue
        lo_i, hi_i = max(0, i - int(fw / step)), min(x.size, i + int(fw / step) + 1)
        if h < 0.35 * float(np.max(calc_net[lo_i:hi_i])):
            continue
        tth = float(x[i])
        d = lam / (2 * math.sin(math.radians(tth - fit.zero_shift_deg) / 2)) if lam else float("nan")
        out.append({"two_theta": tth, "d": d, "intensity": h,
                    "relative_intensity": h / top if top > 0 else float("nan"),
                    "significance": h / float(noise[i])})
    out.sort(key=lambda p: -p["intensity"])
    return out


def explained_fraction(fit: FitResult, peaks: list[dict[str, float]]) -> float:
    step = float(np.median(np.diff(fit.x_deg)))
    fw = max(math.sqrt(max(fit.profile.get("W", 0.01), 1e-8)), 2 * step)
    un = sum(p["intensity"] for p in peaks) * fw * 1.06
    if fit.bragg_intensity + un <= 0:
        return 0.0
    return fit.bragg_intensity / (fit.bragg_intensity + un)


def visible(child: FitResult, pid: str, parent: FitResult, min_fraction: float) -> bool:
    """The added phase carries ≥ ``min_fraction`` of the Bragg intensity — or, for a weak
    scatterer (light elements next to heavy ones), ≥ 5 wt% with a clear BIC gain (≥ 25)."""
    p = child.phase(pid)
    if p.bragg_intensity >= min_fraction * child.bragg_intensity:
        return True
    return (p.weight_fraction or 0.0) >= 0.05 and child.bic < parent.bic - 25.0


def rwp_gain_ok(child: FitResult, parent: FitResult, min_gain: float) -> bool:
    """Rwp must drop by ``min_gain`` (relative) — unless the parent already fits to the noise
    (Rwp < 1.5 Rexp), where the BIC alone is a reliable judge (weak scatterers in clean data)."""
    if parent.rwp < 1.5 * parent.rexp:
        return True
    return child.rwp < (1.0 - min_gain) * parent.rwp


def at_strain_bound(fit: FitResult, max_strain: float) -> bool:
    """A phase whose refined strain sits on the bound is forced in, not found."""
    return any(abs(e) >= 0.97 * max_strain for p in fit.phases for e in p.strain)


def explains_new_peaks(fit: FitResult, new_id: str, parent_peaks: list[dict[str, float]]) -> bool:
    """The added phase must put calculated intensity on (at least one) peak that the parent fit
    left unexplained."""
    col = fit.per_phase.get(new_id)
    if col is None or not parent_peaks or col.max() <= 0:
        return False
    x = fit.x_deg
    hit = 0
    for pk in parent_peaks:
        c = float(np.interp(pk["two_theta"], x, col))
        if c >= 0.3 * pk["intensity"]:
            hit += 1
    idx = find_peaks(col, height=0.2 * col.max())
    return hit >= 1 if idx.size else False


def prune(keys: list[frozenset], fits: dict, width: int) -> list[frozenset]:
    """Beam: the best ``width`` hypotheses, dropping branches far behind the best (Rwp > 1.5×)."""
    if not keys:
        return []
    best = fits[keys[0]].rwp
    return [k for k in keys if fits[k].rwp <= 1.5 * best + 0.02][:width]


#: below this share of the observed net signal reproduced, no hypothesis is accepted (a phase
#: forced onto a pattern it does not explain reproduces little of it; a right phase with texture or
#: profile misfit still reproduces much more)
MIN_SIGNAL_EXPLAINED = 0.3


def confidence(hyps: list[Hypothesis], unexpl: list[dict[str, float]],
               explained_signal: float | None = None) -> tuple[str, str]:
    """Confidence level ("high" | "medium" | "low" | "none") and a sentence that says why.

    "none" when nothing fits, or the best hypothesis reproduces less than half of the observed
    Bragg intensity or net signal: the closest candidates are then partial matches, not answers.
    """
    if not hyps:
        return "none", ("No library phase explains this pattern: every peak is unexplained (the phase "
                        "is probably missing from the library).")
    b = hyps[0]
    e = b.explained_fraction
    sig = 1.0 if explained_signal is None else explained_signal
    strong = [p for p in unexpl if p.get("relative_intensity", 0) >= 0.05]
    alt = next((h for h in hyps[1:]), None)
    gap = alt.delta_score if alt else float("inf")
    model = any(p.model for p in b.phases)
    if e < 0.5 or sig < MIN_SIGNAL_EXPLAINED:
        names = ", ".join(f"{p.id}" for p in b.phases)
        return "none", (f"No library phase explains this pattern. Closest partial match: {names}, "
                        f"reproducing {min(e, sig):.0%} of the observed signal (Rwp {b.rwp:.1%}, "
                        f"Rexp {b.fit.rexp:.1%}) — not accepted.")
    names = " + ".join(f"{p.id} ({100 * (p.weight_fraction or 0):.0f} wt%)" for p in b.phases)
    verb = "explains" if len(b.phases) == 1 else "explain"
    parts = [f"{names} {verb} {e:.0%} of the Bragg intensity and {sig:.0%} of the net signal "
             f"(Rwp {b.rwp:.1%}, Rexp {b.fit.rexp:.1%})"]
    if alt is not None:
        parts.append(f"the next hypothesis ({' + '.join(alt.ids)}) is worse by ΔBIC = {gap:.0f}")
    if strong:
        parts.append(f"{len(strong)} unexplained peak(s) ≥ 5 % of the strongest, e.g. at "
                     + ", ".join(f"{p['two_theta']:.2f}°" for p in strong[:3]))
    if model:
        parts.append("includes a structural MODEL")
    if e >= 0.95 and sig >= 0.75 and not strong and gap >= NEAR_TIE_DELTA and not model:
        level = "high"
    elif e >= 0.8 and sig >= 0.6 and not any(p.get("relative_intensity", 0) >= 0.2 for p in unexpl):
        level = "medium"
    else:
        level = "low"
    if 0 < gap < NEAR_TIE_DELTA and level == "high":
        level = "medium"
    return level, "; ".join(parts) + "."


#: a predicted peak is "absent" when the data show less than this fraction of its calculated height
ABSENT_RATIO = 0.3
#: a phase whose strongest predicted intensity is absent beyond this fraction is not in the sample
MAX_ABSENT_FRACTION = 0.5


def missing_peak_fraction(fit: FitResult, pid: str) -> float:
    """The larger of the intensity share and the count share of a phase's judged predicted peaks
    that the data do not show (see `missing_peaks`); 1.0 for a phase with no intensity."""
    return _absent_share(*missing_peaks(fit, pid))


def _absent_share(by_intensity: float, by_count: float, n: int) -> float:
    # the count share only once there are enough peaks for it to mean something: one or two absent
    # weak peaks of a phase with three judged peaks are texture or overlap, not absence
    return max(by_intensity, by_count if n >= MIN_PEAKS_FOR_COUNT else 0.0)


#: the count share of absent peaks is judged only for phases with at least this many judged peaks
MIN_PEAKS_FOR_COUNT = 4


def missing_peaks(fit: FitResult, pid: str) -> tuple[float, float, int]:
    """How much of a phase's detectable predicted pattern the data do not show.

    The phase's own calculated contribution is compared, peak by peak (maxima of its column above
    10 % of its strongest), with what the data leave for it: observed − background − the other
    phases, both smoothed over the peak width. A peak counts as absent when the data show less than
    `ABSENT_RATIO` of its calculated height; only peaks that would rise 5σ above the noise are
    judged. A phase put in to absorb misfit (texture, profile) or strained onto a few impurity peaks
    predicts strong peaks where there are none; a real phase, even textured (March–Dollase r = 0.6
    lowers a peak to no less than r^1.5 ≈ 0.46 of its random-powder height), shows most of its
    strong peaks. Returns (absent share of the judged intensity, absent share of the judged peaks,
    number of judged peaks).
    """
    col = fit.per_phase.get(pid)
    if col is None or col.size == 0 or float(col.max()) <= 0:
        return 1.0, 1.0, 0
    x = fit.x_deg
    step = numeric.median(np.diff(x))
    fw = max(math.sqrt(max(fit.profile.get("W", 0.01), 1e-8)), 2 * step)
    spts = max(0.5, fw / 2.355 / step / 2.0)
    others = fit.calculated - fit.background - col
    left = smooth(fit.observed - fit.background - others, spts)
    mine = smooth(col, spts)
    sig = fit.sigma if fit.sigma is not None else np.sqrt(np.maximum(fit.calculated, 1.0))
    idx = find_peaks(mine, height=0.1 * float(mine.max()), distance=max(1, int(0.5 * fw / step)))
    judged = [i for i in idx if mine[i] >= 5.0 * sig[i]]
    if not judged:
        return 0.0, 0.0, 0
    absent = [i for i in judged if left[i] < ABSENT_RATIO * mine[i]]
    total = sum(float(mine[i]) for i in judged)
    return (sum(float(mine[i]) for i in absent) / total, len(absent) / len(judged), len(judged))


#: free cell parameters per crystal system (the lattice a "cell"-mode fit refines)
FREE_CELL_PARAMETERS = {"cubic": 1, "tetragonal": 2, "hexagonal": 2, "trigonal": 2,
                        "rhombohedral": 2, "orthorhombic": 3, "monoclinic": 4, "triclinic": 6}
#: how far a library cell may be strained when the peaks themselves carry no evidence of the
#: phase: thermal expansion over a few hundred kelvin and modest substitution (≈ 1 %)
STRAIN_WITHOUT_EVIDENCE = 0.015


#: how far a cell may differ from the library's and still be *that* compound at the library's
#: temperature: a cell from another laboratory or sample, modest substitution (3 %)
ANALOGUE_STRAIN = 0.03
#: upper linear thermal expansion coefficients (1/K): molecular crystals and solvates (glymes,
#: organics) expand up to ~1e-4 /K; oxides, salts and metals up to ~2e-5 /K
EXPANSION_PER_K = {"molecular": 1.0e-4, "inorganic": 2.0e-5}
ROOM_TEMPERATURE_K = 295.0


def strain_allowance(phase: Any, pattern_temperature_k: float | None) -> float:
    """Largest relative cell change at which ``phase`` is still the library compound.

    `ANALOGUE_STRAIN` plus the thermal expansion between the CIF's temperature and the pattern's
    (room temperature where either is not stated): a glyme solvate solved at 100 K and measured at
    room temperature may expand ~2 %, an oxide between 295 K and 600 K ~0.6 %. Beyond this the
    match is an isostructural analogue (another compound with the same structure), not an
    identification of the library phase.
    """
    comp = {}
    try:
        comp = phase.formula_from_sites()
    except Exception:  # noqa: BLE001 - a phase without sites is judged as inorganic
        pass
    kind = "molecular" if comp.get("C", 0) > 0 and (comp.get("H", 0) > 0 or comp.get("D", 0) > 0) \
        else "inorganic"
    t_cif = getattr(phase, "temperature_k", None) or ROOM_TEMPERATURE_K
    t_pat = pattern_temperature_k or ROOM_TEMPERATURE_K
    return ANALOGUE_STRAIN + EXPANSION_PER_K[kind] * abs(float(t_pat) - float(t_cif))


def unsupported(fit: FitResult, pid: str, max_strain: float,
                allowance: float | None = None) -> str | None:
    """Why the data do not support phase ``pid`` in ``fit`` (None when they do).

    - its strong predicted peaks are absent (`missing_peak_fraction` > `MAX_ABSENT_FRACTION`);
    - none of its peaks would rise 5σ above the noise: nothing of it is detected;
    - its cell sits on the strain bound: forced onto the pattern, not found;
    - it shows no more peaks than its cell has free parameters, and its cell had to be strained
      beyond `STRAIN_WITHOUT_EVIDENCE` to meet them: with a free cell any phase that has a
      reflection near a peak "explains" it, so such a match says nothing about identity;
    - its cell differs from the library's by more than ``allowance`` (`strain_allowance`): an
      isostructural analogue, not the library compound.
    """
    p = fit.phase(pid)
    by_intensity, by_count, n = missing_peaks(fit, pid)
    absent = _absent_share(by_intensity, by_count, n)
    if absent > MAX_ABSENT_FRACTION:
        return f"{absent:.0%} of its strong predicted peaks are absent"
    if n == 0:
        return "none of its peaks rises 5σ above the noise"
    strain = max((abs(e) for e in p.strain), default=0.0)
    if strain >= 0.97 * max_strain:
        return f"its cell sits on the strain bound ({strain:.1%})"
    if allowance is not None and strain > allowance:
        return (f"its cell differs by {strain:.1%} from the library's (≤ {allowance:.1%} expected "
                "for the same compound): an isostructural analogue at best")
    present = n - round(by_count * n)
    k = 1 if p.lattice_mode == "isotropic" else FREE_CELL_PARAMETERS.get(p.crystal_system, 1)
    if present <= k and strain > STRAIN_WITHOUT_EVIDENCE:
        return (f"{present} peak(s) for {k} free cell parameter(s), met only by straining the cell "
                f"{strain:.1%}")
    return None


def signal_explained(fit: FitResult) -> float:
    """Share of the observed net signal (observed − background, where it rises 3σ above the noise)
    that the calculated pattern reproduces: 1 − Σ|obs − calc| / Σ (obs − bg) over those points."""
    sig = fit.sigma if fit.sigma is not None else np.sqrt(np.maximum(fit.calculated, 1.0))
    net = fit.observed - fit.background
    m = net > 3.0 * sig
    if not np.any(m):
        return 0.0
    return float(max(0.0, 1.0 - np.sum(np.abs(fit.observed[m] - fit.calculated[m])) / np.sum(net[m])))
