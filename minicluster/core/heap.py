"""`keep_freed_memory()`: glibc's malloc keeps the memory a process frees for its next
allocations instead of handing it back to the kernel at once.

Aggregation makes and frees [rank x step] temporaries of up to 32 MB by the dozen (4,096 x
1,000 float64): by default each is its own mapping, unmapped when freed, and the next one's
pages are faulted in and zeroed by the kernel again. Kept in the heap they are reused: at
4,096 ranks 80,000 page faults became 55,000 and the command's system time 0.7-1.3 s became
0.4-0.5 s, for 20 MB more peak RSS (BENCHMARKS.md, section 2). Elsewhere than glibc nothing
changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

# a 4,096 x 1,000 float64 matrix fits; a larger allocation is still a mapping of its own, freed
# to the kernel at once (16,384 ranks' 131 MB matrices: their peak RSS as before)
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 1 << 30  # free memory at the heap's top kept up to this
TOP_PAD_BYTES = 64 << 20  # the heap grown this much beyond a request (untouched: no RSS)


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory (the module's reason); True when it was set,
    False where there is no `mallopt` (not glibc) or it refused a value. Fixing
    the thresholds also ends glibc's own adjustment of them, for the rest of the process."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (M_TOP_PAD, TOP_PAD_BYTES),
        )
    )
