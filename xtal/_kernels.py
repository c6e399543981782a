"""Compiled (numba) form of the windowed pseudo-Voigt evaluation of `xtal.profiles`.

One pass over the window points computes the profile and all its derivatives with no temporary
arrays: the NumPy form builds about thirty full-length temporaries (t, t², the Gaussian, the
Lorentzian, the taper, …) and sums them into the grid with SciPy's CSC kernels. Same formulas,
same window and taper, so the two agree to rounding (≤ 1e-15 of the largest value; the test
`tests/test_profile_window.py` compares them). Measured on real-pattern sizes (BiFeO3, Cu Kα,
664 peaks): 2.4–3.0× on 25 000 window points, 2.6–3.5× on 206 000 (`benchmarks/bench_kernel.py`).

Optional (``pip install 'xtal[fast]'``): imported lazily by `xtal.profiles` on grids of ≥ 10 000
points when numba is installed (its import, ~0.35 s, and the load of the machine code cached on disk
after the first compilation, ``cache=True``, ~0.5–1 s, are paid once per process: identification
of the BiFeO3 lab pattern 1.5× faster, of NAC 11-BM slower; `benchmarks/bench_kernel.py`).
"""
from __future__ import annotations

import math

import numba as nb


@nb.njit(cache=True, nogil=True, boundscheck=False)
def window_sums(x, centres, inv_hw, height, per_centre, per_fwhm, lo, hi, eta, lor_norm,
                window_fwhm, taper_fwhm, values_wanted, derivatives_wanted,
                values, d_eta, d_centre, d_fwhm):
    """Accumulate the windowed pseudo-Voigt of every peak onto the grid ``x``.

    Per peak p (window points lo[p]..hi[p]−1): ``inv_hw`` = 2/FWHM (1/°), ``height`` = area·inv_hw,
    ``per_centre`` (n_peaks × k) and ``per_fwhm`` (n_peaks × m): each peak's factor for every centre
    and FWHM derivative column (already × area/hw²). ``values_wanted``: add the profile to
    ``values`` (n) with its Lorentzian tapered over the last ``taper_fwhm`` of the window;
    ``derivatives_wanted``: add ∂/∂η to ``d_eta`` (n), the centre derivatives to ``d_centre``
    (k × n) and the half-width derivatives to ``d_fwhm`` (m × n). Returns nothing (adds in place).
    """
    ln2 = math.log(2.0)
    sg = math.sqrt(ln2 / math.pi)
    cg = sg * (1.0 - eta)
    cl = lor_norm / math.pi
    a_v = eta * cl
    a_c = 2.0 * eta * cl
    b_c = 2.0 * ln2 * cg
    a_h = 0.5 * eta * cl
    b_h = 0.5 * cg
    t_tail = 2.0 * (window_fwhm - taper_fwhm)     # |t| (in half widths) where the taper starts
    w_tail = math.pi / (2.0 * taper_fwhm)
    kc = per_centre.shape[1]
    kf = per_fwhm.shape[1]
    for p in range(centres.size):
        c = centres[p]
        ih = inv_hw[p]
        hp = height[p]
        for j in range(lo[p], hi[p]):
            t = (x[j] - c) * ih
            t2 = t * t
            g = math.exp(-ln2 * t2)
            il = 1.0 / (1.0 + t2)
            lor = il
            if values_wanted:
                at = abs(t)
                if at > t_tail:
                    u = (at - t_tail) * w_tail
                    if u > math.pi:
                        u = math.pi
                    lor = il * (0.5 * (1.0 + math.cos(u)))
                values[j] += hp * (a_v * lor + cg * g)
            if derivatives_wanted:
                d_eta[j] += hp * (cl * lor - sg * g)
                pc = t * (a_c * lor * il + b_c * g)
                for k in range(kc):
                    d_centre[k, j] += pc * per_centre[p, k]
                ph = a_h * lor * (2.0 * t2 * il - 1.0) + b_h * g * (2.0 * ln2 * t2 - 1.0)
                for k in range(kf):
                    d_fwhm[k, j] += ph * per_fwhm[p, k]
