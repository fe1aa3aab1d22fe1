"""What segmenting costs in memory, and what this machine has: one estimate for the ``segment``
command and the job worker, so a hopeless input is refused with one line up front instead of
dying of a MemoryError (or the kernel's OOM killer) deep in the network pass."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["BYTES_PER_VOXEL", "available_memory", "segmentation_memory_needed", "too_large_message"]

# What segmenting costs beside the image itself, per voxel: the normalised float32 image, the
# flows (up to three float32 components), the cell probabilities, the uint32 labels and the
# engine's temporaries. Rough, and on the high side.
BYTES_PER_VOXEL = 20


def available_memory() -> int | None:
    """Bytes of memory this process could still get: ``MemAvailable`` of ``/proc/meminfo``
    (Linux), else the physical memory; ``None`` where neither can be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def segmentation_memory_needed(shape: tuple[int, ...], dtype) -> int:
    """Bytes segmenting an image of ``shape`` and ``dtype`` needs: ``BYTES_PER_VOXEL`` a voxel
    plus the image."""
    n_voxels = int(np.prod(shape, dtype=object))
    return n_voxels * (BYTES_PER_VOXEL + np.dtype(dtype).itemsize)


def too_large_message(what: str, shape: tuple[int, ...], dtype) -> str | None:
    """The one-line refusal when this machine has not the memory to segment ``what``, else ``None``."""
    need = segmentation_memory_needed(shape, dtype)
    available = available_memory()
    if available is None or need <= available:
        return None
    return (f"{what} is too large for this machine: {' x '.join(map(str, shape))} {np.dtype(dtype)} needs about "
            f"{need:,} bytes to segment ({BYTES_PER_VOXEL} per voxel plus the image); {available:,} are available")
