"""Reading and writing: measured patterns, thermal series, simulated patterns.

Units are in the names: ``two_theta_deg`` (degrees 2θ), ``q_inv_angstrom`` (Å⁻¹,
Q = 4π sinθ/λ), ``d_angstrom`` (Å), ``wavelength_angstrom`` (Å), ``temperature_c``
(°C), ``time_s`` (s).

Readers (`read_pattern`; chosen by content first, extension second, or ``fmt=``; see
`xtal.io.registry.FORMATS`):

* ``columns`` – 2/3-column text (.xy .xye .dat .txt .csv .asc, pyFAI 1D output) with
  ``#``, ``!``, ``;``, ``'`` or ``/* ... */`` comment headers; header keys such as
  ``wavelength = 0.71073 A``, ``lambda: 0.0710 nm``, ``Wavelength: 1e-10 m``, ``T = 25 C``,
  ``Temperature: 298.15 K``, ``Temp (K) = 6.778`` are parsed (see `parse_header_lines`).
* ``gsas`` – GSAS powder files (.fxye .gsa .gsas .gss .xra): CONST/CONS banks of type
  STD, ESD, FXY, FXYE (x in centidegrees); wavelength from an 11-BM style header or an
  instrument parameter file (``instrument=``; `read_gsas_instprm_wavelength`).
* ``xrdml`` – PANalytical XML (namespace agnostic): Kα1/Kα2/ratio, 2θ start/end or
  listPositions, counts or intensities.
* ``chi`` – Fit2D .chi (title, x label, y label, point count, data).
* ``nexus`` – NeXus/HDF5 ``NXdata`` (``@signal``, ``@axes``), 1D or stacked 2D.
* ``bruker_raw`` / ``brml`` – Bruker RAW v1–v4 and BRML (`xtal.io.bruker`); ``uxd`` – Bruker
  UXD (`xtal.io.uxd`); ``ras`` / ``rasx`` – Rigaku (`xtal.io.rigaku`); ``pdcif`` – powder CIF
  via gemmi (`xtal.io.pdcif`).  A file with several ranges/scans/blocks (these and XRDML)
  is refused unless ``frame=`` says which; `read_series` reads them all as frames.
* Column roles come from header names (2θ/tth/q/d; I/counts/yobs; sigma/esd/err); four or
  more unnamed columns, or no intensity name among several, is an error: choose with
  ``columns=(x, y[, sigma])``.  Recognised but unread formats are refused by name
  (`xtal.io.unsupported`); `xtal.io.registry.formats_table` lists what is read and written.

Thermal series (`read_series`, `iter_series_frames`, `write_series`): an
``xarray.DataArray`` (frame × x) in acquisition order (natural sort of file names, list
order or the stacked file's order; never sorted by temperature) with per-frame
``temperature_c``, ``time_s``, ``segment`` (heating / isothermal / cooling, see
`label_segments`: a hold is ≥ 3 frames within ``DEFAULT_HOLD_TOLERANCE_C`` = 0.5 °C that do
not drift, so a fine ramp stays a ramp) and
``source``; λ in ``attrs["wavelength_angstrom"]``.

Wavelength policy (`xtal.beam`): no default wavelength anywhere.  A wavelength given as text
is parsed once (`xtal.beam.parse_radiation`) and compared with the file's by
`xtal.beam.resolve_radiation`: beyond `xtal.beam.WAVELENGTH_RTOL` (relative) it raises
`WavelengthMismatchError` unless ``force=True``; ``meta["wavelength_source"]`` records the
decision.  A pattern without λ raises `MissingWavelengthError` when an operation needs it.

Value checks on reading (file named in every message): NaN/inf → `InvalidDataError`;
non-monotonic x → `InvalidDataError`; strictly *decreasing* x is reversed (a repair
recorded in ``meta["repairs"]``); σ < 0 → `InvalidDataError`; a negative intensity that
is more than ``NEGATIVE_SIGMA_LIMIT`` σ below zero → `InvalidDataError` (negatives
consistent with zero, e.g. background-subtracted data, are kept and counted in
``meta["n_negative"]``).

Writers (`write_pattern`, `write_series`, `write_simulated`, …) are atomic and never
overwrite an input file, nor an existing file unless ``overwrite=True``.
"""
from __future__ import annotations

from xtal.io.gsas import read_gsas_instprm_wavelength
from xtal.io.header import HeaderInfo, parse_header_lines, temperature_to_c
from xtal.io.pattern import AXES, Pattern
from xtal.io.registry import (FORMATS, PATTERN_EXTENSIONS, formats_table, read_all_patterns,
                              read_pattern)
from xtal.io.series import (DEFAULT_HOLD_TOLERANCE_C, iter_series_frames, label_segments,
                            list_frames, natural_sort_key, read_series, series_frame,
                            temperature_from_name, write_series)
from xtal.io.simulated import (write_csv, write_pdcif, write_reflections_csv, write_simulated,
                               write_xy, write_xye)
from xtal.io.writers import atomic_write, write_pattern

__all__ = [
    "AXES", "FORMATS", "PATTERN_EXTENSIONS", "DEFAULT_HOLD_TOLERANCE_C", "Pattern", "HeaderInfo",
    "read_pattern", "read_all_patterns", "formats_table", "write_pattern", "read_gsas_instprm_wavelength", "parse_header_lines",
    "temperature_to_c", "read_series", "write_series", "list_frames", "iter_series_frames",
    "series_frame", "label_segments", "natural_sort_key", "temperature_from_name", "atomic_write",
    "write_simulated", "write_xy", "write_xye", "write_csv", "write_pdcif", "write_reflections_csv",
]
