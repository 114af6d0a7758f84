"""Resident-memory measurement shared by the CPU benchmarks: peak RSS added by a phase, from /proc where possible.

Imported by sibling scripts (`python benchmarks/<name>.py` puts this folder on `sys.path`).
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys


def status_kb(field: str) -> int | None:
    """A `/proc/self/status` field in KiB (e.g. VmRSS, VmHWM), or None where it cannot be read."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def release_freed_memory() -> None:
    """Hand memory freed by earlier phases back to the OS (glibc keeps it resident otherwise, and a later phase that
    reuses it would show no RSS growth)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS readings may then under-count reused memory
        pass


class PeakMemory:
    """Peak resident memory added since the `with` block began, in MB (`mb()`, readable inside the block)."""

    def __enter__(self) -> PeakMemory:
        release_freed_memory()
        self.exact = reset_peak()
        self.start_kb = (status_kb("VmRSS") if self.exact else None) or maxrss_kb()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def mb(self) -> float:
        peak = (status_kb("VmHWM") if self.exact else None) or maxrss_kb()
        return max(0, peak - self.start_kb) / 1024


def maxrss_kb() -> int:
    """The process's lifetime peak RSS in KiB (getrusage), the fallback where /proc is not there."""
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage // 1024 if sys.platform == "darwin" else usage  # bytes on macOS, KiB on Linux
