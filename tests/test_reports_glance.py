"""Issue 17: reports and figures a chemist reads at a glance — rendered text and matplotlib artists."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from test_interactive import _ramp
from xtal.library import Library
from xtal.report import series as S
from xtal.report import series_figures as F

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def lib():
    return Library.bundled()


@pytest.fixture(scope="module")
def warm(lib):
    return _ramp(lib, 60.0, 150.0, 10.0, halo=True)


@pytest.fixture(scope="module")
def cryo(lib):
    return _ramp(lib, -267.0, -180.0, 10.0)


def test_series_report_rwp_in_percent_and_cubic_expansion_once(warm):
    md = S.render_series_markdown(warm)
    line = [ln for ln in md.splitlines() if ln.startswith("- Rwp")][0]
    assert "%" in line and "0.0" not in line.split(":")[1].split("%")[0]
    expansion = md.split("## Thermal expansion")[1]
    params = [ln.split("|")[2].strip() for ln in expansion.splitlines() if ln.startswith("| k2b12h12 |")]
    assert params == ["a", "vol"]                     # not a, b and c of a cubic phase
    hex_params = [ln.split("|")[2].strip() for ln in expansion.splitlines() if ln.startswith("| libh4_ht |")]
    assert hex_params == ["a", "c", "vol"]


def test_amorphous_event_is_not_amorphous_amorphous():
    class R:
        events = [{"phase": "amorphous", "kind": "amorphous", "frame": 3, "T_C": 120.0, "sigma_C": 2.0,
                   "time_s": 90.0, "amorphous_fraction_max": 0.9}]
    md = "\n".join(S._events_section(R(), "°C"))
    assert "| amorphous | amorphous |" not in md
    assert "| (amorphous halo) | amorphisation | 3 | 120.00 |" in md


def test_repeated_notes_are_grouped():
    notes = ["refitted with the phase set of the Viterbi pass"] * 11 + [
        "frame 3: x not supported by the full fit", "frame 7: x not supported by the full fit"]
    out = S.grouped_notes(notes)
    assert out == ["refitted with the phase set of the Viterbi pass (11 frames)",
                   "frames 3, 7: x not supported by the full fit"]


def test_cryo_series_reported_in_kelvin_everywhere(cryo):
    md = S.render_series_markdown(cryo)
    assert "°C" not in md.replace("0 °C", "")          # no Celsius column, range or event
    T = cryo.temperature_c + 273.15
    assert "T range (K)" in md and f"- temperature: {T.min():.1f} – {T.max():.1f} K" in md
    assert "−266" not in md and "-266" not in md and "-267" not in md
    md_c = S.render_series_markdown(cryo, temperature="C")    # the user's choice wins
    assert "T range (°C)" in md_c
    for fn in (F.plot_heatmap, F.plot_fractions, F.plot_lattice, F.plot_waterfall):
        fig = fn(cryo)
        labels = [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
        tl = [s for s in labels if s.startswith("T (")]
        assert tl and all(s == "T (K)" for s in tl), (fn.__name__, labels)
        matplotlib.pyplot.close(fig)


def test_heatmap_event_legend_outside_the_map_and_halo_band(warm):
    fig = F.plot_heatmap(warm)
    ax0 = fig.axes[0]
    assert ax0.get_legend() is None and len(fig.legends) == 1       # not over the data
    assert fig.legends[0].get_title().get_text() == "events"
    bands = [ax for ax in fig.axes if ax.get_title() == "phases"][0]
    names = [t.get_text() for t in bands.get_xticklabels()]
    assert names[-1] == "amorphous halo" and "libh4_rt" in names
    hatched = [p for p in bands.patches if p.get_hatch() == "//"]
    am = warm.dataset["amorphous_fraction"].values
    assert len(hatched) == int((am >= 0.15).sum()) > 0
    matplotlib.pyplot.close(fig)


def test_stand_in_marked_on_the_bands(warm, monkeypatch):
    monkeypatch.setattr(F, "_stand_ins", lambda attrs: [("libh4_ht", "β-Li2B12H12")])
    fig = F.plot_heatmap(warm)
    bands = [ax for ax in fig.axes if ax.get_title() == "phases"][0]
    assert "libh4_ht †" in [t.get_text() for t in bands.get_xticklabels()]
    assert any(t.get_text() == "† libh4_ht stands in for β-Li2B12H12" for t in fig.texts)
    matplotlib.pyplot.close(fig)


def test_fractions_amorphous_on_its_own_axis(warm):
    fig = F.plot_fractions(warm)
    crystalline = [ax for ax in fig.axes if "crystalline" in ax.get_ylabel()][0]
    assert not any("amorphous" in (ln.get_label() or "") for ln in crystalline.get_lines())
    amax = [ax for ax in fig.axes if ax.get_ylabel() == "amorphous fraction"]
    assert len(amax) == 1 and any("amorphous" in ln.get_label() for ln in amax[0].get_lines())
    matplotlib.pyplot.close(fig)


def test_write_series_result_writes_the_interactive_page(warm, tmp_path):
    w = S.write_series_result(warm, tmp_path, figures=False)
    assert w["series.html"].is_file() and "[series.html](series.html)" in w["report.md"].read_text()


def test_expansion_fit_never_runs_across_a_transition(warm):
    """A lattice transition at 105 °C splits the fit: one row per side, none spanning both."""
    from xtal.series import thermal_expansion

    ex = thermal_expansion(warm, "k2b12h12", split_at_c=[105.0])
    segs = ex["a"]["segments"]
    assert len(segs) == 2 and ex["a"]["split_at_C"] == [105.0]
    assert segs[0]["T_range_C"][1] < 105.0 < segs[1]["T_range_C"][0]
    assert sum(s["n_frames"] for s in segs) == thermal_expansion(warm, "k2b12h12")["a"]["n_frames"]
    saved = warm.expansion
    try:
        warm.expansion = dict(saved, k2b12h12=ex)
        md = S.render_series_markdown(warm).split("## Thermal expansion")[1]
        rows = [ln for ln in md.splitlines() if ln.startswith("| k2b12h12 | a |")]
        assert len(rows) == 2 and "60.0 – 100.0" in rows[0] and "110.0 – 150.0" in rows[1]
    finally:
        warm.expansion = saved


def test_demo_series_table_gives_one_programmed_temperature_per_transition():
    """issue 17: α→β was 307.5 °C in the appears row and 310.0 °C in the jump row."""
    from types import SimpleNamespace

    from xtal.demo import _series_preamble

    expected = [{"phase": "alpha_li2b12h12", "kind": "disappears", "T_mid_C": 307.5},
                {"phase": "beta_li2b12h12", "kind": "appears", "T_mid_C": 307.5},
                {"phase": "amorphous", "kind": "amorphous", "T_mid_C": 358.9}]
    events = [{"phase": "beta_li2b12h12", "kind": "appears", "T_C": 307.5, "sigma_C": 1.4},
              {"phase": "beta_li2b12h12", "kind": "jump", "from_phase": "alpha_li2b12h12", "T_C": 307.49,
               "sigma_C": 1.4, "volume_change_pct": 8.75},
              {"phase": "amorphous", "kind": "amorphous", "T_C": 357.0, "sigma_C": 1.4}]
    md = _series_preamble(SimpleNamespace(attrs={}), SimpleNamespace(events=events), expected,
                          __import__("pathlib").Path("s.nc"))
    rows = [ln for ln in md.splitlines() if ln.startswith("| beta_li2b12h12 |") or ln.startswith("| alpha")]
    programmed = {ln.split("|")[3].strip() for ln in rows}
    assert programmed == {"307.5"}
    assert "| amorphous | amorphous |" not in md and "| (amorphous halo) | amorphisation |" in md
