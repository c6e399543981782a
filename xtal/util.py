"""Small shared helpers: atomic file output that never clobbers inputs."""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from xtal.errors import OverwriteError, XtalError

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "check_writable", "finite_float",
           "OutputPlan", "same_file", "TEMP_MARKER", "FIGURE_SUFFIXES", "check_figure_path"]

#: Every temporary file of an atomic write is hidden and carries this marker and the writer's pid:
#: ``.NAME.xtal-tmp-PID-RANDOM``.  A SIGKILL (which no ``finally`` survives) can leave one; the next
#: atomic write into that directory removes such leftovers whose process is gone, and readers that
#: glob ``*`` never see them (hidden).
TEMP_MARKER = ".xtal-tmp-"


def same_file(a: str | Path, b: str | Path) -> bool:
    """True if ``a`` and ``b`` name the same file: equal resolved paths, or (both existing) the same
    inode (hard links, bind mounts, case-insensitive aliases)."""
    pa, pb = Path(a), Path(b)
    if pa.resolve() == pb.resolve():
        return True
    try:
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def check_writable(path: str | Path, *, overwrite: bool = False,
                   protected: tuple[str | Path, ...] = ()) -> Path:
    """Refuse to write over an input file (even with ``overwrite``), over a directory, or over an
    existing file unless ``overwrite`` (the CLI's ``--force``)."""
    p = Path(path)
    for q in protected:
        if q is not None and same_file(p, q):
            raise OverwriteError("refusing to write over an input file of this run (not even with --force)",
                                 path=p)
    if p.is_dir():
        raise OverwriteError("is a directory, not a file", path=p)
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise OverwriteError("file exists; use --force to replace it", path=p)
    return p


class OutputPlan:
    """Every output path of one run, checked against the run's inputs *before* any computation.

    Usage (the CLI does this for every command)::

        plan = OutputPlan(inputs=[cif_path], force=args.force)
        out = plan.add(args.out, suffixes={".xy", ".cif"}, what="--out")
        plan.check()            # raises OverwriteError/XtalError; nothing computed yet
        ...compute...
        write_simulated(sim, out, overwrite=True)   # the plan already decided

    Rules: an output is never one of the inputs (resolved path or same inode), not even with
    ``force``; an existing output needs ``force``; two outputs of one run may not be the same file;
    a suffix the writer cannot produce is refused; the output's directory must exist or be creatable
    and be writable.  Input directories (a series' frame folder) may not be used as output
    directories.
    """

    def __init__(self, inputs=(), *, force: bool = False, input_dirs=()) -> None:
        self.force = bool(force)
        self.inputs: list[Path] = [Path(p) for p in inputs if p is not None]
        self.input_dirs: list[Path] = [Path(p) for p in input_dirs if p is not None]
        self.outputs: list[tuple[Path, str]] = []
        self.dirs: list[tuple[Path, str]] = []

    def add_input(self, path) -> None:
        if path is not None:
            self.inputs.append(Path(path))

    def add(self, path, *, what: str = "output", suffixes=None) -> Path | None:
        """Register one output file (None: nothing); refuses an unwritable suffix at once."""
        if path is None:
            return None
        p = Path(path)
        if suffixes is not None and p.suffix.lower() not in suffixes:
            raise XtalError(f"{what}: cannot write a {p.suffix or 'suffix-less'} file; use one of "
                            + ", ".join(sorted(suffixes)), path=p)
        self.outputs.append((p, what))
        return p

    def add_dir(self, path, names=(), *, what: str = "output directory") -> Path:
        """Register an output directory and the file names the run will write into it."""
        d = Path(path)
        self.dirs.append((d, what))
        for n in names:
            self.outputs.append((d / n, f"{what} file {n}"))
        return d

    def check(self) -> "OutputPlan":
        """Raise `OverwriteError` (or `XtalError`) for the first output that may not be written."""
        for d, what in self.dirs:
            if d.exists() and not d.is_dir():
                raise OverwriteError(f"{what} exists and is not a directory", path=d)
            for src in self.input_dirs:
                if same_file(d, src):
                    raise OverwriteError(f"{what} is the input directory of this run; choose another",
                                         path=d)
            for src in self.inputs:
                if same_file(d, src):
                    raise OverwriteError(f"{what} is an input of this run", path=d)
            _check_dir_writable(d, what)
        seen: list[Path] = []
        for p, what in self.outputs:
            check_writable(p, overwrite=self.force, protected=tuple(self.inputs))
            if any(same_file(p, q) for q in seen):
                raise OverwriteError(f"{what}: two outputs of this run are the same file", path=p)
            seen.append(p)
            _check_dir_writable(p.parent, what)
        return self

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.outputs]


#: Figure formats every xtal figure writer produces (matplotlib by extension).
FIGURE_SUFFIXES = frozenset({".png", ".pdf", ".svg"})


def check_figure_path(path: str | Path, *, overwrite: bool = False, protected=()) -> Path:
    """`check_writable` plus: the suffix is a figure format (`FIGURE_SUFFIXES`), else `XtalError`."""
    p = Path(path)
    if p.suffix.lower() not in FIGURE_SUFFIXES:
        raise XtalError(f"cannot write a figure as {p.suffix or 'a suffix-less file'!r}; use "
                        + ", ".join(sorted(FIGURE_SUFFIXES)), path=p)
    return check_writable(p, overwrite=overwrite, protected=tuple(protected))


def _check_dir_writable(d: Path, what: str) -> None:
    """The directory exists and is writable, or its nearest existing ancestor is (it will be made)."""
    probe = d if str(d) else Path(".")
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OverwriteError(f"{what}: {probe} is a file, not a directory", path=d)
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OverwriteError(f"{what}: directory {probe} is not writable", path=d)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARKER}{os.getpid()}-", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the user's normal permissions
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(directory: Path) -> None:
    """Remove temp files of atomic writes whose process died (SIGKILL) in ``directory``."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(".") and TEMP_MARKER in n]
    except OSError:
        return
    for n in names:
        try:
            pid = int(n.rsplit(TEMP_MARKER, 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(directory / n)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write text atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def finite_float(name: str, value: Any, error: type[XtalError] = XtalError) -> float:
    """``value`` as a finite float, or ``error`` naming ``name`` (the parameter) and the bad value."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise error(f"{name} must be a number, got {value!r}", field=name) from None
    if not math.isfinite(v):
        raise error(f"{name} must be finite, got {value!r}", field=name)
    return v
