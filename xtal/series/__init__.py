"""Thermal series: per-frame whole-pattern fits with continuity, phase map, events, lattice vs T.

`analyse_series` turns an in-situ series (``xarray.DataArray`` frame × two_theta_deg, a path that
`xtal.io` reads, or a sequence of `Pattern`) into a `SeriesResult`, whose ``dataset`` is an
``xarray.Dataset`` filled frame by frame.  The package follows the data flow:

- `source`   — frames from a DataArray, netCDF or files; λ, temperature, time per frame
- `fitting`  — the one seam to the whole-pattern fitter (`xtal.identify`)
- `chain`    — the continuity chain of per-frame fits (seeding, screening, retries)
- `presence` — evidence, Viterbi presence per phase, the consistency refit pass
- `events`   — appears / disappears / jump / amorphous, with σ
- `lattice`  — thermal expansion and axis merging
- `result`   — the Dataset (`FrameTable` while it is filled) and `SeriesResult`
- `run`      — `analyse_series`: chunks, worker processes or a Dask scheduler

Rendering and writing (Markdown, figures, series.nc / phases.csv / events.json) live in
`xtal.report.series` and `xtal.report.series_figures`; this package writes no file and prints
nothing (progress goes to an optional ``progress(done, total)`` callback).
"""
from xtal.series.chain import SeriesOptions
from xtal.series.events import HOLD_TOLERANCE_C, detect_events
from xtal.series.lattice import axis_merging, thermal_expansion
from xtal.series.presence import viterbi_presence
from xtal.series.result import EVENT_KINDS, LATTICE_NAMES, SeriesResult
from xtal.series.run import analyse_series

__all__ = [
    "SeriesResult", "SeriesOptions", "analyse_series", "viterbi_presence", "detect_events",
    "thermal_expansion", "axis_merging", "EVENT_KINDS", "LATTICE_NAMES", "HOLD_TOLERANCE_C",
]
