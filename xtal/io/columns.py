"""Column text (.xy .xye .dat .txt .csv .asc, pyFAI 1D) and Fit2D .chi readers."""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from xtal.errors import EmptyPatternError, InvalidDataError, PatternFormatError
from xtal.io.common import decode_text, make_pattern
from xtal.io.header import _AXIS_WORDS, parse_header_lines
from xtal.io.pattern import Pattern


_SPLIT_RE = re.compile(r"[\s,;]+")
_COMMENT_CHARS = ("#", "!", ";", "'", "%", "//")


def _strip_block_comments(text: str, path: Path) -> tuple[str, list[str]]:
    """Remove TOPAS-style /* ... */ blocks; return text and the comment lines."""
    if "/*" not in text:
        return text, []
    comments: list[str] = []

    def _keep(m: re.Match) -> str:
        comments.extend(m.group(1).splitlines())
        return "\n" * m.group(0).count("\n")

    out = re.sub(r"/\*(.*?)\*/", _keep, text, flags=re.S)
    if "/*" in out:
        raise PatternFormatError("unterminated /* comment", path=path)
    return out, comments


def _axis_from_label(label: str) -> tuple[str, float] | None:
    """(axis, factor to the axis unit) from a column or axis label, or None."""
    lab = label.strip().lower().replace(" ", "")
    if not lab:
        return None
    if lab in ("2th_rad", "2theta_rad", "twotheta_rad") or ("rad" in lab and "2th" in lab):
        return "two_theta_deg", float("nan")  # radians; handled by caller
    if "q" in lab and ("nm" in lab) and not lab.startswith("2"):
        return "q_inv_angstrom", 0.1
    if lab.startswith("q") or lab == "q_inv_angstrom":
        return "q_inv_angstrom", 1.0
    if lab.startswith("d") and not lab.startswith("deg") and ("*" not in lab) and (
            lab in _AXIS_WORDS["d_angstrom"] or "spacing" in lab or lab.startswith("d_") or lab
            in ("d(a)", "d(å)", "d[a]")):
        if "nm" in lab:
            return "d_angstrom", 10.0
        return "d_angstrom", 1.0
    for w in _AXIS_WORDS["two_theta_deg"]:
        if lab.startswith(w) or lab == w:
            return "two_theta_deg", 1.0
    if "theta" in lab or "2θ" in lab:
        return "two_theta_deg", 1.0
    return None


_UNSUPPORTED_X = re.compile(r"(r|r_?(mm|m|nm|px)|chi.*|pixels?|px|d\*2.*|energy.*|e_?kev|"
                            r"tof.*|time.*|channel.*)")
_SIGMA_NAME = re.compile(r"(sigma.*|esd|e|err.*|dy|di|std.*|uncertainty|s|σ.*|yerr|unc|"
                         r"d?i_?err.*|error.*)")
_Y_NAME = re.compile(r"(i|int.*|counts?|yobs|y|y_obs|cps|signal|obs|i\(.*\)|i_.*)")


def _column_index(spec: int | str, names: list[str] | None, ncol: int, path: Path) -> int:
    """A ``columns=`` entry (0-based index or column name) → index."""
    if isinstance(spec, str) and not spec.strip().lstrip("-").isdigit():
        low = [n.strip().lower() for n in (names or [])]
        if spec.strip().lower() not in low:
            raise PatternFormatError(f"columns: no column named {spec!r} (columns: "
                                     f"{', '.join(names or []) or 'unnamed'})", path=path)
        return low.index(spec.strip().lower())
    i = int(spec)
    if not 0 <= i < ncol:
        raise PatternFormatError(f"columns: index {i} outside the file's {ncol} columns "
                                 f"(0..{ncol - 1})", path=path)
    return i


def _choose_hint(ncol: int, names: list[str] | None) -> str:
    shown = ", ".join(f"{i}={n}" for i, n in enumerate(names[:ncol])) if names else \
        f"0..{ncol - 1}"
    return (f"choose them with columns=(x, y[, sigma]) in read_pattern or --columns X,Y[,S] "
            f"on the command line (0-based indices or names; columns: {shown})")


def _column_roles(names: list[str] | None, ncol: int, path: Path,
                  columns: tuple | None = None) -> tuple[dict[str, int], str | None, float]:
    """Roles of the data columns: {"x", "y"[, "sigma"]} → index; plus the x axis and factor.

    ``columns`` (x, y[, σ]) decides.  Else named columns are matched by name (2θ/tth/q/d;
    I/intensity/counts/yobs; sigma/esd/err) and the remaining named columns are ignored (and
    listed); unnamed columns follow x, y[, σ] for 2 or 3 columns.  Anything else — four or
    more unnamed columns, or no column whose name says intensity among several — is an
    error saying how to choose: never a guess.
    """
    axis, factor = None, 1.0
    named = names is not None and len(names) >= ncol
    if names is not None and not named:      # too few names: only the x label is trusted
        ax = _axis_from_label(names[0].strip().lower())
        if ax is not None:
            axis, factor = ax
    if columns is not None:
        if not 2 <= len(columns) <= 3:
            raise PatternFormatError("columns= takes (x, y) or (x, y, sigma)", path=path)
        idx = [_column_index(c, names if named else None, ncol, path) for c in columns]
        roles = dict(zip(("x", "y", "sigma"), idx))
        if named:
            ax = _axis_from_label(names[roles["x"]].strip().lower())
            if ax is not None:
                axis, factor = ax
        return roles, axis, factor
    if not named and ncol > 3:
        raise PatternFormatError(f"{ncol} unnamed numeric columns: which are x, intensity and "
                                 "σ cannot be told (pyFAI caked output, a multi-detector "
                                 "table?); " + _choose_hint(ncol, None), path=path)
    roles: dict[str, int] = {}
    if named:
        for i, n in enumerate(names[:ncol]):
            ln = n.strip().lower()
            ax = _axis_from_label(ln)
            if "x" not in roles and ax is not None and not _SIGMA_NAME.fullmatch(ln):
                roles["x"] = i
                axis, factor = ax
            elif "sigma" not in roles and _SIGMA_NAME.fullmatch(ln):
                roles["sigma"] = i
            elif "y" not in roles and _Y_NAME.fullmatch(ln):
                roles["y"] = i
    free = [i for i in range(ncol) if i not in roles.values()]
    if "x" not in roles and (not named or ncol <= 3):
        roles["x"] = free.pop(0)
    if "y" not in roles and len(free) == 1 or ("y" not in roles and not named and ncol <= 3):
        roles["y"] = free.pop(0)
    if "sigma" not in roles and free and not named and ncol == 3:
        roles["sigma"] = free.pop(0)
    if "x" not in roles or "y" not in roles:
        what = "x (2θ, Q or d)" if "x" not in roles else "intensity"
        raise PatternFormatError(f"{ncol} numeric columns and no column named as the {what}; "
                                 + _choose_hint(ncol, names if named else None), path=path)
    return roles, axis, factor


def _parse_number_rows(rows: list[tuple[int, str]], path: Path, decimal_comma: bool
                       ) -> np.ndarray:
    vals: list[list[float]] = []
    ncol = None
    for lineno, line in rows:
        if decimal_comma:
            parts = [p for p in re.split(r"[\s;]+", line.strip()) if p]
            parts = [p.replace(",", ".") for p in parts]
        else:
            parts = [p for p in _SPLIT_RE.split(line.strip()) if p]
        try:
            fl = [float(p) for p in parts]
        except ValueError:
            raise PatternFormatError(f"line {lineno}: not numeric data: {line.strip()[:60]!r}",
                                     path=path) from None
        if ncol is None:
            ncol = len(fl)
        elif len(fl) != ncol:
            raise InvalidDataError(f"line {lineno}: {len(fl)} column(s) where the data have "
                                   f"{ncol} (a column is missing or extra)", path=path)
        vals.append(fl)
    return np.array(vals, dtype=float)


def _is_number(tok: str) -> bool:
    try:
        float(tok.replace(",", ".") if tok.count(",") == 1 and "." not in tok else tok)
        return True
    except ValueError:
        return tok.lower() in ("nan", "inf", "-inf", "+inf")


def _lines(text: str, pos: int = 0):
    """(line number, start offset, line) from ``pos`` on, without splitting the whole text."""
    lineno = text.count("\n", 0, pos) + 1
    n = len(text)
    while pos < n:
        end = text.find("\n", pos)
        end = n if end < 0 else end
        yield lineno, pos, text[pos:end]
        lineno, pos = lineno + 1, end + 1


def _scan_header(text: str) -> tuple[list[str], str | None, int, int, str, dict]:
    """Header lines, the last header line (column names?), offset and line number of the first
    data line, that line, and notes (a lone number on its own line before the data)."""
    header: list[str] = []
    last = None
    notes: dict = {}
    it = _lines(text)
    pending = None
    for lineno, pos, raw in it:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(_COMMENT_CHARS):
            header.append(line)
            last = line
            continue
        toks = [t for t in _SPLIT_RE.split(line) if t]
        if pending is None and len(toks) == 1 and _is_number(toks[0]):
            pending = (lineno, pos, line)   # a lone number: header if data follow
            notes["first_line_number"] = float(toks[0].replace(",", "."))
            continue
        if not _is_number(toks[0]):
            header.append(line)      # a title / column-name line before the data
            last = line
            continue
        return header, last, pos, lineno, line, notes
    if pending is not None:           # the lone number was the only data
        notes.pop("first_line_number", None)
        return header, last, pending[1], pending[0], pending[2], notes
    return header, last, len(text), 0, "", notes


def _names_from(line: str | None, ncol: int) -> list[str] | None:
    """Column names from a header line: ``#`` kept as a name when the line is ``#, tth, …``;
    a SPEC ``#L`` marker dropped; names with single spaces when separated by two or more."""
    if line is None or "=" in line or re.search(r":\s", line):
        return None
    body = re.sub(r"^#L\s+", "", line.strip())
    stripped = body.lstrip("#!;'% \t")
    cands = [[t for t in re.split(r"[\s,;]+", stripped) if t],
             [t for t in re.split(r"\s*[,;\t]\s*|\s{2,}", body.strip()) if t],
             [t for t in re.split(r"\s{2,}|\t", stripped) if t]]
    for c in cands:
        if len(c) == ncol and not any(_is_number(t) for t in c):
            return c
    c = cands[0]
    if len(c) >= max(2, ncol - 1) and not any(_is_number(t) for t in c):
        return c
    return None


def _decimal_comma(first: str, sample: list[str]) -> bool:
    """Commas are decimal marks when fields are separated by semicolons, or when the first data
    lines hold no '.' at all and several whitespace-separated fields each written ``d,d``.
    ``10,29`` alone is two comma-separated columns (as in ``10.02,31`` on the next line)."""
    if ";" in first and "," in first:
        return True
    lines = [ln.strip() for ln in sample if ln.strip() and not ln.strip().startswith(_COMMENT_CHARS)]
    if not lines or any("." in ln for ln in lines):
        return False
    field = r"-?\d+,\d+"
    return all(re.fullmatch(rf"{field}(\s+{field})+", ln) for ln in lines)


def _parse_block(text: str, first: str, start: int, lineno: int, path: Path) -> np.ndarray:
    """The numeric block from ``start`` as a 2D array, parsed by numpy (memory ~ the numbers);
    a failure is re-parsed line by line for a message naming the line."""
    decimal_comma = _decimal_comma(first, [ln for _, (_, _, ln) in zip(range(50), _lines(text, start))])
    sep = ";" if ";" in first else ("," if "," in first and not decimal_comma else None)
    lines = (ln for _, _, ln in _lines(text, start))     # no copy of the whole block
    if decimal_comma:
        lines = (ln.replace(",", ".") for ln in lines)
    comments = [c for c in ("#", "!", "'", "%", "//", ";") if c != sep]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(lines, delimiter=sep, comments=comments, ndmin=2)
    except ValueError:
        rows = [(n, ln.strip()) for n, _, ln in _lines(text, start)
                if ln.strip() and not ln.strip().startswith(_COMMENT_CHARS)]
        arr = _parse_number_rows(rows, path, decimal_comma)
    return arr


def _read_columns(path: Path, text: str, *, axis: str | None,
                  columns: tuple | None = None) -> Pattern:
    """Column text with comment headers (xy/xye/dat/txt/csv, pyFAI 1D, SPEC-style tables)."""
    text, block_comments = _strip_block_comments(text, path)
    header, last, start, lineno, first, notes = _scan_header(text)
    header = list(block_comments) + header
    if not first:
        raise EmptyPatternError("no numeric data lines", path=path)
    data = _parse_block(text, first, start, lineno, path)
    if data.shape[0] == 0:
        raise EmptyPatternError("no numeric data lines", path=path)
    if data.shape[0] == 1 and data.shape[1] > 3:
        raise PatternFormatError(f"a single line of {data.shape[1]} numbers is not a pattern "
                                 "(one point per line: x intensity [σ])", path=path)
    if data.shape[1] < 2:
        raise InvalidDataError("only one column of numbers: need x and intensity", path=path)
    hdr = parse_header_lines(header)
    colnames = _names_from(last, data.shape[1])
    roles, file_axis, factor = _column_roles(colnames, data.shape[1], path, columns)
    if hdr.axis:
        file_axis, factor = hdr.axis, 1.0
    if colnames and roles["x"] < len(colnames) and _UNSUPPORTED_X.fullmatch(
            colnames[roles["x"]].strip().lower()):
        raise PatternFormatError(f"x column {colnames[roles['x']]!r} is not 2θ, Q or d "
                                 "(radius, azimuth, pixel, energy and time are not powder axes "
                                 "xtal converts)", path=path)
    x = data[:, roles["x"]]
    if file_axis == "two_theta_deg" and math.isnan(factor):
        x = np.degrees(x)
    elif file_axis is not None:
        x = x * factor
    if axis is not None and file_axis is not None and axis != file_axis:
        raise PatternFormatError(f"axis={axis!r} given but the file declares {file_axis!r}",
                                 path=path)
    the_axis = axis or file_axis or "two_theta_deg"
    y = data[:, roles["y"]]
    s = data[:, roles["sigma"]] if "sigma" in roles else None
    fmt = "pyfai" if any("pyfai" in h.lower() for h in header) else "columns"
    extra = dict(notes)
    if "first_line_number" in notes:
        extra["first_line_note"] = ("a lone number before the data was read as a header, not a "
                                    "data row (often a wavelength); it is not used as λ")
    if colnames:
        extra["columns"] = colnames[: data.shape[1]]
    extra["column_roles"] = dict(roles)
    ignored = [i for i in range(data.shape[1]) if i not in roles.values()]
    if ignored:
        extra["ignored_columns"] = [colnames[i] if colnames and i < len(colnames) else i
                                    for i in ignored]
    return make_pattern(path, x, y, s, the_axis, hdr, fmt, extra)


def _read_chi(path: Path, text: str, *, axis: str | None) -> Pattern:
    """Fit2D .chi: title, x label, y label, number of points, then x y [e] rows."""
    lines = text.splitlines()
    if len(lines) < 5:
        raise EmptyPatternError("Fit2D .chi file shorter than its 4-line header", path=path)
    head = lines[:4]
    try:
        n = int(head[3].split()[0])
    except (ValueError, IndexError):
        raise PatternFormatError("line 4 of a Fit2D .chi file must be the number of points",
                                 path=path) from None
    lab = head[1].strip().lower()
    if any(w in lab for w in ("radial", "azimuth", "pixel", "chi")):
        ax = None
    elif "2-theta" in lab or "2theta" in lab or "two" in lab or "2θ" in lab:
        ax = ("two_theta_deg", float("nan") if "rad" in lab else 1.0)
    elif lab.startswith("q"):
        ax = ("q_inv_angstrom", 0.1 if "nm" in lab else 1.0)
    elif lab.startswith("d"):
        ax = ("d_angstrom", 10.0 if "nm" in lab else 1.0)
    else:
        ax = _axis_from_label(lab.split("(")[0])
    if ax is None:
        raise PatternFormatError(f"unsupported .chi x axis {head[1].strip()!r} (need 2θ, Q or d)",
                                 path=path)
    rows = [(i + 5, ln) for i, ln in enumerate(lines[4:]) if ln.strip()]
    data = _parse_number_rows(rows, path, False)
    if data.shape[0] != n:
        raise InvalidDataError(f"header says {n} points but {data.shape[0]} data lines follow",
                               path=path)
    if data.shape[1] < 2:
        raise InvalidDataError("only one column of numbers: need x and intensity", path=path)
    x = data[:, 0]
    file_axis, factor = ax
    x = np.degrees(x) if math.isnan(factor) else x * factor
    if axis is not None and axis != file_axis:
        raise PatternFormatError(f"axis={axis!r} given but the file declares {file_axis!r}",
                                 path=path)
    hdr = parse_header_lines([head[0]])
    return make_pattern(path, x, data[:, 1], data[:, 2] if data.shape[1] >= 3 else None,
                         file_axis, hdr, "chi", {"title": head[0].strip()})


# --- registry entries -----------------------------------------------------------
EXTENSIONS = (".xy", ".xye", ".dat", ".txt", ".csv", ".asc")
CHI_EXTENSIONS = (".chi",)


def sniff(path: Path, head: bytes) -> bool:
    """Any text is read as columns (the registry's fallback)."""
    return True


def read(path: Path, data: bytes, *, axis: str | None = None, columns: tuple | None = None,
         **_: Any) -> Pattern:
    """Column text → Pattern (``columns``: (x, y[, σ]) indices or names when not evident)."""
    return _read_columns(path, decode_text(data, path), axis=axis, columns=columns)


def sniff_chi(path: Path, head: bytes) -> bool:
    """Fit2D .chi: by extension, or title / x label / y label / point count on line 4."""
    if path.suffix.lower() in CHI_EXTENSIONS:
        return True
    lines = head.lstrip(b"\xef\xbb\xbf \t\r\n").decode("latin-1").splitlines()
    return len(lines) >= 5 and bool(re.fullmatch(r"\s*\d+\s*", lines[3])) and not _is_number(
        (lines[1].split() or ["x"])[0])


def read_chi(path: Path, data: bytes, *, axis: str | None = None, **_: Any) -> Pattern:
    """Fit2D .chi → Pattern."""
    return _read_chi(path, decode_text(data, path), axis=axis)
