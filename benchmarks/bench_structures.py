"""Time reading + validating a large cell (`read_cif` = what `xtal library check FILE` does).

Builds F-43m CIFs with N general sites (96 atoms each; N = 500 gives 48,000 atoms in the cell) and
times `read_cif` (symmetry expansion, multiplicities, contact validation). When git can show
``main:xtal/structures.py`` (the per-pair loop expansion before issue 11), that version is timed too,
on the smaller sizes only (it is quadratic in the cell content).

    python benchmarks/bench_structures.py [N ...]
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xtal.structures import read_cif  # noqa: E402

#: the old implementation is only timed up to this many general sites (it takes minutes beyond)
OLD_MAX_SITES = 120


def f43m_cif(n_sites: int, a_angstrom: float = 80.0) -> str:
    """F-43m cell with ``n_sites`` general positions on a 0.01 grid (x < y < z < 1/4: distinct orbits)."""
    grid = [round(0.03 + 0.01 * k, 2) for k in range(21)]
    triples = list(combinations(grid, 3))[:n_sites]
    if len(triples) < n_sites:
        raise ValueError(f"at most {len(triples)} sites")
    lines = ["data_big_f43m", f"_cell_length_a {a_angstrom}", f"_cell_length_b {a_angstrom}",
             f"_cell_length_c {a_angstrom}", "_cell_angle_alpha 90", "_cell_angle_beta 90",
             "_cell_angle_gamma 90", "_space_group_name_H-M_alt 'F -4 3 m'", "_space_group_IT_number 216",
             "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
             "_atom_site_fract_y", "_atom_site_fract_z"]
    lines += [f"C{k + 1} C {x:.2f} {y:.2f} {z:.2f}" for k, (x, y, z) in enumerate(triples)]
    return "\n".join(lines) + "\n"


def _old_structures():
    """``xtal/structures.py`` of git ``main`` as a module, or None."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", "main:xtal/structures.py"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "old_structures.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_structures", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_structures"] = mod   # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def main(sizes: list[int]) -> None:
    old = _old_structures()
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"f43m_{n}.cif"
            path.write_text(f43m_cif(n))
            t0 = time.perf_counter()
            p = read_cif(path)
            t_new = time.perf_counter() - t0
            line = f"{n:4d} sites, {len(p.cell_atoms()):6d} atoms: read+check {t_new:7.2f} s"
            if old is not None and n <= OLD_MAX_SITES:
                t0 = time.perf_counter()
                q = old.read_cif(path)
                t_old = time.perf_counter() - t0
                assert len(q.cell_atoms()) == len(p.cell_atoms()) and q.warnings == p.warnings
                line += f"   main (per-pair loops): {t_old:7.2f} s  (×{t_old / t_new:.0f})"
            print(line, flush=True)


if __name__ == "__main__":
    main([int(v) for v in sys.argv[1:]] or [20, 60, 120, 500])
