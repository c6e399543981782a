"""`analyse_series`: the driver — frames in chunks through the continuity chain (sequentially, in
worker processes or on a Dask cluster), written into the result's Dataset, then presence, refits,
events, thermal expansion and axis merging.

Parallelism (``workers > 1`` or a Dask ``scheduler``): frames are cut into contiguous chunks; a coarse
sequential chain over the first frame of every chunk seeds each chunk, the chunks are chained
independently, and at each boundary the first frames of chunk k+1 are refitted from chunk k's last
solution until they agree with it (the coarse chain and the boundaries in the main process, while
the workers fit; a chunk that starts on an idle worker takes its own coarse frame).  Memory is
flat in the number of frames: frames are read chunk by chunk, and only the per-frame arrays of the
Dataset (plus the binned heat map) are kept.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from xtal.errors import MissingWavelengthError, SeriesError
from xtal.heap import release_free_memory
from xtal.series.chain import Chain, FrameRecord, SeriesOptions, coarse_step, run_chunk
from xtal.series.events import detect_events
from xtal.series.lattice import auto_merging, thermal_expansion
from xtal.series.presence import consistency_pass, presence
from xtal.series.result import FrameTable, SeriesResult
from xtal.beam import parse_polarization, parse_radiation
from xtal.series.source import FrameSource, heat_grid, reference_wavelength

__all__ = ["analyse_series"]

Progress = Callable[[int, int], Any]


def analyse_series(series, phases: Sequence, *, wavelength: Any = None,
                   temperatures: Sequence[float] | str | None = None,
                   instrument: str | None = None,
                   progress: Progress | None = None, workers: int = 1, chunk_size: int | None = None,
                   scheduler: str | None = None,
                   screen_every: int = 4, switch_penalty: float = 8.0, min_share: float = 0.004,
                   enter_z: float = 8.0, presence_z: float = 6.0, drop_z: float = 3.0,
                   background: str = "chebyshev", n_background: int | None = 12,
                   max_strain: float = 0.05, two_theta_range: tuple[float, float] | None = None,
                   heatmap_bins: int = 600, max_nan_fraction: float = 0.05,
                   refine_lattice: Any = True, polarization: Any = None) -> SeriesResult:
    """Phase map of a thermal series (see docs/series.md for the method).

    Parameters
    ----------
    series : ``xarray.DataArray`` (frame × two_theta_deg, coords temperature_c/time_s/segment/source,
        attrs wavelength_angstrom — as `xtal.io.read_series` and `xtal.synth.synthetic_series`
        make; may be lazily backed by a netCDF file), a directory/glob/file path, or a list of
        `Pattern`.
    phases : the library phases (`xtal.structures.Phase`) that may occur.
    wavelength : λ (Å, tube name) when the data do not state it (checked against them otherwise).
    polarization : beam polarisation for the LP factor (``"synchrotron"`` or an
        ``xtal.simulate.Polarization``); None = unpolarised lab beam.
    temperatures : per-frame temperatures (°C) or a temperature-log CSV (for file series).
    progress : ``progress(frames_done, n_frames)``, called as chunks of frames are finished (the CLI
        passes a tqdm bar); None or False: no progress report.  The analysis itself never prints.
    workers, chunk_size, scheduler : parallel chunks (processes), or a Dask distributed scheduler
        address ``"tcp://host:port"`` (needs dask.distributed installed).
    screen_every, switch_penalty, min_share, enter_z, drop_z : phase-presence control (docs/series.md).
    n_background : Chebyshev terms of the refined background (12 follows an amorphous halo of a
        few degrees FWHM, so that it is not taken for a crystalline phase; None: identify's default).

    Frames that cannot be used (unreadable, NaN, no signal) are *skipped and recorded*
    (``SeriesResult.skipped``, status/skip_reason in the Dataset); frames with a different λ raise
    `SeriesError`.
    """
    t0 = time.perf_counter()
    phases = list(phases)
    if not phases:
        raise SeriesError("no phases given for the series analysis")
    ids = [p.id for p in phases]
    if len(set(ids)) != len(ids):
        raise SeriesError(f"duplicate phase ids: {ids}")
    # text is resolved once, here at the entry: frames and fits receive typed objects
    polarization = None if polarization is None else parse_polarization(polarization)
    wavelength = None if wavelength is None else parse_radiation(wavelength, polarization)
    opts = SeriesOptions(wavelength=wavelength, polarization=polarization, screen_every=screen_every,
                         switch_penalty=switch_penalty, min_share=min_share, enter_z=enter_z,
                         presence_z=presence_z, drop_z=drop_z, background=background,
                         n_background=n_background, max_strain=max_strain,
                         two_theta_range=two_theta_range, heatmap_bins=heatmap_bins,
                         max_nan_fraction=max_nan_fraction, refine_lattice=refine_lattice)
    src = FrameSource(series, wavelength=wavelength, temperatures=temperatures, instrument=instrument)
    heat_range, heat_x, wl_ref, synthetic = heat_grid(
        src, two_theta_range, heatmap_bins, reference_wavelength(wavelength, src.attrs))
    if not wl_ref:
        raise MissingWavelengthError("the series states no wavelength (neither the frames nor the "
                                     "file); give one (--wavelength / wavelength=)")
    synthetic = synthetic or bool(src.attrs.get("synthetic", 0))
    table = FrameTable(src.n, ids, heat_x)
    run = _Run(src, table, phases, opts, heat_range, wl_ref, progress)
    if chunk_size is None:
        chunk_size = default_chunk_size(src.n, max(1, int(workers)), scheduler)
    timing = run.fit_frames(max(1, int(workers)), max(2, int(chunk_size)), scheduler)

    t_stage = time.perf_counter()
    table.label_segments()
    # presence: evidence and Viterbi; refit frames whose set differs from what was fitted (twice)
    for _ in range(2):
        present, _ev = presence(table, phases, opts)
        if not consistency_pass(src, table, present, phases, opts):
            break
    present, evidence = presence(table, phases, opts)
    present &= table.fitted_positive()   # values are reported only where the phase was fitted
    timing["presence_and_refits_s"] = time.perf_counter() - t_stage

    t_stage = time.perf_counter()
    ds = table.finish(present, evidence)
    ds.attrs.update({
        "title": ("SYNTHETIC series — " if synthetic else "") + "xtal series analysis",
        "synthetic": int(synthetic),
        "wavelength_angstrom": wl_ref if wl_ref else np.nan,
    })
    if "program" in src.attrs:
        ds.attrs["program"] = src.attrs["program"]
    res = SeriesResult(dataset=ds, phase_info={p.id: _phase_info(p) for p in phases},
                       notes=list(src.notes) + table.all_notes(),
                       options=dict(opts.__dict__))
    res.events = detect_events(res)
    res.lattice_transitions = [t for pid in ids for t in auto_merging(res, pid)]
    # an expansion fit never runs across a lattice transition of its phase
    res.expansion = {pid: thermal_expansion(res, pid, split_at_c=[
        t["T_merge_C"] for t in res.lattice_transitions if t["phase"] == pid and t.get("T_merge_C") is not None])
        for j, pid in enumerate(ids) if present[:, j].any()}
    timing["events_s"] = time.perf_counter() - t_stage
    res.timing = {k: round(v, 3) for k, v in timing.items()}
    res.elapsed_s = time.perf_counter() - t0
    res.to_dataset()      # the series-level results as JSON attributes of the Dataset
    return res


def default_chunk_size(n_frames: int, workers: int, scheduler: str | None) -> int:
    """Frames read (and fitted) together: 64 for one chain; in parallel two chunks per worker
    (each chunk costs a coarse-chain frame, fitted in the main process beside the workers, and a
    boundary refit), within 64–256 frames so that memory stays flat (a chunk is read whole).
    Measured on 1 000 frames × 4 000 points × 8 phases, 2 workers: chunks of 64 → 1.4–1.6× the
    single chain, 250 → 1.54–1.68× (benchmarks/RESULTS.md).  A Dask cluster's size is not known
    here: 64."""
    if scheduler is not None or workers <= 1:
        return 64
    return min(256, max(64, -(-n_frames // (2 * workers))))


def _phase_info(p) -> dict:
    return {"name": getattr(p, "name", p.id), "model": bool(getattr(p, "is_model", False)),
            "kind": getattr(getattr(p, "provenance", None), "kind", None),
            "spacegroup": getattr(p, "spacegroup_hm", None),
            "spacegroup_number": getattr(p, "spacegroup_number", None),
            "library_cell": list(p.cell.parameters),
            "cell_mass_dalton": float(p.cell_mass_dalton)}


class _Run:
    """Fitting every frame of a source into a FrameTable, in chunks."""

    def __init__(self, src: FrameSource, table: FrameTable, phases: list, opts: SeriesOptions,
                 heat_range, wl_ref, progress: Progress | None):
        self.src, self.table, self.phases, self.opts = src, table, phases, opts
        self.heat_range, self.wl_ref = heat_range, wl_ref
        self.progress = progress if callable(progress) else None
        self.done = 0

    def _chunk(self, a: int, b: int, state):
        return run_chunk(self.src.fetch_items(a, b), self.phases, self.opts, state,
                         self.heat_range, self.wl_ref)

    def _store(self, recs: list[FrameRecord]) -> None:
        for r in recs:
            self.table.put(r)
        self.done += len(recs)
        if self.progress is not None:
            self.progress(self.done, self.src.n)

    def fit_frames(self, workers: int, chunk_size: int, scheduler: str | None) -> dict[str, float]:
        n = self.src.n
        chunks = [(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]
        t_stage = time.perf_counter()
        if scheduler is None and (len(chunks) == 1 or workers == 1):
            # one chain over all frames, read chunk by chunk
            state = None
            for a, b in chunks:
                recs, state = self._chunk(a, b, state)
                self._store(recs)
            return {"chain_s": time.perf_counter() - t_stage}
        pool = _Pool(workers, scheduler)
        try:
            timing = self._parallel(chunks, pool, pool.n_workers())
        finally:
            pool.close()
        timing["parallel_chunks_s"] = time.perf_counter() - t_stage
        return timing

    def _parallel(self, chunks, pool: "_Pool", n_workers: int) -> dict[str, float]:
        """Chunks on the pool, each seeded by the coarse chain; the main process runs the coarse
        chain and the boundary reconciliation while the workers fit (their results do not depend
        on the order: chunk k is seeded by the coarse chain alone, boundary k needs chunks k and
        k+1 only)."""
        states: dict[int, dict] = {}
        pending = {}
        it_chunks = iter(chunks)
        phases = pool.share(self.phases)
        coarse = Chain(self.phases, self.opts)
        timing = {"coarse_chain_s": 0.0, "reconcile_s": 0.0}
        heads: list[FrameRecord] = []       # the first chunk's first frame, fitted by the coarse chain
        lagging: list[int] = []             # coarse frames taken by workers, not yet by the coarse chain
        # one chunk queued behind the busy workers: a freed worker starts at once, and no more
        # frames than that are held in memory (a chunk's frames are read when it is submitted)
        max_inflight = max(2, 1 + n_workers)
        after = {a0: (a1, b1) for (a0, _), (a1, b1) in zip(chunks[:-1], chunks[1:])}
        done: set[int] = set()

        def feed():
            for a, b in it_chunks:
                first = a == chunks[0][0]
                t = time.perf_counter()
                catch_up()
                # a chunk that a worker starts at once (one is idle) takes its coarse frame itself,
                # from the coarse chain's state before it, instead of waiting for this process to
                # fit it; the coarse chain fits that frame later, only if a later chunk needs it
                coarse_head = not first and len(pending) < n_workers
                if coarse_head:
                    seed = coarse.state() if coarse.seeded else None
                    lagging.append(a)
                else:
                    seed, rec = self._coarse_seed(coarse, a)
                timing["coarse_chain_s"] += time.perf_counter() - t
                if first:
                    heads.append(rec)
                # the first chunk's first frame *is* the coarse chain's first frame (a fresh
                # chain seeded on it): its record is kept and the chunk goes on from the
                # coarse state, instead of a worker seeding the same frame a second time
                start = a + 1 if first else a
                if start < b:
                    pending[pool.submit(worker_chunk, self.src.fetch_items(start, b), phases,
                                        self.opts, seed, self.heat_range, self.wl_ref,
                                        coarse_head)] = a
                else:           # a chunk of one frame: the coarse frame was all of it
                    finished(a, [], seed)
                if len(pending) >= max_inflight:
                    return

        def catch_up():
            # the coarse frames that workers took themselves, now fitted by the coarse chain
            while lagging:
                self._coarse_seed(coarse, lagging.pop(0))

        def finished(a: int, recs: list[FrameRecord], state: dict | None) -> None:
            states[a] = state
            self._store((heads if a == chunks[0][0] else []) + recs)
            done.add(a)
            release_free_memory()   # the chunk's frames, freed (xtal.heap)

        def reconcile():
            # refit the first frames of chunk k+1 from chunk k's final state (both fitted)
            t = time.perf_counter()
            for a0 in sorted(done):
                nxt = after.get(a0)
                if nxt is not None and nxt[0] in done:
                    self._reconcile(states[a0], *nxt)
                    del after[a0]
            timing["reconcile_s"] += time.perf_counter() - t

        feed()
        while pending:
            for fut in pool.first_done(pending):
                a = pending.pop(fut)
                finished(a, *fut.result())
            feed()
            reconcile()
        return timing

    def _coarse_seed(self, chain: Chain, a: int) -> tuple[dict | None, FrameRecord]:
        """Chain state at frame a, the next frame of a sequential (screened) pass over the first
        frames of the chunks, and frame a's record."""
        return coarse_step(chain, self.src.fetch([a])[a], a, self.opts, self.heat_range, self.wl_ref)

    def _reconcile(self, state, a1, b1) -> None:
        """Refit frames a1.. of a chunk from the previous chunk's final state until they agree."""
        for i in range(a1, b1):
            was_ok = self.table.ok()[i]
            old = _row_phases(self.table, i)
            recs, state = self._chunk(i, i + 1, state)
            new = recs[0]
            self.table.put(new)
            if was_ok and new.status == "ok" and _agree(old, new):
                break


def worker_chunk(items, phases, opts, seed, heat_range, wl_ref,
                 coarse_head: bool) -> tuple[list[FrameRecord], dict]:
    """`run_chunk` as a worker runs it: first the freed memory of its previous chunk is handed back
    to the system (`xtal.heap.release_free_memory`), so that a worker's memory stays flat however
    many chunks it fits."""
    release_free_memory()
    return run_chunk(items, phases, opts, seed, heat_range, wl_ref, coarse_head=coarse_head)


def _row_phases(table: FrameTable, k: int) -> dict[str, tuple]:
    """{phase: (cell[:3], cell_su[:3])} of the phases fitted with z > 0 in row k."""
    with np.errstate(invalid="ignore"):
        sig = table.a("fitted")[k] & (table.a("scale_z")[k] > 0)
    return {table.phase_ids[j]: (table.a("cell")[k, j, :3].copy(), table.a("cell_su")[k, j, :3].copy())
            for j in np.flatnonzero(sig)}


def _agree(old: dict[str, tuple], new: FrameRecord) -> bool:
    """Same phase set and cells within 5 s.u. (or 2e-4 relative) for every shared phase."""
    s2 = {p for p in new.fitted if new.phase.get(p, {}).get("z", 0) > 0}
    if set(old) != s2:
        return False
    for pid, (c1, su) in old.items():
        c2 = np.array(new.phase[pid]["cell"][:3])
        tol = np.maximum(5 * np.nan_to_num(su, nan=0.0), 2e-4 * c1)
        if np.any(np.abs(c1 - c2) > tol):
            return False
    return True


class _Pool:
    """Local worker processes or a Dask cluster behind one interface: ``share`` an object every
    task needs (the library phases: sent once per cluster, not once per task), ``submit``,
    ``first_done`` and ``close``."""

    def __init__(self, workers: int, scheduler: str | None):
        self.client = self.ex = None
        if scheduler:
            try:
                from dask.distributed import Client
            except ImportError:
                raise SeriesError("scheduler= needs dask.distributed (pip install 'xtal[dask]' or "
                                  "'dask[distributed]'); or use workers=N for local processes") from None
            self.client = Client(scheduler)
        else:
            from concurrent.futures import ProcessPoolExecutor

            self.ex = ProcessPoolExecutor(max_workers=workers)
        self.local_workers = workers

    def n_workers(self) -> int:
        """Worker processes of the pool (of the cluster, as the scheduler knows them now)."""
        if self.client is not None:
            return len(self.client.scheduler_info()["workers"])
        return self.local_workers

    def share(self, obj):
        if self.client is not None:
            return self.client.scatter(obj, broadcast=True, hash=False)
        return obj

    def submit(self, fn, *args):
        if self.client is not None:
            return self.client.submit(fn, *args, pure=False)
        return self.ex.submit(fn, *args)

    def first_done(self, pending):
        if self.client is not None:
            from dask.distributed import wait as dwait

            return dwait(list(pending), return_when="FIRST_COMPLETED").done
        from concurrent.futures import FIRST_COMPLETED, wait

        return wait(list(pending), return_when=FIRST_COMPLETED)[0]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        else:
            self.ex.shutdown(wait=True, cancel_futures=True)
