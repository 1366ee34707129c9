"""Giving freed memory back to the operating system between the big steps of a replication.

A million-phone day allocates and frees arrays of tens of megabytes in turn (the run's state, then
the metrics' sorted copies). glibc's allocator raises its mmap threshold after such frees, so
later arrays of that size come from its heap, and what they free stays mapped in the process: the
resident size, and the peak a machine must hold, grows with the freed memory rather than the live
one. ``malloc_trim(0)`` hands the free heap pages back (distributed's workers do the same). Where
the C library has no ``malloc_trim`` (musl, macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

__all__ = ["release"]

_trim = None
try:  # pragma: no branch - depends on the C library
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = getattr(_libc, "malloc_trim", None)
    if _trim is not None:
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
except OSError:  # no C library to load
    _trim = None


def release(collect: bool = False) -> None:
    """Return free heap memory to the OS; ``collect``: first free unreachable cycles (a finished
    model's components refer to each other)."""
    if collect:
        gc.collect()
    if _trim is not None:
        _trim(0)
