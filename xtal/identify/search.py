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
from typing import Any, Callable, Sequence

import numpy as np

from xtal.errors import IdentificationError
from xtal.identify import acceptance as acc
from xtal.identify.amorphous import (HOLDER_CAVEAT, halo_analysis, holder_like,
                                     internal_standard_amorphous)
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


_FORKED_SEARCH: list = []     # in a forked worker: the `_Search` it inherited from its parent


def _in_worker(method: str, args: tuple) -> FitResult:
    return getattr(_FORKED_SEARCH[0], method)(*args)


class _ForkedWorkers:
    """Processes forked from this one that run a search's independent fits (a level's trial
    fits, the final fits of the other hypotheses). They inherit the search's data, models and
    options at the fork; only a fit's arguments and its result travel (pickled). The same
    computation in another process: the same results as one process."""

    def __init__(self, search: "_Search", n: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.n = n
        self.search = search
        _FORKED_SEARCH[:] = [search]
        self.ex = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork"))
        self.ex.submit(int).result()

    def submit(self, method: str, args: tuple) -> Any:
        return self.ex.submit(_in_worker, method, args)

    def result(self, future: Any, method: str, args: tuple) -> FitResult:
        """The worker's fit; if the worker died (killed, out of memory), this process does it."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            return getattr(self.search, method)(*args)

    def close(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)
        _FORKED_SEARCH.clear()


def fork_workers_available() -> bool:
    """Whether `identify` can fork worker processes here (the "fork" start method: Linux)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


class _Search:
    """State of one identification: data, radiation, phase models, the fits made so far."""

    def __init__(self, data: PreparedData, rad: Any, by_id: dict[str, Any], fixed_bg, fw0: float,
                 opts: SearchOptions):
        self.data, self.rad, self.by_id, self.opts = data, rad, by_id, opts
        self.fixed_bg, self.fw0 = fixed_bg, fw0
        self.ids = list(by_id)
        self.n_fits = 0
        self.progress = None   # optional callback(stage, n_fits) from `identify(progress=...)`
        self.stage = "search"
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
        self.aliases: dict[str, list[str]] = {}     # id → other entries of the same phase
        self.pattern_temperature_k: float | None = None
        self.rejected: list[Hypothesis] = []       # final fits with no supported phase
        self.sizes: dict[str, float] = {}          # phase id → chosen size broadening (deg)
        self.asymmetry, self.asymmetry_su = 0.0, None   # chosen axial-divergence asymmetry (deg)
        self.size_choice: dict[str, dict] = {}     # phase id → its value, s.u., Scherrer size
        self.rejected_why: dict[str, str] = {}     # phase id → why the data do not support it
        self._allowance: dict[str, float] = {}
        self.workers: _ForkedWorkers | None = None

    def allowance(self, pid: str) -> float:
        """Largest cell change at which ``pid`` is still the library compound (per phase, cached)."""
        if pid not in self._allowance:
            self._allowance[pid] = acc.strain_allowance(self.by_id[pid], self.pattern_temperature_k)
        return self._allowance[pid]

    def tell(self, stage: str | None = None) -> None:
        """Report the stage and the number of fits so far to the caller's progress callback."""
        if stage is not None:
            self.stage = stage
        if self.progress is not None:
            self.progress(self.stage, self.n_fits)

    # --- fits ------------------------------------------------------------------------------
    def quick(self, set_ids: list[str], parent: FitResult | None,
              strain: dict[str, float] | None = None) -> FitResult:
        """Search fit: isotropic strain, width-only profile, decimated data, strong reflections."""
        return self.quick_many([(set_ids, parent, strain)])[0]

    def quick_many(self, jobs: list[tuple[list[str], FitResult | None, dict | None]]) -> list[FitResult]:
        """The search fits of ``jobs`` ((set_ids, parent, strain) each, as `quick`), in order:
        independent fits, shared with the forked workers when the search has them (the same
        results as one after the other: the same computation in another process)."""
        args = []
        for set_ids, parent, strain in jobs:
            strain = strain or {}
            if parent is not None:
                # keep the parent's cells and zero shift, not its profile: with phases missing the
                # profile of the parent fit is distorted (it absorbs the missing peaks)
                parent = dataclasses.replace(parent, profile=dict(self.prof0))
            args.append((list(set_ids), parent,
                         [strain.get(i, self.hit_by_id[i].strain) for i in set_ids]))
        return self._run_many("_quick_fit", args)

    def _quick_fit(self, set_ids: list[str], parent: FitResult | None,
                   strains: list[Any]) -> FitResult:
        fit = WholePatternFit(self.qdata, [self.by_id[i] for i in set_ids], self.rad,
                              lattice="isotropic", fixed_background=self.qfixed_bg,
                              max_strain=self.opts.max_strain, min_rel_area=1e-3)
        return fit.run(start=parent, strains=strains, fwhm_deg=self.fw0,
                       refine_profile=_QUICK_PROFILE, max_iter=12, ftol=1e-4, amorphous=False)

    def _final_fit(self, order: list[str], start: FitResult) -> FitResult:
        """Final refinement: full data, full profile, lattice per axis, exact profile tails."""
        fit = WholePatternFit(self.data, [self.by_id[i] for i in order], self.rad,
                              lattice=self.opts.refine_lattice, fixed_background=self.fixed_bg,
                              max_strain=self.opts.max_strain, exact_profile=True)
        return fit.run(start=start, refine_profile="auto", max_iter=25)

    def _start_many(self, method: str, args: list[tuple],
                    local: set[int] | None = None) -> list[Callable[[], FitResult]]:
        """One thunk per ``a`` in ``args`` giving ``getattr(self, method)(*a)``. With forked
        workers, the jobs not in ``local`` (default: all but every (n+1)-th, n workers) start in
        them at once; the others run in this process when their thunk is called. Call the thunks
        in order: fits are counted (and reported) as they are collected."""
        if self.workers is None:
            local = set(range(len(args)))
        elif local is None:
            local = {k for k in range(len(args)) if k % (self.workers.n + 1) == 0}
        futures = {k: self.workers.submit(method, a) for k, a in enumerate(args) if k not in local}

        def collect(k: int, a: tuple) -> Callable[[], FitResult]:
            def get() -> FitResult:
                f = self.workers.result(futures[k], method, a) if k in futures else getattr(self, method)(*a)
                self.n_fits += 1
                self.tell()
                return f
            return get
        return [collect(k, a) for k, a in enumerate(args)]

    def _run_many(self, method: str, args: list[tuple]) -> list[FitResult]:
        """``getattr(self, method)(*a)`` for every ``a``, in order (shared with the workers)."""
        return [get() for get in self._start_many(method, args)]

    # --- search levels ---------------------------------------------------------------------
    def first_level(self, cands: list[str]) -> list[frozenset]:
        """Every screened candidate alone (and at its alternative strain)."""
        o = self.opts
        jobs = [([c], None, strain) for c in cands[:o.n_first]
                for strain in [None, *({c: alt} for alt in self.hit_by_id[c].alternatives)]]
        done = iter(self.quick_many(jobs))
        for c in cands[:o.n_first]:
            f = next(done)
            for _alt in self.hit_by_id[c].alternatives:
                f2 = next(done)
                if f2.bic < f.bic:
                    f = f2
            self.fits[frozenset([c])] = f
            if f.phases[0].scale > 0 and not acc.at_strain_bound(f, o.max_strain):
                self.valid.add(frozenset([c]))
        return acc.prune(sorted(self.valid, key=lambda k: self.fits[k].bic), self.fits, o.beam_width)

    def extend(self, beam: list[frozenset]) -> list[frozenset]:
        """One more phase on each hypothesis of the beam, where the acceptance rules allow."""
        new_beam = []
        # (parent, key, added phase, parent's positive residual, fitted here?) in the order the
        # serial search met them; the fits run together, then are judged in that order
        trials: list[tuple[frozenset, frozenset, str, np.ndarray, bool]] = []
        jobs = []
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
                                     self.opts.max_strain, self.fw0, self.qdata.sigma,
                                     coverage=False)
            # entries of one structure type whose cells differ by less than the strain range are
            # one trial, not several (three bcc-Ti entries must not fill the trial slots): the
            # entry whose library cell is closest to the data (smallest screen strain) stands in
            groups: dict[str, list[str]] = {}
            reps = _distinct([h.id for h in rescreen if h.score > 0.2], self.by_id, groups,
                             rtol=self.opts.max_strain)
            strain = {h.id: abs(float(h.strain)) for h in rescreen}
            trial = [min([r, *groups.get(r, [])], key=lambda i: strain.get(i, 0.0)) for r in reps][:4]
            for h in rescreen:
                self.hit_by_id[h.id] = ScreenHit(h.id, self.hit_by_id[h.id].score, h.strain,
                                                 h.n_reflections, coverage=h.coverage)
            scheduled = {t[1] for t in trials if t[4]}
            for c in trial[:4 if parent_key == beam[0] else 2]:
                key = parent_key | {c}
                here = key not in self.fits and key not in scheduled
                trials.append((parent_key, key, c, rpos, here))
                if here:
                    scheduled.add(key)
                    set_ids = [p.id for p in parent.phases] + [c]
                    # the starting strains as this parent's screen left them (the next parent's
                    # screen replaces them)
                    jobs.append((set_ids, parent, {i: self.hit_by_id[i].strain for i in set_ids}))
        fitted = iter(self.quick_many(jobs))
        parent_peaks: dict[frozenset, list | None] = {}
        for parent_key, key, c, rpos, here in trials:
            if not here:
                if key in self.valid:
                    new_beam.append(key)
                continue
            self.fits[key] = f = next(fitted)
            ok, parent_peaks[parent_key] = self._accept(f, self.fits[parent_key], c, rpos,
                                                        parent_peaks.get(parent_key))
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
        if ok:
            # the added phase must not predict strong peaks that the data do not show, nor meet
            # the few peaks it explains only by a strained cell
            ok = acc.unsupported(f, c, o.max_strain, self.allowance(c)) is None
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
        """Final refinement of the best distinct hypotheses (texture and displacement where the
        data ask for them, phases that only absorb misfit removed); supersets that do not beat
        their subsets after it are dropped."""
        o = self.opts
        hyps: list[Hypothesis] = []
        keys = sorted(self.valid, key=lambda k: self.fits[k].bic)[:o.n_hypotheses]
        # the final fits of the other hypotheses run in the workers (if any) while this process
        # refines the leading one and its real-sample terms
        finals = self._start_many("_final_fit", [([p.id for p in self.fits[k].phases], self.fits[k])
                                                 for k in keys], local={0})
        for rank, get_final in enumerate(finals):
            f = get_final()
            if not all(p.scale > 0 for p in f.phases) or acc.at_strain_bound(f, o.max_strain):
                continue
            if rank == 0:         # the terms of a real sample, for the leading hypothesis
                f = self.real_sample_terms(f)
            before = f
            f = self.drop_absent(f)
            if f is None:         # nothing of it is supported: a partial match at most
                self.rejected.append(Hypothesis(phases=before.phases, rwp=before.rwp,
                                                score=before.bic, fit=before))
                continue
            hyps.append(Hypothesis(phases=f.phases, rwp=f.rwp, score=f.bic, fit=f))
            if rank == 0:
                hyps.extend(self._alias_variants(f))
        hyps.sort(key=lambda h: h.score)
        kept: list[Hypothesis] = []
        for h in hyps:
            if any(set(k.ids) <= set(h.ids) and h is not k and h.score > k.score - o.min_delta_bic
                   for k in kept):
                continue
            kept.append(h)
        return kept

    # --- terms of a real sample ------------------------------------------------------------
    def _refit(self, order: list[str], start: FitResult, po: dict, *, exact: bool,
               profile: str = "auto", max_iter: int = 25,
               sizes: dict[str, float] | None = None,
               asymmetry: float | None = None) -> FitResult:
        return self._refit_many([dict(order=order, start=start, po=po, exact=exact,
                                      profile=profile, max_iter=max_iter, sizes=sizes,
                                      asymmetry=asymmetry)])[0]

    def _refit_many(self, jobs: list[dict[str, Any]]) -> list[FitResult]:
        """Refits (`_refit`'s arguments as a dict each), independent of one another: shared with
        the workers. The chosen sizes and asymmetry are resolved here (the workers' copies of the
        search are as they were at the fork)."""
        args = [(j["order"], j["start"], j["po"], j["exact"], j.get("profile", "auto"),
                 j.get("max_iter", 25), self.sizes if j.get("sizes") is None else j["sizes"],
                 self.asymmetry if j.get("asymmetry") is None else j["asymmetry"]) for j in jobs]
        out = []
        for f in self._run_many("_refit_fit", args):
            f = self._with_sizes(f)
            if f.asymmetry_deg > 0 and f.asymmetry_deg == self.asymmetry:
                f.asymmetry_su = self.asymmetry_su
            out.append(f)
        return out

    def _refit_fit(self, order: list[str], start: FitResult, po: dict, exact: bool, profile: str,
                   max_iter: int, sizes: dict[str, float], asymmetry: float) -> FitResult:
        data, bg = (self.data, self.fixed_bg) if exact else (self.qdata, self.qfixed_bg)
        fit = WholePatternFit(data, [self.by_id[i] for i in order], self.rad,
                              lattice=self.opts.refine_lattice, fixed_background=bg,
                              max_strain=self.opts.max_strain, exact_profile=exact,
                              preferred_orientation=po, size_broadening=sizes,
                              asymmetry_deg=asymmetry)
        return fit.run(start=start, refine_profile=profile, max_iter=max_iter)

    def _with_sizes(self, f: FitResult) -> FitResult:
        """Attach the chosen per-phase size broadening (value, s.u., Scherrer size) to the phases."""
        for p in f.phases:
            p.size_broadening = self.size_choice.get(p.id) if p.size_broadening_deg > 0 else None
        return f

    def _asymmetry(self, order: list[str], best: FitResult, po: dict, profile: str) -> FitResult:
        """Axial-divergence asymmetry where the data ask for it: A = 0.01–0.16° (a share of each
        peak at 2θ − A·cot 2θ, `WholePatternFit`) tried on the search grid, the best refitted
        exactly and kept when the BIC drops by ``min_delta_bic`` + ln N; its s.u. from the χ²
        curvature through the neighbouring grid values."""
        o = self.opts
        penalty = o.min_delta_bic + math.log(max(best.n_points, 2))
        grid = [0.0, 0.01, 0.02, 0.04, 0.08, 0.16]
        fits = self._refit_many([dict(order=order, start=best, po=po, exact=False, profile=profile,
                                      max_iter=8, asymmetry=a) for a in grid])
        k = int(np.argmin([f_.bic for f_ in fits]))
        if k == 0 or not fits[k].bic < fits[0].bic - penalty:
            return best
        fk = self._refit(order, best, po, exact=True, profile=profile, max_iter=10, asymmetry=grid[k])
        if not fk.bic < best.bic - penalty:
            return best
        self.asymmetry, self.asymmetry_su = grid[k], _grid_su(grid, fits, k)
        fk.asymmetry_su = self.asymmetry_su
        return fk

    def _size_broadening(self, order: list[str], best: FitResult, po: dict,
                         profile: str) -> FitResult:
        """Per-phase size broadening where the data ask for it: with several phases, each phase
        (≥ 5 wt%) is tried with an extra FWHM S/cos θ (S = ½, 1, 2, 4 × its current FWHM) added in
        quadrature to the common profile; the best S is kept when it lowers the BIC by
        ``min_delta_bic`` + ln N (S is chosen, not refined: one more parameter). Its s.u. comes
        from the curvature of χ² through the neighbouring grid values; the Scherrer size
        L = 0.9 λ / S(rad) is reported beside it (relative to the common profile, which already
        holds the instrument and the sharpest phase)."""
        o = self.opts
        if len(order) < 2:
            return best           # one phase: the common U, V, W already describe its widths
        penalty = o.min_delta_bic + math.log(max(best.n_points, 2))
        for p in sorted(best.phases, key=lambda p: -(p.weight_fraction or 0)):
            if (p.weight_fraction or 0) < 0.05:
                continue
            grid = [0.0] + [k * p.fwhm_deg for k in (0.5, 1.0, 2.0, 4.0)]
            # the grid on the search's (decimated) data; the choice is then refitted exactly
            fits = self._refit_many([dict(order=order, start=best, po=po, exact=False,
                                          profile=profile, max_iter=8, sizes={**self.sizes, p.id: S})
                                     for S in grid])
            k = int(np.argmin([f_.bic for f_ in fits]))
            if k == 0 or not fits[k].bic < fits[0].bic - penalty:
                continue
            fk = self._refit(order, best, po, exact=True, profile=profile, max_iter=10,
                             sizes={**self.sizes, p.id: grid[k]})
            if not fk.bic < best.bic - penalty:
                continue
            S = grid[k]
            su = _grid_su(grid, fits, k)
            lam = self.rad.primary
            size = 0.9 * lam / math.radians(S)
            self.size_choice[p.id] = {
                "fwhm_deg_at_zero_angle": S, "fwhm_su": su,
                "scherrer_size_angstrom": size,
                "scherrer_size_su": None if su is None else size * su / S,
                "note": "extra broadening ∝ 1/cos θ relative to the common profile (instrument and "
                        "sharpest phase); chosen on a grid by BIC, not refined"}
            self.sizes[p.id] = S
            best = self._with_sizes(fk)
        return best

    def real_sample_terms(self, f: FitResult) -> FitResult:
        """Sample displacement (lab, Bragg–Brentano beam), preferred orientation per phase
        (March–Dollase along the low-index axis that would lower χ² most) and per-phase size
        broadening (`_size_broadening`), each kept only when it lowers the BIC by
        ``min_delta_bic``; tried only when the fit is misfit-dominated (Rwp ≥ 1.5 Rexp). A minor
        phase that only absorbed the misfit of the textured or broadened phases is then removed
        (it must survive the real-sample terms of the others)."""
        o = self.opts
        if f.rwp < 1.5 * f.rexp or acc.signal_explained(f) < acc.MIN_SIGNAL_EXPLAINED:
            return f          # noise-limited already, or no answer that texture could rescue
        order = [p.id for p in f.phases]
        best, profile, po = f, "auto", {}
        if getattr(self.rad.polarization, "kind", "unpolarized") != "synchrotron":
            fd = self._refit(order, f, {}, exact=True, profile="displacement", max_iter=10)
            if fd.bic < best.bic - o.min_delta_bic:
                best, profile = fd, "displacement"
        for p in sorted(best.phases, key=lambda p: -(p.weight_fraction or 0)):
            if (p.weight_fraction or 0) < 0.05:
                continue
            axes = self._best_axes(best, p)
            if not axes:
                continue
            trials = self._refit_many([dict(order=order, start=best, po=dict(po, **{p.id: ax}),
                                            exact=True, profile=profile, max_iter=10) for ax in axes])
            k = int(np.argmin([t.bic for t in trials]))
            if trials[k].bic < best.bic - o.min_delta_bic:
                po[p.id], best = axes[k], trials[k]
        best = self._asymmetry(order, best, po, profile)
        best = self._size_broadening(order, best, po, profile)
        if (po or self.sizes) and len(order) > 1:
            for p in sorted(best.phases, key=lambda p: p.weight_fraction or 0)[:-1]:
                sub = [i for i in order if i != p.id]
                fs = self._refit(sub, best, {k: v for k, v in po.items() if k != p.id}, exact=True,
                                 profile=profile, max_iter=10)
                if not best.bic < fs.bic - o.min_delta_bic:
                    order, best = sub, fs
                    po.pop(p.id, None)
        return best

    def _alias_variants(self, f: FitResult) -> list[Hypothesis]:
        """The leading hypothesis with each phase replaced by another entry of the same phase (the
        same compound, space group and cell from another source): such a pair cannot be told
        apart, and the answer must say so (a near tie), not pick one silently."""
        out = []
        ids = [p.id for p in f.phases]
        po = {p.id: tuple(p.preferred_orientation["axis"]) for p in f.phases if p.preferred_orientation}
        for k, pid in enumerate(ids):
            for alt in self.aliases.get(pid, []):
                if alt in ids:           # both entries already in the answer: no variant to try
                    continue
                order = ids[:k] + [alt] + ids[k + 1:]
                po_alt = {(alt if i == pid else i): ax for i, ax in po.items()}
                start = dataclasses.replace(f, phases=[dataclasses.replace(p, id=alt) if p.id == pid
                                                       else p for p in f.phases])
                fa = self._refit(order, start, po_alt, exact=True)
                out.append(Hypothesis(phases=fa.phases, rwp=fa.rwp, score=fa.bic, fit=fa))
        return out

    def _best_axes(self, f: FitResult, p: Any) -> list[tuple[int, int, int]]:
        """The low-index axes along which a little texture would lower χ² the most (no fits).

        First order: the gain (Dᵀ W r)² / Dᵀ W D of the derivative D of the phase's pattern with
        respect to the March–Dollase r at r = 1. Averaged over a reflection's equivalents that
        derivative is −3/2·(3⟨cos²α⟩ − 1), a second-rank average: in a uniaxial Laue group
        (hexagonal, trigonal, tetragonal) the derivative patterns of all axes are multiples of one
        another, so their gains tie exactly, and every tied axis (to 1e-6) is returned for the
        caller to refit (best BIC kept). In a cubic group they vanish; the axes are then ranked at
        second order, where they differ (⟨cos⁴α⟩): texture of either sense, δ = r − 1, changes
        the pattern by ½δ²·D₂ (D₂ from the areas at r = 1 ± 0.01), so the gain is
        (D₂ᵀ W r)² / D₂ᵀ W D₂ where D₂ᵀ W r > 0. [] when no axis gains."""
        from xtal.profiles import pseudo_voigt

        resid = f.observed - f.calculated
        w = 1.0 / np.square(f.sigma)
        own = float(np.sum(w * np.square(f.per_phase[p.id])))   # the phase's pattern, same norm
        first: list[tuple[tuple[int, int, int], float]] = []
        second: list[tuple[tuple[int, int, int], float]] = []
        g = dict(zero=f.zero_shift_deg, disp=f.displacement_deg, **f.profile)
        for ax in candidate_axes(self.by_id[p.id]):
            wpf = WholePatternFit(PreparedData(f.x_deg, f.observed, f.sigma, None), [self.by_id[p.id]],
                                  self.rad, lattice=self.opts.refine_lattice,
                                  fixed_background=np.zeros_like(f.x_deg),
                                  max_strain=self.opts.max_strain, preferred_orientation={p.id: ax})
            m = wpf.models[0]
            q = m.q_from_cell(p.cell)
            pk = wpf.peaks(m, q, g, True, 1.0)
            if pk is None:
                continue
            d = pseudo_voigt(f.x_deg, pk[0], pk[1] * pk[5], pk[2], g["eta"])["values"] * p.scale
            den = float(np.sum(w * d * d))
            if den > 1e-20 * own:          # (a cubic phase's vanishes to rounding: ≤ 1e-10)
                first.append((ax, float(np.sum(w * d * resid)) ** 2 / den))
                continue
            h = 0.01
            up, dn = wpf.peaks(m, q, g, False, 1.0 + h), wpf.peaks(m, q, g, False, 1.0 - h)
            d2 = pseudo_voigt(f.x_deg, pk[0], (up[1] + dn[1] - 2.0 * pk[1]) / (h * h), pk[2],
                              g["eta"])["values"] * p.scale
            num, den2 = float(np.sum(w * d2 * resid)), float(np.sum(w * d2 * d2))
            second.append((ax, num * num / den2 if num > 0 and den2 > 0 else 0.0))
        gains = first or second
        top = max((g_ for _, g_ in gains), default=0.0)
        if top <= 0.0:
            return []
        return [ax for ax, g_ in gains if g_ >= (1.0 - 1e-6) * top]

    def drop_absent(self, f: FitResult) -> FitResult | None:
        """Remove phases the data do not support (`acceptance.unsupported`: absent strong peaks, a
        strained match to too few peaks, a cell on the strain bound), the least supported first."""
        while f.phases:
            why = {p.id: acc.unsupported(f, p.id, self.opts.max_strain, self.allowance(p.id))
                   for p in f.phases}
            bad = [pid for pid, w in why.items() if w]
            if not bad:
                return f
            frac = {pid: acc.missing_peak_fraction(f, pid) for pid in bad}
            worst = min(bad, key=lambda pid: (-frac[pid], f.phase(pid).weight_fraction or 0.0))
            self.rejected_why.setdefault(worst, why[worst])    # said if nothing else is left
            order = [p.id for p in f.phases if p.id != worst]
            if not order:
                return None
            po = {p.id: tuple(p.preferred_orientation["axis"]) for p in f.phases
                  if p.preferred_orientation and p.id != worst}
            f = self._refit(order, f, po, exact=True)
        return None


def candidate_axes(phase: Any) -> list[tuple[int, int, int]]:
    """Low-index preferred-orientation axes of a phase, one per set of symmetry equivalents."""
    from xtal.simulate import group_ops, laue_rotations

    rots = laue_rotations(group_ops(phase))
    seen, out = set(), []
    for ax in ((0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)):
        eq = np.einsum("j,mjk->mk", np.array(ax), rots)
        key = max(map(tuple, np.abs(eq).tolist()))
        if key not in seen:
            seen.add(key)
            out.append(ax)
    return out


@one_blas_thread
def identify(pattern: Any, phases: Sequence[Any], *, wavelength: Any = None, max_phases: int = 5,
             max_candidates: int = 8, beam_width: int = 2, background: str = "chebyshev",
             max_strain: float = DEFAULT_MAX_STRAIN, min_delta_bic: float = DEFAULT_MIN_DELTA_BIC,
             min_support: float = 0.2, refine_lattice: bool | str = True, n_hypotheses: int = 4,
             n_first: int = 4, min_rwp_gain: float = 0.025, min_intensity_fraction: float = 0.01,
             two_theta_range: tuple[float, float] | None = None,
             polarization: Any = None,
             internal_standard: tuple[str, float] | None = None,
             progress: Any = None, positions: bool | str = "auto",
             workers: int = 1) -> IdentificationResult:
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
    positions : the intensity-free check (`xtal.identify.positions`: Le Bail fits on the accepted
        phases' cells, each phase removed in turn) reported beside the structure-based fit —
        "auto" (default) runs it when the best answer rests on a MODEL structure (intensities
        from atoms placed by a rule, not refined), True always (also for textured answers; it
        costs several Le Bail fits, seconds to a minute for large cells), False never.
    min_support : fraction of an added phase's calculated intensity that must sit on positive
        residual of the parent fit (otherwise it only absorbs misfit).
    refine_lattice : final refinement of the lattice: True (per axis, by crystal system),
        "isotropic", or False (library cell). The search itself uses isotropic strain.
    polarization : beam polarisation for the LP factor (None = unpolarised lab beam).
    internal_standard : (phase id, known weight fraction) of a crystalline standard mixed into the
        sample: the absolute amorphous fraction of the sample follows from its refined fraction.
    progress : optional callback ``progress(stage, n_fits)`` called at each stage ("screen",
        "hypotheses with k phases", "elimination", "final refinement") and after each fit; the
        caller renders it (the CLI on stderr). Nothing is printed here.
    workers : processes for the search's independent fits (each level's trial fits, the final
        fits of the other hypotheses): 1 (default) this process alone; n > 1 also n − 1 processes
        forked from this one (Linux; elsewhere 1). The answer is the same for any n.

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
                        ("beam_width", beam_width, 1), ("n_hypotheses", n_hypotheses, 1),
                        ("workers", workers, 1)):
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
    if workers > 1 and fork_workers_available():
        # forked now, before the screen and the fits fill the heap: fewer pages shared
        # copy-on-write between the processes
        try:
            search.workers = _ForkedWorkers(search, workers - 1)
        except OSError:            # no process can be started (limits): this process alone
            search.workers = None
    try:
        search.progress = progress
        t_c = getattr(pattern, "temperature_c", None)
        search.pattern_temperature_k = None if t_c is None else float(t_c) + 273.15
        search.tell(f"screen of {len(phases)} phases")
        hits = screen_models(list(search.models.values()), data.x, data.y - bg0, rad, max_strain,
                             fw0, data.sigma)
        search.hit_by_id = {h.id: h for h in hits}
        cands = _distinct([h.id for h in hits if h.score > 0.2 and h.n_reflections > 0],
                          search.by_id, search.aliases)[:max_candidates]
        search.tell("hypotheses with 1 phase")
        beam = search.first_level(cands)
        level = 1
        while beam and level < max_phases:
            level += 1
            search.tell(f"hypotheses with {level} phases")
            beam = search.extend(beam)
        search.tell("elimination")
        search.eliminate()
        search.tell("final refinement")
        hyps = search.hypotheses()
    finally:
        if search.workers is not None:
            search.workers.close()
            search.workers = None
    if internal_standard is not None:
        sid, known = internal_standard
        if sid not in search.by_id or not 0.0 < float(known) < 1.0:
            raise IdentificationError(f"internal standard {internal_standard!r}: give a library phase id "
                                      "and its known weight fraction in (0, 1)")
    res = _conclude(hyps, rad, pk, internal_standard, search.rejected, search.rejected_why)
    _positions(res, positions, data, rad, search)
    if res.confidence in ("none", "low"):
        hint = _tube_hint(data, data.y - bg0, list(search.models.values()), rad, hits, max_strain, fw0)
        if hint:
            res.warnings.append(hint)
    res.screen, res.n_fits, res.source = hits, search.n_fits, data.source
    res.x_deg, res.observed = data.x, data.y
    res.elapsed_s = time.perf_counter() - t0
    search.tell("done")
    return res


def _grid_su(grid: list[float], fits: list[FitResult], k: int) -> float | None:
    """s.u. of a value chosen on a grid: the parabola through χ² at grid[k−1], grid[k], grid[k+1]
    (σ² = χ²ᵣ / a for χ² ≈ a·x² + …); None at the ends of the grid or without curvature."""
    if not 0 < k < len(grid) - 1:
        return None
    chi = [f_.chi2 * max(f_.n_points - f_.n_params, 1) for f_ in fits[k - 1:k + 2]]
    a = float(np.polyfit(np.array(grid[k - 1:k + 2]), np.array(chi), 2)[0])
    chi_red = fits[k].chi2 if fits[k].chi2 > 0 else 1.0
    return math.sqrt(chi_red / a) if a > 0 else None


def _positions(res: IdentificationResult, mode: bool | str, data: PreparedData, rad: Any,
               search: _Search) -> None:
    """Run the Le Bail positions check on the best answer when ``mode`` asks for it."""
    b = res.best
    if b is None or mode not in (True, "auto"):
        return
    why = [w for w, hit in (("a MODEL structure", any(p.model for p in b.phases)),
                            ("texture refined", any(p.preferred_orientation for p in b.phases)))
           if hit]
    if mode == "auto" and "a MODEL structure" not in why:
        return
    from xtal.identify.positions import positions_check

    search.tell("Le Bail positions check")
    chk = positions_check(data, rad, [search.by_id[i] for i in b.ids], b.fit,
                          reason=", ".join(why) if why else "asked for")
    res.positions = chk
    for pid, v in chk.phases.items():
        if not v["required"]:
            res.warnings.append(f"{pid} is not required by its peak positions (Le Bail, "
                                f"{v['significance']:.1f}σ): its presence rests on the structure "
                                "model's intensities")


def _distinct(ids: list[str], by_id: dict[str, Any], aliases: dict[str, list[str]] | None = None,
              rtol: float = 0.01) -> list[str]:
    """Candidates without duplicates: entries of one compound in one space group with cells within
    ``rtol`` (1 %: the same phase from two sources) are searched once, under the first id; the
    others are recorded in ``aliases`` (first id → the rest) and come back as explicit near ties."""
    seen: list[tuple] = []
    out = []
    for i in ids:
        ph = by_id[i]
        key = (tuple(sorted((ph.formula_from_sites() or {}).keys())), ph.spacegroup_number)
        cell = np.array(ph.cell.parameters, dtype=float)
        first = next((j for k, c, j in seen if k == key and np.allclose(c, cell, rtol=rtol)), None)
        if first is not None:
            if aliases is not None:
                aliases.setdefault(first, []).append(i)
            continue
        seen.append((key, cell, i))
        out.append(i)
    return out


def _conclude(hyps: list[Hypothesis], rad: Any, pk: Any,
              internal_standard: tuple[str, float] | None = None,
              rejected: list[Hypothesis] | None = None,
              rejected_why: dict[str, str] | None = None) -> IdentificationResult:
    """Ranks, near ties, unexplained peaks, amorphous content, confidence and warnings."""
    unexpl: list[dict[str, float]] = []
    halo = None
    signal = None
    warnings: list[str] = []
    if hyps:
        best = hyps[0]
        for h in hyps:
            h.delta_score = h.score - best.score
            h.near_tie = h is not best and h.delta_score < NEAR_TIE_DELTA
        unexpl = acc.unexplained_peaks(best.fit)
        for h in hyps:
            h.explained_fraction = acc.explained_fraction(
                h.fit, unexpl if h is best else acc.unexplained_peaks(h.fit))
        signal = acc.signal_explained(best.fit)
        halo = halo_analysis(best.fit)
        if best.explained_fraction < 0.5 or signal < acc.MIN_SIGNAL_EXPLAINED:
            # the zero shift of a fit that explains little is meaningless: d from the raw 2θ
            for p_ in unexpl:
                p_["d"] = rad.primary / (2 * math.sin(math.radians(p_["two_theta"]) / 2))
    if not hyps or (signal is not None and (hyps[0].explained_fraction < 0.5
                                            or signal < acc.MIN_SIGNAL_EXPLAINED)):
        if not hyps or not unexpl:
            # nothing fits: every observed peak is unexplained
            lam = rad.primary
            top = float(pk.height.max())
            unexpl = [{"two_theta": float(p_), "d": lam / (2 * math.sin(math.radians(p_) / 2)),
                       "intensity": float(h_), "relative_intensity": float(h_) / top,
                       "significance": float("nan")}
                      for p_, h_ in sorted(zip(pk.pos, pk.height), key=lambda t: -t[1])]
    level_, statement = acc.confidence(hyps, unexpl, signal)
    partial: list[Hypothesis] = []
    if level_ == "none" and hyps:
        partial, hyps, halo = hyps, [], None     # closest candidates, not an answer
    elif not hyps and rejected:
        # the fits whose phases the data did not support (analogues, strained onto a few peaks)
        partial = sorted(rejected, key=lambda h: h.score)[:3]
        why = rejected_why or {}
        statement = ("No library phase explains this pattern. Closest partial match"
                     + ("es: " if len(partial) > 1 else ": ")
                     + "; ".join(" + ".join(f"{i} ({why[i]})" if i in why else i for i in h.ids)
                                 for h in partial) + " — not accepted.")
    amorph = halo.fraction if halo is not None and halo.detected else None
    amorph_su = halo.fraction_su if halo is not None and halo.detected else None
    if hyps:
        warnings.extend(w for w in hyps[0].fit.warnings if "MODEL" not in w)
    if internal_standard is not None and hyps:
        std_id, known = internal_standard
        p_std = next((p for p in hyps[0].phases if p.id == std_id), None)
        if p_std is None or not p_std.weight_fraction:
            warnings.append(f"internal standard {std_id} was not found in the best hypothesis: no "
                            "absolute amorphous fraction")
        else:
            amorph, amorph_su = internal_standard_amorphous(p_std.weight_fraction,
                                                            p_std.weight_fraction_su, known)
    # MODEL phases of the best hypothesis (alternatives say so in their own rows)
    model_ids = sorted({p.id for p in hyps[0].phases if p.model}) if hyps else []
    for mid in model_ids:
        warnings.append(f"{mid} is a structural MODEL (not a refined structure): its presence "
                        "and fraction are indicative only")
    if amorph is not None and amorph > 0.05:
        warnings.append(f"amorphous content ≈ {amorph:.0%} "
                        + ("of the sample (internal standard)" if internal_standard else
                           "of the scattered intensity (halo required beyond the background)"
                           + (HOLDER_CAVEAT if holder_like(halo.centre_q) else "")))
    res = IdentificationResult(
        wavelength=rad.primary, hypotheses=hyps, unexplained_peaks=unexpl,
        amorphous_fraction_estimate=amorph, confidence=level_, warnings=warnings,
        confidence_statement=statement, radiation=rad, model_phases=model_ids)
    res.amorphous_fraction_su = amorph_su
    res.amorphous = halo.to_json_dict() if halo is not None else None
    res.explained_signal = signal
    res.noise_model = (hyps or partial)[0].fit.noise_model if (hyps or partial) else ""
    res.partial_matches = partial
    return res


def _tube_hint(data: PreparedData, net: np.ndarray, models: list, rad: Any, hits: list, max_strain: float,
               fw0: float) -> str | None:
    """A hint when the library matches far better at another common tube's wavelength (a Cu
    pattern given as Mo, …): the screen is repeated on the same 2θ data with Cu, Mo and Co Kα1."""
    from xtal.beam import TUBES, Radiation

    own = max((h.score for h in hits), default=0.0)
    best = None
    for tube, (l1, _, _) in TUBES.items():
        if tube not in ("Cu", "Mo", "Co") or abs(l1 - rad.primary) < 0.02 * rad.primary:
            continue
        other = Radiation((l1,), (1.0,), f"{tube}Ka1", rad.polarization)
        scr = screen_models(models, data.x, net, other, max_strain, fw0, data.sigma)
        if scr and (best is None or scr[0].score > best[1]):
            best = (tube, scr[0].score, scr[0].id)
    if best and best[1] >= 0.6 and best[1] > own + 0.2:
        return (f"hint: the pattern matches {best[2]} far better if it was measured with {best[0]} Kα "
                f"(screen score {best[1]:.2f} against {own:.2f} at the stated λ = {rad.primary:.5f} Å) "
                "— check the wavelength")
    return None
