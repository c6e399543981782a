"""Small shared helpers: atomic file output that never clobbers inputs."""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from xtal.errors import OverwriteError, XtalError

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "check_writable", "finite_float"]


def check_writable(path: str | Path, *, overwrite: bool = False,
                   protected: tuple[str | Path, ...] = ()) -> Path:
    """Refuse to write over an input file, or over an existing file unless ``overwrite``."""
    p = Path(path)
    for q in protected:
        if q is None:
            continue
        q = Path(q)
        same = p.resolve() == q.resolve()
        if not same and p.exists() and q.exists():
            same = os.path.samefile(p, q)  # hard links and other aliases of the same file
        if same:
            raise OverwriteError("refusing to overwrite an input file", path=p)
    if p.exists() and not overwrite:
        raise OverwriteError("file exists (pass overwrite=True / --force to replace it)", path=p)
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
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
