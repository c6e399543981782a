"""Reports: Markdown written by each stage, turned into one self-contained HTML file to share.

The HTML embeds every figure referenced from the Markdown (``![caption](figure.png)``) as a base64
data URI, so the single file can be mailed or attached to an electronic lab notebook.
"""
from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

import markdown

from xtal.util import atomic_write_text

__all__ = ["markdown_to_html", "write_report"]

_IMG_RE = re.compile(r'<img([^>]*?)src="([^"]+)"')

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 60em;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
code, pre { background: #f6f6f6; font-size: 0.92em; }
img { max-width: 100%; }
blockquote { border-left: 4px solid #d33; margin-left: 0; padding-left: 1em; color: #722; }
"""


def markdown_to_html(md_text: str, *, base_dir: str | Path = ".", title: str = "xtal report") -> str:
    """Convert Markdown to a standalone HTML page with images embedded.

    Parameters
    ----------
    md_text : Markdown source (tables and fenced code allowed).
    base_dir : directory against which relative image paths are resolved.
    title : HTML page title.

    Returns
    -------
    The HTML document as a string. Images that cannot be found keep their link and are listed
    in an HTML comment at the top.
    """
    body = markdown.markdown(md_text, extensions=["tables", "fenced_code"])
    base = Path(base_dir)
    missing: list[str] = []

    def embed(m: re.Match) -> str:
        src = m.group(2)
        if src.startswith("data:") or re.match(r"^[a-z]+://", src):
            return m.group(0)
        path = (base / src)
        if not path.is_file():
            missing.append(src)
            return m.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img{m.group(1)}src="data:{mime};base64,{data}"'

    body = _IMG_RE.sub(embed, body)
    note = f"<!-- images not found: {html.escape(', '.join(missing))} -->\n" if missing else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{note}{body}\n"
            f"</body>\n</html>\n")


def write_report(md_text: str, md_path: str | Path, *, html_path: str | Path | None = None,
                 title: str = "xtal report", overwrite: bool = False,
                 protected=()) -> tuple[Path, Path | None]:
    """Write the Markdown report and (optionally) its self-contained HTML twin, atomically.

    Image links in the Markdown are resolved relative to the Markdown file's directory.  Both paths
    are checked before either is written: never one of ``protected`` (the run's inputs), an existing
    file only with ``overwrite``.  Returns the paths written.
    """
    from xtal.util import check_writable

    md_path = Path(md_path)
    check_writable(md_path, overwrite=overwrite, protected=tuple(protected))
    if html_path is not None:
        check_writable(html_path, overwrite=overwrite, protected=tuple(protected))
    atomic_write_text(md_path, md_text)
    out_html = None
    if html_path is not None:
        out_html = Path(html_path)
        atomic_write_text(out_html, markdown_to_html(md_text, base_dir=md_path.parent, title=title))
    return md_path, out_html
