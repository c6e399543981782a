"""Coordination-geometry reports: Markdown, standalone HTML and the M–X distance figure of
`xtal.geometry.GeometryResult` objects."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from xtal.errors import GeometryError
from xtal.geometry import (BV_CUTOFF_VALENCE, CONTACT_KINDS, METAL_ORDER, Bond, GeometryResult, compare_metals,
                           published_m_o_ranges)
from xtal.report import markdown_to_html

__all__ = ["render_geometry_markdown", "render_geometry_html", "plot_distance_distributions", "bvs_check_text"]


def _f(v: float | None, nd: int = 3) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _used_operators(r: GeometryResult) -> list[int]:
    """Operator numbers (1-based) that occur in the bonds' symmetry codes ("n_555"), sorted."""
    used = set()
    for site in r.sites:
        for b in site.bonds:
            m = re.match(r"^(\d+)", str(b.symop or ""))
            if m and 1 <= int(m.group(1)) <= len(r.symops):
                used.add(int(m.group(1)))
    return sorted(used)


def render_geometry_markdown(results: Sequence[GeometryResult], *, figure: str | None = None,
                             published: Mapping[str, Any] | None = None) -> str:
    """Markdown report: per phase and metal site the bond table, CN, BVS, polyhedron; then the
    comparison table per metal and (optionally) the figure ``figure`` (path relative to the report)."""
    out = ["# Coordination geometry", ""]
    if any(r.model for r in results):
        out += ["> **⚠ MODEL STRUCTURE(S):** " + ", ".join(r.phase_id for r in results if r.model)
                + " — coordinates were BUILT, not refined; their distances are not experimental results.", ""]
    for r in results:
        out.append(f"## {r.phase_name} (`{r.phase_id}`, {r.spacegroup})")
        out.append("")
        if r.model:
            note = " ".join((r.model_note or "").split())
            # the CIF's own note often opens with the same banner: say it once
            note = re.sub(r"^MODEL\s*(--|—|-|:)?\s*(NOT A REFINED STRUCTURE\.?)?\s*", "", note, flags=re.I)
            out += [f"> **⚠ MODEL — NOT A REFINED STRUCTURE.** {note}".rstrip(), ""]
        out.append(f"- file: `{r.file}`")
        cut = r.cutoff
        out.append("- cutoff: " + (f"{cut['angstrom']:.3f} Å (explicit)" if cut.get("mode") == "explicit"
                                    else cut.get("rule", cut.get("mode", ""))))
        used = _used_operators(r)
        out.append(f"- symmetry codes: operator numbers follow {r.symop_source} ({len(r.symops)} operators); "
                   + ("those used in the tables: " + "; ".join(f"{k}: {r.symops[k - 1]}" for k in used)
                      if used else "none used"))
        out.append("- s.u.: " + ("from cell and coordinate s.u., no covariance" if r.su_available
                                 else "not available in the CIF — distances without s.u."))
        if r.message:
            out.append(f"- **{r.message}**")
        for w in r.warnings:
            out.append(f"- ⚠ {w}")
        out.append("")
        out += _phase_rules_md(r)
        for s in r.sites:
            out += _site_md(s)
        c = r.cif_bond_check
        if c:
            out.append(f"### Check against the CIF's `_geom_bond` loop ({c['n_compared']} of {c['n_listed']} bonds)")
            out.append("")
            w = c["worst"]
            if w:
                out.append(f"- largest |Δd| = {c['max_abs_diff']:.4f} Å ({w['label_1']}–{w['label_2']} "
                           f"{w['symop']}: CIF {w['cif']}, xtal {w['text']})")
            out.append(f"- s.u. compared for {c['n_su_compared']} bonds; largest difference "
                       f"{c['max_su_diff_last_digits']} in the last digit (xtal: no covariance; SHELXL: full "
                       "covariance matrix)")
            out.append(f"- symmetry codes reproduced by xtal's search: {c['symmetry_codes_found']} of "
                       f"{c['n_compared']}")
            out.append("")
    rows = compare_metals(results, published)
    if rows:
        out += ["## Comparison per metal", "",
                "| metal | phase | sites | M–O min | M–O max | M–O mean | CN | BVS (v.u.) | published M–O | within |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for q in rows:
            cn = f"{q['cn_min']}" if q["cn_min"] == q["cn_max"] else f"{q['cn_min']}–{q['cn_max']}"
            bvs = ("–" if q["bvs_min"] is None else
                   (f"{q['bvs_min']:.2f}" if abs(q["bvs_max"] - q["bvs_min"]) < 0.005
                    else f"{q['bvs_min']:.2f}–{q['bvs_max']:.2f}"))
            pub = f"{q['published_m_o'][0]:.3f}–{q['published_m_o'][1]:.3f}" if q["published_m_o"] else "–"
            within = {None: "–", True: "yes", False: "**no**"}[q["within_published"]]
            name = q["phase"] + (" (MODEL)" if q["model"] else "")
            out.append(f"| {q['metal']} | {name} | {q['n_sites']} | {_f(q['m_o_min'])} | {_f(q['m_o_max'])} | "
                       f"{_f(q['m_o_mean'])} | {cn} | {bvs} | {pub} | {within} |")
        out.append("")
    if figure:
        out += [f"![M–X distance distributions per metal]({figure})", ""]
    srcs = sorted({r.bv_source for r in results if r.bv_source})
    out.append("Bond-valence parameters: " + ("; ".join(srcs) if srcs else "none used")
               + "; no distance scaling applied.")
    return "\n".join(out) + "\n"


def _phase_rules_md(r: GeometryResult) -> list[str]:
    """The coordination rule, oxidation states and H normalisation of one phase, as stated rules."""
    out = []
    if r.oxidation_source:
        out.append(f"- oxidation states: {r.oxidation_source}")
    h = r.hydrogen or {}
    if h:
        dist = ", ".join(f"{k}–H {v:.3f} Å" for k, v in h.get("distances", {}).items())
        out.append(f"- hydrogen: probe {h.get('probe')} ({h.get('probe_reason')}); {h.get('decision')}"
                   + (f"; neutron X–H distances used: {dist}" if h.get("normalised") else ""))
        moved = h.get("moved") or []
        if moved:
            out.append("  - moved: " + "; ".join(f"{m['label']}–{m['parent']} {m['before']:.3f} → {m['after']:.3f} Å"
                                                 for m in moved[:12]) + (" …" if len(moved) > 12 else ""))
        for el, src in (h.get("sources") or {}).items():
            out.append(f"  - {el}–H target: {src}")
    return out + ([""] if out else [])


def _site_md(s: Any) -> list[str]:
    """Markdown of one metal site: CN, BVS with sources, verdict, anion coordination, bond table."""
    out = [f"### {s.label} ({s.element}, oxidation state {s.oxidation_state})", ""]
    alt = ", ".join(f"{k}: {v}" for k, v in s.cn_alternatives.items())
    out.append(f"- CN = **{s.cn}**" + (f" (per disorder alternative: {alt})" if alt else ""))
    out.append(f"- coordination: {s.coordination_mode}")
    out.append(f"- BVS = **{_f(s.bvs, 3)} v.u.** — {s.bvs_note}")
    for p in s.bv_parameters:
        reach = p["r0"] - p["b"] * math.log(BV_CUTOFF_VALENCE)
        out.append(f"  - {p['pair']}: R0 = {p['r0']} Å, b = {p['b']} Å ({p['source']}); counted to "
                   f"d ≤ {reach:.3f} Å (s ≥ {BV_CUTOFF_VALENCE} v.u.)")
    out += bvs_check_md(s.element, s.bvs_check)
    out += _thermal_md(s.bvs, s.bvs_thermal)
    a = s.angles
    if a.get("n"):
        out.append(f"- L–M–L angles: min {a['min']:.1f}°, max {a['max']:.1f}°, mean {a['mean']:.1f}°")
    out += _polyhedron_md(s.polyhedron)
    out += _anion_md(s.anion_coordination)
    for w in s.warnings:
        out.append(f"- ⚠ {w}")
    out += ["", "| neighbour | symop | d (Å) | kind | molecule | PART | occ. | s (v.u.) |",
            "|---|---|---|---|---|---|---|---|"]
    for b in s.bonds:
        out.append(f"| {b.to} | {b.symop} | {b.text} | {b.kind} | {b.molecule or ''} | "
                   f"{b.disorder_group or ''} | {b.occupancy:g} | {_f(b.bond_valence, 3)} |")
    return out + [""]


def bvs_check_text(metal: str, check: dict[str, Any] | None) -> str | None:
    """One plain sentence: the BVS s.u. and, for a site off its oxidation state, the bond that carries it."""
    if not check or check.get("deviation") is None:
        return None
    su = (f"s.u. {check['su']:.3f} v.u. (from the bond s.u.)" if check.get("su") is not None
          else "no s.u. (the CIF gives none for the distances)")
    dev, tol = check["deviation"], check["tolerance"]
    if check.get("non_ionic"):
        return (f"BVS − oxidation state = {dev:+.3f} v.u.; not a cation–anion site (neighbours "
                f"{', '.join(check['non_ionic'])} are not more electronegative than {metal}): no verdict; {su}")
    if check.get("indicative"):
        return f"BVS − oxidation state = {dev:+.3f} v.u.; hydride H counted: indicative only, no verdict; {su}"
    if check["within"]:
        return f"BVS − oxidation state = {dev:+.3f} v.u., within ±{tol} v.u.; {su}"
    text = f"BVS − oxidation state = {dev:+.3f} v.u., outside ±{tol} v.u.; {su}. "
    o = check.get("outlier")
    if o is None:
        return text + ("No single bond carries the excess: a strained or mis-assigned site (check the "
                       "oxidation state and the structure)")
    d = f"{o['distance']:.4f}" + (f"({round(o['su'] * 1e4)})" if o.get("su") else "")
    many = f" ({o['bonds']} bonds)" if o["bonds"] > 1 else ""
    diff = o["distance"] - o["median_others"]
    return text + (f"{metal}–{o['neighbour']}{many} at {d} Å carries {o['delta_vu']:+.3f} v.u. of it: "
                   f"{abs(diff):.3f} Å {'shorter' if diff < 0 else 'longer'} than the median of the site's "
                   f"other {metal}–{o['element']} bonds ({o['median_others']:.4f} Å), at which the BVS "
                   f"would be {o['bvs_at_median']:.3f} v.u.: suspect that atom's coordinates before the "
                   "chemistry")


def bvs_check_md(metal: str, check: dict[str, Any] | None) -> list[str]:
    text = bvs_check_text(metal, check)
    return [f"  - {text}"] if text else []


def _thermal_md(bvs: float | None, t: dict[str, Any] | None) -> list[str]:
    """The riding-corrected BVS beside the uncorrected one, with formula and citation."""
    if not t:
        return []
    deltas = [b["delta"] for b in t["bonds"]]
    span = (f"Δd {min(deltas):.4f}–{max(deltas):.4f} Å" if deltas else "no bond corrected")
    return [f"- BVS with thermal-motion correction ({t['model']}): **{_f(t['bvs'], 3)} v.u.** "
            f"(uncorrected {_f(bvs, 3)}; {t['note']}; {span})",
            f"  - {t['formula']}; {t['citation']}"]


def _polyhedron_md(poly: dict[str, Any]) -> list[str]:
    out = []
    v = poly.get("verdict") or {}
    if poly.get("best"):
        shapes = ", ".join(f"{k.split()[0]} {val:.2f}" for k, val in sorted(poly["cshm"].items(),
                                                                          key=lambda kv: kv[1]))
        out.append(f"- polyhedron: **{poly['best']}** — {v.get('reason', '')}; all S: {shapes}")
    else:
        out.append(f"- polyhedron: {poly.get('note')}")
    ce = poly.get("chemenv", {})
    if ce.get("status") == "ok":
        envs = "; ".join(f"{e['ce_symbol']} (csm {e['csm']:.2f}, fraction {e['fraction']:.2f})"
                         for e in ce["environments"]) or "none"
        out.append(f"- second opinion, pymatgen ChemEnv: {envs}")
    elif ce:
        out.append(f"- second opinion, pymatgen ChemEnv: {ce.get('status')}"
                   + (f" — {ce['reason']}" if ce.get("reason") else ""))
    if v.get("comment") and v.get("agree") is not None:
        out.append(f"- verdict: {v['comment']}")
    return out


def _anion_md(ac: dict[str, Any] | None) -> list[str]:
    if not ac:
        return []
    poly = ac["polyhedron"]
    shape = (f"{poly['best']} (S = {poly['best_cshm']:.2f})" if poly.get("best") else poly.get("note", ""))
    out = [f"- coordination by whole anions: centroid CN = **{ac['cn']}**, hapticity {ac['hapticity']}; "
           f"polyhedron of centroids: {shape} ({ac['rule']})"]
    for an in ac["anions"]:
        d = Bond("", "", "", an["distance"], an["su"], "").text
        out.append(f"  - {an['molecule']} ({an['name']}): M···centroid {d} Å, {an['hapticity']} "
                   f"({', '.join(an['donors'])})")
    return out


def render_geometry_html(results: Sequence[GeometryResult], *, figure: str | None = None,
                         published: Mapping[str, Any] | None = None, base_dir: str | Path = ".") -> str:
    """The Markdown report as one standalone HTML page (`xtal.report.markdown_to_html`; the figure,
    resolved against ``base_dir``, is embedded)."""

    md = render_geometry_markdown(results, figure=figure, published=published)
    return markdown_to_html(md, base_dir=base_dir, title="xtal coordination geometry")


_KIND_STYLE = {"ether-O": ("o", "tab:red"), "water": ("s", "tab:blue"), "hydride-H": ("^", "tab:green"),
               "cage-B": ("v", "tab:olive"), "halide": ("P", "tab:cyan"), "other": ("D", "tab:purple"), "metal": ("x", "tab:gray")}


def plot_distance_distributions(results: Sequence[GeometryResult], path: str | Path, *,
                                published: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Figure: M–X distances per metal (one panel per metal element, one row per phase, marker per
    donor kind, distances within 0.01 Å merged into one marker labelled ×n, shaded published M–O range). Written atomically to ``path`` (PNG/SVG/PDF by suffix)."""
    import matplotlib.pyplot as plt

    from xtal.util import atomic_path, check_figure_path

    check_figure_path(path, overwrite=overwrite)
    fig = distance_figure(results, published=published)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _label_levels(xs: Sequence[float], min_sep: float, n_levels: int = 4) -> list[int]:
    """A height level per label at x (in x order) so that labels closer than ``min_sep`` on one
    level never meet (the ×n counts overlapped when two clusters sat close)."""
    last = [-math.inf] * n_levels
    out = [0] * len(xs)
    for i in sorted(range(len(xs)), key=lambda i: xs[i]):
        lvl = next((k for k in range(n_levels) if xs[i] - last[k] >= min_sep), int(np.argmin(last)))
        last[lvl] = xs[i]
        out[i] = lvl
    return out


def distance_figure(results: Sequence[GeometryResult], *, published: Mapping[str, Any] | None = None):
    """The matplotlib figure of ``plot_distance_distributions`` (tests read its artists)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pub = published_m_o_ranges() if published is None else published
    metals = sorted({s.element for r in results for s in r.sites}, key=lambda m: (METAL_ORDER.get(m, 99), m))
    if not metals:
        raise GeometryError("no metal sites to plot")
    fig, axes = plt.subplots(len(metals), 1, figsize=(9, 1.2 + 1.6 * len(metals) + 0.35 * len(results)),
                             squeeze=False)
    seen_kinds: dict[str, Any] = {}
    for ax, metal in zip(axes[:, 0], metals):
        rows = [r for r in results if any(s.element == metal for s in r.sites)]
        top_level = 0
        for k, r in enumerate(rows):
            clusters: list[tuple[str, list[Bond]]] = []
            site_bonds = sorted((b for s in r.sites if s.element == metal for b in s.bonds),
                                key=lambda b: (b.kind, b.distance))
            for b in site_bonds:   # merge same-kind distances within 0.012 Å of the previous one
                if clusters and clusters[-1][0] == b.kind and b.distance - clusters[-1][1][-1].distance < 0.012:
                    clusters[-1][1].append(b)
                else:
                    clusters.append((b.kind, [b]))
            centres = [float(np.mean([b.distance for b in bl])) for _, bl in clusters]
            span = (max(centres) - min(centres)) if centres else 0.0
            levels = _label_levels([c for c, (_, bl) in zip(centres, clusters) if len(bl) > 1],
                                   max(0.045 * span, 0.02))
            multi = iter(levels)
            if k == len(rows) - 1 and levels:
                top_level = max(levels)   # head room for stacked labels on the top row
            for ci, (kind, bl) in enumerate(clusters):
                mk, col = _KIND_STYLE.get(kind, ("D", "tab:purple"))
                dist = float(np.mean([b.distance for b in bl]))
                sus = [b.su for b in bl if b.su]
                su = max(sus) if sus else None
                h = ax.errorbar(dist, k, xerr=su if su else None, fmt=mk, color=col, ms=8, alpha=0.85,
                                capsize=3, mfc="none" if kind in CONTACT_KINDS else col)
                seen_kinds.setdefault(kind + (" (contact, not in CN)" if kind in CONTACT_KINDS else ""), h)
                if len(bl) > 1:
                    ax.annotate(f"×{len(bl)}", (dist, k), xytext=(0, 9 + 11 * next(multi)),
                                textcoords="offset points", ha="center", fontsize=9, color=col)
            rng = pub.get(r.phase_id)
            if isinstance(rng, Mapping):
                rng = rng.get(metal)
            if rng:
                ax.fill_betweenx([k - 0.4, k + 0.4], rng[0], rng[1], color="tab:red", alpha=0.15, lw=0)
                seen_kinds.setdefault("published M–O range", plt.Rectangle((0, 0), 1, 1, color="tab:red",
                                                                          alpha=0.15))
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r.phase_id + (" (MODEL)" if r.model else "") for r in rows], fontsize=11)
        ax.set_ylim(-0.6, len(rows) - 0.25 + 0.35 * top_level)
        ax.set_xlabel(f"{metal}–X distance (Å)", fontsize=12)
        ax.set_title(f"{metal} coordination", fontsize=12, loc="left")
        ax.tick_params(axis="x", labelsize=11)
        ax.grid(axis="x", alpha=0.3)
    fh = fig.get_figheight()
    n_rows = math.ceil(len(seen_kinds) / 3)
    fig.legend(list(seen_kinds.values()), list(seen_kinds.keys()), loc="upper center", fontsize=10,
               ncol=min(3, len(seen_kinds)), frameon=False, bbox_to_anchor=(0.5, 1.0 - 0.45 / fh))
    top = 1.0 - (0.45 + 0.25 * n_rows) / fh
    title = "Metal–neighbour distances (error bars: 1 s.u.)"
    if any(r.model for r in results):
        title += " — includes MODEL structures"
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig
