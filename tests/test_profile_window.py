"""The fit's windowed pseudo-Voigt (`xtal.profiles.pseudo_voigt`): derivatives against finite
differences, and the compiled window sums identical to the np.bincount fallback (issue 16)."""
import numpy as np
import pytest

import xtal.profiles as P


def _case(seed=0, n=3000, peaks=150):
    rng = np.random.default_rng(seed)
    x = np.linspace(10.0, 80.0, n)
    c = np.sort(rng.uniform(9.0, 81.0, peaks))
    a = rng.uniform(0.1, 5.0, peaks)
    f = rng.uniform(0.05, 0.4, peaks)
    dc = rng.normal(size=(peaks, 3))
    df = rng.normal(size=(peaks, 2))
    return x, c, a, f, dc, df


def test_window_derivatives_match_finite_differences():
    """Analytic derivatives of the untapered peak: the Lorentzian taper's own slope (last 2 FWHM of
    the window) is left out by design, which costs ~1 % of the largest derivative."""
    x, c, a, f, dc, df = _case()
    eta = 0.4
    out = P.pseudo_voigt(x, c, a, f, eta, dcentre=dc, dfwhm=df, derivatives=True)
    h = 1e-6
    for k in range(dc.shape[1]):
        up = P.pseudo_voigt(x, c + h * dc[:, k], a, f, eta)["values"]
        dn = P.pseudo_voigt(x, c - h * dc[:, k], a, f, eta)["values"]
        num = (up - dn) / (2 * h)
        assert np.max(np.abs(out["dcentre"][k] - num)) < 1e-2 * np.max(np.abs(num))
    for k in range(df.shape[1]):
        # ∂/∂hw with hw = fwhm/2: move the FWHM by 2·h·dfwhm
        up = P.pseudo_voigt(x, c, a, f + 2 * h * df[:, k], eta)["values"]
        dn = P.pseudo_voigt(x, c, a, f - 2 * h * df[:, k], eta)["values"]
        num = (up - dn) / (4 * h)
        # the window (± 6 FWHM) and its taper scale with the FWHM too: a few % at most
        assert np.max(np.abs(out["dfwhm"][k] - num)) < 3e-2 * np.max(np.abs(num))
    up = P.pseudo_voigt(x, c + h, a, f, eta)["values"]
    dn = P.pseudo_voigt(x, c - h, a, f, eta)["values"]
    num = (up - dn) / (2 * h)
    assert np.max(np.abs(out["centre"] - num)) < 1e-2 * np.max(np.abs(num))


@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_window_sums_equal_the_bincount_fallback(monkeypatch, seed):
    x, c, a, f, dc, df = _case(seed)
    monkeypatch.setattr(P, "_COMPILED", [None])           # the NumPy form: CSC sums vs bincount
    fast = P.pseudo_voigt(x, c, a, f, 0.6, dcentre=dc, dfwhm=df, derivatives=True)
    monkeypatch.setattr(P, "_CSC", [None])
    slow = P.pseudo_voigt(x, c, a, f, 0.6, dcentre=dc, dfwhm=df, derivatives=True)
    for key in ("values", "eta", "centre"):
        np.testing.assert_array_equal(fast[key], slow[key])
    for key in ("dcentre", "dfwhm"):
        assert len(fast[key]) == len(slow[key])
        for u, v in zip(fast[key], slow[key]):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("values, derivatives", [(True, True), (True, False), (False, True)])
def test_blocks_of_peaks_give_the_same_sums_as_one_pass(monkeypatch, values, derivatives):
    """`_window` evaluates the peaks in blocks of ~`_BLOCK_POINTS` window points, accumulating
    into the same arrays in the same order: bit-identical to one pass over all the points."""
    x, c, a, f, dc, df = _case(2, n=4000, peaks=400)
    monkeypatch.setattr(P, "_COMPILED", [None])           # the NumPy form in both
    kw = dict(dcentre=dc, dfwhm=df, derivatives=derivatives, values=values)
    monkeypatch.setattr(P, "_BLOCK_POINTS", 10**9)
    one = P._window(x, c, a, f, 0.3, **kw)
    monkeypatch.setattr(P, "_BLOCK_POINTS", 700)
    edges = P._block_edges(np.full(400, 120), 400 * 120)
    assert edges[0] == 0 and edges[-1] == 400 and len(edges) > 60 and edges == sorted(set(edges))
    many = P._window(x, c, a, f, 0.3, **kw)
    assert one.keys() == many.keys()
    for key, v in one.items():
        for u, w in zip(v, many[key]) if isinstance(v, list) else [(v, many[key])]:
            np.testing.assert_array_equal(u, w)


@pytest.mark.parametrize("values, derivatives, with_columns",
                         [(True, True, True), (True, False, False), (False, True, True),
                          (True, True, False)])
def test_compiled_kernel_equals_the_numpy_form(monkeypatch, values, derivatives, with_columns):
    """The C kernel (`xtal._window.window_sums`) and the NumPy form give the same profile and
    derivatives to rounding, on a fine-step grid as large as a real lab pattern (24 000 points,
    Kα1/Kα2-like peak density) and on a strided one (a decimated search copy). The extension is
    built by every install with a C compiler, CI's included: it must be there (not skipped)."""
    assert P._compiled_window() is not None
    rng = np.random.default_rng(7)
    for x in (np.arange(10.0, 140.0, 0.0054), np.arange(10.0, 140.0, 0.0054)[::8]):
        peaks = 660
        c = np.sort(rng.uniform(9.0, 141.0, peaks))
        a, f = rng.uniform(0.1, 5.0, peaks), rng.uniform(0.08, 0.3, peaks)
        dc = rng.normal(size=(peaks, 3)) if with_columns else None
        df = rng.normal(size=(peaks, 3)) if with_columns else None
        kw = dict(dcentre=dc, dfwhm=df, derivatives=derivatives, values=values)
        fast = P._window(x, c, a, f, 0.37, **kw)
        monkeypatch.setattr(P, "_COMPILED", [None])
        slow = P._window(x, c, a, f, 0.37, **kw)
        monkeypatch.undo()
        assert sorted(fast) == sorted(slow)
        for key, ref in slow.items():
            got = fast[key]
            ref_rows, got_rows = (ref, got) if isinstance(ref, list) else ([ref], [got])
            assert len(got_rows) == len(ref_rows), key
            for u, v in zip(got_rows, ref_rows):
                assert u.shape == v.shape and u.flags.c_contiguous, key
                np.testing.assert_allclose(u, v, rtol=0, atol=1e-13 * np.max(np.abs(v)), err_msg=key)


def test_compiled_kernel_serves_every_grid(monkeypatch):
    """The kernel loads in well under a millisecond, so every grid uses it (a 300-point frame as a
    24 000-point lab pattern): the choice depends on the installation, never on the call."""
    kernel = P._compiled_window()
    used = []

    def spy(*args):
        used.append(args[0].size)
        return kernel(*args)

    monkeypatch.setattr(P, "_COMPILED", [spy])
    for n in (300, 5000, 24000):
        x, c, a, f, dc, df = _case(3, n=n)
        P.pseudo_voigt(x, c, a, f, 0.5, dcentre=dc, dfwhm=df, derivatives=True)
    assert used == [300, 5000, 24000]


def test_compiled_kernel_refuses_arrays_it_would_misread():
    """Types, sizes and windows are checked before the loop: a wrong call is a Python exception,
    never a read or write outside an array."""
    kernel = P._compiled_window()
    n, k = 50, 2
    x = np.linspace(0.0, 5.0, n)
    one = np.ones(1)

    def call(**over):
        args = dict(x=x, centres=one * 2.5, inv_hw=one * 4.0, height=one, per_centre=np.ones((1, k)),
                    per_fwhm=np.ones((1, k)), lo=np.array([10]), hi=np.array([40]),
                    values=np.zeros(n), d_eta=np.zeros(n), d_centre=np.zeros((k, n)),
                    d_fwhm=np.zeros((k, n)))
        args.update(over)
        kernel(args["x"], args["centres"], args["inv_hw"], args["height"], args["per_centre"],
               args["per_fwhm"], args["lo"], args["hi"], 0.5, 1.0, 6.0, 2.0, True, True,
               args["values"], args["d_eta"], args["d_centre"], args["d_fwhm"], k, k)
        return args

    out = call()
    assert out["values"][25] > 0 and out["values"][5] == 0 and np.all(out["d_centre"][:, 45] == 0)
    with pytest.raises(TypeError, match="x must be float64"):
        call(x=x.astype(np.float32))
    with pytest.raises(TypeError, match="lo must be int64"):
        call(lo=np.array([10], dtype=np.int32))
    with pytest.raises(ValueError, match="d_centre holds 50 items, expected 100"):
        call(d_centre=np.zeros((1, n)))
    with pytest.raises(ValueError, match=r"window 0 is \[10, 51\) on 50 points"):
        call(hi=np.array([51]))
    with pytest.raises(ValueError, match="not C-contiguous"):
        call(values=np.zeros(2 * n)[::2])


def test_compiled_near_field_equals_the_numpy_form(monkeypatch):
    """The exact renderer (`pseudo_voigt_profile`) with its near field in C
    (`xtal._window.near_field_sums`) and in NumPy: the same profile to rounding, on a real-size
    grid (11 000 points) with 2 000 peaks of mixed widths and mixing (several width bands, peaks
    beyond both ends)."""
    rng = np.random.default_rng(3)
    x = np.arange(10.0, 120.0, 0.01)
    n = 2000
    c = np.sort(rng.uniform(8.0, 122.0, n))
    a, w, e = rng.uniform(0.1, 10.0, n), rng.uniform(0.02, 0.6, n), rng.uniform(0.0, 1.0, n)
    assert P._compiled_near_field() is not None
    fast = P.pseudo_voigt_profile(x, c, a, w, e)
    monkeypatch.setattr(P, "_COMPILED", [P._COMPILED[0], None])
    slow = P.pseudo_voigt_profile(x, c, a, w, e)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-13 * np.max(slow))
