"""On-disk cache of parsed CIFs and per-phase reflection lists (hkl and multiplicity·|F|²), shared
by processes (and of the symmetry-operator lists that passed their group check: `text_cache_key`).

A fresh process (every `xtal identify`, every series worker) otherwise re-reads every library CIF
and recomputes its reflection list. A parsed phase (`cached_json`, the record of
`xtal.structures.model.phase_record`) is keyed by the SHA-256 of the file's bytes, its path, the
block / id / kind asked for, and the source of the modules that read it (`code_fingerprint`). A
reflection list is keyed by

* the SHA-256 of the CIF file's bytes (a changed file is a new entry),
* a fingerprint of the parsed phase (cell, space group, operators, sites: a Phase edited in place
  after reading is a new entry too),
* xtal's version and the source of the modules that compute it (a new formula in
  `xtal.simulate` is a new entry),
* the d_min the list was computed to and the form-factor table.

Where: ``$XTAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/xtal``, else ``~/.cache/xtal``; ``XTAL_CACHE_DIR=off``
(or ``0``/``none``) disables it. Entries are ``.npz`` files (no pickle) written to a temporary file
in the same directory and moved into place with ``os.replace``, so concurrent writers never leave a
half-written entry; an unreadable or inconsistent entry is ignored (and overwritten by the next
computation). Nothing here raises on an unwritable cache directory: the cache is an optimisation.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["cache_dir", "cached_arrays", "cached_json", "code_fingerprint", "phase_cache_key",
           "text_cache_key", "clear_disk_cache"]

_FORMAT = 1                      # bump when the entry layout changes
_DISABLED = {"off", "0", "none", "false", ""}
_FILE_HASHES: dict[tuple[str, int, int], str] = {}
_CODE_HASHES: dict[tuple[str, ...], str] = {}


def cache_dir() -> Path | None:
    """The cache directory (not created here), or None when the cache is disabled."""
    env = os.environ.get("XTAL_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in _DISABLED else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xtal"


def _version() -> str:
    from xtal import __version__
    return str(__version__)


def _file_sha256(path: str) -> str | None:
    """SHA-256 of a file's bytes (memoised per path, size and mtime), None if unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    h = _FILE_HASHES.get(key)
    if h is None:
        try:
            with open(path, "rb") as fh:
                h = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            return None
        _FILE_HASHES[key] = h
    return h


def phase_cache_key(phase: Any, *parts: Any) -> str | None:
    """Key of a phase read from a CIF file (None for a phase with no readable source file)."""
    prov = getattr(phase, "provenance", None)
    src = getattr(prov, "file", None)
    if not src:
        return None
    digest = _file_sha256(str(src))
    if digest is None:
        return None
    fp = repr((getattr(phase, "block", None), tuple(phase.cell.parameters),
               getattr(phase, "spacegroup_hm", None), getattr(phase, "spacegroup_number", None),
               list(getattr(phase, "symops", []) or []), list(getattr(phase, "sites", []) or [])))
    return text_cache_key(digest, fp, *parts)


def text_cache_key(*parts: Any) -> str:
    """Key of a result that is a pure function of some text (with xtal's version and the layout)."""
    h = hashlib.sha256()
    for p in (_FORMAT, _version(), *parts):
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def code_fingerprint(*module_names: str) -> str:
    """SHA-256 of the source files of xtal modules (memoised): part of the key of a result that
    those modules compute, so that an edited parser never meets the entries of its previous self
    (xtal's version changes only at a release)."""
    h = _CODE_HASHES.get(module_names)
    if h is None:
        import importlib.util

        digest = hashlib.sha256()
        for name in module_names:
            origin = getattr(importlib.util.find_spec(name), "origin", None)
            digest.update(f"{name}\0{_file_sha256(origin) if origin else None}\0".encode())
        h = _CODE_HASHES[module_names] = digest.hexdigest()
    return h


def _path(kind: str, key: str) -> Path | None:
    d = cache_dir()
    return None if d is None else d / kind / f"{key}.npz"


def _load(path: Path, names: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return tuple(np.array(z[n]) for n in names)
    except FileNotFoundError:
        return None
    except Exception:           # corrupt or truncated (another version, a crash): recompute
        return None


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass                    # read-only or full disk: the cache is only an optimisation
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cached_arrays(kind: str, key: str | None, names: tuple[str, ...],
                  compute: Callable[[], tuple[np.ndarray, ...]],
                  check: Callable[[tuple[np.ndarray, ...]], bool] | None = None) -> tuple[np.ndarray, ...]:
    """``compute()`` once per key across processes: the stored arrays if a valid entry exists."""
    path = None if key is None else _path(kind, key)
    if path is not None:
        hit = _load(path, names)
        if hit is not None and (check is None or check(hit)):
            return hit
    out = compute()
    if path is not None:
        _store(path, dict(zip(names, out)))
    return out


def cached_json(kind: str, key: str | None, compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON-able value) once per key across processes: the stored value if a valid
    entry exists, else the computed one, stored. The same value either way (both pass through
    JSON), kept in the ``.npz`` layout of `cached_arrays` as one text array (no pickle)."""
    if key is None or cache_dir() is None:
        return json.loads(json.dumps(compute()))
    (text,) = cached_arrays(kind, key, ("json",), lambda: (np.array(json.dumps(compute())),),
                            check=lambda a: a[0].ndim == 0 and a[0].dtype.kind == "U")
    return json.loads(str(text))


def clear_disk_cache() -> int:
    """Delete every cache entry; the number of files removed."""
    d = cache_dir()
    n = 0
    if d is None or not d.is_dir():
        return 0
    for p in d.rglob("*.npz"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n
