"""The fit's d-spacing derivatives are analytic (∂G* = −G* ∂G G*): checked against central differences of
the d-spacings themselves, one phase per crystal system of the reference CIFs."""
from __future__ import annotations

import numpy as np
import pytest

from xtal.identify.model import PhaseModel
from xtal.structures import read_cif

from conftest import REF_STRUCTURES as REF  # noqa: E402

# cubic, tetragonal-free mix: orthorhombic PbSO4, monoclinic CuO, triclinic FeN4, rhombohedral BiFeO3, cubic CaF2
CASES = ["CaF2.cif", "PbSO4.cif", "CuO.cif", "COD2242624_FeN4_P-1_SHELXL.cif", "BiFeO3.cif",
         "LiBH4_P63mc_HT.cif"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("mode", ["cell", "isotropic"])
def test_analytic_d_derivatives_equal_numerical(name, mode):
    m = PhaseModel(read_cif(REF / name), dmin=0.9, mode=mode)
    rng = np.random.default_rng(7)
    q = rng.uniform(-0.004, 0.004, len(m.names))
    for k, n in enumerate(m.names):
        if n in ("alpha", "beta", "gamma", "angle"):
            q[k] = rng.uniform(-0.3, 0.3)
    d, dd = m.d_spacings_and_derivatives(q)
    assert dd.shape == (d.size, len(q)) and d.size > 10
    assert np.allclose(d, m.d_spacings(m.cell(q)), rtol=0, atol=1e-12)
    for k, n in enumerate(m.names):
        h = 1e-4 if n in ("alpha", "beta", "gamma", "angle") else 1e-7
        qp, qm = q.copy(), q.copy()
        qp[k] += h
        qm[k] -= h
        num = (m.d_spacings(m.cell(qp)) - m.d_spacings(m.cell(qm))) / (2 * h)
        scale = np.max(np.abs(num)) + 1e-30
        assert np.max(np.abs(dd[:, k] - num)) <= 1e-6 * scale, (name, n)
