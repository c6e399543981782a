"""`xtal demo` (xtal.demo.run_demo) end to end on the bundled data: every file and the key numbers in them.

The demo runs once per module (~40 s on two cores) into a temporary directory, through the command
line (``xtal demo --out DIR``, as a user runs it): the tests read its files, and the `DemoOutputs`
and progress lines of the `run_demo` call the command makes.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

from xtal.demo import DemoOutputs, demo_patterns, demo_series_path, run_demo

SLOTS = {"li2b12h12_2diglyme", "li2b12h12_1.5dme", "na2b12h12_4diglyme_rt", "na2b12h12_2diglyme_ht",
         "k2b12h12_4diglyme", "na2b12h12",
         # issue 18: the study's DMSO, DEF and water solvates, the B10H10 impurity, Na2B12H12 high-T
         "li2b12h12_n_dmso", "li2b12h12_n_def", "li2b12h12_n_h2o", "li2b10h10", "na2b12h12_ht"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``xtal demo --out DIR`` run once: (run_demo's DemoOutputs, DIR, its progress lines, exit code).

    The command's one `run_demo` call is wrapped to keep its return value and to log into a list;
    one run serves the API checks and the CLI check (before, the CLI test ran a second demo)."""
    import xtal.demo as D
    from xtal import cli

    out = tmp_path_factory.mktemp("demo") / "xtal-demo"
    lines: list[str] = []
    calls: list[DemoOutputs] = []

    def recording_run_demo(*args, **kwargs):
        kwargs.setdefault("log", lines.append)
        calls.append(run_demo(*args, **kwargs))
        return calls[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "run_demo", recording_run_demo)
        rc = cli.main(["demo", "--out", str(out)])
    assert len(calls) == 1, "xtal demo calls run_demo once"
    return calls[0], out, lines, rc


def _json(p: Path):
    return json.loads(p.read_text(encoding="utf-8"))


def _csv_rows(p: Path) -> list[dict]:
    text = "\n".join(ln for ln in p.read_text(encoding="utf-8").splitlines() if not ln.startswith("#"))
    return list(csv.DictReader(text.splitlines()))


# ----------------------------------------------------------------------------------------------
def test_every_output_exists_and_is_listed(demo):
    res, out, lines, _ = demo
    assert isinstance(res, DemoOutputs) and res.out_dir == out
    paths = res.paths()
    assert len(paths) > 60
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0, p
        assert out.resolve() in p.resolve().parents, p
    for sec in ("library", "simulate", "identify", "series", "coordination", "overview"):
        assert res.files[sec], sec
    # the run ends by printing where each output is (its duration is measured in benchmarks/)
    assert any(ln.startswith("[1/5]") for ln in lines) and any(ln.startswith("[5/5]") for ln in lines)
    tail = "\n".join(lines[-50:])
    for where in ("library/library.csv", "simulate/dodecaborate_phases_MoKa.png",
                  "identify/measured_PbSO4_lab_CuKa.html", "series/report.html", "series/heatmap.png",
                  "coordination/coordination.json", "README.md", "index.html"):
        assert where in tail, where
    summary = _json(out / "summary.json")
    assert summary["numbers"]["identify"]["measured_PbSO4_lab_CuKa"]["best"] == ["PbSO4"]
    assert set(summary["timings_s"]) == {"library", "simulate", "identify", "series", "coordination"}


def test_library_table_lists_the_empty_slots_and_models(demo):
    res, out, _, _ = demo
    rows = _csv_rows(out / "library" / "library.csv")
    empty = {r["id"] for r in rows if r["filled"] == "0"}
    assert empty == SLOTS
    assert all(r["kind"] == "slot" and "EMPTY SLOT" in r["status"] for r in rows if r["id"] in SLOTS)
    models = {r["id"]: r for r in rows if r["model"] == "1"}
    assert set(models) == {"alpha_li2b12h12", "beta_li2b12h12"}
    assert all(r["status"] == "MODEL (not refined)" for r in models.values())
    assert float(models["alpha_li2b12h12"]["a"]) == pytest.approx(9.577, abs=1e-3)
    md = (out / "library" / "library.md").read_text(encoding="utf-8")
    assert md.count("**EMPTY SLOT**") == len(SLOTS) == 11 and "MODEL (not refined)" in md
    assert res.numbers["library"]["empty_slots"] and set(res.numbers["library"]["empty_slots"]) == SLOTS


def test_simulated_patterns_for_every_filled_phase(demo):
    res, out, _, _ = demo
    d = out / "simulate"
    filled = [r["id"] for r in _csv_rows(out / "library" / "library.csv") if r["filled"] == "1"]
    assert len(filled) == res.numbers["simulate"]["n_phases"] == 20
    for pid in filled:
        xye = (d / f"{pid}.xye").read_text(encoding="utf-8")
        assert "wavelength_angstrom: 0.71073" in xye
        data = np.loadtxt(d / f"{pid}.xye")
        assert data.shape[1] == 3 and data[0, 0] == pytest.approx(2.0) and data[-1, 0] == pytest.approx(50.0)
        refl = (d / f"{pid}_reflections.csv").read_text(encoding="utf-8")
        assert "h,k,l,d_angstrom,two_theta_deg" in refl
    # MODEL structures say so in their files
    assert "MODEL" in (d / "alpha_li2b12h12.xye").read_text(encoding="utf-8")
    assert "MODEL" in (d / "beta_li2b12h12_reflections.csv").read_text(encoding="utf-8")
    # α-Li2B12H12 (111): d = 9.577/√3 = 5.529 Å → 2θ = 7.37° at 0.71073 Å
    rows = [ln.split(",") for ln in (d / "alpha_li2b12h12_reflections.csv").read_text().splitlines()
            if not ln.startswith("#")][1:]
    r111 = next(r for r in rows if r[:3] == ["1", "1", "1"])
    assert float(r111[3]) == pytest.approx(9.577 / 3 ** 0.5, abs=1e-3)
    assert float(r111[4]) == pytest.approx(7.367, abs=0.01)
    assert set(res.numbers["simulate"]["dodecaborate_figure_phases"]) == {
        "alpha_li2b12h12", "beta_li2b12h12", "k2b12h12", "mgb12h12_12h2o", "libh4_rt", "libh4_ht"}
    assert (d / "dodecaborate_phases_MoKa.png").stat().st_size > 50_000


def _assert_self_contained(html: Path) -> str:
    text = html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in text
    assert not re.search(r'<img[^>]+src="(?!data:)', text), f"{html} links an external image"
    return text


def test_identification_of_the_measured_patterns(demo):
    _, out, _, _ = demo
    d = out / "identify"
    pb = _json(d / "measured_PbSO4_lab_CuKa.json")
    best = pb["hypotheses"][0]
    assert [p["id"] for p in best["phases"]] == ["PbSO4"]
    assert best["rwp"] < 0.15
    assert pb["radiation"]["wavelength2_angstrom"] == pytest.approx(1.5443, abs=1e-3)   # Cu Kα1/Kα2
    assert pb["pattern"]["kind"] == "measured" and pb["synthetic"] is False
    assert pb["confidence"] in ("high", "medium")
    nac = _json(d / "measured_NAC_11BM.json")
    ids = {p["id"]: p for p in nac["hypotheses"][0]["phases"]}
    assert "NAC" in ids and set(ids) <= {"NAC", "CaF2"}
    assert ids["NAC"]["weight_fraction"] > 0.95 and nac["hypotheses"][0]["rwp"] < 0.15
    assert nac["wavelength"] == pytest.approx(0.413909)
    for stem in ("measured_PbSO4_lab_CuKa", "measured_NAC_11BM"):
        for ext in ("md", "html", "png"):
            assert (d / f"{stem}.{ext}").stat().st_size > 0
        _assert_self_contained(d / f"{stem}.html")
        assert "Measured data" in (d / f"{stem}.md").read_text(encoding="utf-8")


def test_identification_of_the_synthetic_mixture_recovers_the_recipe(demo):
    _, out, _, _ = demo
    d = out / "identify"
    js = _json(d / "synthetic_mixture_MoKa.json")
    assert js["synthetic"] is True and js["recipe"]["synthetic"] is True
    recipe = {p["id"]: p["weight_fraction"] for p in js["recipe"]["phases"]}
    assert recipe == pytest.approx({"alpha_li2b12h12": 0.5, "libh4_rt": 0.3, "k2b12h12": 0.2})
    best = {p["id"]: p for p in js["hypotheses"][0]["phases"]}
    assert set(best) == set(recipe)
    for pid, w in recipe.items():
        assert abs(best[pid]["weight_fraction"] - w) < 0.03, pid       # within 3 wt%
    assert best["alpha_li2b12h12"]["model"] is True
    assert "alpha_li2b12h12" in js["model_phases"]
    assert js["wavelength"] == pytest.approx(0.71073)
    md = (d / "synthetic_mixture_MoKa.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in md and "Recipe vs recovered" in md and "MODEL" in md
    html = _assert_self_contained(d / "synthetic_mixture_MoKa.html")
    assert "SYNTHETIC" in html
    rows = _csv_rows(d / "batch_summary.csv")
    assert [r["pattern"] for r in rows] == [p.name for p in demo_patterns()]
    assert rows[2]["kind"] == "SYNTHETIC"
    _assert_self_contained(d / "batch_summary.html")


def test_series_events_include_the_alpha_beta_jump(demo):
    res, out, _, _ = demo
    d = out / "series"
    ev = _json(d / "events.json")
    assert ev["synthetic"] is True
    assert {"alpha_li2b12h12", "beta_li2b12h12"} <= set(ev["models"])
    jumps = [e for e in ev["events"] if e["kind"] == "jump" and e["phase"] == "beta_li2b12h12"
             and e.get("from_phase") == "alpha_li2b12h12"]
    assert len(jumps) == 1
    assert abs(jumps[0]["T_C"] - 310.0) <= 5.0
    assert jumps[0]["volume_change_pct"] == pytest.approx(8.7, abs=0.5)
    by = {(e["phase"], e["kind"]): e for e in ev["events"]}
    assert abs(by[("mgb12h12_12h2o", "disappears")]["T_C"] - 150.0) <= 8.0     # stand-in solvate
    assert abs(by[("alpha_li2b12h12", "appears")]["T_C"] - 150.0) <= 8.0
    assert 340.0 <= by[("amorphous", "amorphous")]["T_C"] <= 375.0              # γ halo
    # no phase that the programme does not contain
    present = {e["phase"] for e in ev["events"]} - {"amorphous"}
    assert present <= {"mgb12h12_12h2o", "alpha_li2b12h12", "beta_li2b12h12"}
    rows = _csv_rows(d / "phases.csv")
    assert {r["phase"] for r in rows if r["phase"]} <= {"mgb12h12_12h2o", "alpha_li2b12h12", "beta_li2b12h12"}
    for name in ("heatmap.png", "fractions.png", "lattice.png", "series.nc", "report.md", "report.html"):
        assert (d / name).stat().st_size > 0, name
    md = (d / "report.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in md and "STAND-IN" in md and "MODEL" in md and "Programmed vs recovered" in md
    html = _assert_self_contained(d / "report.html")
    assert html.count("data:image/png;base64,") >= 3
    import xarray as xr

    with xr.open_dataset(d / "series.nc") as ds:
        assert int(ds.attrs["synthetic"]) == 1 and ds.sizes["frame"] == 79
    assert res.numbers["series"]["alpha_beta_jump"]["volume_change_pct"] == pytest.approx(8.7, abs=0.5)


def test_coordination_report(demo):
    res, out, _, _ = demo
    d = out / "coordination"
    js = _json(d / "coordination.json")
    assert js["chemenv"] is False and "ChemEnv was NOT run" in js["note"]
    by = {s["phase"]: s for s in js["structures"]}
    assert {"NAC", "k2b12h12", "mgb12h12_12h2o", "libh4_rt", "alpha_li2b12h12"} <= set(by)
    na = [s for s in by["NAC"]["sites"] if s["element"] == "Na"]
    assert len(na) == 1 and na[0]["bvs"] == pytest.approx(0.99, abs=0.01) and na[0]["cn"] == 7
    mg = by["mgb12h12_12h2o"]["sites"][0]
    assert mg["cn"] == 6 and mg["bvs"] == pytest.approx(2.23, abs=0.02)
    assert by["alpha_li2b12h12"]["model"] is True and "alpha_li2b12h12" in js["models"]
    assert "PbSO4" in js["without_metal_sites"]
    md = (d / "coordination.md").read_text(encoding="utf-8")
    assert "ChemEnv was not run" in md and "MODEL" in md
    _assert_self_contained(d / "coordination.html")
    assert (d / "coordination.png").stat().st_size > 20_000
    assert res.numbers["coordination"]["bvs"]["NAC"]


def test_progress_false_logs_only_the_summary(tmp_path, monkeypatch):
    """progress=False: no step lines, only the final 'where is what' (checked on a cheap stub run)."""
    import xtal.demo as D

    calls = []
    for name in ("_step_library", "_step_simulate", "_step_identify", "_step_series", "_step_coordination"):
        monkeypatch.setattr(D, name, lambda lib, out, res, say, n=name: (calls.append(n), say("step")))
    lines: list[str] = []
    res = D.run_demo(tmp_path / "o", progress=False, log=lines.append, workers=1)
    assert len(calls) == 5 and not any(ln.startswith("[") for ln in lines)
    assert lines[0].startswith("xtal demo finished") and (tmp_path / "o" / "README.md").is_file()
    assert res.files["overview"]


def _stub_step(name):
    def step(lib, out, res, say):
        import os

        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "pid.txt").write_text(str(os.getpid()))
        res.add(name, "pid.txt", d / "pid.txt")
        res.numbers[f"pid_{name}"] = os.getpid()
        say(f"{name} done")
    return step


@pytest.mark.parametrize("workers", [1, 2])
def test_second_process_gives_the_same_outputs_and_lines(tmp_path, monkeypatch, workers):
    """workers=2 runs simulate + series + coordination in a forked child: files, numbers and
    timings come back in step order, as with workers=1, and every step's progress line is passed
    on, each process's in step order (the child's when it finishes; checked on stub steps)."""
    import os

    import xtal.demo as D

    for name in ("library", "simulate", "identify", "series", "coordination"):
        monkeypatch.setattr(D, f"_step_{name}", _stub_step(name))
    lines: list[str] = []
    res = D.run_demo(tmp_path / "o", log=lines.append, workers=workers)
    steps = ["library", "simulate", "identify", "series", "coordination"]
    got = [ln for ln in lines if ln.startswith("[")]
    want = {n: f"[{k}/5] {n} done" for k, n in enumerate(steps, 1)}
    assert sorted(got) == sorted(want.values())
    assert list(res.timings_s) == steps
    assert [s for s in res.files if s != "overview"] == steps
    pids = {n: res.numbers[f"pid_{n}"] for n in steps}
    child = {n for n in steps if pids[n] != os.getpid()}
    assert child == (set(D._CHILD_STEPS) if workers == 2 else set())
    for side in (child, set(steps) - child):      # each process's lines in step order
        mine = [ln for ln in got if ln in {want[n] for n in side}]
        assert mine == [want[n] for n in steps if n in side]
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["numbers"]["pid_series"] == res.numbers["pid_series"]


def test_a_failing_child_step_raises_in_the_caller(tmp_path, monkeypatch):
    import xtal.demo as D

    def boom(lib, out, res, say):
        raise RuntimeError("series step failed")
    for name in ("library", "simulate", "identify", "coordination"):
        monkeypatch.setattr(D, f"_step_{name}", _stub_step(name))
    monkeypatch.setattr(D, "_step_series", boom)
    with pytest.raises(RuntimeError, match="series step failed"):
        D.run_demo(tmp_path / "o", log=lambda s: None, workers=2)


def test_refuses_to_write_into_the_bundled_data():
    from xtal.errors import OverwriteError

    with pytest.raises(OverwriteError):
        run_demo(REPO / "patterns" / "demo-out", log=lambda s: None)
    assert not (REPO / "patterns" / "demo-out").exists()


@pytest.mark.slow
def test_cli_demo(demo):
    """`xtal demo --out DIR` (the run of the ``demo`` fixture) exits 0 and writes into DIR."""
    _, out, _, rc = demo
    assert rc == 0
    pb = _json(out / "identify" / "measured_PbSO4_lab_CuKa.json")
    assert [p["id"] for p in pb["hypotheses"][0]["phases"]] == ["PbSO4"]
    assert (out / "series" / "report.html").is_file() and (out / "index.html").is_file()


# ----------------------------------------------------------------------------------------------
# the bundled synthetic data are what the committed script makes (fixed seeds)
# ----------------------------------------------------------------------------------------------
def _load_script():
    spec = importlib.util.spec_from_file_location("make_example_data", REPO / "scripts" / "make_example_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_example_data"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_bundled_synthetic_data_are_reproducible(tmp_path):
    from xtal.io import read_pattern, read_series

    mk = _load_script()
    assert mk.main(["--out", str(tmp_path)]) == 0
    bundled = [p for p in demo_patterns() if p.kind == "synthetic"][0].path
    a, b = read_pattern(bundled), read_pattern(tmp_path / bundled.name)
    assert a.meta["synthetic"] is True and a.wavelength_angstrom == pytest.approx(0.71073)
    assert np.array_equal(a.x, b.x)
    assert np.mean(a.intensity != b.intensity) < 0.01       # same seed: identical up to rare Poisson flips
    for pa, pb in zip(a.meta["program"]["phases"], b.meta["program"]["phases"]):
        assert (pa["id"], pa["weight_fraction"], pa["cell"]) == (pb["id"], pb["weight_fraction"], pb["cell"])
        assert pa["scale"] == pytest.approx(pb["scale"], rel=1e-6)
    head = bundled.read_text(encoding="utf-8").splitlines()[:10]
    assert head[0].startswith("# SYNTHETIC") and any("50.0 wt%" in h for h in head)
    s1, s2 = read_series(demo_series_path()), read_series(tmp_path / demo_series_path().name)
    assert s1.shape == s2.shape == (79, 1801)
    assert s1.shape[0] <= 120 and s1.shape[1] <= 2000 and demo_series_path().stat().st_size < 3e6
    assert np.allclose(s1.temperature_c, s2.temperature_c)
    assert np.mean(s1.values != s2.values) < 0.01
    assert int(s1.attrs["synthetic"]) == 1 and "STAND-IN" in s1.attrs["stand_in"]
    prog = json.loads(s1.attrs["program"])
    assert "/" not in prog["phases"][0]["phase"]["cif"].split("structures/")[0]   # repo-relative paths


def test_index_links_html_pages_and_interactive_pages_not_raw_markdown(demo):
    """issue 17: the demo's index.html links the HTML reports and interactive pages, no raw .md."""
    import re

    res, out, lines, _ = demo
    html = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', html)
    assert links and not [h for h in links if h.endswith(".md")]
    for page in ("series/series.html", "coordination/coordination.interactive.html",
                 "identify/measured_PbSO4_lab_CuKa.interactive.html", "library/library.html",
                 "simulate/simulated_patterns.html"):
        assert page in links, page
        assert (out / page).is_file(), page
    for h in links:
        if not re.match(r"^[a-z]+:", h):
            assert (out / h).is_file(), h      # every local link resolves


def test_a_dead_child_is_replaced_by_the_caller(tmp_path, monkeypatch):
    """The forked process dies (here: os._exit in the series step): the caller runs its steps."""
    import os

    import xtal.demo as D

    parent = os.getpid()

    def series(lib, out, res, say):
        if os.getpid() != parent:
            os._exit(3)
        _stub_step("series")(lib, out, res, say)
    for name in ("library", "simulate", "identify", "coordination"):
        monkeypatch.setattr(D, f"_step_{name}", _stub_step(name))
    monkeypatch.setattr(D, "_step_series", series)
    res = D.run_demo(tmp_path / "o", log=lambda s: None, workers=2)
    assert res.numbers["pid_series"] == parent and res.numbers["pid_coordination"] == parent
    assert list(res.timings_s) == ["library", "simulate", "identify", "series", "coordination"]


def test_idle_cpus_sees_a_busy_core(tmp_path):
    """The demo's choice of a second process reads the CPUs idle *now* (/proc/stat), not the
    1-minute load average that still shows a finished install: with one core kept busy by a child
    process, at most CPUs − 1 (+ a margin) are idle."""
    import os
    import subprocess
    import sys

    import xtal.demo as D

    ncpu = len(os.sched_getaffinity(0))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        with_busy = D._idle_cpus(ncpu, interval_s=0.5)
    finally:
        busy.kill()
        busy.wait()
    assert 0.0 <= with_busy <= ncpu - 0.7
