"""`PhaseModel.d_spacings_and_derivatives` computes the metric of all its displaced cells in one
batched inverse (issue 16): the same bits as one `_g6` per cell, and the same error."""
from __future__ import annotations

import numpy as np
import pytest

from xtal.errors import XtalError
from xtal.identify.model import PhaseModel, _g6, _g6_of_cells
from xtal.library import Library


def _one_by_one(m: PhaseModel, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The central differences with one reciprocal metric per displaced cell."""
    d = m.d_spacings(m.cell(q))
    dd = np.zeros((d.size, len(q)))
    for k in range(len(q)):
        h = 1e-3 if m.names[k] in ("alpha", "beta", "gamma", "angle") else 1e-6
        qp, qm = np.array(q, dtype=float), np.array(q, dtype=float)
        qp[k] += h
        qm[k] -= h
        dd[:, k] = -0.5 * d ** 3 * (m.hh @ ((_g6(m.cell(qp)) - _g6(m.cell(qm))) / (2.0 * h)))
    return d, dd


@pytest.mark.parametrize("mode", ["isotropic", "cell"])
def test_batched_derivatives_are_bit_identical(mode):
    rng = np.random.default_rng(16)
    systems = set()
    for ph in Library.bundled(user_dir=False).phases():
        m = PhaseModel(ph, 0.8, mode)
        systems.add(m.system)
        for _ in range(5):
            q = rng.normal(scale=0.01, size=m.n_params)
            d, dd = m.d_spacings_and_derivatives(q)
            d0, dd0 = _one_by_one(m, q)
            assert np.array_equal(d, d0) and np.array_equal(dd, dd0), (ph.id, mode)
            assert dd.shape == (d.size, m.n_params) and np.all(np.isfinite(dd))
    assert len(systems) >= 4


def test_invalid_cell_raises_like_reciprocal_metric():
    good = (5.0, 6.0, 7.0, 90.0, 95.0, 90.0)
    flat = (5.0, 6.0, 7.0, 150.0, 150.0, 150.0)      # α + β + γ > 360°: no such cell
    assert np.array_equal(_g6_of_cells([good])[0], _g6(good))
    with pytest.raises(XtalError, match="not a valid unit cell") as exc:
        _g6_of_cells([good, flat, (float("nan"),) + good[1:]])
    assert "150.0" in str(exc.value)
