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
    fast = P.pseudo_voigt(x, c, a, f, 0.6, dcentre=dc, dfwhm=df, derivatives=True)
    monkeypatch.setattr(P, "_CSC", [None])
    slow = P.pseudo_voigt(x, c, a, f, 0.6, dcentre=dc, dfwhm=df, derivatives=True)
    for key in ("values", "eta", "centre"):
        np.testing.assert_array_equal(fast[key], slow[key])
    for key in ("dcentre", "dfwhm"):
        assert len(fast[key]) == len(slow[key])
        for u, v in zip(fast[key], slow[key]):
            np.testing.assert_array_equal(u, v)
