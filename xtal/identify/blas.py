"""One BLAS thread inside the fits.

The fit multiplies tall-thin matrices (points × a few columns); a multithreaded OpenBLAS only adds
synchronisation cost there (10× slower on a loaded 2-core machine). threadpoolctl limits the BLAS
pool for the duration of a call and restores it afterwards.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_LOCK = threading.Lock()
_CONTROLLER: Any = None


def _controller() -> Any:
    global _CONTROLLER
    with _LOCK:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def one_blas_thread(fn: Callable) -> Callable:
    """Decorator: run ``fn`` with one BLAS thread (the previous limit restored on return)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)
    return wrapper
