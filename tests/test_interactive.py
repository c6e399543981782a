"""Interactive HTML pages (plotly) opened in a real headless Chromium from file: no console errors,
plots drawn, hover and zoom respond, intensity scale switches, screenshots non-empty. Plus the
figure dicts themselves (hkl on hover, Q–T, amorphous band, K for cryo data, s.u. on lattice)."""
from __future__ import annotations

import numpy as np
import pytest

from browser import Chromium
from xtal import series, synth
from xtal.identify import identify
from xtal.library import Library
from xtal.report import interactive as I
from xtal.synth import synthetic_pattern


@pytest.fixture(scope="module")
def lib():
    return Library.bundled()


@pytest.fixture(scope="module")
def id_result(lib):
    ph = [lib.phase("k2b12h12"), lib.phase("libh4_rt")]
    pat = synthetic_pattern(ph, [0.6, 0.4], wavelength_angstrom="CuKa", two_theta_range_deg=(10, 60),
                            step_deg=0.02, seed=1)
    calls = []
    res = identify(pat, ph + [lib.phase("CaF2")], progress=lambda stage, n: calls.append((stage, n)))
    res.progress_calls = calls
    return res


def _ramp(lib, start_c, to_c, step_c, halo=False):
    halos = ([synth.HaloStage(name="amorphous solvate", d_angstrom=7.5, fwhm_deg=4.0,
                              appear_c=start_c + 0.6 * (to_c - start_c), weight=3.0)] if halo else [])
    mid = start_c + 0.5 * (to_c - start_c)
    prog = synth.SeriesProgram(
        segments=[synth.Segment("ramp", to_c=to_c, step_c=step_c, frame_time_s=30.0)], start_c=start_c,
        phases=[synth.PhaseStage(lib.phase("libh4_rt"), disappear_c=mid, alpha_per_c=5e-5),
                synth.PhaseStage(lib.phase("libh4_ht"), appear_c=mid, alpha_per_c=6e-5, t0_c=135.0),
                synth.PhaseStage(lib.phase("k2b12h12"), weight=0.6, alpha_per_c=2e-5)],
        halos=halos, seed=7, wavelength_angstrom=0.71073, two_theta_range_deg=(6.0, 24.0))
    return series.analyse_series(synth.synthetic_series(prog),
                                 lib.phases(["libh4_rt", "libh4_ht", "k2b12h12"]), progress=False)


@pytest.fixture(scope="module")
def series_result(lib):
    return _ramp(lib, 60.0, 150.0, 10.0, halo=True)


@pytest.fixture(scope="module")
def geometry_results(lib):
    from xtal.geometry import analyse_geometry

    return [analyse_geometry(lib.phase("k2b12h12"), chemenv=False)]


@pytest.fixture(scope="module")
def pages(tmp_path_factory, id_result, series_result, geometry_results):
    d = tmp_path_factory.mktemp("pages")
    return {"identify": I.write_identification_html(id_result, d / "identify.html"),
            "series": I.write_series_html(series_result, d / "series.html"),
            "geometry": I.write_geometry_html(geometry_results, d / "geometry.html")}


@pytest.fixture(scope="module")
def browser():
    b = Chromium()
    yield b
    b.close()


# ------------------------------------------------------------------------------------------------
# figure data
# ------------------------------------------------------------------------------------------------
def test_identify_progress_callback_reports_stages(id_result):
    stages = [s for s, _ in id_result.progress_calls]
    assert stages[0].startswith("screen") and stages[-1] == "done"
    assert "final refinement" in stages and any(s.startswith("hypotheses with 2") for s in stages)
    counts = [n for _, n in id_result.progress_calls]
    assert counts == sorted(counts) and counts[-1] == id_result.n_fits


def test_identification_figure_ticks_span_the_data_and_carry_hkl(id_result):
    fig = I.identification_figure(id_result).to_dict()
    ticks = [t for t in fig["data"] if t["name"].endswith(" reflections")]
    assert len(ticks) == 2
    x = np.asarray(id_result.best.fit.x_deg)
    for t in ticks:
        assert max(t["x"]) > x[-1] - 5 and min(t["x"]) < x[0] + 10     # ticks to the end of the data
        hkl, d, inten = t["customdata"][0]
        assert len(hkl.split()) == 3 and d > 0 and 0 < inten <= 100
        assert "customdata[0]" in t["hovertemplate"] and "d %{customdata[1]" in t["hovertemplate"]
    # per-phase curve and its ticks toggle together
    assert {t["legendgroup"] for t in ticks} == {p.id for p in id_result.best.phases}
    labels = [b["label"] for b in fig["layout"]["updatemenus"][0]["buttons"]]
    assert labels == ["linear", "√I", "log"]
    sq = fig["layout"]["updatemenus"][0]["buttons"][1]["args"]
    obs = np.asarray(id_result.best.fit.observed)
    assert np.allclose(sq[0]["y"][0][:50], np.sqrt(np.abs(obs[:50])) * np.sign(obs[:50]))


def test_series_figures_hover_q_axis_halo_band_and_su(series_result):
    figs = I.series_figures(series_result)
    hm = figs["heatmap"].to_dict()
    heat = hm["data"][0]
    assert heat["type"] == "heatmap"
    assert all(k in heat["hovertemplate"] for k in ("frame", "T", "2θ", "I "))
    assert "°C" in heat["hovertemplate"] and "°C" in hm["layout"]["yaxis"]["title"]["text"]
    buttons = hm["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["2θ", "Q"]
    q = np.asarray(buttons[1]["args"][0]["x"][0])
    assert q[0] == pytest.approx(4 * np.pi * np.sin(np.radians(heat["x"][0] / 2)) / 0.71073)
    names = [t["name"] for t in hm["data"][1:]]
    assert "amorphous halo" in names and "libh4_rt" in names
    lat = figs["lattice"].to_dict()
    k2 = [t for t in lat["data"] if t["name"].startswith("k2b12h12")]
    assert [t["name"] for t in k2] == ["k2b12h12 a"]            # cubic: a only, not a, b, c
    assert all(t["error_y"]["visible"] and any(v for v in t["error_y"]["array"] if v) for t in lat["data"])
    fr = figs["fractions"].to_dict()
    assert fr["layout"]["yaxis"]["title"]["text"] == "weight fraction (crystalline)"
    am = [t for t in fr["data"] if t["name"] == "amorphous fraction"][0]
    assert am["yaxis"] == "y2"                                  # not on the crystalline axis


def test_cryo_series_in_kelvin_on_every_axis(lib):
    from xtal.report.units import temperature_unit, to_unit

    assert temperature_unit([-260.0, 10.0]) == "K" and temperature_unit([20.0, 300.0]) == "°C"
    assert temperature_unit([20.0], "K") == "K" and to_unit(0.0, "K") == pytest.approx(273.15)
    res = _ramp(lib, -260.0, -170.0, 10.0)
    figs = I.series_figures(res)
    assert "K" in figs["heatmap"].to_dict()["layout"]["yaxis"]["title"]["text"]
    for name in ("lattice", "fractions"):
        lay = figs[name].to_dict()["layout"]
        xt = [v["title"]["text"] for k, v in lay.items() if k.startswith("xaxis") and v.get("title")]
        assert xt and all(t == "T (K)" for t in xt), (name, xt)
    assert min(figs["lattice"].to_dict()["data"][0]["x"]) > 0          # kelvin values, not −260


# ------------------------------------------------------------------------------------------------
# the pages in a real browser
# ------------------------------------------------------------------------------------------------
def test_pages_are_self_contained(pages):
    from html.parser import HTMLParser

    class Scripts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.src, self.inline = [], 0

        def handle_starttag(self, tag, attrs):
            if tag in ("script", "link", "img", "iframe"):
                a = dict(attrs)
                if a.get("src") or a.get("href"):
                    self.src.append(a.get("src") or a.get("href"))
                elif tag == "script":
                    self.inline += 1

    for p in pages.values():
        parser = Scripts()
        parser.feed(p.read_text(encoding="utf-8"))
        assert parser.src == [] and parser.inline >= 2        # plotly.js and the figure, inline


@pytest.mark.parametrize("name", ["identify", "series", "geometry"])
def test_page_loads_from_file_without_console_errors(browser, pages, name, tmp_path):
    browser.open(pages[name])
    n = browser.eval("document.querySelectorAll('.js-plotly-plot').length")
    assert n == {"identify": 1, "series": 3, "geometry": 1}[name]
    assert browser.eval("[...document.querySelectorAll('.js-plotly-plot')].every("
                        "g => g.querySelectorAll('.main-svg').length > 0)")
    assert browser.console_errors == []
    assert browser.remote_requests == []                       # nothing fetched beyond the file
    title = browser.eval("document.title")
    assert title.startswith("xtal ")
    legend = browser.eval("[...document.querySelectorAll('.legendtext')].map(e => e.textContent)")
    gtitle = browser.eval("[...document.querySelectorAll('.gtitle')].map(e => e.textContent)")
    if name == "identify":
        assert any(t.startswith("k2b12h12") for t in legend) and "observed" in legend
        assert any("Rwp" in t for t in gtitle)
    elif name == "series":
        assert "amorphous halo" in legend and any("Intensity map" in t for t in gtitle)
    else:
        assert any("distances" in t for t in gtitle)
    png = browser.screenshot(tmp_path / f"{name}.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_identify_page_hover_zoom_and_sqrt_scale(browser, pages, id_result):
    browser.open(pages["identify"])
    # hover over the first k2b12h12 tick mark with a real mouse event
    pos = browser.eval("""(() => { const gd = document.querySelector('.js-plotly-plot');
        const i = gd.data.findIndex(t => t.name === 'k2b12h12 reflections');
        const fl = gd._fullLayout, xa = fl.xaxis2, ya = fl.yaxis2, r = gd.getBoundingClientRect();
        const x = gd.data[i].x[0], y = gd.data[i].y[0];
        return [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)]; })()""")
    browser.mouse_move(pos[0] - 30, pos[1])
    browser.mouse_move(*pos)
    text = browser.eval("new Promise(r => setTimeout(() => r([...document.querySelectorAll("
                        "'.hoverlayer .hovertext')].map(e => e.textContent).join(' | ')), 300))")
    assert "k2b12h12" in text and "Å" in text and "(1 1 1)" in text, text
    # zoom by relayout, and by a real drag on the plot
    rng = browser.eval("(() => { const gd = document.querySelector('.js-plotly-plot');"
                       " return Plotly.relayout(gd, {'xaxis.range': [20, 30]}).then(() => gd.layout.xaxis.range); })()")
    assert rng == [20, 30]
    browser.eval("Plotly.relayout(document.querySelector('.js-plotly-plot'), {'xaxis.autorange': true}).then(() => true)")
    box = browser.eval("(() => { const gd = document.querySelector('.js-plotly-plot'); const fl = gd._fullLayout;"
                       " const r = gd.getBoundingClientRect(); return [r.left + fl.xaxis._offset,"
                       " r.top + fl.yaxis._offset, fl.xaxis._length, fl.yaxis._length]; })()")
    x0, y0, w, h = box
    browser.drag(x0 + 0.3 * w, y0 + 0.5 * h, x0 + 0.5 * w, y0 + 0.5 * h)
    rng = browser.eval("new Promise(r => setTimeout(() => r(document.querySelector('.js-plotly-plot')"
                       ".layout.xaxis.range), 300))")
    assert 20 < rng[0] < rng[1] < 40, rng          # 10–60° zoomed to about 25–35°
    # √I button: the observed trace becomes √counts
    browser.eval("(() => { const b = [...document.querySelectorAll('.updatemenu-button')]"
                 ".find(e => e.textContent === '√I'); b.dispatchEvent(new MouseEvent('click', {bubbles: true}));"
                 " b.dispatchEvent(new MouseEvent('mouseup', {bubbles: true})); })()")
    ymax = browser.eval("new Promise(r => setTimeout(() => r(Math.max(...document.querySelector("
                        "'.js-plotly-plot').data[0].y)), 300))")
    assert ymax == pytest.approx(np.sqrt(np.max(id_result.best.fit.observed)), rel=1e-6)
    assert browser.console_errors == []


def test_series_page_heatmap_hover(browser, pages, series_result):
    browser.open(pages["series"])
    pos = browser.eval("""(() => { const gd = document.getElementById('xtal-fig-0');
        const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis, r = gd.getBoundingClientRect();
        const x = gd.data[0].x[100], y = gd.data[0].y[3];
        return [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)]; })()""")
    browser.mouse_move(pos[0] + 5, pos[1] + 5)
    browser.mouse_move(*pos)
    text = browser.eval("new Promise(r => setTimeout(() => r([...document.querySelectorAll("
                        "'.hoverlayer .hovertext')].map(e => e.textContent).join(' | ')), 300))")
    assert "frame 3" in text and "°C" in text and "2θ" in text, text
    assert browser.console_errors == []


def test_matplotlib_figure_sqrt_log_zoom_and_inset(id_result):
    import matplotlib.pyplot as plt

    from xtal.report.identify import identification_figure_mpl

    obs = np.asarray(id_result.best.fit.observed)
    fig = identification_figure_mpl(id_result, intensity="sqrt", zoom=(20, 30), inset=(14, 15))
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "observed")
    assert np.allclose(line.get_ydata(), np.sqrt(obs)) and ax.get_ylabel().startswith("√")
    assert ax.get_xlim() == (20.0, 30.0)
    insets = [c for c in ax.child_axes]
    assert len(insets) == 1 and insets[0].get_xlim() == (14.0, 15.0)
    plt.close(fig)
    fig = identification_figure_mpl(id_result, intensity="log")
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="intensity"):
        identification_figure_mpl(id_result, intensity="cubic")


def test_series_page_marks_stand_ins(series_result, monkeypatch):
    import xtal.report.series as S

    monkeypatch.setattr(S, "_stand_ins", lambda attrs: [("libh4_ht", "β-Li2B12H12")])
    hm = I.series_figures(series_result)["heatmap"].to_dict()
    band = next(t for t in hm["data"] if t.get("legendgroup") == "libh4_ht")
    assert band["name"] == "libh4_ht — stand-in for β-Li2B12H12"
    ticks = [a for k, a in hm["layout"].items() if k.startswith("xaxis") and a.get("ticktext")][0]["ticktext"]
    assert "libh4_ht †" in ticks and ticks[-1] == "amorphous halo"


def test_refinement_page_rietveld_and_le_bail(tmp_path):
    """`xtal refine` writes an interactive page too: the real PbSO4 pattern's Le Bail fit and a
    short Rietveld fit, each with its tick row, difference curve and the √I/log switch, and the
    CLI refuses an existing page without --force before refining."""
    from tests.conftest import REF_PATTERNS, REF_STRUCTURES
    from xtal.cli import main
    from xtal.io import read_pattern
    from xtal.refine import le_bail
    from xtal.report.interactive import refinement_figure
    from xtal.structures import read_cif

    d = REF_PATTERNS / "lab_PbSO4_CuKa"
    pat = read_pattern(d / "PBSO4.XRA", instrument=d / "INST_XRY.PRM")
    lb = le_bail(pat, [read_cif(REF_STRUCTURES / "PbSO4.cif")], two_theta_range=(20, 40))
    fig = refinement_figure(lb).to_dict()
    names = [t.get("name") for t in fig["data"]]
    assert {"observed", "calculated", "background", "obs − calc"} <= set(names)
    ticks = next(t for t in fig["data"] if t.get("name", "").endswith("reflections"))
    assert len(ticks["x"]) >= 10 and 20 <= min(ticks["x"]) and max(ticks["x"]) <= 40
    assert "Le Bail" in fig["layout"]["title"]["text"]
    assert fig["layout"]["updatemenus"][0]["buttons"]
    page = tmp_path / "refine.html"
    page.write_text("keep")
    args = ["refine", str(d / "PBSO4.XRA"), "--instrument", str(d / "INST_XRY.PRM"), "--cif",
            str(REF_STRUCTURES / "PbSO4.cif"), "--lebail", "--range", "20", "40", "--html", str(page)]
    assert main(args) == 2 and page.read_text() == "keep"
    assert main(args + ["--force"]) == 0
    assert "plotly" in page.read_text()[:200000].lower()


def _page_figures(text: str) -> list[dict]:
    """The {"data", "layout"} of every Plotly.newPlot call in a page."""
    import json
    import re

    dec, out = json.JSONDecoder(), []
    for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text):
        data, pos = dec.raw_decode(text, m.end())
        layout, _ = dec.raw_decode(text, re.compile(r"\s*,\s*").match(text, pos).end())
        out.append({"data": data, "layout": layout})
    return out


def test_pages_embed_the_figure_dicts(pages, id_result, series_result):
    """The pages write numpy arrays straight to JSON (no plotly validation): same data as the
    validated figures' dicts, NaN as null, the √I menu included."""
    import json

    import plotly.io as pio

    figs = [I.identification_figure(id_result)] + list(I.series_figures(series_result).values())
    figs = [json.loads(pio.to_json(f, remove_uids=False)) for f in figs]     # NaN → null, as a page
    embedded = _page_figures(pages["identify"].read_text(encoding="utf-8")) + \
        _page_figures(pages["series"].read_text(encoding="utf-8"))
    assert len(embedded) == len(figs) == 4
    for fig, emb in zip(figs, embedded):
        assert emb == fig
    heat = embedded[1]["data"][0]
    assert heat["type"] == "heatmap" and len(heat["z"]) == series_result.n_frames
    sq = embedded[0]["layout"]["updatemenus"][0]["buttons"][1]["args"][0]["y"][0]
    assert sq[10] == pytest.approx(np.sqrt(id_result.best.fit.observed[10]), rel=1e-12)
