"""Freed memory kept for reuse (curation/memory.py): glibc's thresholds raised once per process."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# How many bytes of a 64 MiB block glibc maps on its own (mmap) rather than taking from the heap.
PROBE = """
import ctypes, ctypes.util, sys
from curation import memory
if sys.argv[1] == "raise":
    assert memory.keep_freed_memory() and memory.keep_freed_memory()  # idempotent
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = libc.mallinfo2().hblkhd
block = libc.malloc(64 * 2**20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
@pytest.mark.parametrize(("mode", "mapped"), [("default", True), ("raise", False)])
def test_large_blocks_come_from_the_reused_heap_once_thresholds_are_raised(mode: str, mapped: bool) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (int(done.stdout) >= 64 * 2**20) is mapped
