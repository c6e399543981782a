"""The series result: an ``xarray.Dataset`` filled frame by frame, and a thin typed wrapper.

`FrameTable` preallocates the Dataset (frame × phase, frame × phase × lattice, heat map) when the
analysis starts; every frame's `FrameRecord` is written into its row with `put`, and the presence,
refit and event passes read the arrays directly.  `SeriesResult` wraps the final Dataset (values of a
phase masked to the frames where it is present) with the events, thermal expansion, lattice
transitions and phase metadata, which `to_dataset` also stores as JSON attributes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

__all__ = ["LATTICE_NAMES", "EVENT_KINDS", "FrameTable", "SeriesResult", "skipped_frames"]

EVENT_KINDS = ("appears", "disappears", "jump", "amorphous")
LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")

#: FrameRecord.phase keys -> Dataset variables (frame × phase)
PHASE_VARS = {"scale": "scale", "scale_su": "scale_su", "wf": "weight_fraction",
              "wf_su": "weight_fraction_su", "vol": "volume_angstrom3", "vol_su": "volume_su",
              "fwhm": "fwhm_deg", "z": "scale_z", "share": "bragg_share", "bragg": "phase_bragg"}
#: frame variables copied from FrameRecord attributes of the same name
FRAME_VARS = ("rwp", "chi2", "bragg_intensity", "amorphous_fraction", "zero_shift_deg")
#: working variables of the analysis, not part of the result
_WORKING = ("bragg_share", "phase_bragg", "fitted", "profile", "frame_notes", "n_points")
_ATTRS = {"rwp": {"long_name": "weighted profile R factor"},
          "bragg_intensity": {"units": "counts*deg", "long_name": "integrated Bragg intensity"},
          "amorphous_fraction": {"long_name": "halo/(halo+Bragg) intensity (identify)"},
          "volume_angstrom3": {"units": "angstrom^3"}, "volume_su": {"units": "angstrom^3"},
          "scale_z": {"long_name": "scale / s.u. of the frame's fit"},
          "screen_z": {"long_name": "scale / s.u. of the all-phase screen (NaN: not screened)"}}


class FrameTable:
    """The Dataset under construction: one row per frame, written as the frames are fitted."""

    def __init__(self, n: int, phase_ids: list[str], heat_x: np.ndarray | None):
        nf, npf = n, len(phase_ids)
        fp, fpl = ("frame", "phase"), ("frame", "phase", "lattice")
        data = {k: ("frame", np.full(nf, np.nan)) for k in FRAME_VARS}
        data.update({v: (fp, np.full((nf, npf), np.nan)) for v in PHASE_VARS.values()})
        data.update({
            "status": ("frame", np.full(nf, "skipped", dtype=object)),
            "skip_reason": ("frame", np.full(nf, "not analysed", dtype=object)),
            "n_points": ("frame", np.zeros(nf, dtype=np.int64)),
            "profile": ("frame", np.full(nf, "{}", dtype=object)),
            "frame_notes": ("frame", np.full(nf, "[]", dtype=object)),
            "fitted": (fp, np.zeros((nf, npf), dtype=bool)),
            "screen_z": (fp, np.full((nf, npf), np.nan)),
            "cell": (fpl, np.full((nf, npf, 6), np.nan)),
            "cell_su": (fpl, np.full((nf, npf, 6), np.nan)),
        })
        coords = {"frame": np.arange(nf), "phase": np.array(phase_ids, dtype=str),
                  "lattice": np.array(LATTICE_NAMES, dtype=str),
                  "temperature_c": ("frame", np.full(nf, np.nan), {"units": "degC"}),
                  "time_s": ("frame", np.full(nf, np.nan), {"units": "s"}),
                  "segment": ("frame", np.full(nf, "", dtype=object)),
                  "source": ("frame", np.full(nf, "", dtype=object))}
        if heat_x is not None:
            data["heatmap"] = (("frame", "two_theta_bin_deg"),
                               np.full((nf, heat_x.size), np.nan, dtype=np.float32),
                               {"long_name": "observed intensity binned in 2θ"})
            coords["two_theta_bin_deg"] = heat_x
        self.ds = xr.Dataset(data, coords=coords)
        self.phase_ids = list(phase_ids)
        self._j = {pid: j for j, pid in enumerate(phase_ids)}
        self._arrays: dict[str, np.ndarray] = {}

    def a(self, name: str) -> np.ndarray:
        """The numpy array behind a variable or coordinate (written in place; looked up in the
        Dataset once — building a DataArray per access cost ~8 ms per frame in `put`)."""
        arr = self._arrays.get(name)
        if arr is None:
            arr = self._arrays[name] = self.ds[name].data
        return arr

    @property
    def n(self) -> int:
        return self.ds.sizes["frame"]

    def put(self, rec) -> None:
        """Write one frame's record into its row (the whole row is replaced; the heat-map row only
        when the record carries one)."""
        k = rec.index
        for name in ("temperature_c", "time_s", "segment", "source", "status", "n_points", *FRAME_VARS):
            self.a(name)[k] = getattr(rec, name)
        self.a("skip_reason")[k] = rec.reason
        self.a("profile")[k] = json.dumps(rec.profile)
        self.a("frame_notes")[k] = json.dumps(list(rec.notes))
        for name in (*PHASE_VARS.values(), "screen_z", "cell", "cell_su"):
            self.a(name)[k] = np.nan
        fitted = self.a("fitted")
        fitted[k] = False
        for pid in rec.fitted:
            fitted[k, self._j[pid]] = True
        for pid, d in rec.phase.items():
            j = self._j[pid]
            for key, var in PHASE_VARS.items():
                self.a(var)[k, j] = d[key]
            self.a("cell")[k, j] = d["cell"]
            self.a("cell_su")[k, j] = d["cell_su"]
        for pid, z in rec.screen_z.items():
            self.a("screen_z")[k, self._j[pid]] = z
        if rec.heat is not None and "heatmap" in self.ds:
            self.a("heatmap")[k] = rec.heat

    # -- reading a row back (refits) ---------------------------------------------------------
    def meta(self, k: int) -> dict:
        """What frame k states about itself (temperature_c, time_s, segment, source)."""
        return {"temperature_c": float(self.a("temperature_c")[k]), "time_s": float(self.a("time_s")[k]),
                "segment": str(self.a("segment")[k]), "source": str(self.a("source")[k])}

    def screen_z(self, k: int) -> dict[str, float]:
        z = self.a("screen_z")[k]
        return {pid: float(z[j]) for j, pid in enumerate(self.phase_ids) if np.isfinite(z[j])}

    def notes(self, k: int) -> list[str]:
        return json.loads(self.a("frame_notes")[k])

    def profile(self, k: int) -> dict:
        return json.loads(self.a("profile")[k])

    def ok(self) -> np.ndarray:
        return self.a("status") == "ok"

    def fitted_positive(self) -> np.ndarray:
        """(frame, phase): the phase was fitted in the frame with a positive scale."""
        with np.errstate(invalid="ignore"):
            return self.ok()[:, None] & self.a("fitted") & (self.a("scale") > 0)

    def all_notes(self) -> list[str]:
        return [n for s in self.a("frame_notes") for n in json.loads(s)]

    def label_segments(self) -> None:
        """Frames that state no segment get one from the temperature programme."""
        seg = self.a("segment")
        empty = seg == ""
        if empty.any():
            from xtal.io import label_segments

            lab = np.asarray(label_segments(list(self.a("temperature_c"))), dtype=object)
            seg[empty] = lab[empty]

    def finish(self, present: np.ndarray, evidence: np.ndarray) -> xr.Dataset:
        """The result Dataset: phase values masked to the frames where the phase is present."""
        ds = self.ds.drop_vars(list(_WORKING))
        masked = [*(v for v in PHASE_VARS.values() if v in ds), "cell", "cell_su"]
        for v in masked:
            ds[v] = ds[v].where(xr.DataArray(present, dims=("frame", "phase")))
        ds["present"] = (("frame", "phase"), present.astype(np.int8))
        ds["evidence"] = (("frame", "phase"), evidence,
                          {"long_name": "log-likelihood ratio present/absent"})
        for name in ("status", "skip_reason"):
            ds[name] = ("frame", ds[name].data.astype(str))
        ds = ds.assign_coords(segment=("frame", ds["segment"].data.astype(str)),
                              source=("frame", ds["source"].data.astype(str)))
        for v, at in _ATTRS.items():
            if v in ds:
                ds[v].attrs.update(at)
        return ds


def skipped_frames(ds: xr.Dataset) -> list[dict]:
    """Frames not analysed: frame, source, reason, temperature."""
    k = np.flatnonzero(ds["status"].values != "ok")
    return [{"frame": int(ds["frame"].values[i]), "source": str(ds["source"].values[i]),
             "reason": str(ds["skip_reason"].values[i]),
             "temperature_c": float(ds["temperature_c"].values[i])} for i in k]


#: short keys of `SeriesResult.values` -> Dataset variables
VALUE_KEYS = {"scale": "scale", "scale_su": "scale_su", "wf": "weight_fraction",
              "wf_su": "weight_fraction_su", "vol": "volume_angstrom3", "vol_su": "volume_su",
              "fwhm": "fwhm_deg"}


def _column(name: str, doc: str) -> property:
    """A read-only view of one Dataset variable as a numpy array."""
    return property(lambda self: self.dataset[name].values, doc=doc)


@dataclass
class SeriesResult:
    """Per-frame fits, phase presence, events and thermal expansion of one series.

    ``dataset`` holds every per-frame value (see docs/series.md for the layout); the other fields
    are the series-level results, also stored as JSON attributes by `to_dataset`.
    """

    dataset: xr.Dataset
    phase_info: dict[str, dict]
    events: list[dict] = field(default_factory=list)
    expansion: dict = field(default_factory=dict)
    lattice_transitions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    timing: dict = field(default_factory=dict)     # wall seconds per stage of the analysis

    # -- views of the Dataset ----------------------------------------------------------------
    @property
    def phase_ids(self) -> list[str]:
        return [str(p) for p in self.dataset["phase"].values]

    @property
    def n_frames(self) -> int:
        return int(self.dataset.sizes["frame"])

    @property
    def present(self) -> np.ndarray:
        """(frame, phase) bool after the Viterbi pass."""
        return self.dataset["present"].values.astype(bool)

    evidence = _column("evidence", "(frame, phase) log-likelihood ratio present/absent")
    temperature_c = _column("temperature_c", "temperature (°C) per frame")
    time_s = _column("time_s", "time (s) per frame")
    status = _column("status", '"ok" or "skipped" per frame')

    @property
    def wavelength_angstrom(self) -> float | None:
        v = self.dataset.attrs.get("wavelength_angstrom")
        return float(v) if v is not None and np.isfinite(v) else None

    @property
    def synthetic(self) -> bool:
        return bool(self.dataset.attrs.get("synthetic", 0))

    @property
    def heat_x(self) -> np.ndarray | None:
        return self.dataset["two_theta_bin_deg"].values if "heatmap" in self.dataset else None

    @property
    def skipped(self) -> list[dict]:
        return skipped_frames(self.dataset)

    def values(self, key: str, phase: str) -> np.ndarray:
        """Per-frame value of a phase ('scale', 'wf', 'vol', 'a', 'b', 'c', 'a_su', ...); NaN where absent."""
        ds = self.dataset.sel(phase=phase)
        if key in LATTICE_NAMES:
            return ds["cell"].sel(lattice=key).values
        if key.endswith("_su") and key[:-3] in LATTICE_NAMES:
            return ds["cell_su"].sel(lattice=key[:-3]).values
        return ds[VALUE_KEYS[key]].values

    def events_json(self) -> dict:
        return {"events": self.events, "lattice_transitions": self.lattice_transitions,
                "skipped_frames": self.skipped, "synthetic": self.synthetic,
                "models": [pid for pid, i in self.phase_info.items() if i.get("model")]}

    def to_dataset(self) -> xr.Dataset:
        """The Dataset, with events, thermal expansion, lattice transitions, phases, skipped frames,
        options and notes (re)stored as JSON attributes."""
        self.dataset.attrs.update({
            "events": json.dumps(self.events),
            "lattice_transitions": json.dumps(self.lattice_transitions),
            "thermal_expansion": json.dumps(self.expansion),
            "phases": json.dumps(self.phase_info),
            "skipped_frames": json.dumps(self.skipped),
            "options": json.dumps(self.options, default=str),
            "notes": json.dumps(self.notes),
        })
        return self.dataset
