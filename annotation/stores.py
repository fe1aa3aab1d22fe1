"""Open volume stores, kept per process.

Opening a :class:`~annotation.storage.VolumeStore` reads its metadata, and a store caches its
opened zarr arrays, so a tile server that opened one per request would pay both on every
tile. Stores are therefore kept in a small LRU keyed by the directory's absolute path. That is
safe because a volume's intensities never change and its label versions are immutable (a new
version is a new array, looked up by name); a store object may be shared between threads.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from annotation.models import Volume
from annotation.storage import VolumeStore

__all__ = ["CORRECTIONS_DIR", "correction_store", "volume_store", "volume_store_at"]

#: Under EZQUANT_DATA_DIR: one folder of corrections (the guide's layout) per volume.
CORRECTIONS_DIR = "corrections"

_CACHED_STORES = 32


@lru_cache(maxsize=_CACHED_STORES)
def volume_store_at(path: str) -> VolumeStore:
    """The store at an absolute path, opened once per process (LRU of the last 32)."""
    return VolumeStore.open(path)


def volume_store(volume: Volume) -> VolumeStore:
    """The store of a volume row."""
    return volume_store_at(str(volume.storage_path))


def correction_store(volume: Volume):
    """The volume's corrections (``corrections.json`` and ``corr_*.npz``, the guide's layout),
    in ``EZQUANT_DATA_DIR/corrections/<the volume's folder name>``."""
    from segmentation.core.corrections import CorrectionTracker

    return CorrectionTracker(Path(settings.EZQUANT_DATA_DIR) / CORRECTIONS_DIR / Path(volume.path).name)
