"""Small numpy versions of the SciPy / pybaselines routines the identification uses.

`import scipy.signal` costs 1.3–1.5 s CPU (it imports scipy.stats and scipy.optimize), and
pybaselines imports it too: more than the whole identification of a 5000-point pattern. Only a
few options of each routine are used, so they are written here with numpy, computing the same
numbers in the same order as SciPy 1.17 / pybaselines 1.2 (``tests/test_numeric.py`` compares
them on real patterns):

* `gaussian_filter1d` (``scipy.ndimage``, mode "nearest") and `uniform_filter1d` (mode "reflect");
* `find_peaks` (``scipy.signal``: ``height``, ``prominence``, ``distance``), `peak_prominences`
  and `peak_widths` (whole-signal window);
* `snip` and `modpoly` (pybaselines' SNIP and ModPoly baselines, the options used);
* `nnls` (Lawson–Hanson active set, ``scipy.optimize.nnls``);
* `median` and `percentile` of one 1-D array (NumPy's own ``np.median`` / ``np.percentile``,
  method "linear", bit for bit, without their ~50–250 µs of per-call set-up: a series frame's
  σ model calls them a dozen times).
"""
from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------------------------
# order statistics


def median(v: np.ndarray, *, presorted: bool = False) -> float:
    """``float(np.median(v))`` of a 1-D float array, the same value bit for bit (the middle order
    statistic, or the mean of the two middle ones as NumPy computes it: (a + b) / 2); NaN when
    ``v`` holds a NaN or is empty. ``presorted=True``: ``v`` is sorted already (read off)."""
    n = v.size
    if n == 0:
        return math.nan
    h = n // 2
    part = v if presorted else np.partition(v, (h - 1, h, n - 1) if n % 2 == 0 else (h, n - 1))
    if part[-1] != part[-1]:            # NaN sorts last: NumPy's median is then NaN
        return math.nan
    return float(part[h]) if n % 2 else float((part[h - 1] + part[h]) / 2)


def percentile(v: np.ndarray, q, *, presorted: bool = False) -> np.ndarray | float:
    """``np.percentile(v, q)`` (method "linear") of a 1-D float array, bit for bit: the same
    virtual index (n − 1)·q/100, neighbours and NumPy's two-sided interpolation. ``q`` in
    percent, a number (returns a float) or a sequence (returns an array); NaN when ``v`` holds
    a NaN. ``presorted=True``: ``v`` is sorted already (its order statistics are read off)."""
    scalar = np.ndim(q) == 0
    vi = np.atleast_1d((v.size - 1) * np.true_divide(np.asarray(q, dtype=float), 100))
    prev = np.floor(vi)
    nxt = prev + 1
    top = vi >= v.size - 1                  # at the top: the largest value on both sides
    prev[top] = nxt[top] = -1
    prev, nxt = prev.astype(np.intp), nxt.astype(np.intp)
    part = v if presorted else np.partition(v, np.unique(np.concatenate(([0, -1], prev, nxt))))
    a, b = part[prev], part[nxt]
    t = vi - prev
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    if part[-1] != part[-1]:
        out[:] = math.nan
    return float(out[0]) if scalar else out


# ----------------------------------------------------------------------------------------------
# filters


def gaussian_filter1d(v: np.ndarray, sigma_pts: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing of ``v`` (σ in samples), edges extended with the end values.

    Same kernel (radius ``int(truncate·σ + 0.5)``, normalised) and the same summation order as
    ``scipy.ndimage.gaussian_filter1d(v, σ, mode="nearest")``: centre term, then the symmetric
    pairs from the outermost in. Returns a new float array of the size of ``v``.
    """
    v = np.asarray(v, dtype=float)
    radius = int(truncate * float(sigma_pts) + 0.5)
    k = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma_pts) * float(sigma_pts)) * k ** 2)
    phi = phi / phi.sum()
    if radius == 0 or v.size == 0:
        return v * phi[0]
    n = v.size
    # the edge values repeated `radius` times (np.pad(mode="edge"), without its per-call cost)
    ext = np.empty(n + 2 * radius)
    ext[:radius], ext[radius:radius + n], ext[radius + n:] = v[0], v, v[-1]
    out = ext[radius:radius + n] * phi[radius]
    for j in range(radius, 0, -1):
        out += (ext[radius - j:radius - j + n] + ext[radius + j:radius + j + n]) * phi[radius - j]
    return out


def uniform_filter1d(v: np.ndarray, size: int) -> np.ndarray:
    """Running mean of ``size`` samples, edges mirrored (``scipy.ndimage.uniform_filter1d``,
    mode "reflect", origin 0: its running sum, added in order, divided at each sample).
    Returns a float array."""
    v = np.asarray(v, dtype=float)
    n = v.size
    left = size // 2
    ext = np.pad(v, (left, size - left - 1), mode="symmetric")
    steps = np.empty(n)
    steps[0] = np.cumsum(ext[:size])[-1]
    steps[1:] = ext[size:size + n - 1] - ext[:n - 1]
    return np.cumsum(steps) / size


# ----------------------------------------------------------------------------------------------
# peaks


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of the local maxima of ``x``: a sample, or the middle (rounded down) of a run of
    equal samples, with a smaller sample on each side; never the first or last sample."""
    x = np.asarray(x, dtype=float)
    n = x.size
    if n < 3:
        return np.zeros(0, dtype=np.intp)
    starts = np.concatenate(([0], np.flatnonzero(x[1:] != x[:-1]) + 1))
    ends = np.concatenate((starts[1:] - 1, [n - 1]))
    inner = (starts > 0) & (ends < n - 1)
    s, e = starts[inner], ends[inner]
    top = (x[s - 1] < x[s]) & (x[e + 1] < x[s])
    return ((s[top] + e[top]) // 2).astype(np.intp)


class _RangeTable:
    """Sparse tables of the running min and max of a signal over windows of 2^j samples, to
    walk from many indices at once (binary lifting) instead of one sample at a time."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.n = n = x.size
        self.lo, self.hi = [x], [x]
        w = 1
        while 2 * w <= n:
            self.lo.append(np.minimum(self.lo[-1][:-w], self.lo[-1][w:]))
            self.hi.append(np.maximum(self.hi[-1][:-w], self.hi[-1][w:]))
            w *= 2

    def walk(self, start: np.ndarray, limit: np.ndarray, step: np.ndarray, below: bool) -> np.ndarray:
        """From each ``start``, the farthest index reached going ``step`` (−1 left, +1 right; one
        per start) through samples ≤ ``limit`` (``below``) or > ``limit`` (not ``below``);
        ``start`` itself is not tested."""
        pos = np.array(start, dtype=np.intp)
        left = step < 0
        tables = self.hi if below else self.lo
        for j in range(len(tables) - 1, -1, -1):
            w = 1 << j
            cand = pos + step * w
            valid = (cand >= 0) & (cand <= self.n - 1)
            vals = tables[j][np.where(valid, np.where(left, cand, pos + 1), 0)]
            ok = valid & ((vals <= limit) if below else (vals > limit))
            pos = np.where(ok, cand, pos)
        return pos

    def min_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """min(x[lo..hi]) for each pair of inclusive bounds."""
        length = hi - lo + 1
        j = np.floor(np.log2(length)).astype(int)
        out = np.empty(lo.size)
        for jj in np.unique(j):
            m = j == jj
            arr = self.lo[jj]
            out[m] = np.minimum(arr[lo[m]], arr[hi[m] - (1 << jj) + 1])
        return out


def peak_prominences(x: np.ndarray, peaks: np.ndarray, table: _RangeTable | None = None,
                     bases: bool = True):
    """Prominence of each peak and its left and right bases (``scipy.signal.peak_prominences``
    with the whole signal as window). Returns (prominences, left_bases, right_bases); the bases
    are None when ``bases`` is False."""
    x = np.asarray(x, dtype=float)
    peaks = np.asarray(peaks, dtype=np.intp)
    if peaks.size == 0:
        return np.zeros(0), np.zeros(0, np.intp), np.zeros(0, np.intp)
    t = table or _RangeTable(x)
    m = peaks.size
    both = np.concatenate((peaks, peaks))            # left walks, then right walks
    step = np.repeat(np.array([-1, 1], dtype=np.intp), m)
    top = x[peaks]
    ends = t.walk(both, np.concatenate((top, top)), step, below=True)
    left_min = t.min_between(ends[:m], peaks)
    right_min = t.min_between(peaks, ends[m:])
    prom = top - np.maximum(left_min, right_min)
    if not bases:
        return prom, None, None
    # the base is the minimum nearest to the peak
    near = t.walk(both, np.concatenate((left_min, right_min)), step, below=False) + step
    left_base = np.where(top <= left_min, peaks, near[:m])
    right_base = np.where(top <= right_min, peaks, near[m:])
    return prom, left_base, right_base


def peak_widths(x: np.ndarray, peaks: np.ndarray, rel_height: float = 0.5) -> np.ndarray:
    """Width (in samples) of each peak at ``rel_height`` of its prominence, linearly interpolated
    between samples (``scipy.signal.peak_widths(x, peaks, rel_height)[0]``)."""
    x = np.asarray(x, dtype=float)
    peaks = np.asarray(peaks, dtype=np.intp)
    if peaks.size == 0:
        return np.zeros(0)
    t = _RangeTable(x)
    prom, lb, rb = peak_prominences(x, peaks, t)
    m = peaks.size
    height = x[peaks] - prom * rel_height
    flat = ~(height < x[peaks])
    step = np.repeat(np.array([-1, 1], dtype=np.intp), m)
    ends = t.walk(np.concatenate((peaks, peaks)), np.concatenate((height, height)), step,
                  below=False) + step
    i = np.where(flat, peaks, np.maximum(ends[:m], lb))
    left = i.astype(float)
    nxt = x[np.minimum(i + 1, x.size - 1)]
    interp = (x[i] < height) & (nxt != x[i])
    left[interp] += (height[interp] - x[i][interp]) / (nxt[interp] - x[i][interp])
    i = np.where(flat, peaks, np.minimum(ends[m:], rb))
    right = i.astype(float)
    prv = x[np.maximum(i - 1, 0)]
    interp = (x[i] < height) & (prv != x[i])
    right[interp] -= (height[interp] - x[i][interp]) / (prv[interp] - x[i][interp])
    return right - left


def _select_by_distance(peaks: np.ndarray, priority: np.ndarray, distance: float) -> np.ndarray:
    """Keep-mask of the peaks at least ``distance`` samples from every higher kept peak (the
    highest first; SciPy's order among equal heights)."""
    d = math.ceil(distance)
    m = peaks.size
    keep = np.ones(m, dtype=bool)
    close = np.diff(peaks) < d
    crowded = np.zeros(m, dtype=bool)       # a peak with a neighbour closer than d
    crowded[:-1] |= close
    crowded[1:] |= close
    if not crowded.any():
        return keep
    pos = peaks.tolist()
    flags = keep.tolist()
    for j in [j for j in np.argsort(priority)[::-1].tolist() if crowded[j]]:
        if not flags[j]:
            continue
        k = j - 1
        while k >= 0 and pos[j] - pos[k] < d:
            flags[k] = False
            k -= 1
        k = j + 1
        while k < m and pos[k] - pos[j] < d:
            flags[k] = False
            k += 1
    return np.array(flags, dtype=bool)


def _at_peaks(bound, peaks: np.ndarray):
    """A scalar bound, or an array bound (one value per sample) taken at the peaks."""
    return bound[peaks] if np.ndim(bound) else bound


def find_peaks(x: np.ndarray, height=None, prominence=None, distance: float | None = None
               ) -> np.ndarray:
    """Indices of the peaks of ``x`` (``scipy.signal.find_peaks(x, height=, distance=,
    prominence=)[0]``): local maxima (plateau middles), then those ≥ ``height``, then at least
    ``distance`` samples from a higher one, then of prominence ≥ ``prominence``. ``height`` and
    ``prominence``: a number or an array with one value per sample; None skips the test."""
    x = np.asarray(x, dtype=float)
    if distance is not None and distance < 1:
        raise ValueError("`distance` must be greater or equal to 1")
    peaks = local_maxima(x)
    if height is not None:
        peaks = peaks[_at_peaks(height, peaks) <= x[peaks]]
    if distance is not None and peaks.size:
        peaks = peaks[_select_by_distance(peaks, x[peaks], distance)]
    if prominence is not None and peaks.size:
        prom = peak_prominences(x, peaks, bases=False)[0]
        peaks = peaks[_at_peaks(prominence, peaks) <= prom]
    return peaks


# ----------------------------------------------------------------------------------------------
# baselines


def _extrapolated_edges(y: np.ndarray, pad: int) -> np.ndarray:
    """``y`` extended by ``pad`` samples each side along straight lines fitted to the ``pad``
    end samples (pybaselines' ``pad_edges(y, pad)``, mode "extrapolate")."""
    n = y.size
    idx = np.arange(n + 2 * pad)
    if pad == 1:
        left, right = np.full(1, y[0]), np.full(1, y[-1])
    else:
        fit_l = np.polynomial.Polynomial.fit(idx[pad:pad + n][:pad], y[:pad], 1)
        fit_r = np.polynomial.Polynomial.fit(idx[pad:pad + n][-pad:], y[-pad:], 1)
        left, right = fit_l(idx[:pad]), fit_r(idx[-pad:])
    return np.concatenate((left, y, right))


def snip(y: np.ndarray, max_half_window: int, decreasing: bool = False,
         smooth_half_window: int | None = None) -> np.ndarray:
    """SNIP baseline (second-order clipping) of ``y``: pybaselines
    ``Baseline().snip(y, max_half_window, decreasing, smooth_half_window)[0]``.

    max_half_window : number of clipping passes (samples), at most (len(y) − 1) // 2;
    decreasing : passes from the widest window down to 1; smooth_half_window : running mean of
    2·h + 1 samples applied to the kept values at each pass (None or 0: none).
    Returns the baseline, same size as ``y``.
    """
    y = np.asarray(y, dtype=float)
    hw = min(int(max_half_window), (y.size - 1) // 2)
    base = _extrapolated_edges(y, hw)
    num = base.size
    passes = range(hw, 0, -1) if decreasing else range(1, hw + 1)
    window = 2 * int(smooth_half_window) + 1 if smooth_half_window else 0
    for i in passes:
        clipped = (base[:num - 2 * i] + base[2 * i:]) / 2
        kept = uniform_filter1d(base, window)[i:-i] if window else base[i:-i]
        base[i:-i] = np.where(base[i:-i] > clipped, clipped, kept)
    return base[hw:-hw] if hw else base


def modpoly(x: np.ndarray, y: np.ndarray, poly_order: int = 2, tol: float = 1e-3,
            max_iter: int = 250, kernel=None) -> np.ndarray:
    """Modified-polynomial baseline (pybaselines ``Baseline(x).modpoly(y, poly_order, tol,
    max_iter)[0]``): a polynomial fitted again and again to min(data, previous fit) until the
    relative change is below ``tol``. ``x`` sorted. Returns the baseline at ``x``.

    ``kernel``: the compiled iteration (`xtal.profiles.compiled_modpoly`), the same steps with the
    sums in plain order (agrees with this NumPy form to rounding); None: NumPy, equal to
    pybaselines bit for bit."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    vander, pinv = _poly_basis(x, poly_order)
    if kernel is not None:
        work, baseline = np.array(y), np.empty(y.size)
        kernel(np.ascontiguousarray(vander), np.ascontiguousarray(pinv), work, baseline,
               vander.shape[1], float(tol), int(max_iter))
        return baseline
    baseline = vander @ (pinv @ y)            # (pybaselines' unit weights: × 1 is exact)
    eps = float(np.finfo(float).eps)
    for _ in range(max_iter):
        old = baseline
        y = np.minimum(y, baseline)
        baseline = vander @ (pinv @ y)
        # relative change ‖Δ‖/‖old‖, the norms as np.linalg.norm computes them (√(v·v)) without
        # its per-call overhead (this loop runs ~60 times per fit of a series frame)
        d = baseline - old
        if math.sqrt(d @ d) / max(math.sqrt(old @ old), eps) < tol:
            break
    return baseline


_POLY_BASES: dict = {}


def _poly_basis(x: np.ndarray, poly_order: int) -> tuple[np.ndarray, np.ndarray]:
    """The Vandermonde matrix of ``x`` mapped onto [−1, 1] and its pseudo-inverse, as pybaselines
    builds them; kept for the last few grids (a series' frames share one)."""
    key = (x.tobytes(), poly_order)
    got = _POLY_BASES.get(key)
    if got is None:
        domain = np.polynomial.polyutils.getdomain(x)
        vander = np.polynomial.polynomial.polyvander(
            np.polynomial.polyutils.mapdomain(x, domain, np.array([-1.0, 1.0])), poly_order)
        got = (vander, np.linalg.pinv(vander))   # their memory layout as pybaselines': BLAS sums in that order
        for a in got:
            a.flags.writeable = False
        if len(_POLY_BASES) >= 8:
            _POLY_BASES.pop(next(iter(_POLY_BASES)))
        _POLY_BASES[key] = got
    return got


# ----------------------------------------------------------------------------------------------
# least squares


def nnls(A: np.ndarray, b: np.ndarray, maxiter: int | None = None) -> tuple[np.ndarray, float]:
    """min ‖A·x − b‖ subject to x ≥ 0 (Lawson–Hanson active set, as ``scipy.optimize.nnls``).

    A : (m, n) matrix; b : (m,) vector; maxiter : inner iterations allowed (default 3n).
    Returns (x, ‖A·x − b‖). Raises RuntimeError when the iterations run out.
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    m, n = A.shape
    maxiter = maxiter or 3 * n
    tol = 10.0 * np.finfo(float).eps * max(m, n) * max(float(np.abs(A).sum(axis=0).max(initial=0.0)),
                                                        1.0)
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    if m == 0 or n == 0:
        return x, float(np.linalg.norm(b))
    if m == n:
        # all bounds inactive (the common case of the fit's scales): the solution of a regular
        # square A is the unique optimum
        try:
            s = np.linalg.solve(A, b)
        except np.linalg.LinAlgError:
            s = None
        if s is not None and np.all(np.isfinite(s)) and np.all(s > tol):
            return s, float(np.linalg.norm(A @ s - b))

    def solve(p: np.ndarray) -> np.ndarray:
        s = np.zeros(n)
        s[p] = np.linalg.lstsq(A[:, p], b, rcond=None)[0]
        return s

    w = A.T @ b
    rejected = np.zeros(n, dtype=bool)     # entered with a non-positive value at this x
    it = 0
    while True:
        free = ~passive & ~rejected & (w > tol)
        if not free.any():
            break
        j = int(np.argmax(np.where(free, w, -np.inf)))
        passive[j] = True
        s = solve(passive)
        if s[j] <= 0:                      # degenerate step: try the next candidate
            passive[j] = False
            rejected[j] = True
            continue
        while passive.any() and np.min(s[passive]) <= 0:
            it += 1
            if it > maxiter:
                raise RuntimeError("Maximum number of iterations reached.")
            neg = passive & (s <= 0)
            alpha = np.min(x[neg] / (x[neg] - s[neg]))
            x = x + alpha * (s - x)
            passive &= x > tol
            s = solve(passive)
        x = s
        w = A.T @ (b - A @ x)
        rejected[:] = False
    return x, float(np.linalg.norm(A @ x - b))
