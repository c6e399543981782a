"""How a process that xtal owns (the ``xtal`` command, the test suite) asks glibc's ``malloc`` to
keep freed memory for reuse, instead of returning it to the operating system between two NumPy
temporaries.

Why: a profile evaluation builds a few dozen temporary arrays of 0.1–20 MB (one value per
peak-window point).  With glibc's defaults each one that the heap cannot hold is mapped afresh
(``mmap``) or grows the heap (``brk``) and is handed back on ``free``, so its pages are faulted in
and zeroed by the kernel on every evaluation: identification of the real PbSO4 lab pattern took
430 000 page faults and 8.4 s CPU; with freed memory kept (the values below) 34 000 and 7.6 s
(1.10–1.26× in three runs); NAC 11-BM 186 000 → 52 000 faults, 1.14×; small synthetic patterns
unchanged within the noise; the same answers and peak memory (`benchmarks/bench_heap.py`,
`benchmarks/RESULTS.md`).

What: three `mallopt` parameters — allocations below `MMAP_THRESHOLD_BYTES` come from the heap,
which keeps up to `TRIM_THRESHOLD_BYTES` of free memory at its top and grows by `TOP_PAD_BYTES`
beyond a request.  The process can therefore hold up to ~128 MiB of freed memory that it will
reuse; it never changes a result.  Only glibc (Linux) has `mallopt`; elsewhere nothing is done.

The library never calls this on import (a user's process is the user's): `xtal.cli.main` calls it
for the command's process (worker processes forked by a series run inherit it), ``tests/conftest.py``
for the test processes.  A program that uses xtal as a library may call `keep_freed_memory` itself.
Set ``XTAL_MALLOC=default`` to leave malloc alone; ``MALLOC_*_`` variables in the environment (the
user's own tuning) are respected as they are.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any

__all__ = ["keep_freed_memory", "release_free_memory", "MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES",
           "TOP_PAD_BYTES"]

#: Allocations below this come from the heap, not from a fresh mapping (glibc's own ceiling for
#: its dynamic threshold, 32 MiB on 64-bit systems).
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free memory at the top of the heap kept before any is returned to the system.
TRIM_THRESHOLD_BYTES = 128 << 20
#: Extra memory requested whenever the heap grows.
TOP_PAD_BYTES = 64 << 20

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3   # glibc's <malloc.h>
_DONE: list[bool] = []


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse (see the module's docstring); once per
    process.  Returns True if the parameters were set, False where nothing was done (not glibc,
    ``XTAL_MALLOC=default``, or the environment already tunes malloc with ``MALLOC_*_``)."""
    if _DONE:
        return _DONE[0]
    _DONE.append(_apply())
    return _DONE[0]


def _apply() -> bool:
    if os.environ.get("XTAL_MALLOC", "").strip().lower() == "default":
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return False
    mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    ok = True
    for param, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                         (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES), (_M_TOP_PAD, TOP_PAD_BYTES)):
        ok &= mallopt(param, value) == 1
    return bool(ok)


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the operating system (glibc's ``malloc_trim(0)``, which
    also releases free pages in the middle of the heap, not only at its top).

    For a process that passes large buffers through and keeps small objects, e.g. the main
    process of a parallel series run: a chunk's frames (a few MB, from the heap under
    `keep_freed_memory`) are freed after small long-lived objects (the results) were placed
    between them, so the free space is split up and never reused whole.  The resident memory
    then grows with the number of chunks.  Called once per chunk it stays flat.  Returns
    whether memory was released; False where there is no ``malloc_trim`` (not glibc)."""
    trim = _libc_function("malloc_trim", [ctypes.c_size_t])
    return trim is not None and bool(trim(0))


def _libc_function(name: str, argtypes: list) -> Any:
    """The C library's function ``name`` returning int, or None where it has none (not glibc:
    macOS, Windows, musl).  Looked up in the process's own symbols, glibc's among them: no library
    search, which would run ldconfig in a subprocess (ctypes.util.find_library)."""
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn
