"""`xtal.numeric` against the SciPy / pybaselines routines it replaces on the identify path.

SciPy and pybaselines are imported here only as the independent reference. The signals are the
real measured patterns of ../shared/reference (raw counts: many equal neighbours, i.e. plateaus
and ties) and their smoothed versions, plus hand-made edge cases.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from pybaselines import Baseline
from scipy import ndimage, optimize, signal

from conftest import REF_PATTERNS, REFERENCE, REPO
from xtal import numeric as N
from xtal.io import read_pattern

XRED = REFERENCE / "patterns_xred"


def _real_patterns() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, 2θ, intensity) of every reference pattern that reads as one 2θ scan."""
    out = []
    for f in sorted(REF_PATTERNS.glob("*/*")):
        if f.suffix.lower() in (".prm",):
            continue
        p = read_pattern(f)
        out.append((f.parent.name, np.asarray(p.x, float), np.asarray(p.intensity, float)))
    for f in sorted(XRED.glob("**/*.csv")):
        a = np.loadtxt(f, delimiter=",", ndmin=2)
        if a.shape[1] >= 2 and a.shape[0] > 100:
            out.append((f.parent.name, a[:, 0], a[:, -1]))
    return out


PATTERNS = _real_patterns()
IDS = [name for name, _, _ in PATTERNS]


def test_reference_patterns_found():
    assert len(PATTERNS) >= 20, [n for n in IDS]


def _edge_cases() -> list[np.ndarray]:
    """Plateaus (inner, at the edges, even and odd lengths), equal-height peaks, flat signals."""
    return [np.array(v, dtype=float) for v in (
        [0, 1, 1, 0, 2, 2, 2, 2, 0, 3, 3, 3, 0],         # plateaus: even and odd lengths
        [5, 5, 1, 2, 1, 4, 4],                            # plateaus at both edges: not peaks
        [0, 2, 0, 2, 0, 2, 0, 2, 0],                      # equal heights: distance keeps by argsort order
        [1, 1, 1, 1],                                     # constant
        [0, 1, 0],
        [3, 0, 1, 0, 3],
        [0, 1, 2, 3, 2, 3, 2, 1, 0, 1, 0],
        np.repeat([0, 4, 1, 4, 0, 7, 0], 3),
    )]


@pytest.mark.parametrize("sigma_pts", [0.31, 0.5, 1.0, 2.37, 5.0, 12.0])
def test_gaussian_filter1d_equals_scipy(sigma_pts):
    for name, _, y in PATTERNS:
        mine = N.gaussian_filter1d(y, sigma_pts)
        ref = ndimage.gaussian_filter1d(y, sigma_pts, mode="nearest")
        assert np.array_equal(mine, ref), (name, float(np.max(np.abs(mine - ref))))


@pytest.mark.parametrize("size", [1, 3, 5, 9, 21])
def test_uniform_filter1d_equals_scipy(size):
    for name, _, y in PATTERNS:
        assert np.array_equal(N.uniform_filter1d(y, size), ndimage.uniform_filter1d(y, size)), name


def _peak_options(sm: np.ndarray) -> list[dict]:
    """The option sets the identify path uses (`prepare.find_peaks`, `acceptance`)."""
    noise = np.sqrt(np.maximum(sm, 1.0))
    return [dict(prominence=4.0 * noise / np.sqrt(2.0)),
            dict(prominence=6.0 * float(np.median(noise)), distance=7),
            dict(height=0.1 * float(sm.max()), distance=3),
            dict(height=0.2 * float(sm.max())),
            dict(distance=2.5),
            {}]


@pytest.mark.parametrize("smoothing", [0.0, 1.0, 3.0])
def test_find_peaks_equals_scipy_on_real_patterns(smoothing):
    n_peaks = 0
    for name, _, y in PATTERNS:
        sm = ndimage.gaussian_filter1d(y, smoothing, mode="nearest") if smoothing else y
        for kw in _peak_options(sm):
            mine = N.find_peaks(sm, **kw)
            ref = signal.find_peaks(sm, **kw)[0]
            assert np.array_equal(mine, ref), (name, sorted(kw), mine.size, ref.size)
            n_peaks += ref.size
    assert n_peaks > 1000


@pytest.mark.parametrize("rel_height", [0.5, 0.0, 1.0])
def test_peak_widths_and_prominences_equal_scipy(rel_height):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # SciPy warns about zero widths / prominences
        for name, _, y in PATTERNS:
            for sm in (y, ndimage.gaussian_filter1d(y, 1.0, mode="nearest")):
                peaks = signal.find_peaks(sm)[0]
                mine = N.peak_prominences(sm, peaks)
                ref = signal.peak_prominences(sm, peaks)
                for a, b in zip(mine, ref):
                    assert np.array_equal(a, b), name
                assert np.array_equal(N.peak_widths(sm, peaks, rel_height),
                                      signal.peak_widths(sm, peaks, rel_height=rel_height)[0]), name


def test_peaks_edge_cases_equal_scipy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in _edge_cases():
            for kw in ({}, dict(distance=2), dict(distance=3.5, height=1.0), dict(prominence=1.0),
                       dict(prominence=np.full(v.size, 0.5), distance=4)):
                assert np.array_equal(N.find_peaks(v, **kw), signal.find_peaks(v, **kw)[0]), (v, kw)
            peaks = signal.find_peaks(v)[0]
            assert np.array_equal(N.peak_widths(v, peaks), signal.peak_widths(v, peaks)[0]), v
    # plateau middles, rounded down; edges never
    assert N.find_peaks(np.array([0, 1, 1, 0, 2, 2, 2, 2, 0.0])).tolist() == [1, 5]
    with pytest.raises(ValueError):
        N.find_peaks(np.arange(5.0), distance=0.5)


@pytest.mark.parametrize("fwhm_deg", [0.05, 0.1, 0.3])
def test_snip_equals_pybaselines(fwhm_deg):
    """The parameters of `prepare.estimate_background(..., "snip", fwhm_deg)`."""
    for name, x, y in PATTERNS:
        step = float(np.median(np.diff(x)))
        hw = int(np.clip(6.0 * fwhm_deg / step, 10, max(11, x.size // 4)))
        ref = Baseline(x_data=x).snip(y, max_half_window=hw, decreasing=True,
                                      smooth_half_window=max(1, hw // 10))[0]
        mine = N.snip(y, hw, decreasing=True, smooth_half_window=max(1, hw // 10))
        assert np.array_equal(mine, ref), (name, hw)
    y = PATTERNS[0][2]
    for kw in (dict(decreasing=False), dict(smooth_half_window=None), dict(smooth_half_window=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.array_equal(N.snip(y, 30, **kw), Baseline().snip(y, max_half_window=30, **kw)[0])


def test_modpoly_equals_pybaselines():
    """`fit.estimate_amorphous_fraction`: decimated smooth curve, cubic, tol 1e-4, 200 passes."""
    for name, x, y in PATTERNS:
        k = max(1, x.size // 400)
        xs, ys = x[::k], ndimage.gaussian_filter1d(y, 20.0, mode="nearest")[::k]
        for order, tol in ((3, 1e-4), (2, 1e-3)):
            ref = Baseline(x_data=xs).modpoly(ys, poly_order=order, max_iter=200, tol=tol)[0]
            assert np.array_equal(N.modpoly(xs, ys, order, tol, 200), ref), name


def test_compiled_modpoly_agrees_with_the_numpy_form():
    """The compiled iteration (`xtal._window.modpoly_iterate`, what the amorphous estimate uses)
    against `modpoly`'s NumPy form, which equals pybaselines: the real patterns' smooth curves at
    the estimate's settings and a quadratic at another, to 1e-12 of the baseline's size (the sums
    differ in order only), and a NaN in the data gives NaN in both."""
    from xtal.profiles import compiled_modpoly

    kernel = compiled_modpoly()
    assert kernel is not None            # the extension is built by the package's own install
    for name, x, y in PATTERNS:
        k = max(1, x.size // 400)
        xs, ys = x[::k], ndimage.gaussian_filter1d(y, 20.0, mode="nearest")[::k]
        for order, tol in ((3, 1e-4), (2, 1e-3)):
            ref = N.modpoly(xs, ys, order, tol, 200)
            got = N.modpoly(xs, ys, order, tol, 200, kernel=kernel)
            assert np.max(np.abs(got - ref)) <= 1e-12 * np.max(np.abs(ref)), name
    ys = np.linspace(1, 2, 50)
    ys[7] = np.nan
    assert np.isnan(N.modpoly(np.arange(50.0), ys, 3, 1e-4, 200, kernel=kernel)).all()
    assert np.isnan(N.modpoly(np.arange(50.0), ys, 3, 1e-4, 200)).all()
    # arguments are checked before the loop: a float32 data row, a basis of the wrong size
    V = np.ones((50, 4))
    with pytest.raises(TypeError, match="y must be float64"):
        kernel(V, np.ones((4, 50)), np.ones(50, np.float32), np.empty(50), 4, 1e-4, 200)
    with pytest.raises(ValueError, match="pinv holds 196 items, expected 200"):
        kernel(V, np.ones((4, 49)), np.ones(50), np.empty(50), 4, 1e-4, 200)


def _nnls_systems():
    rng = np.random.default_rng(16)
    for _ in range(400):
        m, n = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        yield rng.normal(size=(m, n)), rng.normal(size=m)
    for _ in range(400):          # the fit's case: Cholesky factor of normalised normal equations
        k = int(rng.integers(1, 7))
        P = np.abs(rng.normal(size=(50, k))) + 0.1 * rng.random((50, k))
        M = P.T @ P
        dg = np.sqrt(np.diag(M))
        L = np.linalg.cholesky(M / np.outer(dg, dg) + np.eye(k) * 1e-12)
        r = (P.T @ (P @ rng.normal(size=k))) / dg
        yield L.T, np.linalg.solve(L, r)


def test_nnls_equals_scipy():
    n_zero = 0
    for A, b in _nnls_systems():
        n = A.shape[1]
        x, rnorm = N.nnls(A, b, maxiter=50 * n + 50)
        xr, rr = optimize.nnls(A, b, maxiter=50 * n + 50)
        assert np.array_equal(x == 0, xr == 0), (A, b, x, xr)
        assert np.allclose(x, xr, rtol=1e-9, atol=1e-11 * max(1.0, float(np.abs(xr).max()))), (x, xr)
        assert rnorm == pytest.approx(rr, rel=1e-9, abs=1e-12)
        assert np.all(x >= 0)
        n_zero += int(np.sum(x == 0))
    assert n_zero > 100       # the bound is active in many of them


def test_identify_path_imports_no_scipy_signal_optimize_stats_sparse_pybaselines(tmp_path):
    """What `xtal identify` imports, and an identification run, leave scipy.signal, .optimize,
    .stats, .ndimage, .sparse (its compiled CSC kernels are loaded from their file) and
    pybaselines unloaded (a correctness check of the import graph)."""
    code = textwrap.dedent("""
        import sys
        import xtal.cli, xtal.identify, xtal.io, xtal.library, xtal.report.identify
        from xtal.library import Library
        from xtal.synth import synthetic_pattern
        from xtal import identify as I
        lib = Library.bundled(user_dir=False)
        ph = {p.id: p for p in lib.phases(["NiO", "CuO", "CaF2"])}
        pat = synthetic_pattern([ph["NiO"], ph["CuO"]], [0.6, 0.4], wavelength_angstrom="CuKa",
                                two_theta_range_deg=(20.0, 80.0), step_deg=0.02, counts_max=2e4, seed=1)
        res = I.identify(pat, list(ph.values()))
        print(sorted(res.best.ids))
        heavy = ("scipy.signal", "scipy.optimize", "scipy.stats", "scipy.ndimage", "scipy.sparse",
                 "pybaselines")
        kernels = "scipy.sparse._sparsetools"     # the extension alone, loaded from its file
        print(sorted(m for m in sys.modules if m.startswith(heavy) and m != kernels))
        print(res.n_fits > 0)
    """)
    env = {"PYTHONPATH": str(REPO), "XTAL_CACHE_DIR": str(tmp_path / "cache"),
           "XTAL_USER_STRUCTURES": str(tmp_path / "user"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.splitlines()
    assert out[0] == "['CuO', 'NiO']"
    assert out[1] == "[]"
    assert out[2] == "True"       # the run really fitted


@pytest.mark.parametrize("name,x,y", PATTERNS, ids=IDS)
def test_median_and_percentile_are_numpys(name, x, y):
    """`median` and `percentile` give NumPy's values on real intensities, their point-to-point
    differences (ties, both signs), squared residuals and every run length 1–40, at the quantiles
    the σ model asks for and at random ones; sorted input read off directly gives the same."""
    rng = np.random.default_rng(7)
    r = y[1:-1] - 0.5 * (y[:-2] + y[2:])
    qs = [0, 5, 20, 50, 80, 100, *rng.uniform(0, 100, 5)]
    for v in (y, np.diff(x), r, r ** 2, *(y[:k] for k in range(1, 41))):
        assert N.median(v) == np.median(v) == N.median(np.sort(v), presorted=True)
        for q in qs:
            assert N.percentile(v, q) == np.percentile(v, q), q
        grid = np.linspace(0, 100, 9)
        assert np.array_equal(N.percentile(v, grid), np.percentile(v, grid))
        assert np.array_equal(N.percentile(np.sort(v), grid, presorted=True), np.percentile(v, grid))
    with_nan = np.append(y[:50], np.nan)
    assert np.isnan(N.median(with_nan)) and np.isnan(N.percentile(with_nan, 30))
    assert np.isnan(N.median(np.array([])))
