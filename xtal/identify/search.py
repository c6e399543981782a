"""`identify`: which library phases are in a pattern, how much of each, what is left unexplained.

1. prepare the pattern and screen every phase (``screen``);
2. beam search of phase sets with quick whole-pattern fits (isotropic strain, width-only profile,
   decimated data), a phase added only when the acceptance rules (``acceptance``) allow;
3. backward elimination of phases that no longer earn their place;
4. final refinement of the best hypotheses (full data, full profile, lattice per axis) and the
   answer: ranked hypotheses, unexplained peaks, amorphous estimate, confidence.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np

from xtal.errors import IdentificationError
from xtal.identify import acceptance as acc
from xtal.identify.blas import one_blas_thread
from xtal.identify.fit import DEFAULT_MAX_STRAIN, EmptyLibraryError, WholePatternFit, dmin_for
from xtal.identify.model import PhaseModel
from xtal.identify.prepare import (PreparedData, estimate_background, find_peaks, initial_width,
                                   prepare_pattern, smooth)
from xtal.identify.prepare import radiation_from
from xtal.identify.result import (NEAR_TIE_DELTA, FitResult, Hypothesis, IdentificationResult,
                                  ScreenHit)
from xtal.identify.screen import screen_models

#: A phase must lower the BIC by at least this much to be added to a hypothesis.
DEFAULT_MIN_DELTA_BIC = 10.0
_QUICK_PROFILE = "width"


class NoPeaksError(IdentificationError):
    """No Bragg peak rises above the noise: there is nothing to identify."""


@dataclasses.dataclass
class SearchOptions:
    """The knobs of `identify` (see its docstring)."""

    max_phases: int = 5
    max_candidates: int = 8
    beam_width: int = 2
    max_strain: float = DEFAULT_MAX_STRAIN
    min_delta_bic: float = DEFAULT_MIN_DELTA_BIC
    min_support: float = 0.2
    refine_lattice: bool | str = True
    n_hypotheses: int = 4
    n_first: int = 4
    min_rwp_gain: float = 0.025
    min_intensity_fraction: float = 0.01


class _Search:
    """State of one identification: data, radiation, phase models, the fits made so far."""

    def __init__(self, data: PreparedData, rad: Any, by_id: dict[str, Any], fixed_bg, fw0: float,
                 opts: SearchOptions):
        self.data, self.rad, self.by_id, self.opts = data, rad, by_id, opts
        self.fixed_bg, self.fw0 = fixed_bg, fw0
        self.ids = list(by_id)
        self.n_fits = 0
        self.fits: dict[frozenset, FitResult] = {}
        self.valid: set[frozenset] = set()
        dmin = dmin_for(data, rad, opts.max_strain)
        self.models = {i: PhaseModel(by_id[i], dmin, "isotropic") for i in self.ids}
        # the search runs on a decimated copy when the peaks are finely sampled (≥ 8 points/FWHM)
        step = float(np.median(np.diff(data.x)))
        dec = int(max(1, math.floor(fw0 / step / 4.0)))
        self.qdata = data if dec == 1 else PreparedData(data.x[::dec], data.y[::dec],
                                                        data.sigma[::dec], data.source)
        self.qfixed_bg = None if fixed_bg is None else fixed_bg[::dec]
        self.prof0 = {"U": 0.0, "V": 0.0, "W": fw0 * fw0, "eta": 0.5}
        self.hit_by_id: dict[str, ScreenHit] = {}

    # --- fits ------------------------------------------------------------------------------
    def quick(self, set_ids: list[str], parent: FitResult | None,
              strain: dict[str, float] | None = None) -> FitResult:
        """Search fit: isotropic strain, width-only profile, decimated data, strong reflections."""
        strain = strain or {}
        self.n_fits += 1
        if parent is not None:
            # keep the parent's cells and zero shift, not its profile: with phases missing the
            # profile of the parent fit is distorted (it absorbs the missing peaks)
            parent = dataclasses.replace(parent, profile=dict(self.prof0))
        fit = WholePatternFit(self.qdata, [self.by_id[i] for i in set_ids], self.rad,
                              lattice="isotropic", fixed_background=self.qfixed_bg,
                              max_strain=self.opts.max_strain, min_rel_area=1e-3)
        return fit.run(start=parent, strains=[strain.get(i, self.hit_by_id[i].strain) for i in set_ids],
                       fwhm_deg=self.fw0, refine_profile=_QUICK_PROFILE, max_iter=12, ftol=1e-4,
                       amorphous=False)

    def final(self, order: list[str], start: FitResult) -> FitResult:
        """Final refinement: full data, full profile, lattice per axis, exact profile tails."""
        self.n_fits += 1
        fit = WholePatternFit(self.data, [self.by_id[i] for i in order], self.rad,
                              lattice=self.opts.refine_lattice, fixed_background=self.fixed_bg,
                              max_strain=self.opts.max_strain, exact_profile=True)
        return fit.run(start=start, refine_profile="auto", max_iter=25)

    # --- search levels ---------------------------------------------------------------------
    def first_level(self, cands: list[str]) -> list[frozenset]:
        """Every screened candidate alone (and at its alternative strain)."""
        o = self.opts
        for c in cands[:o.n_first]:
            f = self.quick([c], None)
            for alt in self.hit_by_id[c].alternatives:
                f2 = self.quick([c], None, {c: alt})
                if f2.bic < f.bic:
                    f = f2
            self.fits[frozenset([c])] = f
            if f.phases[0].scale > 0 and not acc.at_strain_bound(f, o.max_strain):
                self.valid.add(frozenset([c]))
        return acc.prune(sorted(self.valid, key=lambda k: self.fits[k].bic), self.fits, o.beam_width)

    def extend(self, beam: list[frozenset]) -> list[frozenset]:
        """One more phase on each hypothesis of the beam, where the acceptance rules allow."""
        new_beam = []
        for parent_key in beam:
            parent = self.fits[parent_key]
            # every library phase may join (a weak scatterer can be missed by the first screen)
            rest = [c for c in self.ids if c not in parent_key]
            if not rest:
                continue
            rpos = np.clip(smooth(parent.observed - parent.calculated,
                                  max(0.5, math.sqrt(parent.profile["W"]) / 2.355 /
                                      float(np.median(np.diff(self.qdata.x))))), 0, None)
            # rank additions by a screen of the parent's positive residual (cheap)
            rescreen = screen_models([self.models[c] for c in rest], self.qdata.x, rpos, self.rad,
                                     self.opts.max_strain, self.fw0, self.qdata.sigma)
            trial = [h.id for h in rescreen if h.score > 0.2][:4]
            for h in rescreen:
                self.hit_by_id[h.id] = ScreenHit(h.id, self.hit_by_id[h.id].score, h.strain,
                                                 h.n_reflections)
            parent_peaks: list | None = None
            for c in trial[:4 if parent_key == beam[0] else 2]:
                key = parent_key | {c}
                if key in self.fits:
                    if key in self.valid:
                        new_beam.append(key)
                    continue
                f = self.quick([p.id for p in parent.phases] + [c], parent)
                self.fits[key] = f
                ok, parent_peaks = self._accept(f, parent, c, rpos, parent_peaks)
                if ok:
                    self.valid.add(key)
                    new_beam.append(key)
        return acc.prune(sorted(set(new_beam), key=lambda k: self.fits[k].bic), self.fits,
                         self.opts.beam_width)

    def _accept(self, f: FitResult, parent: FitResult, c: str, rpos: np.ndarray,
                parent_peaks: list | None) -> tuple[bool, list | None]:
        o = self.opts
        ok = (all(p.scale > 0 for p in f.phases) and f.bic < parent.bic - o.min_delta_bic
              and acc.visible(f, c, parent, o.min_intensity_fraction)
              and acc.rwp_gain_ok(f, parent, o.min_rwp_gain)
              and not acc.at_strain_bound(f, o.max_strain))
        if ok:
            ok = acc.positive_support(f.per_phase[c], rpos) >= o.min_support
        if ok and parent.rwp >= 1.2 * parent.rexp:
            # misfit-dominated parent: the new phase must also explain a residual peak
            # (in a noise-limited fit the BIC is a reliable judge on its own)
            if parent_peaks is None:
                parent_peaks = acc.unexplained_peaks(parent, nsig=4.0, min_relative=0.003)
            ok = acc.explains_new_peaks(f, c, parent_peaks)
        return ok, parent_peaks

    def _earns(self, key: frozenset, pid: str) -> bool:
        o = self.opts
        sub = key - {pid}
        if sub not in self.fits:
            self.fits[sub] = self.quick([p.id for p in self.fits[key].phases if p.id != pid],
                                        self.fits[key])
        fs, fk = self.fits[sub], self.fits[key]
        return (fk.bic < fs.bic - o.min_delta_bic and acc.rwp_gain_ok(fk, fs, o.min_rwp_gain)
                and acc.visible(fk, pid, fs, o.min_intensity_fraction))

    def eliminate(self) -> None:
        """Backward elimination: a phase of a top hypothesis that no longer earns its place once
        the others are in (e.g. a decoy added early that a later phase explains better) goes."""
        for key in sorted(self.valid, key=lambda k: self.fits[k].bic)[:2]:
            cur = key
            changed = True
            while changed and len(cur) > 1:
                changed = False
                for pid in sorted(cur, key=lambda p: self.fits[cur].phase(p).weight_fraction or 0):
                    if self._earns(cur, pid):
                        continue
                    sub = cur - {pid}
                    if self.fits[sub].phases and all(p.scale > 0 for p in self.fits[sub].phases):
                        self.valid.discard(cur)
                        self.valid.add(sub)
                        cur = sub
                        changed = True
                        break

    def hypotheses(self) -> list[Hypothesis]:
        """Final refinement of the best distinct hypotheses; supersets that do not beat their
        subsets after it are dropped."""
        o = self.opts
        hyps: list[Hypothesis] = []
        for key in sorted(self.valid, key=lambda k: self.fits[k].bic)[:o.n_hypotheses]:
            q = self.fits[key]
            f = self.final([p.id for p in q.phases], q)
            if not all(p.scale > 0 for p in f.phases) or acc.at_strain_bound(f, o.max_strain):
                continue
            hyps.append(Hypothesis(phases=f.phases, rwp=f.rwp, score=f.bic, fit=f))
        hyps.sort(key=lambda h: h.score)
        kept: list[Hypothesis] = []
        for h in hyps:
            if any(set(k.ids) < set(h.ids) and h.score > k.score - o.min_delta_bic for k in kept):
                continue
            kept.append(h)
        return kept


@one_blas_thread
def identify(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None, max_phases: int = 5,
             max_candidates: int = 8, beam_width: int = 2, background: str = "chebyshev",
             max_strain: float = DEFAULT_MAX_STRAIN, min_delta_bic: float = DEFAULT_MIN_DELTA_BIC,
             min_support: float = 0.2, refine_lattice: bool | str = True, n_hypotheses: int = 4,
             n_first: int = 4, min_rwp_gain: float = 0.025, min_intensity_fraction: float = 0.01,
             two_theta_range: tuple[float, float] | None = None,
             polarization: Any = None) -> IdentificationResult:
    """Which library phases are in ``pattern``, how much of each, what is left unexplained.

    Parameters
    ----------
    pattern : ``xtal.io.Pattern``.
    phases : the library (``Library.phases()``); ids must be unique.
    wavelength : None (the file's), a number in Å (a single line) or a tube name ("CuKa", …:
        Kα1/Kα2 doublet).
    max_phases : at most this many phases per hypothesis (≤ 5 is sensible).
    max_candidates : phases kept after the screen for whole-pattern fitting.
    beam_width : hypotheses extended at each level of the search.
    background : "chebyshev" (refined) or "snip"/"arpls" (pybaselines, fixed).
    min_delta_bic : a phase must lower the BIC by this much to be added.
    min_rwp_gain : an added phase must also lower Rwp by this relative amount (2.5 %): on real
        data a decoy can otherwise buy a small BIC gain by absorbing profile misfit.
    min_intensity_fraction : an added phase must carry at least this fraction (1 %) of the
        Bragg intensity (the detection limit of a whole-pattern fit with free strain).
    min_support : fraction of an added phase's calculated intensity that must sit on positive
        residual of the parent fit (otherwise it only absorbs misfit).
    refine_lattice : final refinement of the lattice: True (per axis, by crystal system),
        "isotropic", or False (library cell). The search itself uses isotropic strain.
    polarization : beam polarisation for the LP factor (None = unpolarised lab beam).

    Raises ``EmptyLibraryError`` (no phases), ``NoSignalError`` (all zero / constant),
    ``NoPeaksError`` (nothing above the noise), ``MissingWavelengthError``.
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise EmptyLibraryError("the library is empty: no phase to identify against")
    ids = [str(p.id) for p in phases]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise IdentificationError(f"duplicate phase ids in the library: {dup}")
    if background not in ("chebyshev", "snip", "arpls"):
        raise IdentificationError(f"unknown background {background!r}")
    for name, v, lo in (("max_phases", max_phases, 1), ("max_candidates", max_candidates, 1),
                        ("beam_width", beam_width, 1), ("n_hypotheses", n_hypotheses, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise IdentificationError(f"{name} must be an integer ≥ {lo}, got {v!r}", field=name)
    opts = SearchOptions(max_phases, max_candidates, beam_width, max_strain, min_delta_bic,
                         min_support, refine_lattice, n_hypotheses, n_first, min_rwp_gain,
                         min_intensity_fraction)
    rad = radiation_from(pattern, wavelength, polarization)
    data = prepare_pattern(pattern, two_theta_range, rad)
    fw0 = initial_width(data)
    bg0 = estimate_background(data.x, data.y, "arpls" if background == "arpls" else "snip", fw0)
    pk = find_peaks(data.x, data.y - bg0, data.sigma, nsig=6.0)
    if pk.pos.size == 0:
        raise NoPeaksError("no Bragg peak rises above the noise (6σ): nothing to identify",
                           path=data.source)
    search = _Search(data, rad, {str(p.id): p for p in phases},
                     bg0 if background in ("snip", "arpls") else None, fw0, opts)
    hits = screen_models(list(search.models.values()), data.x, data.y - bg0, rad, max_strain, fw0,
                         data.sigma)
    search.hit_by_id = {h.id: h for h in hits}
    cands = [h.id for h in hits if h.score > 0.2 and h.n_reflections > 0][:max_candidates]
    beam = search.first_level(cands)
    level = 1
    while beam and level < max_phases:
        level += 1
        beam = search.extend(beam)
    search.eliminate()
    hyps = search.hypotheses()
    res = _conclude(hyps, rad, pk)
    res.screen, res.n_fits, res.source = hits, search.n_fits, data.source
    res.x_deg, res.observed = data.x, data.y
    res.elapsed_s = time.perf_counter() - t0
    return res


def _conclude(hyps: list[Hypothesis], rad: Any, pk: Any) -> IdentificationResult:
    """Ranks, near ties, unexplained peaks, amorphous estimate, confidence and warnings."""
    unexpl: list[dict[str, float]] = []
    amorph = None
    if hyps:
        best = hyps[0]
        for h in hyps:
            h.delta_score = h.score - best.score
            h.near_tie = h is not best and h.delta_score < NEAR_TIE_DELTA
        unexpl = acc.unexplained_peaks(best.fit)
        for h in hyps:
            h.explained_fraction = acc.explained_fraction(
                h.fit, unexpl if h is best else acc.unexplained_peaks(h.fit))
        amorph = best.fit.amorphous_fraction
        if best.explained_fraction < 0.5:
            # the zero shift of a fit that explains little is meaningless: d from the raw 2θ
            for p_ in unexpl:
                p_["d"] = rad.primary / (2 * math.sin(math.radians(p_["two_theta"]) / 2))
    else:
        # nothing fits: every observed peak is unexplained
        lam = rad.primary
        top = float(pk.height.max())
        for p_, h_ in sorted(zip(pk.pos, pk.height), key=lambda t: -t[1]):
            unexpl.append({"two_theta": float(p_), "d": lam / (2 * math.sin(math.radians(p_) / 2)),
                           "intensity": float(h_), "relative_intensity": float(h_) / top,
                           "significance": float("nan")})
    level_, statement = acc.confidence(hyps, unexpl)
    warnings: list[str] = []
    if hyps:
        warnings.extend(w for w in hyps[0].fit.warnings if "MODEL" not in w)
    # MODEL phases of the best hypothesis (alternatives say so in their own rows)
    model_ids = sorted({p.id for p in hyps[0].phases if p.model}) if hyps else []
    for mid in model_ids:
        warnings.append(f"{mid} is a structural MODEL (not a refined structure): its presence "
                        "and fraction are indicative only")
    if amorph is not None and amorph > 0.05:
        warnings.append(f"broad intensity not explained by background or phases: amorphous/halo "
                        f"fraction ≈ {amorph:.0%} of the scattered intensity")
    return IdentificationResult(
        wavelength=rad.primary, hypotheses=hyps, unexplained_peaks=unexpl,
        amorphous_fraction_estimate=amorph, confidence=level_, warnings=warnings,
        confidence_statement=statement, radiation=rad, model_phases=model_ids)
