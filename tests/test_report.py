"""HTML reports embed their figures and stay self-contained."""
from __future__ import annotations

import base64

import matplotlib.pyplot as plt

from xtal.report import markdown_to_html, write_report


def test_html_embeds_figures(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "fig.png")
    plt.close(fig)
    md = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![a figure](fig.png)\n\n![gone](missing.png)\n"
    md_path, html_path = write_report(md, tmp_path / "r.md", html_path=tmp_path / "r.html", title="T")
    html = html_path.read_text()
    assert md_path.read_text() == md
    assert "<table>" in html and "<td>2</td>" in html
    payload = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(payload) == (tmp_path / "fig.png").read_bytes()
    assert "images not found: missing.png" in html


def test_html_escapes_title():
    assert "<title>a &lt;b&gt;</title>" in markdown_to_html("x", title="a <b>")
