"""The `Pattern` model: one 1D powder pattern on a stated axis (2θ °, Q Å⁻¹ or d Å) with its beam."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from xtal.beam import check_wavelength, parse_radiation, q_from_two_theta, two_theta_from_q
from xtal.errors import EmptyPatternError, InvalidDataError, MissingWavelengthError, PatternError

AXES = ("two_theta_deg", "q_inv_angstrom", "d_angstrom")


@dataclass
class Pattern:
    """A 1D powder pattern on a stated axis.

    x: on ``axis`` ("two_theta_deg" | "q_inv_angstrom" | "d_angstrom"), strictly increasing.
    intensity, sigma: same length as x (sigma optional, same units as intensity).
    wavelength_angstrom: primary (Kα1) λ in Å or None; wavelength2_angstrom and
    ka2_ratio (I(Kα2)/I(Kα1)) for a doublet.  temperature_c (°C), time_s (s),
    source (file read), frame (index in a series), meta (free, JSON-able).
    """

    x: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray | None = None
    axis: str = "two_theta_deg"
    wavelength_angstrom: float | None = None
    wavelength2_angstrom: float | None = None
    ka2_ratio: float | None = None
    temperature_c: float | None = None
    time_s: float | None = None
    source: str | None = None
    frame: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=float)
        self.intensity = np.asarray(self.intensity, dtype=float)
        if self.sigma is not None:
            self.sigma = np.asarray(self.sigma, dtype=float)
        if self.axis not in AXES:
            raise PatternError(f"unknown axis {self.axis!r}; use one of {AXES}", path=self.source)
        if self.x.ndim != 1 or self.intensity.shape != self.x.shape or (
                self.sigma is not None and self.sigma.shape != self.x.shape):
            raise InvalidDataError("x, intensity and sigma must be 1D arrays of equal length",
                                   path=self.source)
        if self.x.size == 0:
            raise EmptyPatternError("pattern has no data points", path=self.source)
        for name, arr in (("x", self.x), ("intensity", self.intensity), ("sigma", self.sigma)):
            if arr is not None and not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise InvalidDataError(f"{name} holds NaN/inf (first at point {bad})",
                                       path=self.source)
        if self.x.size > 1 and not np.all(np.diff(self.x) > 0):
            bad = int(np.flatnonzero(np.diff(self.x) <= 0)[0])
            raise InvalidDataError(
                f"x is not strictly increasing (point {bad + 1}: {float(self.x[bad + 1]):g} after "
                f"{float(self.x[bad]):g})", path=self.source)
        if self.wavelength_angstrom is not None:
            self.wavelength_angstrom = check_wavelength(self.wavelength_angstrom)
        if self.wavelength2_angstrom is not None:
            self.wavelength2_angstrom = check_wavelength(self.wavelength2_angstrom)
        if self.ka2_ratio is not None:
            self.ka2_ratio = float(self.ka2_ratio)
            if not 0.0 <= self.ka2_ratio <= 1.0:     # also refuses NaN and inf
                raise InvalidDataError(f"Kα2/Kα1 ratio {self.ka2_ratio:g} must be in [0, 1]",
                                       path=self.source)
        if self.temperature_c is not None and not float(self.temperature_c) >= -273.15:
            raise InvalidDataError(f"temperature {float(self.temperature_c):g} °C is below 0 K",
                                   path=self.source)

    # -- basic ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def x_range(self) -> tuple[float, float]:
        """(first, last) x on the pattern's axis."""
        return float(self.x[0]), float(self.x[-1])

    @property
    def wavelength_lines(self) -> tuple[float, float | None, float | None] | None:
        """(λ1 Å, λ2 Å or None, I2/I1 or None) as stated for this pattern, or None without λ."""
        if self.wavelength_angstrom is None:
            return None
        return (self.wavelength_angstrom, self.wavelength2_angstrom, self.ka2_ratio)

    def require_wavelength(self) -> float:
        """λ1 in Å, or `MissingWavelengthError`."""
        if self.wavelength_angstrom is None:
            raise MissingWavelengthError(
                "the pattern has no wavelength; pass wavelength_angstrom= (Å or a tube name "
                "such as 'CuKa')", path=self.source)
        return self.wavelength_angstrom

    # -- conversions ---------------------------------------------------------
    def _convert(self, x: np.ndarray, frm: str, to: str) -> np.ndarray:
        if frm == to:
            return x.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            if frm == "two_theta_deg":
                q = q_from_two_theta(x, self.require_wavelength())
            elif frm == "d_angstrom":
                q = 2.0 * np.pi / x
            else:
                q = x
            if to == "q_inv_angstrom":
                return q
            if to == "d_angstrom":
                return 2.0 * np.pi / q
            return two_theta_from_q(q, self.require_wavelength())

    def two_theta_deg(self) -> np.ndarray:
        """2θ (°) of every point, aligned with ``intensity``; needs λ unless already 2θ."""
        return self._convert(self.x, self.axis, "two_theta_deg")

    def q_inv_angstrom(self) -> np.ndarray:
        """Q = 4π sinθ/λ (Å⁻¹) of every point, aligned with ``intensity``."""
        return self._convert(self.x, self.axis, "q_inv_angstrom")

    def d_angstrom(self) -> np.ndarray:
        """d = λ/(2 sinθ) (Å) of every point, aligned with ``intensity``."""
        return self._convert(self.x, self.axis, "d_angstrom")

    def to_axis(self, axis: str) -> "Pattern":
        """A new Pattern on ``axis``, re-ordered to increasing x.

        Points that have no image on the new axis (2θ = 0 for d; Q·λ/4π > 1 for 2θ) are
        dropped and counted in ``meta["dropped_points"]``.
        """
        if axis not in AXES:
            raise PatternError(f"unknown axis {axis!r}; use one of {AXES}", path=self.source)
        if axis == self.axis:
            return replace(self, x=self.x.copy(), meta=dict(self.meta))
        new = self._convert(self.x, self.axis, axis)
        return self._rebuilt(new, axis, self.wavelength_angstrom)

    def _rebuilt(self, new_x: np.ndarray, axis: str, lam: float | None, **changes) -> "Pattern":
        ok = np.isfinite(new_x) & (new_x > 0)
        order = np.argsort(new_x[ok], kind="stable")
        meta = dict(self.meta)
        n_drop = int((~ok).sum())
        if n_drop:
            meta["dropped_points"] = int(meta.get("dropped_points", 0)) + n_drop
        if not ok.any():
            raise InvalidDataError(f"no point of the pattern can be expressed on axis {axis}",
                                   path=self.source)
        sig = None if self.sigma is None else self.sigma[ok][order]
        return replace(self, x=new_x[ok][order], intensity=self.intensity[ok][order], sigma=sig,
                       axis=axis, wavelength_angstrom=lam, meta=meta, **changes)

    def with_wavelength(self, new_wavelength: Any) -> "Pattern":
        """Same d-spacings at a new λ (float Å or tube name); a 2θ pattern gets new 2θ values.

        Points beyond 2θ = 180° at the new λ are dropped (``meta["dropped_points"]``).
        The peak shapes are not changed: a Kα1/Kα2 doublet stays a doublet.
        """
        l1, l2, ratio = parse_radiation(new_wavelength).as_tuple()
        meta = dict(self.meta)
        meta["converted_from_wavelength_angstrom"] = self.wavelength_angstrom
        if self.axis != "two_theta_deg":
            return replace(self, x=self.x.copy(), wavelength_angstrom=l1,
                           wavelength2_angstrom=l2, ka2_ratio=ratio, meta=meta)
        new = two_theta_from_q(self.q_inv_angstrom(), l1)
        tmp = replace(self, meta=meta)
        return tmp._rebuilt(new, "two_theta_deg", l1, wavelength2_angstrom=l2, ka2_ratio=ratio)

    def copy(self) -> "Pattern":
        return replace(self, x=self.x.copy(), intensity=self.intensity.copy(),
                       sigma=None if self.sigma is None else self.sigma.copy(),
                       meta=json.loads(json.dumps(self.meta, default=str)))

