"""Issue 17: the coordination report and figure at a glance."""
from __future__ import annotations

import itertools

import matplotlib
import pytest

from xtal.geometry import analyse_geometry
from xtal.library import Library
from xtal.report.geometry import _label_levels, distance_figure, render_geometry_markdown

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def bundled_results():
    lib = Library.bundled()
    out = []
    for e in lib:
        if e.filled:
            g = analyse_geometry(lib.phase(e.id), chemenv=False, no_metal="empty")
            if g.sites:
                out.append(g)
    return out


def test_report_lists_only_the_operators_used_and_one_model_banner(bundled_results):
    md = render_geometry_markdown(bundled_results)
    alpha = next(r for r in bundled_results if r.phase_id == "alpha_li2b12h12")
    line = next(ln for ln in md.split("`alpha_li2b12h12`")[1].splitlines() if ln.startswith("- symmetry codes"))
    used = sorted({int(b.symop.split("_")[0]) for s in alpha.sites for b in s.bonds})
    assert f"({len(alpha.symops)} operators)" in line
    listed = line.split("those used in the tables: ")[1].split("; ")
    assert [int(t.split(":")[0]) for t in listed] == used and len(used) < len(alpha.symops)
    banners = [ln for ln in md.splitlines() if "NOT A REFINED STRUCTURE" in ln]
    assert banners and all(ln.count("NOT A REFINED STRUCTURE") == 1 for ln in banners)


def test_label_levels_separate_close_labels():
    assert _label_levels([2.0, 2.01, 2.5], 0.05) == [0, 1, 0]
    assert _label_levels([2.0, 2.1], 0.05) == [0, 0]


def test_multiplicity_labels_do_not_overlap(bundled_results):
    fig = distance_figure(bundled_results)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent(r)) for t in ax.texts if t.get_text().startswith("×")]
        for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (ax.get_title(), ta, tb, a, b)
    matplotlib.pyplot.close(fig)
