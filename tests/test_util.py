"""Atomic output: a failed write leaves the target untouched; inputs are never overwritten."""
from __future__ import annotations

import os

import pytest

from xtal.errors import OverwriteError
from xtal.util import atomic_path, atomic_write_text, check_writable


def test_failed_write_leaves_target_and_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_written_file_has_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o644


def test_check_writable(tmp_path):
    src = tmp_path / "input.xy"
    src.write_text("1 2\n")
    with pytest.raises(OverwriteError, match="input file"):
        check_writable(src, overwrite=True, protected=(src,))
    with pytest.raises(OverwriteError, match="exists"):
        check_writable(src)
    assert check_writable(src, overwrite=True) == src
    assert src.read_text() == "1 2\n"
